//! keygate as a proxy-wasm HTTP filter (Envoy, Istio, Envoy Gateway, other
//! proxy-wasm hosts). The root context owns one `Verifier` per worker VM,
//! shared by all of the worker's HTTP contexts, and polls the artifacts from a
//! cluster with `dispatch_http_call` (ETag / If-None-Match) on a tick; a
//! failed or refused fetch keeps the current state and is logged.
//!
//! The filter applies the core's gateway contract ([`keygate::Answer`]): the
//! key from `Authorization: Bearer` or `X-API-Key`, read as bytes; every
//! key-bearing header and every client copy of the principal header removed
//! before the request goes upstream.
//!
//! Plugin configuration (JSON): `trust_anchor` (required: the pinned
//! `trust.kgt`, base64 — the origin may only serve newer bundles chaining from
//! it), `artifacts_cluster`, `trust_path`, `snapshot_path`,
//! `revocations_path`, `authority` (Host of the fetches), `poll_interval_ms`
//! (default 1000), `scope`, `principal_header` (default
//! `x-keygate-principal`), `realm`, `retry_after` (seconds, default 5).
//! Built with the `bench` feature only: `passthrough` (verify nothing: the
//! trivial filter) and `header_floor` (the host calls a verifying filter
//! cannot avoid, no verify) — a production build refuses both.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use keygate::{Answer, Artifact, Fetched, Policy, Reload, Reloaded, Verifier};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The pinned anchor: `trust.kgt`, base64.
    trust_anchor: String,
    artifacts_cluster: String,
    #[serde(default = "default_trust")]
    trust_path: String,
    #[serde(default = "default_snapshot")]
    snapshot_path: String,
    #[serde(default = "default_revocations")]
    revocations_path: String,
    #[serde(default = "default_authority")]
    authority: String,
    #[serde(default = "default_poll")]
    poll_interval_ms: u64,
    #[serde(default)]
    scope: Option<String>,
    /// Accepted for older configurations; the contract fixes the key
    /// sources, so anything but the default is refused.
    #[serde(default)]
    key_sources: Option<Vec<String>>,
    #[serde(default = "default_principal_header")]
    principal_header: String,
    #[serde(default = "default_realm")]
    realm: String,
    #[serde(default = "default_retry_after")]
    retry_after: u32,
    #[cfg(feature = "bench")]
    #[serde(default)]
    passthrough: bool,
    #[cfg(feature = "bench")]
    #[serde(default)]
    header_floor: bool,
    /// Feature `probe` only: time the host calls on the first request.
    #[cfg(feature = "probe")]
    #[serde(default)]
    probe: bool,
}

fn default_trust() -> String {
    "/trust.kgt".into()
}
fn default_snapshot() -> String {
    "/snapshot.kgs".into()
}
fn default_revocations() -> String {
    "/revocations.kgr".into()
}
fn default_authority() -> String {
    "keygate-artifacts".into()
}
fn default_poll() -> u64 {
    1000
}
fn default_retry_after() -> u32 {
    Policy::DEFAULT.retry_after()
}
// The contract's defaults, from the core (one place for every surface).
fn default_principal_header() -> String {
    Policy::DEFAULT.principal_header().into()
}
fn default_realm() -> String {
    Policy::DEFAULT.realm().into()
}

impl Config {
    /// The contract's settings (checked in `on_configure`).
    fn policy(&self) -> Policy<'_> {
        Policy::new(&self.realm, &self.principal_header, self.retry_after)
            .unwrap_or(Policy::DEFAULT)
    }

    #[cfg(feature = "bench")]
    fn bench_mode(&self) -> bool {
        self.passthrough || self.header_floor
    }

    #[cfg(not(feature = "bench"))]
    fn bench_mode(&self) -> bool {
        false
    }

    /// The checks `serde` cannot make; the verifier from the pinned anchor.
    fn check(&self) -> Result<Verifier, String> {
        Policy::new(&self.realm, &self.principal_header, self.retry_after)
            .map_err(|e| e.to_string())?;
        if let Some(k) = &self.key_sources {
            let mut k: Vec<String> = k.iter().map(|s| s.to_ascii_lowercase()).collect();
            k.sort();
            if k != ["authorization", "x-api-key"] {
                return Err("key_sources: keys are read from Authorization: Bearer and X-API-Key (the gateway contract); remove the setting".into());
            }
        }
        let anchor = base64::engine::general_purpose::STANDARD
            .decode(self.trust_anchor.trim())
            .map_err(|e| format!("trust_anchor is not base64: {e}"))?;
        Verifier::new(&anchor).map_err(|e| format!("trust_anchor refused: {e}"))
    }
}

