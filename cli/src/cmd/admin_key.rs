//! `keygate admin-key`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &AdminKeyArgs) -> Res<u8> {
    let AdminKeyArgs {
        principal,
        scopes,
        list,
        revoke,
        rotate,
        grace,
    } = a;
    let mut i = open(cli)?;
    if *list {
        let keys = i.admin_keys()?;
        emit(cli, &keys, || {
            for k in &keys {
                let state = match (k.revoked_at, k.expires_at) {
                    (Some(_), _) => "revoked".to_string(),
                    (None, Some(t)) => {
                        format!("rotated, works until {}", fmt_time(Some(t)))
                    }
                    (None, None) => "active".to_string(),
                };
                println!(
                    "{}  {}  {}  {state}",
                    k.key_id,
                    printable(&k.principal),
                    Scope::list(&k.scopes, ",")
                );
            }
        });
        return Ok(0);
    }
    if let Some(id) = revoke {
        let id = KeyId::from_hex(id).ok_or_else(|| input("a key id is 32 hex digits"))?;
        let k = i.revoke_admin_key(&id)?;
        emit(cli, &k, || println!("revoked admin key {}", k.key_id));
        return Ok(0);
    }
    let k = if let Some(id) = rotate {
        let id = KeyId::from_hex(id).ok_or_else(|| input("a key id is 32 hex digits"))?;
        let grace = humantime::parse_duration(grace)
            .map_err(|e| input(format!("bad --grace {grace:?}: {e}")))?;
        i.rotate_admin_key(&id, grace.as_secs())?
    } else {
        let principal = principal
            .as_deref()
            .ok_or_else(|| input("admin-key needs --principal (or --list, --revoke, --rotate)"))?;
        i.create_admin_key(
            &Principal::new(principal)?,
            &Scope::all(scopes.iter().cloned())?,
        )?
    };
    let principal = &k.info.principal;
    emit(
        cli,
        &json!({"key": k.key.expose_secret(), "key_id": k.info.key_id.to_string(), "principal": k.info.principal, "scopes": k.info.scopes}),
        || {
            println!("{}", k.key.expose_secret());
            eprintln!(
                "admin key {} for {} ({}); shown once",
                k.info.key_id,
                printable(principal),
                Scope::list(&k.info.scopes, ",")
            );
        },
    );
    Ok(0)
}
