//! `keygate serve`: a forward-auth HTTP service for proxies that cannot load a
//! module — nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz (HTTP),
//! Caddy `forward_auth`. Every request on `--listen` is an authorization
//! question about the key it carries, whatever its path:
//!
//! - 200 with `X-Keygate-Principal`, `X-Keygate-Key-Id`, `X-Keygate-Outcome`
//!   (and `Deprecation`/`Sunset` for a rotated key) — the proxy copies these
//!   to the upstream request / client response;
//! - 401 with `WWW-Authenticate: Bearer realm=…[, error="invalid_token"]`;
//! - 403 with `error="insufficient_scope"`; 503 when the artifacts are stale.
//!
//! `/healthz` and `/metrics` live on their own listener (`--metrics-listen`),
//! which no forwarded request can reach. The required scope is `--scope`; a
//! proxy's `X-Keygate-Scope` header is read only with `--trust-scope-header`.
//!
//! Hardening: one HTTP stack (hyper on tokio) with bounded headers, a header
//! read timeout, no body ever read, a connection cap, and an accept loop that
//! survives errors (EMFILE included). Trust is pinned by `--trust`: the origin
//! may only serve newer bundles that chain from it. With `--state FILE`, the
//! highest versions installed survive a restart.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use keygate::{HighWater, Verifier};

use crate::{input, listener, Fail, Res};

pub(crate) struct Settings {
    pub listen: String,
    pub metrics_listen: Option<String>,
    /// The pinned trust anchor (a local `.kgt`).
    pub trust: PathBuf,
    /// Where the artifacts come from, and what was installed from there.
    pub source: keygate::Source,
    pub poll: Duration,
    pub scope: Option<String>,
    /// Read the required scope from `X-Keygate-Scope` (a trusted front proxy).
    pub trust_scope_header: bool,
    pub realm: String,
    pub threads: usize,
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// Where the high-water marks persist.
    pub state: Option<PathBuf>,
}

impl Settings {
    /// The contract's settings: `--realm` (checked at start-up).
    fn policy(&self) -> keygate::Policy<'_> {
        keygate::Policy::new(&self.realm, "x-keygate-principal", RETRY_AFTER)
            .unwrap_or(keygate::Policy::DEFAULT)
    }
}

/// `Retry-After` seconds on a 503.
pub(crate) const RETRY_AFTER: u32 = 5;

/// Loads what changed by the core's reload rules ([`keygate::Source`]): a missing
/// snapshot, a failed fetch and a refused artifact keep the current state
/// and are logged on stderr. Returns whether anything was installed.
fn load(v: &Verifier, s: &Settings) -> bool {
    let loaded = s.source.load(v);
    for e in &loaded.events {
        eprintln!("keygate serve: {e}");
    }
    loaded.installed
}

/// Loads what changed and, when something was installed, writes the
/// verifier's high-water marks to the state file atomically.
fn refresh(v: &Verifier, s: &Settings) {
    let (true, Some(path)) = (load(v, s), &s.state) else {
        return;
    };
    let text = v.high_water().to_text(v.trust().keyset().as_str());
    if let Err(e) = keygate_issuer::write_atomic(path, text.as_bytes(), 0o600) {
        eprintln!("keygate serve: state {} not saved: {e}", path.display());
    }
}

type Body = Full<Bytes>;

fn text(code: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn add(r: &mut Response<Body>, name: &'static str, value: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(value) {
        r.headers_mut().append(HeaderName::from_static(name), v);
    }
}

/// The answer to one forward-auth request: the gateway contract
/// ([`keygate::Answer`]) applied, plus the verdict as response headers the
/// proxy copies upstream (`X-Keygate-Principal` in the contract's encoding,
/// `X-Keygate-Key-Id`, `X-Keygate-Outcome`).
fn answer(v: &Verifier, s: &Settings, req: &Request<Incoming>) -> Response<Body> {
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    let header_scope = s
        .trust_scope_header
        .then(|| req.headers().get("x-keygate-scope"))
        .flatten()
        .and_then(|h| h.to_str().ok());
    let scope = header_scope.or(s.scope.as_deref());
    let (a, verdict) = v.check_now(headers, scope);
    let policy = s.policy();
    let mut r = text(a.status, a.body());
    for (name, value) in a.response_headers(&policy) {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            r.headers_mut().append(name, v);
        }
    }
    let Some(d) = verdict else { return r };
    add(&mut r, "x-keygate-outcome", d.outcome.as_str().as_bytes());
    if a.forward() {
        add(
            &mut r,
            "x-keygate-principal",
            keygate::principal_value(d.principal.as_str()).as_bytes(),
        );
        if let Some(id) = d.key_id {
            add(&mut r, "x-keygate-key-id", id.to_string().as_bytes());
        }
    }
    r
}

