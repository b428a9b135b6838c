//! `keygate policy`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &PolicyArgs) -> Res<u8> {
    let PolicyArgs { cmd } = a;
    let mut i = open(cli)?;
    match cmd {
        PolicyCmd::Set {
            class,
            max_age,
            grace,
            rotate_before,
        } => {
            let p = keygate_issuer::Policy {
                class: class.clone(),
                max_age: parse_duration(max_age)?,
                grace: parse_duration(grace)?,
                rotate_before: rotate_before.as_deref().map(parse_duration).transpose()?,
            };
            i.set_policy(&p)?;
            emit(cli, &json!(p), || {
                println!("policy {class}: max-age {max_age}, grace {grace}");
            });
        }
        PolicyCmd::List => {
            let ps = i.policies()?;
            emit(cli, &json!(ps), || {
                println!(
                    "{:<16} {:>10} {:>10} {:>14}",
                    "CLASS", "MAX-AGE", "GRACE", "ROTATE-BEFORE"
                );
                for p in ps {
                    let d = |s: u64| humantime::format_duration(Duration::from_secs(s)).to_string();
                    println!(
                        "{:<16} {:>10} {:>10} {:>14}",
                        p.class,
                        d(p.max_age),
                        d(p.grace),
                        d(p.rotate_before.unwrap_or(p.grace))
                    );
                }
            });
        }
    }
    Ok(0)
}
