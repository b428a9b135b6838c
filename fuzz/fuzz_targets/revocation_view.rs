#![no_main]
// Arbitrary bytes as a revocation update: parsing and queries never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(v) = keygate::RevocationView::parse_unverified(data) {
        let _ = v.contains(&keygate::KeyId([data.len() as u8; 16]));
    }
});