/// `/healthz` and `/metrics`, on the metrics listener only.
fn admin(v: &Verifier, shed: u64, req: &Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => match v.snapshot_header() {
            Some(h) => text(200, format!("ok snapshot {}\n", h.version)),
            None => text(503, "no snapshot\n"),
        },
        "/metrics" => {
            let mut r = text(
                200,
                format!(
                    "{}# HELP keygate_serve_connections_shed_total Connections closed at once because their listener was at its connection cap.\n\
                     # TYPE keygate_serve_connections_shed_total counter\n\
                     keygate_serve_connections_shed_total {shed}\n",
                    v.stats_prometheus()
                ),
            );
            add(&mut r, "content-type", b"text/plain; version=0.0.4");
            r
        }
        _ => text(404, "not found\n"),
    }
}

/// Serves `listener` with `handle` until the process ends: at most `cap`
/// connections at once (more are closed at once and counted), each with a
/// bounded head and a header read timeout; an accept error (EMFILE, ENFILE,
/// ECONNABORTED…) is logged and waited out, never fatal.
/// The forward-auth or metrics handler as a hyper service.
fn service<F>(
    handle: Arc<F>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Body>, Infallible>>,
> + Clone
where
    F: Fn(&Request<Incoming>) -> Response<Body> + Send + Sync + 'static,
{
    hyper::service::service_fn(move |req| std::future::ready(Ok(handle(&req))))
}

pub(crate) fn run(s: Settings) -> Res<u8> {
    let anchor =
        std::fs::read(&s.trust).map_err(|e| input(format!("trust {}: {e}", s.trust.display())))?;
    let v = Arc::new(
        Verifier::new(&anchor).map_err(|e| input(format!("trust {}: {e}", s.trust.display())))?,
    );
    if let Some(path) = &s.state {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let hw = HighWater::parse(&text, v.trust().keyset().as_str())
                    .map_err(|e| input(format!("state {}: {e}", path.display())))?;
                v.set_floor(hw);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(input(format!("state {}: {e}", path.display()))),
        }
    }
    refresh(&v, &s);
    // Each connection is a file: raise the soft limit to the hard one.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| Fail(3, format!("runtime: {e}")))?;
    let s = Arc::new(s);
    {
        let (v, s) = (Arc::clone(&v), Arc::clone(&s));
        std::thread::spawn(move || loop {
            std::thread::sleep(s.poll);
            refresh(&v, &s);
        });
    }
    rt.block_on(async move {
        let main = listener::bind(&s.listen).await?;
        let metrics = match &s.metrics_listen {
            Some(a) => Some(listener::bind(a).await?),
            None => None,
        };
        eprintln!("keygate serve: listening on {}", s.listen);
        let shed = Arc::new(AtomicU64::new(0));
        if let Some(m) = metrics {
            let (v, shed2) = (Arc::clone(&v), Arc::clone(&shed));
            eprintln!(
                "keygate serve: /healthz and /metrics on {}",
                s.metrics_listen.as_deref().unwrap_or_default()
            );
            let handle = Arc::new(move |req: &Request<Incoming>| {
                admin(&v, shed2.load(Ordering::Relaxed), req)
            });
            tokio::spawn(listener::serve(
                "keygate serve",
                m,
                64,
                s.header_timeout,
                Arc::clone(&shed),
                service(handle),
            ));
        }
        let (cap, timeout) = (s.max_connections.max(1), s.header_timeout);
        let handle = Arc::new(move |req: &Request<Incoming>| answer(&v, &s, req));
        listener::serve("keygate serve", main, cap, timeout, shed, service(handle)).await;
        Ok::<_, Fail>(())
    })?;
    Err(Fail(3, "server stopped".into()))
}
