//! The store behind the issuer: one [`Backend`] trait, two engines.
//!
//! - **SQLite** (the embedded default): a directory holding `keygate.db`,
//!   the signing keys (`signer-<id>.pk8`, mode 0600) and `published.kgs`.
//!   Writers are serialized by `BEGIN IMMEDIATE`; publishers by a file lock.
//! - **PostgreSQL** (`postgres://…`): everything in the database, for more
//!   than one issuer instance. Writers are serialized by a transaction-level
//!   advisory lock taken first in every write (the append to the audit chain
//!   happens under it), so the chain stays one chain and sequence numbers
//!   are never reused; publishers by a second advisory lock. Signing keys are stored sealed (ChaCha20-Poly1305)
//!   under a key the database never sees (`KEYGATE_SEAL_KEY_FILE`).
//!
//! The issuer writes SQL once, with `?N` placeholders and the types both
//! engines share (64-bit integers, text, bytes); each backend binds and reads
//! [`Value`]s. No engine type leaves this module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::IssuerError;

type Result<T> = std::result::Result<T, IssuerError>;

/// One SQL value, as both engines store it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A Rust value bound to a placeholder.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                // Every number the issuer stores is bounded far below i64::MAX
                // (times by MAX_TIME, counts by rows).
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_value!(i64, u64, u32, u16, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// `args![a, b]`: the values bound to `?1`, `?2`.
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::db::ToValue::to_value(&$v)),*][..] };
}
pub(crate) use args;

/// A column read back as a Rust value.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self>;
}

fn wrong(want: &str, v: &Value) -> IssuerError {
    IssuerError::Corrupt(format!("store column holds {v:?}, expected {want}"))
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Int(i) => Ok(*i),
            _ => Err(wrong("an integer", v)),
        }
    }
}
impl FromValue for u64 {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            _ => Err(wrong("a non-negative integer", v)),
        }
    }
}
impl FromValue for u16 {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Int(i) => u16::try_from(*i).map_err(|_| wrong("a 16-bit integer", v)),
            _ => Err(wrong("a 16-bit integer", v)),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Int(i) => Ok(*i != 0),
            _ => Err(wrong("a boolean", v)),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(wrong("text", v)),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            _ => Err(wrong("bytes", v)),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
pub(crate) struct Row(Vec<Value>);

impl Row {
    /// Column `i` as a `T`.
    pub(crate) fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| IssuerError::Corrupt(format!("store row has no column {i}")))?;
        T::from_value(v)
    }
}

/// Which engine a store is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// What a store holds besides its tables.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Blob<'a> {
    /// A signer's PKCS#8 private key (secret).
    Signer(&'a str),
    /// The store's copy of the last published snapshot.
    Published,
}

/// Held while publishing; released when dropped.
pub(crate) struct PublishGuard(#[allow(dead_code)] Box<dyn Send>);

/// What the issuer needs of a database engine.
pub(crate) trait Backend: Send {
    fn engine(&self) -> Engine;
    /// Runs one statement with `?N` placeholders; the rows it changed.
    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64>;
    /// Runs a query, calling `f` for each row as it arrives.
    fn each(&self, sql: &str, args: &[Value], f: &mut dyn FnMut(Row) -> Result<()>) -> Result<()>;
    /// Runs statements without arguments (DDL, savepoints).
    fn batch(&self, sql: &str) -> Result<()>;
    /// Runs a write whose answer is not needed at once: `rows`, when
    /// given, is the count it must change, else `mismatch` is the error.
    /// PostgreSQL sends it with the next statement that needs an answer
    /// (one round trip for both), and its error comes from that call —
    /// inside the same transaction or savepoint, as
    /// [`super::Issuer::atomically`] ends each savepoint with [`Self::flush`].
    /// SQLite runs it at once.
    fn defer(&self, sql: &str, args: &[Value], rows: Option<(u64, IssuerError)>) -> Result<()> {
        let n = self.execute(sql, args)?;
        match rows {
            Some((want, mismatch)) if n != want => Err(mismatch),
            _ => Ok(()),
        }
    }
    /// [`Self::defer`] for a statement without arguments.
    fn defer_batch(&self, sql: &str) -> Result<()> {
        self.batch(sql)
    }
    /// Runs every deferred statement now; the first error.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Starts a write transaction that excludes every other writer.
    fn begin_write(&self) -> Result<()>;
    /// Starts a read transaction: one consistent view, writers go on.
    fn begin_read(&self) -> Result<()>;
    /// A blob, if present.
    fn load(&self, blob: Blob<'_>) -> Result<Option<Vec<u8>>>;
    /// Stores a blob. A signer key is never overwritten.
    fn store(&self, blob: Blob<'_>, data: &[u8]) -> Result<()>;
    /// Serializes publishers (across processes and instances).
    fn publish_lock(&self) -> Result<PublishGuard>;
    /// Tries to become the one instance that publishes on its own; holds
    /// while this connection lives.
    fn try_lead(&self) -> Result<bool>;
}

/// Where a store lives: a directory (SQLite) or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreAt {
    /// An SQLite store directory.
    Dir(PathBuf),
    /// A PostgreSQL database (`postgres://…` or `postgresql://…`), with the
    /// file holding the key that seals its signing keys.
    Postgres {
        /// Connection URL (may hold a password: never printed).
        url: String,
        /// File of 64 hex characters (created by `init` when missing).
        seal_key_file: Option<PathBuf>,
    },
}

impl std::fmt::Debug for StoreAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for StoreAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "{}", d.display()),
            Self::Postgres { url, .. } => f.write_str(&redact_url(url)),
        }
    }
}