/// What one worker shares between its root and HTTP contexts.
#[derive(Default)]
struct Shared {
    verifier: Option<Verifier>,
    config: Option<Rc<Config>>,
    #[cfg(feature = "probe")]
    probed: std::cell::Cell<bool>,
}

#[derive(Default)]
struct Root {
    shared: Rc<RefCell<Shared>>,
    pending: HashMap<u32, Artifact>,
    /// Envoy stats defined so far: name → (id, value last reported).
    metrics: HashMap<String, (u32, u64)>,
    /// The core's reload discipline (ETags, what missing and refused mean).
    reload: Reload,
}

impl Root {
    fn config(&self) -> Option<Rc<Config>> {
        self.shared.borrow().config.clone()
    }

    /// Reports the verifier's counters as Envoy stats, so `/stats/prometheus`
    /// shows every worker's verifies added up (Envoy sums counters of the
    /// same name across worker VMs). Names carry their label after a dot
    /// (`keygate_verify_total.outcome.valid`); the `stats_tags` in
    /// docs/integrations/envoy.md turn that into `{outcome="valid"}`.
    fn report_metrics(&mut self) {
        let Some(stats) = self.shared.borrow().verifier.as_ref().map(Verifier::stats) else {
            return;
        };
        let mut counters: Vec<(String, u64)> = Vec::new();
        for o in keygate::Outcome::ALL {
            counters.push((format!("keygate_verify_total.outcome.{o}"), stats.count(o)));
        }
        for (i, kind) in ["snapshot", "revocations", "trust"].iter().enumerate() {
            counters.push((
                format!("keygate_artifact_installed_total.artifact.{kind}"),
                stats.installed[i],
            ));
            counters.push((
                format!("keygate_artifact_refused_total.artifact.{kind}"),
                stats.refused[i],
            ));
        }
        let mut gauges = vec![
            (
                "keygate_snapshot_version".to_string(),
                stats.snapshot_version,
            ),
            (
                "keygate_revocation_sequence".to_string(),
                stats.revocation_seq,
            ),
            ("keygate_trust_version".to_string(), stats.trust_version),
        ];
        for d in &stats.deprecated {
            counters.push((
                format!("keygate_deprecated_key_uses_total.key_id.{}", d.key_id),
                d.count,
            ));
            gauges.push((
                format!(
                    "keygate_deprecated_key_last_seen_seconds.key_id.{}",
                    d.key_id
                ),
                d.last_seen,
            ));
        }
        for (name, value, kind) in counters
            .into_iter()
            .map(|(n, v)| (n, v, MetricType::Counter))
            .chain(gauges.into_iter().map(|(n, v)| (n, v, MetricType::Gauge)))
        {
            let entry = match self.metrics.get_mut(&name) {
                Some(e) => e,
                None => match proxy_wasm::hostcalls::define_metric(kind, &name) {
                    Ok(id) => self.metrics.entry(name).or_insert((id, 0)),
                    Err(e) => {
                        log::warn(&format!("keygate: stat {name} not defined: {e:?}"));
                        continue;
                    }
                },
            };
            let r = match kind {
                // This VM's own count grows; Envoy adds every VM's increments.
                MetricType::Counter => {
                    let delta = value.saturating_sub(entry.1);
                    proxy_wasm::hostcalls::increment_metric(
                        entry.0,
                        delta.min(i64::MAX as u64) as i64,
                    )
                }
                _ => proxy_wasm::hostcalls::record_metric(entry.0, value),
            };
            if r.is_ok() {
                entry.1 = value;
            }
        }
    }

    /// Fetches one artifact; the chain trust → snapshot → revocations runs in
    /// that order so a snapshot by a rotated signer is never refused.
    fn fetch(&mut self, kind: Artifact) {
        let Some(c) = self.config() else { return };
        let path = match kind {
            Artifact::Trust => &c.trust_path,
            Artifact::Snapshot => &c.snapshot_path,
            Artifact::Revocations => &c.revocations_path,
        };
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", c.authority.as_str()),
        ];
        let etag = self.reload.validator(kind).map(str::to_string);
        if let Some(e) = &etag {
            headers.push(("if-none-match", e.as_str()));
        }
        match self.dispatch_http_call(
            &c.artifacts_cluster,
            headers,
            None,
            vec![],
            Duration::from_secs(5),
        ) {
            Ok(token) => {
                self.pending.insert(token, kind);
            }
            Err(e) => log::warn(&format!("keygate: cannot fetch {path}: {e:?}")),
        }
    }
}

