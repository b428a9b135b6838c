//! keygate for JavaScript: `new Verifier(trust)`, `loadSnapshot`,
//! `loadRevocations`, `loadTrust`, `verify(key, { scope, now })`, `stats()`,
//! `statsPrometheus()`. Thin wrappers over the core `Verifier`: the same
//! verdicts as every other surface; errors are JS `Error`s with the core's
//! reason text, and a refused artifact keeps the current state.
//!
//! `verify` has a fast path (`js/fast.js`, installed by the package's
//! `index.js`): the key and scope are written into a scratch area of WASM
//! memory ([`io`]), one call with plain numbers decides ([`Verifier::verify_raw`]),
//! and the verdict's fields are read back from the same area; principal names
//! cross the boundary once each (they are numbered per verifier). The
//! wasm-bindgen `verify` below stays the reference and the fallback (inputs
//! too long for the scratch area, option values of the wrong type).

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The scratch area's layout, shared with `js/fast.js` (offsets in bytes from
/// the 8-aligned start [`io`] returns).
mod io {
    /// Key bytes (UTF-8) at 0, up to this many.
    pub const KEY_CAP: usize = 512;
    /// Scope bytes at `SCOPE_AT`, up to `SCOPE_CAP`.
    pub const SCOPE_AT: usize = 512;
    pub const SCOPE_CAP: usize = 256;
    /// Ten f64 out fields: outcome, expiresAt, deprecatedAt, sunsetAt (-1:
    /// none), snapshotVersion, revocationSeq, stale, principal number,
    /// principal byte length when the number is new (-1: already known),
    /// principal-numbering epoch.
    pub const OUT_AT: usize = 768;
    /// The key id in lowercase hex (32 bytes), when bit 8 of `__verifyRaw`'s
    /// return value is set.
    pub const HEX_AT: usize = 848;
    /// A new principal name's bytes.
    pub const NAME_AT: usize = 896;
    /// `__checkRaw`'s request headers: per header the name's length (u16
    /// LE), the name, the value's length (u16 LE), the value.
    pub const HDR_AT: usize = NAME_AT + keygate::MAX_PRINCIPAL_LEN;
    pub const HDR_CAP: usize = 4096;
    /// At most this many headers (one bit each in the strip mask).
    pub const HDR_MAX: usize = 16;
    /// `__checkRaw`'s six f64 out fields: the strip mask (bit i: strip
    /// header i), the text's length (-1: not written, the caller has it),
    /// the principal value's length (-1: the same as the name), the scope
    /// set's number, its names' length when the number is new (-1: already
    /// known), the scope-set numbering epoch.
    pub const CHECK_OUT_AT: usize = HDR_AT + HDR_CAP;
    /// The answer's text: the body, then each response header's name and
    /// value, each followed by a NUL byte.
    pub const TEXT_AT: usize = CHECK_OUT_AT + 48;
    pub const TEXT_CAP: usize = 1024;
    /// The principal value when it is not the name (percent-encoded).
    pub const VALUE_AT: usize = TEXT_AT + TEXT_CAP;
    /// A new scope set's names, each followed by a NUL byte (at most 64
    /// names of at most 64 bytes).
    pub const SCOPES_AT: usize = VALUE_AT + 3 * keygate::MAX_PRINCIPAL_LEN;
    pub const SCOPES_CAP: usize = 64 * 65;
    pub const LEN: usize = SCOPES_AT + SCOPES_CAP;
}

thread_local! {
    /// The scratch area (JS is single-threaded; one per module instance). A
    /// Vec that never grows, so its address is stable; 8 spare bytes to align
    /// the start for JS's Float64Array.
    static IO: RefCell<Vec<u8>> = RefCell::new(vec![0; io::LEN + 8]);
}

fn io_align(buf: &[u8]) -> usize {
    buf.as_ptr().align_offset(8)
}

