//! Trust bundles: anchors, signer rotation along a chain, retired signers.

mod common;

use common::*;
use keygate::{build_bundle, Artifact, Error, Installed, Outcome, TrustSet, Verifier};

/// Chain: v1 {s1} → v2 {s1, s2} signed by s1+s2 → v3 {s2} signed by s2 →
/// v4 {s2, s3} → v5 {s3}.
fn chain() -> Vec<Vec<u8>> {
    let (s1, s2, s3) = (signer(1), signer(2), signer(3));
    let k = keyset();
    vec![
        build_bundle(&k, 1, T0, &[s1.trusted()], &[&s1]),
        build_bundle(&k, 2, T0, &[s1.trusted(), s2.trusted()], &[&s1, &s2]),
        build_bundle(&k, 3, T0, &[s2.trusted()], &[&s2]),
        build_bundle(&k, 4, T0, &[s2.trusted(), s3.trusted()], &[&s2, &s3]),
        build_bundle(&k, 5, T0, &[s3.trusted()], &[&s3]),
    ]
}

#[test]
fn follows_two_rotations_from_the_first_bundle() {
    let c = chain();
    let v = Verifier::new(&c[0]).unwrap();
    // The gateway sees each published chain file in turn.
    for n in 2..=5 {
        let file: Vec<u8> = c[..n].concat();
        assert_eq!(
            v.install_trust(&file).unwrap(),
            Installed::Updated {
                from: n as u64 - 1,
                to: n as u64
            }
        );
    }
    assert!(
        v.install_snapshot(&reference_snapshot(&signer(1), 1))
            .is_err(),
        "retired signer accepted"
    );
    assert!(matches!(
        v.install_snapshot(&reference_snapshot(&signer(2), 1))
            .unwrap_err(),
        Error::UnknownSigner {
            artifact: Artifact::Snapshot,
            ..
        }
    ));
    v.install_snapshot(&reference_snapshot(&signer(3), 1))
        .unwrap();
    assert_eq!(
        v.verify(reference().valid.expose_secret(), T0, None)
            .outcome,
        Outcome::Valid
    );
}

#[test]
fn skipped_bundles_are_healed_by_the_chain() {
    let c = chain();
    let v = Verifier::new(&c[0]).unwrap();
    assert_eq!(
        v.install_trust(&c.concat()).unwrap(),
        Installed::Updated { from: 1, to: 5 }
    );
    assert_eq!(v.install_trust(&c.concat()).unwrap(), Installed::Unchanged);
}

#[test]
fn a_bundle_not_signed_by_trusted_keys_is_refused() {
    let c = chain();
    let v = Verifier::new(&c[0]).unwrap();
    // v3 alone is signed only by s2, which v1 does not trust.
    assert_eq!(
        v.install_trust(&c[2]).unwrap_err(),
        Error::UntrustedBundle { version: 3 }
    );
    assert_eq!(v.trust().version(), 1);
    // An attacker's bundle with a higher version, self-signed.
    let evil = signer(66);
    let b = build_bundle(&keyset(), 9, T0, &[evil.trusted()], &[&evil]);
    assert!(v.install_trust(&[c[0].clone(), b].concat()).is_err());
    assert_eq!(v.trust().version(), 1);
}

#[test]
fn a_fork_at_the_same_version_is_refused() {
    let (s1, s9) = (signer(1), signer(9));
    let v = Verifier::new(&chain()[0]).unwrap();
    let fork = build_bundle(&keyset(), 1, T0, &[s1.trusted(), s9.trusted()], &[&s1]);
    assert_eq!(
        v.install_trust(&fork).unwrap_err(),
        Error::UntrustedBundle { version: 1 }
    );
}

#[test]
fn every_flip_and_truncation_of_a_trust_chain_is_refused() {
    let c = chain();
    let file = c[..3].concat();
    let anchor = TrustSet::from_chain(&c[0]).unwrap();
    let (mut tried, mut refused) = (0, 0);
    for i in 0..file.len() {
        let mut m = file.clone();
        m[i] ^= 0x04;
        tried += 1;
        refused += usize::from(anchor.follow(&m).is_err());
    }
    for n in 0..file.len() {
        // A cut exactly at a bundle boundary is a shorter, valid chain.
        if c.iter()
            .scan(0, |a, b| {
                *a += b.len();
                Some(*a)
            })
            .any(|end| end == n)
        {
            continue;
        }
        tried += 1;
        refused += usize::from(anchor.follow(&file[..n]).is_err());
    }
    println!("trust mutations: {tried} tried, {refused} refused");
    assert_eq!(tried, refused);
}

#[test]
fn wrong_keyset_bundle_refused() {
    let s1 = signer(1);
    let v = Verifier::new(&chain()[0]).unwrap();
    let other = build_bundle(
        &keygate::Name::new("globex").unwrap(),
        2,
        T0,
        &[s1.trusted()],
        &[&s1],
    );
    assert!(matches!(
        v.install_trust(&other).unwrap_err(),
        Error::WrongKeyset { .. }
    ));
}
