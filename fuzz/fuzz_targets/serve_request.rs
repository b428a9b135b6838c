#![no_main]
// `keygate serve`'s request handling below the HTTP parser: arbitrary header
// lines (`name: value`, any bytes) -> the presented key -> a verify; and the
// high-water state file. Never a panic.
const TRUST: &[u8] = include_bytes!("../../tests/vectors/trust.kgt");
const SNAPSHOT: &[u8] = include_bytes!("../../tests/vectors/snapshot.kgs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let headers: Vec<(&[u8], &[u8])> = data
        .split(|b| *b == b'\n')
        .filter_map(|l| l.iter().position(|b| *b == b':').map(|i| (&l[..i], &l[i + 1..])))
        .collect();
    let v = keygate::Verifier::new(TRUST).unwrap();
    v.install_snapshot(SNAPSHOT).unwrap();
    if let keygate::Presented::Key(k) = keygate::presented_key(headers) {
        let _ = v.verify(std::str::from_utf8(k).unwrap_or(""), 1_767_225_600, Some("invoices:read"));
    }
    let _ = keygate::HighWater::parse(&String::from_utf8_lossy(data), "acme");
});
