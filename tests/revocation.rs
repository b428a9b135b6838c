//! Revocation updates: exactness of the cascade and cumulative semantics.

mod common;

use common::*;
use keygate::{Artifact, Error, Installed, KeyId, Outcome, RevocationView, Verifier};
use proptest::prelude::*;

fn ids(n: usize, salt: u64) -> Vec<KeyId> {
    // Uniform ids, as SHA-256 gives them.
    (0..n as u64)
        .map(|i| keygate::Digest::of(&[i.to_le_bytes(), salt.to_le_bytes()].concat()).key_id())
        .collect()
}

fn check_exact(u: &[KeyId], r: &[KeyId]) -> usize {
    let s = signer(1);
    let bytes = update(&s, 1, 1, u, r);
    let v =
        RevocationView::new(&bytes, &keygate::TrustSet::from_chain(&trust(&s)).unwrap()).unwrap();
    let rs: std::collections::HashSet<_> = r.iter().collect();
    for id in u {
        assert_eq!(v.contains(id), rs.contains(id), "wrong answer for {id}");
    }
    bytes.len()
}

#[test]
fn exact_edge_sizes() {
    let u = ids(5000, 1);
    check_exact(&u, &[]);
    check_exact(&u, &u);
    check_exact(&u, &u[..1]);
    check_exact(&u[..1], &u[..1]);
    check_exact(&[], &[]);
}

#[test]
fn exact_large_deterministic() {
    let u = ids(100_000, 2);
    let r: Vec<_> = u.iter().copied().step_by(97).collect();
    let len = check_exact(&u, &r);
    let bound = keygate_bound_bits(u.len(), r.len()) / 8.0;
    println!(
        "|U|=100000 |R|={} update {} bytes, bound {:.0} bytes",
        r.len(),
        len,
        bound
    );
}

/// |U| = 10 000 000, |R| = 1%: builds within this machine's memory.
/// `cargo test --release --test revocation -- --ignored ten_million`
#[test]
#[ignore = "takes ~5 s and ~0.7 GB in release; run by hand"]
fn ten_million_universe() {
    let u = ids(10_000_000, 3);
    let r: Vec<_> = u.iter().copied().step_by(100).collect();
    let t = std::time::Instant::now();
    let len = check_exact(&u, &r);
    let bound = keygate_bound_bits(u.len(), r.len()) / 8.0;
    println!(
        "|U|=10M |R|={} update {len} bytes ({:.2}x bound) in {:?}",
        r.len(),
        len as f64 / bound,
        t.elapsed()
    );
}

fn keygate_bound_bits(u: usize, r: usize) -> f64 {
    // log2 C(u, r) via lgamma-free summation.
    (0..r)
        .map(|i| ((u - i) as f64 / (r - i) as f64).log2())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn prop_exact(n in 0usize..100_000, frac in 0.0f64..1.0, salt in any::<u64>()) {
        let u = ids(n, salt);
        let r: Vec<_> = u.iter().copied().filter(|id| (id.0[15] as f64) < frac * 256.0).collect();
        check_exact(&u, &r);
    }
}

fn loaded() -> (Verifier, keygate::Signer) {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    (v, s)
}

#[test]
fn revoked_by_update_reports_sequence() {
    let (v, s) = loaded();
    let r = reference();
    let u = reference_ids();
    assert_eq!(
        v.install_revocations(&update(&s, 1, 1, &u, &[r.valid.key_id()]))
            .unwrap(),
        Installed::Updated { from: 0, to: 1 }
    );
    let d = v.verify(r.valid.expose_secret(), T0, None);
    assert_eq!((d.outcome, d.revocation_seq), (Outcome::Revoked, 1));
    // Every other key answers as before: no false rejections.
    assert_eq!(
        v.verify(r.deprecated.expose_secret(), T0, None).outcome,
        Outcome::ValidDeprecated
    );
    assert_eq!(v.verify(r.imported, T0, None).outcome, Outcome::Valid);
}

