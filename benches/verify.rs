//! Verify hot path against the floor and a naive peer, in the same run.
//!
//! - keygate: `Verifier::verify` (prefix and length, SHA-256, one-line
//!   lookup, constant-time compare, scope bit, verdict with principal copy),
//!   without and with a 1%-revoked revocation update applied.
//! - floor: CRC32 of the key + one-block SHA-256 + one random 64-byte read in a
//!   table of the same byte size + a 32-byte compare: the least any design can do.
//! - naive: `HashMap<String, Record>` keyed by hex SHA-256, then `==`.
//!
//! Every variant measures *latency*: the next key's index depends on the
//! previous answer and an `lfence` follows every step (see [`fenced`]), so
//! no verify overlaps the next. That is the cost a gateway sees per request;
//! a tight independent loop would instead reward the shortest code with
//! memory-level parallelism no gateway has. The `paired` line subtracts what
//! the loop and fence cost alone.
//!
//! Sizes: 10 000 and 1 000 000 keys; KEYGATE_BENCH_10M=1 adds 10 000 000,
//! KEYGATE_BENCH_SIZES=10000,... picks sizes. Also prints install time for the
//! largest size and 2-thread scaling while a third thread installs snapshots
//! 10×/s (and without it).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use keygate::{
    build_update, build_update_with, ApiKey, Name, Outcome, Prefix, RecordSpec, Signer,
    SnapshotBuilder, Status, UpdateSpec, Verifier,
};
use sha2::{Digest as _, Sha256};

const T0: u64 = 1_767_225_600;

/// Presented keys, stored inline one per 64-byte line in shuffled order and
/// read sequentially: like a key in a request buffer, reading it is a cache
/// hit, so what differs between contenders is their own memory traffic.
struct Keys {
    buf: Vec<u8>,
    len: Vec<u8>,
}

impl Keys {
    fn get(&self, i: usize) -> &str {
        std::str::from_utf8(&self.buf[i * 64..i * 64 + usize::from(self.len[i])]).unwrap()
    }

