//! The Verifier and its Verdicts: the hot path.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use arc_swap::ArcSwap;
use zerocopy::IntoBytes;

use crate::error::Error;
use crate::key::{self, Digest, KeyId, MAX_IMPORTED_LEN, MIN_IMPORTED_LEN};
use crate::names::Artifact;
use crate::outcome::Outcome;
use crate::revocation::{self, RevocationHeader, RevocationView};
use crate::snapshot::{SnapshotHeader, SnapshotView, Status, MAX_PRINCIPAL_LEN, MAX_SCOPE_LEN};
use crate::trust::TrustSet;

/// The system clock in unix seconds (0 before 1970).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A principal name copied out of the snapshot, so a verdict outlives reloads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    len: u8,
    buf: [u8; MAX_PRINCIPAL_LEN],
}

impl Principal {
    const EMPTY: Self = Self {
        len: 0,
        buf: [0; MAX_PRINCIPAL_LEN],
    };

    /// Copies a snapshot principal (≤ 128 bytes by format) into this
    /// (zeroed) buffer. A byte loop: names are short, and a variable-length
    /// `copy_from_slice` is a libc call. (Eight-byte words plus an
    /// overlapping last word saved no instructions and measured slower: the
    /// verdict is read back soon after, across the overlapping stores.)
    ///
    /// Called once per verdict, on [`Principal::EMPTY`]: the bytes past the
    /// name stay zero, which [`Principal::padded`] promises.
    #[inline]
    fn set(&mut self, s: &[u8]) {
        let n = s.len().min(MAX_PRINCIPAL_LEN);
        for (d, b) in self.buf.iter_mut().zip(&s[..n]) {
            *d = *b;
        }
        self.len = n as u8;
    }

    /// The name's bytes zero-padded to [`MAX_PRINCIPAL_LEN`], and its
    /// length: a fixed-size copy (the C API's verdict) with no UTF-8 check.
    pub fn padded(&self) -> (&[u8; MAX_PRINCIPAL_LEN], usize) {
        (&self.buf, usize::from(self.len))
    }

    /// The name (empty when no key was found).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to one verify: the outcome and what it was decided on. Owns its
/// data; holds no secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The outcome.
    pub outcome: Outcome,
    /// Id of the presented key (`None` when malformed or nothing to look in).
    pub key_id: Option<KeyId>,
    /// The key's principal (empty unless the key was found).
    pub principal: Principal,
    /// The key's expiry (unix seconds).
    pub expires_at: Option<u64>,
    /// When the key was deprecated.
    pub deprecated_at: Option<u64>,
    /// End of its grace window.
    pub sunset_at: Option<u64>,
    /// Snapshot version decided on (0: none installed).
    pub snapshot_version: u64,
    /// Revocation update sequence decided on (0: none applied).
    pub revocation_seq: u64,
    /// The snapshot is past its valid-until but within the staleness grace.
    pub stale: bool,
    /// The scopes the key holds (empty unless the key was found); names
    /// from [`Verifier::scope_names`].
    pub scopes: Scopes,
}

/// The names of a key's scopes ([`Verifier::scope_names`]): shared, so
/// handing them to a request is an `Arc` clone.
pub type ScopeNames = Arc<[Box<str>]>;

/// The scopes a key holds: a set over the scope table of the artifact its
/// record was read from (the snapshot, or the update for a key the update
/// adds or changes). Resolve the names with [`Verifier::scope_names`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes {
    mask: u64,
    from_update: bool,
}

impl Scopes {
    /// How many scopes the key holds.
    pub fn len(&self) -> usize {
        self.mask.count_ones() as usize
    }

    /// The key holds no scope.
    pub fn is_empty(&self) -> bool {
        self.mask == 0
    }
}

impl Verdict {
    /// What a gateway answers for this verdict (the gateway contract, see
    /// [`Answer`](crate::Answer)).
    pub fn answer(&self) -> crate::Answer {
        crate::Answer::for_outcome(self.outcome, self.deprecated_at, self.sunset_at)
    }

    fn bare(outcome: Outcome, snapshot_version: u64, revocation_seq: u64) -> Self {
        Self {
            outcome,
            key_id: None,
            principal: Principal::EMPTY,
            expires_at: None,
            deprecated_at: None,
            sunset_at: None,
            snapshot_version,
            revocation_seq,
            stale: false,
            scopes: Scopes {
                mask: 0,
                from_update: false,
            },
        }
    }
}

/// What to do when the snapshot is past its valid-until.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staleness {
    /// Answer `stale` as soon as the snapshot expires.
    FailClosed,
    /// Keep answering, with `stale` set, for this many seconds; then answer `stale`.
    AcceptFor(u64),
}

impl Default for Staleness {
    /// Accept for 24 h past valid-until.
    fn default() -> Self {
        Self::AcceptFor(86_400)
    }
}

/// Verifier settings.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Config {
    /// Policy past a snapshot's valid-until.
    pub staleness: Staleness,
}

impl Config {
    /// Sets the staleness policy.
    pub fn staleness(mut self, s: Staleness) -> Self {
        self.staleness = s;
        self
    }
}

/// What an install did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// The artifact replaced the previous one (versions or sequences shown).
    Updated {
        /// Before (0: none).
        from: u64,
        /// After.
        to: u64,
    },
    /// The same version was already installed: nothing changed.
    Unchanged,
}

/// A 64-byte aligned line, so each snapshot record is one cache line in memory.
#[derive(
    zerocopy::IntoBytes,
    zerocopy::FromBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
    Clone,
    Copy,
)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A snapshot's bytes in memory whose start is 64-byte aligned. On unix, an
/// anonymous mapping with transparent huge pages requested: 2 MB pages cut
/// both the page faults of the copy and the TLB misses of random lookups.
enum AlignedBytes {
    #[cfg(unix)]
    Mapped(memmap2::Mmap),
    Heap(Vec<Line>),
}

