//! keygate for Python: the core's `Verifier` through PyO3 (no C layer in
//! between), kept current from a publish directory or an HTTP origin by the
//! core's reload rules on a background thread. The GIL is released while a
//! key is verified. The framework middleware (ASGI/Starlette, FastAPI) is
//! Python in `python/keygate/`, on `Verifier::check`: the gateway
//! contract decided here, in the core, as on every other surface.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keygate::{Artifact, Origin, Policy, Poller, Source};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

struct Shared {
    verifier: keygate::Verifier,
    source: Source,
    realm: String,
    principal_header: String,
    retry_after: u32,
}

impl Shared {
    fn policy(&self) -> Policy<'_> {
        // Checked when the Verifier was made.
        Policy::new(&self.realm, &self.principal_header, self.retry_after)
            .unwrap_or(Policy::DEFAULT)
    }
}

/// A key or header as Python passes it, `str` or `bytes`, read in place.
fn text<'a>(o: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(s) = o.downcast::<PyString>() {
        return Ok(s.to_str()?.as_bytes());
    }
    if let Ok(b) = o.downcast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    Err(PyTypeError::new_err("expected str or bytes"))
}

fn now() -> u64 {
    keygate::Verifier::now()
}

/// Verifies API keys against a published keyset, in-process.
#[pyclass(frozen, module = "keygate")]
struct Verifier {
    shared: Arc<Shared>,
    poller: std::sync::Mutex<Option<Poller>>,
}

/// What a verify found. Holds no secret. Built per verify without
/// formatting anything: the getters make the Python values when asked.
#[pyclass(frozen, module = "keygate")]
#[derive(Clone)]
struct Verdict {
    outcome: keygate::Outcome,
    principal: Option<String>,
    key_id: Option<keygate::KeyId>,
    expires_at: Option<u64>,
    deprecated_at: Option<u64>,
    sunset_at: Option<u64>,
    scopes: Option<keygate::ScopeNames>,
}

#[pymethods]
impl Verdict {
    /// The outcome's name: `valid`, `valid_deprecated`, `unknown`,
    /// `revoked`, `expired`, `not_yet_valid`, `insufficient_scope`,
    /// `malformed` or `stale`.
    #[getter]
    fn outcome(&self) -> &'static str {
        self.outcome.as_str()
    }

    /// The key's principal (`None` unless the key was found).
    #[getter]
    fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The key's id (32 hex characters; not secret).
    #[getter]
    fn key_id(&self) -> Option<String> {
        self.key_id.map(|k| k.to_string())
    }

    #[getter]
    fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    #[getter]
    fn deprecated_at(&self) -> Option<u64> {
        self.deprecated_at
    }

    #[getter]
    fn sunset_at(&self) -> Option<u64> {
        self.sunset_at
    }

    /// The scopes the key holds, in the keyset's order (empty unless the
    /// key was found).
    #[getter]
    fn scopes(&self) -> Vec<&str> {
        self.scopes
            .as_deref()
            .map_or_else(Vec::new, |s| s.iter().map(|n| &**n).collect())
    }

    /// Whether the key is good for the request (`valid` or
    /// `valid_deprecated`).
    #[getter]
    fn valid(&self) -> bool {
        matches!(
            self.outcome,
            keygate::Outcome::Valid | keygate::Outcome::ValidDeprecated
        )
    }

    fn __repr__(&self) -> String {
        let opt = |o: Option<String>| o.map_or("None".to_owned(), |s| format!("{s:?}"));
        format!(
            "Verdict(outcome={:?}, principal={}, key_id={})",
            self.outcome.as_str(),
            opt(self.principal.clone()),
            opt(self.key_id())
        )
    }
}

