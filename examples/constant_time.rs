//! A dudect-style timing test of the verify path (Reparaz, Balasch,
//! Verbauwhede, "Dude, is my code constant time?", 2017): two classes of input
//! interleaved at random, Welch's t on the timings, over several percentile
//! crops. |t| < 4.5 means no leak detected at that sample size.
//!
//!   cargo run --release --example constant_time              # 10^6 measurements per pair
//!   cargo run --release --example constant_time -- 10000000  # the long run
//!
//! Pairs (each measurement times a batch of 8 verifies):
//! 1. a wrong *first* vs a wrong *last* secret character (checksums fixed up,
//!    so both reach the digest compare): the secret must not leak through
//!    how much of it matched;
//! 2. the same known ids with the digest wrong right after the id vs at its
//!    last byte (lookup level — no key string hashes to a chosen digest): the
//!    compare must not stop early; 2b. an unknown id vs a known id with a wrong
//!    digest: a lookup does the same work for both.
//! 3. (reported, not required) a right but revoked key vs an unknown key:
//!    different outcomes do different work; the outcome is what the verify
//!    returns, so this reveals nothing the caller is not told.
use std::hint::black_box;
/// A cycle counter: the ~25 ns clock of `Instant` is coarser than a batch of
/// lookups, which makes dudect's cropped tests meaningless.
#[cfg(target_arch = "x86_64")]
fn cycles() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64; it only reads the
    // time-stamp counter. (The core crate forbids unsafe; this is an example.)
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn cycles() -> u64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

use keygate::{
    ApiKey, Digest, Name, Prefix, RecordSpec, Signer, SnapshotBuilder, SnapshotView, Status,
    TrustSet, Verifier,
};

const T0: u64 = 1_767_225_600;
const BATCH: usize = 8;
const KEYS: usize = 128;