impl AlignedBytes {
    fn copy_of(bytes: &[u8]) -> Self {
        #[cfg(unix)]
        if bytes.len() >= 2 << 20 {
            if let Ok(mut m) = memmap2::MmapMut::map_anon(bytes.len()) {
                #[cfg(target_os = "linux")]
                let _ = m.advise(memmap2::Advice::HugePage);
                m.copy_from_slice(bytes);
                if let Ok(m) = m.make_read_only() {
                    return Self::Mapped(m);
                }
            }
        }
        let mut lines = Vec::with_capacity(bytes.len().div_ceil(64));
        for chunk in bytes.chunks(64) {
            let mut l = Line([0; 64]);
            l.0[..chunk.len()].copy_from_slice(chunk);
            lines.push(l);
        }
        Self::Heap(lines)
    }

    #[inline]
    fn bytes(&self, len: usize) -> &[u8] {
        match self {
            #[cfg(unix)]
            Self::Mapped(m) => &m[..len],
            Self::Heap(lines) => &lines.as_bytes()[..len],
        }
    }
}

/// An installed snapshot: its bytes, copied once into cache-line-aligned memory.
struct Snapshot {
    lines: AlignedBytes,
    len: usize,
    header: SnapshotHeader,
}

impl Snapshot {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self.lines.bytes(self.len)
    }
}

/// Checks a snapshot: signature (one pass of SHA-256) and record table (one
/// pass of validation). Large ones run the two passes on two threads.
fn check_snapshot(bytes: &[u8], trust: &TrustSet) -> Result<SnapshotHeader, Error> {
    // wasm32 has no threads to spawn.
    if bytes.len() < 4 << 20 || cfg!(target_family = "wasm") {
        return SnapshotView::new(bytes, trust).map(|v| *v.header());
    }
    let (signed, structure) = std::thread::scope(|s| {
        let sig = s.spawn(|| SnapshotView::check_signed(bytes, trust));
        let structure = SnapshotView::parse_unverified(bytes).map(|v| *v.header());
        let signed = sig.join().unwrap_or(Err(Error::Malformed {
            artifact: Artifact::Snapshot,
            reason: "signature check failed",
        }));
        (signed, structure)
    });
    let header = signed?;
    structure?;
    Ok(header)
}

/// An installed update: its bytes copied into cache-line-aligned memory
/// (its record table starts on a 64-byte boundary of the file, so each
/// record is one line), and its header.
struct Revocations {
    lines: AlignedBytes,
    len: usize,
    header: RevocationHeader,
}

impl Revocations {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self.lines.bytes(self.len)
    }
}

#[derive(Clone)]
struct State {
    trust: TrustSet,
    snapshot: Option<Arc<Snapshot>>,
    revocations: Option<Arc<Revocations>>,
    /// Fresh until: the snapshot's valid-until, or the applied update's if
    /// earlier. An update that stops arriving (a frozen origin withholding
    /// revocations) makes the keys it could have revoked stale, not valid.
    valid_until: u64,
}

impl State {
    fn new(
        trust: TrustSet,
        snapshot: Option<Arc<Snapshot>>,
        revocations: Option<Arc<Revocations>>,
    ) -> Self {
        let snap = snapshot.as_ref().map_or(0, |s| s.header.valid_until);
        let valid_until = revocations
            .as_ref()
            .map_or(snap, |r| snap.min(r.header.valid_until));
        Self {
            trust,
            snapshot,
            revocations,
            valid_until,
        }
    }
}

/// The highest trust version, snapshot version and update sequence a
/// verifier has installed. A gateway persists it ([`HighWater::to_text`]) and
/// gives it back after a restart ([`Verifier::set_floor`]), so an origin
/// cannot roll it back to an older signed artifact across the restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HighWater {
    /// Trust bundle version.
    pub trust_version: u64,
    /// Snapshot version.
    pub snapshot_version: u64,
    /// Update sequence, for the snapshot version it was built against.
    pub update_seq: u64,
    /// The snapshot version `update_seq` belongs to.
    pub update_base: u64,
}

/// Why a high-water state file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// A line is not `name value(s)` of the format, or a number is bad.
    Malformed {
        /// 1-based line.
        line: usize,
    },
    /// The file is for another keyset.
    WrongKeyset {
        /// The keyset in the file.
        found: String,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { line } => write!(f, "state file line {line} is malformed"),
            Self::WrongKeyset { found } => write!(f, "state file is for keyset '{found}'"),
        }
    }
}

impl std::error::Error for StateError {}

const STATE_MAGIC: &str = "keygate-state 1";

impl HighWater {
    /// The later of two marks, field by field (the update pair together).
    pub fn max(self, o: HighWater) -> HighWater {
        let (update_base, update_seq) =
            (self.update_base, self.update_seq).max((o.update_base, o.update_seq));
        HighWater {
            trust_version: self.trust_version.max(o.trust_version),
            snapshot_version: self.snapshot_version.max(o.snapshot_version),
            update_seq,
            update_base,
        }
    }

    /// The state file text for keyset `keyset`: a few `name value` lines.
    pub fn to_text(&self, keyset: &str) -> String {
        format!(
            "{STATE_MAGIC}\nkeyset {keyset}\ntrust {}\nsnapshot {}\nupdate {} {}\n",
            self.trust_version, self.snapshot_version, self.update_base, self.update_seq
        )
    }

    /// Parses [`HighWater::to_text`] output for keyset `keyset`. The keyset
    /// line is required: a file that names no keyset is not trusted for one.
    pub fn parse(text: &str, keyset: &str) -> Result<HighWater, StateError> {
        let mut hw = HighWater::default();
        let mut named = false;
        let mut lines = text.lines().enumerate();
        if lines.next().map(|l| l.1) != Some(STATE_MAGIC) {
            return Err(StateError::Malformed { line: 1 });
        }
        for (i, l) in lines {
            let bad = StateError::Malformed { line: i + 1 };
            let mut w = l.split(' ');
            let num = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok());
            match (w.next(), w.next(), w.next(), w.next()) {
                (Some("keyset"), Some(k), None, None) if k == keyset => named = true,
                (Some("keyset"), Some(k), None, None) => {
                    return Err(StateError::WrongKeyset { found: k.into() })
                }
                (Some("trust"), v, None, None) => hw.trust_version = num(v).ok_or(bad)?,
                (Some("snapshot"), v, None, None) => hw.snapshot_version = num(v).ok_or(bad)?,
                (Some("update"), b, s, None) => {
                    hw.update_base = num(b).ok_or(bad.clone())?;
                    hw.update_seq = num(s).ok_or(bad)?;
                }
                _ => return Err(bad),
            }
        }
        if !named {
            return Err(StateError::Malformed { line: 2 });
        }
        Ok(hw)
    }
}

