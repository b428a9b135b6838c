//! `keygate drill`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &DrillArgs) -> Res<u8> {
    let DrillArgs {
        gateways,
        clients,
        poll,
    } = a;
    if *gateways == 0 || *clients < 10 {
        return Err(input("drill needs at least 1 gateway and 10 clients"));
    }
    let poll =
        humantime::parse_duration(poll).map_err(|e| input(format!("bad poll {poll:?}: {e}")))?;
    crate::drill::run(&crate::drill::Settings {
        gateways: *gateways,
        clients: *clients,
        poll,
        json: cli.json,
    })
}
