//! `keygate api`: the issuer as an HTTP service, for a dashboard backend (any
//! language) that creates, rotates and revokes keys — and, with
//! `--publish-to`, publishes on its own: a revocation reaches the published
//! update within a second, a new key the next full snapshot within
//! `--publish-delay`.
//!
//! - Callers authenticate with an **admin key** (`keygate admin-key`):
//!   `Authorization: Bearer kgadmin_…`, scopes `keys:read`, `keys:write`,
//!   `audit:read`, `publish`. Admin keys are never published to gateways.
//! - Every POST takes an `Idempotency-Key` (the Stripe convention): a retry
//!   with the same key and the same request gets the first answer and changes
//!   nothing; the same key with another request is refused (422).
//! - Errors are RFC 9457 `application/problem+json` with a stable `type`.
//! - Limits: the hardened listener `keygate serve` uses (head ≤ 64 KiB,
//!   header timeout, connection cap), bodies ≤ 64 KiB, 30 s per request.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use keygate::KeyId;
use keygate_issuer::{
    AdminKey, IdempotentAnswer, IssueRequest, IssuedKey, Issuer, IssuerError, KeyStatus, Principal,
    Recorded, RevokeTarget, Scope, StoreAt,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{listener, Fail, Res};

/// `keygate api`'s settings.
pub(crate) struct Settings {
    pub listen: String,
    pub store: StoreAt,
    pub publish_to: Option<PathBuf>,
    pub publish_hook: Option<String>,
    pub publish_delay: Duration,
    /// How often the fleet's gateways poll: part of `usable_at`.
    pub fleet_poll: Duration,
    /// Lifetime of published artifacts (seconds).
    pub valid_for: u64,
    /// A full snapshot at least this often.
    pub snapshot_every: Duration,
    /// Gateways' metrics endpoints scraped by `GET /v1/usage`.
    pub usage_from: Vec<String>,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub threads: usize,
}

/// The API's OpenAPI 3.1 description (`GET /v1/openapi.json`); the tests
/// check every answer they get against it.
const OPENAPI: &str = include_str!("openapi.json");

/// The largest request body.
const MAX_BODY: usize = 64 * 1024;
/// The longest an `Idempotency-Key` may be.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What the committer does with a job's result once its batch is done:
/// `Ok(audit head after the commit)`, or `Err(())` when the batch failed.
type Deliver = Box<dyn FnOnce(Result<u64, ()>) + Send>;
/// One request's work against the store, run by the committer.
type Job = Box<dyn FnOnce(&App, &mut Issuer) -> Deliver + Send>;

/// The most requests committed together.
const MAX_BATCH: usize = 256;

struct App {
    /// Requests waiting for the committer (group commit: every request
    /// waiting when a batch starts shares its one synced transaction).
    jobs: Mutex<Vec<Job>>,
    jobs_cv: std::sync::Condvar,
    s: Settings,
    /// The audit sequence the last full publish covered, and its signal.
    published: Mutex<u64>,
    published_cv: std::sync::Condvar,
}

impl App {
    /// Runs `f` on the committer's store connection inside the next batch's
    /// transaction and returns its result with the audit head after the
    /// commit — only once that commit is durable; `None` when the batch
    /// failed (nothing of it was stored).
    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&App, &mut Issuer) -> T + Send + 'static,
    ) -> Option<(T, u64)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |app, issuer| {
            let t = f(app, issuer);
            Box::new(move |committed: Result<u64, ()>| {
                let _ = tx.send(committed.ok().map(|seq| (t, seq)));
            })
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
        self.jobs_cv.notify_one();
        rx.recv().ok().flatten()
    }

    /// Waits until a full publish covers audit entry `seq`; false on timeout.
    fn wait_published(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut done = self.published.lock().unwrap_or_else(|e| e.into_inner());
        while *done < seq {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = self
                .published_cv
                .wait_timeout(done, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn mark_published(&self, seq: u64) {
        let mut done = self.published.lock().unwrap_or_else(|e| e.into_inner());
        *done = (*done).max(seq);
        self.published_cv.notify_all();
    }
}

/// How long `"wait": "published"` waits for the next full publish.
const WAIT_PUBLISHED: Duration = Duration::from_secs(20);

/// A POST body asking to be answered only once the change is published.
fn wants_published(method: &Method, body: &[u8]) -> bool {
    *method == Method::POST
        && serde_json::from_slice::<Value>(body)
            .ok()
            .is_some_and(|v| v.get("wait").and_then(Value::as_str) == Some("published"))
}

/// An RFC 9457 problem: `type` is `https://keygate.dev/problems/<slug>`.
struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
}

fn problem(
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: impl Into<String>,
) -> Problem {
    Problem {
        status,
        slug,
        title,
        detail: detail.into(),
    }
}

impl Problem {
    fn body(&self) -> Value {
        json!({
            "type": format!("https://keygate.dev/problems/{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        })
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = send(self.status, self.body().to_string());
        let h = r.headers_mut();
        match self.slug {
            "unauthorized" => {
                h.insert(
                    "www-authenticate",
                    HeaderValue::from_static("Bearer realm=\"keygate-api\""),
                );
            }
            "insufficient-scope" => {
                h.insert(
                    "www-authenticate",
                    HeaderValue::from_static(
                        "Bearer realm=\"keygate-api\", error=\"insufficient_scope\"",
                    ),
                );
            }
            _ => {}
        }
        r
    }
}

impl From<IssuerError> for Problem {
    fn from(e: IssuerError) -> Self {
        match e {
            IssuerError::Invalid(m) => problem(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                m,
            ),
            IssuerError::NotFound(m) => problem(StatusCode::NOT_FOUND, "not-found", "Not found", m),
            IssuerError::Conflict(m) => problem(
                StatusCode::CONFLICT,
                "conflict",
                "The change conflicts with the store",
                m,
            ),
            IssuerError::Unavailable(m) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The store is busy or unreachable; retry",
                m,
            ),
            e => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The issuer failed",
                e.to_string(),
            ),
        }
    }
}

type Answer = Result<(StatusCode, Value), Problem>;

fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Problem> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}" as &[u8]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "The body is not the JSON expected",
            e.to_string(),
        )
    })
}

