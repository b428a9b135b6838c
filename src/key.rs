//! The API key format: `<prefix>_<secret><checksum>`.
//!
//! - `prefix`: 1–15 chars, `[a-z][a-z0-9_]*`, not ending in `_` (e.g. `acme_live`).
//! - `secret`: 24 random bytes as a big-endian base62 number, fixed width 33.
//! - `checksum`: CRC32 (IEEE) of `<prefix>_<secret>`, base62, fixed width 6.
//!
//! A key is therefore at most 55 bytes, so its SHA-256 is one compression block.
//! Its [`Digest`] is the SHA-256 of the whole string; the first 16 bytes are its
//! public [`KeyId`].

use core::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Longest legal prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 15;
/// Width of the base62 secret.
pub const SECRET_LEN: usize = 33;
/// Width of the base62 checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Random bytes behind the secret.
pub const SECRET_BYTES: usize = 24;
/// Longest possible key: 15 + 1 + 33 + 6 = 55 bytes, one SHA-256 block.
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;
/// Shortest presented string accepted as an imported (foreign-format) key.
pub const MIN_IMPORTED_LEN: usize = 8;
/// Longest presented string accepted as an imported (foreign-format) key.
pub const MAX_IMPORTED_LEN: usize = 256;

const TAIL_LEN: usize = SECRET_LEN + CHECKSUM_LEN;
/// SHA-256 initial state (FIPS 180-4, 5.3.3).
const SHA256_H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed key of this format.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The prefix is empty, longer than 15 bytes, or not `[a-z][a-z0-9_]*` without a trailing `_`.
    BadPrefix,
    /// The string is too short or too long to be a key.
    BadLength,
    /// There is no `_` between the prefix and the secret.
    MissingSeparator,
    /// The secret or checksum holds a character outside `0-9A-Za-z`.
    BadCharacter,
    /// The checksum does not match: a typo, or not a key at all.
    BadChecksum,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadPrefix => "key prefix must be 1-15 chars of [a-z][a-z0-9_]* not ending in '_'",
            Self::BadLength => "key has the wrong length",
            Self::MissingSeparator => "key has no '_' between prefix and secret",
            Self::BadCharacter => "key secret or checksum has a character outside 0-9A-Za-z",
            Self::BadChecksum => "key checksum does not match",
        })
    }
}

impl core::error::Error for KeyError {}

/// Checks that `prefix` is a legal keyset prefix.
pub fn check_prefix(prefix: &str) -> Result<(), KeyError> {
    let b = prefix.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_PREFIX_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && b[b.len() - 1] != b'_';
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadPrefix)
    }
}

/// A parsed key: the prefix it carries. Parsing never decodes the secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    prefix: &'a str,
}

impl<'a> ParsedKey<'a> {
    /// The keyset prefix, e.g. `acme_live`.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Checks prefix, length, charset and checksum of `key`, without decoding the secret.
pub fn parse(key: &str) -> Result<ParsedKey<'_>, KeyError> {
    let b = key.as_bytes();
    if b.len() < 1 + 1 + TAIL_LEN || b.len() > MAX_KEY_LEN {
        return Err(KeyError::BadLength);
    }
    let sep = b.len() - TAIL_LEN - 1;
    if b[sep] != b'_' {
        return Err(KeyError::MissingSeparator);
    }
    // The split point is ASCII `_`, so this cannot fail; map it anyway rather than panic.
    let prefix = key.get(..sep).ok_or(KeyError::BadPrefix)?;
    check_prefix(prefix)?;
    check_tail(b)?;
    Ok(ParsedKey { prefix })
}

/// True for `0-9A-Za-z`, without branches: random secret characters would make
/// a comparison chain mispredict on almost every byte, and this form vectorizes.
#[inline(always)]
fn is_base62(c: u8) -> bool {
    (c.wrapping_sub(b'0') < 10) | ((c | 0x20).wrapping_sub(b'a') < 26)
}