impl Verdict {
    /// The verdict for Python, with the key's scope names when it was found
    /// (read from the artifacts it was decided on, just after, on the thread
    /// that verified).
    fn new(v: keygate::Verdict, verifier: &keygate::Verifier) -> Self {
        let found = v.key_id.is_some() && !v.principal.as_str().is_empty();
        Self {
            outcome: v.outcome,
            principal: found.then(|| v.principal.as_str().to_owned()),
            key_id: v.key_id,
            expires_at: v.expires_at,
            deprecated_at: v.deprecated_at,
            sunset_at: v.sunset_at,
            scopes: if found {
                verifier.scope_names(&v)
            } else {
                None
            },
        }
    }
}

/// The gateway contract's answer to one request (what every keygate
/// surface answers): forward it or refuse it, and how.
#[pyclass(frozen, get_all, module = "keygate")]
struct Decision {
    /// 200 (forward), 400, 401, 403 or 503.
    status: u16,
    /// Whether the request goes on to the application.
    forward: bool,
    /// The refusal's body (plain text).
    body: String,
    /// Headers for the response: the challenge and `Retry-After` of a
    /// refusal, `Deprecation`/`Sunset` for a forwarded rotated key.
    response_headers: Vec<(String, String)>,
    /// Request headers to remove before the application sees the request
    /// (the key headers, any client copy of the principal header).
    strip: Vec<String>,
    /// The request header the principal goes in.
    principal_header: String,
    /// Its value (percent-encoded where needed) when forwarded.
    principal_value: Option<String>,
    /// The verdict, when a key was presented.
    verdict: Option<Verdict>,
}

#[pymethods]
impl Verifier {
    /// A publish directory: the trust anchor is pinned from its `trust.kgt`
    /// now (later bundles there must chain from it); the artifacts are
    /// loaded now, then every `poll_interval` seconds on a background thread
    /// (`None`: only when `reload()` is called).
    #[staticmethod]
    #[pyo3(signature = (path, *, poll_interval = Some(1.0), realm = "keygate", principal_header = "x-keygate-principal", retry_after = 5))]
    fn from_dir(
        path: PathBuf,
        poll_interval: Option<f64>,
        realm: &str,
        principal_header: &str,
        retry_after: u32,
    ) -> PyResult<Self> {
        let anchor = std::fs::read(path.join(Artifact::Trust.file_name()))
            .map_err(|e| PyOSError::new_err(format!("trust anchor: {e}")))?;
        Self::make(
            &anchor,
            Origin::dir(path),
            poll_interval,
            realm,
            principal_header,
            retry_after,
        )
    }

