//! `keygate publish`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &PublishArgs) -> Res<u8> {
    let PublishArgs {
        out,
        valid_for,
        revocations_only,
    } = a;
    let valid_for = parse_duration(valid_for)?;
    let mut i = open(cli)?;
    let r = if *revocations_only {
        i.publish_revocations(out, valid_for)?
    } else {
        i.publish(out, valid_for)?
    };
    emit(cli, &r, || {
        if *revocations_only {
            println!(
                "published revocations.kgr: base snapshot v{}, sequence {}, {} revoked, {} bytes -> {}",
                r.snapshot_version, r.revocation_seq, r.revoked_in_update, r.revocations_bytes, out.display()
            );
        } else {
            println!(
                "published snapshot v{} ({} keys, {} bytes), revocations seq {}, trust v{} -> {}",
                r.snapshot_version,
                r.keys,
                r.snapshot_bytes,
                r.revocation_seq,
                r.trust_version,
                out.display()
            );
        }
    });
    Ok(0)
}