/// The scratch area as a `Uint8Array` over WASM memory (internal to the
/// fast path; re-fetch it when WASM memory grows, which detaches the view).
#[wasm_bindgen(js_name = __keygateIo, skip_typescript)]
pub fn io() -> js_sys::Uint8Array {
    IO.with(|b| {
        let b = b.borrow();
        let start = b.as_ptr() as usize + io_align(&b);
        let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
        js_sys::Uint8Array::new_with_byte_offset_and_length(
            &memory.buffer(),
            start as u32,
            io::LEN as u32,
        )
    })
}

#[wasm_bindgen]
extern "C" {
    /// `{ scope?: string, now?: number }`, read with plain property access.
    pub type VerifyOptions;
    #[wasm_bindgen(method, getter)]
    fn scope(this: &VerifyOptions) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn now(this: &VerifyOptions) -> JsValue;
}

#[wasm_bindgen]
extern "C" {
    /// `{ scope?, now?, realm?, principalHeader?, retryAfter? }` for `check`.
    pub type CheckOptions;
    #[wasm_bindgen(method, getter)]
    fn scope(this: &CheckOptions) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn now(this: &CheckOptions) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn realm(this: &CheckOptions) -> JsValue;
    #[wasm_bindgen(method, getter, js_name = principalHeader)]
    fn principal_header(this: &CheckOptions) -> JsValue;
    #[wasm_bindgen(method, getter, js_name = retryAfter)]
    fn retry_after(this: &CheckOptions) -> JsValue;
}

/// The gateway settings and request options of `check`, read and checked.
struct Checked {
    scope: Option<String>,
    now: Option<u64>,
    realm: String,
    principal_header: String,
    retry_after: u32,
}

fn optional_string(v: JsValue, what: &str) -> Result<Option<String>, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| err(format!("options.{what} must be a string")))
}

fn optional_number(v: JsValue, what: &str, max: f64) -> Result<Option<u64>, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if (0.0..=max).contains(&n) => Ok(Some(n as u64)),
        _ => Err(err(format!(
            "options.{what} must be a number from 0 to {max}"
        ))),
    }
}

impl Checked {
    fn read(o: Option<CheckOptions>) -> Result<Self, JsValue> {
        let d = keygate::Policy::DEFAULT;
        let Some(o) = o else {
            return Ok(Self {
                scope: None,
                now: None,
                realm: d.realm().into(),
                principal_header: d.principal_header().into(),
                retry_after: d.retry_after(),
            });
        };
        let c = Self {
            scope: optional_string(o.scope(), "scope")?,
            now: optional_number(o.now(), "now", 1e15)?,
            realm: optional_string(o.realm(), "realm")?.unwrap_or_else(|| d.realm().into()),
            principal_header: optional_string(o.principal_header(), "principalHeader")?
                .unwrap_or_else(|| d.principal_header().into()),
            retry_after: optional_number(o.retry_after(), "retryAfter", f64::from(u32::MAX))?
                .map_or(d.retry_after(), |n| n as u32),
        };
        c.policy()?;
        Ok(c)
    }

    fn policy(&self) -> Result<keygate::Policy<'_>, JsValue> {
        keygate::Policy::new(&self.realm, &self.principal_header, self.retry_after).map_err(err)
    }
}

/// The answer object `check` and `notLoaded` return.
fn answer_object(
    a: &keygate::Answer,
    policy: &keygate::Policy<'_>,
    verdict: Option<&keygate::Verdict>,
    scopes: Option<keygate::ScopeNames>,
    strip: Array,
) -> JsValue {
    let o = Object::new();
    set(&o, "status", a.status);
    set(&o, "forward", a.forward());
    set(&o, "body", a.body());
    set(
        &o,
        "outcome",
        a.outcome.map_or(JsValue::NULL, |x| x.as_str().into()),
    );
    let accepted = verdict.filter(|_| a.forward());
    set(
        &o,
        "principal",
        accepted.map_or(JsValue::NULL, |v| v.principal.as_str().into()),
    );
    set(
        &o,
        "principalValue",
        accepted.map_or(JsValue::NULL, |v| {
            keygate::principal_value(v.principal.as_str())
                .as_str()
                .into()
        }),
    );
    set(&o, "principalHeader", policy.principal_header());
    set(
        &o,
        "scopes",
        accepted.map_or(JsValue::NULL, |_| {
            let list = Array::new();
            for n in scopes.iter().flat_map(|s| s.iter()) {
                list.push(&JsValue::from_str(n));
            }
            list.into()
        }),
    );
    set(
        &o,
        "keyId",
        verdict
            .and_then(|v| v.key_id)
            .map_or(JsValue::NULL, |id| id.to_string().into()),
    );
    let headers = Array::new();
    for (n, v) in a.response_headers(policy) {
        headers.push(&Array::of2(&n.into(), &v.as_str().into()));
    }
    set(&o, "responseHeaders", headers);
    set(&o, "strip", strip);
    o.into()
}

