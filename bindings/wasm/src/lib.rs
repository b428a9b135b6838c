//! keygate for JavaScript: `new Verifier(trust)`, `loadSnapshot`,
//! `loadRevocations`, `loadTrust`, `verify(key, { scope, now })`, `stats()`,
//! `statsPrometheus()`. Thin wrappers over the core `Verifier`: the same
//! verdicts as every other surface; errors are JS `Error`s with the core's
//! reason text, and a refused artifact keeps the current state.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

/// Verifies API keys against signed keygate artifacts.
#[wasm_bindgen]
pub struct Verifier {
    inner: keygate::Verifier,
}

fn err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

fn opt(v: Option<u64>) -> JsValue {
    v.map_or(JsValue::NULL, |x| JsValue::from_f64(x as f64))
}

fn installed(r: keygate::Installed) -> JsValue {
    let o = Object::new();
    match r {
        keygate::Installed::Updated { from, to } => {
            set(&o, "changed", true);
            set(&o, "from", from as f64);
            set(&o, "to", to as f64);
        }
        keygate::Installed::Unchanged => set(&o, "changed", false),
    }
    o.into()
}

#[wasm_bindgen]
impl Verifier {
    /// A verifier trusting the `.kgt` chain `trust`.
    #[wasm_bindgen(constructor)]
    pub fn new(trust: &[u8]) -> Result<Verifier, JsValue> {
        keygate::Verifier::new(trust)
            .map(|inner| Verifier { inner })
            .map_err(err)
    }

    /// Installs a snapshot (`.kgs`). Throws with the reason when refused; the
    /// current state is kept. Returns `{ changed, from, to }`.
    #[wasm_bindgen(js_name = loadSnapshot)]
    pub fn load_snapshot(&self, bytes: &[u8]) -> Result<JsValue, JsValue> {
        self.inner
            .install_snapshot(bytes)
            .map(installed)
            .map_err(err)
    }

    /// Applies a revocation update (`.kgr`). Throws when refused; state kept.
    #[wasm_bindgen(js_name = loadRevocations)]
    pub fn load_revocations(&self, bytes: &[u8]) -> Result<JsValue, JsValue> {
        self.inner
            .install_revocations(bytes)
            .map(installed)
            .map_err(err)
    }

    /// Follows a new trust chain (`.kgt`). Throws when refused; state kept.
    #[wasm_bindgen(js_name = loadTrust)]
    pub fn load_trust(&self, bytes: &[u8]) -> Result<JsValue, JsValue> {
        self.inner.install_trust(bytes).map(installed).map_err(err)
    }

    /// Verifies `key`. `options`: `{ scope?: string, now?: number }` (unix
    /// seconds; default the current time). Returns `{ outcome, principal,
    /// keyId, expiresAt, deprecatedAt, sunsetAt, snapshotVersion,
    /// revocationSeq, stale }`.
    pub fn verify(&self, key: &str, options: Option<Object>) -> Result<JsValue, JsValue> {
        let get = |k: &str| {
            options
                .as_ref()
                .and_then(|o| Reflect::get(o, &JsValue::from_str(k)).ok())
        };
        let scope = match get("scope") {
            Some(s) if s.is_string() => s.as_string(),
            Some(s) if s.is_undefined() || s.is_null() => None,
            None => None,
            Some(_) => return Err(err("options.scope must be a string")),
        };
        let now = match get("now") {
            Some(n) if n.as_f64().is_some() => {
                let n = n.as_f64().unwrap_or(0.0);
                if !(0.0..=1e15).contains(&n) {
                    return Err(err("options.now must be unix seconds"));
                }
                n as u64
            }
            Some(n) if !(n.is_undefined() || n.is_null()) => {
                return Err(err("options.now must be a number"))
            }
            _ => (js_sys::Date::now() / 1000.0) as u64,
        };
        let v = self.inner.verify(key, now, scope.as_deref());
        let o = Object::new();
        set(&o, "outcome", v.outcome.as_str());
        set(&o, "principal", v.principal.as_str());
        set(
            &o,
            "keyId",
            v.key_id
                .map_or(JsValue::NULL, |k| JsValue::from_str(&k.to_string())),
        );
        set(&o, "expiresAt", opt(v.expires_at));
        set(&o, "deprecatedAt", opt(v.deprecated_at));
        set(&o, "sunsetAt", opt(v.sunset_at));
        set(&o, "snapshotVersion", v.snapshot_version as f64);
        set(&o, "revocationSeq", v.revocation_seq as f64);
        set(&o, "stale", v.stale);
        Ok(o.into())
    }

    /// Counters: `{ outcomes: { valid, ... }, installed, refused,
    /// snapshotVersion, revocationSeq, trustVersion, deprecated: [...] }`.
    pub fn stats(&self) -> JsValue {
        let s = self.inner.stats();
        let o = Object::new();
        let outcomes = Object::new();
        for out in keygate::Outcome::ALL {
            set(&outcomes, out.as_str(), s.count(out) as f64);
        }
        set(&o, "outcomes", outcomes);
        for (name, v) in [("installed", s.installed), ("refused", s.refused)] {
            let x = Object::new();
            for (k, n) in ["snapshot", "revocations", "trust"].iter().zip(v) {
                set(&x, k, n as f64);
            }
            set(&o, name, x);
        }
        set(&o, "snapshotVersion", s.snapshot_version as f64);
        set(&o, "revocationSeq", s.revocation_seq as f64);
        set(&o, "trustVersion", s.trust_version as f64);
        let dep = Array::new();
        for d in &s.deprecated {
            let x = Object::new();
            set(&x, "keyId", d.key_id.to_string());
            set(&x, "principal", d.principal.as_str());
            set(&x, "count", d.count as f64);
            set(&x, "lastSeen", d.last_seen as f64);
            dep.push(&x);
        }
        set(&o, "deprecated", dep);
        o.into()
    }

    /// The counters as Prometheus text.
    #[wasm_bindgen(js_name = statsPrometheus)]
    pub fn stats_prometheus(&self) -> String {
        self.inner.stats_prometheus()
    }
}

/// The library version, e.g. `keygate 0.1.0`.
#[wasm_bindgen]
pub fn version() -> String {
    concat!("keygate ", env!("CARGO_PKG_VERSION")).to_string()
}
