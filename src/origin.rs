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
