//! `keygate inspect`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &InspectArgs) -> Res<u8> {
    let file = &a.file;
    let b = std::fs::read(file).map_err(|e| input(format!("{}: {e}", file.display())))?;
    let v: Value = match b.get(..4) {
        Some(b"KGS\0") => {
            let s = SnapshotView::parse_unverified(&b)
                .map_err(|e| input(format!("{}: {e}", file.display())))?;
            let h = s.header();
            let mut counts = [0u64; 3];
            for r in s.records() {
                counts[r.status() as usize] += 1;
            }
            json!({
                "artifact": "snapshot", "keyset": h.keyset.as_str(), "prefix": h.prefix.as_str(), "version": h.version,
                "created_at": h.created_at, "valid_until": h.valid_until, "signer": h.signer.to_string(),
                "audit_head": h.audit_head.iter().map(|x| format!("{x:02x}")).collect::<String>(),
                "keys": h.record_count, "imported": h.imported_count,
                "active": counts[0], "deprecated": counts[1], "revoked": counts[2],
                "scopes": s.scope_names().collect::<Vec<_>>(), "bytes": b.len(),
                "signature": "not checked (inspect reads untrusted files; use `keygate verify` with a trust file)",
            })
        }
        Some(b"KGR\0") => {
            let r = RevocationView::parse_unverified(&b)
                .map_err(|e| input(format!("{}: {e}", file.display())))?;
            let h = r.header();
            json!({
                "artifact": "revocations", "keyset": h.keyset.as_str(), "base_version": h.base_version,
                "sequence": h.sequence, "created_at": h.created_at, "valid_until": h.valid_until,
                "signer": h.signer.to_string(), "universe": h.universe_count, "revoked": h.revoked_count,
                "filter_bytes": h.filter_len(), "bytes": b.len(),
            })
        }
        Some(b"KGT\0") => {
            let t = keygate::TrustSet::from_chain(&b)
                .map_err(|e| input(format!("{}: {e}", file.display())))?;
            json!({
                "artifact": "trust", "keyset": t.keyset().as_str(), "version": t.version(), "created_at": t.created_at(),
                "signers": t.signers().iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
                "signature": "chain verified from its first bundle", "bytes": b.len(),
            })
        }
        _ => {
            return Err(input(format!(
                "{}: not a keygate artifact (unknown magic)",
                file.display()
            )))
        }
    };
    emit(cli, &v, || {
        let Value::Object(m) = &v else { return };
        for (k, val) in m {
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) if k.ends_with("_at") || k.ends_with("until") => {
                    format!("{} ({})", n, fmt_time(n.as_u64()))
                }
                other => other.to_string(),
            };
            println!("{k:<14} {s}");
        }
    });
    Ok(0)
}
