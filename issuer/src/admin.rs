//! Admin keys (who may call the issuer's HTTP API) and idempotency records
//! (a retried POST returns the first answer and issues nothing twice).
//!
//! The first answer to an issue holds the new key's secret, and the store
//! never holds a secret: a record's body is sealed (ChaCha20-Poly1305) under
//! a key derived from the caller's admin key *secret* and the
//! `Idempotency-Key`. Only the digest of an admin key is stored, so only a
//! retry by the same caller can open it.
//!
//! Admin keys are keys of their own prefix, [`ADMIN_PREFIX`], kept in their
//! own table: they are never published to gateways (a gateway that requires
//! no scope would otherwise let one through), and a published keyset holds
//! no key that can change it. Creating and revoking one is an audit entry
//! like any other change.

use super::db::{args, Row};
use super::{Principal, Scope};
use serde::Serialize;

use super::{audit, Issuer, IssuerError, Result};
use keygate::{ApiKey, Digest, KeyId};

/// The prefix of every admin key (`kgadmin_…`), so secret scanners and
/// humans can tell one from a gateway key.
pub const ADMIN_PREFIX: &str = "kgadmin";

/// An admin key's state. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminKey {
    /// Key id (hex in JSON).
    #[serde(with = "crate::model::key_id_hex")]
    pub key_id: KeyId,
    /// Who holds it (a service or a person).
    pub principal: Principal,
    /// What it may do: some of [`ADMIN_SCOPES`].
    pub scopes: Vec<Scope>,
    /// Issue time.
    pub created_at: u64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<u64>,
    /// End of its grace window, once rotated.
    pub expires_at: Option<u64>,
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

/// What recording an answer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// This answer is now the first one.
    First,
    /// An earlier request with the same key recorded this answer first;
    /// this one was not recorded.
    Earlier(IdempotentAnswer),
}

/// The sealing key of one record: HKDF-SHA256 over the admin key's secret,
/// salted with the `Idempotency-Key`.
fn record_key(admin_secret: &[u8], idempotency_key: &str) -> ring::aead::LessSafeKey {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, idempotency_key.as_bytes());
    let mut raw = [0u8; 32];
    // HKDF-expand of 32 bytes from SHA-256 cannot fail.
    if let Ok(okm) = salt
        .extract(admin_secret)
        .expand(&[b"keygate idempotency record"], Len)
    {
        let _ = okm.fill(&mut raw);
    }
    let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &raw)
        .unwrap_or_else(|_| unreachable!("a 32-byte ChaCha20-Poly1305 key"));
    ring::aead::LessSafeKey::new(key)
}

fn seal(admin_secret: &[u8], idempotency_key: &str, body: &str) -> Result<String> {
    use ring::rand::SecureRandom as _;
    let mut nonce = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| IssuerError::Corrupt("the OS random generator failed".into()))?;
    let mut buf = body.as_bytes().to_vec();
    record_key(admin_secret, idempotency_key)
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::empty(),
            &mut buf,
        )
        .map_err(|_| IssuerError::Corrupt("sealing an idempotency record failed".into()))?;
    Ok(nonce
        .iter()
        .chain(&buf)
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn open_sealed(admin_secret: &[u8], idempotency_key: &str, hex: &str) -> Result<String> {
    let bad = || IssuerError::Corrupt("an idempotency record does not open".into());
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return Err(bad());
    }
    let raw: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if raw.len() < 12 + 16 {
        return Err(bad());
    }
    let (nonce, sealed) = raw.split_at(12);
    let mut buf = sealed.to_vec();
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
    let plain = record_key(admin_secret, idempotency_key)
        .open_in_place(nonce, ring::aead::Aad::empty(), &mut buf)
        .map_err(|_| bad())?;
    String::from_utf8(plain.to_vec()).map_err(|_| bad())
}

/// Admin key scopes the API knows.
pub const ADMIN_SCOPES: [&str; 6] = [
    "keys:read",
    "keys:write",
    "keys:revoke",
    "audit:read",
    "publish",
    "metrics:read",
];