/// The admin key presented (the gateway contract's key extraction), if it
/// is one, holds `scope`.
fn authenticate(issuer: &Issuer, headers: &HeaderMap, scope: &str) -> Result<AdminKey, Problem> {
    let pairs = headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    let key = match keygate::presented_key(pairs) {
        keygate::Presented::Key(k) => std::str::from_utf8(k).unwrap_or(""),
        keygate::Presented::None => {
            return Err(problem(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "An admin key is required",
                "send Authorization: Bearer kgadmin_…",
            ))
        }
        keygate::Presented::Conflict => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Two different keys presented",
                "send one admin key",
            ))
        }
    };
    let Some(admin) = issuer.authenticate_admin(key)? else {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unknown or revoked admin key",
            "the key is not a current admin key of this store",
        ));
    };
    // keys:write holds keys:revoke (a revoke-only key is for incident
    // tooling that must not issue).
    let holds = |s: &Scope| *s == scope || (scope == "keys:revoke" && *s == "keys:write");
    if !admin.scopes.iter().any(holds) {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "The admin key lacks a scope",
            format!("this call needs the {scope} scope"),
        ));
    }
    Ok(admin)
}

/// The admin key's bytes as presented (authenticated before this is used).
fn admin_secret(headers: &HeaderMap) -> Vec<u8> {
    let pairs = headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    match keygate::presented_key(pairs) {
        keygate::Presented::Key(k) => k.to_vec(),
        _ => Vec::new(),
    }
}

/// Runs a call on the blocking pool with the issuer locked, as the admin
/// key's principal. POSTs go through the idempotency record; a POST whose
/// body says `"wait": "published"` is answered once a full publish covers it
/// (waited for with the store unlocked).
async fn call(
    app: Arc<App>,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    scope: &'static str,
    op: impl FnOnce(&App, &mut Issuer, &[u8]) -> Answer + Send + 'static,
) -> Response {
    let done = tokio::task::spawn_blocking(move || {
        let wait = wants_published(&method, &body);
        if wait && app.s.publish_to.is_none() {
            return problem(
                StatusCode::CONFLICT,
                "publishing-not-configured",
                "This service does not publish",
                "\"wait\": \"published\" needs keygate api --publish-to DIR",
            )
            .into_response();
        }
        let done = app.submit(move |app, issuer| {
            locked(app, issuer, &method, &path, &headers, &body, scope, op)
        });
        let Some((resp, head)) = done else {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The store did not commit; retry",
                "nothing of this request was stored",
            )
            .into_response();
        };
        match (wait && resp.status().is_success()).then_some(head) {
            Some(seq) if !app.wait_published(seq, WAIT_PUBLISHED) => problem(
                StatusCode::GATEWAY_TIMEOUT,
                "not-published-yet",
                "Done, but not published in time",
                "the change is stored and will be published; retry with the same Idempotency-Key for the answer",
            )
            .into_response(),
            _ => resp,
        }
    })
    .await;
    done.unwrap_or_else(|_| handler_panicked())
}