/// Checks charset and checksum of the 39-byte tail of `b`.
fn check_tail(b: &[u8]) -> Result<(), KeyError> {
    let Some(tail) = b.last_chunk::<TAIL_LEN>() else {
        return Err(KeyError::BadLength);
    };
    // A count rather than `all()`: no early exit, no branch per byte, and
    // the compiler vectorizes it.
    if tail.iter().map(|&c| u8::from(is_base62(c))).sum::<u8>() != TAIL_LEN as u8 {
        return Err(KeyError::BadCharacter);
    }
    // Decode the presented checksum rather than encode the computed one: the
    // decode does not wait for the CRC, so the two overlap.
    let presented = b.last_chunk::<CHECKSUM_LEN>().map_or(u64::MAX, |c| {
        c.iter().fold(0u64, |n, &ch| {
            n * 62 + u64::from(BASE62_VALUE[usize::from(ch)])
        })
    });
    let crc = crc32fast::hash(&b[..b.len() - CHECKSUM_LEN]);
    if presented != u64::from(crc) {
        return Err(KeyError::BadChecksum);
    }
    Ok(())
}

/// Digit value of each base62 character (0 for others, which the charset
/// check has already refused).
const BASE62_VALUE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 62 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Checks that `key` is a well-formed key of the keyset with `prefix` (which
/// the caller has already validated, e.g. from a verified snapshot): the
/// verifier's fast path.
pub fn check_with_prefix(key: &str, prefix: &str) -> Result<(), KeyError> {
    check_with_prefix_bytes(key.as_bytes(), prefix.as_bytes())
}

fn check_with_prefix_bytes(b: &[u8], prefix: &[u8]) -> Result<(), KeyError> {
    if !has_prefix_bytes(b, prefix) {
        return Err(KeyError::BadPrefix);
    }
    check_after_prefix(b, prefix.len())
}

/// The rest of [`check_with_prefix`] for a string already known to start with
/// `<prefix>_` (the verifier tested that to pick the native path): length,
/// charset and checksum, without comparing the prefix a second time.
pub(crate) fn check_after_prefix(b: &[u8], prefix_len: usize) -> Result<(), KeyError> {
    if b.len() != key_len(prefix_len) {
        return Err(KeyError::BadLength);
    }
    check_tail(b)
}

/// The length of every key whose prefix is `prefix_len` bytes long.
pub(crate) const fn key_len(prefix_len: usize) -> usize {
    prefix_len + 1 + TAIL_LEN
}

/// Finds whether `s` *looks like* a key with `prefix` (starts with `prefix_`), the
/// test a verifier uses to decide between the native path and the imported path.
pub fn has_prefix(s: &str, prefix: &str) -> bool {
    has_prefix_bytes(s.as_bytes(), prefix.as_bytes())
}

pub(crate) fn has_prefix_bytes(s: &[u8], p: &[u8]) -> bool {
    s.len() > p.len() && s[p.len()] == b'_' && public_eq(&s[..p.len()], p)
}

/// Equality of short public byte strings (prefixes, scope names), eight
/// bytes at a time: a byte loop cost ~4 instructions per byte on the verify
/// path, and a call into libc's memcmp more than that for names this short.
/// Not constant-time: never use it on secrets.
#[inline]
pub(crate) fn public_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
    let n = a.len();
    if n < 8 {
        return a.iter().zip(b).fold(true, |eq, (x, y)| eq & (x == y));
    }
    // Whole words, then the last eight bytes (overlapping the last word).
    let mut diff = word(&a[n - 8..]) ^ word(&b[n - 8..]);
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        diff |= word(x) ^ word(y);
    }
    diff == 0
}

/// An API key in this format. Holds the secret: its `Debug` shows only the key id.
#[derive(Clone)]
pub struct ApiKey {
    buf: [u8; MAX_KEY_LEN],
    len: u8,
}

impl ApiKey {
    /// Builds the key for `prefix` from 24 secret bytes (which must come from a CSPRNG).
    pub fn from_secret_bytes(prefix: &str, secret: &[u8; SECRET_BYTES]) -> Result<Self, KeyError> {
        check_prefix(prefix)?;
        let mut buf = [0u8; MAX_KEY_LEN];
        let p = prefix.len();
        buf[..p].copy_from_slice(prefix.as_bytes());
        buf[p] = b'_';
        base62_bytes(secret, &mut buf[p + 1..p + 1 + SECRET_LEN]);
        let body = p + 1 + SECRET_LEN;
        let crc = crc32fast::hash(&buf[..body]);
        let mut sum = [0u8; CHECKSUM_LEN];
        base62_u32(crc, &mut sum);
        buf[body..body + CHECKSUM_LEN].copy_from_slice(&sum);
        Ok(Self {
            buf,
            len: (body + CHECKSUM_LEN) as u8,
        })
    }

