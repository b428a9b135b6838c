//! The audit chain: every mutation appends an entry holding the hash of the
//! previous one, so editing, deleting or reordering any entry is detected.
//!
//! The chain also covers the keys table. Every entry that creates or changes a
//! key records the hash of the key's row after the change (and, for a change,
//! before it); a bulk issue records one digest over the rows it inserted. So
//! `verify` can replay the chain and compare the result with the table: a row
//! edited, inserted or deleted outside keygate is named. What the chain cannot
//! show on its own — entries cut off its end — is caught by comparing it with
//! the head signed into the last published snapshot ([`verify`]'s `signed`).

use super::db::{args, Db};
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
    /// The key's row after this entry (hex), or a bulk issue's digest over
    /// the rows it inserted; `None` when no key row changed.
    pub row_hash: Option<String>,
    /// The key's row before this entry (hex), for changes of existing keys.
    pub prev_row_hash: Option<String>,
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
    // Entries written before the chain covered key rows have neither field
    // and keep their hash; removing either from a newer entry changes it.
    if e.row_hash.is_some() || e.prev_row_hash.is_some() {
        field(&mut h, e.row_hash.as_deref());
        field(&mut h, e.prev_row_hash.as_deref());
    }
    h.finalize().into()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    keygate::Digest::from_hex(s).map(|d| d.0)
}

/// The current head (hash of the last entry; zeros when empty).
pub(crate) fn head(conn: &Db) -> Result<[u8; 32], IssuerError> {
    let h: Option<String> = conn.query_opt(
        "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1",
        args![],
        |r| r.get(0),
    )?;
    Ok(h.and_then(|h| unhex32(&h)).unwrap_or([0; 32]))
}

/// What to append.
pub(crate) struct Event<'a> {
    pub action: &'a str,
    pub key_id: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// The key row's hash after (and before) the change, or a batch digest.
    pub row: Option<RowChange>,
}

/// What an entry records of the keys table.
#[derive(Clone, Copy)]
pub(crate) struct RowChange {
    pub after: [u8; 32],
    pub before: Option<[u8; 32]>,
}

/// The sequence number the next entry will get.
pub(crate) fn next_seq(tx: &Db) -> Result<u64, IssuerError> {
    Ok(last(tx)?.map_or(0, |(s, _)| s) + 1)
}

/// The last entry's sequence and hash (the write transaction's cached
/// head when it has one: no other writer can move it meanwhile).
pub(crate) fn last(tx: &Db) -> Result<Option<(u64, [u8; 32])>, IssuerError> {
    if let Some(h) = tx.known_head() {
        return Ok(Some(h));
    }
    let last: Option<(u64, String)> = tx.query_opt(
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let last = last
        .map(|(s, h)| {
            unhex32(&h)
                .map(|h| (s, h))
                .ok_or(IssuerError::Corrupt("audit hash not hex".into()))
        })
        .transpose()?;
    if let Some(h) = last {
        tx.set_head(h);
    }
    Ok(last)
}

/// Appends an entry inside the caller's transaction; returns its sequence.
pub(crate) fn append(tx: &Db, actor: &str, at: u64, ev: Event<'_>) -> Result<u64, IssuerError> {
    let (seq, prev) = match last(tx)? {
        Some((s, h)) => (s + 1, h),
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
        row_hash: ev.row.map(|r| hex(&r.after)),
        prev_row_hash: ev.row.and_then(|r| r.before).map(|b| hex(&b)),
        prev_hash: hex(&prev),
        hash: String::new(),
    };
    let hash = entry_hash(&prev, &e);
    e.hash = hex(&hash);
    // Sent with the next statement that needs an answer (PostgreSQL):
    // nothing here reads it back, and its error still fails the change.
    tx.defer(
        "INSERT INTO audit (seq, at, actor, action, key_id, principal, reason, prev_hash, hash, row_hash, prev_row_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        args![
            e.seq,
            e.at,
            e.actor,
            e.action,
            e.key_id,
            e.principal,
            e.reason,
            e.prev_hash,
            e.hash,
            e.row_hash,
            e.prev_row_hash
        ],
        None,
    )?;
    tx.set_head((seq, hash));
    Ok(seq)
}

