//! A fixed loop of verifies over 10 000 keys, for instruction counting and
//! profiling (`valgrind --tool=callgrind target/release/examples/verify_loop`,
//! `perf record`), and for what a keyset's number of scopes costs:
//! `cargo run --release --example verify_loop -- 64` gives every key 64 scopes
//! and requires the last one (docs/PERFORMANCE.md, the scope memo).
use keygate::{ApiKey, Name, Prefix, RecordSpec, Signer, SnapshotBuilder, Verifier};

fn main() {
    let scopes: usize = std::env::args()
        .nth(1)
        .map_or(1, |s| s.parse().expect("number of scopes, 1..=64"));
    let names: Vec<String> = (0..scopes).map(|i| format!("service{i:02}:read")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let required = *names.last().expect("at least one scope");
    let n = 10_000usize;
    let signer = Signer::dangerous_from_seed(&[7; 32]);
    let ks = Name::new("bench").unwrap();
    let mut b =
        SnapshotBuilder::new(ks, Prefix::new("acme_live").unwrap(), 1, 0).valid_until(1 << 31);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = [0u8; 24];
        s[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        let k = ApiKey::from_secret_bytes("acme_live", &s).unwrap();
        b.push(RecordSpec::active(
            k.digest(),
            &format!("service-{}", i / 10),
            &names,
        ));
        keys.push(k.expose_secret().to_string());
    }
    let trust = keygate::build_bundle(&ks, 1, 0, &[signer.trusted()], &[&signer]);
    let v = Verifier::new(&trust).unwrap();
    v.install_snapshot(&b.build(&signer).unwrap()).unwrap();
    let mut best = f64::MAX;
    let mut ok = 0u64;
    for round in 0..5 {
        let t = std::time::Instant::now();
        for r in 0..40 {
            for k in &keys {
                ok += u64::from(
                    v.verify(k, 1 + round * 40 + r, Some(required))
                        .outcome
                        .is_accepted(),
                );
            }
        }
        best = best.min(t.elapsed().as_nanos() as f64 / (40 * n) as f64);
    }
    assert_eq!(ok, 200 * n as u64, "every key accepted");
    println!(
        "{scopes} scope(s), the last one required: {best:.1} ns per verify (best of 5 x 400 000)"
    );
}