    /// Generates a new key for `prefix` from the operating system's CSPRNG.
    #[cfg(feature = "std")]
    pub fn generate(prefix: &str) -> Result<Self, KeyError> {
        use ring::rand::SecureRandom;
        let mut secret = [0u8; SECRET_BYTES];
        // The OS generator failing is not recoverable and not input-derived.
        ring::rand::SystemRandom::new()
            .fill(&mut secret)
            .expect("OS random generator failed");
        Self::from_secret_bytes(prefix, &secret)
    }

    /// The key string. This is the secret: show it once, never log it.
    pub fn expose_secret(&self) -> &str {
        // Only ASCII is ever written into `buf`.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    /// SHA-256 of the key string.
    pub fn digest(&self) -> Digest {
        Digest::of(self.expose_secret().as_bytes())
    }

    /// The public key id.
    pub fn key_id(&self) -> KeyId {
        self.digest().key_id()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a presented key string: what snapshots store and gateways compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Hashes `key` (any format: native or imported).
    ///
    /// Inputs of up to 55 bytes (every native key) are padded by hand into one
    /// block and compressed directly: the streaming wrapper's buffering was
    /// ~12% of a verify.
    pub fn of(key: &[u8]) -> Self {
        if key.len() > MAX_KEY_LEN {
            return Self(Sha256::digest(key).into());
        }
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        block[key.len()] = 0x80;
        block[56..].copy_from_slice(&(key.len() as u64 * 8).to_be_bytes());
        let mut state = SHA256_H0;
        sha2::compress256(&mut state, &[block.into()]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        Self(out)
    }

    /// The public first 16 bytes.
    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.0[..16]);
        KeyId(id)
    }

    /// Constant-time equality.
    ///
    /// XOR-folds the four 64-bit words (no data-dependent branch or early exit),
    /// then asks `subtle` whether the fold is zero: one `ct_eq` instead of 32
    /// byte-wise ones, which measured ~15 ns apart on the hot path.
    pub fn ct_eq(&self, other: &[u8; 32]) -> subtle::Choice {
        let mut acc = 0u64;
        for (a, b) in self.0.chunks_exact(8).zip(other.chunks_exact(8)) {
            let wa = u64::from_le_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
            let wb = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            acc |= wa ^ wb;
        }
        acc.ct_eq(&0)
    }

    /// Parses 64 hex digits (as `keygate import --sha256` takes them).
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        decode_hex(s, &mut out)?;
        Some(Self(out))
    }
}

impl fmt::Debug for Digest {
    // Only the public half: the rest is verifier material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({}..)", self.key_id())
    }
}

