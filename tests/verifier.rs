//! Verifier behaviour: every outcome, install rules, refused artifacts.

mod common;

use common::*;
use keygate::{
    Artifact, Config, Digest, Error, Installed, Outcome, RecordSpec, Staleness, Verifier,
};

fn loaded() -> (Verifier, Reference) {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    (v, reference())
}

#[test]
fn valid() {
    let (v, r) = loaded();
    let d = v.verify(r.valid.expose_secret(), T0, Some("invoices:write"));
    assert_eq!(d.outcome, Outcome::Valid);
    assert_eq!(d.principal.as_str(), "billing-service");
    assert_eq!(d.key_id, Some(r.valid.key_id()));
    assert_eq!(d.expires_at, Some(T0 + 90 * 86_400));
    assert_eq!(d.snapshot_version, 1);
    assert!(!d.stale);
}

#[test]
fn valid_without_scope_requirement() {
    let (v, r) = loaded();
    assert_eq!(
        v.verify(r.valid.expose_secret(), T0, None).outcome,
        Outcome::Valid
    );
}

#[test]
fn valid_deprecated_carries_dates_and_is_counted() {
    let (v, r) = loaded();
    let d = v.verify(r.deprecated.expose_secret(), T0, Some("invoices:read"));
    assert_eq!(d.outcome, Outcome::ValidDeprecated);
    assert_eq!(d.deprecated_at, Some(T0 - 3600));
    assert_eq!(d.sunset_at, Some(T0 + 7 * 86_400));
    v.verify(r.deprecated.expose_secret(), T0 + 5, None);
    let st = v.stats();
    assert_eq!(st.deprecated.len(), 1);
    assert_eq!(st.deprecated[0].count, 2);
    assert_eq!(st.deprecated[0].last_seen, T0 + 5);
    assert_eq!(st.deprecated[0].principal, "billing-service");
    assert!(st
        .prometheus()
        .contains(&format!("key_id=\"{}\"", r.deprecated.key_id())));
}

#[test]
fn deprecated_key_stops_at_sunset() {
    let (v, r) = loaded();
    assert_eq!(
        v.verify(r.deprecated.expose_secret(), T0 + 7 * 86_400, None)
            .outcome,
        Outcome::Expired
    );
}

#[test]
fn revoked() {
    let (v, r) = loaded();
    let d = v.verify(r.revoked.expose_secret(), T0, None);
    assert_eq!(d.outcome, Outcome::Revoked);
    assert_eq!(d.principal.as_str(), "search-indexer");
}

#[test]
fn expired() {
    let (v, r) = loaded();
    assert_eq!(
        v.verify(r.expired.expose_secret(), T0, None).outcome,
        Outcome::Expired
    );
    assert_eq!(
        v.verify(r.expired.expose_secret(), T0 - 2, None).outcome,
        Outcome::Valid
    );
}

#[test]
fn not_yet_valid() {
    let (v, r) = loaded();
    assert_eq!(
        v.verify(r.future.expose_secret(), T0, None).outcome,
        Outcome::NotYetValid
    );
    assert_eq!(
        v.verify(r.future.expose_secret(), T0 + 3600, None).outcome,
        Outcome::Valid
    );
}

#[test]
fn unknown() {
    let (v, _) = loaded();
    let d = v.verify(key(999).expose_secret(), T0, None);
    assert_eq!(d.outcome, Outcome::Unknown);
    assert_eq!(d.key_id, Some(key(999).key_id()));
    assert_eq!(d.principal.as_str(), "");
}

#[test]
fn malformed() {
    let (v, r) = loaded();
    let good = r.valid.expose_secret();
    let mut typo = good.as_bytes().to_vec();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    for bad in [
        String::new(),
        "acme_live_".into(),
        String::from_utf8(typo).unwrap(),
        "short".into(),
    ] {
        let d = v.verify(&bad, T0, None);
        assert_eq!(d.outcome, Outcome::Malformed, "{bad:?}");
        assert_eq!(d.key_id, None);
    }
}

#[test]
fn other_prefix_is_malformed_without_imports() {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    let r = reference();
    let recs = reference_records(&r)
        .into_iter()
        .filter(|x| !x.imported)
        .collect();
    v.install_snapshot(&snapshot_with(&s, 1, recs)).unwrap();
    assert_eq!(v.verify(r.imported, T0, None).outcome, Outcome::Malformed);
}

#[test]
fn imported_key_verifies_by_digest() {
    let (v, r) = loaded();
    let d = v.verify(r.imported, T0, Some("invoices:read"));
    assert_eq!(d.outcome, Outcome::Valid);
    assert_eq!(d.principal.as_str(), "legacy-client");
    assert_eq!(
        v.verify("legacy-token-wrong", T0, None).outcome,
        Outcome::Unknown
    );
}

