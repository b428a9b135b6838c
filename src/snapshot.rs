//! Keyset snapshots (`.kgs`): every key's digest and state, signed.
//!
//! Byte layout (little-endian; docs/format.md is the reference):
//!
//! ```text
//! 0     header (256 bytes)
//! 256   slot table: slot_count × 64-byte records
//! ..    pilot table: bucket_count × u16
//! ..    principals blob: entries of len:u8 | UTF-8
//! ..    scopes blob: count:u8 then entries of len:u8 | ASCII
//! ..    Ed25519 signature (64) over domain tag | SHA-256(everything before it)
//! ```
//!
//! The slot table is laid out by a PTHash-style perfect hash: a key id picks a
//! bucket, the bucket's 16-bit *pilot* (a 2-byte table small enough to stay in
//! cache) and the id give the record's slot. So a lookup reads exactly one
//! 64-byte record line, whatever the table size, and the table is ~99% full.

use core::fmt;

use crate::artifact::{read_name, Fields, SIGNATURE_LEN};
use crate::error::Error;
use crate::key::{Digest, KeyId, MAX_PREFIX_LEN};
use crate::names::{Artifact, Name, SignerId};
use crate::trust::TrustSet;

/// Bytes per record (one cache line).
pub const RECORD_LEN: usize = 64;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 256;
/// Longest principal name, in bytes.
pub const MAX_PRINCIPAL_LEN: usize = 128;
/// Most distinct scopes one keyset may use (a record holds them as a 64-bit set).
pub const MAX_SCOPES: usize = 64;
/// Longest scope name, in bytes.
pub const MAX_SCOPE_LEN: usize = 64;
/// The latest time a key record can hold (unix seconds, 2106-02-07): record
/// times are 32-bit. Issuers refuse later times at input.
pub const MAX_TIME: u64 = u32::MAX as u64;

const MAGIC: &[u8; 4] = b"KGS\0";
/// 2: the slot formula of docs/format.md that mixes the id before the pilot
/// is known (1 mixed id and pilot together).
const FORMAT_VERSION: u16 = 2;

/// A key's state in a snapshot.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Status {
    /// In use.
    Active,
    /// Replaced by a rotation; still accepted until its sunset.
    Deprecated,
    /// Refused.
    Revoked,
}

impl Status {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Active),
            2 => Some(Self::Deprecated),
            3 => Some(Self::Revoked),
            _ => None,
        }
    }

    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    fn byte(self) -> u8 {
        match self {
            Self::Active => 1,
            Self::Deprecated => 2,
            Self::Revoked => 3,
        }
    }

    /// `active`, `deprecated` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Revoked => "revoked",
        }
    }
}

/// A keyset prefix stored inline (≤ 15 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    len: u8,
    buf: [u8; MAX_PREFIX_LEN],
}

impl Prefix {
    /// Checks and wraps a prefix.
    pub fn new(s: &str) -> Option<Self> {
        crate::key::check_prefix(s).ok()?;
        let mut buf = [0u8; MAX_PREFIX_LEN];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            len: s.len() as u8,
            buf,
        })
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The prefix's bytes (ASCII; no UTF-8 check on the hot path).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({:?})", self.as_str())
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Keyset name.
    pub keyset: Name,
    /// Key prefix of this keyset.
    pub prefix: Prefix,
    /// Snapshot version, strictly increasing per keyset.
    pub version: u64,
    /// Creation time (unix seconds).
    pub created_at: u64,
    /// Freshness bound (unix seconds): past it the snapshot is stale.
    pub valid_until: u64,
    /// Audit chain head the snapshot was built from (zero when unused).
    pub audit_head: [u8; 32],
    /// Who signed it.
    pub signer: SignerId,
    /// Keys held.
    pub record_count: u32,
    /// Of which imported (foreign-format) keys.
    pub imported_count: u32,
    /// Buckets of the perfect hash (entries of the pilot table).
    pub bucket_count: u32,
    /// Slots in the table.
    pub slot_count: u32,
    /// Seed of the perfect hash.
    pub hash_seed: u64,
    /// Bytes of the principals blob.
    pub principals_len: u32,
    /// Bytes of the scopes blob.
    pub scopes_len: u32,
}

impl SnapshotHeader {
    /// The snapshot's record table: right after the header.
    pub(crate) fn table(&self) -> Table {
        Table {
            slots_at: HEADER_LEN,
            slot_count: self.slot_count,
            bucket_count: self.bucket_count,
            hash_seed: self.hash_seed,
            principals_len: self.principals_len,
            scopes_len: self.scopes_len,
            record_count: self.record_count,
            imported_count: self.imported_count,
        }
    }

    fn signature_at(&self) -> usize {
        self.table().end()
    }

    /// Total file length this header describes.
    pub fn file_len(&self) -> usize {
        self.signature_at() + SIGNATURE_LEN
    }
}

/// A record table inside an artifact's bytes — the snapshot's, or the keys
/// an update adds or changes: 64-byte records laid out by the perfect hash,
/// the pilots, the principals and the scopes. One layout, one reader, one
/// writer for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Table {
    /// Offset of slot 0 (a multiple of 64).
    pub slots_at: usize,
    pub slot_count: u32,
    pub bucket_count: u32,
    pub hash_seed: u64,
    pub principals_len: u32,
    pub scopes_len: u32,
    pub record_count: u32,
    pub imported_count: u32,
}

