//! Updates (`.kgr`, "the update"): every change since a base snapshot —
//! the keys revoked since it, as an exact filter over that snapshot's key
//! ids, and (format version 2) the keys added or changed since it, as a
//! record table read before the snapshot's.
//!
//! The revoked set R ⊆ U (U = key ids of the base snapshot) is encoded as a
//! two-level cascade, the construction of Mozilla's CRLite "clubcard":
//!
//! 1. an approximate filter for R with `f`-bit fingerprints (false positive
//!    rate 2^-f over U∖R), then
//! 2. an exact 1-bit function over F = R ∪ {ids of U∖R that level 1 admits}:
//!    1 for revoked, 0 for not.
//!
//! Every id in U that passes level 1 is in F, so the answer is exact on all of
//! U: no legitimate key is ever refused by the filter. Both levels are 3-wise
//! XOR tables (the xor-filter construction) rather than Bloom filters: a Bloom
//! level costs 1.44 × log2(1/ε) bits per element, an XOR level 1.23 × log2(1/ε),
//! and the last level needs no filter at all — so the whole update lands near
//! 1.3× the information-theoretic bound where a Bloom cascade is ~1.7×
//! (docs/PERFORMANCE.md has the measured figures). Key ids are uniform random,
//! so table positions come from the id and a per-level seed by one mixing step.

use core::fmt;

use crate::artifact::{read_name, Fields, SIGNATURE_LEN};
use crate::error::Error;
use crate::key::{Digest, KeyId};
use crate::names::{Artifact, Name, SignerId};
use crate::snapshot::{fmix64, scale, Record, Table};
use crate::trust::TrustSet;

const MAGIC: &[u8; 4] = b"KGR\0";
/// Revocations only.
const FORMAT_V1: u16 = 1;
/// Revocations and a table of added or changed keys.
const FORMAT_V2: u16 = 2;
/// Bytes of the fixed header of format version 1.
pub const HEADER_LEN: usize = 192;
/// Bytes of the fixed header of format version 2.
pub const HEADER_LEN_V2: usize = 256;

/// Named offsets of the header (both versions share the first 192 bytes).
mod at {
    pub const VERSION: usize = 4;
    pub const HEADER_LEN: usize = 6;
    pub const BASE: usize = 8;
    pub const SEQUENCE: usize = 16;
    pub const CREATED: usize = 24;
    pub const VALID_UNTIL: usize = 32;
    pub const SIGNER: usize = 40;
    pub const UNIVERSE: usize = 56;
    pub const REVOKED: usize = 60;
    pub const KEYSET: usize = 64;
    pub const LEVEL_COUNT: usize = 128;
    pub const LEVELS: usize = 136;
    // Version 2: the record table.
    pub const RECORDS: usize = 192;
    pub const IMPORTED: usize = 196;
    pub const BUCKETS: usize = 200;
    pub const SLOTS: usize = 204;
    pub const PRINCIPALS: usize = 208;
    pub const SCOPES: usize = 212;
    pub const SEED: usize = 216;
    pub const TABLE_AT: usize = 224;
}
/// Read slack after each level's table so a value read never needs a bound check.
const PAD: usize = 3;

const KIND_FILTER: u8 = 1;
const KIND_EXACT: u8 = 2;

/// One level of the cascade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Level {
    kind: u8,
    bits: u8,
    block_len: u32,
    seed: u64,
}

impl Level {
    #[inline]
    fn cells(&self) -> usize {
        3 * self.block_len as usize
    }

    #[inline]
    fn data_len(&self) -> usize {
        (self.cells() * usize::from(self.bits)).div_ceil(8) + PAD
    }

    #[inline]
    fn mask(&self) -> u32 {
        (1u32 << self.bits) - 1
    }

    /// The three cells and the fingerprint of `id` at this level.
    #[inline]
    fn hash(&self, id: u128) -> ([usize; 3], u32) {
        let lo = id as u64;
        let hi = (id >> 64) as u64;
        let h = fmix64(lo ^ self.seed);
        let r = |x: u64| scale(x, self.block_len);
        let b = self.block_len as usize;
        let cells = [r(h), b + r(h.rotate_left(21)), 2 * b + r(h.rotate_left(42))];
        let fp = (fmix64(hi ^ self.seed.rotate_left(32)) >> 32) as u32 & self.mask();
        (cells, fp)
    }

