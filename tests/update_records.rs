//! Updates that carry records (format version 2): keys added or changed
//! since the base snapshot are read from the update before the snapshot,
//! with the same verdicts; a malformed table is refused and changes nothing.

mod common;

use common::*;
use keygate::{
    build_update_with, Digest, Error, Installed, Outcome, RecordSpec, RevocationView, Status,
    TrustSet, UpdateSpec, Verifier,
};

fn spec(seq: u64) -> UpdateSpec {
    UpdateSpec {
        keyset: keyset(),
        base_version: 1,
        sequence: seq,
        created_at: T0,
        valid_until: T0 + 3600,
    }
}

/// The reference snapshot at v1 and a gateway holding it.
fn gateway() -> (keygate::Signer, Verifier) {
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    (s, v)
}

#[test]
fn added_and_changed_keys_verify_from_the_update() {
    let (s, v) = gateway();
    let r = reference();
    let universe = reference_ids();
    // Added: a new key with a scope the snapshot never had, a revoked new
    // key, an imported one. Changed: the valid key deprecated (a rotation).
    let (added, added_revoked) = (key(100), key(101));
    let mut a = RecordSpec::active(added.digest(), "new-customer", &["reports:read"]);
    a.expires_at = Some(T0 + 86_400);
    let mut ar = RecordSpec::active(added_revoked.digest(), "new-customer", &["reports:read"]);
    ar.status = Status::Revoked;
    let mut imp = RecordSpec::active(Digest::of(b"legacy-token-new-0001"), "legacy-2", &[]);
    imp.imported = true;
    let mut changed = RecordSpec::active(
        r.valid.digest(),
        "billing-service",
        &["invoices:read", "invoices:write"],
    );
    changed.status = Status::Deprecated;
    changed.deprecated_at = Some(T0);
    changed.sunset_at = Some(T0 + 600);
    changed.expires_at = Some(T0 + 90 * 86_400);
    let bytes = build_update_with(
        &spec(2),
        &universe,
        &[r.deprecated.digest().key_id()],
        vec![a, ar, imp, changed],
        &s,
    )
    .unwrap();
    let view = RevocationView::new(&bytes, &TrustSet::from_chain(&trust(&s)).unwrap()).unwrap();
    assert_eq!(
        (view.header().format_version, view.header().record_count),
        (2, 4)
    );
    assert_eq!(view.records().count(), 4);

    // Before the update: the new key is unknown.
    assert_eq!(
        v.verify(added.expose_secret(), T0, None).outcome,
        Outcome::Unknown
    );
    assert_eq!(
        v.install_revocations(&bytes).unwrap(),
        Installed::Updated { from: 0, to: 2 }
    );
    let at = |k: &str, scope: Option<&str>| v.verify(k, T0 + 1, scope);
    let d = at(added.expose_secret(), Some("reports:read"));
    assert_eq!(d.outcome, Outcome::Valid);
    assert_eq!(d.principal.as_str(), "new-customer");
    assert_eq!(d.expires_at, Some(T0 + 86_400));
    assert_eq!(
        at(added.expose_secret(), Some("invoices:read")).outcome,
        Outcome::InsufficientScope
    );
    assert_eq!(
        at(added_revoked.expose_secret(), None).outcome,
        Outcome::Revoked
    );
    assert_eq!(at("legacy-token-new-0001", None).outcome, Outcome::Valid);
    // The changed key: deprecated now, its sunset from the update.
    let d = at(r.valid.expose_secret(), Some("invoices:write"));
    assert_eq!(d.outcome, Outcome::ValidDeprecated);
    assert_eq!(d.sunset_at, Some(T0 + 600));
    assert_eq!(
        v.verify(r.valid.expose_secret(), T0 + 600, None).outcome,
        Outcome::Expired
    );
    // Revoked by the filter; everything else as in the snapshot.
    assert_eq!(
        at(r.deprecated.expose_secret(), None).outcome,
        Outcome::Revoked
    );
    assert_eq!(at(r.imported, None).outcome, Outcome::Valid);
    assert_eq!(
        at(r.revoked.expose_secret(), None).outcome,
        Outcome::Revoked
    );
    assert_eq!(at(key(999).expose_secret(), None).outcome, Outcome::Unknown);
    // A wrong secret for an added key's id is unknown, as in the snapshot.
    assert_eq!(at("legacy-token-new-0002", None).outcome, Outcome::Unknown);

    // Cumulative: the next update without the added key drops it again.
    let next = build_update_with(&spec(3), &universe, &[], Vec::new(), &s).unwrap();
    assert_eq!(
        RevocationView::parse_unverified(&next)
            .unwrap()
            .header()
            .format_version,
        1,
        "an update with no records stays format 1 (every keygate reads it)"
    );
    v.install_revocations(&next).unwrap();
    assert_eq!(at(added.expose_secret(), None).outcome, Outcome::Unknown);
    assert_eq!(at(r.valid.expose_secret(), None).outcome, Outcome::Valid);
}

