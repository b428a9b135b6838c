//! `keygate principal`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &PrincipalArgs) -> Res<u8> {
    let PrincipalArgs {
        cmd: PrincipalCmd::Set { principal, class },
    } = a;
    let mut i = open(cli)?;
    i.set_principal_class(principal, class)?;
    emit(
        cli,
        &json!({"principal": principal, "class": class}),
        || {
            println!("principal {principal} is in class {class}");
        },
    );
    Ok(0)
}
