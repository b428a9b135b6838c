//! What a keyset's number of scopes costs a verify that requires the last
//! one: 10 000 keys, each holding 1, 16 or 64 scopes.
//! `cargo run --release --example scope_lookup` (docs/PERFORMANCE.md: the
//! per-thread scope memo).
use keygate::{ApiKey, Name, Prefix, RecordSpec, Signer, SnapshotBuilder, Verifier};
fn main() {
    for nscopes in [1usize, 16, 64] {
        let n = 10_000usize;
        let signer = Signer::from_seed(&[7; 32]);
        let ks = Name::new("bench").unwrap();
        let mut b =
            SnapshotBuilder::new(ks, Prefix::new("acme_live").unwrap(), 1, 0).valid_until(1 << 31);
        let names: Vec<String> = (0..nscopes)
            .map(|i| format!("service{i:02}:read"))
            .collect();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let mut keys = Vec::new();
        for i in 0..n {
            let mut s = [0u8; 24];
            s[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
            let k = ApiKey::from_secret_bytes("acme_live", &s).unwrap();
            b.push(RecordSpec::active(
                k.digest(),
                &format!("svc-{}", i / 10),
                &refs,
            ));
            keys.push(k.expose_secret().to_string());
        }
        let trust = keygate::build_bundle(&ks, 1, 0, &[signer.trusted()], &[&signer]);
        let v = Verifier::new(&trust).unwrap();
        v.install_snapshot(&b.build(&signer).unwrap()).unwrap();
        let want = names.last().unwrap().clone();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let mut ok = 0;
            for r in 0..40 {
                for k in &keys {
                    ok += v.verify(k, 1 + r, Some(&want)).outcome.is_accepted() as u32;
                }
            }
            assert_eq!(ok as usize, 40 * n);
            best = best.min(t.elapsed().as_nanos() as f64 / (40 * n) as f64);
        }
        println!("{nscopes} scopes, required = the last: {best:.1} ns/verify");
    }
}