mod log {
    pub fn warn(m: &str) {
        let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Warn, m);
    }
    pub fn error(m: &str) {
        let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Error, m);
    }
    pub fn info(m: &str) {
        let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Info, m);
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(kind) = self.pending.remove(&token) else {
            return;
        };
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_default();
        let body;
        let etag;
        let failed;
        let fetched = match status.as_str() {
            "304" => Fetched::NotModified,
            "404" => Fetched::Missing,
            "200" => {
                body = self
                    .get_http_call_response_body(0, body_size)
                    .unwrap_or_default();
                etag = self.get_http_call_response_header("etag");
                Fetched::Got {
                    bytes: &body,
                    validator: etag.as_deref(),
                }
            }
            other => {
                failed = format!("HTTP {other}");
                Fetched::Failed(&failed)
            }
        };
        let shared = Rc::clone(&self.shared);
        if let Some(v) = shared.borrow().verifier.as_ref() {
            match self.reload.offer(v, kind, fetched) {
                Reloaded::Installed { from, to } => {
                    log::info(&format!("keygate: {kind} {from} -> {to}"))
                }
                Reloaded::SnapshotMissing => log::error("keygate: snapshot missing at the origin"),
                Reloaded::Failed(e) => log::warn(&format!("keygate: fetching {kind}: {e}")),
                // State kept; not remembered, so the next tick retries it.
                Reloaded::Refused(e) => log::error(&format!("keygate: {kind} refused: {e}")),
                _ => {}
            }
        }
        match kind {
            Artifact::Trust => self.fetch(Artifact::Snapshot),
            Artifact::Snapshot => self.fetch(Artifact::Revocations),
            Artifact::Revocations => {}
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        match serde_json::from_slice::<Config>(&raw)
            .map_err(|e| e.to_string())
            .and_then(|c| c.check().map(|v| (c, v)))
        {
            Ok((c, v)) => {
                let poll = Duration::from_millis(c.poll_interval_ms.max(100));
                let mut shared = self.shared.borrow_mut();
                // A reconfiguration starts over from its own pinned anchor.
                shared.verifier = Some(v);
                shared.config = Some(Rc::new(c));
                drop(shared);
                self.reload = Reload::new();
                self.set_tick_period(poll);
                log::info("keygate: configured");
                true
            }
            Err(e) => {
                log::error(&format!("keygate: bad plugin configuration: {e}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if self.config().is_some_and(|c| !c.bench_mode()) {
            self.report_metrics();
            self.fetch(Artifact::Trust);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            shared: Rc::clone(&self.shared),
            answer: None,
        }))
    }
}

struct Filter {
    shared: Rc<RefCell<Shared>>,
    /// The request's answer, for the response phase (a rotated key's
    /// Deprecation and Sunset).
    answer: Option<Answer>,
}

/// The request headers as bytes, straight from the host: proxy-wasm's own
/// reader assumes UTF-8 and panics on a byte like `\xff` in a key header.
mod headers {
    /// The host's serialized request header map (empty when it has none).
    #[cfg(target_arch = "wasm32")]
    pub fn request_headers() -> Vec<u8> {
        #[link(wasm_import_module = "env")]
        extern "C" {
            fn proxy_get_header_map_pairs(
                map_type: u32,
                return_map_data: *mut *mut u8,
                return_map_size: *mut usize,
            ) -> u32;
        }
        const HTTP_REQUEST_HEADERS: u32 = 0;
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer to `size` bytes it allocated
        // through this module's `proxy_on_memory_allocate` (a boxed slice
        // of exactly that length, see proxy-wasm's allocator), which we now
        // own; on any status but 0 (Ok) nothing was written.
        unsafe {
            if proxy_get_header_map_pairs(HTTP_REQUEST_HEADERS, &mut data, &mut size) != 0
                || data.is_null()
            {
                return Vec::new();
            }
            Vec::from_raw_parts(data, size, size)
        }
    }

