//! keygate for [tower](https://docs.rs/tower) services — axum, tonic, hyper:
//! API keys verified in-process, in a few hundred nanoseconds, against a
//! signed keyset published by `keygate publish`.
//!
//! A [`Keygate`] owns one [`Verifier`] and keeps it current: the trust
//! anchor is pinned when it is made, and a background thread loads the
//! snapshot and its update from a publish directory or a static HTTP origin
//! (ETag), by the core's reload rules — a refused or damaged artifact
//! changes nothing and is retried, a failing origin is retried with a
//! bounded backoff. [`Keygate::layer`] and [`Keygate::require`] make the
//! [`tower_layer::Layer`] that answers by the gateway contract every keygate
//! surface shares ([`keygate::Answer`]): `401`/`403` with RFC 6750
//! challenges, `503` with `Retry-After` before anything is loaded,
//! `Deprecation`/`Sunset` on the response for a rotated key; the key headers
//! are removed and the principal header set before the request reaches the
//! service, and the request carries a [`Principal`] (an axum extractor with
//! the default `axum` feature).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use keygate_tower::{Keygate, Principal};
//!
//! # fn app() -> Result<Router, keygate_tower::Error> {
//! let keygate = Keygate::from_dir("/srv/keygate")?;
//! let app = Router::new()
//!     .route("/invoices", get(|p: Principal| async move { format!("hello {}\n", p.name()) }))
//!     .route_layer(keygate.require("invoices:read"))
//!     .route("/metrics", get(move || async move { keygate.metrics() }));
//! # Ok(app) }
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use keygate::{Answer, Artifact, Origin, Outcome, Policy, Poller, Source, Verifier};

/// Why a [`Keygate`] could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The trust anchor could not be read.
    Anchor(std::io::Error),
    /// The trust anchor, realm or principal header was refused.
    Refused(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anchor(e) => write!(f, "trust anchor: {e}"),
            Self::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

/// How a [`Keygate`] polls and answers.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often the origin is asked for new artifacts (default 1 s).
    pub poll_interval: Duration,
    /// The longest wait between polls while the origin fails (default 30 s).
    pub max_backoff: Duration,
    /// The `realm` of the challenges (default `keygate`).
    pub realm: String,
    /// The request header the principal is sent upstream in (default
    /// `x-keygate-principal`).
    pub principal_header: String,
    /// `Retry-After` seconds on a 503 (default 5).
    pub retry_after: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            realm: Policy::DEFAULT.realm().into(),
            principal_header: Policy::DEFAULT.principal_header().into(),
            retry_after: Policy::DEFAULT.retry_after(),
        }
    }
}

struct Shared {
    /// Tells this Keygate's [`Principal`]s from another's.
    id: u64,
    verifier: Verifier,
    options: Options,
    principal_header: HeaderName,
    source: Source,
}

impl Shared {
    fn policy(&self) -> Policy<'_> {
        // Checked when the Keygate was made.
        Policy::new(
            &self.options.realm,
            &self.options.principal_header,
            self.options.retry_after,
        )
        .unwrap_or(Policy::DEFAULT)
    }

    /// One look at every artifact (the core's reload rules); whether the
    /// origin answered. Refused artifacts are counted by the verifier
    /// (`keygate_artifact_refused_total`) and looked at again next time.
    fn load(&self) -> bool {
        self.source.load(&self.verifier).answered
    }
}

/// One verifier kept current from an origin, and the layers that use it.
/// Cheap to clone; the poller runs while any clone or layer is alive.
#[derive(Clone)]
pub struct Keygate {
    shared: Arc<Shared>,
    _poller: Arc<Poller>,
}