/// Writes the answer's text for the fast path: each part followed by a NUL
/// byte. The area holds the longest text (a body, and a challenge with a
/// 128-byte realm); a part that would not fit is cut, never written past.
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, part: &[u8]) {
        let Some(room) = self.buf.len().checked_sub(self.at + 1) else {
            return;
        };
        let n = part.len().min(room);
        self.buf[self.at..][..n].copy_from_slice(&part[..n]);
        self.buf[self.at + n] = 0;
        self.at += n + 1;
    }
}

/// The core's reload discipline for a JS poller: which validator to send
/// (`If-None-Match`), what a 304, a 404 or a refused artifact means, in
/// which order to fetch. One per artifact source.
#[wasm_bindgen]
#[derive(Default)]
pub struct Reload {
    inner: keygate::Reload,
}

fn artifact(name: &str) -> Result<keygate::Artifact, JsValue> {
    keygate::RELOAD_ORDER
        .into_iter()
        .find(|a| a.file_name() == name)
        .ok_or_else(|| err(format!("no artifact named {name:?}")))
}

#[wasm_bindgen]
impl Reload {
    /// A source nothing was installed from yet.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Reload {
        Reload::default()
    }

    /// The file names in the order to fetch them each tick:
    /// `["trust.kgt", "snapshot.kgs", "revocations.kgr"]`.
    pub fn order() -> Array {
        keygate::RELOAD_ORDER
            .iter()
            .map(|a| JsValue::from_str(a.file_name()))
            .collect()
    }

    /// The ETag of the artifact last installed from this source (send it as
    /// `If-None-Match`), or `undefined`.
    pub fn validator(&self, name: &str) -> Result<Option<String>, JsValue> {
        Ok(self.inner.validator(artifact(name)?).map(String::from))
    }

    /// What one fetch of `name` answered: HTTP `status` (200 with `bytes`
    /// and its `etag`, 304, 404, anything else a failure). Installs into
    /// `verifier` by the core's rules and returns `{ step, from?, to?,
    /// error? }`, `step` one of `installed`, `unchanged`, `none_yet`,
    /// `snapshot_missing`, `failed`, `refused`; `error` is set for the last
    /// three (log it). A refused artifact is retried on the next tick.
    pub fn offer(
        &mut self,
        verifier: &Verifier,
        name: &str,
        status: u16,
        bytes: Option<Vec<u8>>,
        etag: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let a = artifact(name)?;
        let failed = format!("HTTP {status}");
        let fetched = match (status, &bytes) {
            (304, _) => keygate::Fetched::NotModified,
            (404, _) => keygate::Fetched::Missing,
            (200, Some(b)) => keygate::Fetched::Got {
                bytes: b,
                validator: etag.as_deref(),
            },
            _ => keygate::Fetched::Failed(&failed),
        };
        let o = Object::new();
        let step = self.inner.offer(&verifier.inner, a, fetched);
        let name = match &step {
            keygate::Reloaded::Installed { from, to } => {
                set(&o, "from", *from as f64);
                set(&o, "to", *to as f64);
                "installed"
            }
            keygate::Reloaded::NoneYet => "none_yet",
            keygate::Reloaded::SnapshotMissing => {
                set(&o, "error", "snapshot missing at the origin");
                "snapshot_missing"
            }
            keygate::Reloaded::Failed(e) => {
                set(&o, "error", e.as_str());
                "failed"
            }
            keygate::Reloaded::Refused(e) => {
                set(&o, "error", e.to_string());
                "refused"
            }
            _ => "unchanged",
        };
        set(&o, "step", name);
        Ok(o.into())
    }
}

