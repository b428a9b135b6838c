//! The store's schema and its migrations, on either engine.

use super::db::{args, Db, Engine, Tx};
use super::IssuerError;

/// Schema migrations, in order; `meta.schema_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: keys, signers, trust chain, audit, settings.
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE keys (
        key_id TEXT PRIMARY KEY,
        digest BLOB NOT NULL,
        principal TEXT NOT NULL,
        scopes TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active','deprecated','revoked')),
        imported INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        not_before INTEGER NOT NULL,
        expires_at INTEGER,
        deprecated_at INTEGER,
        sunset_at INTEGER,
        revoked_at INTEGER,
        revoke_reason TEXT
     );
     CREATE INDEX keys_principal ON keys(principal);
     CREATE TABLE signers (
        id TEXT PRIMARY KEY,
        public_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active','retiring','retired')),
        published_since INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE trust_chain (version INTEGER PRIMARY KEY, bundle BLOB NOT NULL);
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        key_id TEXT,
        principal TEXT,
        reason TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
     );",
    // 2: rotation policy classes (issue 10 builds on these).
    "CREATE TABLE policy (class TEXT PRIMARY KEY, max_age INTEGER NOT NULL, grace INTEGER NOT NULL, rotate_before INTEGER);
     CREATE TABLE principal_class (principal TEXT PRIMARY KEY, class TEXT NOT NULL REFERENCES policy(class));",
    // 3: the audit chain covers the keys table (see audit.rs); the rows of an
    // older store are put under one checkpoint entry (`COVER_KEYS`).
    "ALTER TABLE audit ADD COLUMN row_hash TEXT;
     ALTER TABLE audit ADD COLUMN prev_row_hash TEXT;
     ALTER TABLE keys ADD COLUMN origin_seq INTEGER NOT NULL DEFAULT 0;",
    // 4: the HTTP API: admin keys (never published) and idempotency records.
    "CREATE TABLE admin_keys (
        key_id TEXT PRIMARY KEY,
        digest BLOB NOT NULL UNIQUE,
        principal TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
     );
     CREATE TABLE idempotency (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (owner, key)
     );",
    // 5: expired idempotency records are found by age, not by a scan.
    "CREATE INDEX idempotency_created ON idempotency(created_at);",
    // 6: keys are paged in the order they were made (GET /v1/keys).
    "CREATE INDEX keys_origin ON keys(origin_seq);",
    // 7: a rotated admin key works until the end of its grace window.
    "ALTER TABLE admin_keys ADD COLUMN expires_at INTEGER;",
    // 8: an update checks the rows it publishes against the chain's last
    // entry for each key.
    "CREATE INDEX audit_key ON audit(key_id);",
];

/// The same schema for PostgreSQL (its own count: 1 is the schema of SQLite
/// migration 5 and the blobs SQLite keeps as files). A change to the schema
/// is a new entry in both lists.
const PG_MIGRATIONS: &[&str] = &[
    // 1: everything of SQLite's 1-5, plus the blobs (signing keys, sealed;
    // the last published snapshot).
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE keys (
        key_id TEXT PRIMARY KEY,
        digest BYTEA NOT NULL,
        principal TEXT NOT NULL,
        scopes TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active','deprecated','revoked')),
        imported BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        not_before BIGINT NOT NULL,
        expires_at BIGINT,
        deprecated_at BIGINT,
        sunset_at BIGINT,
        revoked_at BIGINT,
        revoke_reason TEXT,
        origin_seq BIGINT NOT NULL DEFAULT 0
     );
     CREATE INDEX keys_principal ON keys(principal);
     CREATE INDEX keys_status ON keys(status);
     CREATE TABLE signers (
        id TEXT PRIMARY KEY,
        public_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active','retiring','retired')),
        published_since BIGINT NOT NULL DEFAULT 0
     );
     CREATE TABLE trust_chain (version BIGINT PRIMARY KEY, bundle BYTEA NOT NULL);
     CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        key_id TEXT,
        principal TEXT,
        reason TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        row_hash TEXT,
        prev_row_hash TEXT
     );
     CREATE TABLE policy (class TEXT PRIMARY KEY, max_age BIGINT NOT NULL, grace BIGINT NOT NULL, rotate_before BIGINT);
     CREATE TABLE principal_class (principal TEXT PRIMARY KEY, class TEXT NOT NULL REFERENCES policy(class));
     CREATE TABLE admin_keys (
        key_id TEXT PRIMARY KEY,
        digest BYTEA NOT NULL UNIQUE,
        principal TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
     );
     CREATE TABLE idempotency (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status BIGINT NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (owner, key)
     );
     CREATE INDEX idempotency_created ON idempotency(created_at);
     CREATE TABLE blobs (name TEXT PRIMARY KEY, data BYTEA NOT NULL);",
    // 2: keys are paged in the order they were made (GET /v1/keys).
    "CREATE INDEX keys_origin ON keys(origin_seq);",
    // 3: a rotated admin key works until the end of its grace window.
    "ALTER TABLE admin_keys ADD COLUMN expires_at BIGINT;",
    // 4: an update checks the rows it publishes against the chain's last
    // entry for each key.
    "CREATE INDEX audit_key ON audit(key_id);",
];

/// The SQLite migration after which existing key rows are checkpointed into the chain.
const COVER_KEYS: usize = 3;

/// Brings the schema up to date (each migration in its own transaction,
/// under the write lock, so two instances starting at once migrate once);
/// refuses a store whose schema is newer than this keygate.
pub(crate) fn migrate(db: &Db) -> Result<(), IssuerError> {
    let list = match db.engine() {
        Engine::Sqlite => MIGRATIONS,
        Engine::Postgres => PG_MIGRATIONS,
    };
    loop {
        let tx = Tx::write(db)?;
        let has_meta = has_meta(&tx)?;
        let applied: usize = if has_meta {
            get_meta(&tx, "schema_version")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        if applied > list.len() {
            return Err(IssuerError::Corrupt(format!(
                "store schema version {applied} is newer than this keygate ({})",
                list.len()
            )));
        }
        let Some(m) = list.get(applied) else {
            return Ok(());
        };
        tx.batch(m)?;
        if db.engine() == Engine::Sqlite && applied + 1 == COVER_KEYS {
            super::checkpoint_rows(&tx)?;
        }
        set_meta(&tx, "schema_version", &(applied + 1).to_string())?;
        tx.commit()?;
    }
}

/// Whether the database has keygate's tables at all.
fn has_meta(db: &Db) -> Result<bool, IssuerError> {
    let sql = match db.engine() {
        Engine::Sqlite => "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'",
        Engine::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'meta'"
        }
    };
    Ok(db.query_opt(sql, args![], |_| Ok(()))?.is_some())
}

/// Whether the database holds a keygate store (opening one never creates
/// tables in a database that is not one).
pub(crate) fn is_store(db: &Db) -> Result<bool, IssuerError> {
    Ok(has_meta(db)? && get_meta(db, "keyset")?.is_some())
}

pub(crate) fn get_meta(db: &Db, name: &str) -> Result<Option<String>, IssuerError> {
    db.query_opt("SELECT value FROM meta WHERE name = ?1", args![name], |r| {
        r.get(0)
    })
}

pub(crate) fn get_meta_u64(db: &Db, name: &str) -> Result<u64, IssuerError> {
    Ok(get_meta(db, name)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

pub(crate) fn set_meta(db: &Db, name: &str, value: &str) -> Result<(), IssuerError> {
    db.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        args![name, value],
    )?;
    Ok(())
}
