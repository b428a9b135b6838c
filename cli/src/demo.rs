//! `keygate demo`: the whole cycle in a temporary store, printed step by step.

use std::time::Instant;

use keygate::{ApiKey, Outcome, Verifier};
use keygate_issuer::{IssueRequest, Issuer, Principal, RevokeTarget, Scope};
use serde_json::{json, Value};

use crate::cmd::verdict_json;
use crate::{Fail, Res};

struct Demo {
    json: bool,
    steps: Vec<Value>,
    t: Instant,
}

impl Demo {
    fn step(&mut self, title: &str, detail: String) {
        let ms = self.t.elapsed().as_secs_f64() * 1e3;
        if self.json {
            self.steps
                .push(json!({"step": title, "detail": detail, "ms": ms}));
        } else {
            println!("\n== {title}  ({ms:.2} ms)\n{detail}");
        }
        self.t = Instant::now();
    }
}

fn shown(k: &str) -> String {
    // Enough to tell keys apart on screen, not enough to use one.
    format!("{}…", &k[..k.len().min(16)])
}

fn fail(e: impl std::fmt::Display) -> Fail {
    Fail(3, format!("demo: {e}"))
}

pub(crate) fn run(json_out: bool) -> Res<u8> {
    let tmp = tempfile::tempdir().map_err(fail)?;
    let store = tmp.path().join("store");
    let out = tmp.path().join("published");
    let mut d = Demo {
        json: json_out,
        steps: Vec::new(),
        t: Instant::now(),
    };

    let mut iss = Issuer::init(&store, "demo", "demo_live", "demo").map_err(fail)?;
    d.step(
        "init",
        format!(
            "keyset 'demo', prefix demo_live, store {} (SQLite + Ed25519 signing key)",
            store.display()
        ),
    );

    let issue = |iss: &mut Issuer, p: &str, scopes: &[&str], expires: Option<u64>| {
        iss.issue(&IssueRequest {
            principal: Principal::new(p)?,
            scopes: Scope::all(scopes.iter().copied())?,
            expires_in: expires,
            not_before: None,
            class: None,
        })
    };
    let billing = issue(
        &mut iss,
        "billing-service",
        &["invoices:read", "invoices:write"],
        None,
    )
    .map_err(fail)?;
    let search = issue(&mut iss, "search-indexer", &["search:read"], None).map_err(fail)?;
    let partner = issue(
        &mut iss,
        "partner-acme",
        &["invoices:read"],
        Some(90 * 86_400),
    )
    .map_err(fail)?;
    let mut lines = String::new();
    for k in [&billing, &search, &partner] {
        lines += &format!(
            "  {:<16} {}  key id {}  scopes {}\n",
            k.info.principal,
            shown(k.key.expose_secret()),
            k.info.key_id,
            Scope::list(&k.info.scopes, ",")
        );
    }
    d.step(
        "issue 3 keys (each secret shown once, stored only as SHA-256)",
        lines.trim_end().into(),
    );

    let r = iss.publish(&out, 7 * 86_400).map_err(fail)?;
    d.step(
        "publish",
        format!(
            "snapshot v{} ({} keys, {} B), revocations seq {} ({} B), trust v{} ({} B), signed by {}",
            r.snapshot_version, r.keys, r.snapshot_bytes, r.revocation_seq, r.revocations_bytes, r.trust_version, r.trust_bytes, r.signer
        ),
    );

    let read = |n: &str| std::fs::read(out.join(n)).map_err(fail);
    let gw = Verifier::new(&read("trust.kgt")?).map_err(fail)?;
    let t = Instant::now();
    gw.install_snapshot(&read("snapshot.kgs")?).map_err(fail)?;
    gw.install_revocations(&read("revocations.kgr")?)
        .map_err(fail)?;
    let load_us = t.elapsed().as_secs_f64() * 1e6;
    d.step(
        "gateway loads the artifacts",
        format!("signature checked and installed in {load_us:.0} µs"),
    );

    let table = |gw: &Verifier, cases: &[(&str, String, Option<&str>)]| -> (String, Vec<Value>) {
        let mut s = format!(
            "  {:<34} {:<16} {:<20} {:<18} {:>8}\n",
            "presented", "scope", "outcome", "principal", "ns"
        );
        let mut v = Vec::new();
        for (label, key, scope) in cases {
            let t = Instant::now();
            let verdict = gw.verify_now(key, *scope);
            let ns = t.elapsed().as_nanos();
            s += &format!(
                "  {:<34} {:<16} {:<20} {:<18} {:>8}\n",
                label,
                scope.unwrap_or("-"),
                verdict.outcome.as_str(),
                verdict.principal.as_str(),
                ns
            );
            let mut j = verdict_json(&verdict);
            j["presented"] = json!(label);
            v.push(j);
        }
        (s.trim_end().into(), v)
    };

    let bk = billing.key.expose_secret().to_string();
    let mut typo = bk.clone();
    let c = if typo.ends_with('A') { "B" } else { "A" };
    typo.replace_range(typo.len() - 1.., c);
    let stranger = ApiKey::generate("demo_live").map_err(fail)?;
    let (s, _) = table(
        &gw,
        &[
            ("billing-service key", bk.clone(), Some("invoices:write")),
            (
                "search-indexer key",
                search.key.expose_secret().into(),
                Some("search:read"),
            ),
            (
                "search-indexer key",
                search.key.expose_secret().into(),
                Some("invoices:read"),
            ),
            (
                "partner-acme key",
                partner.key.expose_secret().into(),
                Some("invoices:read"),
            ),
            ("billing key with a typo", typo, None),
            (
                "well-formed key never issued",
                stranger.expose_secret().into(),
                None,
            ),
        ],
    );
    d.step("verify", s);

    let (new_billing, old) = iss
        .rotate("billing-service", Some(7 * 86_400))
        .map_err(fail)?;
    let r = iss.publish(&out, 7 * 86_400).map_err(fail)?;
    gw.install_snapshot(&read("snapshot.kgs")?).map_err(fail)?;
    gw.install_revocations(&read("revocations.kgr")?)
        .map_err(fail)?;
    let (s, _) = table(
        &gw,
        &[
            (
                "billing old key (in grace)",
                bk.clone(),
                Some("invoices:read"),
            ),
            (
                "billing new key",
                new_billing.key.expose_secret().into(),
                Some("invoices:read"),
            ),
        ],
    );
    let sunset = old.first().and_then(|o| o.sunset_at).unwrap_or(0);
    d.step(
        "rotate billing-service with a 7-day grace, publish snapshot v2",
        format!(
            "{s}\n  old key answers valid_deprecated: gateways add Deprecation: @{} and Sunset ({} s from now); snapshot v{}",
            old.first().and_then(|o| o.deprecated_at).unwrap_or(0),
            sunset.saturating_sub(iss.now()),
            r.snapshot_version
        ),
    );

    let t_revoke = Instant::now();
    iss.revoke(
        &RevokeTarget::Principal("search-indexer".into()),
        Some("demo: leaked in a log"),
    )
    .map_err(fail)?;
    let r = iss.publish_revocations(&out, 7 * 86_400).map_err(fail)?;
    gw.install_revocations(&read("revocations.kgr")?)
        .map_err(fail)?;
    let revoke_ms = t_revoke.elapsed().as_secs_f64() * 1e3;
    let (s, _) = table(
        &gw,
        &[(
            "search-indexer key",
            search.key.expose_secret().into(),
            Some("search:read"),
        )],
    );
    d.step(
        "revoke search-indexer, publish the fast update only",
        format!(
            "{s}\n  revocations.kgr seq {} is {} bytes for {} of {} keys; revoke → enforced at the gateway in {revoke_ms:.1} ms",
            r.revocation_seq, r.revocations_bytes, r.revoked_in_update, r.keys
        ),
    );

    let audit = iss.audit_verify().map_err(fail)?;
    let stats = gw.stats();
    d.step(
        "audit and gateway stats",
        format!(
            "  audit chain: {} entries, intact = {}, head {}\n  gateway: valid {}, valid_deprecated {}, revoked {}, insufficient_scope {}, malformed {}, unknown {}",
            audit.entries,
            audit.first_bad.is_none(),
            &audit.head[..16],
            stats.count(Outcome::Valid),
            stats.count(Outcome::ValidDeprecated),
            stats.count(Outcome::Revoked),
            stats.count(Outcome::InsufficientScope),
            stats.count(Outcome::Malformed),
            stats.count(Outcome::Unknown),
        ),
    );
    if json_out {
        crate::cmd::print_json(&json!({"steps": d.steps}));
    } else {
        println!("\ndone: the store was temporary and is now removed. Next: keygate init --keyset NAME --prefix PREFIX");
    }
    Ok(0)
}
