#![no_main]
// The C entry points with arbitrary bytes: artifacts, keys and scopes.
use keygate_c::*;
const TRUST: &[u8] = include_bytes!("../../tests/vectors/trust.kgt");
const SNAPSHOT: &[u8] = include_bytes!("../../tests/vectors/snapshot.kgs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut v = std::ptr::null_mut();
    let mut out = std::mem::MaybeUninit::<keygate_verdict>::uninit();
    let half = data.len() / 2;
    // SAFETY: every pointer is valid for the length passed with it; the handle is freed once.
    unsafe {
        let _ = keygate_verifier_new(data.as_ptr(), data.len(), &mut v);
        keygate_verifier_free(v);
        assert_eq!(keygate_verifier_new(TRUST.as_ptr(), TRUST.len(), &mut v) as u32, 0);
        keygate_verifier_load_snapshot(v, SNAPSHOT.as_ptr(), SNAPSHOT.len());
        keygate_verifier_load_snapshot(v, data.as_ptr(), data.len());
        keygate_verifier_load_revocations(v, data.as_ptr(), data.len());
        let r = keygate_verifier_verify(v, data.as_ptr().cast(), half, data[half..].as_ptr().cast(), data.len() - half, 1, out.as_mut_ptr());
        assert!(r as u32 == 0 || r as u32 == 2);
        keygate_verifier_free(v);
    }
});