    #[inline]
    fn read(&self, data: &[u8], cell: usize) -> u32 {
        let bit = cell * usize::from(self.bits);
        let at = bit / 8;
        let w = data
            .get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        (w >> (bit % 8)) & self.mask()
    }

    #[inline]
    fn query(&self, data: &[u8], id: u128) -> bool {
        let ([a, b, c], fp) = self.hash(id);
        let v = self.read(data, a) ^ self.read(data, b) ^ self.read(data, c);
        match self.kind {
            KIND_FILTER => v == fp,
            _ => v & 1 == 1,
        }
    }
}

/// A revocation update's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationHeader {
    /// Keyset name.
    pub keyset: Name,
    /// Snapshot version the update is computed against.
    pub base_version: u64,
    /// Sequence number, increasing per base snapshot.
    pub sequence: u64,
    /// Creation time (unix seconds).
    pub created_at: u64,
    /// Freshness bound (unix seconds).
    pub valid_until: u64,
    /// Who signed it.
    pub signer: SignerId,
    /// |U|: keys in the base snapshot.
    pub universe_count: u32,
    /// |R|: keys revoked since the base snapshot.
    pub revoked_count: u32,
    /// Format version: 1 (revocations only) or 2 (with records).
    pub format_version: u16,
    /// Keys added or changed since the base snapshot, carried as records.
    pub record_count: u32,
    level_count: u8,
    levels: [Level; 2],
    table: Table,
}

impl RevocationHeader {
    #[inline]
    fn levels(&self) -> &[Level] {
        &self.levels[..usize::from(self.level_count)]
    }

    /// Bytes of the encoded revoked set (all levels, without header and signature).
    pub fn filter_len(&self) -> usize {
        self.levels().iter().map(Level::data_len).sum()
    }

    fn header_len(&self) -> usize {
        if self.format_version == FORMAT_V1 {
            HEADER_LEN
        } else {
            HEADER_LEN_V2
        }
    }

    /// Where the signed body ends.
    fn body_end(&self) -> usize {
        if self.record_count == 0 {
            self.header_len() + self.filter_len()
        } else {
            self.table.end()
        }
    }

    fn file_len(&self) -> usize {
        self.body_end() + SIGNATURE_LEN
    }

    /// The added and changed keys' table, when there are any.
    #[inline]
    pub(crate) fn table(&self) -> Option<&Table> {
        (self.record_count != 0).then_some(&self.table)
    }
}

/// A parsed revocation update: a view over its bytes, no allocation.
#[derive(Clone, Copy)]
pub struct RevocationView<'a> {
    bytes: &'a [u8],
    header: RevocationHeader,
}

