#![no_main]
// Any string: parse never panics; an accepted key has a valid prefix and length.
libfuzzer_sys::fuzz_target!(|s: &str| {
    if let Ok(k) = keygate::parse_key(s) {
        assert!(keygate::check_prefix(k.prefix()).is_ok() && s.len() <= keygate::MAX_KEY_LEN);
    }
});
