//! The verifier against a hostile origin: a forged older trust anchor, a
//! frozen update channel, and a rollback across a restart.

mod common;

use common::*;
use keygate::{build_bundle, Artifact, Config, Error, HighWater, Outcome, Staleness, Verifier};

#[test]
fn a_forged_self_signed_bundle_of_a_lower_version_is_refused_and_counted() {
    let (s1, s2) = (signer(1), signer(2));
    let k = keyset();
    let chain = [
        build_bundle(&k, 1, T0, &[s1.trusted()], &[&s1]),
        build_bundle(&k, 2, T0, &[s1.trusted(), s2.trusted()], &[&s1, &s2]),
    ]
    .concat();
    let v = Verifier::new(&chain).unwrap();
    assert_eq!(v.trust().version(), 2);
    let mallory = signer(66);
    let forged = build_bundle(&k, 1, T0, &[mallory.trusted()], &[&mallory]);
    assert!(matches!(
        v.install_trust(&forged),
        Err(Error::Rollback {
            artifact: Artifact::Trust,
            installed: 2,
            offered: 1
        })
    ));
    assert_eq!(
        v.stats().refused[2],
        1,
        "the refusal is counted (trust is slot 2)"
    );
    assert!(v
        .install_snapshot(&reference_snapshot(&mallory, 1))
        .is_err());
}

#[test]
fn a_withheld_update_makes_keys_stale_per_policy() {
    let s = signer(1);
    let r = reference();
    let ids = reference_ids();
    for (policy, at, want) in [
        // The update (valid until T0 + 1 h) is fresh: valid.
        (Staleness::FailClosed, T0 + 3600, Outcome::Valid),
        // Past it, though the snapshot is fresh for a day: fail closed...
        (Staleness::FailClosed, T0 + 3601, Outcome::Stale),
        // ...or accepted, flagged stale, for the grace, then stale.
        (Staleness::AcceptFor(600), T0 + 3601, Outcome::Valid),
        (Staleness::AcceptFor(600), T0 + 4201, Outcome::Stale),
    ] {
        let v = Verifier::with_config(&trust(&s), Config::default().staleness(policy)).unwrap();
        v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
        v.install_revocations(&update(&s, 1, 1, &ids, &[])).unwrap();
        let d = v.verify(r.valid.expose_secret(), at, None);
        assert_eq!(d.outcome, want, "{policy:?} at T0+{}", at - T0);
        assert_eq!(d.stale, at > T0 + 3600);
        // With no update applied, only the snapshot's validity counts.
        let fresh = Verifier::with_config(&trust(&s), Config::default().staleness(policy)).unwrap();
        fresh.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
        assert_eq!(
            fresh.verify(r.valid.expose_secret(), at, None).outcome,
            Outcome::Valid
        );
    }
}

#[test]
fn a_persisted_high_water_mark_refuses_rollback_after_restart() {
    let s = signer(1);
    let ids = reference_ids();
    let before = Verifier::new(&trust(&s)).unwrap();
    before.install_snapshot(&reference_snapshot(&s, 5)).unwrap();
    before
        .install_revocations(&update(&s, 5, 3, &ids, &[]))
        .unwrap();
    let hw = before.high_water();
    assert_eq!(
        hw,
        HighWater {
            trust_version: 1,
            snapshot_version: 5,
            update_seq: 3,
            update_base: 5
        }
    );
    let text = hw.to_text("acme");
    assert_eq!(HighWater::parse(&text, "acme").unwrap(), hw);
    assert!(HighWater::parse(&text, "other").is_err());
    assert!(HighWater::parse("keygate-state 1\nsnapshot x\n", "acme").is_err());
    assert!(HighWater::parse("", "acme").is_err());
    // A file that names no keyset is not taken for this one.
    assert!(HighWater::parse("keygate-state 1\nsnapshot 3\n", "acme").is_err());

    // Restarted: the origin serves older signed artifacts.
    let after = Verifier::new(&trust(&s)).unwrap();
    after.set_floor(HighWater::parse(&text, "acme").unwrap());
    assert!(matches!(
        after.install_snapshot(&reference_snapshot(&s, 4)),
        Err(Error::Rollback {
            installed: 5,
            offered: 4,
            ..
        })
    ));
    after.install_snapshot(&reference_snapshot(&s, 5)).unwrap();
    assert!(after
        .install_revocations(&update(&s, 5, 2, &ids, &[]))
        .is_err());
    after
        .install_revocations(&update(&s, 5, 3, &ids, &[]))
        .unwrap();
    // A newer snapshot resets the update sequence, as it always does.
    after.install_snapshot(&reference_snapshot(&s, 6)).unwrap();
    after
        .install_revocations(&update(&s, 6, 1, &ids, &[]))
        .unwrap();
    assert_eq!(after.high_water().snapshot_version, 6);
}
