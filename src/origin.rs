//! Where a gateway that fetches its own artifacts finds them: a publish
//! directory (or separate files), or a static HTTP origin that `keygate
//! publish` output is copied to. One look at one artifact at a time, by the
//! [`Reload`](crate::Reload) discipline's change detection: a file stamp
//! compared before reading, or an `ETag` sent as `If-None-Match`. Used by
//! `keygate serve` and the Envoy native module (feature `fetch`).

use alloc::string::{String, ToString};
use std::path::PathBuf;
use std::time::Duration;

use crate::names::Artifact;
use crate::reload::{look_at_file, Look};

/// The largest artifact fetched from an origin (66 MB per million keys).
pub const MAX_ARTIFACT: u64 = 1 << 31;

/// Where artifacts come from.
#[derive(Debug)]
pub enum Origin {
    /// Files: `trust` and `revocations` are optional (a keyset without a
    /// trust update or revocations yet); the snapshot is required.
    Files {
        /// A trust bundle file re-read for newer bundles (may be the pinned
        /// anchor itself: an operator may append bundles to it).
        trust: Option<PathBuf>,
        /// The snapshot.
        snapshot: PathBuf,
        /// The update.
        revocations: Option<PathBuf>,
    },
    /// A static origin (any web server, bucket or CDN): `<base>trust.kgt`,
    /// `snapshot.kgs`, `revocations.kgr`, fetched with `If-None-Match`.
    Url {
        /// The base URL, ending in `/`.
        base: String,
        /// The HTTP client (5 s timeout).
        agent: ureq::Agent,
    },
}

impl Origin {
    /// A publish directory: the three artifacts by their file names.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self::Files {
            trust: Some(dir.join(Artifact::Trust.file_name())),
            snapshot: dir.join(Artifact::Snapshot.file_name()),
            revocations: Some(dir.join(Artifact::Revocations.file_name())),
        }
    }

    /// A static HTTP(S) origin at `base` (a `/` is added when missing).
    pub fn url(base: &str) -> Self {
        let base = if base.ends_with('/') {
            base.to_string()
        } else {
            alloc::format!("{base}/")
        };
        Self::Url {
            base,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build(),
        }
    }

    /// One look at artifact `a`, asking whether it changed since
    /// `validator` (a file stamp, or an ETag sent as If-None-Match); `None`
    /// when this origin has no such artifact configured. Pass the result's
    /// [`Look::fetched`] to [`Reload::offer`](crate::Reload::offer).
    pub fn look(&self, a: Artifact, validator: Option<&str>) -> Option<Look> {
        match self {
            Self::Files {
                trust,
                snapshot,
                revocations,
            } => {
                let path = match a {
                    Artifact::Trust => trust.as_ref(),
                    Artifact::Snapshot => Some(snapshot),
                    Artifact::Revocations => revocations.as_ref(),
                }?;
                Some(look_at_file(path, validator))
            }
            Self::Url { base, agent } => {
                let url = alloc::format!("{base}{}", a.file_name());
                let mut req = agent.get(&url);
                if let Some(e) = validator {
                    req = req.set("If-None-Match", e);
                }
                let resp = match req.call() {
                    Ok(r) if r.status() == 304 => return Some(Look::NotModified),
                    Ok(r) => r,
                    Err(ureq::Error::Status(404, _)) => return Some(Look::Missing),
                    Err(e) => return Some(Look::Failed(alloc::format!("{url}: {e}"))),
                };
                let etag = resp.header("ETag").map(str::to_string);
                let mut body = alloc::vec::Vec::new();
                if let Err(e) = std::io::Read::read_to_end(
                    &mut std::io::Read::take(resp.into_reader(), MAX_ARTIFACT),
                    &mut body,
                ) {
                    return Some(Look::Failed(alloc::format!("{url}: {e}")));
                }
                Some(Look::Got(body, etag))
            }
        }
    }
}

/// What one [`Source::load`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Loaded {
    /// Something was installed.
    pub installed: bool,
    /// The origin answered every look (no failed fetch, no missing
    /// snapshot): a poller backs off while it does not.
    pub answered: bool,
    /// One line per artifact installed, refused, missing or not fetched
    /// (for the surface's log; no key is ever in one).
    pub events: alloc::vec::Vec<String>,
}

/// An [`Origin`] and the [`Reload`](crate::Reload) state of what was
/// installed from it: one load applies the reload discipline to a verifier.
#[derive(Debug)]
pub struct Source {
    origin: Origin,
    reload: std::sync::Mutex<crate::Reload>,
}

impl Source {
    /// Nothing installed from `origin` yet.
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            reload: std::sync::Mutex::new(crate::Reload::new()),
        }
    }

    /// The origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// One look at every artifact, in [`RELOAD_ORDER`](crate::RELOAD_ORDER),
    /// each offered to `verifier` by the reload rules (a refused or damaged
    /// artifact changes nothing, is counted by the verifier and is looked at
    /// again next time).
    pub fn load(&self, verifier: &crate::Verifier) -> Loaded {
        use crate::Reloaded;
        let mut reload = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Loaded {
            answered: true,
            ..Loaded::default()
        };
        for a in crate::RELOAD_ORDER {
            let Some(look) = self.origin.look(a, reload.validator(a)) else {
                continue;
            };
            match reload.offer(verifier, a, look.fetched()) {
                Reloaded::Installed { from, to } => {
                    out.installed = true;
                    out.events.push(alloc::format!("{a} {from} -> {to}"));
                }
                Reloaded::SnapshotMissing => {
                    out.answered = false;
                    out.events.push(alloc::format!("{a} missing at the source"));
                }
                Reloaded::Failed(e) => {
                    out.answered = false;
                    out.events.push(alloc::format!("{a} not fetched: {e}"));
                }
                Reloaded::Refused(e) => out.events.push(alloc::format!("{a} not installed: {e}")),
                _ => {}
            }
        }
        out
    }
}

/// A background thread that calls a tick every `every`, and while the tick
/// says the origin did not answer, waits twice as long each time up to
/// `max_backoff`. Stops (and the thread ends) when dropped.
#[derive(Debug)]
pub struct Poller {
    stop: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Poller {
    /// Starts the thread; `tick` returns whether the origin answered (see
    /// [`Loaded::answered`]). The first tick is after `every`.
    pub fn start(
        name: &str,
        every: Duration,
        max_backoff: Duration,
        mut tick: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let s = std::sync::Arc::clone(&stop);
        let max_backoff = max_backoff.max(every);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut wait = every;
                loop {
                    {
                        let guard = s.0.lock().unwrap_or_else(|e| e.into_inner());
                        let (guard, _) =
                            s.1.wait_timeout_while(guard, wait, |stop| !*stop)
                                .unwrap_or_else(|e| e.into_inner());
                        if *guard {
                            return;
                        }
                    }
                    wait = if tick() {
                        every
                    } else {
                        wait.saturating_mul(2).min(max_backoff)
                    };
                }
            })?;
        Ok(Self { stop })
    }

    /// Stops the thread (also done on drop).
    pub fn stop(&self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop();
    }
}
