//! The outcome of a verify: what every surface answers from.

use core::fmt;

/// What a verify decided. The snake_case names ([`Outcome::as_str`]) are the
/// same in JSON, C and JS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The key is good.
    Valid,
    /// The key is good but was replaced by a rotation: tell the client to switch
    /// before `sunset_at`.
    ValidDeprecated,
    /// The key was revoked.
    Revoked,
    /// The key is past its expiry (or its sunset).
    Expired,
    /// The key's not-before time has not come.
    NotYetValid,
    /// No such key (or a wrong secret for a known id: the same answer, on purpose).
    Unknown,
    /// Not a key: wrong prefix, length, characters or checksum.
    Malformed,
    /// The key is good but lacks the required scope.
    InsufficientScope,
    /// The snapshot is too old to decide on (or none is installed).
    Stale,
}

impl Outcome {
    /// Every outcome, in the order of their C enum values.
    pub const ALL: [Outcome; 9] = [
        Self::Valid,
        Self::ValidDeprecated,
        Self::Revoked,
        Self::Expired,
        Self::NotYetValid,
        Self::Unknown,
        Self::Malformed,
        Self::InsufficientScope,
        Self::Stale,
    ];

    /// The snake_case name: `valid`, `valid_deprecated`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::ValidDeprecated => "valid_deprecated",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Unknown => "unknown",
            Self::Malformed => "malformed",
            Self::InsufficientScope => "insufficient_scope",
            Self::Stale => "stale",
        }
    }

    /// True for `valid` and `valid_deprecated`: let the request through.
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Valid | Self::ValidDeprecated)
    }

    #[cfg(feature = "std")]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
