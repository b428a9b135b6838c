//! # keygate
//!
//! Embedded API-key verification: a gateway checks every API key in its own
//! process, in a few hundred nanoseconds, against a **signed, versioned keyset
//! snapshot** plus a small, often pushed **revocation update**.
//!
//! ```
//! # #[cfg(feature = "std")] fn main() {
//! use keygate::{ApiKey, Name, Outcome, Prefix, RecordSpec, Signer, SnapshotBuilder, Verifier};
//!
//! // Issuer side: a signer, a trust bundle, a key and a snapshot holding its digest.
//! let (signer, _pkcs8) = Signer::generate();
//! let keyset = Name::new("acme").unwrap();
//! let trust = keygate::build_bundle(&keyset, 1, 0, &[signer.trusted()], &[&signer]);
//! let key = ApiKey::generate("acme_live").unwrap();
//! let mut b = SnapshotBuilder::new(keyset, Prefix::new("acme_live").unwrap(), 1, 1_767_225_600);
//! b.push(RecordSpec::active(key.digest(), "billing-service", &["invoices:read"]));
//! let snapshot = b.build(&signer).unwrap();
//!
//! // Gateway side: trust anchors, install, verify.
//! let verifier = Verifier::new(&trust).unwrap();
//! verifier.install_snapshot(&snapshot).unwrap();
//! let v = verifier.verify(key.expose_secret(), 1_767_225_601, Some("invoices:read"));
//! assert_eq!(v.outcome, Outcome::Valid);
//! assert_eq!(v.principal.as_str(), "billing-service");
//! # }
//! # #[cfg(not(feature = "std"))] fn main() {}
//! ```
//!
//! ## Features
//! - `std` (default): [`Verifier`] with lock-free hot reload and stats, the
//!   snapshot/update/trust builders, key generation.
//! - `alloc`: reserved for allocation-only helpers.
//! - with neither, the key parser and the zero-copy [`SnapshotView`],
//!   [`RevocationView`] and [`TrustSet`] work with no allocator.
//!
//! The control plane (keys, rotation, revocation, the audit chain,
//! publishing, `scan`) is the separate `keygate-issuer` crate: a gateway
//! that embeds this one carries no database.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// `Error` carries keyset names inline (no allocator in the core), so it is large;
// it is only built when an artifact is refused, never on the verify path.
#![allow(clippy::result_large_err)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod artifact;
mod error;
mod http;
mod key;
mod names;
#[cfg(feature = "fetch")]
mod origin;
mod outcome;
#[cfg(feature = "std")]
mod reload;
mod revocation;
mod snapshot;
mod trust;
#[cfg(feature = "std")]
mod verify;

// docs/integrations/rust.md's example compiles as a doctest, so the page
// cannot drift from the API.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../docs/integrations/rust.md")]
pub struct RustIntegrationPage;

pub use error::Error;
pub use http::{
    http_date, presented_key, principal_is_header_safe, principal_value, Answer, HeaderText,
    Policy, PolicyError, Presented, ResponseHeaders, MAX_HEADER_NAME_LEN, MAX_REALM_LEN,
};
pub use key::{
    check_prefix, check_with_prefix, has_prefix, parse as parse_key, ApiKey, Digest, KeyError,
    KeyId, ParsedKey, CHECKSUM_LEN, MAX_IMPORTED_LEN, MAX_KEY_LEN, MAX_PREFIX_LEN,
    MIN_IMPORTED_LEN, SECRET_BYTES, SECRET_LEN,
};
pub use names::{Artifact, Name, SignerId, MAX_NAME_LEN};
pub use outcome::Outcome;
pub use revocation::{RevocationHeader, RevocationView};
pub use snapshot::{
    Prefix, Record, SnapshotHeader, SnapshotView, Status, MAX_PRINCIPAL_LEN, MAX_SCOPES,
    MAX_SCOPE_LEN, MAX_TIME, RECORD_LEN,
};
pub use trust::{TrustSet, TrustedSigner, MAX_SIGNERS};

#[cfg(feature = "fetch")]
pub use origin::{Loaded, Origin, Poller, Source, MAX_ARTIFACT};
#[cfg(feature = "std")]
pub use reload::{file_stamp, look_at_file, Fetched, Look, Reload, Reloaded, RELOAD_ORDER};
#[cfg(feature = "std")]
pub use revocation::{build_update, build_update_with, UpdateBuildError, UpdateSpec};
#[cfg(feature = "std")]
pub use snapshot::{BuildError, RecordSpec, SnapshotBuilder};
#[cfg(feature = "std")]
pub use trust::{build_bundle, Signer};
#[cfg(feature = "std")]
pub use verify::{
    Config, DeprecatedUse, HighWater, Installed, Principal, ScopeNames, Scopes, Staleness,
    StateError, Stats, StatsTextError, Verdict, Verifier,
};

/// The zero-copy views with no allocator, against the committed vectors.
#[cfg(test)]
mod no_alloc_tests {
    use super::*;

    const TRUST: &[u8] = include_bytes!("../tests/vectors/trust.kgt");
    const SNAPSHOT: &[u8] = include_bytes!("../tests/vectors/snapshot.kgs");
    const REVOCATIONS: &[u8] = include_bytes!("../tests/vectors/revocations.kgr");
    const VALID: &str = "acme_live_000000x6KWkHkzmVF635OJ7xkXw0FXlce0Yb20a";

    #[test]
    fn views_answer_without_allocating() {
        let trust = TrustSet::from_chain(TRUST).unwrap();
        let snap = SnapshotView::new(SNAPSHOT, &trust).unwrap();
        assert_eq!(snap.header().version, 1);
        assert_eq!(parse_key(VALID).unwrap().prefix(), "acme_live");
        let d = Digest::of(VALID.as_bytes());
        let rec = snap.lookup(&d).unwrap();
        assert_eq!(rec.principal(), "billing-service");
        assert_eq!(rec.status(), Status::Active);
        let mut wrong = d;
        wrong.0[31] ^= 1;
        assert!(snap.lookup(&wrong).is_none());
        let rev = RevocationView::new(REVOCATIONS, &trust).unwrap();
        assert!(rev.contains(&d.key_id()));
        assert_eq!(
            snap.records().filter(|r| rev.contains(&r.key_id())).count(),
            1
        );
    }
}

/// The README's Rust quickstart runs as a doctest.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
