//! `keygate verify`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &VerifyArgs) -> Res<u8> {
    let VerifyArgs {
        scope, now, key, ..
    } = a;
    let (trust, snapshot, revocations) = match &a.artifacts_dir {
        Some(d) => {
            let update = d.join(keygate::Artifact::Revocations.file_name());
            (
                d.join(keygate::Artifact::Trust.file_name()),
                d.join(keygate::Artifact::Snapshot.file_name()),
                update.exists().then_some(update),
            )
        }
        // clap requires both without --artifacts-dir.
        None => (
            a.trust.clone().unwrap_or_default(),
            a.snapshot.clone().unwrap_or_default(),
            a.revocations.clone(),
        ),
    };
    let (trust, snapshot, revocations) = (&trust, &snapshot, &revocations);
    let read = |p: &Path| std::fs::read(p).map_err(|e| input(format!("{}: {e}", p.display())));
    let v = Verifier::new(&read(trust)?).map_err(|e| input(format!("{}: {e}", trust.display())))?;
    v.install_snapshot(&read(snapshot)?)
        .map_err(|e| input(format!("{}: {e}", snapshot.display())))?;
    if let Some(r) = revocations {
        v.install_revocations(&read(r)?)
            .map_err(|e| input(format!("{}: {e}", r.display())))?;
    }
    let key = read_key_arg(key)?;
    let d = match now {
        Some(t) => v.verify(&key, parse_time(t)?, scope.as_deref()),
        None => v.verify_now(&key, scope.as_deref()),
    };
    emit(cli, &verdict_json(&d), || {
        print_verdict(&d);
    });
    Ok(if d.outcome.is_accepted() { 0 } else { 1 })
}

pub(crate) fn verdict_json(d: &Verdict) -> Value {
    json!({
        "outcome": d.outcome.as_str(),
        "principal": d.principal.as_str(),
        "key_id": d.key_id.map(|k| k.to_string()),
        "expires_at": d.expires_at,
        "deprecated_at": d.deprecated_at,
        "sunset_at": d.sunset_at,
        "snapshot_version": d.snapshot_version,
        "revocation_seq": d.revocation_seq,
        "stale": d.stale,
    })
}

fn print_verdict(d: &Verdict) {
    println!("outcome           {}", d.outcome);
    println!(
        "principal         {}",
        if d.principal.as_str().is_empty() {
            "-"
        } else {
            d.principal.as_str()
        }
    );
    println!(
        "key_id            {}",
        d.key_id.map_or("-".into(), |k| k.to_string())
    );
    println!("expires_at        {}", fmt_time(d.expires_at));
    println!("deprecated_at     {}", fmt_time(d.deprecated_at));
    println!("sunset_at         {}", fmt_time(d.sunset_at));
    println!("snapshot_version  {}", d.snapshot_version);
    println!("revocation_seq    {}", d.revocation_seq);
    println!("stale             {}", d.stale);
}
