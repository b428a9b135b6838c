//! `keygate rotate`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &RotateArgs) -> Res<u8> {
    let grace = a.grace.as_deref().map(parse_duration).transpose()?;
    let mut i = open(cli)?;
    if a.due {
        let within = parse_duration(&a.within)?;
        let mut out = match &a.keys_out {
            Some(path) if !a.dry_run => {
                use std::os::unix::fs::OpenOptionsExt;
                Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)
                        .map_err(|e| input(format!("{}: {e}", path.display())))?,
                )
            }
            _ => None,
        };
        let done = i.rotate_due(within, a.dry_run)?;
        let mut text = String::new();
        for r in &done {
            if let Some(k) = &r.new_key {
                text += &format!("{} {}\n", r.principal, k.key.expose_secret());
            }
        }
        if let Some(f) = &mut out {
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| Fail(3, e.to_string()))?;
        }
        let keys: Vec<Value> = done
            .iter()
            .map(|r| {
                let mut v = json!(r);
                if out.is_none() {
                    if let Some(k) = &r.new_key {
                        v["key"] = json!(k.key.expose_secret());
                    }
                }
                v
            })
            .collect();
        emit(cli, &keys, || {
            for r in &done {
                let what = if a.dry_run { "would rotate" } else { "rotated" };
                eprintln!(
                    "{what} {} (class {}, grace {}): due {}",
                    r.principal,
                    r.class.as_deref().unwrap_or("-"),
                    humantime::format_duration(Duration::from_secs(r.grace)),
                    r.due_keys.join(", ")
                );
            }
            if out.is_none() {
                print!("{text}");
            }
            if done.is_empty() {
                eprintln!("nothing due");
            }
        });
        return Ok(0);
    }
    let (new, old) = if let Some(id) = &a.key_id {
        let id = KeyId::from_hex(id).ok_or_else(|| input("a key id is 32 hex digits"))?;
        i.rotate_key(&id, grace)?
    } else {
        let Some(principal) = &a.principal else {
            return Err(input("rotate needs --principal P, --key-id ID or --due"));
        };
        if let Some(c) = &a.class {
            i.set_principal_class(principal, c)?;
        }
        i.rotate(principal, grace)?
    };
    emit(
        cli,
        &json!({
            "key": new.key.expose_secret(), "key_id": new.info.key_id.to_string(), "principal": new.info.principal,
            "scopes": new.info.scopes, "expires_at": new.info.expires_at, "deprecated": old,
        }),
        || {
            println!("{}", new.key.expose_secret());
            eprintln!(
                "new key {} for {}; this is the only time the key is shown",
                new.info.key_id,
                printable(&new.info.principal)
            );
            for o in &old {
                eprintln!("deprecated {} (sunset {})", o.key_id, fmt_time(o.sunset_at));
            }
        },
    );
    Ok(0)
}
