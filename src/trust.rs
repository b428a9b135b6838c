//! Trust bundles (`.kgt`): which Ed25519 signers a gateway accepts.
//!
//! A bundle names a keyset, carries a version and up to [`MAX_SIGNERS`] public
//! keys, and is signed. A `.kgt` file is a *chain* of bundles in version order
//! (TUF-style): the first one is the anchor a gateway is configured with; each
//! later one must be signed by a key of the bundle before it **and** by one of its
//! own keys. So a gateway that trusts only the first bundle follows every signer
//! rotation without a config change, and a retired signer, once dropped from the
//! newest bundle, is refused.

use ring::signature::{UnparsedPublicKey, ED25519};

use crate::artifact::{read_name, signed_message, Fields, SIGNATURE_LEN};
use crate::error::Error;
use crate::names::{Artifact, Name, SignerId};

/// Most signers one bundle may hold.
pub const MAX_SIGNERS: usize = 16;

const MAGIC: &[u8; 4] = b"KGT\0";
const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 88;
const SIGNER_LEN: usize = 48;
const SIG_ENTRY_LEN: usize = 16 + SIGNATURE_LEN;

/// One public key a bundle trusts.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TrustedSigner {
    /// Its id.
    pub id: SignerId,
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
}

impl TrustedSigner {
    fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

/// The signers a verifier accepts now: the newest bundle of the chain it followed.
/// Needs no allocator.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TrustSet {
    keyset: Name,
    version: u64,
    created_at: u64,
    count: u8,
    signers: [TrustedSigner; MAX_SIGNERS],
}

impl TrustSet {
    /// Establishes trust from a `.kgt` chain: its first bundle is the anchor (it
    /// must be signed by its own keys), then every later bundle is followed.
    pub fn from_chain(bytes: &[u8]) -> Result<Self, Error> {
        let (first, _) = Bundle::parse(bytes)?;
        first.check_signatures(None, None)?;
        first.into_set().follow(bytes)
    }

    /// Follows a `.kgt` chain from this set and returns the newest set reachable
    /// through valid signatures. Each bundle past ours must be signed by a key we
    /// trust at that point and by one of its own; bundles not newer than ours are
    /// checked but change nothing. A bundle with our version but other signers is
    /// a fork and refused.
    pub fn follow(&self, bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Err(Error::Truncated {
                artifact: Artifact::Trust,
                section: "header",
                needed: HEADER_LEN,
                got: 0,
            });
        }
        let mut cur = *self;
        let mut prev: Option<(u64, TrustSet)> = None;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (b, used) = Bundle::parse(rest)?;
            rest = &rest[used..];
            b.check_keyset(&cur)?;
            if prev.is_some_and(|(v, _)| b.version <= v) {
                return Err(Error::Malformed {
                    artifact: Artifact::Trust,
                    reason: "chain versions not increasing",
                });
            }
            b.check_signatures(prev.as_ref().map(|(_, p)| p), Some(&cur))?;
            let set = b.into_set();
            if b.version > cur.version {
                b.check_chain_link(&cur)?;
                cur = set;
            } else if b.version == cur.version && set != cur {
                return Err(Error::UntrustedBundle { version: b.version });
            }
            prev = Some((b.version, set));
        }
        // A chain that ends below the version we trust is a rollback, even if
        // it is validly self-signed: a forged anchor of a lower version must
        // not pass as "nothing new".
        match prev {
            Some((newest, _)) if newest < self.version => Err(Error::Rollback {
                artifact: Artifact::Trust,
                installed: self.version,
                offered: newest,
            }),
            _ => Ok(cur),
        }
    }

    /// The keyset this trust is for.
    pub fn keyset(&self) -> &Name {
        &self.keyset
    }

    /// The bundle version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the bundle was created (unix seconds).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// The trusted signers.
    pub fn signers(&self) -> &[TrustedSigner] {
        &self.signers[..usize::from(self.count)]
    }

    /// The trusted signer with this id, if any.
    pub fn find(&self, id: &SignerId) -> Option<&TrustedSigner> {
        self.signers().iter().find(|s| s.id == *id)
    }

    /// Checks that `body` carries a valid `artifact` signature by trusted `signer`.
    pub(crate) fn check(
        &self,
        artifact: Artifact,
        signer: &SignerId,
        body: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<(), Error> {
        let s = self.find(signer).ok_or(Error::UnknownSigner {
            artifact,
            signer: *signer,
        })?;
        if s.verify(&signed_message(artifact, body), signature) {
            Ok(())
        } else {
            Err(Error::BadSignature { artifact })
        }
    }
}

