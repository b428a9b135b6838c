//! `keygate due`.

use super::prelude::*;

pub(crate) fn run(cli: &Cli, a: &DueArgs) -> Res<u8> {
    let DueArgs { within } = a;
    let within = parse_duration(within)?;
    let i = open(cli)?;
    let due = i.due(within)?;
    emit(cli, &due, || {
        if due.is_empty() {
            println!("nothing due");
            return;
        }
        println!(
            "{:<32}  {:<20}  {:<10}  {:<10}  {:<13}  {:<20}  {:>9}",
            "KEY ID", "PRINCIPAL", "CLASS", "STATUS", "REASON", "DUE", "DAYS LEFT"
        );
        for d in &due {
            println!(
                "{:<32}  {:<20}  {:<10}  {:<10}  {:<13}  {:<20}  {:>9}",
                d.key_id,
                printable(&d.principal),
                printable(d.class.as_deref().unwrap_or("-")),
                d.status,
                d.reason,
                fmt_time(Some(d.due_at)),
                d.days_left
            );
        }
    });
    Ok(if due.is_empty() { 0 } else { 1 })
}
