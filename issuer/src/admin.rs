//! Admin keys (who may call the issuer's HTTP API) and idempotency records
//! (a retried POST returns the first answer and issues nothing twice).
//!
//! Admin keys are keys of their own prefix, [`ADMIN_PREFIX`], kept in their
//! own table: they are never published to gateways (a gateway that requires
//! no scope would otherwise let one through), and a published keyset holds
//! no key that can change it. Creating and revoking one is an audit entry
//! like any other change.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{audit, check_principal, check_scopes, Issuer, IssuerError, Result};
use keygate::{ApiKey, Digest, KeyId};

/// The prefix of every admin key (`kgadmin_…`), so secret scanners and
/// humans can tell one from a gateway key.
pub const ADMIN_PREFIX: &str = "kgadmin";

/// An admin key's state. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminKey {
    /// Key id (hex).
    pub key_id: String,
    /// Who holds it (a service or a person).
    pub principal: String,
    /// What it may do: `keys:read`, `keys:write`, `audit:read`, `publish`.
    pub scopes: Vec<String>,
    /// Issue time.
    pub created_at: u64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<u64>,
}

/// A new admin key: the only time its secret exists outside the client.
pub struct IssuedAdminKey {
    /// The key (secret).
    pub key: ApiKey,
    /// Its state.
    pub info: AdminKey,
}

impl std::fmt::Debug for IssuedAdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAdminKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The first answer to a request made with an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// Hash of the request (method, path, body) the key was first used with.
    pub request_hash: String,
    /// HTTP status of the first answer.
    pub status: u16,
    /// Its body.
    pub body: String,
}

/// Admin key scopes the API knows.
pub const ADMIN_SCOPES: [&str; 4] = ["keys:read", "keys:write", "audit:read", "publish"];

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AdminKey> {
    let scopes: String = r.get(2)?;
    Ok(AdminKey {
        key_id: r.get(0)?,
        principal: r.get(1)?,
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        created_at: r.get(3)?,
        revoked_at: r.get(4)?,
    })
}

