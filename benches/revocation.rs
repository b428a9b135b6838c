//! Revocation updates: encoded size against the information-theoretic bound,
//! build time and query time, with the peers measured in the same run:
//!
//! - keygate: the two-level XOR cascade (filter → exact bit), `RevocationView::contains`;
//! - a CRLite-style **Bloom filter cascade** (implemented here, standard Bloom
//!   levels, first-level rate |R|·√2/|U∖R|, then 1/2), exact on U as well;
//! - a **plain Bloom filter** with keygate's byte size: the false-positive rate
//!   (legitimate keys refused) it would have;
//! - a **sorted exact id list** (16 bytes per revoked id, binary search).
//!
//! `cargo bench --bench revocation` (set KEYGATE_BENCH_QUICK=1 for |U| = 10 000 only).

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use keygate::{build_update, Digest, KeyId, Name, RevocationView, Signer, TrustSet, UpdateSpec};

fn ids(n: usize, salt: u64) -> Vec<KeyId> {
    (0..n as u64)
        .map(|i| Digest::of(&[i.to_le_bytes(), salt.to_le_bytes()].concat()).key_id())
        .collect()
}

fn bound_bits(u: usize, r: usize) -> f64 {
    (0..r)
        .map(|i| ((u - i) as f64 / (r - i) as f64).log2())
        .sum()
}