/// The first 16 bytes of a key's digest: public, safe to log, the handle for
/// revoke and inspect. Displays as 32 lowercase hex chars.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        decode_hex(s, &mut out)?;
        Some(Self(out))
    }

    /// The id as a big-endian integer, the order keys are laid out in.
    pub fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The id as 32 lowercase hex digits (how it is shown everywhere), without
    /// allocating: bindings write it straight into their output buffers.
    pub fn to_hex(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 15)];
        }
        out
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hex digits are ASCII, so this never takes the error branch.
        f.write_str(core::str::from_utf8(&self.to_hex()).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

fn decode_hex(s: &str, out: &mut [u8]) -> Option<()> {
    let b = s.as_bytes();
    if b.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(())
}

/// Writes `n` as fixed-width base62 into `out` (most significant digit first).
fn base62_u32(mut n: u32, out: &mut [u8; CHECKSUM_LEN]) {
    for o in out.iter_mut().rev() {
        *o = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
}

/// Writes the big-endian number `bytes` as fixed-width base62 into `out`.
fn base62_bytes(bytes: &[u8; SECRET_BYTES], out: &mut [u8]) {
    // Schoolbook long division by 62 over six big-endian u32 limbs.
    let mut limbs = [0u32; SECRET_BYTES / 4];
    for (l, c) in limbs.iter_mut().zip(bytes.chunks_exact(4)) {
        *l = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for o in out.iter_mut().rev() {
        let mut rem = 0u64;
        for l in limbs.iter_mut() {
            let cur = (rem << 32) | u64::from(*l);
            *l = (cur / 62) as u32;
            rem = cur % 62;
        }
        *o = ALPHABET[rem as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::{String, ToString};

    /// Every length to 64 and a difference at every position.
    #[test]
    fn public_eq_is_byte_equality() {
        let a: std::vec::Vec<u8> = (0..64u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=64 {
            assert!(public_eq(&a[..n], &a[..n]), "len {n}");
            if n > 0 {
                assert!(!public_eq(&a[..n], &a[..n - 1]), "lengths {n}, {}", n - 1);
            }
            for at in 0..n {
                let mut b = a[..n].to_vec();
                b[at] ^= 1;
                assert!(!public_eq(&a[..n], &b), "len {n}, byte {at}");
            }
        }
    }

    fn key(prefix: &str, seed: u8) -> ApiKey {
        let mut s = [0u8; SECRET_BYTES];
        for (i, b) in s.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        ApiKey::from_secret_bytes(prefix, &s).unwrap()
    }

    #[test]
    #[cfg(feature = "std")]
    fn generated_key_round_trips() {
        let k = ApiKey::generate("acme_live").unwrap();
        let s = k.expose_secret();
        assert_eq!(s.len(), 9 + 1 + 33 + 6);
        assert_eq!(parse(s).unwrap().prefix(), "acme_live");
    }

    #[test]
    fn extreme_secrets_keep_fixed_width() {
        for fill in [0u8, 0xff] {
            let k = ApiKey::from_secret_bytes("a", &[fill; SECRET_BYTES]).unwrap();
            assert_eq!(k.expose_secret().len(), 1 + 1 + 33 + 6);
            parse(k.expose_secret()).unwrap();
        }
        let zero = ApiKey::from_secret_bytes("a", &[0; SECRET_BYTES]).unwrap();
        assert!(zero
            .expose_secret()
            .starts_with("a_000000000000000000000000000000000"));
    }

    #[test]
    fn every_single_char_change_is_refused() {
        let k = key("acme_live", 7);
        let s = k.expose_secret().as_bytes().to_vec();
        let charset: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-. ";
        let mut tried = 0;
        for i in 0..s.len() {
            for &c in charset {
                if c == s[i] {
                    continue;
                }
                let mut m = s.clone();
                m[i] = c;
                let m = String::from_utf8(m).unwrap();
                assert!(parse(&m).is_err(), "accepted a change at {i}: {c}");
                tried += 1;
            }
        }
        assert!(tried > 3000);
    }

    #[test]
    fn every_truncation_is_refused() {
        let k = key("acme_live", 9);
        let s = k.expose_secret();
        for n in 0..s.len() {
            assert!(parse(&s[..n]).is_err(), "accepted truncation to {n}");
        }
    }

    #[test]
    fn length_at_most_55_for_every_prefix_length() {
        for n in 1..=MAX_PREFIX_LEN {
            let p: String = core::iter::once('a')
                .chain(core::iter::repeat_n('z', n - 1))
                .collect();
            let k = key(&p, 1);
            assert!(k.expose_secret().len() <= 55);
            assert_eq!(parse(k.expose_secret()).unwrap().prefix(), p);
        }
    }

    #[test]
    fn prefix_rules() {
        for good in ["a", "acme_live", "a1_b2", "abcdefghijklmno"] {
            assert_eq!(check_prefix(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Acme",
            "acme_",
            "_acme",
            "acme-live",
            "abcdefghijklmnop",
        ] {
            assert_eq!(check_prefix(bad), Err(KeyError::BadPrefix), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_secret() {
        let k = key("acme_live", 3);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&k.expose_secret()[10..40]));
        assert!(dbg.contains(&k.key_id().to_string()));
    }

    #[test]
    fn one_block_digest_matches_streaming_sha256() {
        for n in 0..=80usize {
            let msg: std::vec::Vec<u8> = (0..n as u8).collect();
            let want: [u8; 32] = Sha256::digest(&msg).into();
            assert_eq!(Digest::of(&msg).0, want, "length {n}");
        }
    }

    #[test]
    fn hex_round_trip() {
        let d = key("x", 2).digest();
        let id = d.key_id();
        assert_eq!(KeyId::from_hex(&id.to_string()), Some(id));
        assert_eq!(KeyId::from_hex("zz"), None);
    }

    proptest::proptest! {
        #[test]
        fn prop_round_trip(secret in proptest::array::uniform24(proptest::num::u8::ANY), plen in 1usize..=15) {
            let prefix: String = core::iter::once('k').chain(core::iter::repeat_n('9', plen - 1)).collect();
            let k = ApiKey::from_secret_bytes(&prefix, &secret).unwrap();
            proptest::prop_assert_eq!(parse(k.expose_secret()).unwrap().prefix(), prefix.as_str());
        }

        #[test]
        fn prop_parse_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}
