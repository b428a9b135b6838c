//! `keygate drill`: a simulated fleet on one machine, to prove rotation and
//! revocation behave under traffic. G gateway threads each own a `Verifier`
//! and poll a publish directory; C client threads send requests with their
//! keys and behave like real integrations (on `Deprecation`/`Sunset` they
//! fetch their new key from the issuer and switch).
//!
//! - rotation drill: every principal rotated with a grace window mid-traffic;
//!   reports rejected legitimate requests and time until every client switched.
//! - breach drill: some keys revoked mid-traffic and the fast update
//!   published; reports time-to-revoke per gateway and any request accepted
//!   with a revoked key after poll interval + 50 ms.
//! - bad push drill: a corrupted snapshot, then a rollback, published
//!   mid-traffic; reports requests affected and refusals counted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use keygate::{Outcome, Verifier};
use keygate_issuer::{IssueRequest, Issuer, Principal, RevokeTarget, Scope};
use serde_json::json;

use crate::{Fail, Res};

/// Drill settings.
pub(crate) struct Settings {
    pub gateways: usize,
    pub clients: usize,
    pub poll: Duration,
    pub json: bool,
}

struct Gateway {
    verifier: Verifier,
    /// When this gateway first installed each revocation sequence.
    installed_seq: Mutex<HashMap<u64, Instant>>,
}

struct Client {
    principal: String,
    key: RwLock<String>,
    /// The key before the last switch: like the client guide says, a client
    /// holds both during a rotation and falls back to the old one on a 401.
    old_key: RwLock<Option<String>>,
    switched: AtomicBool,
    /// A breach victim: its key is revoked; its refusals are expected.
    breached: AtomicBool,
}

#[derive(Default)]
struct Counters {
    /// Legitimate requests refused, by outcome index.
    rejected_by: [AtomicU64; 9],
    requests: AtomicU64,
    rejected_legitimate: AtomicU64,
    accepted_after_revoke: AtomicU64,
    bad_push_affected: AtomicU64,
}

fn fail(e: impl std::fmt::Display) -> Fail {
    Fail(3, format!("drill: {e}"))
}

fn gateway_loop(g: &Gateway, dir: &Path, poll: Duration, phase: Duration, stop: &AtomicBool) {
    std::thread::sleep(phase);
    // The core's reload discipline, as every gateway surface drives it.
    let mut reload = keygate::Reload::new();
    while !stop.load(Ordering::Relaxed) {
        for a in keygate::RELOAD_ORDER {
            let look = keygate::look_at_file(&dir.join(a.file_name()), reload.validator(a));
            let step = reload.offer(&g.verifier, a, look.fetched());
            if let (keygate::Artifact::Revocations, keygate::Reloaded::Installed { .. }) = (a, step)
            {
                if let Some(h) = g.verifier.revocation_header() {
                    g.installed_seq
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(h.sequence)
                        .or_insert_with(Instant::now);
                }
            }
        }
        std::thread::sleep(poll);
    }
}