fn mix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A standard Bloom filter over key ids (positions by double hashing on the
/// id's two halves, which are uniform already).
struct Bloom {
    bits: Vec<u64>,
    m: u64,
    k: u32,
    seed: u64,
}

impl Bloom {
    fn new(m_bits: u64, k: u32, seed: u64) -> Self {
        let m = m_bits.max(64);
        Self {
            bits: vec![0; m.div_ceil(64) as usize],
            m,
            k: k.max(1),
            seed,
        }
    }

    fn positions(&self, id: &KeyId) -> impl Iterator<Item = u64> + '_ {
        let x = id.to_u128();
        // Mixed with the level's seed: a bare XOR would keep ids that share
        // high bits colliding at every level.
        let h1 = mix(x as u64 ^ self.seed);
        let h2 = mix((x >> 64) as u64 ^ self.seed.rotate_left(32)) | 1;
        (0..u64::from(self.k)).map(move |i| {
            let h = h1.wrapping_add(i.wrapping_mul(h2));
            ((u128::from(h) * u128::from(self.m)) >> 64) as u64
        })
    }

    fn insert(&mut self, id: &KeyId) {
        let ps: Vec<u64> = self.positions(id).collect();
        for p in ps {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    fn contains(&self, id: &KeyId) -> bool {
        self.positions(id)
            .all(|p| self.bits[(p / 64) as usize] >> (p % 64) & 1 == 1)
    }
}

/// CRLite's construction: level i holds what level i-1 wrongly admits.
struct Cascade {
    levels: Vec<Bloom>,
}

impl Cascade {
    fn build(revoked: &[KeyId], valid: &[KeyId]) -> Self {
        let mut levels = Vec::new();
        let (mut include, mut exclude) = (revoked.to_vec(), valid.to_vec());
        let mut depth = 0u64;
        while !include.is_empty() {
            let rate = if depth == 0 {
                (include.len() as f64 * 2f64.sqrt() / exclude.len().max(1) as f64).min(0.5)
            } else {
                0.5
            };
            let k = (1.0 / rate).log2().round().max(1.0) as u32;
            let m =
                (include.len() as f64 * (1.0 / rate).log2() / std::f64::consts::LN_2).ceil() as u64;
            let mut b = Bloom::new(m, k, 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(depth + 1));
            for id in &include {
                b.insert(id);
            }
            let fps: Vec<KeyId> = exclude
                .iter()
                .filter(|id| b.contains(id))
                .copied()
                .collect();
            levels.push(b);
            exclude = include;
            include = fps;
            depth += 1;
        }
        Self { levels }
    }

    fn contains(&self, id: &KeyId) -> bool {
        for (i, l) in self.levels.iter().enumerate() {
            if !l.contains(id) {
                return i % 2 == 1;
            }
        }
        self.levels.len() % 2 == 1
    }

    fn bytes(&self) -> usize {
        self.levels.iter().map(|l| (l.m as usize).div_ceil(8)).sum()
    }
}

fn bench(c: &mut Criterion) {
    let signer = Signer::dangerous_from_seed(&[5; 32]);
    let keyset = Name::new("bench").unwrap();
    let trust = TrustSet::from_chain(&keygate::build_bundle(
        &keyset,
        1,
        0,
        &[signer.trusted()],
        &[&signer],
    ))
    .unwrap();
    let mut g = c.benchmark_group("revocation_query");
    let sizes: &[usize] = if std::env::var_os("KEYGATE_BENCH_QUICK").is_some() {
        &[10_000]
    } else {
        &[10_000, 1_000_000]
    };
    println!(
        "{:>9} {:>7} | {:>9} {:>8} {:>6} {:>9} | {:>9} {:>6} | {:>11} | {:>9}",
        "|U|",
        "|R|",
        "keygate B",
        "bound B",
        "ratio",
        "build ms",
        "cascade B",
        "ratio",
        "Bloom FP%",
        "sorted B"
    );
    for &u_n in sizes {
        let universe = ids(u_n, 1);
        for per_mille in [1usize, 10, 100] {
            let r_n = u_n * per_mille / 1000;
            let revoked: Vec<KeyId> = universe[..r_n].to_vec();
            let valid: Vec<KeyId> = universe[r_n..].to_vec();
            let spec = UpdateSpec {
                keyset,
                base_version: 1,
                sequence: 1,
                created_at: 0,
                valid_until: 0,
            };
            let t = Instant::now();
            let bytes = build_update(&spec, &universe, &revoked, &signer).unwrap();
            let build = t.elapsed();
            let view = RevocationView::new(&bytes, &trust).unwrap();
            let filter_bytes = view.header().filter_len();
            let bound = bound_bits(u_n, r_n) / 8.0;
            let cascade = Cascade::build(&revoked, &valid);
            // Exactness of both exact structures over all of U.
            let rs: HashSet<&KeyId> = revoked.iter().collect();
            assert!(universe
                .iter()
                .all(|id| view.contains(id) == rs.contains(id)));
            assert!(universe
                .iter()
                .all(|id| cascade.contains(id) == rs.contains(id)));
            // A plain Bloom filter with keygate's byte size.
            let m = filter_bytes as u64 * 8;
            let k = ((m as f64 / r_n as f64) * std::f64::consts::LN_2)
                .round()
                .max(1.0) as u32;
            let mut bloom = Bloom::new(m, k, 42);
            revoked.iter().for_each(|id| bloom.insert(id));
            let fp =
                valid.iter().filter(|id| bloom.contains(id)).count() as f64 / valid.len() as f64;
            let mut sorted: Vec<u128> = revoked.iter().map(|id| id.to_u128()).collect();
            sorted.sort_unstable();
            println!(
                "{:>9} {:>7} | {:>9} {:>8.0} {:>5.2}x {:>9.1} | {:>9} {:>5.2}x | {:>10.3}% | {:>9}",
                u_n,
                r_n,
                filter_bytes,
                bound,
                filter_bytes as f64 / bound,
                build.as_secs_f64() * 1e3,
                cascade.bytes(),
                cascade.bytes() as f64 / bound,
                fp * 100.0,
                r_n * 16
            );
            // Queries: ids of U in a fixed shuffled order (mostly valid keys, the common case).
            let probe: Vec<KeyId> = (0..4096).map(|i| universe[(i * 7919) % u_n]).collect();
            let label = format!("{u_n}/{r_n}");
            let mut i = 0;
            g.bench_with_input(BenchmarkId::new("keygate", &label), &(), |b, _| {
                b.iter(|| {
                    i = (i + 1) & 4095;
                    black_box(view.contains(black_box(&probe[i])))
                })
            });
            g.bench_with_input(BenchmarkId::new("bloom_cascade", &label), &(), |b, _| {
                b.iter(|| {
                    i = (i + 1) & 4095;
                    black_box(cascade.contains(black_box(&probe[i])))
                })
            });
            g.bench_with_input(BenchmarkId::new("sorted_list", &label), &(), |b, _| {
                b.iter(|| {
                    i = (i + 1) & 4095;
                    black_box(
                        sorted
                            .binary_search(&black_box(&probe[i]).to_u128())
                            .is_ok(),
                    )
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(1));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