struct Welch {
    n: [f64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
}

impl Welch {
    fn new() -> Self {
        Self {
            n: [0.0; 2],
            mean: [0.0; 2],
            m2: [0.0; 2],
        }
    }
    fn push(&mut self, class: usize, x: f64) {
        self.n[class] += 1.0;
        let d = x - self.mean[class];
        self.mean[class] += d / self.n[class];
        self.m2[class] += d * (x - self.mean[class]);
    }
    fn t(&self) -> f64 {
        let var = |c: usize| self.m2[c] / (self.n[c] - 1.0);
        (self.mean[0] - self.mean[1]) / (var(0) / self.n[0] + var(1) / self.n[1]).sqrt()
    }
}

/// Measures `n` batches, class chosen at random per batch; returns the largest
/// |t| over dudect's crops (all samples, and below the 50..99th percentiles).
fn measure(n: usize, mut run: impl FnMut(usize)) -> (f64, f64) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut samples: Vec<(usize, f64)> = Vec::with_capacity(n);
    for _ in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let class = (rng & 1) as usize;
        let t = cycles();
        for _ in 0..BATCH {
            run(class);
        }
        samples.push((class, cycles().wrapping_sub(t) as f64 / BATCH as f64));
    }
    let mut sorted: Vec<f64> = samples.iter().map(|s| s.1).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mut worst = 0f64;
    let mut all_t = 0.0;
    for (i, p) in [1.0, 0.99, 0.95, 0.9, 0.75, 0.5].iter().enumerate() {
        let cut = sorted[((sorted.len() - 1) as f64 * p) as usize];
        let mut w = Welch::new();
        for (c, x) in samples.iter().filter(|s| s.1 <= cut) {
            w.push(*c, *x);
        }
        let t = w.t();
        if i == 0 {
            all_t = t;
        }
        if t.abs() > worst.abs() {
            worst = t;
        }
    }
    (all_t, worst)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("measurement count"));
    let signer = Signer::from_seed(&[3; 32]);
    let keyset = Name::new("ct").unwrap();
    let mut b = SnapshotBuilder::new(keyset, Prefix::new("acme_live").unwrap(), 1, T0)
        .valid_until(T0 + 86_400);
    // A small keyset, so every slot and pool stays in L1 and the classes
    // differ only in what they compute, not in where their data happens to
    // sit; every tenth key revoked.
    let secret_of = |i: u32| {
        let mut s = [7u8; 24];
        s[..4].copy_from_slice(&i.to_be_bytes());
        s[10..14].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        s
    };
    let keys: Vec<ApiKey> = (0..KEYS as u32)
        .map(|i| ApiKey::from_secret_bytes("acme_live", &secret_of(i)).unwrap())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let mut r = RecordSpec::active(k.digest(), "svc", &["read"]);
        if i % 10 == 0 {
            r.status = Status::Revoked;
        }
        b.push(r);
    }
    let snapshot = b.build(&signer).unwrap();
    let trust = keygate::build_bundle(&keyset, 1, T0, &[signer.trusted()], &[&signer]);
    let v = Verifier::new(&trust).unwrap();
    v.install_snapshot(&snapshot).unwrap();
    // Each class draws from a pool of inputs, as dudect does, so that where a
    // particular input lands in memory averages out.
    const POOL: usize = 64;

    // Pair 1: issued keys with their first (resp. last) secret byte changed;
    // the checksum is recomputed, so both reach the hash and the lookup.
    let flipped = |first: bool| -> Vec<String> {
        (1..=POOL as u32)
            .map(|i| {
                let mut s = secret_of(i);
                if first {
                    s[0] ^= 0x80;
                } else {
                    s[23] ^= 0x01;
                }
                ApiKey::from_secret_bytes("acme_live", &s)
                    .unwrap()
                    .expose_secret()
                    .to_string()
            })
            .collect()
    };
    let pair1 = [flipped(true), flipped(false)];
    let mut pick = 0usize;
    let (t1, w1) = measure(n, |c| {
        pick = (pick + 7) % POOL;
        black_box(
            v.verify(black_box(&pair1[c][pick]), T0, Some("read"))
                .outcome,
        );
    });

    // Pair 2: lookups of the same known ids with the first byte after the id
    // (16) vs the last byte (31) of the digest wrong: how much matched.
    let ts = TrustSet::from_chain(&trust).unwrap();
    let view = SnapshotView::new(&snapshot, &ts).unwrap();
    let wrong_at = |byte: usize| -> Vec<Digest> {
        keys[..POOL]
            .iter()
            .map(|k| {
                let mut d = k.digest();
                d.0[byte] ^= 1;
                d
            })
            .collect()
    };
    let pair2 = [wrong_at(16), wrong_at(31)];
    // Copy the input to the same stack slot first, so both classes' lookups
    // read it from one address (where each pool sits in memory is not what
    // this test is about).
    let (t2, w2) = measure(n, |c| {
        pick = (pick + 7) % POOL;
        let d: Digest = *black_box(&pair2[c][pick]);
        black_box(view.lookup(black_box(&d)).is_some());
    });

    // Pair 2b: unknown ids vs known ids with a wrong digest (the lookup does
    // the same work whether or not the id exists).
    let unknown: Vec<Digest> = (0..POOL as u32)
        .map(|i| Digest::of(&i.to_le_bytes()))
        .collect();
    let pair2b = [unknown, wrong_at(31)];
    let (t2b, w2b) = measure(n, |c| {
        pick = (pick + 7) % POOL;
        let d: Digest = *black_box(&pair2b[c][pick]);
        black_box(view.lookup(black_box(&d)).is_some());
    });

    // Pair 3 (reported only): right-but-revoked keys vs unknown keys.
    let revoked: Vec<String> = keys
        .iter()
        .step_by(10)
        .map(|k| k.expose_secret().to_string())
        .collect();
    let strangers: Vec<String> = (0..revoked.len() as u32)
        .map(|i| {
            ApiKey::from_secret_bytes("acme_live", &secret_of(1_000_000 + i))
                .unwrap()
                .expose_secret()
                .to_string()
        })
        .collect();
    let pair3 = [revoked, strangers];
    let m = pair3[0].len();
    let (t3, w3) = measure(n / 4, |c| {
        pick = (pick + 7) % m;
        black_box(
            v.verify(black_box(&pair3[c][pick]), T0, Some("read"))
                .outcome,
        );
    });

    println!("constant time, {n} measurements per pair (batches of {BATCH}, TSC cycles); |t| < 4.5 = no leak detected");
    println!("  1. wrong first vs wrong last secret char (verify)     t = {t1:+.2}, max over crops {w1:+.2}");
    println!("  2. digest wrong at byte 16 vs byte 31 (lookup)        t = {t2:+.2}, max over crops {w2:+.2}");
    println!("  2b. unknown id vs known id, wrong digest (lookup)     t = {t2b:+.2}, max over crops {w2b:+.2}");
    println!("  3. revoked right key vs unknown key (reported only)   t = {t3:+.2}, max over crops {w3:+.2}");
    let ok = w1.abs() < 4.5 && w2.abs() < 4.5 && w2b.abs() < 4.5;
    println!(
        "  {}",
        if ok {
            "PASS"
        } else {
            "FAIL: timing depends on the secret"
        }
    );
    std::process::exit(if ok { 0 } else { 1 });
}