    /// Off wasm there is no host (unit tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn request_headers() -> Vec<u8> {
        Vec::new()
    }

    /// Parses proxy-wasm's map serialization — a little-endian u32 count,
    /// then a (name length, value length) u32 pair per entry, then each name
    /// and each value followed by a NUL — with every bound checked. `None`
    /// when the bytes do not hold such a map.
    pub fn parse(b: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
        if b.is_empty() {
            return Some(Vec::new());
        }
        let u32_at = |at: usize| -> Option<usize> {
            let w = b.get(at..at.checked_add(4)?)?;
            Some(u32::from_le_bytes(w.try_into().ok()?) as usize)
        };
        let count = u32_at(0)?;
        let mut p = count.checked_mul(8)?.checked_add(4)?;
        let mut out = Vec::with_capacity(count.min(b.len() / 8));
        for i in 0..count {
            let name_len = u32_at(4 + i * 8)?;
            let value_len = u32_at(8 + i * 8)?;
            let name = b.get(p..p.checked_add(name_len)?)?;
            p = p.checked_add(name_len + 1)?;
            let value = b.get(p..p.checked_add(value_len)?)?;
            p = p.checked_add(value_len + 1)?;
            out.push((name, value));
        }
        (p <= b.len()).then_some(out)
    }

    #[cfg(test)]
    mod tests {
        fn map(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
            let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
            for (n, v) in pairs {
                out.extend((n.len() as u32).to_le_bytes());
                out.extend((v.len() as u32).to_le_bytes());
            }
            for (n, v) in pairs {
                out.extend(*n);
                out.push(0);
                out.extend(*v);
                out.push(0);
            }
            out
        }

        #[test]
        fn reads_bytes_and_refuses_bad_maps() {
            let pairs: [(&[u8], &[u8]); 2] = [(b"x-api-key", b"\xff\xfe"), (b":path", b"/")];
            let m = map(&pairs);
            assert_eq!(super::parse(&m).unwrap(), pairs);
            assert_eq!(super::parse(&[]).unwrap(), []);
            for cut in 1..m.len() - 1 {
                assert!(super::parse(&m[..cut]).is_none(), "cut at {cut}");
            }
            let mut huge = m.clone();
            huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(super::parse(&huge).is_none());
            let mut long = m;
            long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(super::parse(&long).is_none());
        }
    }
}

impl Filter {
    /// A local reply with the answer's status, headers and body.
    fn reply(&self, a: &Answer, policy: &Policy<'_>) -> Action {
        let headers: Vec<(&str, keygate::HeaderText)> = a.response_headers(policy).collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.send_http_response(u32::from(a.status), headers, Some(a.body().as_bytes()));
        Action::Pause
    }
}

