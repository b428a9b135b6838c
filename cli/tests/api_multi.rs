//! Two `keygate api` instances on one PostgreSQL store, 8 client threads
//! spreading 10 000 issues, 500 revokes and 50 rotations over both, every
//! request retried with its `Idempotency-Key` (on the other instance when
//! one does not answer, and some sent twice on purpose), and one instance
//! killed with SIGKILL mid-run and restarted. Afterwards: every acknowledged
//! key exists exactly once, every rotation happened once, every
//! acknowledged revoke is in the published update, snapshot versions and
//! revocation sequences only went up, and the audit chain is intact.
//!
//! Needs a PostgreSQL cluster: run under scripts/with-postgres.sh (CI does);
//! without `KEYGATE_TEST_PG` it says SKIPPED and passes.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const THREADS: usize = 8;
const ISSUES: usize = 10_000;
const REVOKES: usize = 500;
const ROTATIONS: usize = 50;

/// One thread's share of `total`.
fn share(total: usize, t: usize) -> usize {
    total / THREADS + usize::from(t < total % THREADS)
}

#[test]
fn two_instances_one_killed_lose_nothing_and_double_nothing() {
    if std::env::var("KEYGATE_TEST_PG").is_err() {
        eprintln!(
            "SKIPPED: two_instances_one_killed: needs PostgreSQL (run under scripts/with-postgres.sh)"
        );
        return;
    }
    let mut e = common::env();
    if e.pg.is_none() {
        e.pg = Some(common::new_pg_database(None));
    }
    e.init();
    let admin = e.json(&[
        "admin-key",
        "--principal",
        "loadgen",
        "--scope",
        "keys:write",
    ])["key"]
        .as_str()
        .unwrap()
        .to_string();
    let base = 3000 + (std::process::id() % 450) as u16 * 2;
    let ports = [base, base + 1];
    let a = Arc::new(Mutex::new(common::spawn_publishing_api(
        &e, ports[0], "500ms",
    )));
    let b = common::spawn_publishing_api(&e, ports[1], "500ms");

    // key id -> (principal, secret) of every acknowledged issue
    let issued: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    let revoked: Arc<Mutex<Vec<String>>> = Arc::default();
    // principal -> (old key id, new key id) of every acknowledged rotation
    let rotated: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    let progress = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();

    let killer = {
        let (a, progress, done) = (Arc::clone(&a), Arc::clone(&progress), Arc::clone(&done));
        let e2 = common::Env {
            _tmp: tempfile::tempdir().unwrap(),
            store: e.store.clone(),
            out: e.out.clone(),
            root: e.root.clone(),
            pg: e.pg.clone(),
        };
        std::thread::spawn(move || {
            // Mid-run: once a third of the issues are in.
            while progress.load(Ordering::Relaxed) < ISSUES / 3 {
                if done.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut c = a.lock().unwrap();
            c.0.kill().unwrap(); // SIGKILL
            c.0.wait().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            *c = common::spawn_publishing_api(&e2, ports[0], "500ms");
            true
        })
    };

    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let (admin, issued, revoked, rotated, progress) = (
                admin.clone(),
                Arc::clone(&issued),
                Arc::clone(&revoked),
                Arc::clone(&rotated),
                Arc::clone(&progress),
            );
            std::thread::spawn(move || {
                let (n, nrev, nrot) = (share(ISSUES, t), share(REVOKES, t), share(ROTATIONS, t));
                // Revokes after every (n / nrev)-th issue, rotations of other
                // principals after every (n / nrot)-th.
                let (every_rev, every_rot) = (n / nrev, n / nrot);
                let mut mine: Vec<(String, String)> = Vec::new();
                for i in 0..n {
                    let principal = format!("c-{t}-{i}");
                    let body = format!(r#"{{"principal":"{principal}","scopes":["read"]}}"#);
                    let idem = format!("issue-{t}-{i}");
                    let (status, v) =
                        common::post_until_answered(&ports, i, &admin, "/v1/keys", &idem, &body);
                    assert_eq!(status, 201, "{v}");
                    let id = v["key_id"].as_str().unwrap().to_string();
                    if i % 97 == 0 {
                        // A client that did not see the answer sends it again,
                        // to the other instance: the same key comes back.
                        let (s2, v2) = common::post_until_answered(
                            &ports,
                            i + 1,
                            &admin,
                            "/v1/keys",
                            &idem,
                            &body,
                        );
                        assert_eq!((s2, &v2["key_id"]), (201, &v["key_id"]), "{v2}");
                        assert_eq!(v2["key"], v["key"]);
                    }
                    issued.lock().unwrap().insert(
                        id.clone(),
                        (principal.clone(), v["key"].as_str().unwrap().to_string()),
                    );
                    mine.push((principal, id));
                    progress.fetch_add(1, Ordering::Relaxed);
                    let k = i + 1;
                    if k % every_rev == 0 && k / every_rev <= nrev {
                        let (_, id) = &mine[i];
                        let path = format!("/v1/keys/{id}/revoke");
                        let (s, v) = common::post_until_answered(
                            &ports,
                            i + 1,
                            &admin,
                            &path,
                            &format!("revoke-{id}"),
                            "{}",
                        );
                        assert_eq!(s, 200, "{v}");
                        revoked.lock().unwrap().push(id.clone());
                    }
                    if k % every_rot == 0 && k / every_rot <= nrot {
                        // A principal not revoked: the one issued just before.
                        let (p, old) = &mine[i - 1];
                        let path = format!("/v1/principals/{p}/rotate");
                        let idem = format!("rotate-{p}");
                        let (s, v) =
                            common::post_until_answered(&ports, i, &admin, &path, &idem, "{}");
                        assert_eq!(s, 201, "{v}");
                        let (s2, v2) =
                            common::post_until_answered(&ports, i + 1, &admin, &path, &idem, "{}");
                        assert_eq!(
                            (s2, &v2["key_id"]),
                            (201, &v["key_id"]),
                            "a rotation retried: {v2}"
                        );
                        let new = v["key_id"].as_str().unwrap().to_string();
                        rotated
                            .lock()
                            .unwrap()
                            .insert(p.clone(), (old.clone(), new));
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let elapsed = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    assert!(killer.join().unwrap(), "the kill happened after the run");

    let issued = issued.lock().unwrap();
    let revoked = revoked.lock().unwrap().clone();
    let rotated = rotated.lock().unwrap();
    assert_eq!(issued.len(), ISSUES);
    assert_eq!(revoked.len(), REVOKES);
    assert_eq!(rotated.len(), ROTATIONS);

    // Every acknowledged key exists exactly once; nothing else exists.
    let listed = e.json(&["list"]);
    let listed = listed.as_array().unwrap();
    let mut by_principal: HashMap<&str, Vec<&Value>> = HashMap::new();
    for k in listed {
        by_principal
            .entry(k["principal"].as_str().unwrap())
            .or_default()
            .push(k);
    }
    assert_eq!(
        listed.len(),
        ISSUES + ROTATIONS,
        "keys nobody was told about"
    );
    for (id, (principal, _)) in issued.iter() {
        let keys = &by_principal[principal.as_str()];
        let want = if rotated.contains_key(principal) {
            2
        } else {
            1
        };
        assert_eq!(keys.len(), want, "{principal}: {} keys", keys.len());
        assert!(keys.iter().any(|k| k["key_id"] == id.as_str()));
    }
    for (p, (old, new)) in rotated.iter() {
        let keys = &by_principal[p.as_str()];
        let status = |id: &str| {
            keys.iter()
                .find(|k| k["key_id"] == id)
                .map(|k| k["status"].as_str().unwrap().to_string())
        };
        assert_eq!(status(old).as_deref(), Some("deprecated"), "{p}");
        assert_eq!(status(new).as_deref(), Some("active"), "{p}");
    }

    let revoked_set: HashSet<&String> = revoked.iter().collect();
    let t1 = Instant::now();
    loop {
        let read = |f: &str| std::fs::read(e.out.join(f)).ok();
        let ready = (|| {
            let v = keygate::Verifier::new(&read("trust.kgt")?).ok()?;
            v.install_snapshot(&read("snapshot.kgs")?).ok()?;
            let _ = v.install_revocations(&read("revocations.kgr")?);
            Some(v)
        })();
        // Every acknowledged revoke is published, and every other
        // acknowledged key verifies from what is published (the snapshot or
        // the update that carries it).
        let missing = ready.map_or(ISSUES, |v| {
            issued
                .iter()
                .filter(|(id, (_, key))| {
                    let o = v.verify_now(key, None).outcome;
                    if revoked_set.contains(id) {
                        o != keygate::Outcome::Revoked
                    } else {
                        !o.is_accepted()
                    }
                })
                .count()
        });
        if missing == 0 {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "{missing} acknowledged changes not published"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Versions and sequences only went up, across both publishers.
    let log = e.json(&["audit", "log"]);
    let mut last_version = 0u64;
    let mut last_seq: HashMap<u64, u64> = HashMap::new();
    let (mut snapshots, mut updates) = (0, 0);
    for entry in log.as_array().unwrap() {
        let reason = entry["reason"].as_str().unwrap_or("");
        match entry["action"].as_str().unwrap() {
            "publish" => {
                let v: u64 = reason
                    .strip_prefix("snapshot v")
                    .and_then(|r| r.split(',').next())
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(v > last_version, "snapshot v{v} after v{last_version}");
                last_version = v;
                snapshots += 1;
            }
            "publish-update" => {
                // "base vB, seq S, N revoked, M added or changed"
                let mut it = reason.split(", ");
                let b: u64 = it.next().unwrap()[6..].parse().unwrap();
                let s: u64 = it.next().unwrap()[4..].parse().unwrap();
                let prev = last_seq.insert(b, s).unwrap_or(1);
                assert!(s > prev, "update seq {s} after {prev} on v{b}");
                updates += 1;
            }
            _ => {}
        }
    }
    assert!(
        snapshots >= 1 && updates >= 1,
        "{snapshots} snapshots, {updates} updates"
    );

    let v = e.json(&["audit", "verify"]);
    assert_eq!(v["first_bad"], Value::Null, "{v}");

    drop(b);
    eprintln!(
        "api multi-instance test: 2 instances, 1 kill -9, {ISSUES} issues, {REVOKES} revokes, \
         {ROTATIONS} rotations in {:.1} s; {snapshots} snapshots and {updates} updates published; \
         nothing lost or doubled",
        elapsed.as_secs_f64()
    );
}
