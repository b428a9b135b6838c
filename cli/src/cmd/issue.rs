//! `keygate issue`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &IssueArgs) -> Res<u8> {
    let req = IssueRequest {
        principal: Principal::new(a.principal.clone())?,
        scopes: Scope::all(a.scopes.clone())?,
        expires_in: a.expires.as_deref().map(parse_duration).transpose()?,
        not_before: a.not_before.as_deref().map(parse_time).transpose()?,
        class: a.class.clone(),
    };
    if a.count > 1 && a.keys_out.is_none() {
        return Err(input(
            "--count above 1 needs --keys-out FILE (keys are never printed in bulk)",
        ));
    }
    let mut i = open(cli)?;
    if let Some(path) = &a.keys_out {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| input(format!("{}: {e}", path.display())))?;
        let bar = (std::io::stderr().is_terminal() && a.count > 1)
            .then(|| indicatif::ProgressBar::new(a.count));
        let keys = i.issue_many(&req, a.count, |n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        });
        let keys = match keys {
            Ok(k) => k,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e.into());
            }
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let mut text = String::with_capacity(keys.len() * 50);
        for k in &keys {
            text.push_str(k.key.expose_secret());
            text.push('\n');
        }
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Fail(3, format!("{}: {e}", path.display())))?;
        emit(
            cli,
            &json!({"count": keys.len(), "keys_out": path, "principal": a.principal, "key_ids": keys.iter().map(|k| k.info.key_id.to_string()).collect::<Vec<_>>()}),
            || {
                println!(
                    "issued {} keys for {} -> {} (mode 0600)",
                    keys.len(),
                    printable(&a.principal),
                    path.display()
                )
            },
        );
        return Ok(0);
    }
    let k = i.issue(&req)?;
    emit(
        cli,
        &json!({
            "key": k.key.expose_secret(), "key_id": k.info.key_id.to_string(), "principal": k.info.principal,
            "scopes": k.info.scopes, "expires_at": k.info.expires_at,
        }),
        || {
            println!("{}", k.key.expose_secret());
            eprintln!(
                "key {} for {}; this is the only time the key is shown",
                k.info.key_id, k.info.principal
            );
        },
    );
    Ok(0)
}