/// One thread's per-outcome counters for one verifier. Only the owning thread
/// writes them (a plain load + store: no locked instruction on the hot path);
/// `stats()` reads them from any thread.
#[repr(align(128))]
#[derive(Default)]
struct ThreadCounters {
    outcomes: [AtomicU64; 9],
}

impl ThreadCounters {
    fn bump(&self, o: Outcome) {
        let c = &self.outcomes[o.index()];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// A thread's view of the verifier it used last: the state it loaded (valid
/// while the generation is unchanged) and its counters. Reading the
/// generation is one plain load; arc-swap's own load would cost two locked
/// instructions per verify, which measured as the largest overhead left.
struct ThreadCache {
    verifier: u64,
    generation: u64,
    state: Arc<State>,
    counters: Arc<ThreadCounters>,
    /// The last required scope and its bit in `state`'s snapshot.
    scope: ScopeMemo,
}

/// The scope a thread last asked about and its bit: a gateway location asks
/// for the same scope on every request, and finding it by name in the
/// snapshot's scope table costs ~5 ns per entry scanned (measured: 102 ns per
/// verify with 1 scope, 408 ns with 64 and the last one required). Lives in
/// the thread's cache, so a new snapshot starts with an empty memo.
#[derive(Clone, Copy)]
struct ScopeMemo {
    /// Length of `name`; `u8::MAX` when empty.
    len: u8,
    name: [u8; MAX_SCOPE_LEN],
    bit: Option<u64>,
}

impl ScopeMemo {
    const EMPTY: Self = Self {
        len: u8::MAX,
        name: [0; MAX_SCOPE_LEN],
        bit: None,
    };

    /// The bit of `scope` in the snapshot `bytes`/`h` (None: not in it).
    #[inline]
    fn bit(&mut self, bytes: &[u8], h: &SnapshotHeader, scope: &str) -> Option<u64> {
        let s = scope.as_bytes();
        if s.len() > MAX_SCOPE_LEN {
            return None; // no scope of the snapshot is that long
        }
        if usize::from(self.len) == s.len() && key::public_eq(&self.name[..s.len()], s) {
            return self.bit;
        }
        let bit = h.table().scope_bit(bytes, scope);
        self.name[..s.len()].copy_from_slice(s);
        self.len = s.len() as u8;
        self.bit = bit;
        bit
    }
}

std::thread_local! {
    static CACHE: core::cell::RefCell<Option<ThreadCache>> = const { core::cell::RefCell::new(None) };
}

static NEXT_VERIFIER_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct ArtifactCounters {
    installed: [AtomicU64; 3],
    refused: [AtomicU64; 3],
}

fn artifact_index(a: Artifact) -> usize {
    match a {
        Artifact::Snapshot => 0,
        Artifact::Revocations => 1,
        Artifact::Trust => 2,
    }
}

/// Use of one deprecated key, so operators see who has not switched yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeprecatedUse {
    /// The key.
    pub key_id: KeyId,
    /// Its principal.
    pub principal: String,
    /// Verifies answered `valid_deprecated` for it.
    pub count: u64,
    /// Time of the last such verify (unix seconds, as passed to verify).
    pub last_seen: u64,
}

/// A snapshot of the verifier's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Verifies per outcome, indexed like [`Outcome::ALL`].
    pub outcomes: [u64; 9],
    /// Artifacts installed, by kind: snapshot, revocations, trust.
    pub installed: [u64; 3],
    /// Artifacts refused, by kind: snapshot, revocations, trust.
    pub refused: [u64; 3],
    /// Installed snapshot version (0: none).
    pub snapshot_version: u64,
    /// Applied revocation sequence (0: none).
    pub revocation_seq: u64,
    /// Trust bundle version.
    pub trust_version: u64,
    /// Use of deprecated keys, by key id.
    pub deprecated: Vec<DeprecatedUse>,
}

impl Stats {
    /// Verifies that answered `o`.
    pub fn count(&self, o: Outcome) -> u64 {
        self.outcomes[o.index()]
    }

    /// The counters as Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        use core::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP keygate_verify_total Key verifications by outcome."
        );
        let _ = writeln!(s, "# TYPE keygate_verify_total counter");
        for o in Outcome::ALL {
            let _ = writeln!(
                s,
                "keygate_verify_total{{outcome=\"{}\"}} {}",
                o,
                self.count(o)
            );
        }
        for (name, help, v) in [
            (
                "keygate_artifact_installed_total",
                "Artifacts installed.",
                &self.installed,
            ),
            (
                "keygate_artifact_refused_total",
                "Artifacts refused (state kept).",
                &self.refused,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, n) in ["snapshot", "revocations", "trust"].iter().zip(v) {
                let _ = writeln!(s, "{name}{{artifact=\"{kind}\"}} {n}");
            }
        }
        for (name, help, v) in [
            (
                "keygate_snapshot_version",
                "Installed snapshot version.",
                self.snapshot_version,
            ),
            (
                "keygate_revocation_sequence",
                "Applied revocation update sequence.",
                self.revocation_seq,
            ),
            (
                "keygate_trust_version",
                "Trust bundle version.",
                self.trust_version,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP keygate_deprecated_key_uses_total Verifies of deprecated keys."
        );
        let _ = writeln!(s, "# TYPE keygate_deprecated_key_uses_total counter");
        for d in &self.deprecated {
            let _ = writeln!(
                s,
                "keygate_deprecated_key_uses_total{{key_id=\"{}\",principal=\"{}\"}} {}",
                d.key_id,
                escape_label(&d.principal),
                d.count
            );
        }
        let _ = writeln!(
            s,
            "# HELP keygate_deprecated_key_last_seen_seconds Last verify of a deprecated key."
        );
        let _ = writeln!(s, "# TYPE keygate_deprecated_key_last_seen_seconds gauge");
        for d in &self.deprecated {
            let _ = writeln!(
                s,
                "keygate_deprecated_key_last_seen_seconds{{key_id=\"{}\"}} {}",
                d.key_id, d.last_seen
            );
        }
        s
    }
}

