//! Writes the artifacts the C, LuaJIT and Python tests use into a directory:
//! `cargo run -p keygate-c --example fixtures -- DIR`.
//!
//! Deterministic (fixed signer seeds and key secrets), so failures reproduce.

use std::path::Path;

use keygate_core::{
    build_bundle, build_update, build_update_with, ApiKey, Name, Prefix, RecordSpec, Signer,
    SnapshotBuilder, Status, UpdateSpec,
};

/// Time the tests verify at: 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600;
/// Snapshot versions written for the reload test.
const VERSIONS: u64 = 200;

fn key(n: u32) -> ApiKey {
    let mut s = [0u8; 24];
    s[..4].copy_from_slice(&n.to_be_bytes());
    s[20..].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
    ApiKey::from_secret_bytes("acme_live", &s).unwrap()
}

fn records() -> Vec<RecordSpec> {
    let mut v = vec![RecordSpec::active(
        key(1).digest(),
        "billing-service",
        &["invoices:read", "invoices:write"],
    )];
    let mut d = RecordSpec::active(key(2).digest(), "billing-service", &["invoices:read"]);
    d.status = Status::Deprecated;
    d.deprecated_at = Some(T0 - 3600);
    d.sunset_at = Some(T0 + 7 * 86_400);
    v.push(d);
    let mut r = RecordSpec::active(key(3).digest(), "search-indexer", &["search:read"]);
    r.status = Status::Revoked;
    v.push(r);
    let mut e = RecordSpec::active(key(4).digest(), "old-batch", &["invoices:read"]);
    e.expires_at = Some(T0 - 1);
    v.push(e);
    let mut f = RecordSpec::active(key(5).digest(), "new-partner", &["invoices:read"]);
    f.not_before = T0 + 3600;
    v.push(f);
    // Revoked by the updates (not in the snapshot's statuses).
    v.push(RecordSpec::active(
        key(6).digest(),
        "to-be-revoked",
        &["invoices:read"],
    ));
    let long = "p".repeat(128);
    v.push(RecordSpec::active(
        key(7).digest(),
        &long,
        &["invoices:read"],
    ));
    // Not visible ASCII: the principal header carries it percent-encoded.
    v.push(RecordSpec::active(
        key(9).digest(),
        "z\u{fc}rich 50%",
        &["invoices:read"],
    ));
    v
}

fn snapshot(signer: &Signer, keyset: &str, version: u64) -> Vec<u8> {
    let mut b = SnapshotBuilder::new(
        Name::new(keyset).unwrap(),
        Prefix::new("acme_live").unwrap(),
        version,
        T0 - 60,
    )
    .valid_until(T0 + 86_400);
    for r in records() {
        b.push(r);
    }
    b.build(signer).unwrap()
}

fn update(signer: &Signer, base: u64, seq: u64) -> Vec<u8> {
    let ids: Vec<_> = records().iter().map(|r| r.digest.key_id()).collect();
    let spec = UpdateSpec {
        keyset: Name::new("acme").unwrap(),
        base_version: base,
        sequence: seq,
        created_at: T0,
        valid_until: T0 + 3600,
    };
    build_update(&spec, &ids, &[key(6).key_id()], signer).unwrap()
}

/// Sequence 2 against snapshot 1: key 6 still revoked, key 8 added
/// ("added-later"), key 1 changed (rotated out: deprecated, sunset in an hour).
fn update_with_records(signer: &Signer) -> Vec<u8> {
    let ids: Vec<_> = records().iter().map(|r| r.digest.key_id()).collect();
    let spec = UpdateSpec {
        keyset: Name::new("acme").unwrap(),
        base_version: 1,
        sequence: 2,
        created_at: T0,
        valid_until: T0 + 3600,
    };
    let mut changed = records().remove(0);
    changed.status = Status::Deprecated;
    changed.deprecated_at = Some(T0);
    changed.sunset_at = Some(T0 + 3600);
    let added = RecordSpec::active(key(8).digest(), "added-later", &["invoices:read"]);
    build_update_with(
        &spec,
        &ids,
        &[key(6).key_id()],
        vec![added, changed],
        signer,
    )
    .unwrap()
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fixtures DIR");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let (s1, s2) = (
        Signer::dangerous_from_seed(&[1; 32]),
        Signer::dangerous_from_seed(&[2; 32]),
    );
    let acme = Name::new("acme").unwrap();
    w(
        "trust.kgt",
        &build_bundle(&acme, 1, T0, &[s1.trusted()], &[&s1]),
    );
    w(
        "other-trust.kgt",
        &build_bundle(&acme, 1, T0, &[s2.trusted()], &[&s2]),
    );
    // A v2 bundle signed only by an untrusted key.
    let evil = [
        build_bundle(&acme, 1, T0, &[s1.trusted()], &[&s1]),
        build_bundle(&acme, 2, T0, &[s2.trusted()], &[&s2]),
    ]
    .concat();
    w("untrusted-chain.kgt", &evil);
    // A proper rotation to s2, then a snapshot by s2.
    let rotated = [
        build_bundle(&acme, 1, T0, &[s1.trusted()], &[&s1]),
        build_bundle(&acme, 2, T0, &[s1.trusted(), s2.trusted()], &[&s1, &s2]),
    ]
    .concat();
    w("rotated-chain.kgt", &rotated);
    for v in 1..=VERSIONS {
        w(&format!("snapshot-{v}.kgs"), &snapshot(&s1, "acme", v));
        w(&format!("revocations-{v}.kgr"), &update(&s1, v, 1));
    }
    w("snapshot-other-signer.kgs", &snapshot(&s2, "acme", 1));
    w("snapshot-other-keyset.kgs", &snapshot(&s1, "globex", 1));
    w("update-with-records-1.kgr", &update_with_records(&s1));
    let keys = [
        ("valid", key(1)),
        ("deprecated", key(2)),
        ("revoked", key(3)),
        ("expired", key(4)),
        ("not_yet_valid", key(5)),
        ("revoked_by_update", key(6)),
        ("long_principal", key(7)),
        ("added_by_update", key(8)),
        ("unicode_principal", key(9)),
        ("unknown", key(99)),
    ];
    let mut text = format!("now {T0}\n");
    for (name, k) in keys {
        text += &format!("{name} {}\n", k.expose_secret());
    }
    w("keys.txt", text.as_bytes());
}
