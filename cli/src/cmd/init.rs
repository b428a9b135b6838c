//! `keygate init`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &InitArgs) -> Res<u8> {
    let InitArgs { keyset, prefix } = a;
    let at = store_at(cli);
    let mut i = Issuer::init_at(&at, keyset, prefix, &actor(cli))?;
    i.set_now(cli.clock.as_deref().map(parse_time).transpose()?);
    let info = i.info()?;
    emit(
        cli,
        &json!({"store": at.to_string(), "keyset": info.keyset, "prefix": info.prefix}),
        || {
            println!(
                "initialized keyset '{}' (prefix {}) in {}",
                info.keyset, info.prefix, at
            )
        },
    );
    Ok(0)
}