/// One parsed bundle of a chain.
#[derive(Clone, Copy)]
struct Bundle<'a> {
    keyset: Name,
    version: u64,
    created_at: u64,
    signers: &'a [u8],
    sigs: &'a [u8],
    body: &'a [u8],
}

impl<'a> Bundle<'a> {
    fn parse(bytes: &'a [u8]) -> Result<(Self, usize), Error> {
        let f = Fields {
            bytes,
            artifact: Artifact::Trust,
        };
        f.preamble(MAGIC, &[FORMAT_VERSION])?;
        f.need(HEADER_LEN, "header")?;
        let n = usize::from(bytes[6]);
        let m = usize::from(bytes[7]);
        if n == 0 || n > MAX_SIGNERS {
            return Err(f.malformed("signer count must be 1-16"));
        }
        if m == 0 || m > MAX_SIGNERS {
            return Err(f.malformed("signature count must be 1-16"));
        }
        let version = f.u64(8);
        if version == 0 {
            return Err(f.malformed("bundle version 0"));
        }
        let keyset = read_name(&f.array::<64>(24), Artifact::Trust)?;
        let body_end = HEADER_LEN + n * SIGNER_LEN;
        f.need(body_end, "signers")?;
        let end = body_end + m * SIG_ENTRY_LEN;
        f.need(end, "signatures")?;
        let signers = &bytes[HEADER_LEN..body_end];
        for (i, s) in signers.chunks_exact(SIGNER_LEN).enumerate() {
            let pk: [u8; 32] = s[16..]
                .try_into()
                .map_err(|_| f.malformed("signer entry"))?;
            if s[..16] != SignerId::of(&pk).0 {
                return Err(f.malformed("signer id does not match its public key"));
            }
            if signers
                .chunks_exact(SIGNER_LEN)
                .take(i)
                .any(|o| o[..16] == s[..16])
            {
                return Err(f.malformed("duplicate signer"));
            }
        }
        let b = Bundle {
            keyset,
            version,
            created_at: f.u64(16),
            signers,
            sigs: &bytes[body_end..end],
            body: &bytes[..body_end],
        };
        Ok((b, end))
    }

    fn into_set(self) -> TrustSet {
        let mut signers = [TrustedSigner::default(); MAX_SIGNERS];
        for (slot, s) in signers
            .iter_mut()
            .zip(self.signers.chunks_exact(SIGNER_LEN))
        {
            slot.id.0.copy_from_slice(&s[..16]);
            slot.public_key.copy_from_slice(&s[16..]);
        }
        TrustSet {
            keyset: self.keyset,
            version: self.version,
            created_at: self.created_at,
            count: (self.signers.len() / SIGNER_LEN) as u8,
            signers,
        }
    }

    fn check_keyset(&self, t: &TrustSet) -> Result<(), Error> {
        if self.keyset != t.keyset {
            return Err(Error::WrongKeyset {
                artifact: Artifact::Trust,
                expected: t.keyset,
                found: self.keyset,
            });
        }
        Ok(())
    }

    fn sig_entries(&self) -> impl Iterator<Item = (SignerId, [u8; SIGNATURE_LEN])> + 'a {
        self.sigs.chunks_exact(SIG_ENTRY_LEN).map(|e| {
            let mut id = [0u8; 16];
            id.copy_from_slice(&e[..16]);
            let mut sig = [0u8; SIGNATURE_LEN];
            sig.copy_from_slice(&e[16..]);
            (SignerId(id), sig)
        })
    }

    /// Every signature must verify, by a key of this bundle, of the bundle before
    /// it in the file, or of the set trusted now; at least one must be by this
    /// bundle's own keys.
    fn check_signatures(
        &self,
        prev: Option<&TrustSet>,
        trusted: Option<&TrustSet>,
    ) -> Result<(), Error> {
        let own = self.into_set();
        let msg = signed_message(Artifact::Trust, self.body);
        let mut self_signed = false;
        for (id, sig) in self.sig_entries() {
            let key = own
                .find(&id)
                .or_else(|| prev.and_then(|p| p.find(&id)))
                .or_else(|| trusted.and_then(|p| p.find(&id)));
            let key = key.ok_or(Error::UnknownSigner {
                artifact: Artifact::Trust,
                signer: id,
            })?;
            if !key.verify(&msg, &sig) {
                return Err(Error::BadSignature {
                    artifact: Artifact::Trust,
                });
            }
            self_signed |= own.find(&id).is_some();
        }
        if !self_signed {
            return Err(Error::Malformed {
                artifact: Artifact::Trust,
                reason: "bundle not signed by its own keys",
            });
        }
        Ok(())
    }

    /// At least one (already verified) signature is by a key `prev` trusts.
    fn check_chain_link(&self, prev: &TrustSet) -> Result<(), Error> {
        if self.sig_entries().any(|(id, _)| prev.find(&id).is_some()) {
            Ok(())
        } else {
            Err(Error::UntrustedBundle {
                version: self.version,
            })
        }
    }
}

