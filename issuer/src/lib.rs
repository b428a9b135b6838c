//! keygate's issuer (control plane): keys, rotation, revocation, publishing,
//! audit, scanning and signer rotation over one SQLite store. A crate of its
//! own, so the verification core (`keygate`) that gateways embed carries no
//! database; the `keygate` CLI is a thin shell over this one.
//!
//! A store is a directory holding `keygate.db`, the signing keys
//! (`signer-<id>.pk8`, mode 0600) and `published.kgs`, a copy of the last
//! published snapshot used to compute fast revocation updates. Secrets of API
//! keys are never stored: only their digests.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod admin;
mod audit;
mod db;
mod input;
mod model;
mod policy;
mod publish;
mod scan;
mod store;
mod usage;

use std::fmt;
use std::path::{Path, PathBuf};

pub use db::StoreAt;
use db::{args, Blob, Db, Tx};
use serde::Serialize;

pub use admin::{AdminKey, IdempotentAnswer, IssuedAdminKey, Recorded, ADMIN_PREFIX, ADMIN_SCOPES};
pub use audit::{AuditEntry, AuditReport, SignedHead};
pub use input::{parse_duration, parse_import_lines, parse_time, Import};
pub use model::{parse_key_id, Principal, Scope};
pub use policy::{DueKey, DueRotation, Policy, DEFAULT_GRACE};
pub use publish::write_atomic;
pub use scan::{find_in, Finding, ScanOptions, Unreadable};
pub use usage::{Usage, UsageReport};

use keygate::Artifact;
use keygate::Name;
use keygate::{build_bundle, Signer};
use keygate::{build_update, build_update_with, UpdateSpec};
use keygate::{ApiKey, Digest, KeyId};
use keygate::{Prefix, RecordSpec, SnapshotBuilder, SnapshotView, Status, MAX_TIME};

/// Why an issuer operation failed. Nothing is changed when one is returned.
#[non_exhaustive]
#[derive(Debug)]
pub enum IssuerError {
    /// Bad input from the caller: what was wrong.
    Invalid(String),
    /// A key, principal or store that does not exist.
    NotFound(String),
    /// The change conflicts with what the store holds (a key that already
    /// exists, a signer rotation already in progress).
    Conflict(String),
    /// No store there (run `keygate init`): where was looked.
    NoStore(String),
    /// `init` on a store that already exists: where.
    AlreadyInitialized(String),
    /// The store is damaged or from a newer keygate.
    Corrupt(String),
    /// The store cannot be used right now (locked or busy beyond the wait,
    /// cannot be opened): a retry may succeed.
    Unavailable(String),
    /// The database failed otherwise (the store's own message).
    Db(String),
    /// A file operation failed.
    Io(std::io::Error),
    /// An artifact was refused.
    Artifact(Box<keygate::Error>),
    /// The audit chain or the keys table was changed outside keygate; nothing
    /// is published from a store in this state.
    AuditBroken(String),
}

impl fmt::Display for IssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(m) => f.write_str(m),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::Conflict(m) => write!(f, "conflict: {m}"),
            Self::NoStore(p) => write!(f, "no keygate store at {p} (run `keygate init`)"),
            Self::AlreadyInitialized(p) => write!(f, "a keygate store already exists at {p}"),
            Self::Corrupt(m) => write!(f, "store damaged: {m}"),
            Self::Unavailable(e) => write!(f, "store unavailable: {e}"),
            Self::Db(e) => write!(f, "database error: {e}"),
            Self::Io(e) => write!(f, "i/o error: {e}"),
            Self::Artifact(e) => write!(f, "{e}"),
            Self::AuditBroken(m) => write!(f, "audit check failed: {m}"),
        }
    }
}

impl std::error::Error for IssuerError {}

// The engines' own error types stay inside this crate (see db.rs): a
// caller sees what went wrong, not which database said so.

impl From<std::io::Error> for IssuerError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<keygate::Error> for IssuerError {
    fn from(e: keygate::Error) -> Self {
        Self::Artifact(Box::new(e))
    }
}

type Result<T> = std::result::Result<T, IssuerError>;

/// A key's state as the issuer records it. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Key id (hex in JSON).
    #[serde(with = "model::key_id_hex")]
    pub key_id: KeyId,
    /// Principal.
    pub principal: Principal,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// Active, deprecated or revoked.
    pub status: KeyStatus,
    /// Imported by digest.
    pub imported: bool,
    /// Issue time.
    pub created_at: u64,
    /// Not valid before.
    pub not_before: u64,
    /// Expiry.
    pub expires_at: Option<u64>,
    /// Deprecation time.
    pub deprecated_at: Option<u64>,
    /// End of the grace window.
    pub sunset_at: Option<u64>,
    /// Revocation time.
    pub revoked_at: Option<u64>,
    /// Revocation reason.
    pub revoke_reason: Option<String>,
}

/// A key's state in the store (serialized as `active`, `deprecated`,
/// `revoked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Verifies.
    Active,
    /// Rotated out: verifies until its sunset, flagged as deprecated.
    Deprecated,
    /// Refused everywhere.
    Revoked,
}

impl KeyStatus {
    /// Every status, in order.
    pub const ALL: [KeyStatus; 3] = [Self::Active, Self::Deprecated, Self::Revoked];

    /// `active`, `deprecated` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Revoked => "revoked",
        }
    }

    /// The status a published record carries.
    fn published(self) -> Status {
        match self {
            Self::Active => Status::Active,
            Self::Deprecated => Status::Deprecated,
            Self::Revoked => Status::Revoked,
        }
    }

    /// A status as the store holds it: anything else is damage.
    fn from_store(s: &str) -> Result<Self> {
        s.parse()
            .map_err(|_| IssuerError::Corrupt(format!("unknown key status '{s}'")))
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyStatus {
    type Err = IssuerError;
    /// A status as a caller gives it (`--status`, `?status=`).
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                IssuerError::Invalid(format!(
                    "status must be active, deprecated or revoked: {s:?}"
                ))
            })
    }
}

/// A freshly issued key: the only time its secret exists outside the client.
#[derive(Clone)]
pub struct IssuedKey {
    /// The key (secret).
    pub key: ApiKey,
    /// Its state.
    pub info: KeyInfo,
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What to issue.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// Principal (stable alias).
    pub principal: Principal,
    /// Scopes granted.
    pub scopes: Vec<Scope>,
    /// Lifetime in seconds from now.
    pub expires_in: Option<u64>,
    /// Not valid before (unix seconds).
    pub not_before: Option<u64>,
    /// Put the principal in this policy class; its keys then default to the
    /// class's max-age.
    pub class: Option<String>,
}

impl IssueRequest {
    /// Issue for `principal`, no scopes, no expiry beyond its class's.
    pub fn new(principal: Principal) -> Self {
        Self {
            principal,
            scopes: Vec::new(),
            expires_in: None,
            not_before: None,
            class: None,
        }
    }
}

/// One key touched by a revoke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revoked {
    /// Key id.
    #[serde(with = "model::key_id_hex")]
    pub key_id: KeyId,
    /// Principal.
    pub principal: Principal,
    /// It was already revoked: nothing changed for it.
    pub already_revoked: bool,
}

/// What to revoke.
#[derive(Clone, Debug)]
pub enum RevokeTarget {
    /// These key ids.
    Ids(Vec<KeyId>),
    /// Every key of a principal.
    Principal(String),
}

/// What a scan did (the findings themselves go to its callback).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanReport {
    /// Keys found (each occurrence).
    pub findings: u64,
    /// Paths that could not be read: the scan is incomplete for them.
    pub unreadable: Vec<Unreadable>,
    /// Keys revoked (with `revoke`).
    pub revoked: u64,
}

/// What changed since a point of the audit chain that is not published
/// yet ([`Issuer::unpublished_since`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unpublished {
    /// A key was revoked: the fast update can carry it.
    pub revocations: bool,
    /// Something only a full snapshot can carry.
    pub snapshot: bool,
}

/// What a publish wrote.
#[derive(Clone, Debug, Serialize)]
pub struct PublishReport {
    /// Output directory.
    pub dir: PathBuf,
    /// Snapshot version (the base of the update).
    pub snapshot_version: u64,
    /// Revocation update sequence.
    pub revocation_seq: u64,
    /// Keys in the snapshot.
    pub keys: u64,
    /// Keys in the update's revoked set.
    pub revoked_in_update: u64,
    /// Keys the update carries as records (added or changed since the
    /// snapshot).
    pub records_in_update: u64,
    /// Bytes of snapshot.kgs (0 when only the update was written).
    pub snapshot_bytes: u64,
    /// Bytes of revocations.kgr.
    pub revocations_bytes: u64,
    /// Bytes of trust.kgt.
    pub trust_bytes: u64,
    /// Trust bundle version.
    pub trust_version: u64,
    /// Signer of the artifacts (hex id).
    pub signer: String,
}

