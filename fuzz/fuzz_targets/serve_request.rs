#![no_main]
// The gateway contract below any HTTP parser (every surface's request path):
// arbitrary header lines (`name: value`, any bytes) -> the answer, its
// response headers, which headers are stripped, the principal's header
// value; and the texts read from files or other processes (high-water
// state, stats). Never a panic.
const TRUST: &[u8] = include_bytes!("../../tests/vectors/trust.kgt");
const SNAPSHOT: &[u8] = include_bytes!("../../tests/vectors/snapshot.kgs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let headers: Vec<(&[u8], &[u8])> = data
        .split(|b| *b == b'\n')
        .filter_map(|l| l.iter().position(|b| *b == b':').map(|i| (&l[..i], &l[i + 1..])))
        .collect();
    let v = keygate::Verifier::new(TRUST).unwrap();
    v.install_snapshot(SNAPSHOT).unwrap();
    let (answer, verdict) = v.check(headers.iter().copied(), 1_767_225_600, Some("invoices:read"));
    let policy = keygate::Policy::DEFAULT;
    assert_eq!(answer.response_headers(&policy).count() <= 2, true);
    for (n, val) in &headers {
        let _ = policy.strips(n, val);
    }
    if let Some(d) = verdict {
        assert!(keygate::principal_value(d.principal.as_str()).as_str().len() <= 384);
    }
    let _ = keygate::Stats::parse(&String::from_utf8_lossy(data));
    let _ = keygate::HighWater::parse(&String::from_utf8_lossy(data), "acme");
});
