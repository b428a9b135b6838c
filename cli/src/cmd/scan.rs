//! `keygate scan`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &ScanArgs) -> Res<u8> {
    let ScanArgs {
        paths,
        revoke,
        respect_gitignore,
    } = a;
    if paths.is_empty() {
        return Err(input("scan needs at least one PATH"));
    }
    let mut i = open(cli)?;
    let opts = keygate_issuer::ScanOptions {
        respect_gitignore: *respect_gitignore,
    };
    // Findings are printed as they are found: a scan of a huge tree
    // or log holds no list of them. (Write errors, e.g. a closed
    // pipe, do not stop a scan that may be revoking.)
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut shown = 0u64;
    let r = i.scan(paths, &opts, *revoke, |f| {
        let _ = if cli.json {
            let sep = if shown == 0 { "[\n  " } else { ",\n  " };
            write!(out, "{sep}{}", serde_json::to_string(f).unwrap_or_default())
        } else {
            writeln!(
                out,
                "{}:{}  {}  {}  {}",
                printable(&f.path.to_string_lossy()),
                f.line,
                f.key_id,
                f.status,
                printable(f.principal.as_deref().unwrap_or("-"))
            )
        };
        shown += 1;
    });
    if cli.json {
        let _ = writeln!(out, "{}", if shown == 0 { "[]" } else { "\n]" });
    }
    let _ = out.flush();
    drop(out);
    let r = r?;
    if !cli.json {
        eprintln!(
            "{} key(s) found{}",
            r.findings,
            if *revoke {
                format!(", {} revoked", r.revoked)
            } else {
                String::new()
            }
        );
    }
    for u in &r.unreadable {
        eprintln!(
            "keygate: scan: cannot read {}: {}",
            printable(&u.path.to_string_lossy()),
            printable(&u.error)
        );
    }
    if !r.unreadable.is_empty() {
        return Err(Fail(
            3,
            format!(
                "scan incomplete: {} path(s) could not be read",
                r.unreadable.len()
            ),
        ));
    }
    Ok(0)
}