    fn len(&self) -> usize {
        self.len.len()
    }

    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

struct Fixture {
    keys: Keys,
    snapshot: Vec<u8>,
    /// An update revoking 1% of the snapshot's keys.
    revocations: Vec<u8>,
    /// The same revocations and 10 000 records (issue 18): 5 000 of the
    /// snapshot's keys changed (deprecated), 5 000 keys added.
    update_records: Vec<u8>,
    trust: Vec<u8>,
}

fn fixture(n: usize) -> Fixture {
    let signer = Signer::dangerous_from_seed(&[7; 32]);
    let keyset = Name::new("bench").unwrap();
    let mut b = SnapshotBuilder::new(keyset, Prefix::new("acme_live").unwrap(), 1, T0)
        .valid_until(T0 + 86_400);
    let mut keys = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    // Ten keys per principal by default (a customer with several services and
    // environments); docs/PERFORMANCE.md shows the cost when each key has its own.
    let per_principal: usize = std::env::var("KEYGATE_BENCH_KEYS_PER_PRINCIPAL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let principals: Vec<String> = (0..n.div_ceil(per_principal))
        .map(|i| format!("service-{i}"))
        .collect();
    for i in 0..n {
        let mut s = [0u8; 24];
        s[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        s[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        let k = ApiKey::from_secret_bytes("acme_live", &s).unwrap();
        b.push(RecordSpec::active(
            k.digest(),
            &principals[i / per_principal],
            &["invoices:read"],
        ));
        ids.push(k.digest().key_id());
        keys.push(k.expose_secret().to_string());
    }
    // Present keys in a shuffled order so record reads are random.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..keys.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut buf = vec![0u8; keys.len() * 64];
    for (i, k) in keys.iter().enumerate() {
        buf[i * 64..i * 64 + k.len()].copy_from_slice(k.as_bytes());
    }
    let keys = Keys {
        len: keys.iter().map(|k| k.len() as u8).collect(),
        buf,
    };
    let snapshot = b.build(&signer).unwrap();
    let trust = keygate::build_bundle(&keyset, 1, T0, &[signer.trusted()], &[&signer]);
    // A gateway normally has a revocation update applied: 1% of keys revoked.
    let revoked: Vec<_> = ids.iter().step_by(100).copied().collect();
    let spec = UpdateSpec {
        keyset,
        base_version: 1,
        sequence: 1,
        created_at: T0,
        valid_until: T0 + 86_400,
    };
    let revocations = build_update(&spec, &ids, &revoked, &signer).unwrap();
    let changed = (0..n.min(5_000)).map(|i| {
        let mut r = RecordSpec::active(
            keygate::Digest(ids_digest(i)),
            &principals[i / per_principal],
            &["invoices:read"],
        );
        r.status = Status::Deprecated;
        r.deprecated_at = Some(T0);
        r.sunset_at = Some(T0 + 86_400);
        r
    });
    let added = (0..5_000u64).map(|i| {
        let mut s = [0xa5u8; 24];
        s[..8].copy_from_slice(&i.to_le_bytes());
        let k = ApiKey::from_secret_bytes("acme_live", &s).unwrap();
        RecordSpec::active(k.digest(), "added-later", &["invoices:read"])
    });
    let update_records = build_update_with(
        &UpdateSpec {
            sequence: 2,
            ..spec
        },
        &ids,
        &revoked,
        changed.chain(added).collect(),
        &signer,
    )
    .unwrap();
    println!(
        "snapshot {n} keys: {:.1} MB ({:.1} B/key, slot table at 99% load)",
        snapshot.len() as f64 / 1e6,
        snapshot.len() as f64 / n as f64
    );
    Fixture {
        keys,
        snapshot,
        revocations,
        update_records,
        trust,
    }
}

/// Key `i`'s digest, as the fixture made it (secret from `i`).
fn ids_digest(i: usize) -> [u8; 32] {
    let mut s = [0u8; 24];
    s[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    s[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    ApiKey::from_secret_bytes("acme_live", &s)
        .unwrap()
        .digest()
        .0
}

#[derive(Clone)]
#[allow(dead_code)]
struct NaiveRecord {
    principal: String,
    scopes: Vec<String>,
    expires_at: Option<u64>,
}

/// Lower-case hex without per-byte formatting, so the peer is not slowed by `format!`.
fn hex(d: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        s.push(H[usize::from(b >> 4)] as char);
        s.push(H[usize::from(b & 15)] as char);
    }
    s
}

#[repr(align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

fn sizes() -> Vec<usize> {
    // KEYGATE_BENCH_SIZES=10000 (comma-separated) measures only those sizes.
    if let Ok(s) = std::env::var("KEYGATE_BENCH_SIZES") {
        return s
            .split(',')
            .map(|n| n.trim().parse().expect("KEYGATE_BENCH_SIZES: numbers"))
            .collect();
    }
    let mut v = vec![10_000, 1_000_000];
    if std::env::var_os("KEYGATE_BENCH_10M").is_some() {
        v.push(10_000_000);
    }
    v
}

/// Runs one step, then waits for it to finish before the next may start.
///
/// The next index depends on each answer, but an answer reached through
/// predicted branches (keygate's and the naive peer's outcomes are) lets the
/// CPU start the next verify speculatively and overlap the two, while the
/// floor's branch-free compare cannot: without the fence the contenders are
/// not measured alike. `lfence` lets no later instruction start before every
/// earlier one has completed, so every contender is measured as latency.
#[inline(always)]
fn fenced(f: &dyn Fn(usize) -> usize, i: usize) -> usize {
    let next = f(i);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: lfence has no memory effects; SSE2 is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_lfence()
    };
    next
}

/// One verify step of each contender: takes the key index, returns the next
/// one, which depends on the answer (so steps cannot overlap).
struct Contenders<'a> {
    fx: &'a Fixture,
    verifier: Verifier,
    /// The same snapshot with the revocation update applied.
    with_revocations: Verifier,
    /// The same snapshot with the update of 10 000 records applied.
    with_records: Verifier,
    table: Vec<Line>,
    naive: HashMap<String, NaiveRecord>,
}

impl Contenders<'_> {
    fn keygate(&self, i: usize) -> usize {
        Self::verify_step(&self.verifier, self.fx, i)
    }

    fn keygate_revocations(&self, i: usize) -> usize {
        Self::verify_step(&self.with_revocations, self.fx, i)
    }

    fn keygate_records(&self, i: usize) -> usize {
        Self::verify_step(&self.with_records, self.fx, i)
    }

    fn verify_step(v: &Verifier, fx: &Fixture, i: usize) -> usize {
        let d = v.verify(black_box(fx.keys.get(i)), T0 + 1, Some("invoices:read"));
        // Always 0, but only known after the verify: a data dependency.
        let dep =
            (d.snapshot_version >> 40) as usize + usize::from(d.outcome == Outcome::Malformed);
        (i + 1 + dep) % fx.keys.len()
    }

    /// No work: the loop and fence overhead every step carries.
    fn empty(&self, i: usize) -> usize {
        (black_box(i) + 1) % self.fx.keys.len()
    }

    fn floor(&self, i: usize) -> usize {
        let k = black_box(self.fx.keys.get(i).as_bytes());
        let crc = crc32fast::hash(k);
        // One-block SHA-256, the same fast path keygate uses.
        let d = keygate::Digest::of(k).0;
        let hi = u64::from_be_bytes(d[..8].try_into().unwrap());
        let slot = ((u128::from(hi) * self.table.len() as u128) >> 64) as usize;
        let eq = self.table[slot].0[..32] == d[..];
        (i + 1 + usize::from(eq) + usize::from(crc == 1)) % self.fx.keys.len()
    }

    fn naive(&self, i: usize) -> usize {
        let d = hex(&Sha256::digest(black_box(self.fx.keys.get(i).as_bytes())));
        let ok = self
            .naive
            .get(&d)
            .is_some_and(|r| r.scopes.iter().any(|s| s == "invoices:read"));
        (i + 1 + usize::from(!ok)) % self.fx.keys.len()
    }
}

fn contenders(fx: &Fixture) -> Contenders<'_> {
    let verifier = Verifier::new(&fx.trust).unwrap();
    verifier.install_snapshot(&fx.snapshot).unwrap();
    let with_revocations = Verifier::new(&fx.trust).unwrap();
    with_revocations.install_snapshot(&fx.snapshot).unwrap();
    with_revocations
        .install_revocations(&fx.revocations)
        .unwrap();
    let with_records = Verifier::new(&fx.trust).unwrap();
    with_records.install_snapshot(&fx.snapshot).unwrap();
    let t = Instant::now();
    with_records
        .install_revocations(&fx.update_records)
        .unwrap();
    println!(
        "install of an update with 10 000 records ({:.0} kB) and 1% revoked: {:.2} ms",
        fx.update_records.len() as f64 / 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
    // The floor's table has the byte size of keygate's slot table.
    let table: Vec<Line> = (0..fx.snapshot.len() / 64)
        .map(|i| Line([i as u8; 64]))
        .collect();
    let naive = fx
        .keys
        .iter()
        .enumerate()
        .map(|(j, k)| {
            let r = NaiveRecord {
                principal: format!("service-{}", j / 10),
                scopes: vec!["invoices:read".into()],
                expires_at: None,
            };
            (hex(&Sha256::digest(k.as_bytes())), r)
        })
        .collect();
    Contenders {
        fx,
        verifier,
        with_revocations,
        with_records,
        table,
        naive,
    }
}

/// Ratios measured in alternating rounds (keygate, floor, naive, keygate, ...),
/// so a machine that speeds up or slows down mid-run shifts all three alike.
/// Prints the median per-round ratio. Each contender is warmed up before it
/// is timed, as criterion does.
fn paired_ratios(c: &Contenders<'_>, n: usize) {
    const STEPS: usize = 20_000;
    let time = |f: &dyn Fn(usize) -> usize, start: usize| {
        // Untimed warm-up: the previous contender's tables evicted this one's
        // from cache, and a gateway verifies with its own tables warm.
        let mut i = start;
        for _ in 0..STEPS / 2 {
            i = fenced(f, i);
        }
        let t = Instant::now();
        for _ in 0..STEPS {
            i = fenced(f, i);
        }
        black_box(i);
        t.elapsed().as_nanos() as f64 / STEPS as f64
    };
    let (mut vs_floor, mut vs_naive, mut rev_vs_floor, mut ns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut records_vs_rev = Vec::new();
    for round in 0..41 {
        let start = round * 7919 % c.fx.keys.len();
        // What the loop and the fence cost alone, subtracted from each.
        let e = time(&|i| c.empty(i), start);
        let k = time(&|i| c.keygate(i), start) - e;
        let f = time(&|i| c.floor(i), start) - e;
        let nv = time(&|i| c.naive(i), start) - e;
        let kr = time(&|i| c.keygate_revocations(i), start) - e;
        let kw = time(&|i| c.keygate_records(i), start) - e;
        records_vs_rev.push(kw / kr);
        vs_floor.push(k / f);
        vs_naive.push(nv / k);
        rev_vs_floor.push(kr / f);
        ns.push((k, f, nv, e, kr));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    ns.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let (k, f, nv, e, kr) = ns[ns.len() / 2];
    println!(
        "paired {n} keys (41 alternating rounds, loop+fence {e:.0} ns subtracted): keygate {k:.0} ns, \
         floor {f:.0} ns, naive {nv:.0} ns; keygate/floor {:.2}x (median), naive/keygate {:.2}x (median); \
         with a 1% revocation update applied {kr:.0} ns, {:.2}x floor; \
         with an update of 10 000 records too {:.3}x the revocation-only update (median)",
        median(&mut vs_floor),
        median(&mut vs_naive),
        median(&mut rev_vs_floor),
        median(&mut records_vs_rev),
    );
}

fn bench_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    for n in sizes() {
        let fx = fixture(n);
        let ct = contenders(&fx);
        paired_ratios(&ct, n);
        for (name, f) in [
            ("keygate", &(|i| ct.keygate(i)) as &dyn Fn(usize) -> usize),
            ("keygate_1pct_revoked", &|i| ct.keygate_revocations(i)),
            ("floor", &|i| ct.floor(i)),
            ("naive_hashmap", &|i| ct.naive(i)),
            ("loop_and_fence_only", &|i| ct.empty(i)),
        ] {
            let mut i = 0usize;
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| i = fenced(f, i))
            });
        }
        drop(ct);
        if n == *sizes().last().unwrap() {
            install_and_scaling(&fx, n);
        }
    }
    g.finish();
}