#[test]
fn a_tampered_record_table_is_refused_and_changes_nothing() {
    let (s, v) = gateway();
    let added = key(100);
    let records = (100..150)
        .map(|n| RecordSpec::active(key(n).digest(), "p", &["a"]))
        .collect();
    let good = build_update_with(&spec(2), &reference_ids(), &[], records, &s).unwrap();
    let table_at = u32::from_le_bytes(good[224..228].try_into().unwrap()) as usize;
    assert_eq!(table_at % 64, 0);
    // Any byte changed: refused (the signature, first). The structure is
    // checked too, whoever signed: each edit below is refused by the parse.
    let mut bad = good.clone();
    bad[table_at + 44] = 9; // a status byte of some slot
    assert!(v.install_revocations(&bad).is_err());
    let first_slot = (table_at..good.len() - 64)
        .step_by(64)
        .find(|&at| good[at + 44] != 0)
        .unwrap();
    for (what, edit, xor) in [
        ("table offset off the line", 224usize, 1u8),
        ("record count", 192, 1),
        ("padding before the table", table_at - 1, 1),
        ("a record's status", first_slot + 44, 0x7),
        // The id's low half picks the slot: changed, it no longer hashes there.
        ("a record's id (not at its slot)", first_slot + 15, 0x80),
        ("a reserved header byte", 240, 1),
    ] {
        let mut b = good.clone();
        b[edit] ^= xor;
        let e = RevocationView::parse_unverified(&b)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(
            matches!(e, Error::Malformed { .. } | Error::Truncated { .. }),
            "{what}: {e:?}"
        );
        assert!(v.install_revocations(&b).is_err(), "{what}");
    }
    // Counts that would overflow a 32-bit reader's sums: refused, no panic.
    for field in [204usize, 200, 208, 212, 192] {
        let mut b = good.clone();
        b[field..field + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            RevocationView::parse_unverified(&b).is_err(),
            "field at {field}"
        );
    }
    assert_eq!(
        v.verify(added.expose_secret(), T0, None).outcome,
        Outcome::Unknown
    );
    v.install_revocations(&good).unwrap();
    assert_eq!(
        v.verify(added.expose_secret(), T0, None).outcome,
        Outcome::Valid
    );
}

/// The revocation filter is exact on the snapshot's keys only; on any other
/// id its answer is arbitrary (an exact-only level reads 1 for about half of
/// them). Keys the update adds are not the snapshot's: the filter must not
/// revoke them. (The Worker test caught this at random: a third of runs.)
#[test]
fn the_filter_never_revokes_a_key_the_update_adds() {
    let (s, v) = gateway();
    let r = reference();
    let added: Vec<_> = (1000..1200).map(key).collect();
    let records = added
        .iter()
        .map(|k| RecordSpec::active(k.digest(), "many", &["a"]))
        .collect();
    // One revoked key: the filter is a single exact level, 1 bit per cell.
    let bytes = build_update_with(
        &spec(2),
        &reference_ids(),
        &[r.valid.digest().key_id()],
        records,
        &s,
    )
    .unwrap();
    let view = RevocationView::parse_unverified(&bytes).unwrap();
    let filter_says = added.iter().filter(|k| view.contains(&k.key_id())).count();
    assert!(
        filter_says > 20,
        "the filter would revoke {filter_says} of 200 added keys"
    );
    v.install_revocations(&bytes).unwrap();
    for k in &added {
        assert_eq!(
            v.verify(k.expose_secret(), T0, None).outcome,
            Outcome::Valid
        );
    }
    assert_eq!(
        v.verify(r.valid.expose_secret(), T0, None).outcome,
        Outcome::Revoked
    );
}

#[test]
fn scope_names_come_from_the_artifact_the_record_was_read_from() {
    let (s, v) = gateway();
    let r = reference();
    let names = |k: &str| {
        let d = v.verify(k, T0 + 1, None);
        let names = v
            .scope_names(&d)
            .map(|n| n.iter().map(|s| s.to_string()).collect::<Vec<String>>());
        (d.scopes.len(), names)
    };
    let from_snapshot = names(r.valid.expose_secret());
    assert_eq!(
        from_snapshot,
        (
            2,
            Some(vec!["invoices:read".into(), "invoices:write".into()])
        )
    );
    assert_eq!(names(key(999).expose_secret()), (0, Some(vec![])));
    // The update adds a key with a scope the snapshot's table does not
    // have, and changes one key's scopes: both read from the update's table.
    let added = key(100);
    let a = RecordSpec::active(added.digest(), "new-customer", &["reports:read"]);
    let changed = RecordSpec::active(r.valid.digest(), "billing-service", &["invoices:read"]);
    let bytes = build_update_with(&spec(2), &reference_ids(), &[], vec![a, changed], &s).unwrap();
    let before = v.verify(r.valid.expose_secret(), T0 + 1, None);
    v.install_revocations(&bytes).unwrap();
    assert_eq!(
        names(added.expose_secret()),
        (1, Some(vec!["reports:read".into()]))
    );
    assert_eq!(
        names(r.valid.expose_secret()),
        (1, Some(vec!["invoices:read".into()]))
    );
    // A verdict from before the update names nothing: its table is gone.
    assert_eq!(v.scope_names(&before), None);
    // Names resolved again for the same verdict come from the thread's
    // cache, the same list.
    let d = v.verify(added.expose_secret(), T0 + 1, None);
    let (x, y) = (v.scope_names(&d).unwrap(), v.scope_names(&d).unwrap());
    assert!(std::sync::Arc::ptr_eq(&x, &y));
}