impl std::fmt::Debug for Keygate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keygate")
            .field("origin", self.shared.source.origin())
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Keygate {
    /// A publish directory: the trust anchor is pinned from its `trust.kgt`
    /// now (later bundles there must chain from it), the artifacts are
    /// loaded now and then every second.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let anchor = std::fs::read(dir.join(Artifact::Trust.file_name())).map_err(Error::Anchor)?;
        Self::new(&anchor, Origin::dir(dir), Options::default())
    }

    /// A static HTTP(S) origin polled every second; `anchor` is the
    /// `trust.kgt` you trust (the origin may only serve newer bundles that
    /// chain from it).
    pub fn from_url(anchor: &[u8], url: &str) -> Result<Self, Error> {
        Self::new(anchor, Origin::url(url), Options::default())
    }

    /// Any origin, with options.
    pub fn new(anchor: &[u8], origin: Origin, options: Options) -> Result<Self, Error> {
        let verifier =
            Verifier::new(anchor).map_err(|e| Error::Refused(format!("trust anchor: {e}")))?;
        Policy::new(
            &options.realm,
            &options.principal_header,
            options.retry_after,
        )
        .map_err(|e| Error::Refused(e.to_string()))?;
        let principal_header = HeaderName::from_bytes(options.principal_header.as_bytes())
            .map_err(|e| Error::Refused(format!("principal_header: {e}")))?;
        if options.poll_interval.is_zero() || options.max_backoff < options.poll_interval {
            return Err(Error::Refused(
                "poll_interval must be > 0 and max_backoff at least poll_interval".into(),
            ));
        }
        static IDS: AtomicU64 = AtomicU64::new(1);
        let shared = Arc::new(Shared {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            verifier,
            options,
            principal_header,
            source: Source::new(origin),
        });
        // The first load before the first request.
        shared.load();
        let s = Arc::clone(&shared);
        let poller = Poller::start(
            "keygate-poll",
            shared.options.poll_interval,
            shared.options.max_backoff,
            move || s.load(),
        )
        .map_err(|e| Error::Refused(format!("no poller thread: {e}")))?;
        Ok(Self {
            shared,
            _poller: Arc::new(poller),
        })
    }

    /// The verifier (to verify outside a request, or read its stats).
    pub fn verifier(&self) -> &Verifier {
        &self.shared.verifier
    }

    /// Loads what changed now, without waiting for the next poll; whether
    /// the origin answered.
    pub fn reload(&self) -> bool {
        self.shared.load()
    }

    /// The verifier's counters as Prometheus text (verifies by outcome,
    /// artifacts installed and refused, deprecated-key use, the versions in
    /// force) — the same names every keygate surface exports.
    pub fn metrics(&self) -> String {
        self.shared.verifier.stats_prometheus()
    }

    /// A layer that requires a valid key and no particular scope.
    pub fn layer(&self) -> KeygateLayer {
        KeygateLayer(Arc::new(LayerState {
            keygate: self.clone(),
            scope: None,
        }))
    }

    /// A layer that requires a valid key holding `scope` (403 otherwise).
    pub fn require(&self, scope: &str) -> KeygateLayer {
        KeygateLayer(Arc::new(LayerState {
            keygate: self.clone(),
            scope: Some(scope.into()),
        }))
    }
}

/// What the layer found: the key's principal and what the verdict said
/// about it. In the request's extensions after the layer, and an axum
/// extractor (feature `axum`). Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    name: keygate::Principal,
    key_id: Option<keygate::KeyId>,
    outcome: Outcome,
    expires_at: Option<u64>,
    deprecated_at: Option<u64>,
    sunset_at: Option<u64>,
    scopes: keygate::ScopeNames,
    /// The [`Keygate`] that verified the key (`Shared::id`).
    verified_by: u64,
}

impl Principal {
    /// The principal the key was issued to.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The scopes the key holds, in the keyset's order.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.scopes.iter().map(|s| &**s)
    }

    /// Whether the key holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }

    /// The key's id (not secret; displays as 32 hex characters). Kept as
    /// bytes: nothing is formatted per request unless asked for.
    pub fn key_id(&self) -> Option<keygate::KeyId> {
        self.key_id
    }

    /// `valid` or `valid_deprecated`.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the key was rotated out (it works until [`Self::sunset_at`]).
    pub fn deprecated(&self) -> bool {
        self.outcome == Outcome::ValidDeprecated
    }

    /// The key's expiry (unix seconds).
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// When the key was deprecated (unix seconds).
    pub fn deprecated_at(&self) -> Option<u64> {
        self.deprecated_at
    }

    /// The end of a deprecated key's grace window (unix seconds).
    pub fn sunset_at(&self) -> Option<u64> {
        self.sunset_at
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Principal {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // Only a route without the layer has none: a server mistake.
        parts.extensions.get::<Principal>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "keygate: the route has no keygate layer\n",
        ))
    }
}

/// The [`tower_layer::Layer`] of a [`Keygate`] (one scope, or none).
#[derive(Clone)]
pub struct KeygateLayer(Arc<LayerState>);

/// One `Arc` for all of a layer: a router clones its service for every
/// request, and each `Arc` inside would be an atomic count up and down.
struct LayerState {
    keygate: Keygate,
    scope: Option<Box<str>>,
}

