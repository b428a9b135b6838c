//! A dudect-style timing test of the verify path (Reparaz, Balasch,
//! Verbauwhede, "Dude, is my code constant time?", 2017): two classes of input
//! interleaved at random, Welch's t on the timings, over several percentile
//! crops. |t| < 4.5 means no leak detected at that sample size.
//!
//!   cargo run --release --example constant_time              # 10^6 measurements per pair
//!   cargo run --release --example constant_time -- 10000000  # the long run
//!
//! Pairs (each measurement times a batch of 8 verifies or lookups):
//! 1. one secret byte changed in an issued key vs in a never-issued key of the
//!    same shape (checksum fixed up, so both reach the digest compare): a
//!    verify must not tell a near miss of a real key from any other guess;
//!    (1b, reported only) the changed byte near the start vs near the end of
//!    an issued key's secret — see the pair's comment for why its classes
//!    differ in more than the secret;
//! 2. known ids with the digest wrong right after the id (byte 16) vs at its
//!    last byte (31), at lookup level (no key string hashes to a chosen
//!    digest): the compare must not stop early; and (2b) an unknown id vs a
//!    known id with a wrong digest: a lookup does the same work for both;
//! 3. (reported, not required) a right but revoked key vs an unknown key:
//!    different outcomes do different work; the outcome is what the verify
//!    returns, so this reveals nothing the caller is not told.
//!
//! The harness keeps everything that is not under test out of the classes,
//! because the cropped tests see differences of a fraction of a cycle. Every
//! measurement draws a fresh input for its class (a random issued key and a
//! random position in the class's region, for instance), so no small pool of
//! inputs with its own fixed costs (which slot, which cache set, which table
//! entries a checksum touches) stands for a class; inputs are written, in the
//! order of the measurements, into 64-byte-aligned lines of one buffer, so
//! where an input sits depends on when it is measured, not on its class; and in
//! pair 2b each unknown id lands on the very slot of its known counterpart
//! (docs/format.md's lookup formula), so both classes read the same record.
//! With fixed pools of 64 inputs per class in separate `Vec`s the cropped |t|
//! reached 55–273, with signs that flipped from run to run on the same
//! inputs; each of these steps cut it.
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

/// One input per cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line<T>(T);

/// A key string in its own line.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct KeyLine {
    len: u8,
    bytes: [u8; 63],
}

impl KeyLine {
    fn new(s: &str) -> Self {
        let mut bytes = [0; 63];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Self {
            len: s.len() as u8,
            bytes,
        }
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap()
    }
}

/// The slot `id` lands on (docs/format.md, "Lookup: one record line").
fn slot_of(snapshot: &[u8], h: &keygate::SnapshotHeader, id: u128) -> usize {
    let scale = |x: u64, n: u32| ((u128::from(x) * u128::from(n)) >> 64) as usize;
    let fmix64 = |mut k: u64| {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    };
    let bucket = scale((id >> 64) as u64, h.bucket_count);
    let at = 256 + 64 * h.slot_count as usize + 2 * bucket;
    let pilot = u16::from_le_bytes([snapshot[at], snapshot[at + 1]]);
    let k = fmix64(id as u64 ^ h.hash_seed);
    let x = (k ^ u64::from(pilot).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xd6e8_feb8_6659_fd93);
    scale(x, h.slot_count)
}
const BATCH: usize = 8;
const KEYS: usize = 2048;

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

/// Measurements per chunk: the classes and inputs of a chunk are prepared
/// before any of it is timed.
const CHUNK: usize = 4096;

/// xorshift64: the harness's randomness (classes, inputs).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// 24 secret bytes from the harness's randomness.
fn random_secret(rng: &mut Rng) -> [u8; 24] {
    let mut s = [0u8; 24];
    for c in s.chunks_exact_mut(8) {
        c.copy_from_slice(&rng.next().to_le_bytes());
    }
    s
}

/// The key string of `secret`, in an input line.
fn key_line(secret: &[u8; 24]) -> KeyLine {
    KeyLine::new(
        ApiKey::from_secret_bytes("acme_live", secret)
            .unwrap()
            .expose_secret(),
    )
}