impl Table {
    fn pilots_at(&self) -> usize {
        self.slots_at + self.slot_count as usize * RECORD_LEN
    }

    fn principals_at(&self) -> usize {
        self.pilots_at() + self.bucket_count as usize * 2
    }

    fn scopes_at(&self) -> usize {
        self.principals_at() + self.principals_len as usize
    }

    /// Where the table ends.
    pub(crate) fn end(&self) -> usize {
        self.scopes_at() + self.scopes_len as usize
    }

    fn phf(&self) -> Phf {
        Phf {
            buckets: self.bucket_count,
            slots: self.slot_count,
            seed: self.hash_seed,
        }
    }

    /// Checks counts against each other and that `f`'s bytes hold the table.
    pub(crate) fn check_bounds(&self, f: &Fields<'_>) -> Result<(), Error> {
        if self.record_count > self.slot_count || self.imported_count > self.record_count {
            return Err(f.malformed("record counts exceed the table"));
        }
        if (self.slot_count == 0) != (self.bucket_count == 0) {
            return Err(f.malformed("slots without buckets or buckets without slots"));
        }
        // The whole table's end, in u64 first: on a 32-bit target (WASM)
        // counts from a hostile header would overflow the usize sums below.
        let end = self.slots_at as u64
            + u64::from(self.slot_count) * RECORD_LEN as u64
            + u64::from(self.bucket_count) * 2
            + u64::from(self.principals_len)
            + u64::from(self.scopes_len);
        f.need(usize::try_from(end).unwrap_or(usize::MAX), "record table")?;
        f.need(self.pilots_at(), "slot table")?;
        f.need(self.principals_at(), "pilot table")?;
        f.need(self.scopes_at(), "principals table")?;
        f.need(self.end(), "scopes table")
    }

    fn slot<'a>(&self, bytes: &'a [u8], i: usize) -> &'a [u8; RECORD_LEN] {
        let at = self.slots_at + i * RECORD_LEN;
        bytes
            .get(at..at + RECORD_LEN)
            .and_then(|s| s.first_chunk::<RECORD_LEN>())
            .unwrap_or(&EMPTY_SLOT)
    }

    fn principals<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes
            .get(self.principals_at()..self.scopes_at())
            .unwrap_or(&[])
    }

    fn scopes<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes.get(self.scopes_at()..self.end()).unwrap_or(&[])
    }

    fn pilot(&self, bytes: &[u8], bucket: usize) -> u16 {
        let at = self.pilots_at() + 2 * bucket;
        bytes
            .get(at..at + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// The record whose full digest equals `digest`: one record line read,
    /// its digest compared in constant time (an unknown id does the same
    /// work as a known id with a wrong secret).
    #[inline]
    pub(crate) fn lookup<'a>(&self, bytes: &'a [u8], digest: &Digest) -> Option<Record<'a>> {
        let id = digest.key_id().to_u128();
        let candidate = if self.slot_count == 0 {
            &EMPTY_SLOT
        } else {
            let phf = self.phf();
            self.slot(bytes, phf.slot(id, self.pilot(bytes, phf.bucket(id))))
        };
        let rec = Record {
            raw: candidate,
            principals: self.principals(bytes),
        };
        bool::from(digest.ct_eq(rec.digest_bytes())).then_some(rec)
    }

    /// The bit of `scope` in this table's record masks, if any key has it.
    pub(crate) fn scope_bit(&self, bytes: &[u8], scope: &str) -> Option<u64> {
        // Raw bytes, no UTF-8 re-check: the table was validated at parse time.
        let b = self.scopes(bytes);
        let want = scope.as_bytes();
        let mut at = 1usize;
        for i in 0..b.first().copied().unwrap_or(0) {
            let len = usize::from(*b.get(at)?);
            let name = b.get(at + 1..at + 1 + len)?;
            if crate::key::public_eq(name, want) {
                return Some(1u64 << i);
            }
            at += 1 + len;
        }
        None
    }

    /// Every record, in slot order.
    pub(crate) fn records<'a>(self, bytes: &'a [u8]) -> impl Iterator<Item = Record<'a>> + 'a {
        (0..self.slot_count as usize)
            .map(move |i| self.slot(bytes, i))
            .filter(|s| s[rec::STATUS] != 0)
            .map(move |raw| Record {
                raw,
                principals: self.principals(bytes),
            })
    }

    /// The scope names, in bit order.
    pub(crate) fn scope_names<'a>(self, bytes: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
        let b = self.scopes(bytes);
        let count = b.first().copied().unwrap_or(0);
        let mut at = 1usize;
        (0..count).map_while(move |_| {
            let len = usize::from(*b.get(at)?);
            let s = core::str::from_utf8(b.get(at + 1..at + 1 + len)?).ok()?;
            at += 1 + len;
            Some(s)
        })
    }

    /// Checks the principals and scopes blobs and every record: status,
    /// flags, its slot is where its id hashes, its principal and scope bits
    /// are in bounds, and the counts match.
    pub(crate) fn validate(&self, f: &Fields<'_>) -> Result<(), Error> {
        let bytes = f.bytes;
        // Principals: a sequence of len:u8 | UTF-8 entries filling the blob.
        let p = self.principals(bytes);
        let mut at = 0;
        while at < p.len() {
            let len = usize::from(p[at]);
            let s = p
                .get(at + 1..at + 1 + len)
                .ok_or(f.malformed("principal entry overruns its table"))?;
            if len == 0 || len > MAX_PRINCIPAL_LEN || core::str::from_utf8(s).is_err() {
                return Err(f.malformed("bad principal entry"));
            }
            at += 1 + len;
        }
        // Scopes: count:u8 then that many len:u8 | ASCII entries, exactly filling the blob.
        let s = self.scopes(bytes);
        let count = usize::from(*s.first().ok_or(f.malformed("scope table empty"))?);
        if count > MAX_SCOPES {
            return Err(f.malformed("more than 64 scopes"));
        }
        let mut at = 1;
        for _ in 0..count {
            let len = usize::from(
                *s.get(at)
                    .ok_or(f.malformed("scope entry overruns its table"))?,
            );
            let name = s
                .get(at + 1..at + 1 + len)
                .ok_or(f.malformed("scope entry overruns its table"))?;
            if !valid_scope(name) {
                return Err(f.malformed("bad scope name"));
            }
            at += 1 + len;
        }
        if at != s.len() {
            return Err(f.malformed("bytes after the scope table"));
        }
        let phf = self.phf();
        let principals_len = self.principals_len as usize;
        let scope_limit = if count >= 64 {
            u64::MAX
        } else {
            (1u64 << count) - 1
        };
        let (mut records, mut imported) = (0u32, 0u32);
        for i in 0..self.slot_count as usize {
            let raw = self.slot(bytes, i);
            if raw[rec::STATUS] == 0 {
                if *raw != EMPTY_SLOT {
                    return Err(f.malformed("empty slot with data"));
                }
                continue;
            }
            let rec = Record {
                raw,
                principals: self.principals(bytes),
            };
            if Status::from_byte(raw[rec::STATUS]).is_none()
                || raw[rec::FLAGS] > 1
                || raw[rec::RESERVED..rec::NOT_BEFORE] != [0, 0]
            {
                return Err(f.malformed("bad record status or flags"));
            }
            // Every record must be where a lookup for its id goes.
            let id = rec.id_u128();
            if phf.slot(id, self.pilot(bytes, phf.bucket(id))) != i {
                return Err(f.malformed("record not at its hashed slot"));
            }
            let p_at = rec.u32_at(self::rec::PRINCIPAL) as usize;
            let p_len = self
                .principals(bytes)
                .get(p_at)
                .copied()
                .map_or(0, usize::from);
            if p_len == 0 || p_at + 1 + p_len > principals_len {
                return Err(f.malformed("record principal out of bounds"));
            }
            if rec.scope_mask() & !scope_limit != 0 {
                return Err(f.malformed("record scope outside the scope table"));
            }
            records += 1;
            imported += u32::from(rec.imported());
        }
        if records != self.record_count || imported != self.imported_count {
            return Err(f.malformed("record counts do not match the header"));
        }
        Ok(())
    }
}

