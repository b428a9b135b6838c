#![no_main]
// The C entry points with arbitrary bytes: artifacts, keys, scopes, request
// headers (the gateway contract) and stats texts from other processes.
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
        let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
        let headers: Vec<keygate_header> = lines
            .iter()
            .map(|l| {
                let i = l.iter().position(|b| *b == b':').unwrap_or(l.len());
                let value = l.get(i + 1..).unwrap_or(&[]);
                keygate_header { name: l.as_ptr(), name_len: i, value: value.as_ptr(), value_len: value.len() }
            })
            .collect();
        let mut p = std::ptr::null_mut();
        assert_eq!(keygate_policy_new(c"keygate".as_ptr(), 7, c"x-keygate-principal".as_ptr(), 19, 5, &mut p) as u32, 0);
        let mut a = std::mem::MaybeUninit::<keygate_answer>::uninit();
        assert_eq!(keygate_verifier_check(v, headers.as_ptr(), headers.len(), std::ptr::null(), 0, 1, p, a.as_mut_ptr()) as u32, 0);
        for h in &headers {
            let _ = keygate_policy_strips(p, h.name, h.name_len, h.value, h.value_len);
        }
        keygate_policy_free(p);
        let mut buf = [0 as std::ffi::c_char; 4096];
        let mut len = 0;
        let _ = keygate_stats_merge_prometheus(data.as_ptr(), data.len(), buf.as_mut_ptr(), buf.len(), &mut len);
        keygate_verifier_free(v);
    }
});