/// The answer when no verifier could be made yet (no usable trust anchor):
/// 503 with `Retry-After`. `options` as for `Verifier.check`.
#[wasm_bindgen(js_name = notLoaded)]
pub fn not_loaded(options: Option<CheckOptions>) -> Result<JsValue, JsValue> {
    let c = Checked::read(options)?;
    let policy = c.policy()?;
    Ok(answer_object(
        &keygate::Answer::not_loaded(),
        &policy,
        None,
        None,
        Array::new(),
    ))
}

// The verdict object is assembled on the JS side in one call: building it from
// Rust property by property (a JS string per key and value) cost ~8 µs per verify.
#[wasm_bindgen(inline_js = "
const OUTCOMES = ['valid', 'valid_deprecated', 'revoked', 'expired', 'not_yet_valid', 'unknown',
  'malformed', 'insufficient_scope', 'stale'];
export function make_verdict(o, principal, keyId, exp, dep, sun, snap, seq, stale) {
  return { outcome: OUTCOMES[o], principal, keyId: keyId === '' ? null : keyId,
    expiresAt: exp < 0 ? null : exp, deprecatedAt: dep < 0 ? null : dep, sunsetAt: sun < 0 ? null : sun,
    snapshotVersion: snap, revocationSeq: seq, stale };
}")]
extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn make_verdict(
        outcome: u32,
        principal: &str,
        key_id: &str,
        expires_at: f64,
        deprecated_at: f64,
        sunset_at: f64,
        snapshot_version: f64,
        revocation_seq: f64,
        stale: bool,
    ) -> JsValue;
}

/// Outcomes in the order of the JS table above (and of the C enum).
const OUTCOMES: [keygate::Outcome; 9] = keygate::Outcome::ALL;

/// The gateway settings of the `check` fast path (`js/fast.js` keeps one per
/// distinct realm, principal header and Retry-After), checked once when made
/// and read as `check`'s options are: missing ones are the contract's
/// defaults.
#[wasm_bindgen(js_name = __CheckPolicy, skip_typescript)]
pub struct CheckPolicy {
    settings: Checked,
}

#[wasm_bindgen(js_class = __CheckPolicy)]
impl CheckPolicy {
    /// The settings, or the error `check` throws for them.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Option<CheckOptions>) -> Result<CheckPolicy, JsValue> {
        let settings = Checked::read(options)?;
        Ok(Self { settings })
    }

    /// The principal header (the default when none was given).
    #[wasm_bindgen(getter, js_name = principalHeader)]
    pub fn principal_header(&self) -> String {
        self.settings.principal_header.clone()
    }
}

/// The index of an answer's text for the fast path's cache (`1 +` the
/// outcome's position, or 10, 11, 12 for no key, two keys, nothing loaded),
/// or 0 when the text carries dates and cannot be cached (a deprecated
/// key's `Deprecation` and `Sunset`).
fn text_id(a: &keygate::Answer) -> u32 {
    if a.deprecation.is_some() {
        return 0;
    }
    1 + match a.outcome {
        Some(o) => OUTCOMES.iter().position(|x| *x == o).unwrap_or(0) as u32,
        None if a.status == 401 => 9,
        None if a.status == 400 => 10,
        None => 11,
    }
}