/// Times `n` measurements of BATCH calls each. Per chunk: the classes are
/// drawn at random, `prepare(rng, class, slot)` writes each measurement's
/// inputs into the next line of the buffer, then every measurement is timed
/// with `run` on its inputs. The first chunk warms up (caches, branch
/// predictors, clock speed) and is not counted. Returns (t over all samples, the largest |t| over
/// dudect's crops: all samples and below the 99..50th percentiles).
fn measure<T: Copy>(
    n: usize,
    seed: u64,
    init: T,
    mut prepare: impl FnMut(&mut Rng, usize, &mut T),
    mut run: impl FnMut(&T),
) -> (f64, f64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xd1b5_4a32_d192_ed03));
    let mut inputs = vec![[init; BATCH]; CHUNK];
    let mut classes = vec![0usize; CHUNK];
    let mut samples: Vec<(usize, f64)> = Vec::with_capacity(n + CHUNK);
    while samples.len() < n + CHUNK {
        let m = CHUNK.min(n + CHUNK - samples.len());
        for (class, batch) in classes.iter_mut().zip(&mut inputs).take(m) {
            *class = (rng.next() >> 40 & 1) as usize;
            for input in batch.iter_mut() {
                prepare(&mut rng, *class, input);
            }
        }
        for (class, batch) in classes.iter().zip(&inputs).take(m) {
            let t = cycles();
            for input in batch {
                run(input);
            }
            samples.push((*class, cycles().wrapping_sub(t) as f64 / BATCH as f64));
        }
    }
    samples.drain(..CHUNK);
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

/// Runs a pair, and once more with fresh inputs (another seed) if its
/// largest |t| reached 4.5: a leak shows again with the same sign, a
/// scheduling hiccup on a shared VM does not.
fn confirmed(mut run: impl FnMut(u64) -> (f64, f64)) -> Vec<(f64, f64)> {
    let first = run(0);
    if first.1.abs() < 4.5 {
        return vec![first];
    }
    vec![first, run(1)]
}