/// One call with the store locked: authentication, the idempotency record,
/// the operation.
#[allow(clippy::too_many_arguments)]
fn locked(
    app: &App,
    issuer: &mut Issuer,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    scope: &'static str,
    op: impl FnOnce(&App, &mut Issuer, &[u8]) -> Answer,
) -> Response {
    let admin = match authenticate(issuer, headers, scope) {
        Ok(a) => a,
        Err(p) => return p.into_response(),
    };
    if let Err(e) = issuer.set_actor(&format!("api:{}", admin.principal)) {
        return Problem::from(e).into_response();
    }
    let idempotency = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or("\u{0}").to_string());
    let Some(idem) = idempotency.filter(|_| *method == Method::POST) else {
        // Every request is a savepoint of the batch: a failure undoes its
        // own writes only (the issuer's writes take none of their own here).
        let mut refused: Option<Problem> = None;
        let out = issuer.atomically(|i| {
            op(app, i, body).map_err(|p| {
                refused = Some(p);
                IssuerError::Invalid("refused".into())
            })
        });
        return match (out, refused) {
            (Ok(a), _) => reply(Ok(a)),
            (Err(_), Some(p)) => p.into_response(),
            (Err(e), None) => Problem::from(e).into_response(),
        };
    };
    if idem.is_empty()
        || idem.len() > MAX_IDEMPOTENCY_KEY
        || !idem.bytes().all(|b| b.is_ascii_graphic())
    {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Bad Idempotency-Key",
            "1-255 visible ASCII characters",
        )
        .into_response();
    }
    let mut h = Vec::with_capacity(body.len() + path.len() + 8);
    h.extend_from_slice(method.as_str().as_bytes());
    h.push(b' ');
    h.extend_from_slice(path.as_bytes());
    h.push(b'\n');
    h.extend_from_slice(body);
    let request_hash: String = keygate::Digest::of(&h)
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The presented admin key's secret seals the record (the store keeps
    // only its digest), so the first answer's key secret is never at rest.
    let secret = admin_secret(headers);
    let owner = admin.key_id.to_string();
    // The change and its record are one transaction: after a crash a retry
    // finds both or neither, so nothing is done twice. There is no lookup
    // before the change: the record's insert is the check (the store's one
    // writer at a time, across instances) — when an earlier request with
    // this key recorded its answer, this request's change is undone and
    // that answer is sent. Retries are rare; a lookup first would be one
    // more round trip, under the write lock, for every request.
    let mut failed: Option<(StatusCode, Value)> = None;
    let mut refused: Option<Problem> = None;
    let mut earlier: Option<IdempotentAnswer> = None;
    let first = |status: StatusCode, value: &Value| IdempotentAnswer {
        request_hash: request_hash.clone(),
        status: status.as_u16(),
        body: value.to_string(),
    };
    let out = issuer.atomically(|i| {
        let (status, value) = match op(app, i, body) {
            Ok(a) => a,
            Err(p) => {
                // Undo what the refused request wrote; its answer is
                // recorded below, on its own.
                refused = Some(p);
                return Err(IssuerError::Invalid("refused".into()));
            }
        };
        // A failure of the store is not recorded, and nothing of it stays:
        // a retry may succeed.
        if status.is_server_error() {
            failed = Some((status, value));
            return Err(IssuerError::Unavailable("rolled back".into()));
        }
        let answer = first(status, &value);
        match i.record_idempotent_answer(&owner, &secret, &idem, &answer)? {
            Recorded::First => Ok(answer),
            Recorded::Earlier(a) => {
                earlier = Some(a);
                Err(IssuerError::Conflict("answered before".into()))
            }
        }
    });
    if let Some(first) = earlier {
        return replay(&first, &request_hash);
    }
    if let Some((status, value)) = failed {
        return send(status, value.to_string());
    }
    let Some(p) = refused else {
        return match out {
            Ok(answer) => answer_as_recorded(&answer),
            Err(e) => Problem::from(e).into_response(),
        };
    };
    let (status, value) = (p.status, p.body());
    if status.is_server_error() {
        return send(status, value.to_string());
    }
    // A client error is the first answer too: a retry gets it again.
    let answer = first(status, &value);
    match issuer.atomically(|i| i.record_idempotent_answer(&owner, &secret, &idem, &answer)) {
        Ok(Recorded::First) => answer_as_recorded(&answer),
        Ok(Recorded::Earlier(first)) => replay(&first, &request_hash),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// Every error answer is an RFC 9457 problem, also those the HTTP stack
/// makes itself (a body over the limit, a wrong method, a time-out).
async fn as_problem(r: Response) -> Response {
    let status = r.status();
    let is_problem = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return r;
    }
    let (slug, title) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "The request body is too large"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method-not-allowed", "This path does not take this method")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("invalid-request", "Unsupported media type"),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
            ("timeout", "The request took too long")
        }
        s if s.is_client_error() => ("invalid-request", "The request was refused"),
        _ => ("internal", "The issuer failed"),
    };
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("at most {MAX_BODY} bytes"),
        _ => String::new(),
    };
    problem(status, slug, title, detail).into_response()
}