#[test]
fn imported_key_shaped_like_ours_is_found_not_called_malformed() {
    // A legacy token that happens to start with the keyset's prefix and have
    // a key's length, but not its checksum: imported by digest, it verifies
    // (only a miss is classified by charset and checksum). A string of that
    // shape that is not in the snapshot is still malformed.
    let lookalike = format!("{PREFIX}_{}", "x".repeat(39));
    assert_eq!(lookalike.len(), r_valid_len());
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    let mut recs = reference_records(&reference());
    let mut i = RecordSpec::active(
        Digest::of(lookalike.as_bytes()),
        "legacy-app",
        &["invoices:read"],
    );
    i.imported = true;
    recs.push(i);
    v.install_snapshot(&snapshot_with(&s, 1, recs)).unwrap();
    let d = v.verify(&lookalike, T0, Some("invoices:read"));
    assert_eq!(
        (d.outcome, d.principal.as_str()),
        (Outcome::Valid, "legacy-app")
    );
    let other = format!("{PREFIX}_{}", "y".repeat(39));
    let d = v.verify(&other, T0, None);
    assert_eq!((d.outcome, d.key_id), (Outcome::Malformed, None));
}

#[test]
fn required_scope_is_found_again_after_a_snapshot_renumbers_scopes() {
    // Each thread remembers the last required scope's bit; a new snapshot
    // can give the same name another bit, so the memory must not outlive it.
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    let one = |version, recs: Vec<RecordSpec>| snapshot_with(&s, version, recs);
    v.install_snapshot(&one(
        1,
        vec![RecordSpec::active(key(1).digest(), "app", &["m:read"])],
    ))
    .unwrap();
    let k = key(1);
    assert_eq!(
        v.verify(k.expose_secret(), T0, Some("m:read")).outcome,
        Outcome::Valid
    );
    assert_eq!(
        v.verify(k.expose_secret(), T0, Some("a:read")).outcome,
        Outcome::InsufficientScope
    );
    assert_eq!(
        v.verify(k.expose_secret(), T0, Some("m:read")).outcome,
        Outcome::Valid
    );
    // Version 2 adds a scope that sorts first: "m:read" moves to another bit.
    v.install_snapshot(&one(
        2,
        vec![
            RecordSpec::active(key(1).digest(), "app", &["m:read"]),
            RecordSpec::active(key(2).digest(), "other", &["a:read"]),
        ],
    ))
    .unwrap();
    assert_eq!(
        v.verify(k.expose_secret(), T0, Some("m:read")).outcome,
        Outcome::Valid
    );
    assert_eq!(
        v.verify(key(2).expose_secret(), T0, Some("m:read")).outcome,
        Outcome::InsufficientScope
    );
    assert_eq!(
        v.verify(key(2).expose_secret(), T0, Some("a:read")).outcome,
        Outcome::Valid
    );
    // Longer than any scope name can be; and the empty name.
    let long = "s".repeat(65);
    assert_eq!(
        v.verify(k.expose_secret(), T0, Some(&long)).outcome,
        Outcome::InsufficientScope
    );
    assert_eq!(
        v.verify(k.expose_secret(), T0, Some("")).outcome,
        Outcome::InsufficientScope
    );
}

fn r_valid_len() -> usize {
    reference().valid.expose_secret().len()
}

#[test]
fn insufficient_scope() {
    let (v, r) = loaded();
    assert_eq!(
        v.verify(r.deprecated.expose_secret(), T0, Some("invoices:write"))
            .outcome,
        Outcome::InsufficientScope
    );
    assert_eq!(
        v.verify(r.valid.expose_secret(), T0, Some("no-such-scope"))
            .outcome,
        Outcome::InsufficientScope
    );
}

#[test]
fn stale_policy_default_grace_then_stale() {
    let (v, r) = loaded();
    let until = T0 + 86_400;
    let d = v.verify(r.valid.expose_secret(), until + 10, None);
    assert_eq!((d.outcome, d.stale), (Outcome::Valid, true));
    let d = v.verify(r.valid.expose_secret(), until + 86_401, None);
    assert_eq!((d.outcome, d.stale), (Outcome::Stale, true));
}

#[test]
fn stale_fail_closed() {
    let s = signer(1);
    let v = Verifier::with_config(
        &trust(&s),
        Config::default().staleness(Staleness::FailClosed),
    )
    .unwrap();
    v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    assert_eq!(
        v.verify(reference().valid.expose_secret(), T0 + 86_401, None)
            .outcome,
        Outcome::Stale
    );
}

#[test]
fn no_snapshot_is_stale() {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    assert_eq!(
        v.verify(reference().valid.expose_secret(), T0, None)
            .outcome,
        Outcome::Stale
    );
}

#[test]
fn rollback_refused_same_version_noop() {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    assert_eq!(
        v.install_snapshot(&reference_snapshot(&s, 5)).unwrap(),
        Installed::Updated { from: 0, to: 5 }
    );
    assert_eq!(
        v.install_snapshot(&reference_snapshot(&s, 5)).unwrap(),
        Installed::Unchanged
    );
    let e = v.install_snapshot(&reference_snapshot(&s, 4)).unwrap_err();
    assert_eq!(
        e,
        Error::Rollback {
            artifact: Artifact::Snapshot,
            installed: 5,
            offered: 4
        }
    );
    assert!(e.to_string().contains("offered 4, installed 5"));
    assert_eq!(v.snapshot_header().unwrap().version, 5);
    assert_eq!(v.stats().refused[0], 1);
}

