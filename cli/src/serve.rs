//! `keygate serve`: a forward-auth HTTP service for proxies that cannot load a
//! module — nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz (HTTP),
//! Caddy `forward_auth`. Every request except `/healthz` and `/metrics` is an
//! authorization question about the key it carries:
//!
//! - 200 with `X-Keygate-Principal`, `X-Keygate-Key-Id`, `X-Keygate-Outcome`
//!   (and `Deprecation`/`Sunset` for a rotated key) — the proxy copies these
//!   to the upstream request / client response;
//! - 401 with `WWW-Authenticate: Bearer realm=…[, error="invalid_token"]`;
//! - 403 with `error="insufficient_scope"`; 503 when the artifacts are stale.
//!
//! The required scope is `--scope`, or per request the `X-Keygate-Scope` header
//! (so one service can guard locations with different scopes).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::{Artifact, Outcome, Verifier};
use tiny_http::{Header, Request, Response, Server};

use crate::{input, Fail, Res};

/// Where the artifacts come from.
pub(crate) enum Sources {
    /// Local files (a publish directory, or each named).
    Files {
        trust: PathBuf,
        snapshot: PathBuf,
        revocations: Option<PathBuf>,
    },
    /// A static origin (any web server, bucket or CDN that `keygate publish`
    /// output is copied to): `<base>trust.kgt`, `snapshot.kgs`,
    /// `revocations.kgr`, fetched with If-None-Match.
    Url {
        base: String,
        agent: ureq::Agent,
        /// ETag of the last installed artifact of each kind (`Artifact as usize`).
        etags: Mutex<[Option<String>; 3]>,
    },
}

/// The order artifacts are loaded in: trust first, so a snapshot from a
/// rotated signer is never refused, and revocations after their snapshot.
const ORDER: [Artifact; 3] = [Artifact::Trust, Artifact::Snapshot, Artifact::Revocations];

/// An artifact's bytes and its ETag (from an origin URL), or `None`.
type Fetched = Option<(Vec<u8>, Option<String>)>;

impl Sources {
    pub(crate) fn url(base: &str) -> Self {
        let base = if base.ends_with('/') {
            base.to_string()
        } else {
            format!("{base}/")
        };
        Self::Url {
            base,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build(),
            etags: Mutex::new([None, None, None]),
        }
    }

    /// Artifact `a`: `Ok(None)` when unchanged since it was last installed
    /// (HTTP 304) or, for the optional revocations, absent.
    fn get(&self, a: Artifact) -> Result<Fetched, String> {
        match self {
            Self::Files {
                trust,
                snapshot,
                revocations,
            } => {
                let path = match a {
                    Artifact::Trust => trust,
                    Artifact::Snapshot => snapshot,
                    Artifact::Revocations => match revocations {
                        Some(p) if p.exists() => p,
                        _ => return Ok(None),
                    },
                };
                std::fs::read(path)
                    .map(|b| Some((b, None)))
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Self::Url { base, agent, etags } => {
                let url = format!("{base}{}", a.file_name());
                let mut req = agent.get(&url);
                if let Some(e) = &etags.lock().unwrap_or_else(|e| e.into_inner())[a as usize] {
                    req = req.set("If-None-Match", e);
                }
                let resp = match req.call() {
                    Ok(r) if r.status() == 304 => return Ok(None),
                    Ok(r) => r,
                    Err(ureq::Error::Status(404, _)) if a == Artifact::Revocations => {
                        return Ok(None)
                    }
                    Err(e) => return Err(format!("{url}: {e}")),
                };
                let etag = resp.header("ETag").map(str::to_string);
                let mut body = Vec::new();
                // Artifacts are at most a few hundred MB (66 MB per million keys).
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(resp.into_reader(), 1 << 31),
                    &mut body,
                )
                .map_err(|e| format!("{url}: {e}"))?;
                Ok(Some((body, etag)))
            }
        }
    }

    /// Remembers the ETag of an installed artifact, so the next poll asks
    /// whether it changed (a refused one is fetched again).
    fn installed(&self, a: Artifact, etag: Option<String>) {
        if let Self::Url { etags, .. } = self {
            etags.lock().unwrap_or_else(|e| e.into_inner())[a as usize] = etag;
        }
    }
}

pub(crate) struct Settings {
    pub listen: String,
    pub sources: Sources,
    pub poll: Duration,
    pub scope: Option<String>,
    pub realm: String,
    pub threads: usize,
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Loads what changed, in [`ORDER`]; a missing, unreachable or refused
/// artifact keeps the current state and is logged on stderr.
fn load(v: &Verifier, s: &Sources) {
    for a in ORDER {
        let (bytes, etag) = match s.get(a) {
            Ok(Some(got)) => got,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("keygate serve: {a} not fetched: {e}");
                continue;
            }
        };
        let r = match a {
            Artifact::Trust => v.install_trust(&bytes),
            Artifact::Snapshot => v.install_snapshot(&bytes),
            Artifact::Revocations => v.install_revocations(&bytes),
        };
        match r {
            Ok(installed) => {
                if let keygate::Installed::Updated { from, to } = installed {
                    eprintln!("keygate serve: {a} {from} -> {to}");
                }
                s.installed(a, etag);
            }
            Err(e) => eprintln!("keygate serve: {a} not installed: {e}"),
        }
    }
}