/// A JSON body with its status: `application/json` for a success, an RFC
/// 9457 `application/problem+json` otherwise. Every answer goes out here.
fn send(status: StatusCode, body: String) -> Response {
    let ct = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(ct));
    r
}

fn reply(a: Answer) -> Response {
    match a {
        Ok((status, v)) => send(status, v.to_string()),
        Err(p) => p.into_response(),
    }
}

/// A recorded answer, sent as it was recorded.
fn answer_as_recorded(a: &IdempotentAnswer) -> Response {
    send(
        StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK),
        a.body.clone(),
    )
}

/// The first answer again, for a retry of the same request; a key used
/// with another request is refused.
fn replay(first: &IdempotentAnswer, request_hash: &str) -> Response {
    if first.request_hash != request_hash {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused for another request",
            "this Idempotency-Key was first used with a different method, path or body",
        )
        .into_response();
    }
    let mut r = answer_as_recorded(first);
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// When a key issued now is in every gateway: the next publish plus one
/// fleet poll (`None` when this service does not publish).
fn usable_at(app: &App, now: u64) -> Option<u64> {
    app.s.publish_to.as_ref()?;
    Some(now + (app.s.publish_delay + app.s.fleet_poll).as_secs().max(1))
}

fn issued(app: &App, now: u64, k: &IssuedKey) -> Value {
    let mut v = serde_json::to_value(&k.info).unwrap_or(Value::Null);
    v["key"] = Value::String(k.key.expose_secret().to_string());
    v["usable_at"] = usable_at(app, now).map_or(Value::Null, Value::from);
    v
}

/// The answer to a rotation: the new key, and the keys it deprecated.
fn rotated(app: &App, now: u64, (k, old): (IssuedKey, Vec<keygate_issuer::KeyInfo>)) -> Answer {
    let mut v = issued(app, now, &k);
    v["deprecated"] = serde_json::to_value(old).unwrap_or(Value::Null);
    Ok((StatusCode::CREATED, v))
}

/// The answer to a revoke.
fn revoked(r: Vec<keygate_issuer::Revoked>) -> Answer {
    Ok((StatusCode::OK, json!({ "revoked": r })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    principal: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// Lifetime in seconds.
    expires_in: Option<u64>,
    /// Not valid before (unix seconds).
    not_before: Option<u64>,
    /// Policy class of the principal.
    class: Option<String>,
    /// `"published"`: answer once the key is in the published artifacts
    /// (`call` reads it; checked here).
    #[serde(rename = "wait")]
    _wait: Option<Wait>,
}

/// What a POST may wait for.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Wait {
    Published,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Grace window of the old keys, in seconds.
    grace: Option<u64>,
    /// `"published"`: answer once the new key is published.
    #[serde(rename = "wait")]
    _wait: Option<Wait>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    principal: Option<String>,
    status: Option<String>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
    /// Keys per page (default 100, at most 1000).
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Entries after this sequence number (default 0: from the start).
    after: Option<u64>,
    /// Entries per page (default 100, at most 1000).
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DueQuery {
    /// The window: `7d`, `12h` (default 7d).
    within: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    keys: Vec<ImportItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportItem {
    principal: String,
    /// SHA-256 of the existing key, hex.
    digest: String,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<u64>,
}

/// The most keys one import takes.
const MAX_IMPORT: usize = 1000;

/// A query string read into `T`, or a problem naming what is wrong.
fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, Problem> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(t)| t)
        .map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Bad query",
                e.body_text(),
            )
        })
}

fn key_id(s: &str) -> Result<KeyId, Problem> {
    KeyId::from_hex(s).ok_or_else(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Bad key id",
            "a key id is 32 hex digits",
        )
    })
}