/// [`append`] with the event's fields as arguments: how a mutation records itself.
#[allow(clippy::too_many_arguments)]
pub(crate) fn note(
    tx: &Db,
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
            row: None,
        },
    )?;
    Ok(())
}

/// At most `limit` entries after sequence `after`, in order.
pub(crate) fn log_after(
    conn: &Db,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, IssuerError> {
    conn.query_map(
        &format!("SELECT {ENTRY_COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
        args![after, limit],
        entry,
    )
}

/// The columns [`entry`] reads, in its order.
const ENTRY_COLUMNS: &str =
    "seq, at, actor, action, key_id, principal, reason, prev_hash, hash, row_hash, prev_row_hash";

fn entry(r: &super::db::Row) -> Result<AuditEntry, IssuerError> {
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
        row_hash: r.get(9)?,
        prev_row_hash: r.get(10)?,
    })
}

/// Checks the chain's continuation after `from` (an entry already
/// verified: its sequence and hash): that entry is still there unchanged,
/// and every entry after it links to the one before and hashes right.
/// Returns the new verified head, or what is wrong.
pub(crate) fn verify_since(
    conn: &Db,
    from: (u64, [u8; 32]),
) -> Result<std::result::Result<(u64, [u8; 32]), String>, IssuerError> {
    let (seq, hash) = from;
    let still: Option<String> =
        conn.query_opt("SELECT hash FROM audit WHERE seq = ?1", args![seq], |r| {
            r.get(0)
        })?;
    if still.as_deref() != Some(hex(&hash).as_str()) {
        return Ok(Err(format!(
            "entry {seq}, verified before, was changed or removed"
        )));
    }
    let entries = conn.query_map(
        &format!("SELECT {ENTRY_COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq"),
        args![seq],
        entry,
    )?;
    let mut prev = hash;
    let mut want = seq + 1;
    for e in &entries {
        if e.seq != want {
            return Ok(Err(format!("entry {want} missing or out of order")));
        }
        if e.prev_hash != hex(&prev) {
            return Ok(Err(format!("entry {want}: previous-hash link broken")));
        }
        let h = entry_hash(&prev, e);
        if e.hash != hex(&h) {
            return Ok(Err(format!("entry {want}: entry content changed")));
        }
        prev = h;
        want += 1;
    }
    Ok(Ok((want - 1, prev)))
}

/// The row hash the chain recorded last for key `id`, and whether only a
/// bulk entry covers the key (then there is none per key).
pub(crate) fn last_row_hash(conn: &Db, id: &str) -> Result<Option<String>, IssuerError> {
    Ok(conn
        .query_opt(
            "SELECT row_hash FROM audit WHERE key_id = ?1 AND row_hash IS NOT NULL
             ORDER BY seq DESC LIMIT 1",
            args![id],
            |r| r.get::<Option<String>>(0),
        )?
        .flatten())
}

/// The newest row hash of every key with an entry after `seq` (one query
/// for what [`last_row_hash`] answers key by key).
pub(crate) fn row_hashes_since(
    conn: &Db,
    seq: u64,
) -> Result<std::collections::HashMap<String, String>, IssuerError> {
    let mut newest = std::collections::HashMap::new();
    conn.for_each(
        "SELECT key_id, row_hash FROM audit
         WHERE seq > ?1 AND key_id IS NOT NULL AND row_hash IS NOT NULL ORDER BY seq",
        args![seq],
        |r| {
            newest.insert(r.get::<String>(0)?, r.get::<String>(1)?);
            Ok(())
        },
    )?;
    Ok(newest)
}

/// Every entry in order.
pub(crate) fn log(conn: &Db) -> Result<Vec<AuditEntry>, IssuerError> {
    conn.query_map(
        &format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"),
        args![],
        entry,
    )
}