/// `x` scaled to `0..n` (Lemire's multiply-shift range reduction):
/// `x · n >> 64`.
#[inline]
pub(crate) fn scale(x: u64, n: u32) -> usize {
    #[cfg(target_pointer_width = "64")]
    return ((u128::from(x) * u128::from(n)) >> 64) as usize;
    // 32-bit targets (WASM) have no 64×64→128 multiply: there a u128 product
    // is a `__multi3` call.
    #[cfg(not(target_pointer_width = "64"))]
    return scale_split(x, n);
}

/// [`scale`] with two 64-bit products: x·n = hi·n·2³² + lo·n, and the carry
/// of lo·n into the high word is its top 32 bits. Exact, and no sum overflows
/// (hi·n ≤ (2³²−1)², lo·n >> 32 < 2³²).
#[cfg(any(test, not(target_pointer_width = "64")))]
#[inline]
fn scale_split(x: u64, n: u32) -> usize {
    let n = u64::from(n);
    let hi = (x >> 32) * n;
    let lo = (x & 0xffff_ffff) * n;
    ((hi + (lo >> 32)) >> 32) as usize
}

/// MurmurHash3's 64-bit finalizer.
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The perfect hash: which bucket an id is in (its top 64 bits, already
/// uniform), and which slot it lands in for a given pilot.
#[derive(Clone, Copy)]
struct Phf {
    buckets: u32,
    slots: u32,
    seed: u64,
}

impl Phf {
    fn bucket(&self, id: u128) -> usize {
        scale((id >> 64) as u64, self.buckets)
    }

    /// The id's own hash, independent of the pilot: computed while the
    /// pilot is being read.
    fn key_hash(&self, id: u128) -> u64 {
        fmix64(id as u64 ^ self.seed)
    }

    fn slot(&self, id: u128, pilot: u16) -> usize {
        self.slot_of_hash(self.key_hash(id), pilot)
    }

    /// After the pilot load only two multiplies and a xor remain (the slot
    /// used to be a full fmix64 of the id and pilot, ~10 cycles more on the
    /// verify's dependency chain). The multiply by an odd constant spreads
    /// the low bits of the xor upward, so two ids of one bucket that collide
    /// for one pilot do not collide for every pilot.
    fn slot_of_hash(&self, key_hash: u64, pilot: u16) -> usize {
        let x = (key_hash ^ u64::from(pilot).wrapping_mul(PILOT_MUL)).wrapping_mul(SLOT_MUL);
        scale(x, self.slots)
    }
}

const PILOT_MUL: u64 = 0x9e37_79b9_7f4a_7c15;
const SLOT_MUL: u64 = 0xd6e8_feb8_6659_fd93;

/// One key's record, borrowed from a snapshot.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    raw: &'a [u8; RECORD_LEN],
    principals: &'a [u8],
}

