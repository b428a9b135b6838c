//! `keygate metrics`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli) -> Res<u8> {
    let i = open(cli)?;
    print!("{}", i.metrics()?);
    Ok(0)
}
