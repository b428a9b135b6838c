//! Key use as the gateways saw it: the issuer never sees traffic, but every
//! gateway counts the verifies of *deprecated* keys (`stats_prometheus()`,
//! served at `/metrics` by `keygate serve`, the nginx module and the Lua
//! module). Merging those exports tells an operator whether a rotated-out key
//! is still in use before its sunset — `keygate list --usage FILE...`.

use std::collections::HashMap;

use serde::Serialize;

use super::{IssuerError, Result};
use keygate::KeyId;

/// What the gateways reported for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Verifies counted, summed over the exports.
    pub uses: u64,
    /// Latest verify (unix seconds), the maximum over the exports.
    pub last_seen: u64,
}

impl Usage {
    /// Merges another report of the same key: uses add up, the latest time wins.
    fn add(&mut self, other: Usage) {
        self.uses = self.uses.saturating_add(other.uses);
        self.last_seen = self.last_seen.max(other.last_seen);
    }
}

/// Key use by key id (32 hex chars), merged over gateway metrics exports.
#[derive(Clone, Debug, Default)]
pub struct UsageReport {
    keys: HashMap<String, Usage>,
}

const USES: &str = "keygate_deprecated_key_uses_total";
const LAST_SEEN: &str = "keygate_deprecated_key_last_seen_seconds";

impl UsageReport {
    /// Adds one gateway's Prometheus text export. `source` names it in errors.
    /// Lines other than keygate's two per-key series are ignored; a malformed
    /// line of those series is an error, and then nothing of this export is
    /// added.
    pub fn add_export(&mut self, source: &str, text: &str) -> Result<()> {
        let mut seen: HashMap<String, Usage> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let Some(metric) = [USES, LAST_SEEN]
                .into_iter()
                .find(|m| line.strip_prefix(m).is_some_and(|r| r.starts_with('{')))
            else {
                continue;
            };
            let bad = || {
                IssuerError::Invalid(format!(
                    "{source}:{}: not a keygate usage line: {line:?}",
                    n + 1
                ))
            };
            let rest = &line[metric.len()..];
            let (labels, value) = rest.rsplit_once('}').ok_or_else(bad)?;
            let key_id = labels
                .trim_start_matches('{')
                .split(',')
                .find_map(|l| l.strip_prefix("key_id=\""))
                .and_then(|v| v.strip_suffix('"'))
                .and_then(KeyId::from_hex)
                .ok_or_else(bad)?;
            let value: u64 = value.trim().parse().map_err(|_| bad())?;
            let (uses, last_seen) = if metric == USES {
                (value, 0)
            } else {
                (0, value)
            };
            seen.entry(key_id.to_string())
                .or_default()
                .add(Usage { uses, last_seen });
        }
        for (id, u) in seen {
            self.keys.entry(id).or_default().add(u);
        }
        Ok(())
    }

    /// What was reported for `key_id`, if anything.
    pub fn get(&self, key_id: &str) -> Option<Usage> {
        self.keys.get(key_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn merges_exports_sum_of_uses_latest_time() {
        let mut r = UsageReport::default();
        r.add_export(
            "gw1",
            &format!(
                "# HELP x\nkeygate_verify_total{{outcome=\"valid\"}} 9\n\
                 {USES}{{key_id=\"{ID}\",principal=\"app\"}} 3\n{LAST_SEEN}{{key_id=\"{ID}\"}} 1700000000\n"
            ),
        )
        .unwrap();
        r.add_export("gw2", &format!("{USES}{{key_id=\"{ID}\",principal=\"app\"}} 4\n{LAST_SEEN}{{key_id=\"{ID}\"}} 1690000000\n"))
            .unwrap();
        assert_eq!(
            r.get(ID),
            Some(Usage {
                uses: 7,
                last_seen: 1_700_000_000
            })
        );
        assert_eq!(r.get("ffffffffffffffffffffffffffffffff"), None);
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_it_and_adds_nothing() {
        let mut r = UsageReport::default();
        for bad in [
            format!("{USES}{{key_id=\"{ID}\"}} many"),
            format!("{USES}{{key_id=\"nothex\"}} 1"),
            format!("{LAST_SEEN}{{principal=\"x\"}} 1"),
            format!("{LAST_SEEN}{{key_id=\"{ID}\" 1"),
        ] {
            let text = format!("{LAST_SEEN}{{key_id=\"{ID}\"}} 5\n{bad}\n");
            let e = r.add_export("gw.prom", &text).unwrap_err().to_string();
            assert!(e.starts_with("gw.prom:2: not a keygate usage line"), "{e}");
        }
        assert_eq!(r.get(ID), None);
    }
}