impl fmt::Debug for RevocationView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationView")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<'a> RevocationView<'a> {
    /// Parses `bytes` and checks keyset and signature against `trust`.
    pub fn new(bytes: &'a [u8], trust: &TrustSet) -> Result<Self, Error> {
        let v = Self::parse_unverified(bytes)?;
        if v.header.keyset != *trust.keyset() {
            return Err(Error::WrongKeyset {
                artifact: Artifact::Revocations,
                expected: *trust.keyset(),
                found: v.header.keyset,
            });
        }
        let at = bytes.len() - SIGNATURE_LEN;
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&bytes[at..]);
        trust.check(Artifact::Revocations, &v.header.signer, &bytes[..at], &sig)?;
        Ok(v)
    }

    /// Parses structure without checking the signature (for inspection only).
    pub fn parse_unverified(bytes: &'a [u8]) -> Result<Self, Error> {
        let f = Fields {
            bytes,
            artifact: Artifact::Revocations,
        };
        let header_len = match f.preamble(MAGIC, &[FORMAT_V1, FORMAT_V2])? {
            FORMAT_V1 => HEADER_LEN,
            _ => HEADER_LEN_V2,
        };
        f.need(header_len, "header")?;
        let fv = f.u16(at::VERSION);
        if usize::from(f.u16(at::HEADER_LEN)) != header_len {
            return Err(f.malformed("header length"));
        }
        if bytes[129..136]
            .iter()
            .chain(&bytes[168..192])
            .any(|b| *b != 0)
        {
            return Err(f.malformed("reserved header bytes not zero"));
        }
        let level_count = bytes[at::LEVEL_COUNT];
        let mut levels = [Level::default(); 2];
        for (i, l) in levels.iter_mut().enumerate() {
            let at = at::LEVELS + 16 * i;
            *l = Level {
                seed: f.u64(at),
                block_len: f.u32(at + 8),
                bits: bytes[at + 12],
                kind: bytes[at + 13],
            };
            let used = i < usize::from(level_count);
            if !used && (*l != Level::default() || bytes[at + 14..at + 16] != [0, 0]) {
                return Err(f.malformed("unused level descriptor not zero"));
            }
            if used && bytes[at + 14..at + 16] != [0, 0] {
                return Err(f.malformed("reserved level bytes not zero"));
            }
        }
        let kinds = (levels[0].kind, levels[1].kind);
        let shape_ok = match level_count {
            0 => true,
            1 => kinds.0 == KIND_EXACT && levels[0].bits == 1,
            2 => {
                kinds == (KIND_FILTER, KIND_EXACT)
                    && (1..=16).contains(&levels[0].bits)
                    && levels[1].bits == 1
            }
            _ => false,
        };
        let too_big = levels.iter().any(|l| l.block_len > (1 << 28));
        if !shape_ok
            || too_big
            || levels[..usize::from(level_count)]
                .iter()
                .any(|l| l.block_len == 0)
        {
            return Err(f.malformed("bad cascade levels"));
        }
        let filter_end = header_len
            + levels[..usize::from(level_count)]
                .iter()
                .map(Level::data_len)
                .sum::<usize>();
        let (record_count, table) = if fv == FORMAT_V2 {
            if bytes[228..256].iter().any(|b| *b != 0) {
                return Err(f.malformed("reserved header bytes not zero"));
            }
            let t = Table {
                slots_at: f.u32(at::TABLE_AT) as usize,
                slot_count: f.u32(at::SLOTS),
                bucket_count: f.u32(at::BUCKETS),
                hash_seed: f.u64(at::SEED),
                principals_len: f.u32(at::PRINCIPALS),
                scopes_len: f.u32(at::SCOPES),
                record_count: f.u32(at::RECORDS),
                imported_count: f.u32(at::IMPORTED),
            };
            if t.record_count == 0 {
                if t != Table::default() {
                    return Err(f.malformed("table fields without records"));
                }
            } else if t.slots_at != filter_end.next_multiple_of(64)
                || bytes
                    .get(filter_end..t.slots_at)
                    .is_none_or(|pad| pad.iter().any(|b| *b != 0))
            {
                // The records start on the first 64-byte boundary after the
                // filter, zero padded: one cache line each in a reader's copy.
                return Err(f.malformed("record table not where the header puts it"));
            }
            (t.record_count, t)
        } else {
            (0, Table::default())
        };
        let header = RevocationHeader {
            base_version: f.u64(at::BASE),
            sequence: f.u64(at::SEQUENCE),
            created_at: f.u64(at::CREATED),
            valid_until: f.u64(at::VALID_UNTIL),
            signer: SignerId(f.array(at::SIGNER)),
            universe_count: f.u32(at::UNIVERSE),
            revoked_count: f.u32(at::REVOKED),
            keyset: read_name(&f.array(at::KEYSET), Artifact::Revocations)?,
            format_version: fv,
            record_count,
            level_count,
            levels,
            table,
        };
        if header.revoked_count > header.universe_count {
            return Err(f.malformed("more revoked keys than keys"));
        }
        if (header.revoked_count == 0) != (level_count == 0) {
            return Err(f.malformed("levels do not match the revoked count"));
        }
        f.need(filter_end, "filter levels")?;
        if let Some(t) = header.table() {
            t.check_bounds(&f)?;
            t.validate(&f)?;
        }
        f.need(header.file_len(), "signature")?;
        if bytes.len() != header.file_len() {
            return Err(f.malformed("bytes after the signature"));
        }
        Ok(Self { bytes, header })
    }

    /// The header fields.
    pub fn header(&self) -> &RevocationHeader {
        &self.header
    }

    /// Is `id` revoked? Exact for every id in the base snapshot; arbitrary for
    /// other ids (they are unknown to the snapshot anyway).
    pub fn contains(&self, id: &KeyId) -> bool {
        contains_in(self.bytes, &self.header, id)
    }

    /// The added or changed key whose full digest is `digest`, if the
    /// update carries it (compared in constant time).
    pub fn lookup(&self, digest: &Digest) -> Option<Record<'a>> {
        self.header.table()?.lookup(self.bytes, digest)
    }

    /// Every added or changed key the update carries.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + 'a {
        let (t, bytes) = (self.header.table().copied(), self.bytes);
        t.into_iter().flat_map(move |t| t.records(bytes))
    }
}