/// The hash of a key's row: every column but the secret-free digest's own
/// id is bound, so any edit of the row changes it.
pub(crate) fn key_row_hash(digest: &[u8], k: &super::KeyInfo, origin_seq: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"keygate/v1/key-row\0");
    field(&mut h, Some(&k.key_id.to_string()));
    h.update(digest);
    field(&mut h, Some(&k.principal));
    field(&mut h, Some(&super::Scope::join(&k.scopes)));
    field(&mut h, Some(k.status.as_str()));
    h.update([u8::from(k.imported)]);
    for t in [
        Some(k.created_at),
        Some(k.not_before),
        k.expires_at,
        k.deprecated_at,
        k.sunset_at,
        k.revoked_at,
    ] {
        match t {
            None => h.update([0u8]),
            Some(t) => {
                h.update([1u8]);
                h.update(t.to_le_bytes());
            }
        }
    }
    field(&mut h, k.revoke_reason.as_deref());
    h.update(origin_seq.to_le_bytes());
    h.finalize().into()
}

/// The digest a bulk entry records over the rows it inserted: their ids and
/// row hashes in key-id order.
pub(crate) fn batch_digest(rows: &mut [(String, [u8; 32])]) -> [u8; 32] {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    h.update(b"keygate/v1/key-batch\0");
    h.update((rows.len() as u64).to_le_bytes());
    for (id, r) in rows.iter() {
        field(&mut h, Some(id));
        h.update(r);
    }
    h.finalize().into()
}

/// Actions whose entry covers a set of rows by one digest, not one key.
pub(crate) const BATCH_ACTIONS: [&str; 2] = ["issue-batch", "checkpoint"];

/// The audit head a published snapshot carries, to check the chain against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedHead {
    /// The snapshot version it was signed into.
    pub snapshot_version: u64,
    /// The chain head at that publish (hash of the newest entry then).
    pub head: [u8; 32],
}

/// Result of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Head hash (hex).
    pub head: String,
    /// Key rows checked against the chain.
    pub keys: u64,
    /// The published snapshot version whose signed head was found in the
    /// chain (`None`: nothing published to check against).
    pub signed_snapshot: Option<u64>,
    /// The first problem: the entry's sequence (0 when it concerns the keys
    /// table or the signed head rather than one entry) and what is wrong.
    pub first_bad: Option<(u64, String)>,
}

/// Recomputes the chain (naming the first entry changed, removed or
/// reordered), checks it still holds the head `signed` into the last
/// published snapshot (so entries cut off its end are detected), and replays
/// it against the keys table (so rows edited, inserted or deleted outside
/// keygate are detected).
pub(crate) fn verify(conn: &Db, signed: Option<SignedHead>) -> Result<AuditReport, IssuerError> {
    let entries = log(conn)?;
    let mut report = AuditReport {
        entries: entries.len() as u64,
        head: hex(&[0; 32]),
        keys: 0,
        signed_snapshot: None,
        first_bad: None,
    };
    let mut prev = [0u8; 32];
    let mut signed_found = signed.is_none_or(|s| s.head == [0; 32]);
    for (i, e) in entries.iter().enumerate() {
        let want_seq = i as u64 + 1;
        let why = if e.seq != want_seq {
            Some(format!(
                "entry {want_seq} missing or out of order (found seq {})",
                e.seq
            ))
        } else if e.prev_hash != hex(&prev) {
            Some("previous-hash link broken (an earlier entry was removed or changed)".into())
        } else {
            None
        };
        let h = entry_hash(&prev, e);
        let why = why.or_else(|| (e.hash != hex(&h)).then(|| "entry content changed".into()));
        if let Some(why) = why {
            report.head = hex(&prev);
            report.first_bad = Some((want_seq, why));
            return Ok(report);
        }
        signed_found |= signed.is_some_and(|s| s.head == h);
        prev = h;
    }
    report.head = hex(&prev);
    if let Some(s) = signed {
        if !signed_found {
            report.first_bad = Some((
                0,
                format!(
                    "the audit head signed into published snapshot v{} ({}) is not in the chain: \
                     entries were removed from its end or rewritten",
                    s.snapshot_version,
                    hex(&s.head)
                ),
            ));
            return Ok(report);
        }
        report.signed_snapshot = Some(s.snapshot_version);
    }
    let (keys, bad) = replay_keys(conn, &entries)?;
    report.keys = keys;
    report.first_bad = bad;
    Ok(report)
}

