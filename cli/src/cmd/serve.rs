//! `keygate serve`.

use super::prelude::*;

pub(crate) fn run(a: &ServeArgs) -> Res<u8> {
    let ServeArgs {
        listen,
        metrics_listen,
        trust,
        snapshot,
        revocations,
        artifacts_dir,
        artifacts_url,
        poll,
        scope,
        trust_scope_header,
        state,
        realm,
        threads,
        max_connections,
        header_timeout,
    } = a;
    let sources = match (artifacts_dir, artifacts_url) {
        (_, Some(u)) => keygate::Origin::url(u),
        (Some(d), None) => keygate::Origin::dir(d),
        (None, None) => keygate::Origin::Files {
            // The pinned file is re-read: an operator may append
            // newer bundles to it.
            trust: Some(trust.clone()),
            snapshot: snapshot
                .clone()
                .ok_or_else(|| input("serve needs --snapshot or --artifacts-dir"))?,
            revocations: revocations.clone(),
        },
    };
    let duration = |what: &str, s: &str| {
        humantime::parse_duration(s).map_err(|e| input(format!("bad {what} {s:?}: {e}")))
    };
    keygate::Policy::new(realm, "x-keygate-principal", crate::serve::RETRY_AFTER)
        .map_err(|e| input(format!("bad --realm: {e}")))?;
    crate::serve::run(crate::serve::Settings {
        listen: listen.clone(),
        metrics_listen: metrics_listen.clone(),
        trust: trust.clone(),
        source: keygate::Source::new(sources),
        poll: duration("poll", poll)?,
        scope: scope.clone(),
        trust_scope_header: *trust_scope_header,
        realm: realm.clone(),
        threads: *threads,
        max_connections: *max_connections,
        header_timeout: duration("header timeout", header_timeout)?,
        state: state.clone(),
    })
}