fn router(app: Arc<App>) -> Router {
    macro_rules! route {
        ($method:expr, $scope:literal, |$app:pat_param, $i:ident, $body:ident, $uri:ident| $op:expr) => {
            |State(app): State<Arc<App>>, $uri: axum::http::Uri, headers: HeaderMap, body: Bytes| async move {
                let path = $uri.path().to_string();
                call(app, $method, path, headers, body, $scope, move |$app, $i, $body| $op).await
            }
        };
        ($method:expr, $scope:literal, $op:expr) => {
            |State(app): State<Arc<App>>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| async move {
                call(app, $method, uri.path().to_string(), headers, body, $scope, $op).await
            }
        };
    }
    // The same for a route with one path parameter, handed to the operation.
    macro_rules! route_with {
        ($method:expr, $scope:literal, |$app:pat_param, $i:ident, $body:ident, $param:ident| $op:expr) => {
            |State(app): State<Arc<App>>,
             Path($param): Path<String>,
             uri: axum::http::Uri,
             headers: HeaderMap,
             body: Bytes| async move {
                call(
                    app,
                    $method,
                    uri.path().to_string(),
                    headers,
                    body,
                    $scope,
                    move |$app, $i, $body| $op,
                )
                .await
            }
        };
    }
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/v1/keys",
            post(route!(Method::POST, "keys:write", |app, i, body| {
                let b: IssueBody = json_body(body)?;
                let req = IssueRequest {
                    principal: Principal::new(b.principal)?,
                    scopes: Scope::all(b.scopes)?,
                    expires_in: b.expires_in,
                    not_before: b.not_before,
                    class: b.class,
                };
                let now = i.now();
                let k = i.issue(&req)?;
                Ok((StatusCode::CREATED, issued(app, now, &k)))
            }))
            .get(route!(Method::GET, "keys:read", |_, i, _body, uri| {
                let q: ListQuery = query(&uri)?;
                let after = q.cursor.as_deref().map(key_id).transpose()?;
                let status = q.status.as_deref().map(str::parse).transpose()?;
                let (keys, more) = i.list_page(
                    q.principal.as_deref(),
                    status,
                    after.as_ref(),
                    q.limit.unwrap_or(100),
                )?;
                let next = more
                    .then(|| keys.last().map(|k| k.key_id.to_string()))
                    .flatten();
                Ok((StatusCode::OK, json!({ "keys": keys, "next_cursor": next })))
            })),
        )
        .route(
            "/v1/keys:import",
            post(route!(Method::POST, "keys:write", |_, i, body, _uri| {
                let b: ImportBody = json_body(body)?;
                if b.keys.is_empty() || b.keys.len() > MAX_IMPORT {
                    return Err(problem(
                        StatusCode::BAD_REQUEST,
                        "invalid-request",
                        "Bad import",
                        format!("1-{MAX_IMPORT} keys per import"),
                    ));
                }
                let items = b
                    .keys
                    .into_iter()
                    .map(|k| {
                        let digest = keygate::Digest::from_hex(&k.digest).ok_or_else(|| {
                            problem(
                                StatusCode::BAD_REQUEST,
                                "invalid-request",
                                "Bad digest",
                                "digest: 64 hex characters (SHA-256 of the key)",
                            )
                        })?;
                        Ok(keygate_issuer::Import {
                            principal: Principal::new(k.principal)?,
                            digest,
                            scopes: Scope::all(k.scopes)?,
                            expires_at: k.expires_at,
                        })
                    })
                    .collect::<Result<Vec<_>, Problem>>()?;
                let keys = i.import_many(&items)?;
                Ok((StatusCode::CREATED, json!({ "keys": keys })))
            })),
        )
        .route(
            "/v1/due",
            get(route!(Method::GET, "keys:read", |_, i, _body, uri| {
                let q: DueQuery = query(&uri)?;
                let within = q.within.as_deref().unwrap_or("7d");
                let within = humantime::parse_duration(within).map_err(|e| {
                    problem(
                        StatusCode::BAD_REQUEST,
                        "invalid-request",
                        "Bad query",
                        format!("within: {e}"),
                    )
                })?;
                Ok((StatusCode::OK, json!({ "due": i.due(within.as_secs())? })))
            })),
        )
        .route(
            "/metrics",
            get(|State(app): State<Arc<App>>, headers: HeaderMap| blocking(app, headers, metrics)),
        )
        .route(
            "/v1/openapi.json",
            get(|| async { send(StatusCode::OK, OPENAPI.to_string()) }),
        )
        .route(
            "/v1/keys/{id}",
            get(route_with!(Method::GET, "keys:read", |_, i, _body, id| {
                let id = key_id(&id)?;
                match i.key(&id)? {
                    Some(k) => Ok((
                        StatusCode::OK,
                        serde_json::to_value(k).unwrap_or(Value::Null),
                    )),
                    None => Err(problem(
                        StatusCode::NOT_FOUND,
                        "not-found",
                        "Not found",
                        format!("no key {id}"),
                    )),
                }
            })),
        )
        .route(
            "/v1/keys/{id}/revoke",
            post(route_with!(
                Method::POST,
                "keys:revoke",
                |_, i, body, id| {
                    let b: RevokeBody = json_body(body)?;
                    let id = key_id(&id)?;
                    revoked(i.revoke(&RevokeTarget::Ids(vec![id]), b.reason.as_deref())?)
                }
            )),
        )
        .route(
            "/v1/keys/{id}/rotate",
            post(route_with!(
                Method::POST,
                "keys:write",
                |app, i, body, id| {
                    let b: RotateBody = json_body(body)?;
                    let id = key_id(&id)?;
                    let now = i.now();
                    rotated(app, now, i.rotate_key(&id, b.grace)?)
                }
            )),
        )
        .route(
            "/v1/principals/{principal}/rotate",
            post(route_with!(
                Method::POST,
                "keys:write",
                |app, i, body, p| {
                    let b: RotateBody = json_body(body)?;
                    let now = i.now();
                    rotated(app, now, i.rotate(&p, b.grace)?)
                }
            )),
        )
        .route(
            "/v1/principals/{principal}/revoke",
            post(route_with!(Method::POST, "keys:revoke", |_, i, body, p| {
                let b: RevokeBody = json_body(body)?;
                revoked(i.revoke(&RevokeTarget::Principal(p), b.reason.as_deref())?)
            })),
        )
        .route(
            "/v1/publish",
            post(route!(Method::POST, "publish", |app, i, _body| {
                let Some(out) = app.s.publish_to.as_ref() else {
                    return Err(problem(
                        StatusCode::CONFLICT,
                        "publishing-not-configured",
                        "This service does not publish",
                        "start keygate api with --publish-to DIR",
                    ));
                };
                let r = i.publish(out, app.s.valid_for)?;
                run_hook(&app.s, out);
                Ok((
                    StatusCode::OK,
                    serde_json::to_value(r).unwrap_or(Value::Null),
                ))
            })),
        )
        .route(
            "/v1/usage",
            get(|State(app): State<Arc<App>>, headers: HeaderMap| blocking(app, headers, usage)),
        )
        .route(
            "/v1/audit",
            get(route!(Method::GET, "audit:read", |_, i, _body, uri| {
                let q: AuditQuery = query(&uri)?;
                let entries = i.audit_after(q.after.unwrap_or(0), q.limit.unwrap_or(100))?;
                let next = entries.last().map(|e| e.seq);
                Ok((
                    StatusCode::OK,
                    json!({ "entries": entries, "next_after": next }),
                ))
            })),
        )
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "not-found",
                "No such endpoint",
                "see docs/integrations/issuer-api.md",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(as_problem))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .with_state(app)
}

