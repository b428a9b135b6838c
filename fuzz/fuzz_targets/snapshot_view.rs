#![no_main]
// Arbitrary bytes as a snapshot: parsing never panics; whatever parses can be walked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(v) = keygate::SnapshotView::parse_unverified(data) {
        for r in v.records() {
            let _ = (r.principal(), r.status(), v.lookup(&keygate::Digest([r.key_id().0[0]; 32])));
        }
        let _ = v.scope_names().count();
    }
});