impl StoreAt {
    /// `--store` as given: a `postgres://` or `postgresql://` URL, else a
    /// directory. The seal key file of a PostgreSQL store is set apart.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Self::Postgres {
                url: s.to_owned(),
                seal_key_file: None,
            }
        } else {
            Self::Dir(PathBuf::from(s))
        }
    }

    /// With the file holding a PostgreSQL store's seal key.
    #[must_use]
    pub fn with_seal_key_file(self, file: Option<PathBuf>) -> Self {
        match self {
            Self::Postgres { url, .. } => Self::Postgres {
                url,
                seal_key_file: file,
            },
            d => d,
        }
    }

    /// Whether this is a PostgreSQL store.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

/// A URL with its password (if any) replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (a, h),
        None => return url.into(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.into(),
    }
}

/// A store's connection: the backend, with the query shapes the issuer uses.
pub(crate) struct Db {
    backend: Box<dyn Backend>,
    /// The audit chain's head (sequence, hash) as this connection last
    /// wrote it, valid only inside the write transaction that wrote it (no
    /// other writer can move it then): appends in one batch read it once.
    head: std::cell::Cell<Option<(u64, [u8; 32])>>,
    /// Inside a write transaction of this connection (which excludes every
    /// other writer: the head read in it stays the head until it ends).
    writing: std::cell::Cell<bool>,
}

impl std::ops::Deref for Db {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl Db {
    pub(crate) fn new(backend: Box<dyn Backend>) -> Self {
        Self {
            backend,
            head: std::cell::Cell::new(None),
            writing: std::cell::Cell::new(false),
        }
    }

    /// Starts a write transaction (excluding every other writer).
    pub(crate) fn start_write(&self) -> Result<()> {
        self.backend.begin_write()?;
        self.head.set(None);
        self.writing.set(true);
        Ok(())
    }

    /// The write transaction ended (committed or rolled back).
    pub(crate) fn end_write(&self) {
        self.head.set(None);
        self.writing.set(false);
    }

    /// The cached audit head, if this write transaction knows it.
    pub(crate) fn known_head(&self) -> Option<(u64, [u8; 32])> {
        self.head.get()
    }

    /// Remembers the audit head this write transaction read or wrote;
    /// outside one, nothing (another writer may move it at any time).
    pub(crate) fn set_head(&self, head: (u64, [u8; 32])) {
        if self.writing.get() {
            self.head.set(Some(head));
        }
    }

    /// Forgets the cached head (a transaction or savepoint begins or ends).
    pub(crate) fn forget_head(&self) {
        self.head.set(None);
    }

    /// The first row of a query, read by `f`, if there is one.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut first = None;
        self.backend.each(sql, args, &mut |r| {
            if first.is_none() {
                first = Some(r);
            }
            Ok(())
        })?;
        first.map(|r| f(&r)).transpose()
    }

