//! Rotation policy classes, due keys, rotating what is due, issuer metrics.
//!
//! A class (`payments`, `internal`, ...) sets how long its keys may live
//! (`max_age`), the grace window of a rotation, and how long before expiry a
//! key counts as due for rotation (`rotate_before`, default: the grace, so the
//! rotation's grace window ends by the old key's expiry).

use super::db::args;
use super::KeyStatus;
use super::Principal;
use keygate::KeyId;
use serde::Serialize;

use super::audit;
use super::{store, IssuedKey, Issuer, IssuerError, Result};

/// A rotation policy class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Class name.
    pub class: String,
    /// Longest life of a key (seconds).
    pub max_age: u64,
    /// Grace window of a rotation (seconds).
    pub grace: u64,
    /// A key is due this long before it expires (seconds; default: the grace).
    pub rotate_before: Option<u64>,
}

impl Policy {
    fn rotate_before(&self) -> u64 {
        self.rotate_before.unwrap_or(self.grace)
    }
}

/// A key that needs attention within the window asked about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DueKey {
    /// Key id.
    #[serde(with = "crate::model::key_id_hex")]
    pub key_id: KeyId,
    /// Principal.
    pub principal: Principal,
    /// The principal's class, if any.
    pub class: Option<String>,
    /// Active or deprecated.
    pub status: KeyStatus,
    /// `expires`, `rotate_before` or `sunset`.
    pub reason: String,
    /// When it falls due (unix seconds).
    pub due_at: u64,
    /// When the key stops working (unix seconds), if it does.
    pub expires_at: Option<u64>,
    /// Whole days from now until `due_at` (negative when overdue).
    pub days_left: i64,
}

/// One principal rotated (or, in a dry run, to be rotated) by `rotate --due`.
#[derive(Clone, Debug, Serialize)]
pub struct DueRotation {
    /// Principal.
    pub principal: Principal,
    /// Its class, if any.
    pub class: Option<String>,
    /// Grace given to the old keys (seconds).
    pub grace: u64,
    /// The new key (absent in a dry run). Serialized without the secret.
    #[serde(skip)]
    pub new_key: Option<IssuedKey>,
    /// The new key's id (absent in a dry run).
    pub new_key_id: Option<String>,
    /// The keys that were due.
    pub due_keys: Vec<String>,
}

/// Default grace of a rotation for a principal without a class.
pub const DEFAULT_GRACE: u64 = 7 * 86_400;

fn check_class(class: &str) -> Result<()> {
    let ok = !class.is_empty()
        && class.len() <= 64
        && class
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(IssuerError::Invalid(format!(
            "class must be 1-64 chars of [A-Za-z0-9._-]: {class:?}"
        )))
    }
}

