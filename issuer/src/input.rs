//! The issuer's text inputs — durations, times and import lines — parsed in
//! one place, so the CLI, a future API and the fuzz target read them alike.
//! Each refuses bad input with [`IssuerError::Invalid`] naming what was wrong.

use super::{Principal, Scope};
use serde::Deserialize;

use super::{IssuerError, Result};
use keygate::Digest;

/// A duration such as `30s`, `15m`, `7d`, `90d`, in whole seconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    humantime::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|e| {
            IssuerError::Invalid(format!(
                "bad duration {s:?} ({e}); use e.g. 30s, 15m, 7d, 90d"
            ))
        })
}

/// A time as unix seconds or RFC 3339 (`2026-01-01T00:00:00Z`).
pub fn parse_time(s: &str) -> Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            IssuerError::Invalid(format!(
                "bad time {s:?}; use unix seconds or RFC 3339 (2026-01-01T00:00:00Z)"
            ))
        })
}

/// One existing key to import by its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// Principal.
    pub principal: Principal,
    /// SHA-256 of the existing key.
    pub digest: Digest,
    /// Scopes granted.
    pub scopes: Vec<Scope>,
    /// Expiry (unix seconds).
    pub expires_at: Option<u64>,
}

#[derive(Deserialize)]
struct Line {
    principal: String,
    sha256: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<u64>,
}

impl Import {
    /// An import from its fields, the digest as 64 hex digits.
    pub fn new(
        principal: &str,
        sha256: &str,
        scopes: &[String],
        expires_at: Option<u64>,
    ) -> Result<Self> {
        let digest = Digest::from_hex(&sha256.to_ascii_lowercase()).ok_or_else(|| {
            IssuerError::Invalid(format!("bad sha256 {sha256:?}: want 64 hex digits"))
        })?;
        Ok(Self {
            principal: Principal::new(principal)?,
            digest,
            scopes: Scope::all(scopes.iter().cloned())?,
            expires_at,
        })
    }
}

/// Parses JSON lines (`{"principal": .., "sha256": .., "scopes": [..],
/// "expires_at": ..}`; blank lines skipped); an error names `source` and the
/// line.
pub fn parse_import_lines(text: &str, source: &str) -> Result<Vec<Import>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at =
            |e: &dyn std::fmt::Display| IssuerError::Invalid(format!("{source}:{}: {e}", n + 1));
        let l: Line = serde_json::from_str(line).map_err(|e| at(&e))?;
        out.push(
            Import::new(&l.principal, &l.sha256, &l.scopes, l.expires_at).map_err(|e| at(&e))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        assert_eq!(parse_duration("7d").unwrap(), 7 * 86_400);
        assert!(parse_duration("7 parsecs").is_err());
        assert!(parse_duration("99999999999999999999999y").is_err());
        assert_eq!(parse_time("1767225600").unwrap(), 1_767_225_600);
        assert_eq!(parse_time("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600);
        assert!(parse_time("tomorrow").is_err());
        let h = "ab".repeat(32);
        let ok = format!("{{\"principal\":\"p\",\"sha256\":\"{h}\"}}\n\n");
        assert_eq!(parse_import_lines(&ok, "f").unwrap().len(), 1);
        let bad = format!("{ok}{{\"principal\":\"p\",\"sha256\":\"zz\"}}\n");
        let e = parse_import_lines(&bad, "f").unwrap_err().to_string();
        assert!(e.starts_with("f:3: bad sha256"), "{e}");
        assert!(parse_import_lines("{", "f")
            .unwrap_err()
            .to_string()
            .starts_with("f:1:"));
    }
}