#[test]
fn cumulative_semantics() {
    let (v, s) = loaded();
    let r = reference();
    let u = reference_ids();
    let u1 = update(&s, 1, 1, &u, &[r.valid.key_id()]);
    let u2 = update(&s, 1, 2, &u, &[r.valid.key_id(), r.imported_id()]);
    // Missed update 1: update 2 heals it.
    v.install_revocations(&u2).unwrap();
    assert_eq!(
        v.verify(r.valid.expose_secret(), T0, None).outcome,
        Outcome::Revoked
    );
    assert_eq!(v.verify(r.imported, T0, None).outcome, Outcome::Revoked);
    // Duplicate: no-op.
    assert_eq!(v.install_revocations(&u2).unwrap(), Installed::Unchanged);
    // Out of order: refused, state kept.
    assert_eq!(
        v.install_revocations(&u1).unwrap_err(),
        Error::Rollback {
            artifact: Artifact::Revocations,
            installed: 2,
            offered: 1
        }
    );
    assert_eq!(v.revocation_header().unwrap().sequence, 2);
    // Wrong base: refused with both versions named.
    let e = v
        .install_revocations(&update(&s, 7, 3, &u, &[]))
        .unwrap_err();
    assert_eq!(
        e,
        Error::BaseMismatch {
            installed_snapshot: 1,
            update_base: 7
        }
    );
    assert!(e.to_string().contains("snapshot version 7, installed is 1"));
    // A newer snapshot drops the update.
    v.install_snapshot(&reference_snapshot(&s, 2)).unwrap();
    assert!(v.revocation_header().is_none());
    assert_eq!(
        v.verify(r.valid.expose_secret(), T0, None).outcome,
        Outcome::Valid
    );
}

trait ImportedId {
    fn imported_id(&self) -> KeyId;
}
impl ImportedId for Reference {
    fn imported_id(&self) -> KeyId {
        keygate::Digest::of(self.imported.as_bytes()).key_id()
    }
}

#[test]
fn update_before_snapshot_refused() {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    assert_eq!(
        v.install_revocations(&update(&s, 1, 1, &reference_ids(), &[]))
            .unwrap_err(),
        Error::NoSnapshot
    );
}

#[test]
fn wrong_keyset_and_signer_refused() {
    let (v, _) = loaded();
    let e = v
        .install_revocations(&update(&signer(9), 1, 1, &reference_ids(), &[]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnknownSigner {
                artifact: Artifact::Revocations,
                ..
            }
        ),
        "{e}"
    );
    let spec = keygate::UpdateSpec {
        keyset: keygate::Name::new("globex").unwrap(),
        base_version: 1,
        sequence: 1,
        created_at: T0,
        valid_until: T0,
    };
    let other = keygate::build_update(&spec, &reference_ids(), &[], &signer(1)).unwrap();
    assert!(matches!(
        v.install_revocations(&other).unwrap_err(),
        Error::WrongKeyset { .. }
    ));
}

#[test]
fn every_flip_and_truncation_of_an_update_is_refused() {
    let (v, s) = loaded();
    let r = reference();
    let u = reference_ids();
    v.install_revocations(&update(&s, 1, 1, &u, &[r.revoked.key_id()]))
        .unwrap();
    let good = update(&s, 1, 2, &u, &[r.valid.key_id()]);
    let answers = |v: &Verifier| {
        [&r.valid, &r.deprecated, &r.revoked].map(|k| v.verify(k.expose_secret(), T0, None))
    };
    let before = answers(&v);
    let (mut tried, mut refused) = (0, 0);
    for i in 0..good.len() {
        let mut m = good.clone();
        m[i] ^= 0x20;
        tried += 1;
        refused += usize::from(v.install_revocations(&m).is_err());
    }
    for n in 0..good.len() {
        tried += 1;
        refused += usize::from(v.install_revocations(&good[..n]).is_err());
    }
    println!("update mutations: {tried} tried, {refused} refused");
    assert_eq!(tried, refused);
    assert_eq!(answers(&v), before);
    assert_eq!(v.revocation_header().unwrap().sequence, 1);
}

#[test]
fn revoked_not_in_universe_is_a_build_error() {
    let spec = keygate::UpdateSpec {
        keyset: keyset(),
        base_version: 1,
        sequence: 1,
        created_at: T0,
        valid_until: T0,
    };
    let e = keygate::build_update(&spec, &reference_ids(), &[key(777).key_id()], &signer(1))
        .unwrap_err();
    assert_eq!(
        e,
        keygate::UpdateBuildError::NotInUniverse(key(777).key_id())
    );
}