/// A pair fails only when both runs reach |t| ≥ 4.5 in the same direction.
fn passes(runs: &[(f64, f64)]) -> bool {
    match runs {
        [(_, w)] => w.abs() < 4.5,
        [(_, a), (_, b)] => b.abs() < 4.5 || a.signum() != b.signum(),
        _ => false,
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("measurement count"));
    let signer = Signer::dangerous_from_seed(&[3; 32]);
    let keyset = Name::new("ct").unwrap();
    let mut b = SnapshotBuilder::new(keyset, Prefix::new("acme_live").unwrap(), 1, T0)
        .valid_until(T0 + 86_400);
    // 2048 keys, every tenth revoked: a slot table of 128 KB, in L2. With
    // 128 keys (all in L1) pair 1 passed 10^6 but its crops reached |t| 11–15
    // at 10^7 in some processes and not others: each class then stood on
    // only 128 strings, and how those few happened to fall against this
    // process's memory layout decided a bias; 2048 per class average it out.
    // Random secrets: the first KEYS are issued, the next KEYS never are
    // (pair 1's decoys), so the two sets have no systematic difference (an
    // earlier i-in-the-secret pattern gave every decoy a high bit the issued
    // keys lacked, and so different leading characters).
    let mut srng = Rng(0x5eed_0fc0_ffee);
    let secrets: Vec<[u8; 24]> = (0..2 * KEYS).map(|_| random_secret(&mut srng)).collect();
    let keys: Vec<ApiKey> = secrets[..KEYS]
        .iter()
        .map(|s| ApiKey::from_secret_bytes("acme_live", s).unwrap())
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
    // Every full-verify pair times the same call.
    let verify = |k: &KeyLine| {
        black_box(v.verify(black_box(k.as_str()), T0, Some("read")).outcome);
    };
    // Secret `base` with one bit flipped in a random byte of `bytes`.
    let near = |rng: &mut Rng, base: usize, bytes: std::ops::Range<usize>| {
        let mut s = secrets[base];
        s[bytes.start + rng.below(bytes.len())] ^= 1 << rng.below(8);
        key_line(&s)
    };

    // Pair 1: one secret byte changed, at a random place, in an issued key
    // (class 0) or in a key of the same shape that was never issued (class
    // 1); the checksum is recomputed, so both reach the hash and the lookup.
    // Both classes present strings of one structure, so the only difference
    // is whether the guess is one byte away from a real key.
    let r1 = confirmed(|seed| {
        measure(
            n,
            seed,
            KeyLine::new(""),
            |rng, class, input| {
                let i = rng.below(KEYS);
                *input = near(rng, if class == 0 { i } else { KEYS + i }, 0..24);
            },
            verify,
        )
    });

    // Pair 1b (reported only): an issued key with the changed byte among the
    // first four (class 0) or the last four (class 1) of its secret. Its
    // classes present differently structured strings: class 1 strings share
    // their first ~38 characters with an issued key's, and so with each
    // other; class 0 strings differ from the start. With the earlier harness
    // (128 keys whose secrets embedded their index) that showed at 10^6; with
    // this one it passes 10^7 too (docs/security.md), but what it compares is
    // the presented strings, not the stored secret, so it is not gated.
    let (t1b, w1b) = measure(
        n / 4,
        0,
        KeyLine::new(""),
        |rng, class, input| {
            let i = rng.below(KEYS);
            *input = near(rng, i, if class == 0 { 0..4 } else { 20..24 });
        },
        verify,
    );

    // Pair 2: a known id with its digest wrong right after the id (byte 16)
    // vs at its last byte (31): how much matched.
    let ts = TrustSet::from_chain(&trust).unwrap();
    let view = SnapshotView::new(&snapshot, &ts).unwrap();
    let digests: Vec<Digest> = keys.iter().map(|k| k.digest()).collect();
    let r2 = confirmed(|seed| {
        measure(
            n,
            seed,
            Line(Digest([0; 32])),
            |rng, class, input| {
                let mut d = digests[rng.below(KEYS)];
                d.0[if class == 0 { 16 } else { 31 }] ^= 1 << rng.below(8);
                *input = Line(d);
            },
            |d| {
                black_box(view.lookup(black_box(&d.0)).is_some());
            },
        )
    });

    // Pair 2b: an unknown id vs a known id with a wrong digest (the lookup
    // does the same work whether or not the id exists). Each key gets an
    // unknown id in its bucket that lands on its slot.
    let h = *view.header();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let unknown: Vec<Digest> = digests
        .iter()
        .map(|known| {
            let id = known.key_id().to_u128();
            let want = slot_of(&snapshot, &h, id);
            // The formula of docs/format.md finds the key's own record.
            let at = 256 + 64 * want;
            assert_eq!(
                snapshot[at..at + 16],
                known.0[..16],
                "docs/format.md slot formula"
            );
            loop {
                let other = (id >> 64) << 64 | u128::from(rng.next());
                if other != id && slot_of(&snapshot, &h, other) == want {
                    let mut d = *known;
                    d.0[..16].copy_from_slice(&other.to_be_bytes());
                    assert!(view.lookup(&d).is_none());
                    break d;
                }
            }
        })
        .collect();
    let r2b = confirmed(|seed| {
        measure(
            n,
            seed,
            Line(Digest([0; 32])),
            |rng, class, input| {
                let k = rng.below(KEYS);
                let mut d = if class == 0 { unknown[k] } else { digests[k] };
                d.0[31] ^= 1 << rng.below(8);
                *input = Line(d);
            },
            |d| {
                black_box(view.lookup(black_box(&d.0)).is_some());
            },
        )
    });

    // Pair 3 (reported only): a right but revoked key vs a fresh unknown key.
    let revoked: Vec<KeyLine> = keys
        .iter()
        .step_by(10)
        .map(|k| KeyLine::new(k.expose_secret()))
        .collect();
    let (t3, w3) = measure(
        n / 4,
        0,
        KeyLine::new(""),
        |rng, class, input| {
            *input = if class == 0 {
                revoked[rng.below(revoked.len())]
            } else {
                key_line(&random_secret(rng))
            };
        },
        verify,
    );

    println!("constant time, {n} measurements per pair (batches of {BATCH}, TSC cycles); |t| < 4.5 = no leak detected");
    let mut ok = true;
    for (name, runs) in [
        ("1. one byte off an issued vs a never-issued key   ", &r1),
        ("2. digest wrong at byte 16 vs byte 31 (lookup)    ", &r2),
        ("2b. unknown id vs known id, wrong digest (lookup) ", &r2b),
    ] {
        for (i, (t, w)) in runs.iter().enumerate() {
            let label = if i == 0 {
                name
            } else {
                "   again, fresh inputs                             "
            };
            println!("  {label}    t = {t:+.2}, max over crops {w:+.2}");
        }
        ok &= passes(runs);
    }
    println!("  1b. wrong first vs last secret byte (reported only)   t = {t1b:+.2}, max over crops {w1b:+.2}");
    println!("  3. revoked right key vs unknown key (reported only)   t = {t3:+.2}, max over crops {w3:+.2}");
    println!(
        "  {}",
        if ok {
            "PASS"
        } else {
            "FAIL: timing depends on the secret (reproduced with fresh inputs)"
        }
    );
    std::process::exit(if ok { 0 } else { 1 });
}