impl<'a> Record<'a> {
    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes([
            self.raw[at],
            self.raw[at + 1],
            self.raw[at + 2],
            self.raw[at + 3],
        ])
    }

    fn id_u128(&self) -> u128 {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.raw[rec::DIGEST..rec::DIGEST + 16]);
        u128::from_be_bytes(id)
    }

    fn digest_bytes(&self) -> &'a [u8; 32] {
        self.raw.first_chunk::<32>().unwrap_or(&[0; 32])
    }

    /// The key's public id.
    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.raw[rec::DIGEST..rec::DIGEST + 16]);
        KeyId(id)
    }

    /// Status; `None` only for an empty slot, which lookups never return.
    pub fn status(&self) -> Status {
        Status::from_byte(self.raw[rec::STATUS]).unwrap_or(Status::Revoked)
    }

    /// True for a key imported by digest (not in keygate format).
    pub fn imported(&self) -> bool {
        self.raw[rec::FLAGS] & 1 == 1
    }

    /// The scope set as a bit mask over the snapshot's scope table.
    pub fn scope_mask(&self) -> u64 {
        let mut m = [0u8; 8];
        m.copy_from_slice(&self.raw[rec::SCOPES..rec::PRINCIPAL]);
        u64::from_le_bytes(m)
    }

    /// The principal's UTF-8 bytes (validated when the snapshot was parsed).
    pub fn principal_bytes(&self) -> &'a [u8] {
        let at = self.u32_at(rec::PRINCIPAL) as usize;
        let len = self.principals.get(at).copied().map_or(0, usize::from);
        self.principals.get(at + 1..at + 1 + len).unwrap_or(&[])
    }

    /// Stable alias behind the key (validated when the snapshot was parsed).
    pub fn principal(&self) -> &'a str {
        let at = self.u32_at(rec::PRINCIPAL) as usize;
        let len = self.principals.get(at).copied().map_or(0, usize::from);
        self.principals
            .get(at + 1..at + 1 + len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Not valid before (unix seconds, 0 = no bound).
    pub fn not_before(&self) -> u64 {
        u64::from(self.u32_at(rec::NOT_BEFORE))
    }

    /// Expiry (unix seconds), if any.
    pub fn expires_at(&self) -> Option<u64> {
        nonzero(self.u32_at(rec::EXPIRES))
    }

    /// When the key was deprecated, if it was.
    pub fn deprecated_at(&self) -> Option<u64> {
        nonzero(self.u32_at(rec::DEPRECATED))
    }

    /// End of the grace window of a deprecated key, if any.
    pub fn sunset_at(&self) -> Option<u64> {
        nonzero(self.u32_at(rec::SUNSET))
    }
}

fn nonzero(v: u32) -> Option<u64> {
    (v != 0).then_some(u64::from(v))
}

impl fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key_id", &self.key_id())
            .field("status", &self.status())
            .field("principal", &self.principal())
            .finish_non_exhaustive()
    }
}

const EMPTY_SLOT: [u8; RECORD_LEN] = [0; RECORD_LEN];

/// Named offsets of a record's fields (docs/format.md, "Record").
mod rec {
    pub const DIGEST: usize = 0;
    pub const SCOPES: usize = 32;
    pub const PRINCIPAL: usize = 40;
    pub const STATUS: usize = 44;
    pub const FLAGS: usize = 45;
    pub const RESERVED: usize = 46;
    pub const NOT_BEFORE: usize = 48;
    pub const EXPIRES: usize = 52;
    pub const DEPRECATED: usize = 56;
    pub const SUNSET: usize = 60;
}

/// A parsed snapshot: a view over its bytes, no copy, no allocation.
#[derive(Clone, Copy)]
pub struct SnapshotView<'a> {
    bytes: &'a [u8],
    header: SnapshotHeader,
}

impl<'a> SnapshotView<'a> {
    /// Parses `bytes` and checks its signature against `trust` and its keyset.
    pub fn new(bytes: &'a [u8], trust: &TrustSet) -> Result<Self, Error> {
        let header = Self::check_signed(bytes, trust)?;
        let view = Self { bytes, header };
        view.validate()?;
        Ok(view)
    }