impl Issuer {
    /// Creates or changes a policy class (audited).
    pub fn set_policy(&mut self, p: &Policy) -> Result<()> {
        check_class(&p.class)?;
        if p.max_age == 0 || p.grace == 0 {
            return Err(IssuerError::Invalid(
                "max-age and grace must be positive".into(),
            ));
        }
        if p.max_age > keygate::MAX_TIME {
            return Err(IssuerError::Invalid(
                "max-age is longer than a key record can hold (until 2106)".into(),
            ));
        }
        if p.grace >= p.max_age || p.rotate_before() >= p.max_age {
            return Err(IssuerError::Invalid(
                "grace and rotate-before must be shorter than max-age".into(),
            ));
        }
        let now = self.now();
        let (tx, actor) = self.write()?;
        tx.execute(
            "INSERT INTO policy (class, max_age, grace, rotate_before) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(class) DO UPDATE SET max_age = excluded.max_age, grace = excluded.grace,
               rotate_before = excluded.rotate_before",
            args![p.class, p.max_age, p.grace, p.rotate_before],
        )?;
        let reason = format!(
            "max_age {}s, grace {}s, rotate_before {}s",
            p.max_age,
            p.grace,
            p.rotate_before()
        );
        audit::note(
            &tx,
            actor,
            now,
            "policy-set",
            None,
            None,
            Some(&format!("{}: {reason}", p.class)),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every policy class.
    pub fn policies(&self) -> Result<Vec<Policy>> {
        self.db.query_map(
            "SELECT class, max_age, grace, rotate_before FROM policy ORDER BY class",
            args![],
            |r| {
                Ok(Policy {
                    class: r.get(0)?,
                    max_age: r.get(1)?,
                    grace: r.get(2)?,
                    rotate_before: r.get(3)?,
                })
            },
        )
    }

    fn policy(&self, class: &str) -> Result<Policy> {
        self.policies()?
            .into_iter()
            .find(|p| p.class == class)
            .ok_or_else(|| {
                IssuerError::NotFound(format!(
                    "policy class '{class}' (create it with `keygate policy set`)"
                ))
            })
    }

    /// The class of `principal`, if it has one.
    pub fn principal_policy(&self, principal: &str) -> Result<Option<Policy>> {
        let class: Option<String> = self.db.query_opt(
            "SELECT class FROM principal_class WHERE principal = ?1",
            args![principal],
            |r| r.get(0),
        )?;
        class.map(|c| self.policy(&c)).transpose()
    }

    /// Puts `principal` in `class` (audited). The class must exist.
    pub fn set_principal_class(&mut self, principal: &str, class: &str) -> Result<()> {
        self.policy(class)?;
        let now = self.now();
        let (tx, actor) = self.write()?;
        tx.execute(
            "INSERT INTO principal_class (principal, class) VALUES (?1, ?2)
             ON CONFLICT(principal) DO UPDATE SET class = excluded.class",
            args![principal, class],
        )?;
        audit::note(
            &tx,
            actor,
            now,
            "principal-class",
            None,
            Some(principal),
            Some(class),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Keys due within `within` seconds: active keys whose expiry or
    /// rotate-before point falls in the window, and deprecated keys whose
    /// sunset does. Soonest first.
    pub fn due(&self, within: u64) -> Result<Vec<DueKey>> {
        let now = self.now();
        let horizon = now.saturating_add(within);
        let classes: std::collections::HashMap<String, Policy> = self
            .policies()?
            .into_iter()
            .map(|p| (p.class.clone(), p))
            .collect();
        let of: std::collections::HashMap<String, String> = self
            .db
            .query_map(
                "SELECT principal, class FROM principal_class",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect();
        let mut out = Vec::new();
        for k in self.list(None, None)? {
            let class = of.get(k.principal.as_str()).cloned();
            let policy = class.as_ref().and_then(|c| classes.get(c));
            let (reason, due_at) = match k.status {
                KeyStatus::Deprecated => ("sunset", k.sunset_at.or(k.expires_at)),
                KeyStatus::Active => {
                    let deadline = k
                        .expires_at
                        .or_else(|| policy.map(|p| k.created_at.saturating_add(p.max_age)));
                    match (deadline, policy) {
                        (Some(d), Some(p)) => {
                            ("rotate_before", Some(d.saturating_sub(p.rotate_before())))
                        }
                        (Some(d), None) => ("expires", Some(d)),
                        _ => ("", None),
                    }
                }
                KeyStatus::Revoked => ("", None),
            };
            let Some(due_at) = due_at else { continue };
            // Already expired keys no longer need a reminder, only cleanup.
            if due_at > horizon || k.expires_at.is_some_and(|e| e <= now) {
                continue;
            }
            out.push(DueKey {
                key_id: k.key_id,
                principal: k.principal,
                class,
                status: k.status,
                reason: reason.into(),
                due_at,
                expires_at: k.expires_at,
                days_left: (due_at as i64 - now as i64).div_euclid(86_400),
            });
        }
        out.sort_by_key(|d| d.due_at);
        Ok(out)
    }

    /// Rotates every principal with a due active key, each with its class's
    /// grace. With `dry_run`, changes nothing and says what it would do.
    pub fn rotate_due(&mut self, within: u64, dry_run: bool) -> Result<Vec<DueRotation>> {
        let mut by_principal: std::collections::BTreeMap<Principal, Vec<String>> =
            Default::default();
        for d in self
            .due(within)?
            .into_iter()
            .filter(|d| d.status == KeyStatus::Active)
        {
            by_principal
                .entry(d.principal)
                .or_default()
                .push(d.key_id.to_string());
        }
        let mut out = Vec::new();
        for (principal, due_keys) in by_principal {
            let policy = self.principal_policy(&principal)?;
            let grace = policy.as_ref().map_or(DEFAULT_GRACE, |p| p.grace);
            let (new_key, new_key_id) = if dry_run {
                (None, None)
            } else {
                let (k, _) = self.rotate(&principal, Some(grace))?;
                let id = k.info.key_id.to_string();
                (Some(k), Some(id))
            };
            out.push(DueRotation {
                principal,
                class: policy.map(|p| p.class),
                grace,
                new_key,
                new_key_id,
                due_keys,
            });
        }
        Ok(out)
    }

    /// Issuer-side metrics in Prometheus text: keys by status and class, key
    /// age distribution, keys due within 7 days, time since the last publish.
    pub fn metrics(&self) -> Result<String> {
        use std::fmt::Write as _;
        let now = self.now();
        let by: Vec<(String, String, u64)> = self.db.query_map(
            "SELECT k.status, COALESCE(c.class, ''), count(*) FROM keys k
             LEFT JOIN principal_class c ON c.principal = k.principal GROUP BY 1, 2 ORDER BY 1, 2",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP keygate_issuer_keys Keys in the store by status and class."
        );
        let _ = writeln!(s, "# TYPE keygate_issuer_keys gauge");
        for (status, class, n) in &by {
            let _ = writeln!(
                s,
                "keygate_issuer_keys{{status=\"{status}\",class=\"{class}\"}} {n}"
            );
        }
        let ages: Vec<u64> = self
            .list(None, None)?
            .into_iter()
            .filter(|k| k.status != KeyStatus::Revoked)
            .map(|k| now.saturating_sub(k.created_at))
            .collect();
        let _ = writeln!(
            s,
            "# HELP keygate_issuer_key_age_seconds Age of keys that are not revoked."
        );
        let _ = writeln!(s, "# TYPE keygate_issuer_key_age_seconds histogram");
        for days in [1u64, 7, 30, 90, 180, 365] {
            let n = ages.iter().filter(|a| **a <= days * 86_400).count();
            let _ = writeln!(
                s,
                "keygate_issuer_key_age_seconds_bucket{{le=\"{}\"}} {n}",
                days * 86_400
            );
        }
        let _ = writeln!(
            s,
            "keygate_issuer_key_age_seconds_bucket{{le=\"+Inf\"}} {}",
            ages.len()
        );
        let _ = writeln!(
            s,
            "keygate_issuer_key_age_seconds_sum {}",
            ages.iter().sum::<u64>()
        );
        let _ = writeln!(s, "keygate_issuer_key_age_seconds_count {}", ages.len());
        let _ = writeln!(
            s,
            "# HELP keygate_issuer_keys_due Keys due for rotation (or at sunset) within 7 days."
        );
        let _ = writeln!(s, "# TYPE keygate_issuer_keys_due gauge");
        let _ = writeln!(s, "keygate_issuer_keys_due {}", self.due(7 * 86_400)?.len());
        let last =
            store::get_meta(&self.db, "last_publish_at")?.and_then(|v| v.parse::<u64>().ok());
        let _ = writeln!(
            s,
            "# HELP keygate_issuer_seconds_since_publish Time since the last publish (-1: never)."
        );
        let _ = writeln!(s, "# TYPE keygate_issuer_seconds_since_publish gauge");
        let since = last.map_or(-1, |t| now.saturating_sub(t) as i64);
        let _ = writeln!(s, "keygate_issuer_seconds_since_publish {since}");
        Ok(s)
    }
}
