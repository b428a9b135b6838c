//! The plain names every other module shares — a keyset name, a signer id,
//! an artifact kind — kept apart so the module graph has no cycle:
//! `names` ← `error` ← `artifact` ← `trust` ← `snapshot` ← `revocation`.

use core::fmt;

/// Longest keyset name, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// A keyset name (1–63 bytes of `[A-Za-z0-9._-]`), stored inline so errors
/// and views need no allocator.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name {
    len: u8,
    buf: [u8; MAX_NAME_LEN],
}

impl Name {
    /// Checks and wraps `s`; `None` if empty, too long, or outside `[A-Za-z0-9._-]`.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.is_empty()
            || b.len() > MAX_NAME_LEN
            || !b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            return None;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        buf[..b.len()].copy_from_slice(b);
        Some(Self {
            len: b.len() as u8,
            buf,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    /// Writes the 64-byte field form.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn field(&self) -> [u8; 64] {
        let mut f = [0u8; 64];
        f[0] = self.len;
        f[1..1 + usize::from(self.len)].copy_from_slice(&self.buf[..usize::from(self.len)]);
        f
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.as_str())
    }
}

/// Which kind of artifact (an error, a counter, a file) is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// A keyset snapshot (`.kgs`).
    Snapshot,
    /// A revocation update (`.kgr`).
    Revocations,
    /// A trust bundle (`.kgt`).
    Trust,
}

impl Artifact {
    /// The file `keygate publish` writes it to (and gateways fetch):
    /// `trust.kgt`, `snapshot.kgs`, `revocations.kgr`.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot.kgs",
            Self::Revocations => "revocations.kgr",
            Self::Trust => "trust.kgt",
        }
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Snapshot => "snapshot",
            Self::Revocations => "revocation update",
            Self::Trust => "trust bundle",
        })
    }
}

/// A signer's id: the first 16 bytes of SHA-256 of its Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SignerId(pub [u8; 16]);

impl SignerId {
    /// The id of `public_key`.
    pub fn of(public_key: &[u8; 32]) -> Self {
        let d = crate::key::Digest::of(public_key);
        Self(d.key_id().0)
    }
}

impl fmt::Display for SignerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::key::KeyId(self.0), f)
    }
}

impl fmt::Debug for SignerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerId({self})")
    }
}
