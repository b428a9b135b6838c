//! Pieces every signed artifact shares: names, the signed message, field reads.

use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::names::{Artifact, Name, MAX_NAME_LEN};

/// Reads a keyset name's 64-byte field `len:u8 | bytes[63]` (zero padded).
pub(crate) fn read_name(field: &[u8; 64], artifact: Artifact) -> Result<Name, Error> {
    let len = usize::from(field[0]);
    let bad = Error::Malformed {
        artifact,
        reason: "bad keyset name",
    };
    if len > MAX_NAME_LEN || field[1 + len..].iter().any(|b| *b != 0) {
        return Err(bad);
    }
    let s = core::str::from_utf8(&field[1..1 + len]).map_err(|_| bad.clone())?;
    Name::new(s).ok_or(bad)
}

/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;

/// The message an artifact's Ed25519 signature covers: a domain tag naming the
/// artifact kind, then SHA-256 of the signed body. Hashing first keeps signing and
/// checking a 64 MB snapshot at SHA-256 speed rather than Ed25519's SHA-512 pass.
pub(crate) fn signed_message(artifact: Artifact, body: &[u8]) -> [u8; 64] {
    let tag: &[u8; 32] = match artifact {
        Artifact::Snapshot => b"keygate/v1/snapshot\0\0\0\0\0\0\0\0\0\0\0\0\0",
        Artifact::Revocations => b"keygate/v1/revocations\0\0\0\0\0\0\0\0\0\0",
        Artifact::Trust => b"keygate/v1/trust\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    };
    let mut m = [0u8; 64];
    m[..32].copy_from_slice(tag);
    m[32..].copy_from_slice(&Sha256::digest(body));
    m
}

/// Bounds-checked little-endian field reads over an artifact's bytes.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub bytes: &'a [u8],
    pub artifact: Artifact,
}

impl<'a> Fields<'a> {
    pub fn need(&self, end: usize, section: &'static str) -> Result<(), Error> {
        if self.bytes.len() < end {
            return Err(Error::Truncated {
                artifact: self.artifact,
                section,
                needed: end,
                got: self.bytes.len(),
            });
        }
        Ok(())
    }

    pub fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[at..at + N]);
        a
    }

    pub fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.array(at))
    }

    pub fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.array(at))
    }

    pub fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.array(at))
    }

    /// The preamble every artifact starts with: its 4-byte magic, then its
    /// format version (u16) — one of `versions`. Returns the version.
    pub fn preamble(&self, magic: &[u8; 4], versions: &[u16]) -> Result<u16, Error> {
        self.need(6, "magic")?;
        if self.array::<4>(0) != *magic {
            return Err(Error::BadMagic {
                artifact: self.artifact,
            });
        }
        let v = self.u16(4);
        if !versions.contains(&v) {
            return Err(Error::UnsupportedVersion {
                artifact: self.artifact,
                version: v,
            });
        }
        Ok(v)
    }

    pub fn malformed(&self, reason: &'static str) -> Error {
        Error::Malformed {
            artifact: self.artifact,
            reason,
        }
    }
}
