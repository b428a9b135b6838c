#![no_main]
// Arbitrary bytes as a trust chain, as an anchor and as a follow-up.
const ANCHOR: &[u8] = include_bytes!("../../tests/vectors/trust.kgt");
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = keygate::TrustSet::from_chain(data);
    let anchor = keygate::TrustSet::from_chain(ANCHOR).unwrap();
    if let Ok(next) = anchor.follow(data) {
        assert!(next.version() >= anchor.version());
    }
});
