//! keygate as a proxy-wasm HTTP filter (Envoy, Istio, Envoy Gateway, other
//! proxy-wasm hosts). The root context owns one `Verifier` per worker VM,
//! shared by all of the worker's HTTP contexts, and polls the artifacts from a
//! cluster with `dispatch_http_call` (ETag / If-None-Match) on a tick; a
//! failed or refused fetch keeps the current state and is logged.
//!
//! Plugin configuration (JSON): `artifacts_cluster`, `trust_path`,
//! `snapshot_path`, `revocations_path`, `authority` (Host of the fetches),
//! `poll_interval_ms` (default 1000), `scope`, `key_sources` (default
//! `["authorization", "x-api-key"]`), `principal_header` (default
//! `x-keygate-principal`), `realm`; for the benchmark only, `passthrough`
//! (verify nothing: the trivial filter) and `header_floor` (the host calls a
//! verifying filter cannot avoid — read the key header, replace the principal
//! header, remove the key header — and no verify).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use keygate::{Outcome, Verifier};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Config {
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
    #[serde(default = "default_sources")]
    key_sources: Vec<String>,
    #[serde(default = "default_principal_header")]
    principal_header: String,
    #[serde(default = "default_realm")]
    realm: String,
    #[serde(default)]
    passthrough: bool,
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
fn default_sources() -> Vec<String> {
    vec!["authorization".into(), "x-api-key".into()]
}
fn default_principal_header() -> String {
    "x-keygate-principal".into()
}
fn default_realm() -> String {
    "keygate".into()
}

/// What one worker shares between its root and HTTP contexts.
#[derive(Default)]
struct Shared {
    verifier: Option<Verifier>,
    config: Option<Rc<Config>>,
    #[cfg(feature = "probe")]
    probed: std::cell::Cell<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Trust,
    Snapshot,
    Revocations,
}

#[derive(Default)]
struct Root {
    shared: Rc<RefCell<Shared>>,
    pending: HashMap<u32, Kind>,
    etags: HashMap<&'static str, String>,
}

impl Root {
    fn config(&self) -> Option<Rc<Config>> {
        self.shared.borrow().config.clone()
    }

    /// Fetches one artifact; the chain trust → snapshot → revocations runs in
    /// that order so a snapshot by a rotated signer is never refused.
    fn fetch(&mut self, kind: Kind) {
        let Some(c) = self.config() else { return };
        let (path, key) = match kind {
            Kind::Trust => (&c.trust_path, "trust"),
            Kind::Snapshot => (&c.snapshot_path, "snapshot"),
            Kind::Revocations => (&c.revocations_path, "revocations"),
        };
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", c.authority.as_str()),
        ];
        let etag = self.etags.get(key).cloned();
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

