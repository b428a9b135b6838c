//! One reload discipline for every surface that fetches its own artifacts
//! (`keygate serve`, `keygate drill`, the Envoy filter, the Worker). It does
//! no I/O: the surface fetches, this decides. The rules:
//!
//! 1. **Order**: trust, then snapshot, then revocations, every tick — so a
//!    snapshot by a rotated signer finds the new trust already installed,
//!    and an update finds its snapshot.
//! 2. **Change detection**: a source reports a *validator* with what it
//!    fetched — an HTTP `ETag`, or a file's [`file_stamp`]. The validator of
//!    the last artifact *installed* is what the next fetch asks about
//!    (`If-None-Match`, or a stat compared before reading): the same one
//!    means unchanged, and nothing is read or parsed.
//! 3. **Missing**: a trust update or revocation update the source does not
//!    have is "none yet" (a fresh keyset has neither); a missing snapshot is
//!    an error.
//! 4. **Refused**: the current state is kept and the validator is *not*
//!    remembered, so the next tick tries the same artifact again — it may be
//!    accepted once the trust it needs has arrived.
//! 5. **After an install**, the surface saves the verifier's high-water marks
//!    where it can ([`Verifier::high_water`]), so a restart is no rollback
//!    window.

use alloc::string::String;

use crate::error::Error;
use crate::names::Artifact;
use crate::verify::{Installed, Verifier};

/// The order artifacts are loaded in, every tick.
pub const RELOAD_ORDER: [Artifact; 3] =
    [Artifact::Trust, Artifact::Snapshot, Artifact::Revocations];

/// What a source said about one artifact on one look.
#[derive(Debug, Clone, Copy)]
pub enum Fetched<'a> {
    /// Unchanged since the validator it was asked about (HTTP 304, or the
    /// same file stamp).
    NotModified,
    /// The source does not have it (HTTP 404, no such file).
    Missing,
    /// The fetch itself failed (network, permissions); the text says why.
    Failed(&'a str),
    /// The artifact's bytes, with the source's validator for them, if any.
    Got {
        /// The bytes fetched.
        bytes: &'a [u8],
        /// ETag or file stamp of these bytes.
        validator: Option<&'a str>,
    },
}

/// What one look at one artifact came to.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reloaded {
    /// Nothing new (not modified, or the same version as installed).
    Unchanged,
    /// A trust or revocation update the source does not have yet: normal.
    NoneYet,
    /// Installed, replacing version `from` with `to`.
    Installed {
        /// Before (0: none).
        from: u64,
        /// After.
        to: u64,
    },
    /// The snapshot is missing at the source (an error; state kept).
    SnapshotMissing,
    /// The fetch failed (state kept; retried next tick).
    Failed(String),
    /// The artifact was refused (state kept; retried next tick).
    Refused(Error),
}

/// The reload state of one source: the validator of each artifact installed.
///
/// One reload discipline for every surface that fetches its own artifacts
/// (`keygate serve`, `keygate drill`, the Envoy filter, the Worker); it does
/// no I/O — the surface fetches, this decides:
///
/// 1. **Order** ([`RELOAD_ORDER`]): trust, snapshot, revocations, every tick.
/// 2. **Change detection**: a fetch reports a validator (an `ETag`, or a
///    [`file_stamp`]); the one of the last artifact *installed* is what the
///    next fetch asks about ([`Reload::validator`]): the same means unchanged.
/// 3. **Missing**: no trust update or revocation update is "none yet"; no
///    snapshot is an error.
/// 4. **Refused**: state kept, validator not remembered, tried again next
///    tick (it may be accepted once the trust it needs has arrived).
/// 5. **After an install**, save [`Verifier::high_water`] where you can.
#[derive(Debug, Default, Clone)]
pub struct Reload {
    validators: [Option<String>; 3],
}

fn slot(a: Artifact) -> usize {
    match a {
        Artifact::Trust => 0,
        Artifact::Snapshot => 1,
        Artifact::Revocations => 2,
    }
}

impl Reload {
    /// A source nothing was installed from yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The validator of the artifact last installed from this source: ask
    /// whether it changed (`If-None-Match`, or compare a fresh
    /// [`file_stamp`]); `None` means fetch it.
    pub fn validator(&self, a: Artifact) -> Option<&str> {
        self.validators[slot(a)].as_deref()
    }

    /// Applies what the source said about `a` to `verifier`, by the rules in
    /// [`Reload`]'s documentation.
    pub fn offer(&mut self, verifier: &Verifier, a: Artifact, fetched: Fetched<'_>) -> Reloaded {
        let (bytes, validator) = match fetched {
            Fetched::NotModified => return Reloaded::Unchanged,
            Fetched::Missing if a == Artifact::Snapshot => return Reloaded::SnapshotMissing,
            Fetched::Missing => return Reloaded::NoneYet,
            Fetched::Failed(why) => return Reloaded::Failed(why.into()),
            Fetched::Got { bytes, validator } => (bytes, validator),
        };
        let installed = match a {
            Artifact::Trust => verifier.install_trust(bytes),
            Artifact::Snapshot => verifier.install_snapshot(bytes),
            Artifact::Revocations => verifier.install_revocations(bytes),
        };
        match installed {
            Ok(i) => {
                self.validators[slot(a)] = validator.map(String::from);
                match i {
                    Installed::Updated { from, to } => Reloaded::Installed { from, to },
                    Installed::Unchanged => Reloaded::Unchanged,
                }
            }
            Err(e) => Reloaded::Refused(e),
        }
    }
}

