//! Known-answer vectors: the committed files in tests/vectors/ must equal what
//! the builders produce from the fixed inputs in tests/common (Ed25519 is
//! deterministic). Regenerate with `KEYGATE_REGEN_VECTORS=1 cargo test --test vectors`.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use common::*;
use keygate::{build_update_with, Outcome, RecordSpec, Status, UpdateSpec, Verifier};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn artifacts() -> Vec<(&'static str, Vec<u8>)> {
    let s = signer(1);
    let r = reference();
    let ids = reference_ids();
    let verdicts = expected_verdicts();
    vec![
        ("trust.kgt", trust(&s)),
        ("snapshot.kgs", reference_snapshot(&s, 1)),
        (
            "revocations.kgr",
            update(&s, 1, 1, &ids, &[r.valid.key_id()]),
        ),
        ("update.kgr", update_with_records()),
        ("verdicts.txt", verdicts.into_bytes()),
    ]
}

/// The update as format 2 (sequence 2 on snapshot v1): the revocation of
/// revocations.kgr, and records — key 50 added ("reports-service",
/// reports:read, expiring in a day), key 51 added already revoked, and the
/// future key changed to valid from the start.
fn update_with_records() -> Vec<u8> {
    let s = signer(1);
    let r = reference();
    let mut added = RecordSpec::active(key(50).digest(), "reports-service", &["reports:read"]);
    added.expires_at = Some(T0 + 86_400);
    let mut gone = RecordSpec::active(key(51).digest(), "reports-service", &["reports:read"]);
    gone.status = Status::Revoked;
    let mut changed = reference_records(&r).remove(4);
    assert_eq!(changed.digest, r.future.digest());
    changed.not_before = 0;
    let spec = UpdateSpec {
        keyset: keyset(),
        base_version: 1,
        sequence: 2,
        created_at: T0,
        valid_until: T0 + 3600,
    };
    build_update_with(
        &spec,
        &reference_ids(),
        &[r.valid.key_id()],
        vec![added, gone, changed],
        &s,
    )
    .unwrap()
}

/// One line per presented key: the key, the scope asked for, and the verdict
/// after installing snapshot.kgs, before and after revocations.kgr, and
/// after update.kgr (which follows it).
fn expected_verdicts() -> String {
    let s = signer(1);
    let r = reference();
    let v = Verifier::new(&trust(&s)).unwrap();
    v.install_snapshot(&reference_snapshot(&s, 1)).unwrap();
    let mut cases: Vec<(String, Option<&str>)> =
        [&r.valid, &r.deprecated, &r.revoked, &r.expired, &r.future]
            .iter()
            .map(|k| (k.expose_secret().to_string(), Some("invoices:read")))
            .collect();
    cases.push((r.imported.into(), None));
    cases.push((r.valid.expose_secret().into(), Some("search:read")));
    cases.push((key(42).expose_secret().into(), None));
    cases.push(("acme_live_notakey".into(), None));
    cases.push((key(50).expose_secret().into(), Some("reports:read")));
    cases.push((key(51).expose_secret().into(), None));
    let before: Vec<Outcome> = cases
        .iter()
        .map(|(k, sc)| v.verify(k, T0, *sc).outcome)
        .collect();
    v.install_revocations(&update(&s, 1, 1, &reference_ids(), &[r.valid.key_id()]))
        .unwrap();
    let after: Vec<Outcome> = cases
        .iter()
        .map(|(k, sc)| v.verify(k, T0, *sc).outcome)
        .collect();
    v.install_revocations(&update_with_records()).unwrap();
    let mut out = format!(
        "# key scope now outcome_before_kgr outcome_after_kgr outcome_after_update_kgr (now = {T0})\n"
    );
    for (((k, sc), b), a) in cases.iter().zip(before).zip(after) {
        let u = v.verify(k, T0, *sc).outcome;
        let _ = writeln!(out, "{k} {} {T0} {b} {a} {u}", sc.unwrap_or("-"));
    }
    out
}

#[test]
fn committed_vectors_match_the_builders() {
    let regen = std::env::var_os("KEYGATE_REGEN_VECTORS").is_some();
    for (name, bytes) in artifacts() {
        let path = dir().join(name);
        if regen {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == bytes,
            "{name} differs from the builder output; regenerate deliberately"
        );
    }
}

#[test]
fn committed_vectors_verify_as_recorded() {
    let read = |n: &str| std::fs::read(dir().join(n)).unwrap();
    let v = Verifier::new(&read("trust.kgt")).unwrap();
    v.install_snapshot(&read("snapshot.kgs")).unwrap();
    let text = String::from_utf8(read("verdicts.txt")).unwrap();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(lines.len(), 11);
    let check = |col: usize| {
        for l in &lines {
            let scope = (l[1] != "-").then_some(l[1]);
            assert_eq!(
                v.verify(l[0], l[2].parse().unwrap(), scope)
                    .outcome
                    .as_str(),
                l[col],
                "{}",
                l[0]
            );
        }
    };
    check(3);
    v.install_revocations(&read("revocations.kgr")).unwrap();
    check(4);
    v.install_revocations(&read("update.kgr")).unwrap();
    check(5);
}

/// The fuzz targets' seed artifacts are these vectors (the truncated seed is
/// their first 600 bytes): after a format change a stale seed would be
/// refused at the version check and the fuzzer would start from nothing.
#[test]
fn fuzz_seeds_are_the_vectors() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let snapshot = std::fs::read(dir().join("snapshot.kgs")).unwrap();
    let revocations = std::fs::read(dir().join("revocations.kgr")).unwrap();
    let trust = std::fs::read(dir().join("trust.kgt")).unwrap();
    let update = std::fs::read(dir().join("update.kgr")).unwrap();
    for (seed, want) in [
        ("fuzz/corpus/verifier/snapshot.kgs", &snapshot[..]),
        ("fuzz/corpus/snapshot_view/reference.kgs", &snapshot[..]),
        ("fuzz/corpus/snapshot_view/truncated.kgs", &snapshot[..600]),
        ("fuzz/corpus/verifier/revocations.kgr", &revocations[..]),
        ("fuzz/corpus/verifier/update.kgr", &update[..]),
        ("fuzz/corpus/verifier/trust.kgt", &trust[..]),
        ("fuzz/corpus/c_api/trust.kgt", &trust[..]),
    ] {
        let got = std::fs::read(root.join(seed)).unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert!(
            got == want,
            "{seed} is not the current vector; copy it from tests/vectors"
        );
    }
}