/// The largest metrics export read from one gateway.
const MAX_EXPORT: u64 = 16 << 20;

/// `GET /v1/usage`: who still uses each deprecated key, and when last, from
/// the gateways' own counters (`--usage-from` URLs, scraped now). The store
/// is locked only to read the keys, never while a gateway answers.
/// `GET /metrics`: the issuer's metrics in Prometheus text (keys by status
/// and class, ages, keys due, time since the last publish), for an admin
/// key with `metrics:read` (Prometheus sends it as a bearer token).
/// A handler that reads the store itself (through the committer) and may
/// wait on the network, on the blocking pool.
async fn blocking(
    app: Arc<App>,
    headers: HeaderMap,
    f: fn(&App, &HeaderMap) -> Response,
) -> Response {
    tokio::task::spawn_blocking(move || f(&app, &headers))
        .await
        .unwrap_or_else(|_| handler_panicked())
}

/// A request handler panicked (caught: the service goes on).
fn handler_panicked() -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "The issuer failed",
        "a request handler panicked",
    )
    .into_response()
}

/// The committer did not answer (the store is down or the batch failed).
fn store_unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "The store is unavailable; retry",
        "",
    )
    .into_response()
}

fn metrics(app: &App, headers: &HeaderMap) -> Response {
    let h = headers.clone();
    let text = app.submit(move |_, issuer| {
        authenticate(issuer, &h, "metrics:read")?;
        issuer.metrics().map_err(Problem::from)
    });
    match text {
        Some((Ok(t), _)) => {
            let mut r = (StatusCode::OK, t).into_response();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        Some((Err(p), _)) => p.into_response(),
        None => store_unavailable(),
    }
}

fn usage(app: &App, headers: &HeaderMap) -> Response {
    let h = headers.clone();
    let listed = app.submit(move |_, issuer| {
        authenticate(issuer, &h, "keys:read")?;
        issuer
            .list(None, Some(KeyStatus::Deprecated))
            .map_err(Problem::from)
    });
    let deprecated = match listed {
        Some((Ok(k), _)) => k,
        Some((Err(p), _)) => return p.into_response(),
        None => return store_unavailable(),
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let mut report = keygate_issuer::UsageReport::default();
    let mut sources = Vec::new();
    for url in &app.s.usage_from {
        let got = agent
            .get(url)
            .call()
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(r.into_reader(), MAX_EXPORT),
                    &mut text,
                )
                .map_err(|e| e.to_string())?;
                report.add_export(url, &text).map_err(|e| e.to_string())
            });
        sources.push(match got {
            Ok(()) => json!({ "url": url, "ok": true }),
            Err(e) => json!({ "url": url, "ok": false, "error": e }),
        });
    }
    let keys: Vec<Value> = deprecated
        .iter()
        .map(|k| {
            let id = k.key_id.to_string();
            let u = report.get(&id).unwrap_or_default();
            json!({
                "key_id": id,
                "principal": k.principal,
                "sunset_at": k.sunset_at,
                "uses": u.uses,
                "last_seen": (u.last_seen > 0).then_some(u.last_seen),
            })
        })
        .collect();
    reply(Ok((
        StatusCode::OK,
        json!({ "keys": keys, "sources": sources }),
    )))
}

