//! The issuer tried as an attacker and as a careless operator would: a
//! tampered store, out-of-range times, terminal escapes in stored text,
//! planted symlinks, a permissive umask, hostile artifacts and exports, and
//! publishes racing revokes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;

mod common;
use common::*;

fn run_on(e: &Env, store: &std::ffi::OsStr, args: &[&str]) -> std::process::Output {
    e.cmd()
        .env("KEYGATE_STORE", store)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn audit_covers_the_keys_table_and_the_signed_head() {
    let e = env();
    e.init();
    let (_k1, id1) = e.issue("svc", &["a"]);
    let (_k2, id2) = e.issue("svc", &["a"]);
    e.cmd()
        .args([
            "issue",
            "--principal",
            "bulk",
            "--count",
            "1500",
            "--keys-out",
        ])
        .arg(e.root.join("bulk.keys"))
        .assert()
        .success();
    let bulk = e.json(&["list", "--principal", "bulk"]);
    let bulk_id = bulk[0]["key_id"].as_str().unwrap().to_string();
    e.json(&["revoke", "--key-id", &id1, "--reason", "test"]);
    // A bulk-issued key changed later keeps its batch entry checkable.
    e.json(&["revoke", "--key-id", &bulk_id]);
    e.publish(&[]);
    e.json(&["rotate", "--principal", "svc"]);
    let ok = e.json(&["audit", "verify"]);
    assert_eq!(ok["first_bad"], serde_json::Value::Null, "{ok}");
    assert_eq!(ok["keys"], 1503);
    assert_eq!(ok["signed_snapshot"], 1);

    let other_bulk = bulk[1]["key_id"].as_str().unwrap().to_string();
    let cases: [(&str, String, &str); 6] = [
        (
            "un-revoke",
            format!("UPDATE keys SET status = 'active', revoked_at = NULL WHERE key_id = '{id1}'"),
            "edited outside keygate",
        ),
        (
            "insert",
            format!(
                "INSERT INTO keys SELECT '{}', digest, principal, scopes, 'active', imported, created_at,
                 not_before, expires_at, deprecated_at, sunset_at, revoked_at, revoke_reason, origin_seq
                 FROM keys WHERE key_id = '{id2}'",
                "0".repeat(32)
            ),
            "inserted outside keygate",
        ),
        (
            "delete",
            format!("DELETE FROM keys WHERE key_id = '{id2}'"),
            "deleted outside keygate",
        ),
        (
            "bulk-edit",
            format!("UPDATE keys SET scopes = 'admin' WHERE key_id = '{other_bulk}'"),
            "bulk entry",
        ),
        (
            "bulk-unrevoke",
            format!("UPDATE keys SET status = 'active' WHERE key_id = '{bulk_id}'"),
            "edited outside keygate",
        ),
        (
            // Cut the chain back to before the last publish: every entry
            // left is intact, but the signed head is gone.
            "truncate",
            "DELETE FROM audit WHERE seq >= (SELECT max(seq) - 3 FROM audit WHERE action = 'publish')"
                .to_string(),
            "signed into published snapshot v1",
        ),
    ];
    for (name, sql, want) in cases {
        let store = e.copy_store(name);
        e.sql_on(&store, &sql);
        let out = run_on(&e, &store, &["audit", "verify"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        // Nothing is published from a tampered store.
        let out_dir = e.root.join(format!("{name}-pub"));
        let out = run_on(&e, &store, &["publish", "--out", out_dir.to_str().unwrap()]);
        assert!(!out.status.success(), "{name}: published a tampered store");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("audit check failed"),
            "{name}"
        );
        assert!(!out_dir.join("snapshot.kgs").exists(), "{name}");
        let out = run_on(
            &e,
            &store,
            &[
                "publish",
                "--revocations-only",
                "--out",
                out_dir.to_str().unwrap(),
            ],
        );
        assert!(!out.status.success(), "{name}: published revocations");
    }
    // The gateway's copy of the snapshot is a second witness of the head.
    let store = e.copy_store("truncate-gw");
    e.sql_on(
        &store,
        "DELETE FROM audit WHERE seq >= (SELECT max(seq) - 3 FROM audit WHERE action = 'publish')",
    );
    // And the store's own copy of the last published snapshot.
    match &e.pg {
        Some(_) => e.sql_on(&store, "DELETE FROM blobs WHERE name = 'published'"),
        None => std::fs::remove_file(Path::new(&store).join("published.kgs")).unwrap(),
    }
    let snap = e.out.join("snapshot.kgs");
    let out = run_on(
        &e,
        &store,
        &["audit", "verify", "--snapshot", snap.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    // And with the store's copy deleted, that is reported too.
    let out = run_on(&e, &store, &["audit", "verify"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("copy of the last published snapshot is missing"));
}

#[test]
fn times_beyond_the_format_are_refused_at_input() {
    let e = env();
    e.init();
    e.issue("svc", &[]);
    let before = e.json(&["audit", "log"]).as_array().unwrap().len();
    for args in [
        vec!["issue", "--principal", "p", "--expires", "100y"],
        vec!["issue", "--principal", "p", "--not-before", "99999999999"],
        vec!["rotate", "--principal", "svc", "--grace", "200y"],
        vec![
            "import",
            "--principal",
            "p",
            "--sha256",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "--expires-at",
            "99999999999",
        ],
        vec![
            "policy",
            "set",
            "c",
            "--max-age",
            "400000y",
            "--grace",
            "1d",
        ],
    ] {
        let o = e.cmd().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("2106"),
            "{args:?}: {o:?}"
        );
    }
    // A bad line anywhere in an import file imports nothing.
    let lines = e.root.join("import.jsonl");
    let h = |c: char| c.to_string().repeat(64);
    std::fs::write(
        &lines,
        format!(
            "{{\"principal\":\"a\",\"sha256\":\"{}\"}}\n{{\"principal\":\"b\",\"sha256\":\"{}\",\"expires_at\":99999999999}}\n",
            h('b'),
            h('c')
        ),
    )
    .unwrap();
    let o = e
        .cmd()
        .args(["import", "--from"])
        .arg(&lines)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        e.json(&["list", "--principal", "a"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(e.json(&["audit", "log"]).as_array().unwrap().len(), before);
    e.publish(&[]);
    // The longest lifetime that fits still works end to end.
    let v = e.json(&["issue", "--principal", "late", "--not-before", "4294967295"]);
    e.publish(&[]);
    let (_, verdict) = e.verify(v["key"].as_str().unwrap(), &[]);
    assert_eq!(verdict["outcome"], "not_yet_valid");
    e.cmd().args(["list"]).assert().success();
}

#[test]
fn stored_text_cannot_forge_terminal_lines() {
    let e = env();
    e.init();
    let (_k, id) = e.issue("svc", &[]);
    let o = e
        .cmd()
        .env(
            "KEYGATE_ACTOR",
            "mallory\n    9  2026-01-01T00:00:00Z  admin",
        )
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "an actor with a newline was accepted"
    );
    let reason = "x\n   99  2030-01-01T00:00:00Z  root  revoke  \u{1b}[2K\u{202e}forged";
    e.json(&["revoke", "--key-id", &id, "--reason", reason]);
    let o = e.cmd().args(["audit", "log"]).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    let entries = e.json(&["audit", "log"]).as_array().unwrap().len();
    assert_eq!(text.lines().count(), entries, "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    assert!(
        text.contains("\\n   99") && text.contains("\\u{1b}[2K"),
        "{text}"
    );
    // JSON keeps the exact text (its encoder escapes it).
    let log = e.json(&["audit", "log"]);
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["reason"] == reason));
    let long = "r".repeat(2000);
    let o = e
        .cmd()
        .args(["revoke", "--key-id", &id, "--reason", &long])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn publish_never_follows_a_planted_link() {
    let e = env();
    e.init();
    e.issue("svc", &[]);
    std::fs::create_dir_all(&e.out).unwrap();
    let victim = e.root.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    // The old temp name was `.<artifact>.tmp-<pid>`: plant it for the pids
    // the next processes will likely get, and the target itself as a link.
    let me = std::process::id();
    for name in ["snapshot.kgs", "revocations.kgr", "trust.kgt"] {
        for pid in me..me + 300 {
            let _ = std::os::unix::fs::symlink(&victim, e.out.join(format!(".{name}.tmp-{pid}")));
        }
    }
    std::os::unix::fs::symlink(&victim, e.out.join("snapshot.kgs")).unwrap();
    e.publish(&[]);
    e.publish(&["--revocations-only"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(e.out.join("snapshot.kgs")).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by the artifact"
    );
}

#[test]
fn store_is_private_whatever_the_umask() {
    let e = env();
    let bin = assert_cmd::cargo::cargo_bin("keygate");
    let ok = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" init --keyset acme --prefix acme_live")
        .arg(&bin)
        .env("KEYGATE_STORE", e.store_arg())
        .env("KEYGATE_SEAL_KEY_FILE", e.seal_key_file())
        .env("KEYGATE_ACTOR", "t")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    if e.pg.is_some() {
        // On PostgreSQL the one local secret is the seal key file.
        assert_eq!(mode(&e.seal_key_file()), 0o600);
        return;
    }
    assert_eq!(mode(&e.store), 0o700);
    assert_eq!(mode(&e.store.join("keygate.db")), 0o600);
    for f in std::fs::read_dir(&e.store).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().ends_with(".pk8") {
            assert_eq!(mode(&p), 0o600);
        }
    }
}

#[test]
fn hostile_times_in_artifacts_and_exports_do_not_panic() {
    let e = env();
    let (signer, _) = keygate::Signer::generate();
    let keyset = keygate::Name::new("acme").unwrap();
    let prefix = keygate::Prefix::new("acme_live").unwrap();
    let snap = keygate::SnapshotBuilder::new(keyset, prefix, 1, u64::MAX)
        .valid_until(u64::MAX)
        .build(&signer)
        .unwrap();
    let f = e.root.join("huge.kgs");
    std::fs::write(&f, snap).unwrap();
    let o = e.cmd().arg("inspect").arg(&f).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("@18446744073709551615"));

    e.init();
    let (_k, _) = e.issue("svc", &[]);
    let old = e.json(&["list"])[0]["key_id"].as_str().unwrap().to_string();
    e.json(&["rotate", "--principal", "svc"]);
    let prom = e.root.join("gw.prom");
    std::fs::write(
        &prom,
        format!(
            "keygate_deprecated_key_uses_total{{key_id=\"{old}\"}} 3\n\
             keygate_deprecated_key_last_seen_seconds{{key_id=\"{old}\"}} 18446744073709551615\n"
        ),
    )
    .unwrap();
    let o = e
        .cmd()
        .args(["list", "--usage"])
        .arg(&prom)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("@18446744073709551615 (3 uses)"));
}

/// Publishers racing revokers, each on its own connection: a gateway that
/// installs every update it sees never un-revokes a key, and the last update
/// holds every revoke acknowledged before it.
#[test]
fn concurrent_revokes_and_publishes_lose_nothing() {
    use keygate_issuer::{IssueRequest, Issuer, Principal, RevokeTarget};
    use std::sync::{Arc, Barrier};
    let e = env();
    e.init();
    let mut iss = Issuer::open_at(&e.store_at(), "t").unwrap();
    let keys = iss
        .issue_many(
            &IssueRequest::new(Principal::new("svc").unwrap()),
            100,
            |_| {},
        )
        .unwrap();
    iss.publish(&e.out, 86_400).unwrap();
    let trust = std::fs::read(e.out.join("trust.kgt")).unwrap();
    let gw = keygate::Verifier::new(&trust).unwrap();
    gw.install_snapshot(&std::fs::read(e.out.join("snapshot.kgs")).unwrap())
        .unwrap();
    let revoked_seen = |gw: &keygate::Verifier, upto: usize| -> Vec<usize> {
        (0..upto)
            .filter(|i| {
                gw.verify_now(keys[*i].key.expose_secret(), None).outcome
                    == keygate::Outcome::Revoked
            })
            .collect()
    };
    let mut ever_revoked = 0usize;
    for (round, key) in keys.iter().enumerate() {
        let barrier = Arc::new(Barrier::new(3));
        let store = e.store_at();
        let out = e.out.clone();
        let id = key.key.key_id();
        let revoker = {
            let (b, store) = (Arc::clone(&barrier), store.clone());
            std::thread::spawn(move || {
                let mut i = Issuer::open_at(&store, "revoker").unwrap();
                b.wait();
                i.revoke(&RevokeTarget::Ids(vec![id]), None).unwrap();
            })
        };
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let (b, store, out) = (Arc::clone(&barrier), store.clone(), out.clone());
                std::thread::spawn(move || {
                    let mut i = Issuer::open_at(&store, "publisher").unwrap();
                    b.wait();
                    i.publish_revocations(&out, 86_400).unwrap()
                })
            })
            .collect();
        revoker.join().unwrap();
        let mut reports: Vec<_> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
        // A later sequence never holds fewer revocations than an earlier one,
        // and the file on disk is the latest sequence.
        reports.sort_by_key(|r| r.revocation_seq);
        assert!(
            reports[0].revoked_in_update <= reports[1].revoked_in_update,
            "round {round}: seq {} has {} revoked, seq {} only {}",
            reports[0].revocation_seq,
            reports[0].revoked_in_update,
            reports[1].revocation_seq,
            reports[1].revoked_in_update
        );
        let on_disk = keygate::RevocationView::parse_unverified(
            &std::fs::read(e.out.join("revocations.kgr")).unwrap(),
        )
        .unwrap()
        .header()
        .sequence;
        assert_eq!(
            on_disk, reports[1].revocation_seq,
            "round {round}: an older update replaced a newer one"
        );
        // Whatever is on disk now is the newest update: never older than
        // what the gateway has, never without a revoke it already showed.
        let r = gw.install_revocations(&std::fs::read(e.out.join("revocations.kgr")).unwrap());
        assert!(r.is_ok(), "round {round}: {r:?}");
        let seen = revoked_seen(&gw, round + 1);
        assert!(
            seen.len() >= ever_revoked,
            "round {round}: a published update lost a revocation ({} -> {})",
            ever_revoked,
            seen.len()
        );
        ever_revoked = seen.len();
    }
    iss.publish_revocations(&e.out, 86_400).unwrap();
    gw.install_revocations(&std::fs::read(e.out.join("revocations.kgr")).unwrap())
        .unwrap();
    assert_eq!(revoked_seen(&gw, 100).len(), 100);
    assert!(iss.audit_verify().unwrap().first_bad.is_none());
}

