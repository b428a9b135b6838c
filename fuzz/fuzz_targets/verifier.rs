#![no_main]
// A verifier with the reference snapshot installed takes arbitrary artifacts
// and keys: never a panic, and a refused artifact changes no verdict.
const TRUST: &[u8] = include_bytes!("../../tests/vectors/trust.kgt");
const SNAPSHOT: &[u8] = include_bytes!("../../tests/vectors/snapshot.kgs");
const KEY: &str = "acme_live_000000x6KWkHkzmVF635OJ7xkXw0FXlce0Yb20a";
const NOW: u64 = 1_767_225_600;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let v = keygate::Verifier::new(TRUST).unwrap();
    v.install_snapshot(SNAPSHOT).unwrap();
    let before = v.verify(KEY, NOW, None);
    let s = v.install_snapshot(data).is_ok();
    let r = v.install_revocations(data).is_ok();
    let t = v.install_trust(data).is_ok();
    if !(s || r || t) {
        assert_eq!(v.verify(KEY, NOW, None), before);
    }
    let _ = v.verify(&String::from_utf8_lossy(data), NOW, Some("invoices:read"));
});