    fn install(&mut self, kind: Kind, body: &[u8]) -> Result<(), String> {
        let mut s = self.shared.borrow_mut();
        match (kind, &s.verifier) {
            (Kind::Trust, None) => {
                s.verifier = Some(Verifier::new(body).map_err(|e| e.to_string())?);
                Ok(())
            }
            (Kind::Trust, Some(v)) => v.install_trust(body).map(|_| ()).map_err(|e| e.to_string()),
            (Kind::Snapshot, Some(v)) => v
                .install_snapshot(body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (Kind::Revocations, Some(v)) => v
                .install_revocations(body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (_, None) => Err("no trust anchor yet".into()),
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
        let name = match kind {
            Kind::Trust => "trust",
            Kind::Snapshot => "snapshot",
            Kind::Revocations => "revocations",
        };
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_default();
        match status.as_str() {
            "304" => {}
            "200" => {
                let body = self
                    .get_http_call_response_body(0, body_size)
                    .unwrap_or_default();
                match self.install(kind, &body) {
                    Ok(()) => {
                        if let Some(e) = self.get_http_call_response_header("etag") {
                            self.etags.insert(name, e);
                        }
                    }
                    // Refused: state kept; no ETag stored, so the next tick retries.
                    Err(e) => log::error(&format!("keygate: {name} refused: {e}")),
                }
            }
            other => log::warn(&format!("keygate: fetching {name}: HTTP {other}")),
        }
        match kind {
            Kind::Trust => self.fetch(Kind::Snapshot),
            Kind::Snapshot => self.fetch(Kind::Revocations),
            Kind::Revocations => {}
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        match serde_json::from_slice::<Config>(&raw) {
            Ok(c) => {
                let poll = Duration::from_millis(c.poll_interval_ms.max(100));
                self.shared.borrow_mut().config = Some(Rc::new(c));
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
        if self
            .config()
            .is_some_and(|c| !c.passthrough && !c.header_floor)
        {
            self.fetch(Kind::Trust);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            shared: Rc::clone(&self.shared),
            deprecation: None,
        }))
    }
}

struct Filter {
    shared: Rc<RefCell<Shared>>,
    /// (deprecated_at, sunset_at) to add to the response of a rotated key.
    deprecation: Option<(u64, Option<u64>)>,
}

impl Filter {
    /// The presented key and the header it came from.
    fn key<'c>(&self, sources: &'c [String]) -> Option<(String, &'c str)> {
        for s in sources {
            let Some(v) = self.get_http_request_header(s) else {
                continue;
            };
            let v = v.trim();
            let key = if s.eq_ignore_ascii_case("authorization") {
                match v.split_once(' ') {
                    Some((scheme, k)) if scheme.eq_ignore_ascii_case("bearer") => k.trim(),
                    _ => continue,
                }
            } else {
                v
            };
            if !key.is_empty() {
                return Some((key.to_string(), s));
            }
        }
        None
    }

    fn deny(&self, status: u32, c: &Config, error: Option<(&str, &str)>) -> Action {
        let mut challenge = format!("Bearer realm=\"{}\"", c.realm);
        if let Some((e, d)) = error {
            challenge += &format!(", error=\"{e}\", error_description=\"{d}\"");
        }
        let body = error.map_or("API key required\n", |e| e.0);
        self.send_http_response(
            status,
            vec![("www-authenticate", &challenge)],
            Some(body.as_bytes()),
        );
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
        if c.passthrough {
            return Action::Continue;
        }
        let Some((key, from)) = self.key(&c.key_sources) else {
            return self.deny(401, &c, None);
        };
        if c.header_floor {
            self.set_http_request_header(from, None);
            // A constant stands in for the principal: nothing of the key goes upstream.
            self.set_http_request_header(&c.principal_header, Some("header-floor"));
            return Action::Continue;
        }
        let Some(v) = s.verifier.as_ref() else {
            self.send_http_response(503, vec![], Some(b"keygate: no artifacts yet\n"));
            return Action::Pause;
        };
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        #[cfg(feature = "probe")]
        if c.probe && !s.probed.replace(true) {
            self.probe(v, &key, now, c.scope.as_deref());
        }
        let d = v.verify(&key, now, c.scope.as_deref());
        match d.outcome {
            Outcome::Valid | Outcome::ValidDeprecated => {
                // Every host call costs: remove only the header the key came from.
                self.set_http_request_header(from, None);
                self.set_http_request_header(&c.principal_header, Some(d.principal.as_str()));
                if d.outcome == Outcome::ValidDeprecated {
                    self.deprecation = Some((d.deprecated_at.unwrap_or(0), d.sunset_at));
                }
                Action::Continue
            }
            Outcome::InsufficientScope => self.deny(
                403,
                &c,
                Some(("insufficient_scope", "the key lacks the required scope")),
            ),
            Outcome::Stale => {
                self.send_http_response(
                    503,
                    vec![("retry-after", "5")],
                    Some(b"keygate: key data stale\n"),
                );
                Action::Pause
            }
            o => self.deny(401, &c, Some(("invalid_token", o.as_str()))),
        }
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end: bool) -> Action {
        if let Some((dep, sunset)) = self.deprecation {
            self.add_http_response_header("deprecation", &format!("@{dep}"));
            if let Some(t) = sunset {
                self.add_http_response_header(
                    "sunset",
                    &String::from_utf8_lossy(&keygate::http_date(t)),
                );
            }
        }
        Action::Continue
    }
}
