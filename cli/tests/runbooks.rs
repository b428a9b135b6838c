//! Every `sh` block of docs/runbooks/*.md runs, page by page, against a fresh
//! store with a published keyset, so the runbooks cannot rot.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sh_blocks(page: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside && line.trim_start() == "```sh";
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn kg(bin: &Path, store: &Path, args: &[&str]) -> String {
    let o = Command::new(bin)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn runbook_commands_run() {
    let bin = assert_cmd::cargo::cargo_bin("keygate");
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/runbooks");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&docs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md") && !p.ends_with("README.md"))
        .collect();
    pages.sort();
    assert_eq!(pages.len(), 5, "runbook pages: {pages:?}");
    let mut blocks = 0;
    for page in &pages {
        let script = sh_blocks(&std::fs::read_to_string(page).unwrap());
        assert!(
            !script.trim().is_empty(),
            "{} has no sh block",
            page.display()
        );
        blocks += script.lines().filter(|l| !l.trim().is_empty()).count();
        let tmp = tempfile::tempdir().unwrap();
        let (store, out, repo) = (
            tmp.path().join("store"),
            tmp.path().join("out"),
            tmp.path().join("repo"),
        );
        kg(
            &bin,
            &store,
            &["init", "--keyset", "acme", "--prefix", "acme_live"],
        );
        let some = kg(
            &bin,
            &store,
            &[
                "issue",
                "--principal",
                "billing-service",
                "--scope",
                "invoices:read",
            ],
        );
        let leaked = kg(
            &bin,
            &store,
            &[
                "issue",
                "--principal",
                "search-indexer",
                "--scope",
                "search:read",
            ],
        );
        kg(&bin, &store, &["publish", "--out", out.to_str().unwrap()]);
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(
            repo.join("settings.py"),
            format!("SEARCH_KEY = \"{}\"\n", leaked.trim()),
        )
        .unwrap();
        if page.ends_with("bad-publish.md") {
            let snap = out.join("snapshot.kgs");
            let mut b = std::fs::read(&snap).unwrap();
            b.truncate(b.len() / 2);
            std::fs::write(&snap, b).unwrap();
        }
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let o = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(tmp.path())
            .env("PATH", path)
            .env("KEYGATE_STORE", &store)
            .env("OUT", &out)
            .env("REPO", &repo)
            .env("SOME_KEY", some.trim())
            .env("LEAKED_KEY", leaked.trim())
            .env("LEGACY_KEY", "sk_legacy_0123456789abcdef")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{} failed:\n--- stdout\n{}\n--- stderr\n{}",
            page.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        kg(&bin, &store, &["audit", "verify"]);
    }
    println!(
        "runbooks: {} pages, {blocks} command lines run",
        pages.len()
    );
}