/// A signer rotation's result.
#[derive(Clone, Debug, Serialize)]
pub struct SignerRotation {
    /// The new signer (hex id).
    pub new_signer: String,
    /// The signer being retired (hex id).
    pub retiring: String,
    /// The trust bundle version that introduces the new signer.
    pub trust_version: u64,
}

/// Store settings shown by `keygate status`/`inspect`.
#[derive(Clone, Debug, Serialize)]
pub struct StoreInfo {
    /// Keyset name.
    pub keyset: String,
    /// Key prefix.
    pub prefix: String,
    /// Last published snapshot version.
    pub snapshot_version: u64,
    /// Last revocation sequence.
    pub revocation_seq: u64,
    /// Time of the last publish.
    pub last_publish_at: Option<u64>,
}

/// The issuer over one store (an SQLite directory or a PostgreSQL database).
pub struct Issuer {
    at: StoreAt,
    db: Db,
    actor: String,
    now: Option<u64>,
    /// Inside [`Issuer::atomically`]: writes are part of its savepoint.
    in_atomic: bool,
    /// Savepoints taken in the current `atomically` transaction (each is
    /// named by its number).
    savepoints: u64,
    /// When this connection last removed expired idempotency records.
    idempotency_swept_at: u64,
    /// Admin keys looked up in the current write transaction, by digest
    /// (`None`: not a current admin key). No other writer can change them
    /// meanwhile, so a batch of requests with the same key looks it up
    /// once; forgotten when the transaction or a savepoint of it ends in a
    /// rollback, and when this connection changes an admin key.
    admins: std::cell::RefCell<std::collections::HashMap<[u8; 32], Option<admin::AdminKey>>>,
    /// The key prefix (set at `init`, never changed).
    prefix: Option<String>,
    /// The audit chain as far as this connection verified it (sequence,
    /// hash): an update checks only what came after.
    audit_verified: Option<(u64, [u8; 32])>,
    /// The last published snapshot as this connection read and validated
    /// it, with its key ids: an update builds on it without reading and
    /// checking the whole snapshot again.
    published: Option<PublishedCopy>,
}

/// A validated copy of the last published snapshot.
struct PublishedCopy {
    version: u64,
    bytes: Vec<u8>,
    universe: Vec<KeyId>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("store", &self.at)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A time a key record will hold must fit the format (see [`MAX_TIME`]).
fn check_time(what: &str, t: u64) -> Result<u64> {
    if t > MAX_TIME {
        return Err(IssuerError::Invalid(format!(
            "{what} is beyond 2106-02-07, the latest time a key can hold"
        )));
    }
    Ok(t)
}

/// Actor names go into the audit log: 1-128 bytes, no control characters.
fn check_actor(a: &str) -> Result<()> {
    if a.is_empty() || a.len() > 128 || a.chars().any(is_unsafe_char) {
        return Err(IssuerError::Invalid(format!(
            "actor must be 1-128 bytes without control characters: {a:?}"
        )));
    }
    Ok(())
}

/// Characters that could forge or hide text on a terminal: controls (newline,
/// escape) and the invisible or direction-changing format characters.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `s` as safe to print on a terminal or in a log line: unsafe characters
/// (controls, invisible and direction-changing characters) and backslashes are escaped (`\n`, `\u{1b}`).
/// Text from the store (reasons, actors, principals) or from scanned paths
/// goes through this before it is shown as text; JSON output is escaped by
/// its encoder.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe_char(c) || c == '\\') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Most bytes a revoke reason may have.
pub const MAX_REASON_LEN: usize = 1024;

fn row_info(r: &db::Row) -> Result<KeyInfo> {
    row_info_at(r, 0)
}

/// A `KeyInfo` from the `KEY_COLUMNS` of a row, starting at column `at`.
pub(crate) fn row_info_at(r: &db::Row, at: usize) -> Result<KeyInfo> {
    let scopes: String = r.get(at + 2)?;
    Ok(KeyInfo {
        key_id: r.get(at)?,
        principal: r.get(at + 1)?,
        scopes: Scope::split_stored(&scopes)?,
        status: KeyStatus::from_store(&r.get::<String>(at + 3)?)?,
        imported: r.get(at + 4)?,
        created_at: r.get(at + 5)?,
        not_before: r.get(at + 6)?,
        expires_at: r.get(at + 7)?,
        deprecated_at: r.get(at + 8)?,
        sunset_at: r.get(at + 9)?,
        revoked_at: r.get(at + 10)?,
        revoke_reason: r.get(at + 11)?,
    })
}

impl KeyInfo {
    /// A new active key's state.
    fn active(key_id: KeyId, req: &IssueRequest, imported: bool, created_at: u64) -> Self {
        KeyInfo {
            key_id,
            principal: req.principal.clone(),
            scopes: req.scopes.clone(),
            status: KeyStatus::Active,
            imported,
            created_at,
            not_before: req.not_before.unwrap_or(0),
            expires_at: req.expires_in.map(|d| created_at.saturating_add(d)),
            deprecated_at: None,
            sunset_at: None,
            revoked_at: None,
            revoke_reason: None,
        }
    }
}

pub(crate) const KEY_COLUMNS: &str =
    "key_id, principal, scopes, status, imported, created_at, not_before, expires_at,
     deprecated_at, sunset_at, revoked_at, revoke_reason";

impl Issuer {
    /// Creates a new store in `dir` for `keyset` with key `prefix`, with its
    /// first signing key and trust bundle.
    pub fn init(dir: &Path, keyset: &str, prefix: &str, actor: &str) -> Result<Self> {
        Self::init_at(&StoreAt::Dir(dir.to_path_buf()), keyset, prefix, actor)
    }

    /// [`Issuer::init`] at a directory or a PostgreSQL database. A
    /// PostgreSQL store needs a seal key file; `init` creates it (mode
    /// 0600) when it does not exist yet.
    pub fn init_at(at: &StoreAt, keyset: &str, prefix: &str, actor: &str) -> Result<Self> {
        let name = Name::new(keyset).ok_or_else(|| {
            IssuerError::Invalid(format!(
                "keyset name must be 1-63 chars of [A-Za-z0-9._-]: {keyset:?}"
            ))
        })?;
        Prefix::new(prefix).ok_or_else(|| {
            IssuerError::Invalid(format!(
                "prefix must be 1-15 chars of [a-z][a-z0-9_]* not ending in '_': {prefix:?}"
            ))
        })?;
        check_actor(actor)?;
        let db = match at {
            StoreAt::Dir(dir) => {
                create_private_dir(dir)?;
                let file = db::Sqlite::file(dir);
                if file.exists() {
                    return Err(IssuerError::AlreadyInitialized(at.to_string()));
                }
                let conn = db::Sqlite::open(dir)?;
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                }
                Db::new(Box::new(conn))
            }
            StoreAt::Postgres { url, seal_key_file } => {
                let file = seal_key_file.as_ref().ok_or_else(|| {
                    IssuerError::Invalid(
                        "a PostgreSQL store keeps its signing keys sealed: set KEYGATE_SEAL_KEY_FILE (created when missing)".into(),
                    )
                })?;
                // Refused before a seal key file is made for nothing.
                let probe = Db::new(Box::new(db::Postgres::connect(url, None)?));
                store::migrate(&probe)?;
                if store::get_meta(&probe, "keyset")?.is_some() {
                    return Err(IssuerError::AlreadyInitialized(at.to_string()));
                }
                drop(probe);
                db::seal_key(file, true)?;
                Db::new(Box::new(db::Postgres::connect(url, Some(file.clone()))?))
            }
        };
        store::migrate(&db)?;
        let mut me = Self {
            at: at.clone(),
            db,
            actor: actor.into(),
            now: None,
            in_atomic: false,
            savepoints: 0,
            idempotency_swept_at: 0,
            admins: Default::default(),
            prefix: None,
            audit_verified: None,
            published: None,
        };
        let now = me.now();
        let (signer, pkcs8) = Signer::generate();
        let bundle = build_bundle(&name, 1, now, &[signer.trusted()], &[&signer]);
        let (tx, actor) = me.write()?;
        // Two inits racing on one database: the second finds the first's.
        if store::get_meta(&tx, "keyset")?.is_some() {
            return Err(IssuerError::AlreadyInitialized(at.to_string()));
        }
        tx.store(Blob::Signer(&signer.id().to_string()), &pkcs8)?;
        store::set_meta(&tx, "keyset", keyset)?;
        store::set_meta(&tx, "prefix", prefix)?;
        tx.execute(
            "INSERT INTO signers (id, public_key, created_at, state) VALUES (?1, ?2, ?3, 'active')",
            args![signer.id().to_string(), signer.public_key().to_vec(), now],
        )?;
        tx.execute(
            "INSERT INTO trust_chain (version, bundle) VALUES (1, ?1)",
            args![bundle],
        )?;
        audit::note(
            &tx,
            actor,
            now,
            "init",
            None,
            None,
            Some(&format!(
                "keyset {keyset}, prefix {prefix}, signer {}",
                signer.id()
            )),
        )?;
        tx.commit()?;
        Ok(me)
    }