/// An Ed25519 signing key (the issuer side). Its `Debug` shows only the id.
#[cfg(feature = "std")]
pub struct Signer {
    pair: ring::signature::Ed25519KeyPair,
    id: SignerId,
    public_key: [u8; 32],
}

#[cfg(feature = "std")]
impl Signer {
    /// Generates a new key; returns it and its PKCS#8 document to store (0600).
    pub fn generate() -> (Self, alloc::vec::Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        // Failure here means the OS random source is broken: not input-derived.
        let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("OS random generator failed");
        let pkcs8 = doc.as_ref().to_vec();
        let signer = Self::from_pkcs8(&pkcs8).expect("freshly generated PKCS#8 parses");
        (signer, pkcs8)
    }

    /// A key derived from a fixed 32-byte seed: for test vectors, tests and
    /// benches only — anyone who knows the seed can sign. Named `dangerous_`
    /// so it stands out in review; production keys come from
    /// [`Signer::generate`].
    pub fn dangerous_from_seed(seed: &[u8; 32]) -> Self {
        use ring::signature::KeyPair as _;
        // A 32-byte seed is always a valid Ed25519 private key.
        let pair =
            ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).expect("32-byte seed");
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(pair.public_key().as_ref());
        Self {
            id: SignerId::of(&public_key),
            pair,
            public_key,
        }
    }

    /// Loads a key from its PKCS#8 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ring::error::KeyRejected> {
        use ring::signature::KeyPair as _;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(pair.public_key().as_ref());
        Ok(Self {
            id: SignerId::of(&public_key),
            pair,
            public_key,
        })
    }

    /// Its id.
    pub fn id(&self) -> SignerId {
        self.id
    }

    /// Its public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// As a trusted-signer entry.
    pub fn trusted(&self) -> TrustedSigner {
        TrustedSigner {
            id: self.id,
            public_key: self.public_key,
        }
    }

    pub(crate) fn sign(&self, artifact: Artifact, body: &[u8]) -> [u8; SIGNATURE_LEN] {
        let sig = self.pair.sign(&signed_message(artifact, body));
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

#[cfg(feature = "std")]
impl core::fmt::Debug for Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Signer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Encodes one trust bundle trusting `signers`, signed by each of `sign_with`.
/// Concatenate bundles in version order to form a chain file.
#[cfg(feature = "std")]
pub fn build_bundle(
    keyset: &Name,
    version: u64,
    created_at: u64,
    signers: &[TrustedSigner],
    sign_with: &[&Signer],
) -> alloc::vec::Vec<u8> {
    assert!((1..=MAX_SIGNERS).contains(&signers.len()), "1-16 signers");
    assert!(
        (1..=MAX_SIGNERS).contains(&sign_with.len()),
        "1-16 signatures"
    );
    let mut out = alloc::vec::Vec::with_capacity(HEADER_LEN + signers.len() * SIGNER_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(signers.len() as u8);
    out.push(sign_with.len() as u8);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&created_at.to_le_bytes());
    out.extend_from_slice(&keyset.field());
    for s in signers {
        out.extend_from_slice(&s.id.0);
        out.extend_from_slice(&s.public_key);
    }
    let sigs: alloc::vec::Vec<_> = sign_with
        .iter()
        .map(|s| (s.id(), s.sign(Artifact::Trust, &out)))
        .collect();
    for (id, sig) in sigs {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&sig);
    }
    out
}
