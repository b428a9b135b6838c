//! The core on wasm32 itself (wasm-bindgen-test, node runner): the committed
//! known-answer vectors verify as recorded, through the JS-facing API.
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!  cargo test -p keygate-wasm --target wasm32-unknown-unknown`
#![cfg(target_arch = "wasm32")]

use js_sys::{Object, Reflect};
use keygate_wasm::{Verifier, VerifyOptions};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

const TRUST: &[u8] = include_bytes!("../../../tests/vectors/trust.kgt");
const SNAPSHOT: &[u8] = include_bytes!("../../../tests/vectors/snapshot.kgs");
const REVOCATIONS: &[u8] = include_bytes!("../../../tests/vectors/revocations.kgr");
const UPDATE: &[u8] = include_bytes!("../../../tests/vectors/update.kgr");
const VERDICTS: &str = include_str!("../../../tests/vectors/verdicts.txt");

fn outcome(v: &Verifier, key: &str, scope: &str, now: f64) -> String {
    let o = Object::new();
    if scope != "-" {
        Reflect::set(&o, &"scope".into(), &scope.into()).unwrap();
    }
    Reflect::set(&o, &"now".into(), &JsValue::from_f64(now)).unwrap();
    let r = v
        .verify(key, Some(o.unchecked_into::<VerifyOptions>()))
        .unwrap();
    Reflect::get(&r, &"outcome".into())
        .unwrap()
        .as_string()
        .unwrap()
}

#[wasm_bindgen_test]
fn vectors_verify_as_recorded_on_wasm32() {
    let v = Verifier::new(TRUST).unwrap();
    v.load_snapshot(SNAPSHOT).unwrap();
    let lines: Vec<Vec<&str>> = VERDICTS
        .lines()
        .skip(1)
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(lines.len(), 11);
    for l in &lines {
        assert_eq!(
            outcome(&v, l[0], l[1], l[2].parse().unwrap()),
            l[3],
            "{}",
            l[0]
        );
    }
    v.load_revocations(REVOCATIONS).unwrap();
    for l in &lines {
        assert_eq!(
            outcome(&v, l[0], l[1], l[2].parse().unwrap()),
            l[4],
            "{}",
            l[0]
        );
    }
    // The update carrying records (format 2), after it.
    v.load_revocations(UPDATE).unwrap();
    for l in &lines {
        assert_eq!(
            outcome(&v, l[0], l[1], l[2].parse().unwrap()),
            l[5],
            "{}",
            l[0]
        );
    }
    assert!(v.load_snapshot(&SNAPSHOT[..100]).is_err());
}
