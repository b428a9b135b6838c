//! A fixed loop of verifies, for instruction counting:
//! `valgrind --tool=callgrind target/release/examples/verify_loop`.
use keygate::{ApiKey, Name, Prefix, RecordSpec, Signer, SnapshotBuilder, Verifier};

fn main() {
    let n = 10_000usize;
    let signer = Signer::from_seed(&[7; 32]);
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
            &["invoices:read"],
        ));
        keys.push(k.expose_secret().to_string());
    }
    let trust = keygate::build_bundle(&ks, 1, 0, &[signer.trusted()], &[&signer]);
    let v = Verifier::new(&trust).unwrap();
    v.install_snapshot(&b.build(&signer).unwrap()).unwrap();
    let mut ok = 0u64;
    for round in 0..200 {
        for k in &keys {
            ok += u64::from(
                v.verify(k, 1 + round, Some("invoices:read"))
                    .outcome
                    .is_accepted(),
            );
        }
    }
    println!("{ok} accepted");
}