/// Replays the chain's key-row records and compares them with the keys
/// table: the number of rows checked and the first difference.
fn replay_keys(
    conn: &Db,
    entries: &[AuditEntry],
) -> Result<(u64, Option<(u64, String)>), IssuerError> {
    use std::collections::HashMap;
    // key id -> (row hash the chain says it has now, seq of that entry)
    let mut expected: HashMap<&str, ([u8; 32], u64)> = HashMap::new();
    // key id -> its row as first inserted, for bulk-issued keys changed since
    let mut bulk_origin: HashMap<&str, [u8; 32]> = HashMap::new();
    let mut batches: HashMap<u64, [u8; 32]> = HashMap::new();
    let unhex = |s: &Option<String>, seq: u64| -> Result<Option<[u8; 32]>, (u64, String)> {
        match s {
            None => Ok(None),
            Some(h) => unhex32(h).map(Some).ok_or((seq, "row hash not hex".into())),
        }
    };
    for e in entries {
        let (after, before) = match (unhex(&e.row_hash, e.seq), unhex(&e.prev_row_hash, e.seq)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(bad), _) | (_, Err(bad)) => return Ok((0, Some(bad))),
        };
        let Some(after) = after else { continue };
        if BATCH_ACTIONS.contains(&e.action.as_str()) {
            batches.insert(e.seq, after);
            continue;
        }
        let Some(id) = e.key_id.as_deref() else {
            continue;
        };
        match (before, expected.get(id)) {
            (Some(b), Some((cur, _))) if b != *cur => {
                return Ok((0, Some((e.seq, format!("key {id}: the row this entry changed is not the one the chain recorded before")))))
            }
            (Some(b), None) => {
                bulk_origin.insert(id, b);
            }
            _ => {}
        }
        expected.insert(id, (after, e.seq));
    }
    let mut members: HashMap<u64, Vec<(String, [u8; 32])>> = HashMap::new();
    let mut checked = 0u64;
    let mut bad = None;
    conn.for_each(
        &format!(
            "SELECT digest, origin_seq, {} FROM keys ORDER BY key_id",
            super::KEY_COLUMNS
        ),
        args![],
        |r| {
        if bad.is_some() {
            return Ok(());
        }
        let digest: Vec<u8> = r.get(0)?;
        let origin: u64 = r.get(1)?;
        let info = super::row_info_at(r, 2)?;
        let h = key_row_hash(&digest, &info, origin);
        checked += 1;
        let id_text = info.key_id.to_string();
        let id = id_text.as_str();
        match expected.remove(id) {
            Some((want, seq)) if want != h => {
                bad = Some((
                    seq,
                    format!("key {id}: its row differs from the audit chain (edited outside keygate)"),
                ));
            }
            Some(_) => {
                if let Some(first) = bulk_origin.get(id) {
                    members
                        .entry(origin)
                        .or_default()
                        .push((id_text.clone(), *first));
                }
            }
            None if batches.contains_key(&origin) => {
                members
                    .entry(origin)
                    .or_default()
                    .push((id_text.clone(), h));
            }
            None => {
                bad = Some((
                    0,
                    format!("key {id} is not in the audit chain (inserted outside keygate)"),
                ));
            }
        }
        Ok(())
        },
    )?;
    if bad.is_some() {
        return Ok((checked, bad));
    }
    if let Some((id, (_, seq))) = expected.iter().min_by_key(|(_, (_, s))| *s) {
        return Ok((
            checked,
            Some((*seq, format!("key {id} is in the audit chain but not in the keys table (deleted outside keygate)"))),
        ));
    }
    let mut seqs: Vec<_> = batches.keys().copied().collect();
    seqs.sort_unstable();
    for seq in seqs {
        let mut m = members.remove(&seq).unwrap_or_default();
        if batch_digest(&mut m) != batches[&seq] {
            return Ok((
                checked,
                Some((
                    seq,
                    "the rows this bulk entry inserted were changed, removed or added to outside keygate".into(),
                )),
            ));
        }
    }
    Ok((checked, None))
}
