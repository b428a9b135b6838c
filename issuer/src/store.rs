//! The SQLite store: schema, migrations, connection settings.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

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
];

/// The migration after which existing key rows are checkpointed into the chain.
const COVER_KEYS: usize = 3;

/// Opens (and migrates) the database with WAL and a busy timeout, so several
/// CLI invocations at once wait for each other instead of failing.
pub(crate) fn open(path: &Path) -> Result<Connection, IssuerError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), IssuerError> {
    let has_meta: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    let applied: usize = if has_meta {
        conn.query_row(
            "SELECT value FROM meta WHERE name='schema_version'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
    } else {
        0
    };
    if applied > MIGRATIONS.len() {
        return Err(IssuerError::Corrupt(format!(
            "store schema version {applied} is newer than this keygate ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(m)?;
        if i + 1 == COVER_KEYS {
            super::checkpoint_rows(&tx)?;
        }
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('schema_version', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [(i + 1).to_string()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

pub(crate) fn get_meta(conn: &Connection, name: &str) -> Result<Option<String>, IssuerError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

pub(crate) fn get_meta_u64(conn: &Connection, name: &str) -> Result<u64, IssuerError> {
    Ok(get_meta(conn, name)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

pub(crate) fn set_meta(conn: &Connection, name: &str, value: &str) -> Result<(), IssuerError> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        [name, value],
    )?;
    Ok(())
}