fn presented_key(req: &Request) -> Option<String> {
    let get = |name: &str| {
        req.headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().trim().to_string())
    };
    if let Some(a) = get("Authorization") {
        let mut parts = a.splitn(2, ' ');
        if parts
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        {
            return parts
                .next()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty());
        }
    }
    get("X-API-Key").filter(|k| !k.is_empty())
}

fn http_date(t: u64) -> String {
    String::from_utf8_lossy(&keygate::http_date(t)).into_owned()
}

fn answer(v: &Verifier, s: &Settings, req: &Request) -> Response<std::io::Cursor<Vec<u8>>> {
    let text = |code: u16, body: &str| Response::from_string(body).with_status_code(code);
    match req.url().split('?').next().unwrap_or("") {
        "/healthz" => {
            return match v.snapshot_header() {
                Some(h) => text(200, &format!("ok snapshot {}\n", h.version)),
                None => text(503, "no snapshot\n"),
            }
        }
        "/metrics" => {
            let r = text(200, &v.stats_prometheus());
            return match header("Content-Type", "text/plain; version=0.0.4") {
                Some(h) => r.with_header(h),
                None => r,
            };
        }
        _ => {}
    }
    let challenge = |error: Option<(&str, &str)>| {
        let mut c = format!("Bearer realm=\"{}\"", s.realm);
        if let Some((e, d)) = error {
            c += &format!(", error=\"{e}\", error_description=\"{d}\"");
        }
        c
    };
    let deny = |code: u16, error: Option<(&str, &str)>| {
        let r = text(code, error.map_or("API key required\n", |e| e.0));
        match header("WWW-Authenticate", &challenge(error)) {
            Some(h) => r.with_header(h),
            None => r,
        }
    };
    let Some(key) = presented_key(req) else {
        return deny(401, None);
    };
    let scope = req
        .headers()
        .iter()
        .find(|h| {
            h.field
                .as_str()
                .as_str()
                .eq_ignore_ascii_case("X-Keygate-Scope")
        })
        .map(|h| h.value.as_str().to_string())
        .or_else(|| s.scope.clone());
    let d = v.verify_now(&key, scope.as_deref());
    let mut r = match d.outcome {
        Outcome::Valid | Outcome::ValidDeprecated => text(200, "ok\n"),
        Outcome::InsufficientScope => deny(
            403,
            Some(("insufficient_scope", "the key lacks the required scope")),
        ),
        Outcome::Stale => text(503, "keygate: key data stale\n"),
        o => deny(401, Some(("invalid_token", o.as_str()))),
    };
    let mut add = |n: &str, val: &str| {
        if let Some(h) = header(n, val) {
            r.add_header(h);
        }
    };
    add("X-Keygate-Outcome", d.outcome.as_str());
    if d.outcome.is_accepted() {
        add("X-Keygate-Principal", d.principal.as_str());
        if let Some(id) = d.key_id {
            add("X-Keygate-Key-Id", &id.to_string());
        }
    }
    if d.outcome == Outcome::ValidDeprecated {
        if let Some(t) = d.deprecated_at {
            add("Deprecation", &format!("@{t}"));
        }
        if let Some(t) = d.sunset_at {
            add("Sunset", &http_date(t));
        }
    }
    r
}

pub(crate) fn run(s: Settings) -> Res<u8> {
    let (trust, etag) = s
        .sources
        .get(Artifact::Trust)
        .map_err(input)?
        .unwrap_or_default();
    let v = Arc::new(Verifier::new(&trust).map_err(|e| input(format!("trust: {e}")))?);
    s.sources.installed(Artifact::Trust, etag);
    load(&v, &s.sources);
    let server = Server::http(&s.listen).map_err(|e| input(format!("listen {}: {e}", s.listen)))?;
    eprintln!("keygate serve: listening on {}", s.listen);
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (v, s, stop) = (Arc::clone(&v), Arc::clone(&s), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(s.poll);
                load(&v, &s.sources);
            }
        });
    }
    let server = Arc::new(server);
    let workers: Vec<_> = (0..s.threads.max(1))
        .map(|_| {
            let (server, v, s) = (Arc::clone(&server), Arc::clone(&v), Arc::clone(&s));
            std::thread::spawn(move || {
                for req in server.incoming_requests() {
                    let resp = answer(&v, &s, &req);
                    let _ = req.respond(resp);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    stop.store(true, Ordering::Relaxed);
    Err(Fail(3, "server stopped".into()))
}
