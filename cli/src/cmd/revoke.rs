//! `keygate revoke`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &RevokeArgs) -> Res<u8> {
    let t = &a.target;
    let target = if let Some(id) = &t.key_id {
        RevokeTarget::Ids(vec![KeyId::from_hex(id)
            .ok_or_else(|| input(format!("bad key id {id:?}: want 32 hex digits")))?])
    } else if let Some(k) = &t.key {
        RevokeTarget::Ids(vec![Digest::of(read_key_arg(k)?.as_bytes()).key_id()])
    } else if let Some(p) = &t.principal {
        RevokeTarget::Principal(p.clone())
    } else if let Some(f) = &t.from {
        let text =
            std::fs::read_to_string(f).map_err(|e| input(format!("{}: {e}", f.display())))?;
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            ids.push(
                KeyId::from_hex(l)
                    .ok_or_else(|| input(format!("{}:{}: not a key id", f.display(), n + 1)))?,
            );
        }
        RevokeTarget::Ids(ids)
    } else {
        return Err(input(
            "revoke needs one of --key-id, --key, --principal, --from",
        ));
    };
    let mut i = open(cli)?;
    let r = i.revoke(&target, a.reason.as_deref())?;
    emit(cli, &json!(r), || {
        for x in &r {
            println!(
                "{} {} ({})",
                if x.already_revoked {
                    "already revoked"
                } else {
                    "revoked"
                },
                x.key_id,
                x.principal
            );
        }
        eprintln!("publish the fast update with: keygate publish --out DIR --revocations-only");
    });
    Ok(0)
}
