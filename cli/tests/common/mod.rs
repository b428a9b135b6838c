//! The `keygate` command in a temporary store, shared by the CLI test files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use serde_json::Value;

pub struct Env {
    pub _tmp: tempfile::TempDir,
    pub store: PathBuf,
    pub out: PathBuf,
    pub root: PathBuf,
}

pub fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    Env {
        store: root.join("store"),
        out: root.join("pub"),
        root,
        _tmp: tmp,
    }
}

impl Env {
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("keygate").unwrap();
        c.env("KEYGATE_STORE", &self.store)
            .env("KEYGATE_ACTOR", "tester")
            .env_remove("KEYGATE_NOW");
        c
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let o = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn init(&self) {
        self.cmd()
            .args(["init", "--keyset", "acme", "--prefix", "acme_live"])
            .assert()
            .success();
    }

    pub fn issue(&self, principal: &str, scopes: &[&str]) -> (String, String) {
        let mut args = vec!["issue", "--principal", principal];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        let v = self.json(&args);
        (
            v["key"].as_str().unwrap().to_string(),
            v["key_id"].as_str().unwrap().to_string(),
        )
    }

    pub fn verify(&self, key: &str, extra: &[&str]) -> (i32, Value) {
        let o = self
            .cmd()
            .args(["--json", "verify", "--trust"])
            .arg(self.out.join("trust.kgt"))
            .arg("--snapshot")
            .arg(self.out.join("snapshot.kgs"))
            .arg("--revocations")
            .arg(self.out.join("revocations.kgr"))
            .args(extra)
            .arg(key)
            .output()
            .unwrap();
        let code = o.status.code().unwrap();
        let v = if code == 2 {
            Value::Null
        } else {
            serde_json::from_slice(&o.stdout).unwrap()
        };
        (code, v)
    }

    pub fn publish(&self, extra: &[&str]) {
        self.cmd()
            .arg("publish")
            .arg("--out")
            .arg(&self.out)
            .args(extra)
            .assert()
            .success();
    }
}

pub fn db(e: &Env) -> rusqlite::Connection {
    rusqlite::Connection::open(e.store.join("keygate.db")).unwrap()
}
