//! 4 threads verify 10^7 times in all while snapshots and updates are
//! installed 1000 times, including refused ones: 0 wrong verdicts for valid
//! keys, 0 panics. Meant for release builds (the test suite runs it with
//! `cargo test --release --test concurrency`); a debug build does 1/20 of the work.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use keygate::{Outcome, Verifier};

#[test]
fn four_threads_verify_while_artifacts_are_installed() {
    let total: u64 = if cfg!(debug_assertions) {
        500_000
    } else {
        10_000_000
    };
    let s = signer(1);
    let v = Verifier::new(&trust(&s)).unwrap();
    let first = reference_snapshot(&s, 1);
    v.install_snapshot(&first).unwrap();
    let snaps: Vec<Vec<u8>> = (2..=251).map(|n| reference_snapshot(&s, n)).collect();
    let r = reference();
    let ids = reference_ids();
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (mut installed, mut refused) = (0, 0);
    std::thread::scope(|sc| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    let mut wrong = 0u64;
                    while done.fetch_add(1, Ordering::Relaxed) < total {
                        let d = v.verify(r.valid.expose_secret(), T0, Some("invoices:read"));
                        wrong += u64::from(
                            d.outcome != Outcome::Valid
                                || d.principal.as_str() != "billing-service",
                        );
                    }
                    wrong
                })
            })
            .collect();
        // 1000 installs: 250 snapshots, 250 updates, 500 refused (corrupt, rollback).
        for (i, snap) in snaps.iter().enumerate() {
            let version = i as u64 + 2;
            for ok in [
                v.install_snapshot(snap).is_ok(),
                v.install_revocations(&update(&s, version, 1, &ids, &[r.revoked.key_id()]))
                    .is_ok(),
                {
                    let mut bad = snap.clone();
                    bad[(i * 31) % snap.len()] ^= 0x08;
                    v.install_snapshot(&bad).is_ok()
                },
                v.install_snapshot(&first).is_ok(),
            ] {
                if ok {
                    installed += 1;
                } else {
                    refused += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let wrong: u64 = workers
            .into_iter()
            .map(|w| w.join().expect("a verifier thread panicked"))
            .sum();
        println!(
            "concurrency: {total} verifies on 4 threads during 1000 installs ({installed} installed, {refused} refused): {wrong} wrong"
        );
        assert_eq!(wrong, 0);
    });
    assert_eq!(installed + refused, 1000);
    assert_eq!((installed, refused), (500, 500));
    assert_eq!(v.snapshot_header().unwrap().version, 251);
}