/// A file's validator without reading it: device, inode, size and
/// nanosecond modification and change times. A publish renames a new file
/// into place (a new inode); an in-place rewrite moves the nanosecond times.
/// (Whole-second mtime plus size missed a second same-size update written in
/// the same second.)
pub fn file_stamp(m: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        alloc::format!(
            "{}:{}:{}:{}.{}:{}.{}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        )
    }
    #[cfg(not(unix))]
    {
        let t = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        alloc::format!("{}:{t}", m.len())
    }
}

/// One look at an artifact file for [`Reload::offer`]: its stamp compared
/// with `validator` (the same: [`Look::NotModified`], nothing read), else
/// its bytes and new stamp; pass [`Look::fetched`] to the offer.
pub fn look_at_file(path: &std::path::Path, validator: Option<&str>) -> Look {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Look::Missing,
        Err(e) => return Look::Failed(alloc::format!("{}: {e}", path.display())),
    };
    let stamp = file_stamp(&meta);
    if validator == Some(stamp.as_str()) {
        return Look::NotModified;
    }
    // Stamp from before the read: if the file is replaced meanwhile, the
    // next look sees a new stamp and reads again.
    match std::fs::read(path) {
        Ok(bytes) => Look::Got(bytes, Some(stamp)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Look::Missing,
        Err(e) => Look::Failed(alloc::format!("{}: {e}", path.display())),
    }
}

/// What one look at a source found, owning the bytes ([`look_at_file`]
/// makes one for a file; an HTTP poller makes one from a response).
#[derive(Debug)]
pub enum Look {
    /// Unchanged since the validator asked about (same stamp, HTTP 304).
    NotModified,
    /// Not there (no such file, HTTP 404).
    Missing,
    /// Could not be fetched; why.
    Failed(String),
    /// The bytes and their validator (file stamp or ETag), if any.
    Got(alloc::vec::Vec<u8>, Option<String>),
}

impl Look {
    /// The [`Fetched`] view for [`Reload::offer`].
    pub fn fetched(&self) -> Fetched<'_> {
        match self {
            Self::NotModified => Fetched::NotModified,
            Self::Missing => Fetched::Missing,
            Self::Failed(why) => Fetched::Failed(why),
            Self::Got(bytes, validator) => Fetched::Got {
                bytes,
                validator: validator.as_deref(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUST: &[u8] = include_bytes!("../tests/vectors/trust.kgt");
    const SNAPSHOT: &[u8] = include_bytes!("../tests/vectors/snapshot.kgs");
    const REVOCATIONS: &[u8] = include_bytes!("../tests/vectors/revocations.kgr");

    #[test]
    fn the_rules() {
        let v = Verifier::new(TRUST).unwrap();
        let mut r = Reload::new();
        let got = |bytes, tag| Fetched::Got {
            bytes,
            validator: Some(tag),
        };
        assert!(matches!(
            r.offer(&v, Artifact::Trust, Fetched::Missing),
            Reloaded::NoneYet
        ));
        assert!(matches!(
            r.offer(&v, Artifact::Revocations, Fetched::Missing),
            Reloaded::NoneYet
        ));
        let missing = r.offer(&v, Artifact::Snapshot, Fetched::Missing);
        assert!(matches!(missing, Reloaded::SnapshotMissing));
        // Refused: not remembered, so the next tick asks again.
        let bad = r.offer(&v, Artifact::Snapshot, got(&SNAPSHOT[..100], "\"a\""));
        assert!(matches!(bad, Reloaded::Refused(_)));
        assert_eq!(r.validator(Artifact::Snapshot), None);
        // An update before its snapshot is refused, and retried later.
        assert!(matches!(
            r.offer(&v, Artifact::Revocations, got(REVOCATIONS, "\"r\"")),
            Reloaded::Refused(_)
        ));
        assert!(matches!(
            r.offer(&v, Artifact::Snapshot, got(SNAPSHOT, "\"b\"")),
            Reloaded::Installed { from: 0, to: 1 }
        ));
        assert_eq!(r.validator(Artifact::Snapshot), Some("\"b\""));
        assert!(matches!(
            r.offer(&v, Artifact::Revocations, got(REVOCATIONS, "\"r\"")),
            Reloaded::Installed { .. }
        ));
        assert!(matches!(
            r.offer(&v, Artifact::Snapshot, Fetched::NotModified),
            Reloaded::Unchanged
        ));
        // The same version under a new validator: unchanged, validator kept.
        assert!(matches!(
            r.offer(&v, Artifact::Snapshot, got(SNAPSHOT, "\"c\"")),
            Reloaded::Unchanged
        ));
        assert_eq!(r.validator(Artifact::Snapshot), Some("\"c\""));
        let failed = r.offer(&v, Artifact::Trust, Fetched::Failed("timeout"));
        assert!(matches!(failed, Reloaded::Failed(ref w) if w == "timeout"));
    }

    #[test]
    fn file_stamps_see_same_second_same_size_rewrites() {
        let dir =
            std::env::temp_dir().join(alloc::format!("keygate-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("revocations.kgr");
        assert!(matches!(look_at_file(&path, None), Look::Missing));
        std::fs::write(&path, b"aaaa").unwrap();
        let Look::Got(_, Some(first)) = look_at_file(&path, None) else {
            panic!("not read")
        };
        assert!(matches!(
            look_at_file(&path, Some(&first)),
            Look::NotModified
        ));
        // Same size, same second, renamed into place as publish does.
        std::fs::write(dir.join("tmp"), b"bbbb").unwrap();
        std::fs::rename(dir.join("tmp"), &path).unwrap();
        let Look::Got(bytes, Some(second)) = look_at_file(&path, Some(&first)) else {
            panic!("the replaced file was not read")
        };
        assert_eq!(bytes, b"bbbb");
        assert_ne!(first, second);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
