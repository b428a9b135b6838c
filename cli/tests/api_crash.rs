//! `keygate api` killed with SIGKILL mid-run, three times, while clients
//! issue and revoke with retries (the same `Idempotency-Key` each time):
//! afterwards every acknowledged key exists exactly once, every acknowledged
//! revoke is in the published update, and the audit chain is intact.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::assert::OutputAssertExt;
use common::env;
use serde_json::Value;

/// Operations per client thread (four threads).
const OPS: usize = 200;

#[test]
fn kill_9_mid_run_loses_nothing_and_doubles_nothing() {
    let e = env();
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
    let port = 4000 + (std::process::id() % 1000) as u16;
    let child = Arc::new(Mutex::new(common::spawn_publishing_api(&e, port, "200ms")));
    let issued: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let revoked: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));

    let killer = {
        let (child, done) = (Arc::clone(&child), Arc::clone(&done));
        // The same store, for the restarts (the Env owning the directory
        // stays with the test).
        let e2 = common::Env {
            _tmp: tempfile::tempdir().unwrap(),
            store: e.store.clone(),
            out: e.out.clone(),
            root: e.root.clone(),
            pg: e.pg.clone(),
        };
        std::thread::spawn(move || {
            let mut kills = 0;
            while kills < 3 && !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let mut c = child.lock().unwrap();
                c.0.kill().unwrap(); // SIGKILL
                c.0.wait().unwrap();
                *c = common::spawn_publishing_api(&e2, port, "200ms");
                kills += 1;
            }
            kills
        })
    };

    let clients: Vec<_> = (0..4)
        .map(|t| {
            let (admin, issued, revoked) =
                (admin.clone(), Arc::clone(&issued), Arc::clone(&revoked));
            std::thread::spawn(move || {
                for op in 0..OPS {
                    let principal = format!("customer-{t}-{op}");
                    let body =
                        format!(r#"{{"principal":"{principal}","scopes":["invoices:read"]}}"#);
                    let (status, v) = common::post_until_answered(
                        &[port],
                        0,
                        &admin,
                        "/v1/keys",
                        &format!("issue-{t}-{op}"),
                        &body,
                    );
                    assert_eq!(status, 201, "{v}");
                    let (id, key) = (
                        v["key_id"].as_str().unwrap().to_string(),
                        v["key"].as_str().unwrap().to_string(),
                    );
                    issued.lock().unwrap().push((principal, id.clone(), key));
                    if op % 5 == 0 {
                        let path = format!("/v1/keys/{id}/revoke");
                        let (status, v) = common::post_until_answered(
                            &[port],
                            0,
                            &admin,
                            &path,
                            &format!("revoke-{id}"),
                            "{}",
                        );
                        assert_eq!(status, 200, "{v}");
                        revoked.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    assert!(
        kills >= 2,
        "the API was killed {kills} times during the run; the test needs more"
    );

    // Every acknowledged key exists exactly once.
    let listed = e.json(&["list"]);
    let listed = listed.as_array().unwrap();
    let issued = issued.lock().unwrap();
    assert_eq!(issued.len(), 4 * OPS);
    for (principal, id, _) in issued.iter() {
        let mine: Vec<&Value> = listed
            .iter()
            .filter(|k| k["principal"] == principal.as_str())
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{principal}: {} keys after retries",
            mine.len()
        );
        assert_eq!(mine[0]["key_id"], id.as_str());
    }
    assert_eq!(listed.len(), issued.len(), "keys nobody was told about");

    // Every acknowledged revoke reaches the published update.
    let revoked = revoked.lock().unwrap().clone();
    let t0 = Instant::now();
    loop {
        // The last instance publishes its first snapshot --publish-delay
        // after it starts, which may be after the clients are done.
        if !e.out.join("snapshot.kgs").exists() {
            assert!(t0.elapsed() < Duration::from_secs(5), "nothing published");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let read = |f: &str| std::fs::read(e.out.join(f)).unwrap();
        let v = keygate::Verifier::new(&read("trust.kgt")).unwrap();
        v.install_snapshot(&read("snapshot.kgs")).unwrap();
        let _ = v.install_revocations(&read("revocations.kgr"));
        let missing = issued
            .iter()
            .filter(|(_, id, key)| {
                revoked.contains(id) && v.verify_now(key, None).outcome != keygate::Outcome::Revoked
            })
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{missing} acknowledged revokes not published"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "api crash test: {kills} kill -9s, {} keys, {} revokes, nothing lost or doubled",
        issued.len(),
        revoked.len()
    );
    child.lock().unwrap().0.kill().unwrap();
    e.cmd().args(["audit", "verify"]).assert().success();
}