#[cfg(feature = "probe")]
impl Filter {
    /// Logs the cost of each host call the request path makes, and of the
    /// verify itself, each timed over 2000 calls inside this request.
    fn probe(&self, v: &Verifier, key: &str, now: u64, scope: Option<&str>) {
        use std::hint::black_box;
        let time = |f: &mut dyn FnMut()| {
            let t = self.get_current_time();
            for _ in 0..2000 {
                f();
            }
            let ns = self
                .get_current_time()
                .duration_since(t)
                .unwrap_or_default()
                .as_nanos();
            ns as f64 / 2000.0
        };
        let figures = [
            (
                "get_header",
                time(&mut || drop(self.get_http_request_header("authorization"))),
            ),
            (
                "get_current_time",
                time(&mut || _ = black_box(self.get_current_time())),
            ),
            (
                "verify",
                time(&mut || _ = black_box(v.verify(key, now, scope))),
            ),
            (
                "sha256",
                time(&mut || _ = black_box(keygate::Digest::of(black_box(key.as_bytes())))),
            ),
            (
                "set_header",
                time(&mut || {
                    self.set_http_request_header("x-keygate-probe", Some("billing-service"))
                }),
            ),
            (
                "remove_header",
                time(&mut || self.set_http_request_header("x-keygate-absent", None)),
            ),
        ];
        let line: Vec<String> = figures
            .iter()
            .map(|(n, t)| format!("{n} {t:.0} ns"))
            .collect();
        log::warn(&format!("keygate probe: {}", line.join(", ")));
    }
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end: bool) -> Action {
        let shared = Rc::clone(&self.shared);
        let s = shared.borrow();
        let Some(c) = s.config.clone() else {
            return Action::Continue;
        };
        #[cfg(feature = "bench")]
        if c.passthrough {
            return Action::Continue;
        }
        let policy = c.policy();
        let raw = headers::request_headers();
        let Some(pairs) = headers::parse(&raw) else {
            // The host's own serialization could not be read: refuse, never guess.
            return self.reply(&Answer::conflict(), &policy);
        };
        #[cfg(feature = "bench")]
        if c.header_floor {
            for (name, value) in &pairs {
                if policy.strips(name, value) {
                    self.remove_http_request_header(std::str::from_utf8(name).unwrap_or(""));
                }
            }
            // A constant stands in for the principal: nothing of the key goes upstream.
            self.set_http_request_header(policy.principal_header(), Some("header-floor"));
            return Action::Continue;
        }
        let Some(v) = s.verifier.as_ref() else {
            return self.reply(&Answer::not_loaded(), &policy);
        };
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        #[cfg(feature = "probe")]
        if c.probe && !s.probed.replace(true) {
            if let keygate::Presented::Key(k) = keygate::presented_key(pairs.iter().copied()) {
                self.probe(
                    v,
                    std::str::from_utf8(k).unwrap_or(""),
                    now,
                    c.scope.as_deref(),
                );
            }
        }
        let (answer, verdict) = v.check(pairs.iter().copied(), now, c.scope.as_deref());
        if !answer.forward() {
            return self.reply(&answer, &policy);
        }
        // Envoy header names are lower-case tokens; remove each name once.
        let mut removed: Vec<&[u8]> = Vec::new();
        for (name, value) in &pairs {
            if policy.strips(name, value) && !removed.contains(name) {
                removed.push(name);
                if let Ok(n) = std::str::from_utf8(name) {
                    self.remove_http_request_header(n);
                }
            }
        }
        if let Some(d) = verdict {
            let p = keygate::principal_value(d.principal.as_str());
            self.set_http_request_header(policy.principal_header(), Some(p.as_str()));
        }
        // Kept for the response phase: a rotated key's Deprecation/Sunset.
        self.answer = Some(answer);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end: bool) -> Action {
        if let Some(a) = self.answer.filter(|a| a.deprecation.is_some()) {
            let shared = self.shared.borrow();
            let policy = shared
                .config
                .as_ref()
                .map_or(Policy::DEFAULT, |c| c.policy());
            for (name, value) in a.response_headers(&policy) {
                self.add_http_response_header(name, value.as_str());
            }
        }
        Action::Continue
    }
}

/// The plugin configuration a production build accepts, and refuses.
#[cfg(test)]
mod config_tests {
    use super::Config;
    use base64::Engine as _;

    const TRUST: &[u8] = include_bytes!("../../../tests/vectors/trust.kgt");

    fn check(extra: &str) -> Result<(), String> {
        let anchor = base64::engine::general_purpose::STANDARD.encode(TRUST);
        let json = format!(r#"{{"trust_anchor": "{anchor}", "artifacts_cluster": "o"{extra}}}"#);
        let c: Config = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        c.check().map(|_| ())
    }

    #[test]
    fn pinned_anchor_and_contract_settings() {
        assert_eq!(check(""), Ok(()));
        assert_eq!(
            check(r#", "key_sources": ["X-API-Key", "authorization"]"#),
            Ok(())
        );
        for (extra, why) in [
            (r#", "key_sources": ["authorization"]"#, "key_sources"),
            (r#", "realm": "a\"b""#, "realm"),
            (r#", "principal_header": "x-api-key""#, "principal header"),
        ] {
            let e = check(extra).unwrap_err();
            assert!(e.contains(why), "{extra}: {e}");
        }
        // The benchmark switches exist only in a build with `bench`.
        for extra in [r#", "passthrough": true"#, r#", "header_floor": true"#] {
            assert_eq!(
                check(extra).is_ok(),
                cfg!(feature = "bench"),
                "{extra} in a build with bench = {}",
                cfg!(feature = "bench")
            );
        }
        let bad = |anchor: &str| {
            let json = format!(r#"{{"trust_anchor": "{anchor}", "artifacts_cluster": "o"}}"#);
            serde_json::from_str::<Config>(&json)
                .unwrap()
                .check()
                .map(|_| ())
                .unwrap_err()
        };
        assert!(bad("not base64!").contains("not base64"));
        let truncated = base64::engine::general_purpose::STANDARD.encode(&TRUST[..40]);
        assert!(bad(&truncated).contains("trust_anchor refused"));
        let missing = serde_json::from_str::<Config>(r#"{"artifacts_cluster": "o"}"#);
        assert!(missing.is_err(), "no anchor, no configuration");
    }
}
