//! `keygate drill --scenario new-keys`: how soon a key the issuer hands out
//! works at every gateway, at scale, without a snapshot rebuilt (issue 18).
//!
//! A store of `keys` background keys is published once as a snapshot; G
//! gateway threads (own verifier each, polls spread over the interval) read
//! the publish directory as a real gateway does. Then, one every 250 ms, the
//! issuer hands out a new key — half issued, half rotated — and a publisher
//! thread writes the update as soon as anything changed (as `keygate api
//! --publish-delay 0s` does). For each new key:
//!
//! - `new_key_usable_ms`: from the issuer's answer to the first 200 at
//!   every gateway;
//! - a client that starts at once counts the requests refused meanwhile;
//! - a client that starts at the announced `usable_at` (answer + poll +
//!   200 ms) must see none refused (`rejected_legitimate`).
//!
//! It also counts the bytes each gateway fetched, next to what full
//! snapshots for the same changes would have cost.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate::Verifier;
use keygate_issuer::{IssueRequest, Issuer, Principal, Scope};
use serde_json::json;

use crate::{Fail, Res};

/// Settings of the scenario.
pub(crate) struct Settings {
    pub gateways: usize,
    pub poll: Duration,
    pub keys: u64,
    pub new_keys: usize,
    pub json: bool,
}

/// How often the publisher looks for changes (it publishes at once).
const PUBLISHER_TICK: Duration = Duration::from_millis(5);
/// What `usable_at` adds to the poll interval: time to publish the update.
const PUBLISH_ALLOWANCE: Duration = Duration::from_millis(200);

fn fail(e: impl std::fmt::Display) -> Fail {
    Fail(3, format!("drill: {e}"))
}

struct Gateway {
    verifier: Verifier,
    bytes: AtomicU64,
}

