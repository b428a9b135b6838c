//! `keygate drill`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &DrillArgs) -> Res<u8> {
    let poll = humantime::parse_duration(&a.poll)
        .map_err(|e| input(format!("bad poll {:?}: {e}", a.poll)))?;
    if a.gateways == 0 {
        return Err(input("drill needs at least 1 gateway"));
    }
    match a.scenario.as_str() {
        "rotation-breach-bad-push" => {
            if a.clients < 10 {
                return Err(input("drill needs at least 10 clients"));
            }
            crate::drill::run(&crate::drill::Settings {
                gateways: a.gateways,
                clients: a.clients,
                poll,
                json: cli.json,
            })
        }
        "new-keys" => {
            if a.new_keys == 0 {
                return Err(input(
                    "drill --scenario new-keys needs --new-keys of 1 or more",
                ));
            }
            crate::drill_new_keys::run(&crate::drill_new_keys::Settings {
                gateways: a.gateways,
                poll,
                keys: a.keys,
                new_keys: a.new_keys,
                json: cli.json,
            })
        }
        other => Err(input(format!(
            "unknown drill scenario {other:?}: rotation-breach-bad-push or new-keys"
        ))),
    }
}
