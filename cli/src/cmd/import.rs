//! `keygate import`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &ImportArgs) -> Res<u8> {
    // Every line is parsed and checked before anything changes.
    let items = if let Some(f) = &a.from {
        let text =
            std::fs::read_to_string(f).map_err(|e| input(format!("{}: {e}", f.display())))?;
        keygate_issuer::parse_import_lines(&text, &f.display().to_string())?
    } else {
        let (Some(p), Some(h)) = (&a.principal, &a.sha256) else {
            return Err(input(
                "import needs --principal and --sha256, or --from FILE",
            ));
        };
        let expires_at = a.expires_at.as_deref().map(parse_time).transpose()?;
        vec![keygate_issuer::Import::new(p, h, &a.scopes, expires_at)?]
    };
    let mut i = open(cli)?;
    let out = i.import_many(&items)?;
    emit(cli, &json!(out), || {
        for k in &out {
            println!("imported {} for {}", k.key_id, k.principal);
        }
    });
    Ok(0)
}