/// First line of [`Stats::to_text`].
const STATS_MAGIC: &str = "keygate-stats 1";

/// Why a stats text from another process was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsTextError;

impl fmt::Display for StatsTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a keygate stats text")
    }
}

impl core::error::Error for StatsTextError {}

impl Stats {
    /// The counters as a compact text another process can read back with
    /// [`Stats::parse`] — how a host with several worker processes (nginx,
    /// OpenResty) adds them up for one `/metrics` ([`Stats::merge`]). At most
    /// `max` bytes: deprecated-key lines that do not fit are left out, the
    /// least recently seen first, and counted on a `dropped` line.
    pub fn to_text(&self, max: usize) -> String {
        use core::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "{STATS_MAGIC}");
        let list = |v: &[u64]| v.iter().map(|n| format!(" {n}")).collect::<String>();
        let _ = writeln!(s, "outcomes{}", list(&self.outcomes));
        let _ = writeln!(s, "installed{}", list(&self.installed));
        let _ = writeln!(s, "refused{}", list(&self.refused));
        let _ = writeln!(
            s,
            "versions {} {} {}",
            self.snapshot_version, self.revocation_seq, self.trust_version
        );
        let mut recent: Vec<&DeprecatedUse> = self.deprecated.iter().collect();
        recent.sort_by_key(|d| core::cmp::Reverse(d.last_seen));
        // Room for the dropped line, written last.
        let budget = max.saturating_sub(32);
        let mut dropped = 0u64;
        for d in recent {
            let line = format!(
                "deprecated {} {} {} {}\n",
                d.key_id,
                d.count,
                d.last_seen,
                crate::http::principal_value(&d.principal).as_str()
            );
            if s.len() + line.len() <= budget {
                s += &line;
            } else {
                dropped += 1;
            }
        }
        let _ = writeln!(s, "dropped {dropped}");
        s
    }

    /// Reads every stats text in `text` (several may follow one another)
    /// and adds them up with [`Stats::merge`].
    pub fn parse(text: &str) -> Result<Stats, StatsTextError> {
        let mut total: Option<Stats> = None;
        let mut cur: Option<Stats> = None;
        let nums = |rest: &str, out: &mut [u64]| -> Result<(), StatsTextError> {
            let mut it = rest.split(' ');
            for o in out.iter_mut() {
                *o = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or(StatsTextError)?;
            }
            it.next().map_or(Ok(()), |_| Err(StatsTextError))
        };
        for line in text.lines() {
            if line == STATS_MAGIC {
                if let Some(c) = cur.take() {
                    total = Some(total.map_or(c.clone(), |t| t.merge(&c)));
                }
                cur = Some(Stats::default());
                continue;
            }
            let st = cur.as_mut().ok_or(StatsTextError)?;
            let (word, rest) = line.split_once(' ').ok_or(StatsTextError)?;
            match word {
                "outcomes" => nums(rest, &mut st.outcomes)?,
                "installed" => nums(rest, &mut st.installed)?,
                "refused" => nums(rest, &mut st.refused)?,
                "versions" => {
                    let mut v = [0; 3];
                    nums(rest, &mut v)?;
                    [st.snapshot_version, st.revocation_seq, st.trust_version] = v;
                }
                "deprecated" => {
                    let mut f = rest.splitn(4, ' ');
                    let key_id = f.next().and_then(KeyId::from_hex).ok_or(StatsTextError)?;
                    let mut n = [0u64; 2];
                    for x in &mut n {
                        *x = f
                            .next()
                            .and_then(|v| v.parse().ok())
                            .ok_or(StatsTextError)?;
                    }
                    let principal = percent_decode(f.next().ok_or(StatsTextError)?)?;
                    st.deprecated.push(DeprecatedUse {
                        key_id,
                        principal,
                        count: n[0],
                        last_seen: n[1],
                    });
                }
                "dropped" => {}
                _ => return Err(StatsTextError),
            }
        }
        let last = cur.ok_or(StatsTextError)?;
        Ok(total.map_or(last.clone(), |t| t.merge(&last)))
    }

    /// Two processes' counters as one: counts added, deprecated-key uses
    /// added per key with the later last-seen, and each version the
    /// *lowest* of the two — what the whole host is sure to have in force.
    pub fn merge(&self, o: &Stats) -> Stats {
        let add = |a: [u64; 3], b: [u64; 3]| [0, 1, 2].map(|i| a[i].saturating_add(b[i]));
        let mut outcomes = self.outcomes;
        for (a, b) in outcomes.iter_mut().zip(o.outcomes) {
            *a = a.saturating_add(b);
        }
        let mut deprecated: HashMap<KeyId, DeprecatedUse> = HashMap::new();
        for d in self.deprecated.iter().chain(&o.deprecated) {
            deprecated
                .entry(d.key_id)
                .and_modify(|e| {
                    e.count = e.count.saturating_add(d.count);
                    e.last_seen = e.last_seen.max(d.last_seen);
                })
                .or_insert_with(|| d.clone());
        }
        let mut deprecated: Vec<DeprecatedUse> = deprecated.into_values().collect();
        deprecated.sort_by_key(|d| d.key_id);
        Stats {
            outcomes,
            installed: add(self.installed, o.installed),
            refused: add(self.refused, o.refused),
            snapshot_version: self.snapshot_version.min(o.snapshot_version),
            revocation_seq: self.revocation_seq.min(o.revocation_seq),
            trust_version: self.trust_version.min(o.trust_version),
            deprecated,
        }
    }
}