/// [`RevocationView::contains`] over checked bytes and their header, without
/// copying the header into a view (the verifier's hot path).
#[inline]
pub(crate) fn contains_in(bytes: &[u8], h: &RevocationHeader, id: &KeyId) -> bool {
    let id = id.to_u128();
    let mut at = h.header_len();
    for l in h.levels() {
        let data = bytes.get(at..at + l.data_len()).unwrap_or(&[]);
        if !l.query(data, id) {
            return false;
        }
        at += l.data_len();
    }
    h.level_count != 0
}

#[cfg(feature = "std")]
pub use builder::{build_update, build_update_with, UpdateBuildError, UpdateSpec};

#[cfg(feature = "std")]
mod builder {
    use alloc::vec::Vec;
    use std::collections::HashSet;

    use super::*;
    use crate::snapshot::{encode_table, BuildError, RecordSpec, DEFAULT_LOAD_PERCENT};
    use crate::trust::Signer;

    /// Why an update could not be built.
    #[non_exhaustive]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum UpdateBuildError {
        /// A revoked id is not in the universe (the base snapshot's ids).
        NotInUniverse(KeyId),
        /// More keys than the format holds.
        TooLarge,
        /// The built filter disagreed with the revoked set on this id (a bug:
        /// nothing was signed).
        NotExact(KeyId),
        /// The added or changed keys could not be encoded.
        Records(BuildError),
    }

    impl fmt::Display for UpdateBuildError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::NotInUniverse(id) => {
                    write!(f, "revoked key {id} is not in the base snapshot")
                }
                Self::TooLarge => f.write_str("too many keys for one update"),
                Self::NotExact(id) => write!(f, "filter not exact for key {id}; nothing signed"),
                Self::Records(e) => write!(f, "added or changed keys: {e}"),
            }
        }
    }

    impl std::error::Error for UpdateBuildError {}

    /// Header values of an update to build.
    #[derive(Clone, Copy, Debug)]
    pub struct UpdateSpec {
        /// Keyset name.
        pub keyset: Name,
        /// Snapshot version computed against.
        pub base_version: u64,
        /// Sequence number.
        pub sequence: u64,
        /// Creation time.
        pub created_at: u64,
        /// Freshness bound.
        pub valid_until: u64,
    }

    /// Expected cells for an XOR table of `n` keys.
    fn cells_for(n: usize) -> usize {
        3 * block_len_for(n) as usize
    }

    fn block_len_for(n: usize) -> u32 {
        ((n as u64 * 123).div_ceil(100) + 32).div_ceil(3) as u32
    }

    /// Builds an XOR table mapping each id to `value(id)` (`bits` wide). Retries
    /// with a new seed until peeling succeeds (expected about once).
    fn build_level(
        ids: &[u128],
        bits: u8,
        kind: u8,
        value: impl Fn(u128, u32) -> u32,
    ) -> (Level, Vec<u8>) {
        let block_len = block_len_for(ids.len());
        let cells = 3 * block_len as usize;
        let mut seed = 0x6b65_7967_6174_6521u64; // "keygate!"
        loop {
            let level = Level {
                kind,
                bits,
                block_len,
                seed,
            };
            let mut count = alloc::vec![0u32; cells];
            let mut xor = alloc::vec![0u64; cells];
            let hashes: Vec<[usize; 3]> = ids.iter().map(|id| level.hash(*id).0).collect();
            for (i, hs) in hashes.iter().enumerate() {
                for &c in hs {
                    count[c] += 1;
                    xor[c] ^= i as u64;
                }
            }
            let mut queue: Vec<usize> = (0..cells).filter(|&c| count[c] == 1).collect();
            let mut stack: Vec<(usize, usize)> = Vec::with_capacity(ids.len());
            while let Some(c) = queue.pop() {
                if count[c] != 1 {
                    continue;
                }
                let k = xor[c] as usize;
                stack.push((k, c));
                for &o in &hashes[k] {
                    count[o] -= 1;
                    xor[o] ^= k as u64;
                    if count[o] == 1 {
                        queue.push(o);
                    }
                }
            }
            if stack.len() == ids.len() {
                let mut vals = alloc::vec![0u32; cells];
                for &(k, c) in stack.iter().rev() {
                    let (hs, fp) = level.hash(ids[k]);
                    let want = value(ids[k], fp);
                    let others = hs.iter().filter(|&&h| h != c).fold(0, |a, &h| a ^ vals[h]);
                    vals[c] = want ^ others;
                }
                let mut data = alloc::vec![0u8; level.data_len()];
                for (cell, v) in vals.iter().enumerate() {
                    let bit = cell * usize::from(bits);
                    for b in 0..usize::from(bits) {
                        if v >> b & 1 == 1 {
                            data[(bit + b) / 8] |= 1 << ((bit + b) % 8);
                        }
                    }
                }
                return (level, data);
            }
            seed = fmix64(seed.wrapping_add(1));
        }
    }

    /// Encodes `revoked` ⊆ `universe` and signs it (format version 1).
    /// Checks exactness over all of `universe` before signing.
    pub fn build_update(
        spec: &UpdateSpec,
        universe: &[KeyId],
        revoked: &[KeyId],
        signer: &Signer,
    ) -> Result<Vec<u8>, UpdateBuildError> {
        build_update_with(spec, universe, revoked, Vec::new(), signer)
    }

    /// [`build_update`] that also carries `records`: keys added since the
    /// base snapshot or changed in it (status, times, scopes, principal),
    /// which a verifier reads before the snapshot. Format version 2 when
    /// there are any, version 1 (readable by every keygate) when not.
    pub fn build_update_with(
        spec: &UpdateSpec,
        universe: &[KeyId],
        revoked: &[KeyId],
        mut records: Vec<RecordSpec>,
        signer: &Signer,
    ) -> Result<Vec<u8>, UpdateBuildError> {
        let u_count = u32::try_from(universe.len()).map_err(|_| UpdateBuildError::TooLarge)?;
        let r_set: HashSet<KeyId> = revoked.iter().copied().collect();
        // Nothing revoked (an update of added keys only): no filter, and
        // nothing of the universe to look at — an update costs what it carries.
        let (r, not_r): (Vec<u128>, Vec<u128>) = if r_set.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let in_u: HashSet<KeyId> = universe.iter().copied().collect();
            if let Some(id) = r_set.iter().find(|id| !in_u.contains(id)) {
                return Err(UpdateBuildError::NotInUniverse(*id));
            }
            (
                r_set.iter().map(|id| id.to_u128()).collect(),
                in_u.iter()
                    .filter(|id| !r_set.contains(id))
                    .map(|id| id.to_u128())
                    .collect(),
            )
        };
        let mut levels: Vec<(Level, Vec<u8>)> = Vec::new();
        if !r.is_empty() {
            // Pick the fingerprint width minimising expected total bits:
            // cells(R)·f + cells(R + |U∖R|·2^-f), f = 0 meaning no filter level.
            let best = (0u8..=16)
                .min_by_key(|&f| {
                    let fps = (not_r.len() as f64 * (-(f64::from(f))).exp2()) as usize;
                    let l1 = if f == 0 {
                        0
                    } else {
                        cells_for(r.len()) * usize::from(f)
                    };
                    l1 + cells_for(r.len() + if f == 0 { not_r.len() } else { fps })
                })
                .unwrap_or(0);
            let mut passing: Vec<(u128, bool)> = r.iter().map(|&id| (id, true)).collect();
            if best > 0 {
                let (l1, d1) = build_level(&r, best, KIND_FILTER, |_, fp| fp);
                passing.extend(
                    not_r
                        .iter()
                        .filter(|&&id| l1.query(&d1, id))
                        .map(|&id| (id, false)),
                );
                levels.push((l1, d1));
            } else {
                passing.extend(not_r.iter().map(|&id| (id, false)));
            }
            let ids: Vec<u128> = passing.iter().map(|p| p.0).collect();
            let revoked_bit: std::collections::HashMap<u128, bool> = passing.into_iter().collect();
            let (l2, d2) = build_level(&ids, 1, KIND_EXACT, |id, _| u32::from(revoked_bit[&id]));
            levels.push((l2, d2));
        }
        let table = if records.is_empty() {
            None
        } else {
            Some(
                encode_table(&mut records, DEFAULT_LOAD_PERCENT)
                    .map_err(UpdateBuildError::Records)?,
            )
        };
        let (version, header_len) = match table {
            None => (FORMAT_V1, HEADER_LEN),
            Some(_) => (FORMAT_V2, HEADER_LEN_V2),
        };
        let mut out = alloc::vec![0u8; header_len];
        out[..4].copy_from_slice(MAGIC);
        out[at::VERSION..at::VERSION + 2].copy_from_slice(&version.to_le_bytes());
        out[at::HEADER_LEN..at::HEADER_LEN + 2].copy_from_slice(&(header_len as u16).to_le_bytes());
        out[8..16].copy_from_slice(&spec.base_version.to_le_bytes());
        out[16..24].copy_from_slice(&spec.sequence.to_le_bytes());
        out[24..32].copy_from_slice(&spec.created_at.to_le_bytes());
        out[32..40].copy_from_slice(&spec.valid_until.to_le_bytes());
        out[40..56].copy_from_slice(&signer.id().0);
        out[56..60].copy_from_slice(&u_count.to_le_bytes());
        out[60..64].copy_from_slice(&(r.len() as u32).to_le_bytes());
        out[64..128].copy_from_slice(&spec.keyset.field());
        out[at::LEVEL_COUNT] = levels.len() as u8;
        for (i, (l, _)) in levels.iter().enumerate() {
            let at = at::LEVELS + 16 * i;
            out[at..at + 8].copy_from_slice(&l.seed.to_le_bytes());
            out[at + 8..at + 12].copy_from_slice(&l.block_len.to_le_bytes());
            out[at + 12] = l.bits;
            out[at + 13] = l.kind;
        }
        for (_, d) in &levels {
            out.extend_from_slice(d);
        }
        if let Some(t) = &table {
            let table_at = out.len().next_multiple_of(64);
            out.resize(table_at, 0);
            let m = &t.meta;
            let mut put = |at: usize, v: &[u8]| out[at..at + v.len()].copy_from_slice(v);
            put(at::RECORDS, &m.record_count.to_le_bytes());
            put(at::IMPORTED, &m.imported_count.to_le_bytes());
            put(at::BUCKETS, &m.bucket_count.to_le_bytes());
            put(at::SLOTS, &m.slot_count.to_le_bytes());
            put(at::PRINCIPALS, &m.principals_len.to_le_bytes());
            put(at::SCOPES, &m.scopes_len.to_le_bytes());
            put(at::SEED, &m.hash_seed.to_le_bytes());
            let table_at = u32::try_from(table_at).map_err(|_| UpdateBuildError::TooLarge)?;
            put(at::TABLE_AT, &table_at.to_le_bytes());
            t.append_to(&mut out);
        }
        // Exactness over all of U, before anything is signed.
        let unsigned = {
            let mut o = out.clone();
            o.extend_from_slice(&[0u8; SIGNATURE_LEN]);
            o
        };
        let view =
            RevocationView::parse_unverified(&unsigned).map_err(|_| UpdateBuildError::TooLarge)?;
        if !r_set.is_empty() {
            for id in universe {
                if view.contains(id) != r_set.contains(id) {
                    return Err(UpdateBuildError::NotExact(*id));
                }
            }
        }
        let sig = signer.sign(Artifact::Revocations, &out);
        out.extend_from_slice(&sig);
        Ok(out)
    }
}