/// Runs the waiting requests in batches, each batch one transaction with one
/// synced commit (group commit); a request's answer is delivered only after
/// its batch is durable. Each request's own changes sit in a savepoint, so a
/// request that fails leaves the others of its batch intact.
fn committer(app: Arc<App>, mut issuer: Issuer) {
    loop {
        let batch: Vec<Job> = {
            let mut q = app.jobs.lock().unwrap_or_else(|e| e.into_inner());
            while q.is_empty() {
                q = app.jobs_cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            let n = q.len().min(MAX_BATCH);
            q.drain(..n).collect()
        };
        let mut deliveries: Vec<Deliver> = Vec::with_capacity(batch.len());
        let app_ref: &App = &app;
        let committed = issuer.atomically(|i| {
            for job in batch {
                deliveries.push(job(app_ref, i));
            }
            i.audit_head_seq()
        });
        if let Err(IssuerError::Unavailable(_)) = &committed {
            // A lost connection (a database restart, a failover): the next
            // batch gets a new one if the store is back.
            match issuer.reopen() {
                Ok(i) => issuer = i,
                Err(e) => eprintln!("keygate api: store still unavailable: {e}"),
            }
        }
        let result = committed.map_err(|e| eprintln!("keygate api: a batch did not commit: {e}"));
        for d in deliveries {
            d(result);
        }
    }
}

/// Runs `--publish-hook` after a publish (for syncing to a bucket or CDN),
/// with `KEYGATE_PUBLISH_DIR` set; a failure is logged, never fatal.
fn run_hook(s: &Settings, out: &std::path::Path) {
    let Some(cmd) = &s.publish_hook else { return };
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("KEYGATE_PUBLISH_DIR", out)
        .stdin(std::process::Stdio::null())
        .status()
    {
        Ok(st) if st.success() => {}
        Ok(st) => eprintln!("keygate api: publish hook exited with {st}"),
        Err(e) => eprintln!("keygate api: publish hook: {e}"),
    }
}

/// Publishes on its own: every 100 ms it looks at the audit chain; a change
/// that is only revocations is published as the fast update at once, any
/// other (a new or rotated key) as a full snapshot once `--publish-delay`
/// has passed since it. Its own connection to the store, so the API never
/// waits for a publish. With several instances on one PostgreSQL store,
/// only the leader (the holder of the store's leader lock) publishes; the
/// others follow what it published, for `"wait": "published"`, and one of
/// them takes over when the leader's connection ends.
fn publisher(s: Arc<App>, out: PathBuf) {
    let mut issuer: Option<Issuer> = None;
    let mut leader = false;
    let mut seen = 0u64;
    let mut pending = Pending::default();
    let mut last_error = String::new();
    let mut log_once = |e: &IssuerError| {
        let m = e.to_string();
        if m != last_error {
            eprintln!("keygate api: publisher: {m}");
            last_error = m;
        }
    };
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let i = match issuer.as_mut() {
            Some(i) => i,
            None => match Issuer::open_at(&s.s.store, "api:publisher") {
                Ok(i) => {
                    leader = false;
                    issuer.insert(i)
                }
                Err(e) => {
                    log_once(&e);
                    continue;
                }
            },
        };
        match publish_round(&s, &out, i, &mut leader, &mut seen, &mut pending) {
            Ok(()) => {}
            Err(e) => {
                log_once(&e);
                if matches!(e, IssuerError::Unavailable(_)) {
                    // A new connection next round (and a new election).
                    issuer = None;
                }
            }
        }
    }
}

/// What the publisher is waiting to publish, and since when.
#[derive(Default)]
struct Pending {
    /// New, rotated or changed keys for the update (batched for
    /// `--publish-delay`).
    update: Option<Instant>,
    /// A full snapshot: nothing published yet, the update grown past the
    /// compaction threshold, or the snapshot older than `--snapshot-every`.
    full: Option<Instant>,
}

/// Keys an update may carry before the next publish is a full snapshot.
fn compact_at(snapshot_keys: u64) -> u64 {
    (snapshot_keys / 50).max(1000)
}