pub(crate) fn run(s: &Settings) -> Res<u8> {
    let t_start = Instant::now();
    let tmp = tempfile::tempdir().map_err(fail)?;
    let out = tmp.path().join("published");
    let mut iss =
        Issuer::init(&tmp.path().join("store"), "drill", "drill_live", "drill").map_err(fail)?;
    let mut clients = Vec::new();
    for c in 0..s.clients {
        let principal = format!("client-{c:03}");
        let req = IssueRequest {
            scopes: vec![Scope::new("api:read").map_err(fail)?],
            ..IssueRequest::new(Principal::new(principal.clone()).map_err(fail)?)
        };
        let k = iss.issue(&req).map_err(fail)?;
        clients.push(Arc::new(Client {
            principal,
            key: RwLock::new(k.key.expose_secret().into()),
            old_key: RwLock::new(None),
            switched: AtomicBool::new(false),
            breached: AtomicBool::new(false),
        }));
    }
    iss.publish(&out, 3600).map_err(fail)?;
    let first_snapshot = std::fs::read(out.join("snapshot.kgs")).map_err(fail)?;
    let trust = std::fs::read(out.join("trust.kgt")).map_err(fail)?;

    let gateways: Vec<Arc<Gateway>> = (0..s.gateways)
        .map(|_| {
            let verifier = Verifier::new(&trust).map_err(fail)?;
            verifier.install_snapshot(&first_snapshot).map_err(fail)?;
            Ok(Arc::new(Gateway {
                verifier,
                installed_seq: Mutex::new(HashMap::new()),
            }))
        })
        .collect::<Res<_>>()?;
    // The issuer's "mailbox": where clients fetch their new key after a rotation.
    let mailbox: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let bad_push = Arc::new(AtomicBool::new(false));
    let revoke_bound: Arc<Mutex<Option<Instant>>> = Arc::default();

    let mut threads = Vec::new();
    for (i, g) in gateways.iter().enumerate() {
        let (g, dir, stop, poll) = (Arc::clone(g), out.clone(), Arc::clone(&stop), s.poll);
        // Spread the gateways' poll phases over the interval, like a real fleet.
        let phase = poll * i as u32 / s.gateways as u32;
        threads.push(std::thread::spawn(move || {
            gateway_loop(&g, &dir, poll, phase, &stop)
        }));
    }
    for (i, c) in clients.iter().enumerate() {
        let (c, gws, mailbox, counters, stop, bad_push, bound) = (
            Arc::clone(c),
            gateways.clone(),
            Arc::clone(&mailbox),
            Arc::clone(&counters),
            Arc::clone(&stop),
            Arc::clone(&bad_push),
            Arc::clone(&revoke_bound),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = i;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let g = &gws[n % gws.len()];
                let key = c.key.read().unwrap_or_else(|e| e.into_inner()).clone();
                let mut v = g.verifier.verify_now(&key, Some("api:read"));
                if !v.outcome.is_accepted() {
                    // Fall back to the previous key (a gateway may not have the new one yet).
                    let old = c.old_key.read().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some(old) = old {
                        counters.requests.fetch_add(1, Ordering::Relaxed);
                        v = g.verifier.verify_now(&old, Some("api:read"));
                    }
                }
                counters.requests.fetch_add(1, Ordering::Relaxed);
                let breached = c.breached.load(Ordering::Relaxed);
                match v.outcome {
                    Outcome::Valid if breached => {
                        let after = bound
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_some_and(|b| Instant::now() > b);
                        if after {
                            counters
                                .accepted_after_revoke
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Outcome::Valid => {}
                    Outcome::ValidDeprecated => {
                        // A real integration reacts to Deprecation/Sunset: fetch the new key.
                        let new = mailbox
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&c.principal)
                            .cloned();
                        if let Some(new) = new.filter(|n| *n != key) {
                            *c.old_key.write().unwrap_or_else(|e| e.into_inner()) =
                                Some(key.clone());
                            *c.key.write().unwrap_or_else(|e| e.into_inner()) = new;
                            c.switched.store(true, Ordering::Relaxed);
                        }
                    }
                    Outcome::Revoked if breached => {}
                    _ if breached => {}
                    o => {
                        let idx = Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
                        counters.rejected_by[idx].fetch_add(1, Ordering::Relaxed);
                        counters.rejected_legitimate.fetch_add(1, Ordering::Relaxed);
                        if bad_push.load(Ordering::Relaxed) {
                            counters.bad_push_affected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));

    // Rotation drill.
    let t_rot = Instant::now();
    let mut new_keys = HashMap::new();
    for c in &clients {
        let (k, _) = iss.rotate(&c.principal, Some(3600)).map_err(fail)?;
        new_keys.insert(c.principal.clone(), k.key.expose_secret().to_string());
    }
    *mailbox.lock().unwrap_or_else(|e| e.into_inner()) = new_keys;
    iss.publish(&out, 3600).map_err(fail)?;
    let rotation_deadline = t_rot + s.poll * 3 + Duration::from_secs(5);
    while Instant::now() < rotation_deadline
        && !clients.iter().all(|c| c.switched.load(Ordering::Relaxed))
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let switched = clients
        .iter()
        .filter(|c| c.switched.load(Ordering::Relaxed))
        .count();
    let all_switched_ms = (switched == clients.len()).then(|| t_rot.elapsed().as_millis() as u64);
    let rejected_after_rotation = counters.rejected_legitimate.load(Ordering::Relaxed);
    std::thread::sleep(s.poll);

    // Breach drill: revoke a tenth of the clients' (new) keys, publish the fast update.
    let victims: Vec<&Arc<Client>> = clients.iter().step_by(10).collect();
    for v in &victims {
        v.breached.store(true, Ordering::Relaxed);
    }
    let target_seq = iss.info().map_err(fail)?.revocation_seq + 1;
    for v in &victims {
        iss.revoke(
            &RevokeTarget::Principal(v.principal.clone()),
            Some("drill: breach"),
        )
        .map_err(fail)?;
    }
    let t_pub = Instant::now();
    *revoke_bound.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(t_pub + s.poll + Duration::from_millis(50));
    iss.publish_revocations(&out, 3600).map_err(fail)?;
    std::thread::sleep(s.poll * 2 + Duration::from_millis(200));
    let mut ttr: Vec<f64> = gateways
        .iter()
        .map(|g| {
            g.installed_seq
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&target_seq)
                .map_or(f64::INFINITY, |t| {
                    t.saturating_duration_since(t_pub).as_secs_f64() * 1e3
                })
        })
        .collect();
    ttr.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| ttr[((ttr.len() as f64 - 1.0) * p).round() as usize];

    // Bad push drill: a corrupted snapshot, then a rollback to the first one.
    let refused_before: u64 = gateways.iter().map(|g| g.verifier.stats().refused[0]).sum();
    bad_push.store(true, Ordering::Relaxed);
    let good = std::fs::read(out.join("snapshot.kgs")).map_err(fail)?;
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    keygate_issuer::write_atomic(&out.join("snapshot.kgs"), &corrupt, 0o644).map_err(fail)?;
    std::thread::sleep(s.poll * 2);
    keygate_issuer::write_atomic(&out.join("snapshot.kgs"), &first_snapshot, 0o644)
        .map_err(fail)?;
    std::thread::sleep(s.poll * 2);
    keygate_issuer::write_atomic(&out.join("snapshot.kgs"), &good, 0o644).map_err(fail)?;
    bad_push.store(false, Ordering::Relaxed);
    let refusals: u64 = gateways
        .iter()
        .map(|g| g.verifier.stats().refused[0])
        .sum::<u64>()
        - refused_before;

    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let r = json!({
        "gateways": s.gateways,
        "clients": s.clients,
        "poll_ms": s.poll.as_millis() as u64,
        "requests": counters.requests.load(Ordering::Relaxed),
        "rejected_legitimate": counters.rejected_legitimate.load(Ordering::Relaxed),
        "rejected_legitimate_by_outcome": Outcome::ALL.iter().zip(&counters.rejected_by)
            .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
            .map(|(o, n)| (o.as_str().to_string(), json!(n.load(Ordering::Relaxed))))
            .collect::<serde_json::Map<_, _>>(),
        "rejected_legitimate_during_rotation": rejected_after_rotation,
        "clients_switched": switched,
        "all_switched_ms": all_switched_ms,
        "revoked_keys": victims.len(),
        "time_to_revoke_p50_ms": pct(0.5),
        "time_to_revoke_p99_ms": pct(0.99),
        "time_to_revoke_max_ms": pct(1.0),
        "time_to_revoke_bound_ms": (s.poll.as_millis() + 50) as u64,
        "accepted_after_revoke": counters.accepted_after_revoke.load(Ordering::Relaxed),
        "bad_push_affected": counters.bad_push_affected.load(Ordering::Relaxed),
        "bad_push_refusals": refusals,
        "duration_ms": t_start.elapsed().as_millis() as u64,
    });
    let ok = r["rejected_legitimate"] == 0
        && r["accepted_after_revoke"] == 0
        && r["bad_push_affected"] == 0
        && switched == clients.len()
        && pct(0.99) <= (s.poll.as_millis() + 50) as f64;
    if s.json {
        crate::cmd::print_json(&r);
    } else {
        println!(
            "keygate drill: {} gateways polling every {:?}, {} clients",
            s.gateways, s.poll, s.clients
        );
        println!("  {:<44} {}", "requests", r["requests"]);
        println!(
            "  {:<44} {} (goal 0)",
            "rotation: rejected legitimate requests", r["rejected_legitimate_during_rotation"]
        );
        println!(
            "  {:<44} {}/{} after {} ms",
            "rotation: clients switched to the new key",
            switched,
            clients.len(),
            all_switched_ms.map_or("-".into(), |m| m.to_string())
        );
        println!(
            "  {:<44} p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goal p99 ≤ {} ms)",
            "breach: time to revoke per gateway",
            pct(0.5),
            pct(0.99),
            pct(1.0),
            s.poll.as_millis() + 50
        );
        println!(
            "  {:<44} {} (goal 0)",
            "breach: accepted with a revoked key after bound", r["accepted_after_revoke"]
        );
        println!(
            "  {:<44} {} (goal 0), {} refusals counted",
            "bad push: requests affected", r["bad_push_affected"], refusals
        );
        println!(
            "  {:<44} {} (goal 0)",
            "rejected legitimate requests, whole drill", r["rejected_legitimate"]
        );
        println!("  {}", if ok { "PASS" } else { "FAIL" });
    }
    Ok(if ok { 0 } else { 1 })
}