fn row(r: &Row) -> Result<AdminKey> {
    Ok(AdminKey {
        key_id: r.get(0)?,
        principal: r.get(1)?,
        scopes: Scope::split_stored(&r.get::<String>(2)?)?,
        created_at: r.get(3)?,
        revoked_at: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

impl Issuer {
    /// Creates an admin key for `principal` with `scopes` (each one of
    /// [`ADMIN_SCOPES`]).
    pub fn create_admin_key(
        &mut self,
        principal: &Principal,
        scopes: &[Scope],
    ) -> Result<IssuedAdminKey> {
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
        let id = digest.key_id();
        let now = self.now();
        self.admins.get_mut().clear();
        let actor = self.actor.clone();
        let (tx, _) = self.write()?;
        tx.execute(
            "INSERT INTO admin_keys (key_id, digest, principal, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![id, digest.0.as_slice(), principal, Scope::join(scopes), now],
        )?;
        audit::note(
            &tx,
            &actor,
            now,
            "admin-key",
            Some(&id.to_string()),
            Some(principal),
            Some(&Scope::join(scopes)),
        )?;
        tx.commit()?;
        Ok(IssuedAdminKey {
            key,
            info: AdminKey {
                key_id: id,
                principal: principal.clone(),
                scopes: scopes.to_vec(),
                created_at: now,
                revoked_at: None,
                expires_at: None,
            },
        })
    }

    /// Every admin key, revoked ones included.
    pub fn admin_keys(&self) -> Result<Vec<AdminKey>> {
        self.db.query_map(
            "SELECT key_id, principal, scopes, created_at, revoked_at, expires_at FROM admin_keys ORDER BY created_at, key_id",
            args![],
            row,
        )
    }

    /// Rotates an admin key: a new one for the same principal with the same
    /// scopes, and the old one working only `grace` seconds more (long
    /// enough to deploy the new one). `NotFound` unless it is current.
    pub fn rotate_admin_key(&mut self, id: &KeyId, grace: u64) -> Result<IssuedAdminKey> {
        let old = self
            .admin_keys()?
            .into_iter()
            .find(|k| k.key_id == *id)
            .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none())
            .ok_or_else(|| IssuerError::NotFound(format!("admin key {id} (current)")))?;
        let now = self.now();
        let until = super::check_time("the end of the grace window", now.saturating_add(grace))?;
        self.atomically(|i| {
            let new = i.create_admin_key(&old.principal, &old.scopes)?;
            i.admins.get_mut().clear();
            let actor = i.actor.clone();
            let (tx, _) = i.write()?;
            tx.execute(
                "UPDATE admin_keys SET expires_at = ?1 WHERE key_id = ?2",
                args![until, old.key_id],
            )?;
            audit::note(
                &tx,
                &actor,
                now,
                "admin-key-rotate",
                Some(&old.key_id.to_string()),
                Some(&old.principal),
                Some(&format!(
                    "new key {}; old key works until {until}",
                    new.info.key_id
                )),
            )?;
            tx.commit()?;
            Ok(new)
        })
    }

    /// Revokes an admin key (idempotent). `NotFound` for an unknown id.
    pub fn revoke_admin_key(&mut self, id: &KeyId) -> Result<AdminKey> {
        let now = self.now();
        self.admins.get_mut().clear();
        let actor = self.actor.clone();
        let (tx, _) = self.write()?;
        let hex = id.to_string();
        let changed = tx.execute(
            "UPDATE admin_keys SET revoked_at = ?1 WHERE key_id = ?2 AND revoked_at IS NULL",
            args![now, hex],
        )?;
        let key = tx
            .query_opt(
                "SELECT key_id, principal, scopes, created_at, revoked_at, expires_at FROM admin_keys WHERE key_id = ?1",
                args![&hex],
                row,
            )?
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
        let now = self.now();
        let current = |k: &AdminKey| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now);
        if let Some(known) = self.admins.borrow().get(&digest.0) {
            return Ok(known.clone().filter(current));
        }
        let found = self.db.query_opt(
            "SELECT key_id, principal, scopes, created_at, revoked_at, expires_at FROM admin_keys
             WHERE digest = ?1",
            args![digest.0.as_slice()],
            row,
        )?;
        if self.in_atomic {
            self.admins.borrow_mut().insert(digest.0, found.clone());
        }
        Ok(found.filter(current))
    }

    /// The first answer recorded under `key` for the admin key `owner` (its
    /// id), opened with that admin key's `secret`, if any.
    pub fn idempotent_answer(
        &self,
        owner: &str,
        secret: &[u8],
        key: &str,
    ) -> Result<Option<IdempotentAnswer>> {
        let sealed = self.db.query_opt(
            "SELECT request_hash, status, body FROM idempotency WHERE owner = ?1 AND key = ?2",
            args![owner, key],
            |r| {
                Ok(IdempotentAnswer {
                    request_hash: r.get(0)?,
                    status: r.get(1)?,
                    body: r.get(2)?,
                })
            },
        )?;
        sealed
            .map(|a| {
                Ok(IdempotentAnswer {
                    body: open_sealed(secret, key, &a.body)?,
                    ..a
                })
            })
            .transpose()
    }

    /// Records the first answer under `key` for `owner`, sealed with the
    /// admin key's `secret`; a record already there (an earlier or
    /// concurrent request with the same key) wins and is returned instead.
    pub fn record_idempotent_answer(
        &mut self,
        owner: &str,
        secret: &[u8],
        key: &str,
        answer: &IdempotentAnswer,
    ) -> Result<Recorded> {
        let now = self.now();
        let sealed = seal(secret, key, &answer.body)?;
        if self.record_sealed(owner, key, answer, &sealed, now)? {
            return Ok(Recorded::First);
        }
        self.idempotent_answer(owner, secret, key)?
            .map(Recorded::Earlier)
            .ok_or_else(|| IssuerError::Corrupt("an idempotency record vanished".into()))
    }

    fn record_sealed(
        &mut self,
        owner: &str,
        key: &str,
        answer: &IdempotentAnswer,
        sealed: &str,
        now: u64,
    ) -> Result<bool> {
        // Records older than a day are no longer needed for retries: swept
        // at most once a minute per connection.
        let sweep = now >= self.idempotency_swept_at.saturating_add(60);
        let (tx, _) = self.write()?;
        let inserted = tx.execute(
            "INSERT INTO idempotency (owner, key, request_hash, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (owner, key) DO NOTHING",
            args![owner, key, answer.request_hash, answer.status, sealed, now],
        )?;
        if sweep {
            tx.execute(
                "DELETE FROM idempotency WHERE created_at < ?1",
                args![now.saturating_sub(86_400)],
            )?;
        }
        tx.commit()?;
        if sweep {
            self.idempotency_swept_at = now;
        }
        Ok(inserted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Principal {
        Principal::new(s).unwrap()
    }

    fn sc(v: &[&str]) -> Vec<Scope> {
        Scope::all(v.iter().copied()).unwrap()
    }

    #[test]
    fn a_rotated_admin_key_works_until_its_grace_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut i =
            Issuer::init_at(&crate::test_store(dir.path()), "acme", "acme_live", "test").unwrap();
        let now = 1_800_000_000;
        i.set_now(Some(now));
        let old = i.create_admin_key(&p("ci"), &sc(&["keys:read"])).unwrap();
        let old_secret = old.key.expose_secret().to_string();
        let id = old.info.key_id;
        let new = i.rotate_admin_key(&id, 3600).unwrap();
        assert_eq!(
            (new.info.principal.as_str(), new.info.scopes.as_slice()),
            ("ci", sc(&["keys:read"]).as_slice())
        );
        let new_secret = new.key.expose_secret().to_string();
        // Both work in the grace window; then only the new one.
        assert!(i.authenticate_admin(&old_secret).unwrap().is_some());
        assert!(i.authenticate_admin(&new_secret).unwrap().is_some());
        i.set_now(Some(now + 3601));
        assert!(i.authenticate_admin(&old_secret).unwrap().is_none());
        assert!(i.authenticate_admin(&new_secret).unwrap().is_some());
        // A rotated key is not rotated again; an unknown one is not found.
        assert!(matches!(
            i.rotate_admin_key(&id, 60),
            Err(IssuerError::NotFound(_))
        ));
        let listed = i.admin_keys().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            listed
                .iter()
                .find(|k| k.key_id == old.info.key_id)
                .unwrap()
                .expires_at,
            Some(now + 3600)
        );
        assert!(i
            .audit_log()
            .unwrap()
            .iter()
            .any(|e| e.action == "admin-key-rotate"));
        assert_eq!(i.audit_verify().unwrap().first_bad, None);
    }

    #[test]
    fn admin_keys_authenticate_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let mut i =
            Issuer::init_at(&crate::test_store(dir.path()), "acme", "acme_live", "test").unwrap();
        let k = i
            .create_admin_key(&p("dashboard"), &sc(&["keys:write", "keys:read"]))
            .unwrap();
        let secret = k.key.expose_secret().to_string();
        assert!(secret.starts_with("kgadmin_"));
        assert_eq!(
            i.authenticate_admin(&secret).unwrap().unwrap().scopes,
            ["keys:write", "keys:read"]
        );
        assert!(i.authenticate_admin("kgadmin_nope").unwrap().is_none());
        assert!(matches!(
            i.create_admin_key(&p("x"), &sc(&["root"])),
            Err(IssuerError::Invalid(_))
        ));
        assert!(matches!(
            i.create_admin_key(&p("x"), &[]),
            Err(IssuerError::Invalid(_))
        ));
        let id = k.info.key_id;
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
    fn what_a_publisher_still_has_to_publish() {
        use crate::{IssueRequest, RevokeTarget, Unpublished};
        let dir = tempfile::tempdir().unwrap();
        let mut i =
            Issuer::init_at(&crate::test_store(dir.path()), "acme", "acme_live", "test").unwrap();
        i.publish(&dir.path().join("pub"), 3600).unwrap();
        let at = i.audit_head_seq().unwrap();
        assert_eq!(i.unpublished_since(at).unwrap(), Unpublished::default());
        i.create_admin_key(&p("ops"), &sc(&["publish"])).unwrap();
        assert_eq!(
            i.unpublished_since(at).unwrap(),
            Unpublished::default(),
            "admin keys are never published"
        );
        let k = i
            .issue(&IssueRequest::new(Principal::new("p").unwrap()))
            .unwrap();
        let after_issue = i.audit_head_seq().unwrap();
        assert_eq!(
            i.unpublished_since(at).unwrap(),
            Unpublished {
                revocations: false,
                snapshot: true
            }
        );
        i.revoke(&RevokeTarget::Ids(vec![k.key.key_id()]), None)
            .unwrap();
        assert_eq!(
            i.unpublished_since(after_issue).unwrap(),
            Unpublished {
                revocations: true,
                snapshot: false
            }
        );
    }

    #[test]
    fn a_failed_savepoint_undoes_its_nested_ones_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut i =
            Issuer::init_at(&crate::test_store(dir.path()), "acme", "acme_live", "test").unwrap();
        let issue =
            |i: &mut Issuer, who: &str| i.issue(&crate::IssueRequest::new(p(who))).map(|_| ());
        i.atomically(|i| {
            i.atomically(|i| issue(i, "kept"))?;
            // A request that fails after a nested savepoint of its own
            // succeeded (left unreleased): all of it goes.
            let failed = i.atomically(|i| {
                issue(i, "undone-1")?;
                i.atomically(|i| issue(i, "undone-2"))?;
                Err::<(), _>(IssuerError::Conflict("the request failed".into()))
            });
            assert!(failed.is_err());
            i.atomically(|i| issue(i, "also-kept"))?;
            // The admin key looked up inside is forgotten with its rollback.
            let failed = i.atomically(|i| {
                let k = i.create_admin_key(&p("ops"), &sc(&["keys:read"]))?;
                assert!(i
                    .authenticate_admin(k.key.expose_secret())
                    .unwrap()
                    .is_some());
                Err::<IssuedAdminKey, _>(IssuerError::Conflict("undone".into()))
            });
            assert!(failed.is_err());
            Ok(())
        })
        .unwrap();
        let mut principals: Vec<String> = i
            .list(None, None)
            .unwrap()
            .into_iter()
            .map(|k| k.principal.to_string())
            .collect();
        principals.sort();
        assert_eq!(principals, ["also-kept", "kept"]);
        assert!(i.admin_keys().unwrap().is_empty());
        let report = i.audit_verify().unwrap();
        assert!(report.first_bad.is_none(), "{:?}", report.first_bad);
    }

    #[test]
    fn the_first_answer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut i =
            Issuer::init_at(&crate::test_store(dir.path()), "acme", "acme_live", "test").unwrap();
        let secret = b"kgadmin_secret-of-the-caller";
        assert!(i.idempotent_answer("a", secret, "k1").unwrap().is_none());
        let first = IdempotentAnswer {
            request_hash: "h".into(),
            status: 201,
            body: r#"{"key":"acme_live_SECRET"}"#.into(),
        };
        assert_eq!(
            i.record_idempotent_answer("a", secret, "k1", &first)
                .unwrap(),
            Recorded::First
        );
        let second = IdempotentAnswer {
            status: 500,
            ..first.clone()
        };
        assert_eq!(
            i.record_idempotent_answer("a", secret, "k1", &second)
                .unwrap(),
            Recorded::Earlier(first.clone())
        );
        // The same answer again is still not recorded a second time.
        assert_eq!(
            i.record_idempotent_answer("a", secret, "k1", &first)
                .unwrap(),
            Recorded::Earlier(first.clone())
        );
        // Another admin key's record with the same key is its own.
        assert!(i.idempotent_answer("b", secret, "k1").unwrap().is_none());
        // The store holds no secret, and only the caller's secret opens it.
        for f in ["keygate.db", "keygate.db-wal"] {
            let bytes = std::fs::read(dir.path().join("s").join(f)).unwrap_or_default();
            assert!(
                !bytes.windows(6).any(|w| w == b"SECRET"),
                "{f} holds the secret"
            );
        }
        assert!(matches!(
            i.idempotent_answer("a", b"another admin secret", "k1"),
            Err(IssuerError::Corrupt(_))
        ));
    }
}