impl<S> tower_layer::Layer<S> for KeygateLayer {
    type Service = KeygateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeygateService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service a [`KeygateLayer`] wraps around another.
#[derive(Clone)]
pub struct KeygateService<S> {
    inner: S,
    layer: KeygateLayer,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for KeygateService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.layer.0.keygate.shared;
        let scope = self.layer.0.scope.as_deref();
        // Behind another layer of this Keygate (a router-wide one, then a
        // route's scope) the key headers are gone: the Principal it left
        // holds the key's scopes, so this layer checks its own scope there,
        // without the key and without verifying again.
        if let Some(p) = req.extensions().get::<Principal>() {
            if p.verified_by == shared.id {
                if scope.is_some_and(|s| !p.has_scope(s)) {
                    let answer = Answer::for_outcome(Outcome::InsufficientScope, None, None);
                    return ResponseFuture::Refused {
                        response: Some(refusal(&answer, &shared.policy())),
                    };
                }
                return ResponseFuture::Forwarded {
                    inner: self.inner.call(req),
                    deprecation: None,
                };
            }
        }
        let presented = keygate::presented_key(
            req.headers()
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
        );
        let (answer, verdict) = shared.verifier.answer(presented, Verifier::now(), scope);
        let verdict = match verdict {
            Some(v) if answer.forward() => v,
            _ => {
                return ResponseFuture::Refused {
                    response: Some(refusal(&answer, &shared.policy())),
                }
            }
        };
        // Always found right after the verify on this thread.
        let scopes = shared
            .verifier
            .scope_names(&verdict)
            .unwrap_or_else(|| Arc::from([]));
        strip_key_headers(req.headers_mut(), &shared.policy());
        if let Some(v) = principal_header_value(&verdict.principal) {
            req.headers_mut().insert(shared.principal_header.clone(), v);
        }
        req.extensions_mut().insert(Principal {
            name: verdict.principal,
            key_id: verdict.key_id,
            outcome: verdict.outcome,
            expires_at: verdict.expires_at,
            deprecated_at: verdict.deprecated_at,
            sunset_at: verdict.sunset_at,
            scopes,
            verified_by: shared.id,
        });
        ResponseFuture::Forwarded {
            inner: self.inner.call(req),
            deprecation: answer.deprecation.map(|_| (answer, Arc::clone(shared))),
        }
    }
}

/// The principal header's value for `name` ([`keygate::principal_value`]).
/// A thread keeps the last one: a service's requests come from a few
/// principals, and a clone of a `HeaderValue` is a count, not a copy.
fn principal_header_value(name: &keygate::Principal) -> Option<HeaderValue> {
    thread_local! {
        static LAST: RefCell<Option<(keygate::Principal, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        if let Some((n, v)) = &*last.borrow() {
            if n == name {
                return Some(v.clone());
            }
        }
        let v = HeaderValue::from_bytes(keygate::principal_value(name.as_str()).as_bytes()).ok()?;
        *last.borrow_mut() = Some((*name, v.clone()));
        Some(v)
    })
}

/// Removes every header `policy` strips. The names are gathered in one pass
/// into a small array (no allocation; a request with more such names than
/// it holds is scanned again for the rest).
fn strip_key_headers(headers: &mut http::HeaderMap, policy: &Policy<'_>) {
    loop {
        let mut found: [Option<HeaderName>; 4] = Default::default();
        let mut n = 0;
        for (name, value) in headers.iter() {
            if policy.strips(name.as_str().as_bytes(), value.as_bytes())
                && !found[..n].iter().any(|f| f.as_ref() == Some(name))
            {
                if n == found.len() {
                    break;
                }
                found[n] = Some(name.clone());
                n += 1;
            }
        }
        for name in found.iter_mut().take(n).filter_map(Option::take) {
            headers.remove(name);
        }
        if n < 4 {
            return;
        }
    }
}

/// The contract's refusal as a response.
fn refusal<B: From<&'static str>>(answer: &Answer, policy: &Policy<'_>) -> Response<B> {
    let mut r = Response::new(B::from(answer.body()));
    *r.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    add_headers(h, answer, policy);
    r
}

fn add_headers(h: &mut http::HeaderMap, answer: &Answer, policy: &Policy<'_>) {
    for (name, value) in answer.response_headers(policy) {
        // The contract's names are capitalized (`WWW-Authenticate`);
        // `from_bytes` lower-cases them (`from_static` would panic).
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            h.append(n, v);
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of a [`KeygateService`]: the contract's refusal, or
    /// the inner service's response (with `Deprecation`/`Sunset` for a
    /// rotated key).
    #[project = Proj]
    pub enum ResponseFuture<F, B> {
        /// Refused before the inner service.
        Refused { response: Option<Response<B>> },
        /// Forwarded to the inner service.
        Forwarded {
            #[pin]
            inner: F,
            deprecation: Option<(Answer, Arc<Shared>)>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Refused { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled again after it was ready: a caller's bug.
                None => Poll::Pending,
            },
            Proj::Forwarded { inner, deprecation } => {
                let mut r = match inner.poll(cx) {
                    Poll::Ready(Ok(r)) => r,
                    other => return other,
                };
                if let Some((answer, shared)) = deprecation.take() {
                    add_headers(r.headers_mut(), &answer, &shared.policy());
                }
                Poll::Ready(Ok(r))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_header_is_stripped_however_many() {
        let mut h = http::HeaderMap::new();
        for (n, v) in [
            ("authorization", "Bearer k"),
            ("x-api-key", "k"),
            ("x_api_key", "k"),
            ("x-api_key", "k"),
            ("x_api-key", "k"),
            ("x-keygate-principal", "admin"),
            ("x_keygate_principal", "admin"),
            ("x-keygate-principal", "root"),
            ("accept", "*/*"),
            ("x-request-id", "7"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        strip_key_headers(&mut h, &Policy::DEFAULT);
        let mut left: Vec<_> = h.keys().map(|n| n.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-request-id"]);
        // A Basic Authorization is not a key: it stays.
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        strip_key_headers(&mut h, &Policy::DEFAULT);
        assert_eq!(h.len(), 1);
    }
}
