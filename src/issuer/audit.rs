//! The audit chain: every mutation appends an entry holding the hash of the
//! previous one, so editing, deleting or reordering any entry is detected.

// The core crate is no_std; the issuer is std-only.
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, vec};

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::IssuerError;

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who did it (`--actor` or the OS user).
    pub actor: String,
    /// What was done (`issue`, `rotate`, `revoke`, `publish`, ...).
    pub action: String,
    /// The key concerned (hex id), if any.
    pub key_id: Option<String>,
    /// The principal concerned, if any.
    pub principal: Option<String>,
    /// Reason or detail; never a secret.
    pub reason: Option<String>,
    /// Hash of the previous entry (hex; zeros for the first).
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

fn field(h: &mut Sha256, v: Option<&str>) {
    match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
}

/// The hash of an entry: SHA-256 over the previous hash and length-prefixed fields.
pub(crate) fn entry_hash(prev: &[u8; 32], e: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"keygate/v1/audit\0");
    h.update(prev);
    h.update(e.seq.to_le_bytes());
    h.update(e.at.to_le_bytes());
    field(&mut h, Some(&e.actor));
    field(&mut h, Some(&e.action));
    field(&mut h, e.key_id.as_deref());
    field(&mut h, e.principal.as_deref());
    field(&mut h, e.reason.as_deref());
    h.finalize().into()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    crate::key::Digest::from_hex(s).map(|d| d.0)
}

/// The current head (hash of the last entry; zeros when empty).
pub(crate) fn head(conn: &Connection) -> Result<[u8; 32], IssuerError> {
    let h: Option<String> = conn
        .query_row(
            "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(h.and_then(|h| unhex32(&h)).unwrap_or([0; 32]))
}

/// What to append.
pub(crate) struct Event<'a> {
    pub action: &'a str,
    pub key_id: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Appends an entry inside the caller's transaction.
pub(crate) fn append(
    tx: &Transaction<'_>,
    actor: &str,
    at: u64,
    ev: Event<'_>,
) -> Result<(), IssuerError> {
    let last: Option<(u64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev) = match last {
        Some((s, h)) => (
            s + 1,
            unhex32(&h).ok_or(IssuerError::Corrupt("audit hash not hex".into()))?,
        ),
        None => (1, [0; 32]),
    };
    let mut e = AuditEntry {
        seq,
        at,
        actor: actor.into(),
        action: ev.action.into(),
        key_id: ev.key_id.map(Into::into),
        principal: ev.principal.map(Into::into),
        reason: ev.reason.map(Into::into),
        prev_hash: hex(&prev),
        hash: String::new(),
    };
    e.hash = hex(&entry_hash(&prev, &e));
    tx.execute(
        "INSERT INTO audit (seq, at, actor, action, key_id, principal, reason, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            e.seq,
            e.at,
            e.actor,
            e.action,
            e.key_id,
            e.principal,
            e.reason,
            e.prev_hash,
            e.hash
        ],
    )?;
    Ok(())
}

/// [`append`] with the event's fields as arguments: how a mutation records itself.
#[allow(clippy::too_many_arguments)]
pub(crate) fn note(
    tx: &Transaction<'_>,
    actor: &str,
    at: u64,
    action: &str,
    key_id: Option<&str>,
    principal: Option<&str>,
    reason: Option<&str>,
) -> Result<(), IssuerError> {
    append(
        tx,
        actor,
        at,
        Event {
            action,
            key_id,
            principal,
            reason,
        },
    )
}

/// Every entry in order.
pub(crate) fn log(conn: &Connection) -> Result<Vec<AuditEntry>, IssuerError> {
    let mut st = conn.prepare(
        "SELECT seq, at, actor, action, key_id, principal, reason, prev_hash, hash FROM audit ORDER BY rowid",
    )?;
    let rows = st.query_map([], |r| {
        Ok(AuditEntry {
            seq: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            key_id: r.get(4)?,
            principal: r.get(5)?,
            reason: r.get(6)?,
            prev_hash: r.get(7)?,
            hash: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Result of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Head hash (hex).
    pub head: String,
    /// The first bad entry's sequence and what is wrong with it, if any.
    pub first_bad: Option<(u64, String)>,
}

/// Recomputes the chain; names the first entry that was changed, removed or reordered.
pub(crate) fn verify(conn: &Connection) -> Result<AuditReport, IssuerError> {
    let entries = log(conn)?;
    let mut prev = [0u8; 32];
    for (i, e) in entries.iter().enumerate() {
        let want_seq = i as u64 + 1;
        let bad = |why: &str| {
            Ok(AuditReport {
                entries: entries.len() as u64,
                head: hex(&prev),
                first_bad: Some((want_seq, why.to_string())),
            })
        };
        if e.seq != want_seq {
            return bad(&format!(
                "entry {want_seq} missing or out of order (found seq {})",
                e.seq
            ));
        }
        if e.prev_hash != hex(&prev) {
            return bad("previous-hash link broken (an earlier entry was removed or changed)");
        }
        let h = entry_hash(&prev, e);
        if e.hash != hex(&h) {
            return bad("entry content changed");
        }
        prev = h;
    }
    Ok(AuditReport {
        entries: entries.len() as u64,
        head: hex(&prev),
        first_bad: None,
    })
}
