//! `keygate api`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &ApiArgs) -> Res<u8> {
    let ApiArgs {
        listen,
        publish_to,
        publish_hook,
        publish_delay,
        fleet_poll,
        valid_for,
        snapshot_every,
        usage_from,
        max_connections,
        header_timeout,
        threads,
    } = a;
    let duration = |what: &str, s: &str| {
        humantime::parse_duration(s).map_err(|e| input(format!("bad {what} {s:?}: {e}")))
    };
    crate::api::run(crate::api::Settings {
        listen: listen.clone(),
        store: store_at(cli),
        publish_to: publish_to.clone(),
        publish_hook: publish_hook.clone(),
        publish_delay: duration("publish delay", publish_delay)?,
        fleet_poll: duration("fleet poll", fleet_poll)?,
        valid_for: duration("valid-for", valid_for)?.as_secs(),
        snapshot_every: duration("snapshot-every", snapshot_every)?,
        usage_from: usage_from.clone(),
        max_connections: *max_connections,
        header_timeout: duration("header timeout", header_timeout)?,
        threads: *threads,
    })
}