/// Install time and multi-thread scaling: printed, not criterion-timed, since
/// they are whole-system figures.
fn install_and_scaling(fx: &Fixture, n: usize) {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let v = Verifier::new(&fx.trust).unwrap();
        v.install_snapshot(&fx.snapshot).unwrap();
        best = best.min(t.elapsed());
        drop(v);
    }
    println!(
        "install: {n} keys, {:.1} MB snapshot, signature check + validation + install {:.1} ms (best of 5)",
        fx.snapshot.len() as f64 / 1e6,
        best.as_secs_f64() * 1e3
    );

    let v = Verifier::new(&fx.trust).unwrap();
    v.install_snapshot(&fx.snapshot).unwrap();
    let run = |threads: usize, install: bool| -> f64 {
        let stop = AtomicBool::new(false);
        let total = AtomicU64::new(0);
        let dur = Duration::from_secs(3);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (v, stop, total, keys) = (&v, &stop, &total, &fx.keys);
                s.spawn(move || {
                    let mut i = t * 7919;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            i = (i + 1) % keys.len();
                            black_box(v.verify(keys.get(i), T0 + 1, Some("invoices:read")).outcome);
                        }
                        n += 256;
                    }
                    total.fetch_add(n, Ordering::Relaxed);
                });
            }
            // The installer: the same snapshot 10×/s (a full check and swap each time).
            let t0 = Instant::now();
            while t0.elapsed() < dur {
                if install {
                    let _ = v.install_snapshot(&fx.snapshot);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::Relaxed);
        });
        total.load(Ordering::Relaxed) as f64 / dur.as_secs_f64()
    };
    let one = run(1, true);
    let two = run(2, true);
    // The same without the installer: what the cores give when nothing else runs.
    let quiet = run(2, false) / run(1, false);
    println!(
        "scaling: {n} keys, installer at 10/s: 1 thread {:.2} M/s, 2 threads {:.2} M/s, ratio {:.2}x \
         (no installer: {quiet:.2}x)",
        one / 1e6,
        two / 1e6,
        two / one
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_verify
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
