//! `keygate signer`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &SignerArgs) -> Res<u8> {
    let SignerArgs {
        cmd: SignerCmd::Rotate,
    } = a;
    let mut i = open(cli)?;
    let r = i.rotate_signer()?;
    emit(cli, &json!(r), || {
        println!(
            "new signer {}; trust bundle v{} lists it beside {} (retired after the next two publishes)",
            r.new_signer, r.trust_version, r.retiring
        );
    });
    Ok(0)
}