/// Undoes [`crate::principal_value`].
fn percent_decode(s: &str) -> Result<String, StatsTextError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(StatsTextError)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| StatsTextError)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| StatsTextError)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Verifies API keys against a signed snapshot and revocation update, with
/// lock-free hot reload.
///
/// `verify` never blocks and takes no lock: each thread keeps the state it
/// loaded last and checks one generation counter (a plain load) to see whether
/// an install replaced it; a verify finishes on the state it started with even
/// if an install swaps in a new one meanwhile. Installs are serialized among
/// themselves, and a refused artifact changes nothing. A thread that stops
/// verifying keeps the state it last used alive until it verifies again or
/// calls [`Verifier::release_thread_cache`].
pub struct Verifier {
    state: ArcSwap<State>,
    config: Config,
    /// Held by installs; guards the floor set from a persisted high-water mark.
    install: Mutex<HighWater>,
    id: u64,
    generation: AtomicU64,
    counters: Mutex<HashMap<std::thread::ThreadId, Arc<ThreadCounters>>>,
    artifacts: ArtifactCounters,
    deprecated: Mutex<HashMap<KeyId, DeprecatedUse>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load();
        f.debug_struct("Verifier")
            .field("keyset", s.trust.keyset())
            .field("trust_version", &s.trust.version())
            .field(
                "snapshot_version",
                &s.snapshot.as_ref().map(|x| x.header.version),
            )
            .field(
                "revocation_seq",
                &s.revocations.as_ref().map(|x| x.header.sequence),
            )
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier trusting the `.kgt` chain `trust`, with default settings.
    pub fn new(trust: &[u8]) -> Result<Self, Error> {
        Self::with_config(trust, Config::default())
    }

    /// A verifier trusting the `.kgt` chain `trust`.
    pub fn with_config(trust: &[u8], config: Config) -> Result<Self, Error> {
        let trust = TrustSet::from_chain(trust)?;
        Ok(Self {
            state: ArcSwap::from_pointee(State::new(trust, None, None)),
            config,
            install: Mutex::new(HighWater::default()),
            id: NEXT_VERIFIER_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            counters: Mutex::new(HashMap::new()),
            artifacts: ArtifactCounters::default(),
            deprecated: Mutex::new(HashMap::new()),
        })
    }