    /// Opens an existing store.
    pub fn open(dir: &Path, actor: &str) -> Result<Self> {
        Self::open_at(&StoreAt::Dir(dir.to_path_buf()), actor)
    }

    /// Opens an existing store at a directory or a PostgreSQL database.
    /// Without its seal key, a PostgreSQL store opens for everything but
    /// signing (publish, signer rotation), which is refused.
    pub fn open_at(at: &StoreAt, actor: &str) -> Result<Self> {
        check_actor(actor)?;
        let db = match at {
            StoreAt::Dir(dir) => {
                if !db::Sqlite::file(dir).is_file() {
                    return Err(IssuerError::NoStore(at.to_string()));
                }
                Db::new(Box::new(db::Sqlite::open(dir)?))
            }
            StoreAt::Postgres { url, seal_key_file } => {
                Db::new(Box::new(db::Postgres::connect(url, seal_key_file.clone())?))
            }
        };
        if !store::is_store(&db)? {
            return Err(IssuerError::NoStore(at.to_string()));
        }
        store::migrate(&db)?;
        Ok(Self {
            at: at.clone(),
            db,
            actor: actor.into(),
            now: None,
            in_atomic: false,
            savepoints: 0,
            idempotency_swept_at: 0,
            admins: Default::default(),
            prefix: None,
            audit_verified: None,
            published: None,
        })
    }

    /// Opens another connection to the same store (a publisher or a
    /// worker thread of its own), as the same actor.
    pub fn reopen(&self) -> Result<Self> {
        let mut i = Self::open_at(&self.at, &self.actor)?;
        i.now = self.now;
        Ok(i)
    }

    /// Where this store is.
    pub fn location(&self) -> &StoreAt {
        &self.at
    }

    /// Fixes the clock (unix seconds) for tests, demos and drills.
    pub fn set_now(&mut self, now: Option<u64>) {
        self.now = now;
    }

    /// The issuer's current time.
    pub fn now(&self) -> u64 {
        self.now.unwrap_or_else(system_now)
    }

    /// Who the next changes are made by, for the audit log (the API sets
    /// the admin key's principal per request). Refused like `--actor`.
    pub fn set_actor(&mut self, actor: &str) -> Result<()> {
        check_actor(actor)?;
        self.actor = actor.to_string();
        Ok(())
    }

    /// The sequence number of the newest audit entry (0 for none): a
    /// publisher polls it to learn that something changed.
    pub fn audit_head_seq(&self) -> Result<u64> {
        Ok(audit::last(&self.db)?.map_or(0, |(seq, _)| seq))
    }

    /// What changed after audit entry `seq` that gateways do not have yet:
    /// revocations (for the fast update) and anything a full snapshot must
    /// carry (new, rotated or imported keys, signer changes). Publishes and
    /// admin keys change nothing gateways get. A publisher polls this.
    pub fn unpublished_since(&self, seq: u64) -> Result<Unpublished> {
        /// Entries that change nothing in the published artifacts.
        const UNPUBLISHED_BY_NATURE: [&str; 6] = [
            "publish",
            "publish-revocations",
            "publish-update",
            "admin-key",
            "admin-key-revoke",
            "admin-key-rotate",
        ];
        let actions = self.db.query_map(
            "SELECT DISTINCT action FROM audit WHERE seq > ?1",
            args![seq],
            |r| r.get::<String>(0),
        )?;
        let mut u = Unpublished::default();
        for action in actions {
            match action.as_str() {
                "revoke" => u.revocations = true,
                a if UNPUBLISHED_BY_NATURE.contains(&a) => {}
                _ => u.snapshot = true,
            }
        }
        Ok(u)
    }

    /// The audit sequence the last full publish covered: every change up to
    /// it is in the published snapshot (0 before the first publish).
    pub fn published_seq(&self) -> Result<u64> {
        store::get_meta_u64(&self.db, "published_seq")
    }

    /// The audit sequence the published artifacts cover, the last update
    /// included: every change up to it is at the gateways' origin.
    pub fn published_through(&self) -> Result<u64> {
        Ok(store::get_meta_u64(&self.db, "published_through")?
            .max(store::get_meta_u64(&self.db, "published_seq")?))
    }

    /// Whether a snapshot was published from this store (an update needs
    /// one to build on). Read from the store's bookkeeping, not by loading
    /// the snapshot's copy: the API's publisher asks every 100 ms, and at
    /// 1 M keys the copy is 65 MB.
    pub fn has_published(&self) -> Result<bool> {
        Ok(store::get_meta_u64(&self.db, "snapshot_version")? > 0)
    }

    /// Starts a mutation: an immediate (write-locking) transaction — or,
    /// inside [`Issuer::atomically`], a savepoint of the caller's — and who
    /// is making it, for the audit entry the mutation records in it.
    fn write(&mut self) -> Result<(Tx<'_>, &str)> {
        // Inside `atomically`, a write is part of its savepoint: an error
        // goes up to it and it undoes everything of `f` (no savepoint per
        // write: a round trip each on PostgreSQL).
        let w = if self.in_atomic {
            Tx::within(&self.db)
        } else {
            Tx::write(&self.db)?
        };
        Ok((w, &self.actor))
    }

