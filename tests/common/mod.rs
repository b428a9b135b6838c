//! Shared fixtures: deterministic signers, keys and artifacts.
#![allow(dead_code)]

use keygate::{
    build_bundle, build_update, ApiKey, Digest, KeyId, Name, Prefix, RecordSpec, Signer,
    SnapshotBuilder, Status, UpdateSpec,
};

pub const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
pub const PREFIX: &str = "acme_live";

pub fn keyset() -> Name {
    Name::new("acme").unwrap()
}

pub fn signer(n: u8) -> Signer {
    Signer::dangerous_from_seed(&[n; 32])
}

pub fn key(n: u32) -> ApiKey {
    let mut s = [0u8; 24];
    s[..4].copy_from_slice(&n.to_be_bytes());
    s[4..8].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
    ApiKey::from_secret_bytes(PREFIX, &s).unwrap()
}

pub fn trust(signer: &Signer) -> Vec<u8> {
    build_bundle(&keyset(), 1, T0, &[signer.trusted()], &[signer])
}

/// The reference keyset: one key per outcome-relevant state.
pub struct Reference {
    pub valid: ApiKey,
    pub deprecated: ApiKey,
    pub revoked: ApiKey,
    pub expired: ApiKey,
    pub future: ApiKey,
    pub imported: &'static str,
}

pub fn reference() -> Reference {
    Reference {
        valid: key(1),
        deprecated: key(2),
        revoked: key(3),
        expired: key(4),
        future: key(5),
        imported: "legacy-token-0123456789",
    }
}

pub fn reference_records(r: &Reference) -> Vec<RecordSpec> {
    let mut v = RecordSpec::active(
        r.valid.digest(),
        "billing-service",
        &["invoices:read", "invoices:write"],
    );
    v.expires_at = Some(T0 + 90 * 86_400);
    let mut d = RecordSpec::active(r.deprecated.digest(), "billing-service", &["invoices:read"]);
    d.status = Status::Deprecated;
    d.deprecated_at = Some(T0 - 3600);
    d.sunset_at = Some(T0 + 7 * 86_400);
    let mut rv = RecordSpec::active(r.revoked.digest(), "search-indexer", &["search:read"]);
    rv.status = Status::Revoked;
    let mut e = RecordSpec::active(r.expired.digest(), "old-batch", &["invoices:read"]);
    e.expires_at = Some(T0 - 1);
    let mut f = RecordSpec::active(r.future.digest(), "new-partner", &["invoices:read"]);
    f.not_before = T0 + 3600;
    let mut i = RecordSpec::active(
        Digest::of(r.imported.as_bytes()),
        "legacy-client",
        &["invoices:read"],
    );
    i.imported = true;
    vec![v, d, rv, e, f, i]
}

pub fn snapshot_with(signer: &Signer, version: u64, records: Vec<RecordSpec>) -> Vec<u8> {
    let mut b = SnapshotBuilder::new(keyset(), Prefix::new(PREFIX).unwrap(), version, T0 - 60)
        .valid_until(T0 + 86_400);
    for r in records {
        b.push(r);
    }
    b.build(signer).unwrap()
}

pub fn reference_snapshot(signer: &Signer, version: u64) -> Vec<u8> {
    snapshot_with(signer, version, reference_records(&reference()))
}

pub fn update(
    signer: &Signer,
    base: u64,
    seq: u64,
    universe: &[KeyId],
    revoked: &[KeyId],
) -> Vec<u8> {
    let spec = UpdateSpec {
        keyset: keyset(),
        base_version: base,
        sequence: seq,
        created_at: T0,
        valid_until: T0 + 3600,
    };
    build_update(&spec, universe, revoked, signer).unwrap()
}

pub fn reference_ids() -> Vec<KeyId> {
    reference_records(&reference())
        .iter()
        .map(|r| r.digest.key_id())
        .collect()
}