/// One length-prefixed field of the header area: (field, rest).
fn header_field(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = b.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// `__checkRaw`'s answer when the header area cannot be read (never for
/// what `js/fast.js` writes): the caller takes the reference path.
const CHECK_RAW_UNREADABLE: u32 = u32::MAX;

/// Verifies API keys against signed keygate artifacts.
#[wasm_bindgen]
pub struct Verifier {
    inner: keygate::Verifier,
    /// Principal names numbered for the fast path (0 is the empty name);
    /// cleared, with a new epoch, when it reaches `MAX_NAMES`.
    names: RefCell<Names>,
    /// Scope sets numbered for the fast path's `check` (as `names`).
    scope_sets: RefCell<ScopeSets>,
}

#[derive(Default)]
struct Names {
    ids: HashMap<String, u32, foldhash::fast::FixedState>,
    epoch: u32,
}

/// Scope sets numbered for the fast path's `check`, by the artifacts and
/// the set (a number names the same list as long as it is in the table).
#[derive(Default)]
struct ScopeSets {
    ids: HashMap<(u64, u64, keygate::Scopes), u32, foldhash::fast::FixedState>,
    epoch: u32,
}

const MAX_NAMES: usize = 1 << 16;

fn err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
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
            .map(|inner| Verifier {
                inner,
                names: RefCell::default(),
                scope_sets: RefCell::default(),
            })
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
    pub fn verify(&self, key: &str, options: Option<VerifyOptions>) -> Result<JsValue, JsValue> {
        let (scope, now) = match &options {
            Some(o) => {
                let scope = o.scope();
                if !(scope.is_undefined() || scope.is_null() || scope.is_string()) {
                    return Err(err("options.scope must be a string"));
                }
                let now = o.now();
                let now = if now.is_undefined() || now.is_null() {
                    None
                } else {
                    match now.as_f64() {
                        Some(n) if (0.0..=1e15).contains(&n) => Some(n as u64),
                        _ => return Err(err("options.now must be unix seconds")),
                    }
                };
                (scope.as_string(), now)
            }
            None => (None, None),
        };
        let now = now.unwrap_or_else(|| (js_sys::Date::now() / 1000.0) as u64);
        let v = self.inner.verify(key, now, scope.as_deref());
        let key_id = v.key_id.map(|id| id.to_hex());
        let none = -1.0;
        Ok(make_verdict(
            OUTCOMES.iter().position(|o| *o == v.outcome).unwrap_or(0) as u32,
            v.principal.as_str(),
            key_id
                .as_ref()
                .map_or("", |h| std::str::from_utf8(h).unwrap_or("")),
            v.expires_at.map_or(none, |t| t as f64),
            v.deprecated_at.map_or(none, |t| t as f64),
            v.sunset_at.map_or(none, |t| t as f64),
            v.snapshot_version as f64,
            v.revocation_seq as f64,
            v.stale,
        ))
    }

    /// The gateway contract for one request (the same rules as every other
    /// surface; see the core's `Answer`): `headers` is an array of `[name,
    /// value]` pairs (repeated names as separate pairs, or joined with
    /// commas as `Headers` does); `options`: `{ scope?, now?, realm?,
    /// principalHeader?, retryAfter? }`. Returns `{ status, forward, body,
    /// outcome, principal, principalValue, principalHeader, keyId,
    /// responseHeaders: [[name, value]], strip: [name] }`: reply with
    /// `status`, `body` and `responseHeaders` unless `forward`; when
    /// forwarding, delete every header in `strip`, set `principalHeader` to
    /// `principalValue`, and add `responseHeaders` to the upstream's response.
    pub fn check(&self, headers: Array, options: Option<CheckOptions>) -> Result<JsValue, JsValue> {
        let c = Checked::read(options)?;
        let policy = c.policy()?;
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(headers.length() as usize);
        for h in headers.iter() {
            let pair: Array = h
                .dyn_into()
                .map_err(|_| err("headers must be [name, value] pairs"))?;
            let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
                return Err(err("headers must be [name, value] pairs of strings"));
            };
            pairs.push((n, v));
        }
        let now = c
            .now
            .unwrap_or_else(|| (js_sys::Date::now() / 1000.0) as u64);
        let (a, verdict) = self.inner.check(
            pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            now,
            c.scope.as_deref(),
        );
        let strip = Array::new();
        if a.forward() {
            for (n, v) in &pairs {
                if policy.strips(n.as_bytes(), v.as_bytes()) {
                    strip.push(&n.to_ascii_lowercase().into());
                }
            }
        }
        let scopes = verdict
            .as_ref()
            .filter(|_| a.forward())
            .and_then(|v| self.inner.scope_names(v));
        Ok(answer_object(&a, &policy, verdict.as_ref(), scopes, strip))
    }

    /// The fast path's verify (see the crate docs): the key is the first
    /// `key_len` bytes of the scratch area, the scope `scope_len` bytes at
    /// `SCOPE_AT` (negative: none), `now` unix seconds (negative: the current
    /// time). Writes the verdict's fields into the scratch area.
    #[wasm_bindgen(js_name = __verifyRaw, skip_typescript)]
    pub fn verify_raw(&self, key_len: usize, scope_len: i32, now: f64) -> u32 {
        IO.with(|b| {
            let mut b = b.borrow_mut();
            let at = io_align(&b);
            let buf = &mut b[at..at + io::LEN];
            let key = std::str::from_utf8(&buf[..key_len.min(io::KEY_CAP)]).unwrap_or("");
            let scope = usize::try_from(scope_len).ok().map(|n| {
                std::str::from_utf8(&buf[io::SCOPE_AT..][..n.min(io::SCOPE_CAP)]).unwrap_or("")
            });
            let now = if now < 0.0 {
                (js_sys::Date::now() / 1000.0) as u64
            } else {
                now as u64
            };
            let v = self.inner.verify(key, now, scope);
            let outcome = OUTCOMES.iter().position(|o| *o == v.outcome).unwrap_or(0);
            let name = v.principal.as_str();
            let (id, new_len, epoch) = self.number(name);
            if new_len >= 0.0 {
                buf[io::NAME_AT..][..name.len()].copy_from_slice(name.as_bytes());
            }
            let none = -1.0;
            let fields = [
                outcome as f64,
                v.expires_at.map_or(none, |t| t as f64),
                v.deprecated_at.map_or(none, |t| t as f64),
                v.sunset_at.map_or(none, |t| t as f64),
                v.snapshot_version as f64,
                v.revocation_seq as f64,
                if v.stale { 1.0 } else { 0.0 },
                id as f64,
                new_len,
                epoch as f64,
            ];
            for (i, f) in fields.iter().enumerate() {
                buf[io::OUT_AT + 8 * i..][..8].copy_from_slice(&f.to_le_bytes());
            }
            if let Some(id) = v.key_id {
                buf[io::HEX_AT..][..32].copy_from_slice(&id.to_hex());
            }
            outcome as u32 | u32::from(v.key_id.is_some()) << 8
        })
    }

    /// The fast path's `check` (see the crate docs): `hdr_len` bytes of
    /// request headers at `HDR_AT`, the scope and `now` as for
    /// [`verify_raw`](Self::verify_raw), `known_texts` the answer texts
    /// (by `text_id`) the caller already has for `policy`. Returns the
    /// outcome's position (bits 0-7, 255: none), whether a key id was
    /// written (bit 8), the text id (bits 10-13) and the status (bits
    /// 16-31); writes the principal as `verify_raw` does (when forwarded),
    /// the strip mask, and the text unless the caller has it.
    #[wasm_bindgen(js_name = __checkRaw, skip_typescript)]
    pub fn check_raw(
        &self,
        policy: &CheckPolicy,
        hdr_len: usize,
        scope_len: i32,
        now: f64,
        known_texts: u32,
    ) -> u32 {
        let Ok(policy) = policy.settings.policy() else {
            return CHECK_RAW_UNREADABLE;
        };
        IO.with(|b| {
            let mut b = b.borrow_mut();
            let at = io_align(&b);
            let buf = &mut b[at..at + io::LEN];
            let now = if now < 0.0 {
                (js_sys::Date::now() / 1000.0) as u64
            } else {
                now as u64
            };
            let (answer, verdict, strip) = {
                let mut headers: [(&[u8], &[u8]); io::HDR_MAX] = [(&[], &[]); io::HDR_MAX];
                let mut n = 0;
                let mut rest = &buf[io::HDR_AT..][..hdr_len.min(io::HDR_CAP)];
                while !rest.is_empty() {
                    let Some((name, r)) = header_field(rest) else {
                        return CHECK_RAW_UNREADABLE;
                    };
                    let Some((value, r)) = header_field(r) else {
                        return CHECK_RAW_UNREADABLE;
                    };
                    let Some(slot) = headers.get_mut(n) else {
                        return CHECK_RAW_UNREADABLE;
                    };
                    *slot = (name, value);
                    n += 1;
                    rest = r;
                }
                let scope = usize::try_from(scope_len).ok().map(|len| {
                    std::str::from_utf8(&buf[io::SCOPE_AT..][..len.min(io::SCOPE_CAP)])
                        .unwrap_or("")
                });
                let (a, v) = self.inner.check(headers[..n].iter().copied(), now, scope);
                let mut strip = 0u32;
                if a.forward() {
                    for (i, (name, value)) in headers[..n].iter().enumerate() {
                        if policy.strips(name, value) {
                            strip |= 1 << i;
                        }
                    }
                }
                (a, v, strip)
            };
            let outcome = answer
                .outcome
                .and_then(|o| OUTCOMES.iter().position(|x| *x == o))
                .map_or(0xff, |i| i as u32);
            let id = text_id(&answer);
            let mut text_len = -1.0;
            if id == 0 || known_texts & (1 << id) == 0 {
                let mut w = Cursor {
                    buf: &mut buf[io::TEXT_AT..][..io::TEXT_CAP],
                    at: 0,
                };
                w.put(answer.body().as_bytes());
                for (name, value) in answer.response_headers(&policy) {
                    w.put(name.as_bytes());
                    w.put(value.as_bytes());
                }
                text_len = w.at as f64;
            }
            let mut value_len = -1.0;
            let (mut number, mut new_len, mut epoch) = (0, -1.0, self.names.borrow().epoch);
            let (mut set, mut set_len, mut set_epoch) = (0, -1.0, self.scope_sets.borrow().epoch);
            if let Some(v) = verdict.as_ref().filter(|_| answer.forward()) {
                let new;
                (set, new, set_epoch) = self.number_scopes(v);
                if new {
                    let names = self.inner.scope_names(v);
                    let mut w = Cursor {
                        buf: &mut buf[io::SCOPES_AT..][..io::SCOPES_CAP],
                        at: 0,
                    };
                    for n in names.iter().flat_map(|s| s.iter()) {
                        w.put(n.as_bytes());
                    }
                    set_len = w.at as f64;
                }
                let name = v.principal.as_str();
                (number, new_len, epoch) = self.number(name);
                if new_len >= 0.0 {
                    buf[io::NAME_AT..][..name.len()].copy_from_slice(name.as_bytes());
                }
                if !keygate::principal_is_header_safe(name) {
                    let value = keygate::principal_value(name);
                    buf[io::VALUE_AT..][..value.as_bytes().len()].copy_from_slice(value.as_bytes());
                    value_len = value.as_bytes().len() as f64;
                }
            }
            let key_id = verdict.as_ref().and_then(|v| v.key_id);
            if let Some(k) = key_id {
                buf[io::HEX_AT..][..32].copy_from_slice(&k.to_hex());
            }
            for (i, f) in [number as f64, new_len, epoch as f64].iter().enumerate() {
                buf[io::OUT_AT + 8 * (7 + i)..][..8].copy_from_slice(&f.to_le_bytes());
            }
            let out = [
                f64::from(strip),
                text_len,
                value_len,
                f64::from(set),
                set_len,
                f64::from(set_epoch),
            ];
            for (i, f) in out.iter().enumerate() {
                buf[io::CHECK_OUT_AT + 8 * i..][..8].copy_from_slice(&f.to_le_bytes());
            }
            outcome | u32::from(key_id.is_some()) << 8 | id << 10 | u32::from(answer.status) << 16
        })
    }

    /// The number of `v`'s scope set for the fast path: (number, whether JS
    /// has not seen it yet, epoch).
    fn number_scopes(&self, v: &keygate::Verdict) -> (u32, bool, u32) {
        let mut sets = self.scope_sets.borrow_mut();
        let key = (v.snapshot_version, v.revocation_seq, v.scopes);
        if let Some(&id) = sets.ids.get(&key) {
            return (id, false, sets.epoch);
        }
        if sets.ids.len() >= MAX_NAMES {
            sets.ids.clear();
            sets.epoch += 1;
        }
        let id = sets.ids.len() as u32 + 1;
        sets.ids.insert(key, id);
        (id, true, sets.epoch)
    }

    /// The number of principal `name` for the fast path: (number, byte length
    /// if JS has not seen it yet else -1, epoch).
    fn number(&self, name: &str) -> (u32, f64, u32) {
        let mut names = self.names.borrow_mut();
        if name.is_empty() {
            return (0, -1.0, names.epoch);
        }
        if let Some(&id) = names.ids.get(name) {
            return (id, -1.0, names.epoch);
        }
        if names.ids.len() >= MAX_NAMES {
            names.ids.clear();
            names.epoch += 1;
        }
        let id = names.ids.len() as u32 + 1;
        names.ids.insert(name.to_owned(), id);
        (id, name.len() as f64, names.epoch)
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

/// The floors of a verify inside WASM, for bench/run.sh (feature `bench-floors`).
#[cfg(feature = "bench-floors")]
mod floors {
    use wasm_bindgen::prelude::*;

    use super::Verifier;

    #[wasm_bindgen]
    impl Verifier {
        /// Nanoseconds per core verify inside WASM, without the JS glue: the
        /// newline-separated `keys` in order, `iters` times in all.
        #[wasm_bindgen(js_name = benchCoreVerify)]
        pub fn bench_core_verify(&self, keys: &str, scope: &str, now: f64, iters: u32) -> f64 {
            let keys: Vec<&str> = keys.lines().collect();
            let mut ok = 0u32;
            let mut j = 0usize;
            let t = js_sys::Date::now();
            for _ in 0..iters {
                let v = self.inner.verify(keys[j], now as u64, Some(scope));
                ok += u32::from(v.outcome.is_accepted());
                j = (j + 7919) % keys.len();
            }
            let ns = (js_sys::Date::now() - t) * 1e6 / f64::from(iters);
            if ok == iters {
                ns
            } else {
                f64::NAN // not every key verified: the figure would mean nothing
            }
        }
    }

    /// Nanoseconds per one-block SHA-256 of a 50-byte key (what every verify pays).
    #[wasm_bindgen(js_name = floorSha256)]
    pub fn floor_sha256(iters: u32) -> f64 {
        let mut key = [b'k'; 50];
        let mut acc = 0u8;
        let t = js_sys::Date::now();
        for i in 0..iters {
            key[0] = i as u8 ^ acc;
            acc ^= keygate::Digest::of(std::hint::black_box(&key)).0[0];
        }
        std::hint::black_box(acc);
        (js_sys::Date::now() - t) * 1e6 / f64::from(iters)
    }

    /// Nanoseconds per dependent load from a random place in 64 MiB (a cycle
    /// through a random permutation, so no load can be predicted or overlapped).
    #[wasm_bindgen(js_name = floorRandomLoad)]
    pub fn floor_random_load(iters: u32) -> f64 {
        let n = 16 << 20;
        let mut next: Vec<u32> = (0..n as u32).collect();
        // Sattolo's shuffle: one cycle through every slot.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in (1..n).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            next.swap(i, (x % i as u64) as usize);
        }
        let mut at = 0usize;
        let t = js_sys::Date::now();
        for _ in 0..iters {
            at = next[at] as usize;
        }
        std::hint::black_box(at);
        (js_sys::Date::now() - t) * 1e6 / f64::from(iters)
    }
}
