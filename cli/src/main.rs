//! `keygate`: the issuer CLI, a thin shell over `keygate_issuer`.

mod api;
mod args;
mod cmd;
mod demo;
mod drill;
mod drill_new_keys;
mod listener;
mod serve;

use std::process::ExitCode;

use clap::Parser;
use keygate_issuer::IssuerError;

use args::Cli;

/// A CLI failure: the message and the exit code.
pub(crate) struct Fail(pub(crate) u8, pub(crate) String);

impl From<IssuerError> for Fail {
    fn from(e: IssuerError) -> Self {
        // The exit-code policy is the CLI's: 2 for what the caller can
        // fix in its input, 3 for the store or the system.
        let input = matches!(
            e,
            IssuerError::Invalid(_)
                | IssuerError::NotFound(_)
                | IssuerError::Conflict(_)
                | IssuerError::NoStore(_)
                | IssuerError::AlreadyInitialized(_)
                | IssuerError::Artifact(_)
        );
        Fail(if input { 2 } else { 3 }, e.to_string())
    }
}

pub(crate) fn input(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

pub(crate) type Res<T> = Result<T, Fail>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The old spelling is refused, not ignored: a harness that still sets it
    // would otherwise run on the real clock without noticing.
    if std::env::var_os("KEYGATE_NOW").is_some() {
        eprintln!(
            "keygate: KEYGATE_NOW is no longer read; tests and drills set KEYGATE_DANGEROUS_NOW"
        );
        return ExitCode::from(2);
    }
    match cmd::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("keygate: {msg}");
            ExitCode::from(code)
        }
    }
}

pub(crate) fn parse_duration(s: &str) -> Res<u64> {
    Ok(keygate_issuer::parse_duration(s)?)
}

pub(crate) fn parse_time(s: &str) -> Res<u64> {
    Ok(keygate_issuer::parse_time(s)?)
}