    /// The first row of a query that always returns one (an aggregate).
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, args, f)?
            .ok_or_else(|| IssuerError::Corrupt(format!("no row from: {sql}")))
    }

    /// Every row, read by `f`.
    pub(crate) fn query_map<T>(
        &self,
        sql: &str,
        args: &[Value],
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.backend.each(sql, args, &mut |r| {
            out.push(f(&r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` for every row as it arrives (nothing is collected).
    pub(crate) fn for_each(
        &self,
        sql: &str,
        args: &[Value],
        mut f: impl FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        self.backend.each(sql, args, &mut |r| f(&r))
    }
}

/// A transaction of the issuer, rolled back when dropped uncommitted: a
/// write (every other writer excluded), a nested write (a savepoint inside
/// [`super::Issuer::atomically`]) or a read (one consistent view).
pub(crate) struct Tx<'c> {
    db: &'c Db,
    kind: TxKind,
    done: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TxKind {
    Write,
    /// Part of a caller's transaction or savepoint, which commits or rolls
    /// back everything (an error must reach it).
    Within,
    Read,
}

impl<'c> Tx<'c> {
    pub(crate) fn write(db: &'c Db) -> Result<Self> {
        db.start_write()?;
        Ok(Self {
            db,
            kind: TxKind::Write,
            done: false,
        })
    }

    pub(crate) fn within(db: &'c Db) -> Self {
        Self {
            db,
            kind: TxKind::Within,
            done: false,
        }
    }

    pub(crate) fn read(db: &'c Db) -> Result<Self> {
        db.begin_read()?;
        Ok(Self {
            db,
            kind: TxKind::Read,
            done: false,
        })
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        self.done = true;
        if self.kind == TxKind::Write {
            self.db.end_write();
        }
        let r = match self.kind {
            TxKind::Within => Ok(()),
            _ => self.db.batch("COMMIT"),
        };
        if r.is_err() {
            self.rollback();
        }
        r
    }

    fn rollback(&self) {
        if self.kind == TxKind::Within {
            self.db.forget_head();
        } else {
            self.db.end_write();
        }
        // Errors here mean the transaction is already gone (a closed
        // connection, a failed COMMIT that ended it). `Within`: the
        // caller's savepoint rolls back.
        if self.kind != TxKind::Within {
            let _ = self.db.batch("ROLLBACK");
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rollback();
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

// ---------------------------------------------------------------- SQLite

impl From<rusqlite::Error> for IssuerError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{CannotOpen, DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked | CannotOpen) => Self::Unavailable(e.to_string()),
            _ => Self::Db(e.to_string()),
        }
    }
}

pub(crate) struct Sqlite {
    conn: rusqlite::Connection,
    dir: PathBuf,
}

const DB: &str = "keygate.db";

impl Sqlite {
    /// The database file of a store directory.
    pub(crate) fn file(dir: &Path) -> PathBuf {
        dir.join(DB)
    }

    /// Opens `dir/keygate.db` with WAL and a busy timeout, so several CLI
    /// invocations at once wait for each other instead of failing.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let conn = rusqlite::Connection::open(Self::file(dir))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Self {
            conn,
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, blob: Blob<'_>) -> PathBuf {
        match blob {
            Blob::Signer(id) => self.dir.join(format!("signer-{id}.pk8")),
            Blob::Published => self.dir.join("published.kgs"),
        }
    }
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Int(i) => V::Integer(*i),
        Value::Text(s) => V::Text(s.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => Value::Int(i),
        // The schema has no REAL column; a float put there from outside
        // reads as its text, and the typed read refuses it.
        V::Real(f) => Value::Text(f.to_string()),
        V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        V::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Backend for Sqlite {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64> {
        let mut st = self.conn.prepare_cached(sql)?;
        let n = st.execute(rusqlite::params_from_iter(args.iter().map(to_sqlite)))?;
        Ok(n as u64)
    }

    fn each(&self, sql: &str, args: &[Value], f: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let mut st = self.conn.prepare_cached(sql)?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(args.iter().map(to_sqlite)))?;
        while let Some(r) = rows.next()? {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(from_sqlite(r.get_ref(i)?));
            }
            f(Row(v))?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.conn.execute_batch(sql)?)
    }

    fn begin_write(&self) -> Result<()> {
        self.batch("BEGIN IMMEDIATE")
    }

    fn begin_read(&self) -> Result<()> {
        // WAL: the first read fixes the view until COMMIT.
        self.batch("BEGIN DEFERRED")
    }

    fn load(&self, blob: Blob<'_>) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(blob)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn store(&self, blob: Blob<'_>, data: &[u8]) -> Result<()> {
        match blob {
            Blob::Signer(_) => super::publish::write_private_new(&self.path(blob), data),
            Blob::Published => super::publish::write_atomic(&self.path(blob), data, 0o600),
        }
    }

    fn publish_lock(&self) -> Result<PublishGuard> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join("publish.lock"))?;
        f.lock()?;
        Ok(PublishGuard(Box::new(f)))
    }

    fn try_lead(&self) -> Result<bool> {
        // One process per SQLite store publishes; publishers of several
        // processes are still serialized by the publish lock.
        Ok(true)
    }
}

// ------------------------------------------------------------ PostgreSQL

impl From<tokio_postgres::Error> for IssuerError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A closed connection, or one that could not be made, may work on a
        // retry; anything the server refused is an error of the store.
        match e.as_db_error() {
            // Lock and statement timeouts, a server shutting down, too many
            // connections: a retry may succeed.
            Some(d)
                if matches!(
                    d.code().code(),
                    "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                ) =>
            {
                Self::Unavailable(format!("{} ({})", d.message(), d.code().code()))
            }
            Some(d) => Self::Db(format!("{} ({})", d.message(), d.code().code())),
            None => {
                let mut m = e.to_string();
                if let Some(src) = std::error::Error::source(&e) {
                    m = format!("{m}: {src}");
                }
                Self::Unavailable(m)
            }
        }
    }
}

/// Advisory lock ids (keygate's own namespace: "kg" + purpose).
const PUBLISH_LOCK: i64 = 0x6b67_0001;
const WRITE_LOCK: i64 = 0x6b67_0003;
const LEADER_LOCK: i64 = 0x6b67_0002;

/// A statement sent with the next one that needs an answer.
enum Deferred {
    Statement {
        st: tokio_postgres::Statement,
        args: Vec<Value>,
        rows: Option<(u64, IssuerError)>,
    },
    /// Text without parameters (`BEGIN`, `SAVEPOINT`).
    Simple(String),
}

/// The most statements deferred before they are sent anyway (a bulk issue
/// defers one per key).
const MAX_DEFERRED: usize = 256;

/// One connection, driven by its own single-thread runtime: every call
/// blocks until its answer, as with a synchronous client, but deferred
/// statements go out together with the next call (pipelined: one round
/// trip, where the API's group commit otherwise pays one per statement
/// while every other writer waits).
struct PgConn {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
    deferred: Vec<Deferred>,
}

pub(crate) struct Postgres {
    conn: Arc<Mutex<PgConn>>,
    /// The seal key's file, read when a signing key is stored or loaded.
    seal: Option<PathBuf>,
}

impl Postgres {
    /// Connects to `url`. The key in the file `seal` opens and seals
    /// signing keys.
    pub(crate) fn connect(url: &str, seal: Option<PathBuf>) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| IssuerError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("keygate");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (client, connection) = rt.block_on(config.connect(tokio_postgres::NoTls))?;
        // The connection's task runs whenever a call blocks on the runtime;
        // when it ends (the server went away) every call fails, which the
        // issuer reports as the store being unavailable.
        rt.spawn(async move {
            let _ = connection.await;
        });
        let mut c = PgConn {
            rt,
            client,
            statements: HashMap::new(),
            deferred: Vec::new(),
        };
        // A statement stuck behind a lock ends rather than holding a client
        // forever (the same bound as SQLite's busy timeout).
        c.batch(
            "SET lock_timeout = '30s'; SET statement_timeout = '300s'",
            false,
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(c)),
            seal,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    fn seal_key(&self) -> Result<ring::aead::LessSafeKey> {
        let file = self.seal.as_ref().ok_or_else(|| {
            IssuerError::Invalid(
                "signing on a PostgreSQL store needs its seal key: set KEYGATE_SEAL_KEY_FILE"
                    .into(),
            )
        })?;
        let k = seal_key(file, false)?;
        let unbound = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &k)
            .map_err(|_| IssuerError::Corrupt("seal key".into()))?;
        Ok(ring::aead::LessSafeKey::new(unbound))
    }
}

impl PgConn {
    fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let text = placeholders(sql);
        let st = self.run(|client| async move { client.prepare(&text).await }, false)?;
        self.statements.insert(sql.to_owned(), st.clone());
        Ok(st)
    }

    /// Runs what `current` starts after every deferred statement, all sent
    /// before any answer is awaited. A deferred statement's error comes
    /// first — unless `rollback`: a rollback's own result is what counts
    /// (it undoes whatever the deferred statements did or failed to do).
    fn run<'a, T, F>(
        &'a mut self,
        current: impl FnOnce(&'a tokio_postgres::Client) -> F,
        rollback: bool,
    ) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + 'a,
    {
        let deferred = std::mem::take(&mut self.deferred);
        let client = &self.client;
        self.rt.block_on(async move {
            let sent = futures_util::future::join_all(deferred.into_iter().map(|d| async move {
                match d {
                    Deferred::Statement { st, args, rows } => {
                        let n = client.execute_raw(&st, args.iter()).await?;
                        match rows {
                            Some((want, mismatch)) if n != want => Err(mismatch),
                            _ => Ok(()),
                        }
                    }
                    Deferred::Simple(sql) => Ok(client.batch_execute(&sql).await?),
                }
            }));
            let (sent, now) = futures_util::future::join(sent, current(client)).await;
            if !rollback {
                sent.into_iter().collect::<Result<Vec<()>>>()?;
            }
            Ok(now?)
        })
    }

    fn batch(&mut self, sql: &str, rollback: bool) -> Result<()> {
        let sql = sql.to_owned();
        self.run(
            move |client| async move { client.batch_execute(&sql).await },
            rollback,
        )
    }

    fn defer(&mut self, d: Deferred) -> Result<()> {
        self.deferred.push(d);
        if self.deferred.len() >= MAX_DEFERRED {
            self.flush()?;
        }
        Ok(())
    }

    /// `SELECT f(id)` for one of PostgreSQL's advisory-lock functions
    /// (after any deferred statements; see [`Self::run`] for `rollback`).
    /// Prepared once per connection, like every other statement (a
    /// statement given as text is prepared again on every call: one more
    /// round trip, here once per write batch with the lock taken).
    fn advisory(&mut self, f: &'static str, id: i64, rollback: bool) -> Result<()> {
        let st = self.statement(&format!("SELECT {f}(?1)"))?;
        let args = [Value::Int(id)];
        self.run(
            move |client| async move { client.execute_raw(&st, args.iter()).await.map(drop) },
            rollback,
        )
    }

    /// Sends every deferred statement and awaits their answers.
    fn flush(&mut self) -> Result<()> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        self.run(|_| async { Ok(()) }, false)
    }
}

/// `?N` → `$N` (the issuer's SQL has no `?` inside string literals).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut it = sql.chars().peekable();
    while let Some(c) = it.next() {
        if c == '?' && it.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use tokio_postgres::types::Type;
        match self {
            Value::Null => Ok(tokio_postgres::types::IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn from_pg(r: &tokio_postgres::Row, i: usize) -> Result<Value> {
    use tokio_postgres::types::Type;
    let ty = r.columns()[i].type_();
    let v = match *ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(v.into())),
        Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            r.try_get::<_, Option<String>>(i)?.map(Value::Text)
        }
        ref other => {
            return Err(IssuerError::Corrupt(format!(
                "store column of type {other} is not one keygate reads"
            )))
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

impl Backend for Postgres {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64> {
        self.with(|c| {
            let st = c.statement(sql)?;
            c.run(
                move |client| async move { client.execute_raw(&st, args.iter()).await },
                false,
            )
        })
    }

    fn each(&self, sql: &str, args: &[Value], f: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        use futures_util::TryStreamExt;
        self.with(|c| {
            let st = c.statement(sql)?;
            // Rows are read as they arrive (a full publish reads every key).
            let mut failed: Option<IssuerError> = None;
            let failed_ref = &mut failed;
            c.run(
                move |client| async move {
                    let rows = client.query_raw(&st, args.iter()).await?;
                    futures_util::pin_mut!(rows);
                    while let Some(r) = rows.try_next().await? {
                        let row: Result<Vec<Value>> =
                            (0..r.len()).map(|i| from_pg(&r, i)).collect();
                        if let Err(e) = row.and_then(|v| f(Row(v))) {
                            *failed_ref = Some(e);
                            break;
                        }
                    }
                    Ok(())
                },
                false,
            )?;
            failed.map_or(Ok(()), Err)
        })
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.with(|c| {
            if sql == "COMMIT" {
                // A deferred statement's row count is checked here, not by
                // the server: the commit waits for it (else a change that
                // failed the check would already be committed).
                c.flush()?;
            }
            c.batch(sql, sql.starts_with("ROLLBACK"))
        })
    }

    fn defer(&self, sql: &str, args: &[Value], rows: Option<(u64, IssuerError)>) -> Result<()> {
        self.with(|c| {
            let st = c.statement(sql)?;
            c.defer(Deferred::Statement {
                st,
                args: args.to_vec(),
                rows,
            })
        })
    }

    fn defer_batch(&self, sql: &str) -> Result<()> {
        self.with(|c| c.defer(Deferred::Simple(sql.to_owned())))
    }

    fn flush(&self) -> Result<()> {
        self.with(PgConn::flush)
    }

    fn begin_write(&self) -> Result<()> {
        // One writer at a time across instances: a transaction lock held
        // to COMMIT (it also covers `init`, before the chain has a head
        // row to lock). READ COMMITTED: every statement after it sees what
        // the writer before committed, so the next audit sequence, snapshot
        // version and revocation sequence are always fresh. BEGIN and the
        // lock in one round trip.
        let r = self.with(|c| {
            c.defer(Deferred::Simple("BEGIN".into()))?;
            c.advisory("pg_advisory_xact_lock", WRITE_LOCK, false)
        });
        if let Err(e) = r {
            let _ = self.batch("ROLLBACK");
            return Err(e);
        }
        Ok(())
    }

    fn begin_read(&self) -> Result<()> {
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    }

    fn load(&self, blob: Blob<'_>) -> Result<Option<Vec<u8>>> {
        let (name, secret) = blob_name(blob);
        let mut data = None;
        self.each(
            "SELECT data FROM blobs WHERE name = ?1",
            args![name.as_str()],
            &mut |r| {
                data = Some(r.get::<Vec<u8>>(0)?);
                Ok(())
            },
        )?;
        match (data, secret) {
            (Some(sealed), true) => open(&self.seal_key()?, &name, &sealed).map(Some),
            (d, _) => Ok(d),
        }
    }

    fn store(&self, blob: Blob<'_>, data: &[u8]) -> Result<()> {
        let (name, secret) = blob_name(blob);
        if secret {
            let sealed = seal(&self.seal_key()?, &name, data)?;
            let n = self.execute(
                "INSERT INTO blobs (name, data) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                args![name.as_str(), sealed],
            )?;
            if n == 0 {
                return Err(IssuerError::Corrupt(format!("{name} already exists")));
            }
            return Ok(());
        }
        self.execute(
            "INSERT INTO blobs (name, data) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            args![name.as_str(), data],
        )?;
        Ok(())
    }

    fn publish_lock(&self) -> Result<PublishGuard> {
        struct Unlock(Arc<Mutex<PgConn>>);
        impl Drop for Unlock {
            fn drop(&mut self) {
                let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
                // A failed unlock means a dead connection, which released it.
                let _ = c.advisory("pg_advisory_unlock", PUBLISH_LOCK, true);
            }
        }
        self.with(|c| c.advisory("pg_advisory_lock", PUBLISH_LOCK, false))?;
        Ok(PublishGuard(Box::new(Unlock(Arc::clone(&self.conn)))))
    }

    fn try_lead(&self) -> Result<bool> {
        self.with(|c| {
            c.run(
                |client| async move {
                    let r = client
                        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                        .await?;
                    r.try_get::<_, bool>(0)
                },
                false,
            )
        })
    }
}

fn blob_name(blob: Blob<'_>) -> (String, bool) {
    match blob {
        Blob::Signer(id) => (format!("signer-{id}"), true),
        Blob::Published => ("published".into(), false),
    }
}

fn seal(key: &ring::aead::LessSafeKey, name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| IssuerError::Corrupt("no randomness".into()))?;
    let mut buf = data.to_vec();
    key.seal_in_place_append_tag(
        ring::aead::Nonce::assume_unique_for_key(nonce),
        ring::aead::Aad::from(name.as_bytes()),
        &mut buf,
    )
    .map_err(|_| IssuerError::Corrupt("seal".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open(key: &ring::aead::LessSafeKey, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
    let bad = || {
        IssuerError::Corrupt(format!(
            "{name} cannot be opened: a different seal key (KEYGATE_SEAL_KEY_FILE) or a changed record"
        ))
    };
    if sealed.len() < 12 + 16 {
        return Err(bad());
    }
    let (nonce, ct) = sealed.split_at(12);
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
    let mut buf = ct.to_vec();
    let plain = key
        .open_in_place(nonce, ring::aead::Aad::from(name.as_bytes()), &mut buf)
        .map_err(|_| bad())?;
    Ok(plain.to_vec())
}

/// Reads a seal key file (64 hex characters), or with `create`, makes a new
/// one (mode 0600) when there is none.
pub(crate) fn seal_key(file: &Path, create: bool) -> Result<[u8; 32]> {
    match std::fs::read_to_string(file) {
        Ok(s) => {
            let d = keygate::Digest::from_hex(s.trim()).ok_or_else(|| {
                IssuerError::Invalid(format!(
                    "seal key file {} must hold 64 hex characters",
                    file.display()
                ))
            })?;
            Ok(d.0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut k = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
                .map_err(|_| IssuerError::Corrupt("no randomness".into()))?;
            let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
            super::publish::write_private_new(file, format!("{hex}\n").as_bytes())?;
            Ok(k)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(IssuerError::Invalid(format!(
            "seal key file {} does not exist",
            file.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollar_numbers() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE x = ?1 AND (?2 IS NULL OR y = ?2) AND z = ?10"),
            "SELECT a FROM t WHERE x = $1 AND ($2 IS NULL OR y = $2) AND z = $10"
        );
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redact_url("postgres://kg:s3cret@db:5432/keygate"),
            "postgres://kg:***@db:5432/keygate"
        );
        assert_eq!(redact_url("postgres://db/keygate"), "postgres://db/keygate");
        let at = StoreAt::parse("postgresql://u:pw@h/d");
        assert!(!format!("{at} {at:?}").contains("pw"));
    }

    #[test]
    fn sealed_blobs_open_only_under_their_key_and_name() {
        let k = |b: u8| {
            ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &[b; 32]).unwrap(),
            )
        };
        let s = seal(&k(1), "signer-a", b"pkcs8").unwrap();
        assert_eq!(open(&k(1), "signer-a", &s).unwrap(), b"pkcs8");
        assert!(open(&k(2), "signer-a", &s).is_err());
        assert!(open(&k(1), "signer-b", &s).is_err());
        assert!(open(&k(1), "signer-a", &s[..20]).is_err());
    }

    #[test]
    fn a_seal_key_file_is_64_hex_made_private_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("seal.key");
        assert!(matches!(seal_key(&f, false), Err(IssuerError::Invalid(_))));
        let k = seal_key(&f, true).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(seal_key(&f, false).unwrap(), k, "read back, not made again");
        for bad in [
            "",
            "zz",
            &"a".repeat(63),
            &"a".repeat(65),
            &"\u{0}".repeat(64),
        ] {
            std::fs::write(&f, bad).unwrap();
            assert!(
                matches!(seal_key(&f, false), Err(IssuerError::Invalid(_))),
                "{bad:?}"
            );
            assert!(
                matches!(seal_key(&f, true), Err(IssuerError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_bad_postgres_url_is_invalid_input_not_a_connection_attempt() {
        for url in [
            "postgres://u@h:notaport/db",
            "postgresql://h/db?sslmode=bogus",
        ] {
            assert!(
                matches!(Postgres::connect(url, None), Err(IssuerError::Invalid(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn typed_reads_refuse_the_wrong_column_type() {
        let r = Row(vec![Value::Int(-1), Value::Text("x".into()), Value::Null]);
        assert_eq!(r.get::<i64>(0).unwrap(), -1);
        assert!(r.get::<u64>(0).is_err());
        assert!(r.get::<u64>(1).is_err());
        assert_eq!(r.get::<Option<String>>(2).unwrap(), None);
        assert!(r.get::<String>(3).is_err());
    }
}
