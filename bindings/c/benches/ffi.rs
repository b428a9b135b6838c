//! The C API's verify against the Rust verify, in the same run (issue 5:
//! FFI ≤ 1.1× Rust at 1M keys). Both measured as latency (the next key depends
//! on the previous answer), alternating in rounds; prints the median ratio.
//! `cargo bench -p keygate-c --bench ffi` (KEYGATE_BENCH_QUICK=1: 10 000 keys).

use std::hint::black_box;
use std::time::Instant;

use keygate_c::{
    keygate_outcome, keygate_verdict, keygate_verifier, keygate_verifier_free, keygate_verifier_new,
};
use keygate_core::{ApiKey, Name, Outcome, Prefix, RecordSpec, Signer, SnapshotBuilder, Verifier};

const T0: u64 = 1_767_225_600;

fn main() {
    let n: usize = if std::env::var_os("KEYGATE_BENCH_QUICK").is_some() {
        10_000
    } else {
        1_000_000
    };
    let signer = Signer::dangerous_from_seed(&[7; 32]);
    let keyset = Name::new("bench").unwrap();
    let mut b = SnapshotBuilder::new(keyset, Prefix::new("acme_live").unwrap(), 1, T0)
        .valid_until(T0 + 86_400);
    let mut keys = Vec::with_capacity(n * 64);
    for i in 0..n {
        let mut s = [0u8; 24];
        s[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        let k = ApiKey::from_secret_bytes("acme_live", &s).unwrap();
        b.push(RecordSpec::active(
            k.digest(),
            &format!("service-{}", i / 10),
            &["invoices:read"],
        ));
        let mut line = [0u8; 64];
        line[..49].copy_from_slice(k.expose_secret().as_bytes());
        keys.extend_from_slice(&line);
    }
    let snapshot = b.build(&signer).unwrap();
    let trust = keygate_core::build_bundle(&keyset, 1, T0, &[signer.trusted()], &[&signer]);
    let rust = Verifier::new(&trust).unwrap();
    rust.install_snapshot(&snapshot).unwrap();
    let mut c: *mut keygate_verifier = std::ptr::null_mut();
    // SAFETY: valid buffers and out-pointer; the handle is freed below.
    unsafe {
        assert_eq!(
            keygate_verifier_new(trust.as_ptr(), trust.len(), &mut c) as u32,
            0
        );
        assert_eq!(
            keygate_c::keygate_verifier_load_snapshot(c, snapshot.as_ptr(), snapshot.len()) as u32,
            0
        );
    }
    let key = |i: usize| &keys[i * 64..i * 64 + 49];
    let scope = b"invoices:read";
    let step_rust = |i: usize| {
        let k = std::str::from_utf8(black_box(key(i))).unwrap_or("");
        let v = rust.verify(k, T0 + 1, Some("invoices:read"));
        (i + 1 + usize::from(v.outcome != Outcome::Valid)) % n
    };
    let step_c = |i: usize| {
        let mut out = std::mem::MaybeUninit::<keygate_verdict>::uninit();
        let k = black_box(key(i));
        // SAFETY: live handle, valid buffers, writable out.
        let r = unsafe {
            keygate_c::keygate_verifier_verify(
                c,
                k.as_ptr().cast(),
                k.len(),
                scope.as_ptr().cast(),
                scope.len(),
                T0 + 1,
                out.as_mut_ptr(),
            )
        };
        // SAFETY: written on OK, checked first.
        let ok =
            r as u32 == 0 && unsafe { out.assume_init_ref() }.outcome == keygate_outcome::Valid;
        (i + 1 + usize::from(!ok)) % n
    };
    let time = |f: &dyn Fn(usize) -> usize, start: usize| {
        let t = Instant::now();
        let mut i = start;
        for _ in 0..50_000 {
            i = f(i);
        }
        black_box(i);
        t.elapsed().as_nanos() as f64 / 50_000.0
    };
    let mut ratios = Vec::new();
    let mut pairs = Vec::new();
    for round in 0..31 {
        let start = round * 7919 % n;
        let r = time(&step_rust, start);
        let cc = time(&step_c, start);
        ratios.push(cc / r);
        pairs.push((r, cc));
    }
    ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
    pairs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let (r, cc) = pairs[pairs.len() / 2];
    println!(
        "ffi {n} keys (31 alternating rounds): Rust verify {r:.0} ns, C verify {cc:.0} ns; C/Rust {:.3}x (median)",
        ratios[ratios.len() / 2]
    );
    // SAFETY: the handle from keygate_verifier_new, freed once.
    unsafe { keygate_verifier_free(c) };
}
