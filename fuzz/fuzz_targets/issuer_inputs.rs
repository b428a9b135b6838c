#![no_main]
// The issuer's text inputs: durations, times, import lines, gateway usage
// exports, scanned file contents and text shown on a terminal. Never a panic.
use keygate_issuer::{find_in, parse_duration, parse_import_lines, parse_time, printable, UsageReport};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_duration(&text);
    let _ = parse_time(&text);
    let _ = parse_import_lines(&text, "fuzz");
    let _ = UsageReport::default().add_export("fuzz", &text);
    let _ = find_in(data, "acme_live");
    assert!(!printable(&text).contains('\u{1b}'));
});
