//! The attack suite: hostile and mistaken artifacts against a verifier. Each
//! case is refused with its typed error (or is the specified no-op) and the
//! verifier's answers afterwards are unchanged. Prints the counts.

mod common;

use common::*;
use keygate::{build_bundle, Artifact, Error, Installed, Outcome, Verdict, Verifier};

/// A verifier with snapshot v2 and update seq 2 (revoking the "valid" key of
/// the reference set) installed, and the keys whose answers must not move.
fn setup() -> (Verifier, impl Fn(&Verifier) -> Vec<Verdict>) {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    v.install_snapshot(&reference_snapshot(&s, 2)).unwrap();
    let r = reference();
    v.install_revocations(&update(
        &s,
        2,
        2,
        &reference_ids(),
        &[r.deprecated.key_id()],
    ))
    .unwrap();
    let answers = move |v: &Verifier| {
        [
            r.valid.expose_secret(),
            r.deprecated.expose_secret(),
            r.revoked.expose_secret(),
            r.imported,
            "x",
        ]
        .iter()
        .map(|k| v.verify(k, T0, Some("invoices:read")))
        .collect()
    };
    (v, answers)
}

struct Tally(Vec<(&'static str, usize, usize)>);

impl Tally {
    fn case(&mut self, name: &'static str, tried: usize, refused: usize) {
        assert_eq!(
            tried,
            refused,
            "{name}: {} of {tried} accepted",
            tried - refused
        );
        self.0.push((name, tried, refused));
    }
}

fn flips_and_truncations(
    v: &Verifier,
    good: &[u8],
    install: impl Fn(&Verifier, &[u8]) -> bool,
) -> (usize, usize) {
    let (mut tried, mut refused) = (0, 0);
    for i in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut m = good.to_vec();
            m[i] ^= bit;
            tried += 1;
            refused += usize::from(!install(v, &m));
        }
    }
    for n in 0..good.len() {
        tried += 1;
        refused += usize::from(!install(v, &good[..n]));
    }
    (tried, refused)
}

#[test]
fn attack_suite() {
    let s1 = signer(1);
    let (v, answers) = setup();
    let before = answers(&v);
    let mut t = Tally(Vec::new());

    let snap3 = reference_snapshot(&s1, 3);
    let (a, b) = flips_and_truncations(&v, &snap3, |v, m| v.install_snapshot(m).is_ok());
    t.case("snapshot: every bit-flip (2/byte) and truncation", a, b);
    let upd3 = update(&s1, 2, 3, &reference_ids(), &[]);
    let (a, b) = flips_and_truncations(&v, &upd3, |v, m| v.install_revocations(m).is_ok());
    t.case("update: every bit-flip and truncation", a, b);
    let chain = [
        trust(&s1),
        build_bundle(
            &keyset(),
            2,
            T0,
            &[s1.trusted(), signer(2).trusted()],
            &[&s1, &signer(2)],
        ),
    ]
    .concat();
    let bundle_len = trust(&s1).len();
    let (mut a, mut b) = (0, 0);
    for i in 0..chain.len() {
        let mut m = chain.clone();
        m[i] ^= 0x10;
        a += 1;
        b += usize::from(v.install_trust(&m).is_err());
    }
    for n in (0..chain.len()).filter(|n| *n != bundle_len) {
        a += 1;
        // (A cut exactly after the first bundle is a valid, shorter chain: skipped.)
        b += usize::from(v.install_trust(&chain[..n]).is_err());
    }
    t.case("trust chain: every flip and truncation", a, b);
    assert_eq!(answers(&v), before);

    let e = v.install_snapshot(&reference_snapshot(&s1, 1)).unwrap_err();
    assert_eq!(
        e,
        Error::Rollback {
            artifact: Artifact::Snapshot,
            installed: 2,
            offered: 1
        }
    );
    t.case("snapshot rollback (v1 over v2)", 1, 1);

    let other = {
        let mut b = keygate::SnapshotBuilder::new(
            keygate::Name::new("globex").unwrap(),
            keygate::Prefix::new(PREFIX).unwrap(),
            9,
            T0,
        );
        b.push(keygate::RecordSpec::active(key(1).digest(), "x", &[]));
        b.build(&s1).unwrap()
    };
    assert!(matches!(
        v.install_snapshot(&other).unwrap_err(),
        Error::WrongKeyset { .. }
    ));
    t.case("snapshot from another keyset", 1, 1);

    let mix = update(&s1, 1, 9, &reference_ids(), &[]);
    assert_eq!(
        v.install_revocations(&mix).unwrap_err(),
        Error::BaseMismatch {
            installed_snapshot: 2,
            update_base: 1
        }
    );
    t.case("update for another base snapshot (mix-and-match)", 1, 1);

    assert!(matches!(
        v.install_snapshot(&reference_snapshot(&signer(7), 9))
            .unwrap_err(),
        Error::UnknownSigner { .. }
    ));
    assert!(matches!(
        v.install_revocations(&update(&signer(7), 2, 9, &reference_ids(), &[]))
            .unwrap_err(),
        Error::UnknownSigner { .. }
    ));
    t.case("artifacts by an unknown signer", 2, 2);

    let dup = update(
        &s1,
        2,
        2,
        &reference_ids(),
        &[reference().deprecated.key_id()],
    );
    assert_eq!(v.install_revocations(&dup).unwrap(), Installed::Unchanged);
    let older = update(&s1, 2, 1, &reference_ids(), &[]);
    assert!(matches!(
        v.install_revocations(&older).unwrap_err(),
        Error::Rollback {
            artifact: Artifact::Revocations,
            ..
        }
    ));
    t.case("duplicated (no-op) and reordered (refused) updates", 2, 2);
    assert_eq!(answers(&v), before, "answers moved after refused artifacts");

    // A retired signer: follow a rotation from s1 to s2 and drop s1.
    let (s2, k) = (signer(2), keyset());
    let rotated = [
        trust(&s1),
        build_bundle(&k, 2, T0, &[s1.trusted(), s2.trusted()], &[&s1, &s2]),
        build_bundle(&k, 3, T0, &[s2.trusted()], &[&s2]),
    ]
    .concat();
    v.install_trust(&rotated).unwrap();
    assert!(matches!(
        v.install_snapshot(&reference_snapshot(&s1, 9)).unwrap_err(),
        Error::UnknownSigner { .. }
    ));
    t.case("snapshot by a retired signer", 1, 1);
    assert_eq!(answers(&v), before);

    // A frozen snapshot: stale within the grace, refused past it (fail closed).
    let valid = reference().valid;
    let until = T0 + 86_400;
    let d = v.verify(valid.expose_secret(), until + 3600, None);
    assert!(d.stale && d.outcome == Outcome::Valid);
    assert_eq!(
        v.verify(valid.expose_secret(), until + 86_400 + 1, None)
            .outcome,
        Outcome::Stale
    );
    t.case("stale (frozen) snapshot past the policy", 1, 1);

    println!("\n{:<52} {:>7} {:>8}", "attack", "tried", "refused");
    for (name, tried, refused) in &t.0 {
        println!("{name:<52} {tried:>7} {refused:>8}");
    }
    let total: usize = t.0.iter().map(|x| x.1).sum();
    println!("{:<52} {total:>7} {total:>8}", "total");
}
