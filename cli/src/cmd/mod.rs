//! The commands, one module each, and what they share.

mod admin_key;
mod api;
mod audit;
mod drill;
mod due;
mod import;
mod init;
mod inspect;
mod issue;
mod list;
mod metrics;
mod policy;
mod principal;
mod publish;
mod revoke;
mod rotate;
mod scan;
mod serve;
mod signer;
mod verify;

pub(crate) use verify::verdict_json;

use prelude::*;

/// What every command module uses.
pub(crate) mod prelude {
    pub(crate) use std::io::{BufRead, IsTerminal, Write};
    pub(crate) use std::path::Path;
    pub(crate) use std::time::Duration;

    pub(crate) use keygate::{Digest, KeyId, RevocationView, SnapshotView, Verdict, Verifier};
    pub(crate) use keygate_issuer::{
        printable, IssueRequest, Issuer, Principal, RevokeTarget, Scope, StoreAt,
    };
    pub(crate) use serde_json::{json, Value};

    pub(crate) use super::{actor, emit, fmt_time, open, read_key_arg, store_at};
    pub(crate) use crate::args::*;
    pub(crate) use crate::{input, parse_duration, parse_time, Fail, Res};
}

/// Runs the command given.
pub(crate) fn run(cli: &Cli) -> Res<u8> {
    match &cli.cmd {
        Cmd::Init(a) => init::run(cli, a),
        Cmd::Issue(a) => issue::run(cli, a),
        Cmd::Rotate(a) => rotate::run(cli, a),
        Cmd::Policy(a) => policy::run(cli, a),
        Cmd::Principal(a) => principal::run(cli, a),
        Cmd::Due(a) => due::run(cli, a),
        Cmd::Metrics => metrics::run(cli),
        Cmd::Revoke(a) => revoke::run(cli, a),
        Cmd::List(a) => list::run(cli, a),
        Cmd::Import(a) => import::run(cli, a),
        Cmd::Publish(a) => publish::run(cli, a),
        Cmd::Verify(a) => verify::run(cli, a),
        Cmd::Inspect(a) => inspect::run(cli, a),
        Cmd::Audit(a) => audit::run(cli, a),
        Cmd::Scan(a) => scan::run(cli, a),
        Cmd::Signer(a) => signer::run(cli, a),
        Cmd::Demo => crate::demo::run(cli.json),
        Cmd::Api(a) => api::run(cli, a),
        Cmd::AdminKey(a) => admin_key::run(cli, a),
        Cmd::Serve(a) => serve::run(a),
        Cmd::Drill(a) => drill::run(cli, a),
    }
}

/// The one output path: with `--json`, `value` as JSON; otherwise the
/// text `text` prints.
pub(crate) fn emit(cli: &Cli, value: &impl serde::Serialize, text: impl FnOnce()) {
    if cli.json {
        print_json(value);
    } else {
        text();
    }
}

/// RFC 3339 for times humantime can show (to year 9999); a later one, which
/// only a hostile artifact or export holds, as its number of seconds.
pub(crate) fn fmt_time(t: Option<u64>) -> String {
    const YEAR_9999_END: u64 = 253_402_300_799;
    match t {
        None => "-".into(),
        Some(t) if t > YEAR_9999_END => format!("@{t}"),
        Some(t) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t))
                .to_string()
        }
    }
}

pub(crate) fn actor(cli: &Cli) -> String {
    cli.actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn store_at(cli: &Cli) -> StoreAt {
    StoreAt::parse(&cli.store).with_seal_key_file(cli.seal_key_file.clone())
}

pub(crate) fn open(cli: &Cli) -> Res<Issuer> {
    let mut i = Issuer::open_at(&store_at(cli), &actor(cli))?;
    i.set_now(cli.clock.as_deref().map(parse_time).transpose()?);
    Ok(i)
}

/// JSON as every command prints it (pretty, one document).
pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(crate) fn read_key_arg(k: &str) -> Res<String> {
    if k != "-" {
        return Ok(k.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| input(format!("reading key from stdin: {e}")))?;
    Ok(line.trim().to_string())
}
