//! Why an artifact (snapshot, revocation update, trust bundle) was refused.

use core::fmt;

use crate::names::{Artifact, Name, SignerId};

/// An artifact was refused. A refused artifact never changes a verifier's state.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes end before `section` is complete.
    Truncated {
        /// Which artifact.
        artifact: Artifact,
        /// The section that is cut short.
        section: &'static str,
        /// Bytes the section needs, counted from the start of the file.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The file does not start with this artifact's magic bytes.
    BadMagic {
        /// Which artifact was expected.
        artifact: Artifact,
    },
    /// A format version this build does not read.
    UnsupportedVersion {
        /// Which artifact.
        artifact: Artifact,
        /// The version in the file.
        version: u16,
    },
    /// A field holds a value the format does not allow.
    Malformed {
        /// Which artifact.
        artifact: Artifact,
        /// What is wrong, in a few words.
        reason: &'static str,
    },
    /// The artifact is signed by a key that is not in the trust bundle.
    UnknownSigner {
        /// Which artifact.
        artifact: Artifact,
        /// The signer named in the artifact.
        signer: SignerId,
    },
    /// The Ed25519 signature does not verify: the bytes were changed after signing.
    BadSignature {
        /// Which artifact.
        artifact: Artifact,
    },
    /// The artifact belongs to another keyset.
    WrongKeyset {
        /// Which artifact.
        artifact: Artifact,
        /// The keyset this verifier serves.
        expected: Name,
        /// The keyset named in the artifact.
        found: Name,
    },
    /// The artifact is older than the one installed.
    Rollback {
        /// Which artifact.
        artifact: Artifact,
        /// Version (or sequence) installed now.
        installed: u64,
        /// Version (or sequence) offered.
        offered: u64,
    },
    /// A revocation update computed against another snapshot than the installed one.
    BaseMismatch {
        /// Snapshot version installed (0: none).
        installed_snapshot: u64,
        /// Snapshot version the update was built against.
        update_base: u64,
    },
    /// A revocation update arrived before any snapshot.
    NoSnapshot,
    /// A trust bundle is not signed by any currently trusted signer.
    UntrustedBundle {
        /// Version of the refused bundle.
        version: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { artifact, section, needed, got } => {
                write!(f, "{artifact} truncated in {section}: needs {needed} bytes, has {got}")
            }
            Self::BadMagic { artifact } => write!(f, "not a {artifact}: bad magic bytes"),
            Self::UnsupportedVersion { artifact, version } => {
                write!(f, "{artifact} format version {version} is not supported")
            }
            Self::Malformed { artifact, reason } => write!(f, "malformed {artifact}: {reason}"),
            Self::UnknownSigner { artifact, signer } => {
                write!(f, "{artifact} signed by untrusted signer {signer}")
            }
            Self::BadSignature { artifact } => write!(f, "{artifact} signature does not verify"),
            Self::WrongKeyset { artifact, expected, found } => {
                write!(f, "{artifact} is for keyset '{found}', expected '{expected}'")
            }
            Self::Rollback { artifact, installed, offered } => {
                write!(f, "{artifact} rollback refused: offered {offered}, installed {installed}")
            }
            Self::BaseMismatch { installed_snapshot, update_base } => write!(
                f,
                "revocation update is for snapshot version {update_base}, installed is {installed_snapshot}"
            ),
            Self::NoSnapshot => f.write_str("revocation update refused: no snapshot installed"),
            Self::UntrustedBundle { version } => {
                write!(f, "trust bundle version {version} is not signed by a trusted signer")
            }
        }
    }
}

impl core::error::Error for Error {}
