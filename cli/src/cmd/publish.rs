//! `keygate publish`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &PublishArgs) -> Res<u8> {
    let valid_for = parse_duration(&a.valid_for)?;
    let compact_age = parse_duration(&a.compact_age)?;
    let mut i = open(cli)?;
    let update = a.update
        || (!a.full
            && i.is_published_in(&a.out)?
            && !needs_snapshot(&i, a.compact_records, compact_age)?);
    let r = if update {
        i.publish_update(&a.out, valid_for)?
    } else {
        i.publish(&a.out, valid_for)?
    };
    emit(cli, &r, || {
        if update {
            println!(
                "published revocations.kgr (the update): base snapshot v{}, sequence {}, {} revoked, {} added or changed, {} bytes -> {}",
                r.snapshot_version, r.revocation_seq, r.revoked_in_update, r.records_in_update, r.revocations_bytes, a.out.display()
            );
        } else {
            println!(
                "published snapshot v{} ({} keys, {} bytes), revocations seq {}, trust v{} -> {}",
                r.snapshot_version,
                r.keys,
                r.snapshot_bytes,
                r.revocation_seq,
                r.trust_version,
                a.out.display()
            );
        }
    });
    Ok(0)
}

/// Whether a full snapshot is due (beyond `out` not holding the last one:
/// a new directory, a damaged file): nothing published yet, a signer
/// rotation under way, the update past `compact_records` added or changed
/// keys, or the snapshot older than `compact_age`.
fn needs_snapshot(i: &Issuer, compact_records: Option<u64>, compact_age: u64) -> Res<bool> {
    let Some(p) = i.pending_update()? else {
        return Ok(true);
    };
    let limit = compact_records.unwrap_or((p.snapshot_keys / 50).max(1000));
    Ok(i.signer_rotation_pending()?
        || p.records > limit
        || i.now() >= p.snapshot_created_at.saturating_add(compact_age))
}