    /// Swaps in a new state; threads see it at their next verify.
    fn publish(&self, st: State) {
        self.state.store(Arc::new(st));
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn count_install<T>(&self, a: Artifact, r: Result<T, Error>) -> Result<T, Error> {
        let slot = artifact_index(a);
        match &r {
            Ok(_) => self.artifacts.installed[slot].fetch_add(1, Ordering::Relaxed),
            Err(_) => self.artifacts.refused[slot].fetch_add(1, Ordering::Relaxed),
        };
        r
    }

    /// Follows a new `.kgt` chain (signer rotation). Refused unless every step is
    /// signed by a signer trusted at that point.
    pub fn install_trust(&self, bytes: &[u8]) -> Result<Installed, Error> {
        let floor = self.install.lock().unwrap_or_else(|e| e.into_inner());
        let r = (|| {
            let cur = self.state.load_full();
            let next = cur.trust.follow(bytes)?;
            if next.version() < floor.trust_version {
                return Err(Error::Rollback {
                    artifact: Artifact::Trust,
                    installed: floor.trust_version,
                    offered: next.version(),
                });
            }
            if next == cur.trust {
                return Ok(Installed::Unchanged);
            }
            let from = cur.trust.version();
            let mut st = State::clone(&cur);
            st.trust = next;
            self.publish(st);
            Ok(Installed::Updated {
                from,
                to: next.version(),
            })
        })();
        self.count_install(Artifact::Trust, r)
    }

    /// Installs a snapshot. Refused (state kept) when it is malformed, truncated,
    /// signed by an untrusted signer, for another keyset, or older than the one
    /// installed; the same version again is a no-op. A newer snapshot drops the
    /// applied revocation update (its revocations are in the snapshot).
    pub fn install_snapshot(&self, bytes: &[u8]) -> Result<Installed, Error> {
        let floor = self.install.lock().unwrap_or_else(|e| e.into_inner());
        let r = (|| {
            let cur = self.state.load_full();
            // The very bytes installed already (a poller that lost its
            // validator, a restart): nothing to check again — at 10 M keys
            // that check is seconds per gateway.
            if let Some(s) = cur.snapshot.as_ref() {
                if s.len == bytes.len() && s.bytes() == bytes {
                    return Ok(Installed::Unchanged);
                }
            }
            let lines = AlignedBytes::copy_of(bytes);
            let header = check_snapshot(lines.bytes(bytes.len()), &cur.trust)?;
            let from = cur.snapshot.as_ref().map_or(0, |s| s.header.version);
            if cur.snapshot.is_some() && header.version == from {
                return Ok(Installed::Unchanged);
            }
            let highest = from.max(floor.snapshot_version);
            if header.version < highest {
                return Err(Error::Rollback {
                    artifact: Artifact::Snapshot,
                    installed: highest,
                    offered: header.version,
                });
            }
            let snap = Snapshot {
                lines,
                len: bytes.len(),
                header,
            };
            self.publish(State::new(cur.trust, Some(Arc::new(snap)), None));
            Ok(Installed::Updated {
                from,
                to: header.version,
            })
        })();
        self.count_install(Artifact::Snapshot, r)
    }

    /// Applies a cumulative revocation update. Refused (state kept) when it is
    /// malformed, badly signed, for another keyset or another base snapshot, or
    /// older than the applied one; the same sequence again is a no-op.
    pub fn install_revocations(&self, bytes: &[u8]) -> Result<Installed, Error> {
        let floor = self.install.lock().unwrap_or_else(|e| e.into_inner());
        let r = (|| {
            let cur = self.state.load_full();
            let lines = AlignedBytes::copy_of(bytes);
            let header = *RevocationView::new(lines.bytes(bytes.len()), &cur.trust)?.header();
            let snap = cur.snapshot.as_ref().ok_or(Error::NoSnapshot)?;
            if header.base_version != snap.header.version {
                return Err(Error::BaseMismatch {
                    installed_snapshot: snap.header.version,
                    update_base: header.base_version,
                });
            }
            let from = cur.revocations.as_ref().map_or(0, |r| r.header.sequence);
            if cur.revocations.is_some() && header.sequence == from {
                return Ok(Installed::Unchanged);
            }
            // The persisted sequence counts only for the snapshot it was for.
            let seq_floor = if floor.update_base == header.base_version {
                floor.update_seq
            } else {
                0
            };
            let highest = from.max(seq_floor);
            if header.sequence < highest {
                return Err(Error::Rollback {
                    artifact: Artifact::Revocations,
                    installed: highest,
                    offered: header.sequence,
                });
            }
            let rev = Revocations {
                lines,
                len: bytes.len(),
                header,
            };
            self.publish(State::new(
                cur.trust,
                cur.snapshot.clone(),
                Some(Arc::new(rev)),
            ));
            Ok(Installed::Updated {
                from,
                to: header.sequence,
            })
        })();
        self.count_install(Artifact::Revocations, r)
    }

    /// The highest versions installed (or set as the floor): what a gateway
    /// persists so a restart is not a rollback window.
    pub fn high_water(&self) -> HighWater {
        let floor = *self.install.lock().unwrap_or_else(|e| e.into_inner());
        let st = self.state.load();
        let (update_base, update_seq) = st
            .revocations
            .as_ref()
            .map_or((0, 0), |r| (r.header.base_version, r.header.sequence));
        floor.max(HighWater {
            trust_version: st.trust.version(),
            snapshot_version: st.snapshot.as_ref().map_or(0, |s| s.header.version),
            update_seq,
            update_base,
        })
    }

    /// Refuses, from now on, any artifact older than `floor` (a high-water
    /// mark persisted before a restart), as if it had been installed. What is
    /// installed now is not changed.
    pub fn set_floor(&self, floor: HighWater) {
        let mut f = self.install.lock().unwrap_or_else(|e| e.into_inner());
        *f = f.max(floor);
    }

    /// Installed snapshot header, if any.
    pub fn snapshot_header(&self) -> Option<SnapshotHeader> {
        self.state.load().snapshot.as_ref().map(|s| s.header)
    }

    /// Applied revocation update header, if any.
    pub fn revocation_header(&self) -> Option<RevocationHeader> {
        self.state.load().revocations.as_ref().map(|r| r.header)
    }

    /// The trust set in force.
    pub fn trust(&self) -> TrustSet {
        self.state.load().trust
    }

    /// Verifies `key` at the current system time. (On `wasm32-unknown-unknown`
    /// there is no system clock: pass the time to [`Verifier::verify`].)
    pub fn verify_now(&self, key: &str, scope: Option<&str>) -> Verdict {
        self.verify(key, unix_now(), scope)
    }

    /// Verifies `key` at `now` (unix seconds), requiring `scope` if given.
    ///
    /// Checks, in order: format (`malformed`), revocation filter, snapshot lookup
    /// with a constant-time digest compare (`unknown`), `revoked`,
    /// `not_yet_valid`, `expired`, `insufficient_scope`, staleness (`stale`),
    /// then `valid_deprecated` or `valid`.
    #[inline]
    pub fn verify(&self, key: &str, now: u64, scope: Option<&str>) -> Verdict {
        // Built in place and filled by `decide`: a 220-byte verdict moved
        // through closures cost several memcpy calls per verify.
        let mut v = Verdict::bare(Outcome::Stale, 0, 0);
        CACHE.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                // Only reachable if verify re-entered itself on this thread.
                let state = self.state.load_full();
                let mut memo = ScopeMemo::EMPTY;
                decide(
                    &state,
                    self.config.staleness,
                    key,
                    now,
                    scope,
                    &mut memo,
                    &mut v,
                );
                return;
            };
            let generation = self.generation.load(Ordering::Acquire);
            let fresh = slot
                .as_ref()
                .is_some_and(|c| c.verifier == self.id && c.generation == generation);
            if !fresh {
                self.refresh(&mut slot, generation);
            }
            if let Some(c) = slot.as_mut() {
                let staleness = self.config.staleness;
                decide(&c.state, staleness, key, now, scope, &mut c.scope, &mut v);
                c.counters.bump(v.outcome);
            }
        });
        if v.outcome == Outcome::ValidDeprecated {
            self.note_deprecated(&v, now);
        }
        v
    }

    /// [`verify`](Self::verify) for a key as the request carried it: bytes
    /// that are not UTF-8 cannot be a key and are `malformed` (and counted).
    pub fn verify_bytes(&self, key: &[u8], now: u64, scope: Option<&str>) -> Verdict {
        self.verify(core::str::from_utf8(key).unwrap_or(""), now, scope)
    }

    /// [`check`](Self::check) at the current system time.
    pub fn check_now<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        scope: Option<&str>,
    ) -> (crate::Answer, Option<Verdict>) {
        self.check(headers, unix_now(), scope)
    }

    /// The gateway contract for one request, from its headers as raw
    /// `(name, value)` bytes: finds the key ([`presented_key`](crate::presented_key)),
    /// verifies it, and returns the [`Answer`](crate::Answer) with the
    /// verdict (`None` when no key or two different keys were presented).
    pub fn check<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        now: u64,
        scope: Option<&str>,
    ) -> (crate::Answer, Option<Verdict>) {
        self.answer(crate::presented_key(headers), now, scope)
    }

    /// [`check`](Self::check) for a key already found with
    /// [`presented_key`](crate::presented_key): for a surface that also
    /// needs the key itself, or verifies apart from reading the headers
    /// (Python releases its lock around this call only).
    pub fn answer(
        &self,
        presented: crate::Presented<'_>,
        now: u64,
        scope: Option<&str>,
    ) -> (crate::Answer, Option<Verdict>) {
        match presented {
            crate::Presented::None => (crate::Answer::no_key(), None),
            crate::Presented::Conflict => (crate::Answer::conflict(), None),
            crate::Presented::Key(k) => {
                let v = self.verify_bytes(k, now, scope);
                (v.answer(), Some(v))
            }
        }
    }

    /// The names of the scopes `verdict`'s key holds, in the order of the
    /// keyset's scope table, read from the artifacts the verdict was decided
    /// on; `None` when those are gone (replaced by another snapshot or
    /// update, and this thread has verified on the new ones since): verify
    /// again. Right after a verify on the same thread it is always `Some`.
    ///
    /// Off the hot path, for a surface that exposes scopes: the keys of a
    /// service share a few scope sets, so each thread keeps the names it
    /// resolved last and hands them out again as an `Arc` clone.
    pub fn scope_names(&self, verdict: &Verdict) -> Option<ScopeNames> {
        type Key = (u64, u64, u64, Scopes);
        std::thread_local! {
            static LAST: core::cell::RefCell<Option<(Key, ScopeNames)>> =
                const { core::cell::RefCell::new(None) };
        }
        let key = (
            self.id,
            verdict.snapshot_version,
            verdict.revocation_seq,
            verdict.scopes,
        );
        let hit = LAST.with(|last| {
            last.borrow()
                .as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, names)| Arc::clone(names))
        });
        if hit.is_some() {
            return hit;
        }
        // The artifacts the verdict was decided on: this thread's view (a
        // verify just before on this thread used it, even if another
        // thread installed newer ones since), else the current ones.
        let decided_on = |st: &State| {
            st.snapshot.as_ref().map(|x| x.header.version) == Some(verdict.snapshot_version)
                && st.revocations.as_ref().map_or(0, |u| u.header.sequence)
                    == verdict.revocation_seq
        };
        let mine = CACHE.with(|cell| {
            let slot = cell.try_borrow().ok()?;
            let c = slot.as_ref().filter(|c| c.verifier == self.id)?;
            decided_on(&c.state).then(|| Arc::clone(&c.state))
        });
        let state = match mine {
            Some(st) => st,
            None => Some(self.state.load_full()).filter(|st| decided_on(st))?,
        };
        let snap = state.snapshot.as_deref()?;
        let update = state.revocations.as_deref();
        let s = verdict.scopes;
        let (table, bytes) = if s.from_update {
            let u = update?;
            (*u.header.table()?, u.bytes())
        } else {
            (snap.header.table(), snap.bytes())
        };
        let names: ScopeNames = table
            .scope_names(bytes)
            .enumerate()
            .filter(|(i, _)| s.mask >> i & 1 == 1)
            .map(|(_, n)| n.into())
            .collect();
        LAST.with(|last| *last.borrow_mut() = Some((key, Arc::clone(&names))));
        Some(names)
    }

    /// The current time as [`check_now`](Self::check_now) reads it (unix
    /// seconds).
    pub fn now() -> u64 {
        unix_now()
    }

    #[cold]
    fn refresh(&self, slot: &mut Option<ThreadCache>, generation: u64) {
        let counters = match slot.take() {
            Some(c) if c.verifier == self.id => c.counters,
            // One counter block per thread and verifier, found again when a
            // thread alternates between verifiers.
            _ => Arc::clone(
                self.counters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(std::thread::current().id())
                    .or_default(),
            ),
        };
        *slot = Some(ThreadCache {
            verifier: self.id,
            generation,
            state: self.state.load_full(),
            counters,
            scope: ScopeMemo::EMPTY,
        });
    }

    /// Drops this thread's cached reference to the verifier's state, so an idle
    /// thread does not keep a replaced snapshot in memory. (A thread refreshes
    /// its cache on its next verify anyway.)
    pub fn release_thread_cache() {
        CACHE.with(|cell| {
            if let Ok(mut s) = cell.try_borrow_mut() {
                *s = None;
            }
        });
    }

    #[cold]
    fn note_deprecated(&self, v: &Verdict, now: u64) {
        let Some(id) = v.key_id else { return };
        let mut m = self.deprecated.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(id).or_insert_with(|| DeprecatedUse {
            key_id: id,
            principal: v.principal.as_str().into(),
            count: 0,
            last_seen: 0,
        });
        e.count += 1;
        e.last_seen = e.last_seen.max(now);
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let st = self.state.load();
        let mut deprecated: Vec<_> = self
            .deprecated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        deprecated.sort_by_key(|d| d.key_id);
        Stats {
            outcomes: {
                let threads = self.counters.lock().unwrap_or_else(|e| e.into_inner());
                Outcome::ALL.map(|o| {
                    threads
                        .values()
                        .map(|t| t.outcomes[o.index()].load(Ordering::Relaxed))
                        .sum()
                })
            },
            installed: [0, 1, 2].map(|i| self.artifacts.installed[i].load(Ordering::Relaxed)),
            refused: [0, 1, 2].map(|i| self.artifacts.refused[i].load(Ordering::Relaxed)),
            snapshot_version: st.snapshot.as_ref().map_or(0, |s| s.header.version),
            revocation_seq: st.revocations.as_ref().map_or(0, |r| r.header.sequence),
            trust_version: st.trust.version(),
            deprecated,
        }
    }

    /// The counters as Prometheus text.
    pub fn stats_prometheus(&self) -> String {
        self.stats().prometheus()
    }
}