    /// A static HTTP(S) origin polled with `If-None-Match`; `anchor` is the
    /// `trust.kgt` you trust (bytes).
    #[staticmethod]
    #[pyo3(signature = (anchor, url, *, poll_interval = Some(1.0), realm = "keygate", principal_header = "x-keygate-principal", retry_after = 5))]
    fn from_url(
        anchor: &[u8],
        url: &str,
        poll_interval: Option<f64>,
        realm: &str,
        principal_header: &str,
        retry_after: u32,
    ) -> PyResult<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(PyValueError::new_err("url must be http(s)"));
        }
        Self::make(
            anchor,
            Origin::url(url),
            poll_interval,
            realm,
            principal_header,
            retry_after,
        )
    }

    /// Loads what changed now; whether the origin answered.
    fn reload(&self, py: Python<'_>) -> bool {
        let shared = Arc::clone(&self.shared);
        py.allow_threads(move || shared.source.load(&shared.verifier).answered)
    }

    /// Verifies `key` (`str` or `bytes`), optionally for `scope`.
    #[pyo3(signature = (key, scope = None))]
    fn verify(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        scope: Option<&str>,
    ) -> PyResult<Verdict> {
        let key = text(key)?;
        let t = now();
        let v = py.allow_threads(|| self.shared.verifier.verify_bytes(key, t, scope));
        Ok(Verdict::new(v, &self.shared.verifier))
    }

    /// The gateway contract for one request from its headers, as
    /// `(name, value)` pairs of `str` or `bytes` (an ASGI scope's
    /// `headers`, a WSGI environ turned into pairs, ...).
    #[pyo3(signature = (headers, scope = None))]
    fn check(
        &self,
        py: Python<'_>,
        headers: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>,
        scope: Option<&str>,
    ) -> PyResult<Decision> {
        let shared = &self.shared;
        let policy = shared.policy();
        let mut read: Vec<(&[u8], &[u8])> = Vec::with_capacity(headers.len());
        for (n, v) in &headers {
            read.push((text(n)?, text(v)?));
        }
        let pairs = || read.iter().copied();
        // The headers are read with the GIL held (they are Python objects);
        // the verify runs without it.
        let presented = keygate::presented_key(pairs());
        let t = now();
        let (answer, verdict) = py.allow_threads(|| shared.verifier.answer(presented, t, scope));
        let forward = answer.forward();
        let mut strip: Vec<String> = Vec::new();
        if forward {
            for (n, v) in pairs() {
                if policy.strips(n, v) {
                    let n = String::from_utf8_lossy(n).to_ascii_lowercase();
                    if !strip.contains(&n) {
                        strip.push(n);
                    }
                }
            }
        }
        let principal_value = verdict.as_ref().filter(|_| forward).map(|v| {
            keygate::principal_value(v.principal.as_str())
                .as_str()
                .to_owned()
        });
        Ok(Decision {
            status: answer.status,
            forward,
            body: if forward {
                String::new()
            } else {
                answer.body().to_owned()
            },
            response_headers: answer
                .response_headers(&policy)
                .map(|(n, v)| (n.to_owned(), v.as_str().to_owned()))
                .collect(),
            strip,
            principal_header: shared.principal_header.clone(),
            principal_value,
            verdict: verdict.map(|v| Verdict::new(v, &shared.verifier)),
        })
    }

    /// The counters as Prometheus text (the names every keygate surface
    /// exports: `keygate_verify_total{outcome=...}` and the rest).
    fn metrics(&self) -> String {
        self.shared.verifier.stats_prometheus()
    }

    /// Stops the background poll (also when the Verifier is collected).
    fn close(&self) {
        if let Some(p) = self.poller.lock().unwrap_or_else(|e| e.into_inner()).take() {
            p.stop();
        }
    }

    fn __repr__(&self) -> String {
        let s = self.shared.verifier.stats();
        format!(
            "Verifier(snapshot_version={}, revocation_seq={})",
            s.snapshot_version, s.revocation_seq
        )
    }
}

impl Verifier {
    fn make(
        anchor: &[u8],
        origin: Origin,
        poll_interval: Option<f64>,
        realm: &str,
        principal_header: &str,
        retry_after: u32,
    ) -> PyResult<Self> {
        let verifier = keygate::Verifier::new(anchor)
            .map_err(|e| PyValueError::new_err(format!("trust anchor refused: {e}")))?;
        Policy::new(realm, principal_header, retry_after)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let every = match poll_interval {
            None => None,
            Some(s) if s.is_finite() && (0.1..=3600.0).contains(&s) => {
                Some(Duration::from_secs_f64(s))
            }
            Some(_) => {
                return Err(PyValueError::new_err(
                    "poll_interval must be between 0.1 and 3600 seconds, or None",
                ))
            }
        };
        let shared = Arc::new(Shared {
            verifier,
            source: Source::new(origin),
            realm: realm.to_owned(),
            principal_header: principal_header.to_ascii_lowercase(),
            retry_after,
        });
        shared.source.load(&shared.verifier);
        let poller = match every {
            None => None,
            Some(every) => {
                let s = Arc::clone(&shared);
                Some(
                    Poller::start(
                        "keygate-poll",
                        every,
                        every.max(Duration::from_secs(30)),
                        move || s.source.load(&s.verifier).answered,
                    )
                    .map_err(|e| PyOSError::new_err(format!("no poller thread: {e}")))?,
                )
            }
        };
        Ok(Self {
            shared,
            poller: std::sync::Mutex::new(poller),
        })
    }
}

#[pymodule]
fn _keygate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Verifier>()?;
    m.add_class::<Verdict>()?;
    m.add_class::<Decision>()?;
    Ok(())
}
