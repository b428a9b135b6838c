//! The native side of the WASM latency budget: the same artifacts, keys and
//! loop as bench/verify.js, through the Rust `Verifier`.
//! `cargo run --release -p keygate-wasm --example native_verify -- DIR KEYS_FILE`
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let keys: Vec<String> = std::fs::read_to_string(args.next().expect("KEYS_FILE"))
        .expect("keys file")
        .lines()
        .map(String::from)
        .collect();
    let read = |n: &str| std::fs::read(dir.join(n)).expect("artifact");
    let v = keygate::Verifier::new(&read("trust.kgt")).expect("trust");
    v.install_snapshot(&read("snapshot.kgs")).expect("snapshot");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = keys.len();
    let iters = 400_000usize;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut j = 0usize;
        let mut ok = 0usize;
        for _ in 0..iters {
            let d = v.verify(&keys[j], now, Some("bench:read"));
            ok += usize::from(d.outcome.is_accepted());
            j = (j + 7919 + usize::from(ok == usize::MAX)) % n;
        }
        assert_eq!(ok, iters);
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    println!("{best:.1}");
}