#[inline(always)]
fn decide(
    state: &State,
    staleness: Staleness,
    key: &str,
    now: u64,
    scope: Option<&str>,
    memo: &mut ScopeMemo,
    v: &mut Verdict,
) {
    let update = state.revocations.as_deref();
    v.revocation_seq = update.map_or(0, |r| r.header.sequence);
    let Some(snap) = state.snapshot.as_deref() else {
        v.outcome = Outcome::Stale;
        return;
    };
    let bytes = snap.bytes();
    let h = &snap.header;
    v.snapshot_version = h.version;
    v.outcome = Outcome::Malformed;
    let prefix = h.prefix.as_bytes();
    let native = key::has_prefix_bytes(key.as_bytes(), prefix);
    if native {
        // Only a string of a key's exact length can be one: anything else is
        // malformed without hashing it.
        if key.len() != key::key_len(prefix.len()) {
            return;
        }
    } else {
        let imported = h.imported_count
            + update
                .and_then(|u| u.header.table())
                .map_or(0, |t| t.imported_count);
        if imported == 0 || !(MIN_IMPORTED_LEN..=MAX_IMPORTED_LEN).contains(&key.len()) {
            return;
        }
    }
    let digest = Digest::of(key.as_bytes());
    let id = digest.key_id();
    v.key_id = Some(id);
    let filtered = update.is_some_and(|r| revocation::contains_in(r.bytes(), &r.header, &id));
    // A key the update adds or changes is read from it, before the snapshot:
    // its record (status, times, principal, scopes) is the newer one.
    let from_update = update.and_then(|u| {
        let t = u.header.table()?;
        Some((t.lookup(u.bytes(), &digest)?, t, u.bytes()))
    });
    // The filter is exact only on the base snapshot's keys: for a key the
    // update adds (not in the snapshot) it says nothing, so it counts only
    // when the snapshot holds the key too.
    let (rec, filtered) = match from_update {
        Some((rec, _, _)) => (
            Some(rec),
            filtered && h.table().lookup(bytes, &digest).is_some(),
        ),
        None => (h.table().lookup(bytes, &digest), filtered),
    };
    let Some(rec) = rec else {
        // Charset and checksum are checked only to tell a typo (malformed)
        // from an unknown key: a string that hashes to a stored digest is an
        // issued (or imported) key, so a hit needs neither. Every miss, of a
        // known id or not, does the same check.
        if native && key::check_after_prefix(key.as_bytes(), prefix.len()).is_err() {
            v.key_id = None;
        } else {
            v.outcome = Outcome::Unknown;
        }
        return;
    };
    v.principal.set(rec.principal_bytes());
    v.scopes = Scopes {
        mask: rec.scope_mask(),
        from_update: from_update.is_some(),
    };
    v.deprecated_at = rec.deprecated_at();
    v.sunset_at = rec.sunset_at();
    // A deprecated key stops at its sunset even if its expiry is later.
    let expiry = match (rec.expires_at(), v.sunset_at) {
        (Some(e), Some(s)) => Some(e.min(s)),
        (e, s) => e.or(s),
    };
    v.expires_at = expiry;
    v.stale = now > state.valid_until;
    v.outcome = if filtered || rec.status() == Status::Revoked {
        Outcome::Revoked
    } else if now < rec.not_before() {
        Outcome::NotYetValid
    } else if expiry.is_some_and(|e| now >= e) {
        Outcome::Expired
    } else if scope.is_some_and(|s| {
        let bit = match from_update {
            // The update's own scope table (rarely hit: no memo).
            Some((_, t, ubytes)) => t.scope_bit(ubytes, s),
            None => memo.bit(bytes, h, s),
        };
        bit.is_none_or(|bit| rec.scope_mask() & bit == 0)
    }) {
        Outcome::InsufficientScope
    } else if v.stale
        && match staleness {
            Staleness::FailClosed => true,
            Staleness::AcceptFor(grace) => now > state.valid_until.saturating_add(grace),
        }
    {
        Outcome::Stale
    } else if rec.status() == Status::Deprecated {
        Outcome::ValidDeprecated
    } else {
        Outcome::Valid
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names of every length the format allows come back byte for byte.
    #[test]
    fn principal_set_copies_every_length() {
        let long: std::vec::Vec<u8> = (0..MAX_PRINCIPAL_LEN as u8)
            .map(|i| b'a' + i % 26)
            .collect();
        for n in 0..=MAX_PRINCIPAL_LEN {
            let mut p = Principal::EMPTY;
            p.set(&long[..n]);
            assert_eq!(p.as_str().as_bytes(), &long[..n], "len {n}");
            let (padded, len) = p.padded();
            assert_eq!((&padded[..len], len), (&long[..n], n));
            assert!(
                padded[n..].iter().all(|b| *b == 0),
                "zero past the name, len {n}"
            );
        }
    }

    /// Two workers' stats travel as text and add up; a text that does not
    /// fit drops the stalest deprecated-key lines, never the counters.
    #[test]
    fn stats_text_round_trips_and_merges() {
        let id = |n: u8| KeyId([n; 16]);
        let a = Stats {
            outcomes: [1, 2, 3, 4, 5, 6, 7, 8, 9],
            installed: [1, 2, 3],
            refused: [0, 1, 0],
            snapshot_version: 7,
            revocation_seq: 4,
            trust_version: 2,
            deprecated: std::vec![DeprecatedUse {
                key_id: id(1),
                principal: "z\u{fc}rich b%".into(),
                count: 5,
                last_seen: 100,
            }],
        };
        let mut b = a.clone();
        b.snapshot_version = 6;
        b.deprecated.push(DeprecatedUse {
            key_id: id(2),
            principal: "other".into(),
            count: 1,
            last_seen: 300,
        });
        b.deprecated[0].last_seen = 200;
        assert_eq!(Stats::parse(&a.to_text(4096)).unwrap(), a);
        let both = Stats::parse(&(a.to_text(4096) + &b.to_text(4096))).unwrap();
        assert_eq!(both.outcomes, [2, 4, 6, 8, 10, 12, 14, 16, 18]);
        assert_eq!((both.installed, both.refused), ([2, 4, 6], [0, 2, 0]));
        assert_eq!(
            both.snapshot_version, 6,
            "the lowest version any worker has"
        );
        assert_eq!(both.deprecated.len(), 2);
        assert_eq!(
            (both.deprecated[0].count, both.deprecated[0].last_seen),
            (10, 200)
        );
        assert_eq!(both.deprecated[0].principal, "z\u{fc}rich b%");
        // Too small for both deprecated lines: the stalest goes.
        let full = b.to_text(4096);
        let small = b.to_text(full.len() - 10);
        assert!(small.len() < full.len() && small.contains("dropped 1"));
        let got = Stats::parse(&small).unwrap();
        assert_eq!((got.outcomes, got.deprecated.len()), (b.outcomes, 1));
        assert_eq!(got.deprecated[0].key_id, id(2));
        for bad in [
            "",
            "outcomes 1",
            "keygate-stats 1\noutcomes 1 2",
            "keygate-stats 1\nwhat 1",
        ] {
            assert_eq!(Stats::parse(bad), Err(StatsTextError), "{bad:?}");
        }
    }
}
