//! `keygate audit`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &AuditArgs) -> Res<u8> {
    let AuditArgs { cmd } = a;
    let i = open(cli)?;
    match cmd {
        AuditCmd::Verify { snapshot } => {
            let r = match snapshot {
                Some(f) => i.audit_verify_against(
                    &std::fs::read(f).map_err(|e| input(format!("{}: {e}", f.display())))?,
                )?,
                None => i.audit_verify()?,
            };
            // The report is printed either way; a broken chain is also the
            // error (exit 1).
            emit(cli, &r, || {
                if r.first_bad.is_none() {
                    println!(
                        "audit chain intact: {} entries, head {}; {} key rows match it{}",
                        r.entries,
                        r.head,
                        r.keys,
                        r.signed_snapshot.map_or(String::new(), |v| format!(
                            "; holds the head signed into snapshot v{v}"
                        ))
                    );
                }
            });
            match &r.first_bad {
                None => Ok(0),
                Some((0, why)) => Err(Fail(1, format!("audit check failed: {why}"))),
                Some((seq, why)) => {
                    Err(Fail(1, format!("audit chain broken at entry {seq}: {why}")))
                }
            }
        }
        AuditCmd::Log => {
            let log = i.audit_log()?;
            emit(cli, &log, || {
                for e in &log {
                    println!(
                        "{:>5}  {}  {:<10} {:<20} {:<32} {:<20} {}",
                        e.seq,
                        fmt_time(Some(e.at)),
                        printable(&e.actor),
                        printable(&e.action),
                        printable(e.key_id.as_deref().unwrap_or("-")),
                        printable(e.principal.as_deref().unwrap_or("-")),
                        printable(e.reason.as_deref().unwrap_or(""))
                    );
                }
            });
            Ok(0)
        }
    }
}
