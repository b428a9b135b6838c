//! End-to-end tests of the `keygate` command.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::*;

#[test]
fn issue_publish_verify_rotate_revoke() {
    let e = env();
    e.init();
    let (k1, id1) = e.issue("billing", &["invoices:read"]);
    assert!(k1.starts_with("acme_live_") && k1.len() == 49);
    e.publish(&[]);
    let (code, v) = e.verify(&k1, &["--scope", "invoices:read"]);
    assert_eq!((code, v["outcome"].as_str()), (0, Some("valid")));
    assert_eq!(v["principal"], "billing");
    assert_eq!(v["key_id"], id1.as_str());
    for f in [
        "outcome",
        "principal",
        "key_id",
        "expires_at",
        "deprecated_at",
        "sunset_at",
        "snapshot_version",
        "revocation_seq",
        "stale",
    ] {
        assert!(v.get(f).is_some(), "missing {f}");
    }
    let (code, v) = e.verify(&k1, &["--scope", "invoices:write"]);
    assert_eq!(
        (code, v["outcome"].as_str()),
        (1, Some("insufficient_scope"))
    );

    let r = e.json(&["rotate", "--principal", "billing", "--grace", "7d"]);
    let k2 = r["key"].as_str().unwrap().to_string();
    assert_eq!(r["scopes"][0], "invoices:read");
    e.publish(&[]);
    assert_eq!(e.verify(&k1, &[]).1["outcome"], "valid_deprecated");
    // The rotation went out as the update, no new snapshot: the new key
    // verifies from it.
    let v = e.verify(&k2, &[]).1;
    assert_eq!(
        (
            v["outcome"].as_str(),
            v["snapshot_version"].as_u64(),
            v["revocation_seq"].as_u64()
        ),
        (Some("valid"), Some(1), Some(2))
    );

    let r = e.json(&["revoke", "--key", &k2, "--reason", "test"]);
    assert_eq!(r[0]["already_revoked"], false);
    let r = e.json(&["revoke", "--key-id", r[0]["key_id"].as_str().unwrap()]);
    assert_eq!(r[0]["already_revoked"], true, "revoke is idempotent");
    e.publish(&["--revocations-only"]);
    let (code, v) = e.verify(&k2, &[]);
    assert_eq!(
        (code, v["outcome"].as_str(), v["revocation_seq"].as_u64()),
        (1, Some("revoked"), Some(3))
    );

    let list = e.json(&["list", "--principal", "billing"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let revoked = e.json(&["list", "--status", "revoked"]);
    assert_eq!(revoked.as_array().unwrap().len(), 1);
    e.cmd()
        .args(["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("intact"));
}

#[test]
fn expiry_and_not_before() {
    let e = env();
    e.init();
    let v = e.json(&[
        "issue",
        "--principal",
        "p",
        "--expires",
        "30s",
        "--not-before",
        "2000000000",
    ]);
    let k = v["key"].as_str().unwrap().to_string();
    e.publish(&[]);
    assert_eq!(e.verify(&k, &[]).1["outcome"], "not_yet_valid");
    assert_eq!(
        e.verify(&k, &["--now", "2000000000"]).1["outcome"],
        "expired"
    );
}

#[test]
fn bulk_issue_writes_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let e = env();
    e.init();
    let f = e.root.join("keys.txt");
    e.cmd()
        .args([
            "issue",
            "--principal",
            "load",
            "--count",
            "500",
            "--keys-out",
        ])
        .arg(&f)
        .assert()
        .success();
    let text = std::fs::read_to_string(&f).unwrap();
    assert_eq!(text.lines().count(), 500);
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    e.cmd()
        .args(["issue", "--principal", "x", "--count", "5"])
        .assert()
        .code(2);
    e.publish(&[]);
    assert_eq!(
        e.verify(text.lines().nth(250).unwrap(), &[]).1["outcome"],
        "valid"
    );
}

#[test]
fn revoke_from_file_and_principal() {
    let e = env();
    e.init();
    let (_, a) = e.issue("p1", &[]);
    let (_, b) = e.issue("p1", &[]);
    let (kc, _) = e.issue("p2", &[]);
    let f = e.root.join("ids.txt");
    std::fs::write(&f, format!("# breach 42\n{a}\n{b}\n")).unwrap();
    let r = e.json(&[
        "revoke",
        "--from",
        f.to_str().unwrap(),
        "--reason",
        "breach",
    ]);
    assert_eq!(r.as_array().unwrap().len(), 2);
    // A bad line refuses the whole file and changes nothing.
    std::fs::write(&f, "zz\n").unwrap();
    e.cmd()
        .args(["revoke", "--from"])
        .arg(&f)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a key id"));
    let r = e.json(&["revoke", "--principal", "p2"]);
    assert_eq!(r[0]["already_revoked"], false);
    e.publish(&[]);
    assert_eq!(e.verify(&kc, &[]).1["outcome"], "revoked");
}

#[test]
fn import_by_digest() {
    use sha2_digest::hex_sha256;
    let e = env();
    e.init();
    let legacy = "sk_legacy_0123456789abcdef";
    e.cmd()
        .args([
            "import",
            "--principal",
            "old-client",
            "--sha256",
            &hex_sha256(legacy),
            "--scope",
            "a",
        ])
        .assert()
        .success();
    let f = e.root.join("import.jsonl");
    std::fs::write(
        &f,
        format!(
            "{{\"principal\":\"p2\",\"sha256\":\"{}\",\"scopes\":[\"b\"]}}\n",
            hex_sha256("another-legacy-key")
        ),
    )
    .unwrap();
    e.cmd()
        .args(["import", "--from"])
        .arg(&f)
        .assert()
        .success();
    e.publish(&[]);
    let (code, v) = e.verify(legacy, &["--scope", "a"]);
    assert_eq!(
        (code, v["outcome"].as_str(), v["principal"].as_str()),
        (0, Some("valid"), Some("old-client"))
    );
    assert_eq!(e.verify("another-legacy-key", &[]).1["principal"], "p2");
    e.cmd()
        .args(["import", "--principal", "x", "--sha256", "abc"])
        .assert()
        .code(2);
}

mod sha2_digest {
    pub fn hex_sha256(s: &str) -> String {
        keygate::Digest::of(s.as_bytes())
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[test]
fn error_paths_exit_2_with_one_line() {
    let e = env();
    // Store missing.
    e.cmd()
        .args(["list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no keygate store"));
    e.init();
    e.cmd()
        .args(["init", "--keyset", "acme", "--prefix", "acme_live"])
        .assert()
        .code(2);
    e.cmd()
        .args(["init", "--keyset", "x", "--prefix", "Bad-"])
        .env("KEYGATE_STORE", e.root.join("s2"))
        .assert()
        .code(2);
    // Bad duration.
    e.cmd()
        .args(["issue", "--principal", "p", "--expires", "7 fortnights"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad duration"));
    // Unknown principal.
    e.cmd()
        .args(["rotate", "--principal", "nobody"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nobody"));
    e.cmd()
        .args(["revoke", "--principal", "nobody"])
        .assert()
        .code(2);
    e.cmd()
        .args(["revoke", "--key-id", "00000000000000000000000000000000"])
        .assert()
        .code(2);
    e.cmd().args(["list", "--status", "weird"]).assert().code(2);
    // Usage error from clap.
    e.cmd().args(["revoke"]).assert().code(2);
    // Fast publish before any publish.
    e.cmd()
        .arg("publish")
        .arg("--out")
        .arg(&e.out)
        .arg("--revocations-only")
        .assert()
        .code(2);
    let (k, _) = e.issue("p", &[]);
    e.publish(&[]);
    // Corrupted artifact.
    let snap = e.out.join("snapshot.kgs");
    let mut b = std::fs::read(&snap).unwrap();
    b[300] ^= 1;
    std::fs::write(&snap, &b).unwrap();
    let (code, _) = e.verify(&k, &[]);
    assert_eq!(code, 2);
    e.cmd()
        .args(["inspect"])
        .arg(e.root.join("nope"))
        .assert()
        .code(2);
    // Wrong trust file: another store's.
    let other = env();
    other.init();
    other.publish(&[]);
    e.publish(&[]);
    e.cmd()
        .args(["verify", "--trust"])
        .arg(other.out.join("trust.kgt"))
        .arg("--snapshot")
        .arg(e.out.join("snapshot.kgs"))
        .arg(&k)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("untrusted signer"));
    for args in [
        &["rotate", "--principal", "nobody"][..],
        &["issue", "--principal", "p", "--expires", "soon"][..],
        &["revoke", "--key-id", "xyz"][..],
    ] {
        let o = e.cmd().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?}: one-line error, got {err:?}"
        );
        assert!(err.starts_with("keygate: "), "{err}");
    }
}

#[test]
fn inspect_every_artifact() {
    let e = env();
    e.init();
    e.issue("p", &["a"]);
    e.publish(&[]);
    let s = e.json(&["inspect", e.out.join("snapshot.kgs").to_str().unwrap()]);
    assert_eq!(
        (
            s["artifact"].as_str(),
            s["keys"].as_u64(),
            s["version"].as_u64()
        ),
        (Some("snapshot"), Some(1), Some(1))
    );
    let r = e.json(&["inspect", e.out.join("revocations.kgr").to_str().unwrap()]);
    assert_eq!(
        (r["artifact"].as_str(), r["base_version"].as_u64()),
        (Some("revocations"), Some(1))
    );
    let t = e.json(&["inspect", e.out.join("trust.kgt").to_str().unwrap()]);
    assert_eq!(t["signers"].as_array().unwrap().len(), 1);
}

#[test]
fn audit_detects_edit_delete_and_swap() {
    for tamper in ["edit", "delete", "swap", "edit-last"] {
        let e = env();
        e.init();
        for p in ["a", "b", "c"] {
            e.issue(p, &[]);
        }
        e.cmd().args(["audit", "verify"]).assert().success();
        match tamper {
            "edit" => e.sql("UPDATE audit SET principal = 'mallory' WHERE seq = 2"),
            "edit-last" => e.sql("UPDATE audit SET actor = 'mallory' WHERE seq = 4"),
            "delete" => e.sql("DELETE FROM audit WHERE seq = 2"),
            // Swap two entries' contents, keeping their sequence numbers.
            _ => e.sql(
                "UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3;
                 UPDATE audit SET seq = 3 WHERE seq = -2;",
            ),
        };
        e.cmd()
            .args(["audit", "verify"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("audit chain broken at entry"));
    }
}

#[test]
fn scan_finds_planted_keys_and_revokes() {
    let e = env();
    e.init();
    let (k1, id1) = e.issue("svc", &[]);
    let tree = e.root.join("repo");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    std::fs::create_dir_all(tree.join("target")).unwrap();
    std::fs::write(tree.join(".gitignore"), "target/\n").unwrap();
    std::fs::write(
        tree.join("src/config.py"),
        format!("# config\nAPI_KEY = \"{k1}\"\n"),
    )
    .unwrap();
    let mut bad = k1.clone();
    bad.replace_range(15..16, if &k1[15..16] == "x" { "y" } else { "x" });
    std::fs::write(tree.join("src/lookalike.txt"), format!("{bad}\n")).unwrap();
    std::fs::write(tree.join("target/ignored.txt"), format!("{k1}\n")).unwrap();
    std::fs::write(
        tree.join("src/blob.bin"),
        [b"\0\0\0".as_slice(), k1.as_bytes()].concat(),
    )
    .unwrap();
    // UTF-16 (Windows editors, PowerShell logs) with its byte-order mark.
    let utf16: Vec<u8> = "\u{feff}token="
        .encode_utf16()
        .chain(k1.encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(tree.join("src/notes.txt"), utf16).unwrap();
    let out = e.cmd().args(["scan"]).arg(&tree).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config.py:2") && text.contains(&id1) && text.contains("active"),
        "{text}"
    );
    // Ignored files and files with NUL bytes are where leaked keys sit: scanned.
    for f in ["target/ignored.txt:1", "src/blob.bin:1", "src/notes.txt:1"] {
        assert!(text.contains(f), "{f} not reported: {text}");
    }
    assert_eq!(
        text.lines().count(),
        4,
        "only the lookalike is skipped: {text}"
    );
    assert!(!text.contains(&k1[10..]), "scan printed the secret");
    let out = e
        .cmd()
        .args(["scan", "--respect-gitignore"])
        .arg(&tree)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("ignored.txt") && text.lines().count() == 3,
        "{text}"
    );
    // A path that cannot be read is named on stderr and fails the scan (as
    // root no directory is unreadable; /proc/self/mem fails with EIO for
    // anyone, and a missing path is unreadable too).
    let out = e
        .cmd()
        .args(["scan"])
        .arg(&tree)
        .arg("/proc/self/mem")
        .arg(e.root.join("missing"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("cannot read /proc/self/mem")
            && err.contains("missing")
            && err.contains("2 path(s)"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    let v = e.json(&["scan", "--revoke", tree.to_str().unwrap()]);
    assert_eq!(v[0]["status"], "revoked");
    let list = e.json(&["list", "--status", "revoked"]);
    assert_eq!(list[0]["revoke_reason"], "leaked");
}

#[test]
fn signer_rotation_followed_by_a_gateway_with_the_first_bundle() {
    let e = env();
    e.init();
    let (k, _) = e.issue("p", &[]);
    e.publish(&[]);
    let first_trust = std::fs::read(e.out.join("trust.kgt")).unwrap();
    let old_snapshot = std::fs::read(e.out.join("snapshot.kgs")).unwrap();
    let gw = keygate::Verifier::new(&first_trust).unwrap();
    let follow = |gw: &keygate::Verifier| {
        gw.install_trust(&std::fs::read(e.out.join("trust.kgt")).unwrap())
            .unwrap();
        gw.install_snapshot(&std::fs::read(e.out.join("snapshot.kgs")).unwrap())
            .unwrap();
    };
    for _ in 0..2 {
        e.cmd().args(["signer", "rotate"]).assert().success();
        e.publish(&[]);
        follow(&gw);
        e.publish(&[]);
        follow(&gw);
    }
    assert_eq!(gw.trust().signers().len(), 1);
    assert_eq!(gw.trust().version(), 5);
    assert_eq!(gw.verify_now(&k, None).outcome, keygate::Outcome::Valid);
    // The first (retired) signer's snapshot is refused now, whatever its version.
    let fresh = keygate::Verifier::new(&std::fs::read(e.out.join("trust.kgt")).unwrap());
    assert!(fresh.is_ok());
    let err = gw.install_snapshot(&old_snapshot).unwrap_err();
    assert!(
        matches!(
            err,
            keygate::Error::UnknownSigner { .. } | keygate::Error::Rollback { .. }
        ),
        "{err}"
    );
    let v = keygate::Verifier::new(&first_trust).unwrap();
    v.install_trust(&std::fs::read(e.out.join("trust.kgt")).unwrap())
        .unwrap();
    assert!(matches!(
        v.install_snapshot(&old_snapshot).unwrap_err(),
        keygate::Error::UnknownSigner { .. }
    ));
}

#[test]
fn crash_safety_under_sigkill() {
    let e = env();
    e.init();
    e.issue("seed", &[]);
    e.publish(&[]);
    let mut completed: Vec<String> = Vec::new();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut killed = 0;
    for round in 0..60 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let (args, kind): (Vec<String>, &str) = match round % 4 {
            0 => (
                vec![
                    "--json".into(),
                    "issue".into(),
                    "--principal".into(),
                    format!("p{}", round % 7),
                ],
                "issue",
            ),
            1 => (
                vec![
                    "rotate".into(),
                    "--principal".into(),
                    "seed".into(),
                    "--grace".into(),
                    "1h".into(),
                ],
                "rotate",
            ),
            2 => (
                vec![
                    "publish".into(),
                    "--out".into(),
                    e.out.to_string_lossy().into(),
                ],
                "publish",
            ),
            _ => (
                vec![
                    "publish".into(),
                    "--out".into(),
                    e.out.to_string_lossy().into(),
                    "--revocations-only".into(),
                ],
                "fast",
            ),
        };
        let child = e
            .cmd()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let delay = std::time::Duration::from_micros(rng % 30_000);
        std::thread::sleep(delay);
        // SAFETY: plain kill(2) on our own child's pid.
        let _ = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            if kind == "issue" {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                completed.push(v["key_id"].as_str().unwrap().to_string());
            }
        } else {
            killed += 1;
        }
    }
    println!("crash loop: 60 runs, {killed} killed mid-way");
    e.cmd().args(["audit", "verify"]).assert().success();
    let list = e.json(&["list"]);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    for id in &completed {
        assert!(ids.contains(&id.as_str()), "completed issue {id} lost");
    }
    // The artifacts left by the loop are whole and verify: a kill between two
    // files can leave an update for an older base, which a gateway refuses by
    // name and keeps its state (the next publish heals it).
    let gw = keygate::Verifier::new(&std::fs::read(e.out.join("trust.kgt")).unwrap()).unwrap();
    gw.install_snapshot(&std::fs::read(e.out.join("snapshot.kgs")).unwrap())
        .unwrap();
    match gw.install_revocations(&std::fs::read(e.out.join("revocations.kgr")).unwrap()) {
        Ok(_) | Err(keygate::Error::BaseMismatch { .. }) => {}
        Err(other) => panic!("damaged update: {other}"),
    }
    assert!(killed > 0, "the loop never killed a command mid-way");
}

#[test]
fn demo_runs() {
    let o = Command::cargo_bin("keygate")
        .unwrap()
        .arg("demo")
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "valid_deprecated",
        "revoked",
        "malformed",
        "unknown",
        "insufficient_scope",
        "intact = true",
    ] {
        assert!(text.contains(want), "demo output lacks {want}");
    }
    let v: Value = serde_json::from_slice(
        &Command::cargo_bin("keygate")
            .unwrap()
            .args(["--json", "demo"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(v["steps"].as_array().unwrap().len() >= 7);
}

/// The class the policy tests use: 30-day keys, 3-day grace.
fn payments_policy(e: &Env) {
    e.cmd()
        .args([
            "policy",
            "set",
            "payments",
            "--max-age",
            "30d",
            "--grace",
            "3d",
        ])
        .assert()
        .success();
}

#[test]
fn policy_classes_set_expiry_and_grace() {
    let e = env();
    e.init();
    payments_policy(&e);
    e.cmd()
        .args([
            "policy",
            "set",
            "internal",
            "--max-age",
            "180d",
            "--grace",
            "14d",
            "--rotate-before",
            "30d",
        ])
        .assert()
        .success();
    e.cmd()
        .args(["policy", "set", "bad", "--max-age", "1d", "--grace", "3d"])
        .assert()
        .code(2);
    let list = e.json(&["policy", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["class"], "internal");
    assert_eq!(list[0]["rotate_before"], 30 * 86400);

    let k = e.json(&["issue", "--principal", "checkout", "--class", "payments"]);
    let exp = k["expires_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        exp.abs_diff(now + 30 * 86400) < 60,
        "class max-age sets the expiry"
    );
    // An explicit --expires wins over the class.
    let k2 = e.json(&["issue", "--principal", "checkout", "--expires", "1d"]);
    assert!(k2["expires_at"].as_u64().unwrap().abs_diff(now + 86400) < 60);
    // Rotation takes the class's grace.
    let r = e.json(&["rotate", "--principal", "checkout"]);
    let sunset = r["deprecated"][0]["sunset_at"].as_u64().unwrap();
    assert!(
        sunset.abs_diff(now + 3 * 86400) < 60,
        "grace from the class"
    );
    e.cmd()
        .args(["issue", "--principal", "x", "--class", "nope"])
        .assert()
        .code(2);
    e.cmd()
        .args(["principal", "set", "ops-bot", "--class", "internal"])
        .assert()
        .success();
    let log = e.json(&["audit", "log"]);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"policy-set") && actions.contains(&"principal-class"));
}

#[test]
fn due_and_rotate_due() {
    let e = env();
    e.init();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    payments_policy(&e);
    e.json(&["issue", "--principal", "checkout", "--class", "payments"]);
    e.json(&["issue", "--principal", "relaxed"]);
    // Nothing due today.
    e.cmd()
        .args(["due"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("nothing due"));
    // The false clock has only its dangerous name: the old one is refused
    // loudly, so a harness that still sets it cannot run on the real clock.
    e.cmd()
        .env("KEYGATE_NOW", "1767225600")
        .args(["due"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("KEYGATE_DANGEROUS_NOW"));
    // 28 days later, checkout is past its rotate-before point (30d - 3d).
    let later = (now + 28 * 86400).to_string();
    let due = e
        .cmd()
        .env("KEYGATE_DANGEROUS_NOW", &later)
        .args(["--json", "due"])
        .output()
        .unwrap();
    assert_eq!(due.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&due.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            v[0]["principal"].as_str(),
            v[0]["reason"].as_str(),
            v[0]["class"].as_str()
        ),
        (Some("checkout"), Some("rotate_before"), Some("payments"))
    );
    // Dry run changes nothing.
    e.cmd()
        .env("KEYGATE_DANGEROUS_NOW", &later)
        .args(["rotate", "--due", "--dry-run"])
        .assert()
        .success()
        .stderr(predicate::str::contains("would rotate checkout"));
    assert_eq!(
        e.json(&["list", "--principal", "checkout"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The real run writes the keys to a private file.
    let f = e.root.join("new-keys.txt");
    e.cmd()
        .env("KEYGATE_DANGEROUS_NOW", &later)
        .args(["rotate", "--due", "--keys-out"])
        .arg(&f)
        .assert()
        .success();
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.starts_with("checkout acme_live_"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Now the old key is deprecated with a 3-day grace: due again only as a sunset.
    let v: Value = serde_json::from_slice(
        &e.cmd()
            .env("KEYGATE_DANGEROUS_NOW", &later)
            .args(["--json", "due"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["reason"], "sunset");
    // Metrics.
    let m = e
        .cmd()
        .env("KEYGATE_DANGEROUS_NOW", &later)
        .args(["metrics"])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&m.stdout);
    assert!(
        m.contains("keygate_issuer_keys{status=\"active\",class=\"payments\"} 1"),
        "{m}"
    );
    assert!(m.contains("keygate_issuer_keys{status=\"deprecated\",class=\"payments\"} 1"));
    assert!(m.contains("keygate_issuer_keys_due 1"));
    assert!(m.contains("keygate_issuer_seconds_since_publish -1"));
    assert!(m.contains("keygate_issuer_key_age_seconds_count 3"));
}

#[test]
fn drill_passes_and_reports_the_fields() {
    let o = Command::cargo_bin("keygate")
        .unwrap()
        .args([
            "--json",
            "drill",
            "--gateways",
            "4",
            "--clients",
            "20",
            "--poll",
            "500ms",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for f in [
        "rejected_legitimate",
        "time_to_revoke_p50_ms",
        "time_to_revoke_p99_ms",
        "time_to_revoke_max_ms",
        "accepted_after_revoke",
        "bad_push_affected",
    ] {
        assert!(v[f].is_number(), "missing {f}: {v}");
    }
    assert!(v["requests"].as_u64().unwrap() > 1000);
    assert!(
        v["bad_push_refusals"].as_u64().unwrap() > 0,
        "the bad pushes were refused and counted"
    );
    assert_eq!(o.status.code(), Some(0), "drill failed: {v}");
}

/// Revokes `key`, publishes the fast update, and waits until the serve on
/// `port` refuses it: within one poll (200 ms) + 1 s.
fn revoke_and_wait(e: &Env, port: u16, key: &str) {
    e.json(&["revoke", "--key", key]);
    e.publish(&["--revocations-only"]);
    let t = std::time::Instant::now();
    while bearer_status(port, key) == 200 {
        assert!(
            t.elapsed() < std::time::Duration::from_millis(1200),
            "revocation not enforced within poll + 1 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn serve_answers_forward_auth_requests() {
    let e = env();
    e.init();
    let (valid, valid_id) = e.issue("billing-service", &["invoices:read"]);
    let (old, old_id) = e.issue("mobile-app", &["invoices:read"]);
    e.json(&["rotate", "--principal", "mobile-app", "--grace", "7d"]);
    let (noscope, _) = e.issue("search-indexer", &["search:read"]);
    let (leaky, _) = e.issue("leaky", &["invoices:read"]);
    e.publish(&[]);
    let (port, child) = start_serve(&e, 0, &["--artifacts-dir".as_ref(), e.out.as_os_str()]);
    let bearer = |k: &str| format!("Bearer {k}");
    let (st, h, _) = http_get(port, "/auth", &[("Authorization", &bearer(&valid))]);
    assert_eq!(
        (
            st,
            h["x-keygate-principal"].as_str(),
            h["x-keygate-outcome"].as_str()
        ),
        (200, "billing-service", "valid")
    );
    let (st, h, _) = http_get(port, "/auth", &[("X-API-Key", &valid)]);
    assert_eq!(
        (st, h["x-keygate-principal"].as_str()),
        (200, "billing-service")
    );
    let (st, h, _) = http_get(port, "/auth", &[("Authorization", &bearer(&old))]);
    assert_eq!(st, 200);
    assert!(
        h["deprecation"].starts_with('@') && h["sunset"].ends_with(" GMT"),
        "{h:?}"
    );
    let (st, h, _) = http_get(port, "/auth", &[]);
    assert_eq!(
        (st, h["www-authenticate"].as_str()),
        (401, "Bearer realm=\"keygate\"")
    );
    let (st, h, _) = http_get(port, "/auth", &[("Authorization", "Bearer acme_live_nope")]);
    assert_eq!(st, 401);
    assert!(h["www-authenticate"].contains("error=\"invalid_token\""));
    let (st, h, _) = http_get(port, "/auth", &[("Authorization", &bearer(&noscope))]);
    assert_eq!(st, 403);
    assert!(h["www-authenticate"].contains("error=\"insufficient_scope\""));
    // A client cannot pick its own scope: the header is read only with
    // --trust-scope-header (see serve_polls_an_artifacts_url).
    let (st, _, _) = http_get(
        port,
        "/auth",
        &[
            ("Authorization", &bearer(&noscope)),
            ("X-Keygate-Scope", "search:read"),
        ],
    );
    assert_eq!(st, 403, "a client-sent X-Keygate-Scope overrode --scope");
    // Two different keys: refused as a malformed request (RFC 6750 3.1).
    let (st, h, _) = http_get(
        port,
        "/auth",
        &[("Authorization", &bearer(&valid)), ("X-API-Key", &noscope)],
    );
    assert_eq!(st, 400);
    assert!(h["www-authenticate"].contains("error=\"invalid_request\""));
    // Health and metrics are not on the forward-auth listener: a keyless
    // request for the backend's /healthz or /metrics?x is refused.
    for path in ["/healthz", "/metrics", "/metrics?x"] {
        assert_eq!(http_get(port, path, &[]).0, 401, "{path}");
    }
    let (st, _, body) = http_get(metrics_port(port), "/healthz", &[]);
    assert_eq!((st, body.trim()), (200, "ok snapshot 1"));
    // Revocation through the fast update, picked up by the poll.
    assert_eq!(bearer_status(port, &leaky), 200);
    revoke_and_wait(&e, port, &leaky);
    let (st, _, metrics) = http_get(metrics_port(port), "/metrics", &[]);
    assert_eq!(st, 200);
    assert!(metrics.contains("keygate_verify_total{outcome=\"revoked\"}"));
    drop(child);

    // `list --usage`: the gateway's export says the rotated-out key was used
    // once; nothing is known of the others (gateways count deprecated keys).
    let prom = e.root.join("gw1.prom");
    std::fs::write(&prom, &metrics).unwrap();
    let listed = e.json(&["list", "--usage", prom.to_str().unwrap()]);
    let row = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == id)
            .unwrap()
            .clone()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let o = row(&old_id);
    assert_eq!(o["uses"], 1, "{o}");
    assert!(
        now.abs_diff(o["last_used_at"].as_u64().unwrap()) < 60,
        "{o}"
    );
    assert!(row(&valid_id)["uses"].is_null());
    // Two gateways' exports add up; a broken export is refused by name.
    let text = e
        .cmd()
        .args(["list", "--usage"])
        .arg(&prom)
        .arg("--usage")
        .arg(&prom)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with(old_id.as_str()) && l.ends_with("(2 uses)")),
        "{text}"
    );
    std::fs::write(
        &prom,
        "keygate_deprecated_key_uses_total{key_id=\"zz\"} 1\n",
    )
    .unwrap();
    let o = e
        .cmd()
        .args(["list", "--usage"])
        .arg(&prom)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("gw1.prom:1: not a keygate usage line"));
}

/// A static origin for the artifacts in `dir`: ETag = a hash of the file,
/// 304 on If-None-Match; counts the 304s it sent.
fn origin(
    dir: PathBuf,
) -> (
    u16,
    std::sync::Arc<tiny_http::Server>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let port = server.server_addr().to_ip().unwrap().port();
    let not_modified = Arc::new(AtomicUsize::new(0));
    let (s, n) = (Arc::clone(&server), Arc::clone(&not_modified));
    std::thread::spawn(move || {
        for req in s.incoming_requests() {
            let name = req.url().trim_start_matches('/').to_string();
            let Ok(body) = std::fs::read(dir.join(&name)) else {
                let _ = req.respond(tiny_http::Response::empty(404));
                continue;
            };
            let mut h = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut h);
            let etag = format!("\"{:x}\"", h.finish());
            let header = tiny_http::Header::from_bytes("ETag", etag.as_bytes()).unwrap();
            let same = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("If-None-Match") && h.value.as_str() == etag);
            let _ = if same {
                n.fetch_add(1, Ordering::Relaxed);
                req.respond(tiny_http::Response::empty(304).with_header(header))
            } else {
                req.respond(tiny_http::Response::from_data(body).with_header(header))
            };
        }
    });
    (port, server, not_modified)
}

#[test]
fn serve_polls_an_artifacts_url() {
    let e = env();
    e.init();
    let (valid, _) = e.issue("billing-service", &["invoices:read"]);
    let (leaky, _) = e.issue("leaky", &["invoices:read"]);
    e.publish(&[]);
    let (origin_port, origin, not_modified) = origin(e.out.clone());
    let url = format!("http://127.0.0.1:{origin_port}/");
    let (port, child) = start_serve(
        &e,
        7,
        &[
            "--artifacts-url".as_ref(),
            url.as_ref(),
            "--trust-scope-header".as_ref(),
        ],
    );
    let auth = |k: &str| bearer_status(port, k);
    assert_eq!(auth(&valid), 200);
    // Behind a trusted front proxy, the proxy's scope header decides.
    let with_scope = |scope: &str| {
        http_get(
            port,
            "/auth",
            &[
                ("Authorization", &format!("Bearer {valid}")),
                ("X-Keygate-Scope", scope),
            ],
        )
        .0
    };
    assert_eq!(
        (with_scope("invoices:read"), with_scope("admin")),
        (200, 403)
    );
    // A truncated snapshot on the origin is refused; the current one stays.
    let snap = e.out.join("snapshot.kgs");
    let good = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &good[..good.len() / 2]).unwrap();
    for _ in 0..10 {
        assert_eq!(
            auth(&valid),
            200,
            "a bad snapshot on the origin broke a valid key"
        );
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    std::fs::write(&snap, &good).unwrap();
    // Revocation through the fast update on the origin, within poll + 1 s.
    assert_eq!(auth(&leaky), 200);
    revoke_and_wait(&e, port, &leaky);
    assert_eq!(auth(&valid), 200);
    assert!(
        not_modified.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "unchanged artifacts were fetched again instead of answered 304"
    );
    drop(child);
    origin.unblock();
}

/// `keygate publish` writes the update (new, rotated, revoked keys) unless
/// a full snapshot is due; every key verifies from the directory as a
/// gateway reads it (`verify --artifacts-dir`).
#[test]
fn publish_decides_between_the_update_and_a_snapshot() {
    let e = env();
    e.init();
    let (k1, _) = e.issue("a", &["read"]);
    let publish = |extra: &[&str]| -> Value {
        let mut args = vec!["publish", "--out", e.out.to_str().unwrap()];
        args.extend_from_slice(extra);
        e.json(&args)
    };
    let verify = |key: &str| -> Value {
        let o = e
            .cmd()
            .args([
                "--json",
                "verify",
                "--artifacts-dir",
                e.out.to_str().unwrap(),
                key,
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // Nothing there yet: a snapshot.
    let r = publish(&[]);
    assert_eq!(
        (
            r["snapshot_version"].as_u64(),
            r["snapshot_bytes"].as_u64().unwrap() > 0
        ),
        (Some(1), true)
    );
    // A new key, a rotation, a key issued and revoked: the update.
    let (k2, _) = e.issue("b", &["write"]);
    let rot = e.json(&["rotate", "--principal", "a", "--grace", "1d"]);
    let k3 = rot["key"].as_str().unwrap().to_string();
    let (k4, id4) = e.issue("c", &[]);
    e.json(&["revoke", "--key-id", &id4]);
    let r = publish(&[]);
    assert_eq!(r["snapshot_bytes"], 0, "{r}");
    assert_eq!(
        (
            r["snapshot_version"].as_u64(),
            r["records_in_update"].as_u64()
        ),
        (Some(1), Some(4)),
        "b, a's new key, a's old key deprecated, c revoked: {r}"
    );
    assert_eq!(verify(&k1)["outcome"], "valid_deprecated");
    assert_eq!(verify(&k2)["outcome"], "valid");
    assert_eq!(verify(&k3)["outcome"], "valid");
    assert_eq!(verify(&k4)["outcome"], "revoked");
    // Past the compaction threshold: a snapshot, the same keys in it.
    let r = publish(&["--compact-records", "3"]);
    assert_eq!(r["snapshot_version"], 2, "{r}");
    assert_eq!(verify(&k2)["outcome"], "valid");
    assert_eq!(verify(&k4)["outcome"], "revoked");
    // Forced either way; another directory gets a snapshot of its own.
    assert_eq!(publish(&["--update"])["snapshot_bytes"], 0);
    assert_eq!(publish(&["--full"])["snapshot_version"], 3);
    let other = e.root.join("elsewhere");
    let r = e.json(&["publish", "--out", other.to_str().unwrap()]);
    assert_eq!(
        r["snapshot_version"], 4,
        "a new directory gets a snapshot: {r}"
    );
    e.cmd().args(["audit", "verify"]).assert().success();
}

/// `drill --scenario new-keys`, small: new and rotated keys work at every
/// gateway within a poll and 100 ms, and none is refused after usable_at.
#[test]
fn drill_new_keys_scenario_passes() {
    let e = env();
    let o = e
        .cmd()
        .args([
            "--json",
            "drill",
            "--scenario",
            "new-keys",
            "--keys",
            "2000",
            "--new-keys",
            "6",
            "--gateways",
            "3",
            "--poll",
            "300ms",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        o.status.success(),
        "{v} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(v["rejected_legitimate"], 0, "{v}");
    assert!(v["new_key_usable_p99_ms"].as_f64().unwrap() <= 400.0, "{v}");
    assert_eq!(
        v["updates_published"].as_u64().map(|n| n >= 1),
        Some(true),
        "{v}"
    );
    assert!(
        v["fetched_bytes_per_gateway_per_minute"].as_f64().unwrap()
            < v["full_snapshot_alternative_bytes_per_gateway_per_minute"]
                .as_f64()
                .unwrap(),
        "{v}"
    );
    let bad = e
        .cmd()
        .args(["drill", "--scenario", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