#[test]
fn other_keyset_refused() {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    let other = keygate::Name::new("globex").unwrap();
    let mut b = keygate::SnapshotBuilder::new(other, keygate::Prefix::new(PREFIX).unwrap(), 1, T0);
    b.push(keygate::RecordSpec::active(key(1).digest(), "x", &[]));
    let e = v.install_snapshot(&b.build(&s).unwrap()).unwrap_err();
    assert!(matches!(e, Error::WrongKeyset { .. }), "{e}");
    assert!(v.snapshot_header().is_none());
}

#[test]
fn unknown_signer_refused() {
    let v = Verifier::new(&trust(&signer(1))).unwrap();
    let e = v
        .install_snapshot(&reference_snapshot(&signer(2), 1))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnknownSigner {
                artifact: Artifact::Snapshot,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn every_flip_and_truncation_of_a_snapshot_is_refused() {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    let r = reference();
    let before = v.verify(r.valid.expose_secret(), T0, None);
    let good = reference_snapshot(&s, 2);
    let (mut tried, mut refused) = (0, 0);
    for i in 0..good.len() {
        let mut m = good.clone();
        m[i] ^= 0x01;
        tried += 1;
        refused += usize::from(v.install_snapshot(&m).is_err());
    }
    for n in 0..good.len() {
        tried += 1;
        refused += usize::from(v.install_snapshot(&good[..n]).is_err());
    }
    println!("snapshot mutations: {tried} tried, {refused} refused");
    assert_eq!(tried, refused);
    assert_eq!(v.snapshot_header().unwrap().version, 1);
    assert_eq!(v.verify(r.valid.expose_secret(), T0, None), before);
}

#[test]
fn verdict_debug_has_no_secret() {
    let (v, r) = loaded();
    let d = v.verify(r.valid.expose_secret(), T0, None);
    let dbg = format!("{d:?} {:?} {:?}", r.valid, v);
    assert!(!dbg.contains(&r.valid.expose_secret()[10..]));
}

#[test]
fn concurrent_verify_during_installs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    let snaps: Vec<_> = (2..40).map(|n| reference_snapshot(&s, n)).collect();
    let stop = AtomicBool::new(false);
    let r = reference();
    std::thread::scope(|sc| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                sc.spawn(|| {
                    let mut wrong = 0;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        wrong += usize::from(
                            v.verify(r.valid.expose_secret(), T0, None).outcome != Outcome::Valid,
                        );
                        n += 1;
                    }
                    (wrong, n)
                })
            })
            .collect();
        for (i, sn) in snaps.iter().enumerate() {
            v.install_snapshot(sn).unwrap();
            let mut bad = sn.clone();
            bad[300 + i] ^= 0xff;
            assert!(v.install_snapshot(&bad).is_err());
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let (wrong, n) = w.join().unwrap();
            assert_eq!(wrong, 0);
            assert!(n > 0);
        }
    });
    assert_eq!(v.snapshot_header().unwrap().version, 39);
}

#[test]
fn a_thread_alternating_between_verifiers_counts_each_verify_once() {
    let s = signer(1);
    let (a, b) = (
        Verifier::new(&trust(&s)).unwrap(),
        Verifier::new(&trust(&s)).unwrap(),
    );
    a.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    b.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    let r = reference();
    for _ in 0..500 {
        assert_eq!(
            a.verify(r.valid.expose_secret(), T0, None).outcome,
            Outcome::Valid
        );
        assert_eq!(
            b.verify(r.revoked.expose_secret(), T0, None).outcome,
            Outcome::Revoked
        );
    }
    assert_eq!(a.stats().count(Outcome::Valid), 500);
    assert_eq!(b.stats().count(Outcome::Revoked), 500);
    assert_eq!(a.stats().count(Outcome::Revoked), 0);
}

#[test]
fn a_snapshot_built_at_lower_load_verifies_the_same() {
    let s = signer(1);
    let mut b =
        keygate::SnapshotBuilder::new(keyset(), keygate::Prefix::new(PREFIX).unwrap(), 1, T0 - 60)
            .valid_until(T0 + 86_400)
            .load_percent(50);
    for r in reference_records(&reference()) {
        b.push(r);
    }
    let half = b.build(&s).unwrap();
    let full = reference_snapshot(&s, 1);
    assert!(half.len() > full.len(), "a 50% table is bigger");
    let (a, c) = (
        Verifier::new(&trust(&s)).unwrap(),
        Verifier::new(&trust(&s)).unwrap(),
    );
    a.install_snapshot(&half).unwrap();
    c.install_snapshot(&full).unwrap();
    let r = reference();
    for k in [
        r.valid.expose_secret(),
        r.deprecated.expose_secret(),
        r.revoked.expose_secret(),
        r.imported,
        "x",
    ] {
        assert_eq!(
            a.verify(k, T0, Some("invoices:read")),
            c.verify(k, T0, Some("invoices:read"))
        );
    }
}
