//! `keygate list`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &ListArgs) -> Res<u8> {
    let ListArgs {
        principal,
        status,
        usage,
    } = a;
    let i = open(cli)?;
    let status = status.as_deref().map(str::parse).transpose()?;
    let keys = i.list(principal.as_deref(), status)?;
    let mut report = keygate_issuer::UsageReport::default();
    for f in usage {
        let text =
            std::fs::read_to_string(f).map_err(|e| input(format!("{}: {e}", f.display())))?;
        report.add_export(&f.display().to_string(), &text)?;
    }
    let used = |id: &str| report.get(id).filter(|_| !usage.is_empty());
    let rows: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let mut v = json!(k);
            if !usage.is_empty() {
                let u = used(&k.key_id.to_string());
                v["last_used_at"] = json!(u.map(|u| u.last_seen));
                v["uses"] = json!(u.map(|u| u.uses));
            }
            v
        })
        .collect();
    emit(cli, &rows, || {
        println!(
            "{:<32}  {:<20}  {:<10}  {:<20}  {:<20}  {:<20}  LAST USE",
            "KEY ID", "PRINCIPAL", "STATUS", "CREATED", "EXPIRES", "SUNSET"
        );
        for k in &keys {
            let last = used(&k.key_id.to_string()).map_or("-".to_string(), |u| {
                format!("{} ({} uses)", fmt_time(Some(u.last_seen)), u.uses)
            });
            println!(
                "{:<32}  {:<20}  {:<10}  {:<20}  {:<20}  {:<20}  {last}",
                k.key_id,
                printable(&k.principal),
                k.status,
                fmt_time(Some(k.created_at)),
                fmt_time(k.expires_at),
                fmt_time(k.sunset_at)
            );
        }
        if usage.is_empty() {
            eprintln!("(last use: gateways count deprecated keys; pass their /metrics exports with --usage FILE)");
        }
    });
    Ok(0)
}