impl Issuer {
    /// Creates an admin key for `principal` with `scopes` (each one of
    /// [`ADMIN_SCOPES`]).
    pub fn create_admin_key(
        &mut self,
        principal: &str,
        scopes: &[String],
    ) -> Result<IssuedAdminKey> {
        check_principal(principal)?;
        check_scopes(scopes)?;
        if scopes.is_empty() {
            return Err(IssuerError::Invalid(format!(
                "an admin key needs at least one scope of: {}",
                ADMIN_SCOPES.join(", ")
            )));
        }
        if let Some(s) = scopes.iter().find(|s| !ADMIN_SCOPES.contains(&s.as_str())) {
            return Err(IssuerError::Invalid(format!(
                "unknown admin scope {s:?}; admin scopes: {}",
                ADMIN_SCOPES.join(", ")
            )));
        }
        let key = ApiKey::generate(ADMIN_PREFIX)
            .map_err(|e| IssuerError::Corrupt(format!("admin key: {e}")))?;
        let digest = key.digest();
        let id = digest.key_id().to_string();
        let now = self.now();
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO admin_keys (key_id, digest, principal, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, digest.0.as_slice(), principal, scopes.join(" "), now],
        )?;
        audit::note(
            &tx,
            &actor,
            now,
            "admin-key",
            Some(&id),
            Some(principal),
            Some(&scopes.join(" ")),
        )?;
        tx.commit()?;
        Ok(IssuedAdminKey {
            key,
            info: AdminKey {
                key_id: id,
                principal: principal.into(),
                scopes: scopes.to_vec(),
                created_at: now,
                revoked_at: None,
            },
        })
    }

    /// Every admin key, revoked ones included.
    pub fn admin_keys(&self) -> Result<Vec<AdminKey>> {
        let mut st = self.conn.prepare(
            "SELECT key_id, principal, scopes, created_at, revoked_at FROM admin_keys ORDER BY created_at, key_id",
        )?;
        let rows = st
            .query_map([], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Revokes an admin key (idempotent). `NotFound` for an unknown id.
    pub fn revoke_admin_key(&mut self, id: &KeyId) -> Result<AdminKey> {
        let now = self.now();
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hex = id.to_string();
        let changed = tx.execute(
            "UPDATE admin_keys SET revoked_at = ?1 WHERE key_id = ?2 AND revoked_at IS NULL",
            params![now, hex],
        )?;
        let key = tx
            .query_row(
                "SELECT key_id, principal, scopes, created_at, revoked_at FROM admin_keys WHERE key_id = ?1",
                [&hex],
                row,
            )
            .optional()?
            .ok_or_else(|| IssuerError::NotFound(format!("admin key {hex}")))?;
        if changed > 0 {
            audit::note(
                &tx,
                &actor,
                now,
                "admin-key-revoke",
                Some(&hex),
                Some(&key.principal),
                None,
            )?;
        }
        tx.commit()?;
        Ok(key)
    }

    /// The admin key `presented` is, when it is one and not revoked. Looked
    /// up by its SHA-256 digest (no secret is stored).
    pub fn authenticate_admin(&self, presented: &str) -> Result<Option<AdminKey>> {
        let Ok(parsed) = keygate::parse_key(presented) else {
            return Ok(None);
        };
        if parsed.prefix() != ADMIN_PREFIX {
            return Ok(None);
        }
        let digest = Digest::of(presented.as_bytes());
        Ok(self
            .conn
            .query_row(
                "SELECT key_id, principal, scopes, created_at, revoked_at FROM admin_keys
                 WHERE digest = ?1 AND revoked_at IS NULL",
                [digest.0.as_slice()],
                row,
            )
            .optional()?)
    }

    /// The first answer recorded under `key` by the admin key `owner`, if any.
    pub fn idempotent_answer(&self, owner: &str, key: &str) -> Result<Option<IdempotentAnswer>> {
        Ok(self
            .conn
            .query_row(
                "SELECT request_hash, status, body FROM idempotency WHERE owner = ?1 AND key = ?2",
                params![owner, key],
                |r| {
                    Ok(IdempotentAnswer {
                        request_hash: r.get(0)?,
                        status: r.get(1)?,
                        body: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records the first answer under `key` for `owner`; a record already
    /// there (a concurrent retry) wins and is returned instead.
    pub fn record_idempotent_answer(
        &mut self,
        owner: &str,
        key: &str,
        answer: &IdempotentAnswer,
    ) -> Result<IdempotentAnswer> {
        let now = self.now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO idempotency (owner, key, request_hash, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                owner,
                key,
                answer.request_hash,
                answer.status,
                answer.body,
                now
            ],
        )?;
        // Records older than a day are no longer needed for retries.
        tx.execute(
            "DELETE FROM idempotency WHERE created_at < ?1",
            [now.saturating_sub(86_400)],
        )?;
        let first = tx.query_row(
            "SELECT request_hash, status, body FROM idempotency WHERE owner = ?1 AND key = ?2",
            params![owner, key],
            |r| {
                Ok(IdempotentAnswer {
                    request_hash: r.get(0)?,
                    status: r.get(1)?,
                    body: r.get(2)?,
                })
            },
        )?;
        tx.commit()?;
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_keys_authenticate_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = Issuer::init(&dir.path().join("s"), "acme", "acme_live", "test").unwrap();
        let k = i
            .create_admin_key("dashboard", &["keys:write".into(), "keys:read".into()])
            .unwrap();
        let secret = k.key.expose_secret().to_string();
        assert!(secret.starts_with("kgadmin_"));
        assert_eq!(
            i.authenticate_admin(&secret).unwrap().unwrap().scopes,
            ["keys:write", "keys:read"]
        );
        assert!(i.authenticate_admin("kgadmin_nope").unwrap().is_none());
        assert!(matches!(
            i.create_admin_key("x", &["root".into()]),
            Err(IssuerError::Invalid(_))
        ));
        assert!(matches!(
            i.create_admin_key("x", &[]),
            Err(IssuerError::Invalid(_))
        ));
        let id = KeyId::from_hex(&k.info.key_id).unwrap();
        assert!(i.revoke_admin_key(&id).unwrap().revoked_at.is_some());
        assert!(i.authenticate_admin(&secret).unwrap().is_none());
        assert_eq!(i.admin_keys().unwrap().len(), 1);
        // Never in what gateways get.
        let out = dir.path().join("pub");
        i.publish(&out, 3600).unwrap();
        let v = keygate::Verifier::new(&std::fs::read(out.join("trust.kgt")).unwrap()).unwrap();
        v.install_snapshot(&std::fs::read(out.join("snapshot.kgs")).unwrap())
            .unwrap();
        assert_eq!(v.snapshot_header().unwrap().record_count, 0);
        assert!(i.audit_verify().is_ok());
    }

    #[test]
    fn the_first_answer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = Issuer::init(&dir.path().join("s"), "acme", "acme_live", "test").unwrap();
        assert!(i.idempotent_answer("a", "k1").unwrap().is_none());
        let first = IdempotentAnswer {
            request_hash: "h".into(),
            status: 201,
            body: "{}".into(),
        };
        assert_eq!(
            i.record_idempotent_answer("a", "k1", &first).unwrap(),
            first
        );
        let second = IdempotentAnswer {
            status: 500,
            ..first.clone()
        };
        assert_eq!(
            i.record_idempotent_answer("a", "k1", &second).unwrap(),
            first
        );
        // Another admin key's record with the same key is its own.
        assert!(i.idempotent_answer("b", "k1").unwrap().is_none());
    }
}