/// A store written by keygate before the audit chain covered key rows
/// (schema 2, made by cli/tests/fixtures/v2-store/make.sh with commit
/// 49026b0) migrates in place: its rows go under one checkpoint entry, the
/// chain and the signed head still verify, and from then on an edit of any
/// old row is detected.
#[test]
fn a_schema_2_store_migrates_and_its_old_rows_are_covered() {
    if sqlite_only(
        "a_schema_2_store_migrates",
        "the fixture is an SQLite store of schema 2; PostgreSQL stores began at today's schema",
    ) {
        return;
    }
    let e = env();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2-store");
    std::fs::create_dir_all(&e.store).unwrap();
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|x| x == "sh") {
            continue;
        }
        std::fs::copy(&f, e.store.join(f.file_name().unwrap())).unwrap();
    }
    let before: u64 = rusqlite::Connection::open(e.store.join("keygate.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    let r = e.json(&["audit", "verify"]);
    assert_eq!(r["first_bad"], serde_json::Value::Null, "{r}");
    assert_eq!(r["keys"], before);
    assert_eq!(r["signed_snapshot"], 1);
    let log = e.json(&["audit", "log"]);
    let last = &log.as_array().unwrap().last().unwrap();
    assert_eq!(last["action"], "checkpoint", "{last}");
    // Old keys keep working through the normal commands.
    let old = e.json(&["list", "--status", "active"])[0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    e.json(&["revoke", "--key-id", &old]);
    e.publish(&[]);
    assert_eq!(
        e.json(&["audit", "verify"])["first_bad"],
        serde_json::Value::Null
    );
    // An edit of an old row is now detected.
    let any_old = e.json(&["list", "--status", "active"])[0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    db(&e)
        .execute(
            "UPDATE keys SET scopes = 'admin' WHERE key_id = ?1",
            [&any_old],
        )
        .unwrap();
    let o = e.cmd().args(["audit", "verify"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

/// A long-lived publisher (the API's) checks the whole chain once, then for
/// each update only the entries since and the rows the update publishes:
/// a row edited outside keygate, or an entry rewritten after the last check,
/// still stops the update.
#[test]
fn an_update_checks_what_it_publishes_against_the_chain() {
    use keygate_issuer::{IssueRequest, Issuer, IssuerError, Principal};
    let e = env();
    e.init();
    let mut iss = Issuer::open_at(&e.store_at(), "t").unwrap();
    let req = |p: &str| IssueRequest::new(Principal::new(p).unwrap());
    iss.issue(&req("a")).unwrap();
    iss.publish(&e.out, 3600).unwrap();
    let k = iss.issue(&req("b")).unwrap();
    let r = iss.publish_update(&e.out, 3600).unwrap();
    assert_eq!(r.records_in_update, 1);
    // A new key's row edited between its issue and the next update.
    let k2 = iss.issue(&req("c")).unwrap();
    e.sql(&format!(
        "UPDATE keys SET scopes = 'admin' WHERE key_id = '{}'",
        k2.info.key_id
    ));
    let err = iss.publish_update(&e.out, 3600).unwrap_err();
    assert!(matches!(err, IssuerError::AuditBroken(_)), "{err}");
    e.sql(&format!(
        "UPDATE keys SET scopes = '' WHERE key_id = '{}'",
        k2.info.key_id
    ));
    iss.publish_update(&e.out, 3600).unwrap();
    // An entry after the last check rewritten: the continuation check.
    iss.issue(&req("d")).unwrap();
    e.sql("UPDATE audit SET actor = 'mallory' WHERE seq = (SELECT max(seq) FROM audit)");
    let err = iss.publish_update(&e.out, 3600).unwrap_err();
    assert!(matches!(err, IssuerError::AuditBroken(_)), "{err}");
    let _ = k;
}