    /// Checks header, keyset and signature only; the record table is checked
    /// by [`SnapshotView::parse_unverified`]. The two halves of
    /// [`SnapshotView::new`], so a verifier can run them on two cores.
    pub fn check_signed(bytes: &[u8], trust: &TrustSet) -> Result<SnapshotHeader, Error> {
        let h = parse_header(bytes)?;
        if h.keyset != *trust.keyset() {
            return Err(Error::WrongKeyset {
                artifact: Artifact::Snapshot,
                expected: *trust.keyset(),
                found: h.keyset,
            });
        }
        let sig_at = h.signature_at();
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&bytes[sig_at..sig_at + SIGNATURE_LEN]);
        trust.check(Artifact::Snapshot, &h.signer, &bytes[..sig_at], &sig)?;
        Ok(h)
    }

    /// Parses and validates structure *without* checking the signature: for
    /// inspecting a file, never for deciding on keys.
    pub fn parse_unverified(bytes: &'a [u8]) -> Result<Self, Error> {
        let header = parse_header(bytes)?;
        let view = Self { bytes, header };
        view.validate()?;
        Ok(view)
    }

    /// Parses the header and checks that the bytes hold every table it
    /// names, without validating each record: for bytes this process
    /// already validated (a cache of its own), where the full pass would cost
    /// O(keys) again. Lookups stay bounds-checked whatever the bytes.
    pub fn parse_validated(bytes: &'a [u8]) -> Result<Self, Error> {
        Ok(Self {
            bytes,
            header: parse_header(bytes)?,
        })
    }

    /// The header fields.
    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// The signed bytes of this snapshot.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Finds the record whose full digest equals `digest`.
    ///
    /// The scan to the candidate slot compares public key ids; the full digest
    /// is then compared in constant time against whatever slot the scan stopped
    /// at (an empty slot for an unknown id), so an unknown id costs the same as a
    /// known id with a wrong secret.
    pub fn lookup(&self, digest: &Digest) -> Option<Record<'a>> {
        self.header.table().lookup(self.bytes, digest)
    }

    /// Every record, in slot order.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + 'a {
        self.header.table().records(self.bytes)
    }

    /// The bit of `scope` in record scope masks, or `None` if no key has it.
    pub fn scope_bit(&self, scope: &str) -> Option<u64> {
        self.header.table().scope_bit(self.bytes, scope)
    }

    /// The scope names, in bit order.
    pub fn scope_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.header.table().scope_names(self.bytes)
    }

    /// The names of the scopes in `mask`.
    pub fn scopes_of(&self, mask: u64) -> impl Iterator<Item = &'a str> + 'a {
        self.scope_names()
            .enumerate()
            .filter(move |(i, _)| mask >> i & 1 == 1)
            .map(|(_, s)| s)
    }

    fn validate(&self) -> Result<(), Error> {
        self.header.table().validate(&Fields {
            bytes: self.bytes,
            artifact: Artifact::Snapshot,
        })
    }
}

impl fmt::Debug for SnapshotView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotView")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

fn valid_scope(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SCOPE_LEN
        && name.iter().all(|c| c.is_ascii_graphic() && *c != b'"')
}

fn parse_header(bytes: &[u8]) -> Result<SnapshotHeader, Error> {
    let f = Fields {
        bytes,
        artifact: Artifact::Snapshot,
    };
    f.preamble(MAGIC, &[FORMAT_VERSION])?;
    f.need(HEADER_LEN, "header")?;
    if usize::from(f.u16(6)) != HEADER_LEN {
        return Err(f.malformed("header length"));
    }
    if bytes[192..256].iter().any(|b| *b != 0) {
        return Err(f.malformed("reserved header bytes not zero"));
    }
    let plen = usize::from(bytes[112]);
    let prefix = core::str::from_utf8(bytes.get(113..113 + plen).unwrap_or(&[]))
        .ok()
        .filter(|_| plen <= MAX_PREFIX_LEN && bytes[113 + plen..128].iter().all(|b| *b == 0))
        .and_then(Prefix::new)
        .ok_or(f.malformed("bad key prefix"))?;
    let h = SnapshotHeader {
        version: f.u64(8),
        created_at: f.u64(16),
        valid_until: f.u64(24),
        audit_head: f.array(32),
        signer: SignerId(f.array(64)),
        record_count: f.u32(80),
        bucket_count: f.u32(84),
        slot_count: f.u32(88),
        hash_seed: f.u64(104),
        principals_len: f.u32(92),
        scopes_len: f.u32(96),
        imported_count: f.u32(100),
        prefix,
        keyset: read_name(&f.array(128), Artifact::Snapshot)?,
    };
    h.table().check_bounds(&f)?;
    f.need(h.file_len(), "signature")?;
    if bytes.len() != h.file_len() {
        return Err(f.malformed("bytes after the signature"));
    }
    Ok(h)
}

#[cfg(feature = "std")]
pub(crate) use builder::{encode_table, DEFAULT_LOAD_PERCENT};
#[cfg(feature = "std")]
pub use builder::{BuildError, RecordSpec, SnapshotBuilder};

#[cfg(feature = "std")]
mod builder {
    use alloc::collections::BTreeMap;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt;

    use super::*;
    use crate::trust::Signer;