/// One round of [`publisher`].
fn publish_round(
    s: &App,
    out: &std::path::Path,
    issuer: &mut Issuer,
    leader: &mut bool,
    seen: &mut u64,
    pending: &mut Pending,
) -> Result<(), IssuerError> {
    if !*leader {
        *leader = issuer.try_lead()?;
        if !*leader {
            s.mark_published(issuer.published_through()?);
            return Ok(());
        }
        eprintln!("keygate api: this instance publishes (leader)");
        // A new leader looks at everything: what the one before it left
        // unpublished goes out now.
        *seen = 0;
    }
    if !issuer.has_published()? {
        pending.full.get_or_insert_with(Instant::now);
    }
    let head = issuer.audit_head_seq()?;
    if head != *seen {
        let through = issuer.published_through()?;
        let changed = issuer.unpublished_since(through.max(*seen))?;
        *seen = head;
        if changed.snapshot {
            pending.update.get_or_insert_with(Instant::now);
        }
        // A revoke goes out at once, with whatever else changed since the
        // snapshot (the update is cumulative).
        if changed.revocations && issuer.has_published()? && pending.full.is_none() {
            publish_update(s, out, issuer, pending)?;
        }
    }
    if pending
        .update
        .is_some_and(|t| t.elapsed() >= s.s.publish_delay)
        && pending.full.is_none()
        && issuer.has_published()?
    {
        publish_update(s, out, issuer, pending)?;
    }
    // The schedule: a snapshot ages out of --valid-for unless rebuilt.
    let last = issuer.info()?.last_publish_at.unwrap_or(0);
    if issuer.now() >= last.saturating_add(s.s.snapshot_every.as_secs()) {
        pending.full.get_or_insert_with(Instant::now);
    }
    if pending
        .full
        .is_some_and(|t| t.elapsed() >= s.s.publish_delay)
    {
        let r = issuer.publish(out, s.s.valid_for)?;
        eprintln!(
            "keygate api: published snapshot {} ({} keys)",
            r.snapshot_version, r.keys
        );
        run_hook(&s.s, out);
        *pending = Pending::default();
        s.mark_published(issuer.published_through()?);
        // Changes made while this published are looked at on the next
        // round: the publish's own entry is harmless there.
    }
    Ok(())
}

/// Publishes the update now; asks for a full snapshot when it has grown
/// past the compaction threshold.
fn publish_update(
    s: &App,
    out: &std::path::Path,
    issuer: &mut Issuer,
    pending: &mut Pending,
) -> Result<(), IssuerError> {
    let r = issuer.publish_update(out, s.s.valid_for)?;
    eprintln!(
        "keygate api: published the update (sequence {}: {} revoked, {} added or changed)",
        r.revocation_seq, r.revoked_in_update, r.records_in_update
    );
    run_hook(&s.s, out);
    pending.update = None;
    if r.records_in_update > compact_at(r.keys) {
        pending.full.get_or_insert_with(Instant::now);
    }
    s.mark_published(issuer.published_through()?);
    Ok(())
}

pub(crate) fn run(s: Settings) -> Res<u8> {
    let issuer = Issuer::open_at(&s.store, "api").map_err(Fail::from)?;
    // No unauthenticated mode: without a current admin key nobody could
    // call it, and an operator should hear that now, not from a 401.
    let now = issuer.now();
    let current = issuer
        .admin_keys()
        .map_err(Fail::from)?
        .into_iter()
        .any(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|t| t > now));
    if !current {
        return Err(crate::input(
            "no admin key in this store: create one first \
             (keygate admin-key --principal NAME --scope keys:write --scope keys:read)",
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| Fail(3, format!("runtime: {e}")))?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let app = Arc::new(App {
        jobs: Mutex::new(Vec::new()),
        jobs_cv: std::sync::Condvar::new(),
        s,
        published: Mutex::new(0),
        published_cv: std::sync::Condvar::new(),
    });
    {
        let app = Arc::clone(&app);
        std::thread::spawn(move || committer(app, issuer));
    }
    if let Some(out) = app.s.publish_to.clone() {
        let app = Arc::clone(&app);
        std::thread::spawn(move || publisher(app, out));
    }
    rt.block_on(async move {
        let l = listener::bind(&app.s.listen).await?;
        eprintln!("keygate api: listening on {}", app.s.listen);
        let (cap, timeout) = (app.s.max_connections, app.s.header_timeout);
        let service = hyper_util::service::TowerToHyperService::new(router(app));
        listener::serve(
            "keygate api",
            l,
            cap,
            timeout,
            Arc::new(AtomicU64::new(0)),
            service,
        )
        .await;
        Ok::<_, Fail>(())
    })?;
    Err(Fail(3, "server stopped".into()))
}