    /// Runs `f` as one transaction: every change it makes commits together,
    /// or none does (a crash in between leaves nothing of it). The API
    /// issues a key and records its idempotency answer this way, so a retry
    /// after a crash finds either both or neither.
    /// Inside another `atomically`, it is a savepoint of that transaction:
    /// an error undoes only what `f` did.
    pub fn atomically<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.in_atomic {
            // Each savepoint its own name, and none released on success:
            // COMMIT keeps them all, a RELEASE would be one more round trip
            // per request on PostgreSQL, and a unique name makes the
            // rollback below undo exactly this `f` (with nested savepoints
            // left unreleased inside it).
            self.savepoints += 1;
            let name = format!("keygate_sp{}", self.savepoints);
            // Sent with the first statement of `f` that needs an answer.
            self.db.defer_batch(&format!("SAVEPOINT {name}"))?;
            // A deferred write of `f` fails `f`, never what runs after it.
            let r = f(self).and_then(|v| self.db.flush().map(|()| v));
            if r.is_err() {
                self.db.forget_head();
                self.admins.get_mut().clear();
                self.db.batch(&format!("ROLLBACK TO {name}"))?;
            }
            return r;
        }
        self.db.start_write()?;
        self.savepoints = 0;
        self.admins.get_mut().clear();
        self.in_atomic = true;
        let r = f(self);
        self.in_atomic = false;
        self.admins.get_mut().clear();
        self.db.end_write();
        match r {
            Ok(v) => match self.db.batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.db.batch("ROLLBACK");
                    Err(e)
                }
            },
            Err(e) => {
                let _ = self.db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Whether this process should publish on its own: with PostgreSQL, the
    /// one instance holding the leader lock (held while this connection
    /// lives; another instance takes over when it dies); with SQLite, always.
    pub fn try_lead(&self) -> Result<bool> {
        self.db.try_lead()
    }

    /// Keyset name, prefix, versions.
    pub fn info(&self) -> Result<StoreInfo> {
        Ok(StoreInfo {
            keyset: store::get_meta(&self.db, "keyset")?.unwrap_or_default(),
            prefix: store::get_meta(&self.db, "prefix")?.unwrap_or_default(),
            snapshot_version: store::get_meta_u64(&self.db, "snapshot_version")?,
            revocation_seq: store::get_meta_u64(&self.db, "revocation_seq")?,
            last_publish_at: store::get_meta(&self.db, "last_publish_at")?
                .and_then(|v| v.parse().ok()),
        })
    }

    fn prefix(&mut self) -> Result<String> {
        if let Some(p) = &self.prefix {
            return Ok(p.clone());
        }
        let p = store::get_meta(&self.db, "prefix")?
            .ok_or_else(|| IssuerError::Corrupt("no prefix".into()))?;
        self.prefix = Some(p.clone());
        Ok(p)
    }

    fn keyset(&self) -> Result<Name> {
        let k = store::get_meta(&self.db, "keyset")?.unwrap_or_default();
        Name::new(&k).ok_or_else(|| IssuerError::Corrupt("bad keyset name".into()))
    }

    /// Issues a key. The returned key is the only copy of its secret.
    pub fn issue(&mut self, req: &IssueRequest) -> Result<IssuedKey> {
        Ok(self.issue_many(req, 1, |_| {})?.remove(0))
    }

    /// Issues `count` keys for one principal in a single transaction (bulk
    /// migrations, load tests); `progress` is called after each key.
    pub fn issue_many(
        &mut self,
        req: &IssueRequest,
        count: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<IssuedKey>> {
        if let Some(t) = req.not_before {
            check_time("--not-before", t)?;
        }
        if count == 0 {
            return Err(IssuerError::Invalid("count must be at least 1".into()));
        }
        // A class given here is recorded first; the principal's class (new or
        // existing) sets the lifetime unless one is given.
        if let Some(class) = &req.class {
            self.set_principal_class(&req.principal, class)?;
        }
        let mut req = req.clone();
        if req.expires_in.is_none() {
            req.expires_in = self.principal_policy(&req.principal)?.map(|p| p.max_age);
        }
        let req = &req;
        let prefix = self.prefix()?;
        let now = self.now();
        if let Some(d) = req.expires_in {
            check_time("the expiry", now.saturating_add(d))?;
        }
        let (tx, actor) = self.write()?;
        let mut out = Vec::with_capacity(count as usize);
        // Up to 1000 keys get an entry each; a larger bulk issue gets one
        // entry whose digest covers every row it inserted.
        let bulk = count > 1000;
        let batch_seq = audit::next_seq(&tx)?;
        let mut rows = Vec::new();
        for i in 0..count {
            let key = ApiKey::generate(&prefix).map_err(|e| IssuerError::Corrupt(e.to_string()))?;
            let info = KeyInfo::active(key.key_id(), req, false, now);
            if bulk {
                insert_key(&tx, &key.digest(), &info, batch_seq)?;
                let h = audit::key_row_hash(&key.digest().0, &info, batch_seq);
                rows.push((info.key_id.to_string(), h));
            } else {
                record_created(&tx, actor, now, "issue", &key.digest(), &info, None)?;
            }
            out.push(IssuedKey { key, info });
            progress(i + 1);
        }
        if bulk {
            let seq = audit::append(
                &tx,
                actor,
                now,
                audit::Event {
                    action: "issue-batch",
                    key_id: None,
                    principal: Some(req.principal.as_str()),
                    reason: Some(&format!("bulk issue of {count} keys")),
                    row: Some(audit::RowChange {
                        after: audit::batch_digest(&mut rows),
                        before: None,
                    }),
                },
            )?;
            debug_assert_eq!(seq, batch_seq);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Imports an existing key by its SHA-256 digest (no secret needed).
    pub fn import(
        &mut self,
        principal: &str,
        digest: Digest,
        scopes: &[String],
        expires_at: Option<u64>,
    ) -> Result<KeyInfo> {
        let one = Import {
            principal: Principal::new(principal)?,
            digest,
            scopes: Scope::all(scopes.iter().cloned())?,
            expires_at,
        };
        Ok(self.import_many(&[one])?.remove(0))
    }

    /// Imports keys by digest in one transaction: every item is checked
    /// first, and a bad or duplicate one imports none of them.
    pub fn import_many(&mut self, items: &[Import]) -> Result<Vec<KeyInfo>> {
        for it in items {
            if let Some(t) = it.expires_at {
                check_time("expires_at", t)?;
            }
        }
        let now = self.now();
        let (tx, actor) = self.write()?;
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let req = IssueRequest {
                scopes: it.scopes.clone(),
                ..IssueRequest::new(it.principal.clone())
            };
            let mut info = KeyInfo::active(it.digest.key_id(), &req, true, now);
            info.expires_at = it.expires_at;
            record_created(&tx, actor, now, "import", &it.digest, &info, None)?;
            out.push(info);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Rotates a principal: a new key with the same scopes (and lifetime), and
    /// its current active keys become deprecated with sunset = now + grace.
    pub fn rotate(
        &mut self,
        principal: &str,
        grace: Option<u64>,
    ) -> Result<(IssuedKey, Vec<KeyInfo>)> {
        self.rotate_selected(principal, None, grace)
    }

    /// Rotates one key: a new key for its principal with its scopes and
    /// lifetime, and only this key deprecated with `grace` (a principal with
    /// a key per region or instance rotates them one at a time). `NotFound`
    /// unless the key exists and is active.
    pub fn rotate_key(
        &mut self,
        id: &KeyId,
        grace: Option<u64>,
    ) -> Result<(IssuedKey, Vec<KeyInfo>)> {
        let k = self
            .key(id)?
            .ok_or_else(|| IssuerError::NotFound(format!("key {id}")))?;
        self.rotate_selected(&k.principal.clone(), Some(&k.key_id), grace)
    }

    fn rotate_selected(
        &mut self,
        principal: &str,
        only: Option<&KeyId>,
        grace: Option<u64>,
    ) -> Result<(IssuedKey, Vec<KeyInfo>)> {
        let now = self.now();
        let policy = self.principal_policy(principal)?;
        let grace =
            grace.unwrap_or_else(|| policy.as_ref().map_or(policy::DEFAULT_GRACE, |p| p.grace));
        let current: Vec<KeyInfo> = self
            .list(Some(principal), Some(KeyStatus::Active))?
            .into_iter()
            .filter(|k| k.expires_at.is_none_or(|e| e > now))
            .filter(|k| only.is_none_or(|id| k.key_id == *id))
            .collect();
        if let (Some(id), true) = (only, current.is_empty()) {
            return Err(IssuerError::NotFound(format!(
                "key {id} is not an active key"
            )));
        }
        let newest = current.iter().max_by_key(|k| k.created_at).ok_or_else(|| {
            IssuerError::NotFound(format!("principal '{principal}' has no active key"))
        })?;
        let req = IssueRequest {
            principal: Principal::new(principal)?,
            scopes: newest.scopes.clone(),
            // The class's max-age, else the old key's lifetime.
            expires_in: policy.as_ref().map(|p| p.max_age).or(newest
                .expires_at
                .map(|e| e.saturating_sub(newest.created_at))),
            not_before: None,
            class: None,
        };
        let prefix = self.prefix()?;
        let sunset = check_time("the end of the grace window", now.saturating_add(grace))?;
        if let Some(d) = req.expires_in {
            check_time("the new key's expiry", now.saturating_add(d))?;
        }
        let key = ApiKey::generate(&prefix).map_err(|e| IssuerError::Corrupt(e.to_string()))?;
        let info = KeyInfo::active(key.key_id(), &req, false, now);
        let (tx, actor) = self.write()?;
        record_created(
            &tx,
            actor,
            now,
            "rotate",
            &key.digest(),
            &info,
            Some("new key"),
        )?;
        let mut deprecated = Vec::new();
        for old in &current {
            record_changed(
                &tx,
                actor,
                now,
                audit::Event {
                    action: "deprecate",
                    key_id: Some(&old.key_id.to_string()),
                    principal: Some(principal),
                    reason: Some(&format!("rotated; sunset {sunset}")),
                    row: None,
                },
                |tx| {
                    tx.execute(
                        "UPDATE keys SET status = 'deprecated', deprecated_at = ?2, sunset_at = ?3,
                           expires_at = CASE WHEN expires_at IS NULL OR expires_at > ?3 THEN ?3 ELSE expires_at END
                         WHERE key_id = ?1",
                        args![old.key_id, now, sunset],
                    )
                },
            )?;
            let mut o = old.clone();
            o.status = KeyStatus::Deprecated;
            o.deprecated_at = Some(now);
            o.sunset_at = Some(sunset);
            o.expires_at = Some(o.expires_at.map_or(sunset, |e| e.min(sunset)));
            deprecated.push(o);
        }
        tx.commit()?;
        Ok((IssuedKey { key, info }, deprecated))
    }

    /// Revokes keys, immediately and idempotently. Unknown ids are an error and
    /// nothing is changed.
    pub fn revoke(&mut self, target: &RevokeTarget, reason: Option<&str>) -> Result<Vec<Revoked>> {
        if reason.is_some_and(|r| r.len() > MAX_REASON_LEN) {
            return Err(IssuerError::Invalid(format!(
                "reason must be at most {MAX_REASON_LEN} bytes"
            )));
        }
        let now = self.now();
        let (tx, actor) = self.write()?;
        let status = |r: &db::Row, i: usize| KeyStatus::from_store(&r.get::<String>(i)?);
        let rows: Vec<(KeyId, Principal, KeyStatus)> = match target {
            RevokeTarget::Ids(ids) => {
                let mut v = Vec::new();
                for id in ids {
                    let r: Option<(Principal, KeyStatus)> = tx.query_opt(
                        "SELECT principal, status FROM keys WHERE key_id = ?1",
                        args![id],
                        |r| Ok((r.get(0)?, status(r, 1)?)),
                    )?;
                    let (p, s) = r.ok_or_else(|| IssuerError::NotFound(format!("key {id}")))?;
                    v.push((*id, p, s));
                }
                v
            }
            RevokeTarget::Principal(p) => {
                let v: Vec<_> = tx.query_map(
                    "SELECT key_id, principal, status FROM keys WHERE principal = ?1 ORDER BY created_at, key_id",
                    args![p],
                    |r| Ok((r.get(0)?, r.get(1)?, status(r, 2)?)),
                )?;
                if v.is_empty() {
                    return Err(IssuerError::NotFound(format!("principal '{p}'")));
                }
                v
            }
        };
        let mut out = Vec::new();
        for (id, principal, status) in rows {
            let already = status == KeyStatus::Revoked;
            if !already {
                record_changed(
                    &tx,
                    actor,
                    now,
                    audit::Event {
                        action: "revoke",
                        key_id: Some(&id.to_string()),
                        principal: Some(principal.as_str()),
                        reason,
                        row: None,
                    },
                    |tx| {
                        tx.execute(
                            "UPDATE keys SET status = 'revoked', revoked_at = ?2, revoke_reason = ?3 WHERE key_id = ?1",
                            args![id, now, reason],
                        )
                    },
                )?;
            }
            out.push(Revoked {
                key_id: id,
                principal,
                already_revoked: already,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Keys, optionally for one principal and/or status, newest first.
    pub fn list(&self, principal: Option<&str>, status: Option<KeyStatus>) -> Result<Vec<KeyInfo>> {
        let status = status.map(KeyStatus::as_str);
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE principal = COALESCE(?1, principal) AND status = COALESCE(?2, status)
             ORDER BY created_at DESC, key_id"
        );
        self.db.query_map(&sql, args![principal, status], row_info)
    }

    /// One page of keys, newest first (in the order they were made): at most `limit` (1-1000), after
    /// the key `after` (the last of the previous page), and whether more
    /// follow. Pages stay put while keys are added (new keys sort first).
    pub fn list_page(
        &self,
        principal: Option<&str>,
        status: Option<KeyStatus>,
        after: Option<&KeyId>,
        limit: usize,
    ) -> Result<(Vec<KeyInfo>, bool)> {
        if !(1..=1000).contains(&limit) {
            return Err(IssuerError::Invalid("limit must be 1-1000".into()));
        }
        let status = status.map(KeyStatus::as_str);
        let filter = "principal = COALESCE(?1, principal) AND status = COALESCE(?2, status)";
        // Creation order (the audit entry that made the key): a key added
        // while a client pages sorts before its first page, never into a
        // later one, even within one second.
        let order = "ORDER BY origin_seq DESC, key_id LIMIT ?3";
        let mut keys = match after {
            None => self.db.query_map(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE {filter} {order}"),
                args![principal, status, limit + 1],
                row_info,
            )?,
            Some(id) => {
                let at: u64 = self
                    .db
                    .query_opt(
                        "SELECT origin_seq FROM keys WHERE key_id = ?1",
                        args![id.to_string()],
                        |r| r.get(0),
                    )?
                    .ok_or_else(|| IssuerError::Invalid(format!("bad cursor: no key {id}")))?;
                self.db.query_map(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM keys WHERE {filter}
                         AND (origin_seq < ?4 OR (origin_seq = ?4 AND key_id > ?5)) {order}"
                    ),
                    args![principal, status, limit + 1, at, id.to_string()],
                    row_info,
                )?
            }
        };
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok((keys, more))
    }

    /// One key by id.
    pub fn key(&self, id: &KeyId) -> Result<Option<KeyInfo>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id = ?1");
        self.db.query_opt(&sql, args![id.to_string()], row_info)
    }

    fn active_signer(&self) -> Result<Signer> {
        let id: String = self
            .db
            .query_opt(
                "SELECT id FROM signers WHERE state = 'active'",
                args![],
                |r| r.get(0),
            )?
            .ok_or_else(|| IssuerError::Corrupt("no active signer".into()))?;
        self.load_signer(&id)
    }

    fn load_signer(&self, id: &str) -> Result<Signer> {
        let pkcs8 = self
            .db
            .load(Blob::Signer(id))?
            .ok_or_else(|| IssuerError::Corrupt(format!("signing key {id} is missing")))?;
        let s = Signer::from_pkcs8(&pkcs8)
            .map_err(|e| IssuerError::Corrupt(format!("signing key {id}: {e}")))?;
        if s.id().to_string() != id {
            return Err(IssuerError::Corrupt(format!(
                "signing key file for {id} holds another key"
            )));
        }
        Ok(s)
    }

    fn trust_chain(&self) -> Result<(Vec<u8>, u64)> {
        let rows: Vec<(u64, Vec<u8>)> = self.db.query_map(
            "SELECT version, bundle FROM trust_chain ORDER BY version",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let version = rows.last().map_or(0, |r| r.0);
        Ok((rows.into_iter().flat_map(|r| r.1).collect(), version))
    }

    /// The `.kgt` chain gateways are configured with.
    pub fn trust_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.trust_chain()?.0)
    }

    /// Starts a signer rotation: a new signing key; the next trust bundle lists
    /// old and new and is signed by both, so gateways trusting the old bundle
    /// follow. The old signer is dropped from the chain at the publish after next.
    pub fn rotate_signer(&mut self) -> Result<SignerRotation> {
        let now = self.now();
        let old = self.active_signer()?;
        if self.db.query_row(
            "SELECT count(*) FROM signers WHERE state = 'retiring'",
            args![],
            |r| r.get::<u64>(0),
        )? > 0
        {
            return Err(IssuerError::Conflict(
                "a signer rotation is already in progress: publish twice to finish it".into(),
            ));
        }
        let (new, pkcs8) = Signer::generate();
        let keyset = self.keyset()?;
        let (_, version) = self.trust_chain()?;
        let bundle = build_bundle(
            &keyset,
            version + 1,
            now,
            &[old.trusted(), new.trusted()],
            &[&old, &new],
        );
        let (tx, actor) = self.write()?;
        tx.store(Blob::Signer(&new.id().to_string()), &pkcs8)?;
        tx.execute(
            "UPDATE signers SET state = 'retiring', published_since = 0 WHERE id = ?1",
            args![old.id().to_string()],
        )?;
        tx.execute(
            "INSERT INTO signers (id, public_key, created_at, state) VALUES (?1, ?2, ?3, 'active')",
            args![new.id().to_string(), new.public_key().to_vec(), now],
        )?;
        tx.execute(
            "INSERT INTO trust_chain (version, bundle) VALUES (?1, ?2)",
            args![version + 1, bundle],
        )?;
        audit::note(
            &tx,
            actor,
            now,
            "signer-rotate",
            None,
            None,
            Some(&format!("new signer {}, retiring {}", new.id(), old.id())),
        )?;
        tx.commit()?;
        Ok(SignerRotation {
            new_signer: new.id().to_string(),
            retiring: old.id().to_string(),
            trust_version: version + 1,
        })
    }

    /// Publishes a full snapshot (and an empty update against it) and the trust
    /// chain into `out`, each file written atomically. The version is committed
    /// before any file is written, so a crash never reuses a version number.
    pub fn publish(&mut self, out: &Path, valid_for: u64) -> Result<PublishReport> {
        std::fs::create_dir_all(out)?;
        let _publishing = self.db.publish_lock()?;
        let signed = self.signed_head()?;
        let now = self.now();
        let keyset = self.keyset()?;
        let prefix = Prefix::new(&self.prefix()?)
            .ok_or_else(|| IssuerError::Corrupt("bad prefix".into()))?;
        let signer = self.active_signer()?;
        // The read: one consistent view of the store (a read transaction in
        // WAL mode), with only the publish lock held, so writers — the API —
        // carry on while the snapshot is built. Publishers are serialized by
        // that lock, so versions still go up in publish order and each
        // publish reads after the one before it.
        let read = if self.in_atomic {
            None
        } else {
            Some(Tx::read(&self.db)?)
        };
        check_audit(&self.db, signed)?;
        let verified = audit::last(&self.db)?.unwrap_or((0, [0; 32]));
        let version = store::get_meta_u64(&self.db, "snapshot_version")? + 1;
        let mut b = SnapshotBuilder::new(keyset, prefix, version, now)
            .valid_until(now.saturating_add(valid_for));
        let mut universe = Vec::new();
        self.db.for_each(
            &format!("SELECT digest, {KEY_COLUMNS} FROM keys"),
            args![],
            |r| {
                let digest: Vec<u8> = r.get(0)?;
                let digest = Digest(
                    digest
                        .try_into()
                        .map_err(|_| IssuerError::Corrupt("digest length".into()))?,
                );
                let i = row_info_at(r, 1)?;
                universe.push(digest.key_id());
                b.push(record_spec(digest, &i));
                Ok(())
            },
        )?;
        let head = audit::head(&self.db)?;
        let upto = self.audit_head_seq()?;
        let retiring: Option<(String, u64)> = self.db.query_opt(
            "SELECT id, published_since FROM signers WHERE state = 'retiring'",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        drop(read);
        self.audit_verified = Some(verified);
        let snapshot = b
            .audit_head(head)
            .build(&signer)
            .map_err(|e| IssuerError::Invalid(e.to_string()))?;
        // The update that starts this snapshot's series, built before the
        // write (its filter covers every key: not with the writers waiting).
        let spec = UpdateSpec {
            keyset,
            base_version: version,
            sequence: 1,
            created_at: now,
            valid_until: now.saturating_add(valid_for),
        };
        let update = build_update(&spec, &universe, &[], &signer)
            .map_err(|e| IssuerError::Corrupt(e.to_string()))?;
        // The write: only the bookkeeping, briefly.
        let (tx, actor) = self.write()?;
        // Finish a signer rotation whose two-signer bundle was already published.
        if let Some((old_id, published)) = &retiring {
            if *published > 0 {
                let version: u64 =
                    tx.query_row("SELECT max(version) FROM trust_chain", args![], |r| {
                        r.get(0)
                    })?;
                let bundle =
                    build_bundle(&keyset, version + 1, now, &[signer.trusted()], &[&signer]);
                tx.execute(
                    "INSERT INTO trust_chain (version, bundle) VALUES (?1, ?2)",
                    args![version + 1, bundle],
                )?;
                tx.execute(
                    "UPDATE signers SET state = 'retired' WHERE id = ?1",
                    args![old_id],
                )?;
                audit::note(&tx, actor, now, "signer-retire", None, None, Some(old_id))?;
            } else {
                tx.execute(
                    "UPDATE signers SET published_since = 1 WHERE id = ?1",
                    args![old_id],
                )?;
            }
        }
        audit::note(
            &tx,
            actor,
            now,
            "publish",
            None,
            None,
            Some(&format!("snapshot v{version}, {} keys", universe.len())),
        )?;
        store::set_meta(&tx, "snapshot_version", &version.to_string())?;
        store::set_meta(&tx, "revocation_seq", "1")?;
        store::set_meta(&tx, "last_publish_at", &now.to_string())?;
        store::set_meta(&tx, "published_seq", &upto.to_string())?;
        store::set_meta(&tx, "published_through", &upto.to_string())?;
        tx.commit()?;
        let (trust, trust_version) = self.trust_chain()?;
        // Trust first: a snapshot by a new signer must never arrive before it.
        self.db.store(Blob::Published, &snapshot)?;
        write_atomic(&out.join(Artifact::Trust.file_name()), &trust, 0o644)?;
        write_atomic(&out.join(Artifact::Snapshot.file_name()), &snapshot, 0o644)?;
        write_atomic(&out.join(Artifact::Revocations.file_name()), &update, 0o644)?;
        let report = PublishReport {
            dir: out.to_path_buf(),
            snapshot_version: version,
            revocation_seq: 1,
            keys: universe.len() as u64,
            revoked_in_update: 0,
            records_in_update: 0,
            snapshot_bytes: snapshot.len() as u64,
            revocations_bytes: update.len() as u64,
            trust_bytes: trust.len() as u64,
            trust_version,
            signer: signer.id().to_string(),
        };
        // The next update builds on this snapshot: keep it, and its key ids,
        // rather than read and check it again.
        self.published = Some(PublishedCopy {
            version,
            bytes: snapshot,
            universe,
        });
        Ok(report)
    }

    /// Writes just a new revocation update: [`Issuer::publish_update`] (the
    /// update now carries added and changed keys too; the name stays for
    /// existing callers).
    pub fn publish_revocations(&mut self, out: &Path, valid_for: u64) -> Result<PublishReport> {
        self.publish_update(out, valid_for)
    }

    /// Writes a new update against the last published snapshot: every key
    /// of it revoked since (the exact filter), and every key added or
    /// changed since (deprecated, re-scoped, a new expiry) as a record —
    /// the fast path after an issue, a rotation or a revoke, no snapshot
    /// rebuilt. A key added and revoked since is a revoked record.
    ///
    /// What changed is read under the store's write lock and the update is
    /// written under the publish lock, so an update never lacks a change
    /// acknowledged before it was built, and a newer sequence is never
    /// replaced on disk by an older one.
    pub fn publish_update(&mut self, out: &Path, valid_for: u64) -> Result<PublishReport> {
        let _publishing = self.db.publish_lock()?;
        // The published snapshot: this connection's validated copy while it
        // is still the published one (another instance may have published
        // since), else read and checked again.
        let current = store::get_meta_u64(&self.db, "snapshot_version")?;
        if self.published.as_ref().is_none_or(|p| p.version != current) {
            self.published = None;
            let bytes = self.db.load(Blob::Published)?.ok_or_else(|| {
                IssuerError::Invalid("nothing published yet: run `keygate publish` first".into())
            })?;
            let view = SnapshotView::parse_unverified(&bytes)?;
            let version = view.header().version;
            let universe = view.records().map(|r| r.key_id()).collect();
            self.published = Some(PublishedCopy {
                version,
                bytes,
                universe,
            });
        }
        let copy = self
            .published
            .take()
            .ok_or_else(|| IssuerError::Corrupt("published copy".into()))?;
        let r = self.publish_update_on(&copy, out, valid_for);
        self.published = Some(copy);
        r
    }

    fn publish_update_on(
        &mut self,
        copy: &PublishedCopy,
        out: &Path,
        valid_for: u64,
    ) -> Result<PublishReport> {
        let view = SnapshotView::parse_validated(&copy.bytes)?;
        let base = view.header().version;
        // The head this store signed into it (the copy was checked when
        // this connection read it).
        let unsigned_head = SignedHead {
            snapshot_version: base,
            head: view.header().audit_head,
        };
        let universe = &copy.universe;
        let now = self.now();
        let keyset = self.keyset()?;
        let signer = self.active_signer()?;
        // Everything but the bookkeeping from one read transaction: writers
        // (the API) go on meanwhile, and only the publish lock is held —
        // publishers take turns, so what this read sees of the bookkeeping
        // (the base, the sequence) is still so at the write below, and an
        // update never lacks a change committed before its read began.
        let read = self.read_tx()?;
        // The audit check: the whole chain and keys table the first time;
        // after that only the entries since, and below, the rows this
        // update publishes — so an update costs what changed, not the store.
        let verified = match self.audit_verified {
            Some(from) => audit::verify_since(&self.db, from)?.map_err(IssuerError::AuditBroken)?,
            None => {
                check_audit(&self.db, Some(self.head_of(&copy.bytes)?))?;
                audit::last(&self.db)?.unwrap_or((0, [0; 32]))
            }
        };
        if store::get_meta_u64(&self.db, "snapshot_version")? != base {
            return Err(IssuerError::Corrupt(
                "published snapshot copy does not match the store: run `keygate publish`".into(),
            ));
        }
        let since = store::get_meta_u64(&self.db, "published_seq")?;
        let changes = changes_since(&self.db, &view, since)?;
        // Every row this update publishes is the row the chain says: the
        // newest entries since the snapshot in one query, a key without
        // one looked up on its own.
        let newest = audit::row_hashes_since(&self.db, since)?;
        for (id, hash) in &changes.rows {
            let recorded = match newest.get(id) {
                Some(h) => Some(h.clone()),
                None => audit::last_row_hash(&self.db, id)?,
            };
            match recorded {
                Some(h) if h == audit::hex(hash) => {}
                // Only a bulk entry covers it: the full check, once.
                None => {
                    check_audit(&self.db, Some(unsigned_head))?;
                    break;
                }
                _ => {
                    return Err(IssuerError::AuditBroken(format!(
                        "key {id}: its row differs from the audit chain (edited outside keygate)"
                    )))
                }
            }
        }
        // Everything up to this read's head is in the update (it is
        // cumulative); a change committed since goes in the next one.
        let through = verified.0;
        let seq = store::get_meta_u64(&self.db, "revocation_seq")? + 1;
        drop(read);
        self.audit_verified = Some(verified);
        let spec = UpdateSpec {
            keyset,
            base_version: base,
            sequence: seq,
            created_at: now,
            valid_until: now.saturating_add(valid_for),
        };
        let (revoked, records_in_update) = (changes.revoked.len(), changes.records.len());
        let update = build_update_with(&spec, universe, &changes.revoked, changes.records, &signer)
            .map_err(|e| IssuerError::Corrupt(e.to_string()))?;
        // The write: only the bookkeeping, briefly.
        let (tx, actor) = self.write()?;
        if store::get_meta_u64(&tx, "snapshot_version")? != base
            || store::get_meta_u64(&tx, "revocation_seq")? + 1 != seq
        {
            return Err(IssuerError::Conflict(
                "another publisher changed the bookkeeping without the publish lock".into(),
            ));
        }
        store::set_meta(&tx, "published_through", &through.to_string())?;
        store::set_meta(&tx, "revocation_seq", &seq.to_string())?;
        audit::note(
            &tx,
            actor,
            now,
            "publish-update",
            None,
            None,
            Some(&format!(
                "base v{base}, seq {seq}, {revoked} revoked, {records_in_update} added or changed"
            )),
        )?;
        tx.commit()?;
        std::fs::create_dir_all(out)?;
        write_atomic(&out.join(Artifact::Revocations.file_name()), &update, 0o644)?;
        Ok(PublishReport {
            dir: out.to_path_buf(),
            snapshot_version: base,
            revocation_seq: seq,
            keys: universe.len() as u64,
            revoked_in_update: revoked as u64,
            records_in_update: records_in_update as u64,
            snapshot_bytes: 0,
            revocations_bytes: update.len() as u64,
            trust_bytes: 0,
            trust_version: self.trust_chain()?.1,
            signer: signer.id().to_string(),
        })
    }

    /// Whether `dir` holds the last published snapshot as published (an
    /// update is only worth writing beside it): false for a new directory,
    /// a missing, damaged or other snapshot there.
    pub fn is_published_in(&self, dir: &Path) -> Result<bool> {
        let Some(copy) = self.db.load(Blob::Published)? else {
            return Ok(false);
        };
        match std::fs::read(dir.join(Artifact::Snapshot.file_name())) {
            Ok(b) => Ok(b == copy),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn read_tx(&self) -> Result<Option<Tx<'_>>> {
        Ok(if self.in_atomic {
            None
        } else {
            Some(Tx::read(&self.db)?)
        })
    }

    /// Whether a signer rotation is under way: its trust bundles travel
    /// with full snapshots, so the next publish must be one.
    pub fn signer_rotation_pending(&self) -> Result<bool> {
        Ok(self.db.query_row(
            "SELECT count(*) FROM signers WHERE state = 'retiring'",
            args![],
            |r| r.get::<u64>(0),
        )? > 0)
    }

    /// What an update would carry now, without publishing: keys revoked
    /// since the last snapshot, and keys added or changed since it. `None`
    /// before the first publish. How `keygate publish` decides between an
    /// update and a full snapshot.
    pub fn pending_update(&self) -> Result<Option<PendingUpdate>> {
        let Some(published) = self.db.load(Blob::Published)? else {
            return Ok(None);
        };
        let view = SnapshotView::parse_unverified(&published)?;
        let read = if self.in_atomic {
            None
        } else {
            Some(Tx::read(&self.db)?)
        };
        let c = changes_since(
            &self.db,
            &view,
            store::get_meta_u64(&self.db, "published_seq")?,
        )?;
        drop(read);
        Ok(Some(PendingUpdate {
            snapshot_keys: u64::from(view.header().record_count),
            snapshot_created_at: view.header().created_at,
            revoked: c.revoked.len() as u64,
            records: c.records.len() as u64,
        }))
    }

    /// At most `limit` (1-1000) audit entries after sequence `after`,
    /// oldest first: how a client follows the log.
    pub fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        if !(1..=1000).contains(&limit) {
            return Err(IssuerError::Invalid("limit must be 1-1000".into()));
        }
        audit::log_after(&self.db, after, limit)
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        audit::log(&self.db)
    }

    /// Recomputes the audit chain, checks it against the head signed into the
    /// last published snapshot (the store's copy), and replays it against
    /// the keys table.
    pub fn audit_verify(&self) -> Result<AuditReport> {
        audit::verify(&self.db, self.signed_head()?)
    }

    /// [`Issuer::audit_verify`] against the head signed into `snapshot` (a
    /// published `.kgs`, e.g. a gateway's copy, which someone with access to
    /// the store cannot rewrite without the signing key). Its signature is
    /// checked against the store's trust chain.
    pub fn audit_verify_against(&self, snapshot: &[u8]) -> Result<AuditReport> {
        let head = self.head_of(snapshot)?;
        audit::verify(&self.db, Some(head))
    }

    fn head_of(&self, snapshot: &[u8]) -> Result<SignedHead> {
        let trust = keygate::TrustSet::from_chain(&self.trust_bytes()?)?;
        let view = SnapshotView::new(snapshot, &trust)?;
        Ok(SignedHead {
            snapshot_version: view.header().version,
            head: view.header().audit_head,
        })
    }

    /// The audit head signed into the store's copy of the last published
    /// snapshot, if anything was published.
    fn signed_head(&self) -> Result<Option<SignedHead>> {
        match self.db.load(Blob::Published)? {
            Some(b) => self.head_of(&b).map(Some),
            None => {
                if store::get_meta_u64(&self.db, "snapshot_version")? > 0 {
                    return Err(IssuerError::AuditBroken(
                        "the store has published snapshots but its copy of the last published snapshot is missing"
                            .into(),
                    ));
                }
                Ok(None)
            }
        }
    }

    /// Finds this keyset's keys in files under `paths` (see [`ScanOptions`]),
    /// calling `found` for each, in walk and file order, as the scan goes
    /// (memory stays bounded by the distinct keys, not the findings). With
    /// `revoke`, an active or deprecated key is revoked (reason "leaked") when
    /// first found, and reported revoked. Paths that could not be read are in
    /// the report, not an error; a store error ends the scan.
    pub fn scan(
        &mut self,
        paths: &[PathBuf],
        opts: &ScanOptions,
        revoke: bool,
        mut found: impl FnMut(&Finding),
    ) -> Result<ScanReport> {
        let matcher = scan::Matcher::new(&self.prefix()?);
        let mut report = ScanReport::default();
        // One store lookup (and revoke) per distinct key, however often it recurs.
        let mut known: std::collections::HashMap<KeyId, (String, Option<String>)> =
            std::collections::HashMap::new();
        let mut failed: Option<IssuerError> = None;
        scan::walk(paths, opts, |item| {
            let f = match item {
                Ok(f) if failed.is_none() => f,
                Ok(_) => return,
                Err(u) => return report.unreadable.push(u),
            };
            let mut hits = Vec::new();
            let r = std::fs::File::open(f)
                .and_then(|file| matcher.scan(file, |line, id| hits.push((line, id))));
            if let Err(e) = r {
                report.unreadable.push(Unreadable {
                    path: f.to_path_buf(),
                    error: e.to_string(),
                });
            }
            for (line, id) in hits {
                let (status, principal) = match known.get(&id) {
                    Some(k) => k.clone(),
                    None => match self.scan_status(&id, revoke) {
                        Ok((k, revoked)) => {
                            report.revoked += u64::from(revoked);
                            known.insert(id, k.clone());
                            k
                        }
                        Err(e) => {
                            failed = Some(e);
                            return;
                        }
                    },
                };
                report.findings += 1;
                found(&Finding {
                    path: f.to_path_buf(),
                    line,
                    key_id: id.to_string(),
                    status,
                    principal,
                });
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// A found key's status and principal, revoking it first (with `revoke`)
    /// when it is live; and whether it was revoked now.
    fn scan_status(
        &mut self,
        id: &KeyId,
        revoke: bool,
    ) -> Result<((String, Option<String>), bool)> {
        let Some(k) = self.key(id)? else {
            return Ok((("unknown".into(), None), false));
        };
        if revoke && k.status != KeyStatus::Revoked {
            self.revoke(&RevokeTarget::Ids(vec![*id]), Some("leaked"))?;
            return Ok((
                (
                    KeyStatus::Revoked.to_string(),
                    Some(k.principal.to_string()),
                ),
                true,
            ));
        }
        Ok(((k.status.to_string(), Some(k.principal.to_string())), false))
    }
}

/// The store a unit test runs on: a directory under `dir`, or with
/// `KEYGATE_TEST_BACKEND=postgres`, a new database in the cluster at
/// `KEYGATE_TEST_PG` (scripts/with-postgres.sh), its seal key under `dir`.
#[cfg(test)]
pub(crate) fn test_store(dir: &Path) -> StoreAt {
    if std::env::var("KEYGATE_TEST_BACKEND").as_deref() != Ok("postgres") {
        return StoreAt::Dir(dir.join("store"));
    }
    let admin = std::env::var("KEYGATE_TEST_PG").expect("KEYGATE_TEST_PG");
    let name = format!(
        "kgu_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let (head, _) = admin.rsplit_once('/').expect("a URL with a database");
    StoreAt::parse(&format!("{head}/{name}")).with_seal_key_file(Some(dir.join("seal.key")))
}

/// What an update would carry (see [`Issuer::pending_update`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PendingUpdate {
    /// Keys in the last published snapshot.
    pub snapshot_keys: u64,
    /// When that snapshot was made (unix seconds).
    pub snapshot_created_at: u64,
    /// Keys of it revoked since.
    pub revoked: u64,
    /// Keys added or changed since (records).
    pub records: u64,
}

/// A key's published record as the store holds it now.
fn record_spec(digest: Digest, i: &KeyInfo) -> RecordSpec {
    // Times are bounded at input; a row from before that bound is clamped
    // to the format's end rather than blocking every publish (a revocation
    // above all must still go out).
    let t = |t: u64| t.min(MAX_TIME);
    RecordSpec {
        digest,
        principal: i.principal.to_string(),
        scopes: i.scopes.iter().map(|s| s.to_string()).collect(),
        status: i.status.published(),
        imported: i.imported,
        not_before: t(i.not_before),
        expires_at: i.expires_at.map(t),
        deprecated_at: i.deprecated_at.map(t),
        sunset_at: i.sunset_at.map(t),
    }
}

/// What changed since the snapshot `view` (built when the audit chain was
/// at `since`): its keys revoked since (for the filter), and the keys made
/// or changed since as their records now. Only keys the chain names after
/// `since`, or made after it, are read — not the whole table.
struct Changes {
    revoked: Vec<KeyId>,
    records: Vec<RecordSpec>,
    /// Every row read (key id, row hash), to check against the chain.
    rows: Vec<(String, [u8; 32])>,
}

fn changes_since(db: &Db, view: &SnapshotView<'_>, since: u64) -> Result<Changes> {
    let mut c = Changes {
        revoked: Vec::new(),
        records: Vec::new(),
        rows: Vec::new(),
    };
    db.for_each(
        &format!(
            "SELECT digest, origin_seq, {KEY_COLUMNS} FROM keys
             WHERE origin_seq > ?1
                OR key_id IN (SELECT key_id FROM audit WHERE seq > ?1 AND key_id IS NOT NULL)"
        ),
        args![since],
        |r| {
            let digest = Digest(
                r.get::<Vec<u8>>(0)?
                    .try_into()
                    .map_err(|_| IssuerError::Corrupt("digest length".into()))?,
            );
            let info = row_info_at(r, 2)?;
            c.rows.push((
                info.key_id.to_string(),
                audit::key_row_hash(&digest.0, &info, r.get(1)?),
            ));
            let now = record_spec(digest, &info);
            match view.lookup(&digest) {
                // In the snapshot: revoked since goes in the filter (its
                // other changes no longer matter); any other change is a
                // record.
                Some(old) if old.status() != Status::Revoked && now.status == Status::Revoked => {
                    c.revoked.push(digest.key_id());
                }
                Some(old) if same_record(view, &old, &now) => {}
                Some(old) if old.status() == Status::Revoked => {}
                _ => c.records.push(now),
            }
            Ok(())
        },
    )?;
    Ok(c)
}

/// Whether the snapshot's `old` record says what `now` does.
fn same_record(view: &SnapshotView<'_>, old: &keygate::Record<'_>, now: &RecordSpec) -> bool {
    let mut scopes: Vec<&str> = view.scopes_of(old.scope_mask()).collect();
    scopes.sort_unstable();
    let mut want: Vec<&str> = now.scopes.iter().map(String::as_str).collect();
    want.sort_unstable();
    want.dedup();
    old.status() == now.status
        && old.imported() == now.imported
        && old.not_before() == now.not_before
        && old.expires_at() == now.expires_at
        && old.deprecated_at() == now.deprecated_at
        && old.sunset_at() == now.sunset_at
        && old.principal() == now.principal
        && scopes == want
}

/// Inserts a new key's row and its audit entry, which records the row's hash.
fn record_created(
    tx: &Db,
    actor: &str,
    now: u64,
    action: &str,
    digest: &Digest,
    info: &KeyInfo,
    reason: Option<&str>,
) -> Result<()> {
    let seq = audit::next_seq(tx)?;
    insert_key(tx, digest, info, seq)?;
    let after = audit::key_row_hash(&digest.0, info, seq);
    audit::append(
        tx,
        actor,
        now,
        audit::Event {
            action,
            key_id: Some(&info.key_id.to_string()),
            principal: Some(info.principal.as_str()),
            reason,
            row: Some(audit::RowChange {
                after,
                before: None,
            }),
        },
    )?;
    Ok(())
}

/// Changes one key's row with `update` and appends `ev`, recording the row's
/// hash before and after.
fn record_changed(
    tx: &Db,
    actor: &str,
    now: u64,
    mut ev: audit::Event<'_>,
    update: impl FnOnce(&Db) -> Result<u64>,
) -> Result<()> {
    let id = ev.key_id.unwrap_or_default();
    let before = row_hash_in(tx, id)?;
    update(tx)?;
    ev.row = Some(audit::RowChange {
        after: row_hash_in(tx, id)?,
        before: Some(before),
    });
    audit::append(tx, actor, now, ev)?;
    Ok(())
}

/// The hash of key `id`'s row as stored.
fn row_hash_in(conn: &Db, id: &str) -> Result<[u8; 32]> {
    let sql = format!("SELECT digest, origin_seq, {KEY_COLUMNS} FROM keys WHERE key_id = ?1");
    let (digest, origin, info): (Vec<u8>, u64, KeyInfo) = conn
        .query_opt(&sql, args![id], |r| {
            Ok((r.get(0)?, r.get(1)?, row_info_at(r, 2)?))
        })?
        .ok_or_else(|| IssuerError::NotFound(format!("key {id}")))?;
    Ok(audit::key_row_hash(&digest, &info, origin))
}

/// Puts every row not yet covered by the audit chain (`origin_seq` 0: a store
/// from before the chain covered keys) under one `checkpoint` entry. Runs once,
/// in the migration that adds the columns.
pub(crate) fn checkpoint_rows(tx: &Db) -> Result<()> {
    let uncovered: u64 = tx.query_row(
        "SELECT count(*) FROM keys WHERE origin_seq = 0",
        args![],
        |r| r.get(0),
    )?;
    if uncovered == 0 {
        return Ok(());
    }
    let seq = audit::next_seq(tx)?;
    tx.execute(
        "UPDATE keys SET origin_seq = ?1 WHERE origin_seq = 0",
        args![seq],
    )?;
    let mut rows = Vec::new();
    tx.for_each(
        &format!("SELECT digest, origin_seq, {KEY_COLUMNS} FROM keys WHERE origin_seq = ?1"),
        args![seq],
        |r| {
            let digest: Vec<u8> = r.get(0)?;
            let info = row_info_at(r, 2)?;
            rows.push((
                info.key_id.to_string(),
                audit::key_row_hash(&digest, &info, seq),
            ));
            Ok(())
        },
    )?;
    let now = system_now();
    audit::append(
        tx,
        "keygate-migration",
        now,
        audit::Event {
            action: "checkpoint",
            key_id: None,
            principal: None,
            reason: Some(&format!(
                "{uncovered} keys from before the audit chain covered key rows"
            )),
            row: Some(audit::RowChange {
                after: audit::batch_digest(&mut rows),
                before: None,
            }),
        },
    )?;
    Ok(())
}

/// Refuses to go on from a store whose audit chain or keys table was changed
/// outside keygate.
fn check_audit(conn: &Db, signed: Option<SignedHead>) -> Result<()> {
    let r = audit::verify(conn, signed)?;
    match r.first_bad {
        None => Ok(()),
        Some((0, why)) => Err(IssuerError::AuditBroken(why)),
        Some((seq, why)) => Err(IssuerError::AuditBroken(format!("entry {seq}: {why}"))),
    }
}

/// Creates the store directory (and missing parents) readable by its owner
/// only, whatever the umask; an existing directory is left as it is.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn insert_key(tx: &Db, digest: &Digest, i: &KeyInfo, origin_seq: u64) -> Result<()> {
    // Deferred (PostgreSQL: sent with the next statement that needs an
    // answer); a key that exists fails the change there.
    tx.defer(
        "INSERT INTO keys (key_id, digest, principal, scopes, status, imported, created_at, not_before, expires_at, origin_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (key_id) DO NOTHING",
        args![i.key_id, digest.0.to_vec(), i.principal, Scope::join(&i.scopes), i.status.as_str(), i.imported, i.created_at, i.not_before, i.expires_at, origin_seq],
        Some((1, IssuerError::Conflict(format!("key {} already exists", i.key_id)))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write sent later (deferred on PostgreSQL) still fails its change
    /// where it belongs: a duplicate in an import refuses the whole import,
    /// and the store goes on as before.
    #[test]
    fn a_duplicate_import_imports_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = Issuer::init_at(&test_store(dir.path()), "acme", "acme_live", "test").unwrap();
        let digest = |b: u8| Digest([b; 32]);
        let item = |b: u8| Import {
            principal: Principal::new(format!("p{b}")).unwrap(),
            digest: digest(b),
            scopes: Vec::new(),
            expires_at: None,
        };
        i.import_many(&[item(1)]).unwrap();
        let entries = i.audit_verify().unwrap().entries;
        let err = i.import_many(&[item(2), item(1), item(3)]).unwrap_err();
        assert!(
            matches!(&err, IssuerError::Conflict(m) if m.contains("already exists")),
            "{err:?}"
        );
        let keys = i.list(None, None).unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let report = i.audit_verify().unwrap();
        assert_eq!(report.entries, entries);
        assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
        // The next change works.
        i.import_many(&[item(2)]).unwrap();
        assert_eq!(i.list(None, None).unwrap().len(), 2);
    }
}