    /// Why a snapshot could not be built.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum BuildError {
        /// Two records share a key id.
        DuplicateKey(KeyId),
        /// A principal is empty or longer than 128 bytes.
        BadPrincipal,
        /// A scope is empty, longer than 64 bytes, or not printable ASCII.
        BadScope,
        /// More than 64 distinct scopes.
        TooManyScopes,
        /// A time does not fit the format (beyond 2106-02-07).
        TimeOutOfRange,
        /// More keys than the format holds (2^32 - 1).
        TooManyKeys,
        /// The table grew past the format's limits.
        TooLarge,
    }

    impl fmt::Display for BuildError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::DuplicateKey(id) => write!(f, "duplicate key id {id}"),
                Self::BadPrincipal => f.write_str("principal must be 1-128 bytes"),
                Self::BadScope => f.write_str("scope must be 1-64 printable ASCII chars"),
                Self::TooManyScopes => f.write_str("a keyset may use at most 64 distinct scopes"),
                Self::TimeOutOfRange => {
                    f.write_str("time beyond the format's range (u32 unix seconds)")
                }
                Self::TooManyKeys => f.write_str("too many keys for one snapshot"),
                Self::TooLarge => f.write_str("snapshot too large for the format"),
            }
        }
    }

    impl std::error::Error for BuildError {}

    /// One key to put in a snapshot.
    #[derive(Clone, PartialEq, Eq)]
    pub struct RecordSpec {
        /// SHA-256 of the key string.
        pub digest: Digest,
        /// Stable alias behind the key.
        pub principal: String,
        /// Scopes the key grants.
        pub scopes: Vec<String>,
        /// Status.
        pub status: Status,
        /// Imported by digest (not keygate format).
        pub imported: bool,
        /// Not valid before (unix seconds; 0 = no bound).
        pub not_before: u64,
        /// Expiry.
        pub expires_at: Option<u64>,
        /// Deprecation time.
        pub deprecated_at: Option<u64>,
        /// End of the grace window.
        pub sunset_at: Option<u64>,
    }

    impl RecordSpec {
        /// An active key with no time bounds.
        pub fn active(digest: Digest, principal: &str, scopes: &[&str]) -> Self {
            Self {
                digest,
                principal: principal.into(),
                scopes: scopes.iter().map(|s| String::from(*s)).collect(),
                status: Status::Active,
                imported: false,
                not_before: 0,
                expires_at: None,
                deprecated_at: None,
                sunset_at: None,
            }
        }
    }

    impl fmt::Debug for RecordSpec {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RecordSpec")
                .field("key_id", &self.digest.key_id())
                .field("principal", &self.principal)
                .field("status", &self.status)
                .finish_non_exhaustive()
        }
    }

    /// Builds and signs a snapshot.
    #[derive(Debug)]
    pub struct SnapshotBuilder {
        keyset: Name,
        prefix: Prefix,
        version: u64,
        created_at: u64,
        valid_until: u64,
        audit_head: [u8; 32],
        records: Vec<RecordSpec>,
        load_percent: u8,
    }

    /// Default table load (records per slot), in percent. Every lookup reads
    /// one line whatever the load; a fuller table only costs build time.
    pub const DEFAULT_LOAD_PERCENT: u8 = 99;

    /// Mean keys per perfect-hash bucket: 2 pilot bytes per 5 keys.
    const KEYS_PER_BUCKET: u64 = 5;

    impl SnapshotBuilder {
        /// A builder for `keyset`/`prefix` at `version`, valid for a day from `created_at`.
        pub fn new(keyset: Name, prefix: Prefix, version: u64, created_at: u64) -> Self {
            Self {
                keyset,
                prefix,
                version,
                created_at,
                valid_until: created_at.saturating_add(86_400),
                audit_head: [0; 32],
                records: Vec::new(),
                load_percent: DEFAULT_LOAD_PERCENT,
            }
        }

        /// Sets the freshness bound.
        pub fn valid_until(mut self, t: u64) -> Self {
            self.valid_until = t;
            self
        }

        /// Sets the slot table's load (records per slot, 50–99 %): lower
        /// builds faster and makes a bigger file; lookups read one line either way.
        pub fn load_percent(mut self, percent: u8) -> Self {
            self.load_percent = percent.clamp(50, 99);
            self
        }

        /// Records the audit chain head this snapshot reflects.
        pub fn audit_head(mut self, head: [u8; 32]) -> Self {
            self.audit_head = head;
            self
        }

        /// Adds a key.
        pub fn push(&mut self, r: RecordSpec) {
            self.records.push(r);
        }

        /// Encodes and signs.
        pub fn build(mut self, signer: &Signer) -> Result<Vec<u8>, BuildError> {
            let t = encode_table(&mut self.records, self.load_percent)?;
            let mut out = alloc::vec![0u8; HEADER_LEN];
            let h = &mut out[..HEADER_LEN];
            h[..4].copy_from_slice(MAGIC);
            h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
            h[8..16].copy_from_slice(&self.version.to_le_bytes());
            h[16..24].copy_from_slice(&self.created_at.to_le_bytes());
            h[24..32].copy_from_slice(&self.valid_until.to_le_bytes());
            h[32..64].copy_from_slice(&self.audit_head);
            h[64..80].copy_from_slice(&signer.id().0);
            h[80..84].copy_from_slice(&t.meta.record_count.to_le_bytes());
            h[84..88].copy_from_slice(&t.meta.bucket_count.to_le_bytes());
            h[88..92].copy_from_slice(&t.meta.slot_count.to_le_bytes());
            h[104..112].copy_from_slice(&t.meta.hash_seed.to_le_bytes());
            h[92..96].copy_from_slice(&t.meta.principals_len.to_le_bytes());
            h[96..100].copy_from_slice(&t.meta.scopes_len.to_le_bytes());
            h[100..104].copy_from_slice(&t.meta.imported_count.to_le_bytes());
            h[112] = self.prefix.len;
            h[113..113 + usize::from(self.prefix.len)]
                .copy_from_slice(self.prefix.as_str().as_bytes());
            h[128..192].copy_from_slice(&self.keyset.field());
            t.append_to(&mut out);
            let sig = signer.sign(Artifact::Snapshot, &out);
            out.extend_from_slice(&sig);
            Ok(out)
        }
    }

    /// A record table, encoded: what a snapshot holds after its header and
    /// an update after its revocation filter.
    pub(crate) struct EncodedTable {
        /// Counts, sizes and hash seed (`slots_at` is the writer's to set).
        pub meta: Table,
        slots: Vec<u8>,
        pilots: Vec<u16>,
        principals: Vec<u8>,
        scopes: Vec<u8>,
    }

    impl EncodedTable {
        /// Appends slots, pilots, principals and scopes to `out`.
        pub fn append_to(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.slots);
            for p in &self.pilots {
                out.extend_from_slice(&p.to_le_bytes());
            }
            out.extend_from_slice(&self.principals);
            out.extend_from_slice(&self.scopes);
        }
    }

    /// Encodes `records` (sorted here by key id) as a record table at
    /// `load_percent`.
    pub(crate) fn encode_table(
        records: &mut [RecordSpec],
        load_percent: u8,
    ) -> Result<EncodedTable, BuildError> {
        let n = records.len();
        if n > u32::MAX as usize / 2 {
            return Err(BuildError::TooManyKeys);
        }
        records.sort_unstable_by_key(|r| r.digest.key_id());
        if let Some(w) = records
            .windows(2)
            .find(|w| w[0].digest.key_id() == w[1].digest.key_id())
        {
            return Err(BuildError::DuplicateKey(w[0].digest.key_id()));
        }
        // Scopes: sorted distinct names, ≤ 64.
        let mut scope_names: Vec<&str> = records
            .iter()
            .flat_map(|r| r.scopes.iter().map(String::as_str))
            .collect();
        scope_names.sort_unstable();
        scope_names.dedup();
        if scope_names.len() > MAX_SCOPES {
            return Err(BuildError::TooManyScopes);
        }
        if !scope_names.iter().all(|s| valid_scope(s.as_bytes())) {
            return Err(BuildError::BadScope);
        }
        let mut scopes_blob = alloc::vec![scope_names.len() as u8];
        for s in &scope_names {
            scopes_blob.push(s.len() as u8);
            scopes_blob.extend_from_slice(s.as_bytes());
        }
        // Principals: deduplicated, addressed by byte offset.
        let mut principals_blob = Vec::new();
        let mut principal_at: BTreeMap<&str, u32> = BTreeMap::new();
        for r in records.iter() {
            if r.principal.is_empty() || r.principal.len() > MAX_PRINCIPAL_LEN {
                return Err(BuildError::BadPrincipal);
            }
            if !principal_at.contains_key(r.principal.as_str()) {
                let at = u32::try_from(principals_blob.len()).map_err(|_| BuildError::TooLarge)?;
                principal_at.insert(&r.principal, at);
                principals_blob.push(r.principal.len() as u8);
                principals_blob.extend_from_slice(r.principal.as_bytes());
            }
        }
        let (phf, pilots, positions) = place_at_some_load(records, load_percent)?;
        let mut slots = alloc::vec![0u8; phf.slots as usize * RECORD_LEN];
        let t32 = |t: Option<u64>| -> Result<u32, BuildError> {
            u32::try_from(t.unwrap_or(0)).map_err(|_| BuildError::TimeOutOfRange)
        };
        let mut imported = 0u32;
        for (r, pos) in records.iter().zip(positions) {
            let mut mask = 0u64;
            for s in &r.scopes {
                // Every scope is in the table built above.
                let bit = scope_names
                    .binary_search(&s.as_str())
                    .map_err(|_| BuildError::BadScope)?;
                mask |= 1 << bit;
            }
            use self::rec as f;
            let at = |f: usize, len: usize| f..f + len;
            let rec = &mut slots[pos * RECORD_LEN..][..RECORD_LEN];
            rec[at(f::DIGEST, 32)].copy_from_slice(&r.digest.0);
            rec[at(f::SCOPES, 8)].copy_from_slice(&mask.to_le_bytes());
            rec[at(f::PRINCIPAL, 4)]
                .copy_from_slice(&principal_at[r.principal.as_str()].to_le_bytes());
            rec[f::STATUS] = r.status.byte();
            rec[f::FLAGS] = u8::from(r.imported);
            rec[at(f::NOT_BEFORE, 4)].copy_from_slice(&t32(Some(r.not_before))?.to_le_bytes());
            rec[at(f::EXPIRES, 4)].copy_from_slice(&t32(r.expires_at)?.to_le_bytes());
            rec[at(f::DEPRECATED, 4)].copy_from_slice(&t32(r.deprecated_at)?.to_le_bytes());
            rec[at(f::SUNSET, 4)].copy_from_slice(&t32(r.sunset_at)?.to_le_bytes());
            imported += u32::from(r.imported);
        }
        let meta = Table {
            slots_at: 0,
            slot_count: phf.slots,
            bucket_count: phf.buckets,
            hash_seed: phf.seed,
            principals_len: u32::try_from(principals_blob.len())
                .map_err(|_| BuildError::TooLarge)?,
            scopes_len: scopes_blob.len() as u32,
            record_count: n as u32,
            imported_count: imported,
        };
        Ok(EncodedTable {
            meta,
            slots,
            pilots,
            principals: principals_blob,
            scopes: scopes_blob,
        })
    }

    /// [`place`] at `load_percent`, else at lower loads (a few percent more
    /// slots each time) until it places every key: at millions of keys and
    /// 99 % load a placement can fail for every seed tried, and a publish
    /// must not (seen at 10 M keys). Readers take the slot count from the
    /// header, so the load is the builder's choice.
    fn place_at_some_load(
        records: &[RecordSpec],
        load_percent: u8,
    ) -> Result<(Phf, Vec<u16>, Vec<usize>), BuildError> {
        let mut load = load_percent;
        loop {
            match place(records, load) {
                Err(BuildError::TooLarge) if load > 80 => load = load.saturating_sub(3).max(80),
                r => return r,
            }
        }
    }

    #[cfg(test)]
    pub(super) fn place_at_some_load_for_test(
        records: &[RecordSpec],
        load: u8,
    ) -> Result<(Phf, Vec<u16>, Vec<usize>), BuildError> {
        place_at_some_load(records, load)
    }

    /// Builds the perfect hash: buckets in decreasing size order each get the
    /// first pilot that puts all their keys in free, distinct slots. Returns the
    /// hash, the pilots, and each record's slot.
    fn place(
        records: &[RecordSpec],
        load_percent: u8,
    ) -> Result<(Phf, Vec<u16>, Vec<usize>), BuildError> {
        let n = records.len() as u64;
        if n == 0 {
            return Ok((
                Phf {
                    buckets: 0,
                    slots: 0,
                    seed: 0,
                },
                Vec::new(),
                Vec::new(),
            ));
        }
        let slots = u32::try_from((n * 100).div_ceil(u64::from(load_percent)).max(1))
            .map_err(|_| BuildError::TooManyKeys)?;
        let buckets =
            u32::try_from(n.div_ceil(KEYS_PER_BUCKET)).map_err(|_| BuildError::TooManyKeys)?;
        let ids: Vec<u128> = records
            .iter()
            .map(|r| r.digest.key_id().to_u128())
            .collect();
        let mut seed = 0x6b65_7967_6174_6553u64; // "keygateS"
                                                 // Each attempt is a whole placement: at millions of keys a few seeds,
                                                 // then a lower load (place_at_some_load), beats many seeds.
        let attempts = if n > 1_000_000 { 4 } else { 16 };
        'attempt: for _ in 0..attempts {
            let phf = Phf {
                buckets,
                slots,
                seed,
            };
            // Keys grouped by bucket (counting sort).
            let mut start = alloc::vec![0u32; buckets as usize + 1];
            for id in &ids {
                start[phf.bucket(*id) + 1] += 1;
            }
            for b in 0..buckets as usize {
                start[b + 1] += start[b];
            }
            let mut fill = start.clone();
            let mut members = alloc::vec![0u32; ids.len()];
            for (i, id) in ids.iter().enumerate() {
                let b = phf.bucket(*id);
                members[fill[b] as usize] = i as u32;
                fill[b] += 1;
            }
            let mut order: Vec<u32> = (0..buckets)
                .filter(|&b| start[b as usize + 1] > start[b as usize])
                .collect();
            order.sort_unstable_by_key(|&b| {
                core::cmp::Reverse(start[b as usize + 1] - start[b as usize])
            });
            let mut taken = alloc::vec![false; slots as usize];
            let mut pilots = alloc::vec![0u16; buckets as usize];
            let mut positions = alloc::vec![0usize; ids.len()];
            let mut here: Vec<usize> = Vec::new();
            let hashes: Vec<u64> = ids.iter().map(|&id| phf.key_hash(id)).collect();
            for b in order {
                let keys = &members[start[b as usize] as usize..start[b as usize + 1] as usize];
                let found = (0..=u16::MAX).find(|&p| {
                    here.clear();
                    for &k in keys {
                        let s = phf.slot_of_hash(hashes[k as usize], p);
                        if taken[s] || here.contains(&s) {
                            return false;
                        }
                        here.push(s);
                    }
                    true
                });
                let Some(p) = found else {
                    seed = fmix64(seed.wrapping_add(1));
                    continue 'attempt;
                };
                pilots[b as usize] = p;
                for (&k, &s) in keys.iter().zip(&here) {
                    taken[s] = true;
                    positions[k as usize] = s;
                }
            }
            return Ok((phf, pilots, positions));
        }
        Err(BuildError::TooLarge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(x: u64, n: u32) -> usize {
        ((u128::from(x) * u128::from(n)) >> 64) as usize
    }

    /// The 32-bit targets' range reduction equals the 128-bit product's.
    #[test]
    fn scale_split_equals_the_wide_product_at_the_edges() {
        for (x, n) in [
            (u64::MAX, u32::MAX),
            (u64::MAX, 1),
            (0, u32::MAX),
            (1 << 63, 3),
        ] {
            assert_eq!(scale_split(x, n), wide(x, n), "{x} {n}");
        }
    }

    /// The placement the builder falls back on places every key in a slot
    /// of its own, whatever load it ends at (here asked for none spare). At
    /// 10 M keys and 99 % load every seed can fail — the late 3-key buckets
    /// find few free slot triples — and the fallback to a lower load is what
    /// lets that publish succeed (`keygate drill --scenario new-keys --keys
    /// 10000000`, by hand).
    #[cfg(feature = "std")]
    #[test]
    fn the_fallback_placement_puts_every_key_in_its_own_slot() {
        let records: alloc::vec::Vec<_> = (0u32..5000)
            .map(|i| {
                builder::RecordSpec::active(crate::key::Digest::of(&i.to_le_bytes()), "p", &[])
            })
            .collect();
        let (phf, _, positions) = builder::place_at_some_load_for_test(&records, 100).unwrap();
        assert!(phf.slots as usize >= records.len());
        let mut seen = alloc::collections::BTreeSet::new();
        assert!(
            positions.iter().all(|p| seen.insert(*p)),
            "every key in its own slot"
        );
    }

    proptest::proptest! {
        #[test]
        fn prop_scale_split_equals_the_wide_product(x: u64, n: u32) {
            proptest::prop_assert_eq!(scale_split(x, n), wide(x, n));
        }
    }
}