fn gateway_loop(
    g: &Gateway,
    dir: &Path,
    poll: Duration,
    phase: Duration,
    stop: &AtomicBool,
    ready: &AtomicU64,
) {
    let mut reload = keygate::Reload::new();
    // A first look at every file before the drill's clock starts (a
    // gateway that has been running has its validators).
    for a in keygate::RELOAD_ORDER {
        let look = keygate::look_at_file(&dir.join(a.file_name()), reload.validator(a));
        let _ = reload.offer(&g.verifier, a, look.fetched());
    }
    ready.fetch_add(1, Ordering::AcqRel);
    std::thread::sleep(phase);
    while !stop.load(Ordering::Relaxed) {
        for a in keygate::RELOAD_ORDER {
            let look = keygate::look_at_file(&dir.join(a.file_name()), reload.validator(a));
            if let keygate::Fetched::Got { bytes, .. } = look.fetched() {
                g.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            let _ = reload.offer(&g.verifier, a, look.fetched());
        }
        std::thread::sleep(poll);
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn run(s: &Settings) -> Res<u8> {
    let t_start = Instant::now();
    let tmp = tempfile::tempdir().map_err(fail)?;
    let out: PathBuf = tmp.path().join("published");
    let mut iss =
        Issuer::init(&tmp.path().join("store"), "drill", "drill_live", "drill").map_err(fail)?;
    let req = |p: &str| -> Res<IssueRequest> {
        Ok(IssueRequest {
            scopes: vec![Scope::new("api:read").map_err(fail)?],
            ..IssueRequest::new(Principal::new(p).map_err(fail)?)
        })
    };
    // The background keys, then one key per principal that will rotate.
    let t = Instant::now();
    iss.issue_many(&req("background")?, s.keys, |_| {})
        .map_err(fail)?;
    let rotating = s.new_keys / 2;
    for i in 0..rotating {
        iss.issue(&req(&format!("rotating-{i}"))?).map_err(fail)?;
    }
    let issue_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    let snap = iss.publish(&out, 86_400).map_err(fail)?;
    let snapshot_publish_ms = t.elapsed().as_millis() as u64;
    let trust = std::fs::read(out.join("trust.kgt")).map_err(fail)?;
    let first = std::fs::read(out.join("snapshot.kgs")).map_err(fail)?;
    let gateways: Vec<Arc<Gateway>> = (0..s.gateways)
        .map(|_| {
            let verifier = Verifier::new(&trust).map_err(fail)?;
            verifier.install_snapshot(&first).map_err(fail)?;
            Ok(Arc::new(Gateway {
                verifier,
                bytes: AtomicU64::new(0),
            }))
        })
        .collect::<Res<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for (i, g) in gateways.iter().enumerate() {
        let (g, dir, stop, poll) = (Arc::clone(g), out.clone(), Arc::clone(&stop), s.poll);
        let ready = Arc::clone(&ready);
        let phase = poll * i as u32 / s.gateways as u32;
        threads.push(std::thread::spawn(move || {
            gateway_loop(&g, &dir, poll, phase, &stop, &ready)
        }));
    }
    while ready.load(Ordering::Acquire) < s.gateways as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The publisher: the update as soon as anything changed.
    let issuer = Arc::new(Mutex::new(iss));
    let dirty = Arc::new(AtomicBool::new(false));
    let publish_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let update_bytes = Arc::new(AtomicU64::new(0));
    let updates = Arc::new(AtomicU64::new(0));
    {
        let (issuer, dirty, stop, out) = (
            Arc::clone(&issuer),
            Arc::clone(&dirty),
            Arc::clone(&stop),
            out.clone(),
        );
        let (publish_ms, update_bytes, updates) = (
            Arc::clone(&publish_ms),
            Arc::clone(&update_bytes),
            Arc::clone(&updates),
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(PUBLISHER_TICK);
                if !dirty.swap(false, Ordering::AcqRel) {
                    continue;
                }
                let t = Instant::now();
                let mut i = issuer.lock().unwrap_or_else(|e| e.into_inner());
                match i.publish_update(&out, 86_400) {
                    Ok(r) => {
                        publish_ms
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(t.elapsed().as_secs_f64() * 1e3);
                        update_bytes.store(r.revocations_bytes, Ordering::Relaxed);
                        updates.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => eprintln!("drill: publishing the update: {e}"),
                }
            }
        }));
    }
    std::thread::sleep(s.poll);
    let bytes_before: Vec<u64> = gateways
        .iter()
        .map(|g| g.bytes.load(Ordering::Relaxed))
        .collect();
    let t_run = Instant::now();

    // The new keys, one every 250 ms, each watched by its own client.
    let usable_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let refused_early = Arc::new(AtomicU64::new(0));
    let rejected_legitimate = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for n in 0..s.new_keys {
        let (key, answered) = {
            let mut i = issuer.lock().unwrap_or_else(|e| e.into_inner());
            let k = if n % 2 == 0 && n / 2 < rotating {
                i.rotate(&format!("rotating-{}", n / 2), Some(3600))
                    .map_err(fail)?
                    .0
            } else {
                i.issue(&req(&format!("new-{n}"))?).map_err(fail)?
            };
            (k.key.expose_secret().to_string(), Instant::now())
        };
        dirty.store(true, Ordering::Release);
        // What the API announces with --publish-delay 0: one poll, and
        // time to publish.
        let usable_at = answered + s.poll + PUBLISH_ALLOWANCE;
        let (gws, usable_ms, refused_early, rejected) = (
            gateways.clone(),
            Arc::clone(&usable_ms),
            Arc::clone(&refused_early),
            Arc::clone(&rejected_legitimate),
        );
        watchers.push(std::thread::spawn(move || {
            // A client that starts at once, across every gateway, until each
            // has answered 200 once.
            let mut accepted = vec![false; gws.len()];
            let deadline = answered + Duration::from_secs(10);
            while accepted.iter().any(|a| !a) && Instant::now() < deadline {
                for (g, ok) in gws.iter().zip(accepted.iter_mut()) {
                    if *ok {
                        continue;
                    }
                    if g.verifier
                        .verify_now(&key, Some("api:read"))
                        .outcome
                        .is_accepted()
                    {
                        *ok = true;
                    } else {
                        refused_early.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let ms = if accepted.iter().all(|a| *a) {
                answered.elapsed().as_secs_f64() * 1e3
            } else {
                f64::INFINITY
            };
            usable_ms.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
            // A client that starts at usable_at: nothing refused, for 1 s.
            std::thread::sleep(usable_at.saturating_duration_since(Instant::now()));
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                for g in &gws {
                    if !g
                        .verifier
                        .verify_now(&key, Some("api:read"))
                        .outcome
                        .is_accepted()
                    {
                        rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
        std::thread::sleep(Duration::from_millis(250));
    }
    for w in watchers {
        let _ = w.join();
    }
    let run_s = t_run.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let fetched: Vec<f64> = gateways
        .iter()
        .zip(&bytes_before)
        .map(|(g, b)| (g.bytes.load(Ordering::Relaxed) - b) as f64 / run_s * 60.0)
        .collect();
    let fetched_per_min = fetched.iter().sum::<f64>() / fetched.len() as f64;
    let updates = updates.load(Ordering::Relaxed);
    // The alternative: every one of those publishes a full snapshot, which
    // every gateway fetches.
    let full_per_min = updates as f64 * snap.snapshot_bytes as f64 / run_s * 60.0;
    let mut usable = usable_ms.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut pubs = publish_ms.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Issue 18's goal: one poll interval and 100 ms, from the answer.
    let goal = s.poll.as_millis() as f64 + 100.0;
    let p99 = pct(&mut usable, 0.99);
    let r = json!({
        "scenario": "new-keys",
        "gateways": s.gateways,
        "poll_ms": s.poll.as_millis() as u64,
        "keys": s.keys + rotating as u64,
        "new_keys": s.new_keys,
        "rotated": rotating,
        "issue_background_ms": issue_ms,
        "snapshot_publish_ms": snapshot_publish_ms,
        "snapshot_bytes": snap.snapshot_bytes,
        "publish_delay_ms": 0,
        "updates_published": updates,
        "update_publish_p50_ms": pct(&mut pubs, 0.5),
        "update_publish_p99_ms": pct(&mut pubs, 0.99),
        "last_update_bytes": update_bytes.load(Ordering::Relaxed),
        "new_key_usable_p50_ms": pct(&mut usable, 0.5),
        "new_key_usable_p99_ms": p99,
        "new_key_usable_goal_ms": goal,
        "refused_before_usable_at": refused_early.load(Ordering::Relaxed),
        "rejected_legitimate": rejected_legitimate.load(Ordering::Relaxed),
        "fetched_bytes_per_gateway_per_minute": fetched_per_min.round(),
        "full_snapshot_alternative_bytes_per_gateway_per_minute": full_per_min.round(),
        "duration_ms": t_start.elapsed().as_millis() as u64,
    });
    let ok = r["rejected_legitimate"] == 0 && p99 <= goal;
    if s.json {
        crate::cmd::print_json(&r);
    } else {
        println!(
            "keygate drill (new keys): {} keys, {} gateways polling every {:?}, {} new keys ({} rotations), the update published at once",
            r["keys"], s.gateways, s.poll, s.new_keys, rotating
        );
        println!(
            "  {:<48} p50 {:.0} ms, p99 {:.0} ms (goal p99 ≤ poll + 100 = {} ms)",
            "new key usable at every gateway",
            r["new_key_usable_p50_ms"].as_f64().unwrap_or(f64::NAN),
            p99,
            r["new_key_usable_goal_ms"]
        );
        println!(
            "  {:<48} {} (goal 0)",
            "refused after the announced usable_at", r["rejected_legitimate"]
        );
        println!(
            "  {:<48} {}",
            "refused before usable_at (client started at once)", r["refused_before_usable_at"]
        );
        println!(
            "  {:<48} p50 {:.1} ms, p99 {:.1} ms; {} updates, last {} bytes",
            "update publish",
            r["update_publish_p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["update_publish_p99_ms"].as_f64().unwrap_or(f64::NAN),
            updates,
            r["last_update_bytes"]
        );
        println!(
            "  {:<48} {} bytes/min (full snapshots instead: {} bytes/min)",
            "fetched per gateway",
            r["fetched_bytes_per_gateway_per_minute"],
            r["full_snapshot_alternative_bytes_per_gateway_per_minute"]
        );
        println!("  {}", if ok { "PASS" } else { "FAIL" });
    }
    Ok(if ok { 0 } else { 1 })
}
