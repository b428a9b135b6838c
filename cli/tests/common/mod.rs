//! The `keygate` command in a temporary store, shared by the CLI test files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use serde_json::Value;

pub struct Env {
    pub _tmp: tempfile::TempDir,
    /// The SQLite store directory (unused on PostgreSQL).
    pub store: PathBuf,
    pub out: PathBuf,
    pub root: PathBuf,
    /// The PostgreSQL store's URL, when the tests run on PostgreSQL.
    pub pg: Option<String>,
}

/// Which engine the issuer tests run on: SQLite unless
/// `KEYGATE_TEST_BACKEND=postgres` (then `KEYGATE_TEST_PG`, set by
/// scripts/with-postgres.sh, is the cluster; each `env()` gets a database
/// of its own).
pub fn on_postgres() -> bool {
    std::env::var("KEYGATE_TEST_BACKEND").as_deref() == Ok("postgres")
}

fn pg_admin() -> String {
    std::env::var("KEYGATE_TEST_PG").expect(
        "KEYGATE_TEST_BACKEND=postgres needs KEYGATE_TEST_PG (scripts/with-postgres.sh sets it)",
    )
}

/// `base` (a URL ending in /DATABASE) with another database.
fn with_db(base: &str, db: &str) -> String {
    let (head, _) = base.rsplit_once('/').unwrap();
    format!("{head}/{db}")
}

/// A new, empty PostgreSQL database (optionally a copy of `template`).
pub fn new_pg_database(template: Option<&str>) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let admin = pg_admin();
    let name = format!(
        "kg_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    let tpl = template
        .map(|t| format!(" TEMPLATE {t}"))
        .unwrap_or_default();
    c.batch_execute(&format!("CREATE DATABASE {name}{tpl}"))
        .unwrap();
    with_db(&admin, &name)
}

pub fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    Env {
        store: root.join("store"),
        out: root.join("pub"),
        pg: on_postgres().then(|| new_pg_database(None)),
        root,
        _tmp: tmp,
    }
}

impl Env {
    /// What `--store` / `KEYGATE_STORE` is for this env.
    pub fn store_arg(&self) -> std::ffi::OsString {
        match &self.pg {
            Some(url) => url.into(),
            None => self.store.clone().into(),
        }
    }

    /// The store as the library takes it.
    pub fn store_at(&self) -> keygate_issuer::StoreAt {
        keygate_issuer::StoreAt::parse(&self.store_arg().to_string_lossy())
            .with_seal_key_file(Some(self.seal_key_file()))
    }

    /// A PostgreSQL store's seal key file.
    pub fn seal_key_file(&self) -> PathBuf {
        self.root.join("seal.key")
    }

    /// Runs SQL on the store as someone with access to the database
    /// would (tampering, for the tests that catch it).
    pub fn sql(&self, sql: &str) {
        match &self.pg {
            Some(url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
            None => db(self).execute_batch(sql).unwrap(),
        }
    }

    /// A copy of the store (a new directory or database), for one
    /// tampering case: what `KEYGATE_STORE` is for it.
    pub fn copy_store(&self, name: &str) -> std::ffi::OsString {
        match &self.pg {
            Some(url) => {
                let db = url.rsplit_once('/').unwrap().1;
                new_pg_database(Some(db)).into()
            }
            None => {
                let to = self.root.join(name);
                let ok = Command::new("cp")
                    .arg("-a")
                    .arg(&self.store)
                    .arg(&to)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
                to.into()
            }
        }
    }

    /// Runs SQL on a copy made by [`Env::copy_store`].
    pub fn sql_on(&self, copy: &std::ffi::OsStr, sql: &str) {
        match &self.pg {
            Some(_) => postgres::Client::connect(&copy.to_string_lossy(), postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
            None => rusqlite::Connection::open(Path::new(copy).join("keygate.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
        }
    }

    /// Everything the store holds at rest, as bytes (its files, or a dump
    /// of its database).
    pub fn store_bytes(&self) -> Vec<u8> {
        match &self.pg {
            Some(url) => {
                let o = Command::new(pg_tool("pg_dump")).arg(url).output().unwrap();
                assert!(o.status.success(), "pg_dump: {o:?}");
                o.stdout
            }
            None => {
                let mut v = Vec::new();
                for f in std::fs::read_dir(&self.store).unwrap() {
                    v.extend(std::fs::read(f.unwrap().path()).unwrap_or_default());
                }
                v
            }
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("keygate").unwrap();
        c.env("KEYGATE_STORE", self.store_arg())
            .env("KEYGATE_SEAL_KEY_FILE", self.seal_key_file())
            .env("KEYGATE_ACTOR", "tester")
            .env_remove("KEYGATE_NOW")
            .env_remove("KEYGATE_DANGEROUS_NOW");
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

/// A PostgreSQL client program of the newest installed server.
pub fn pg_tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

/// Says loudly that a test does not apply to the PostgreSQL run, and why.
pub fn sqlite_only(test: &str, why: &str) -> bool {
    if on_postgres() {
        eprintln!("SKIPPED on PostgreSQL: {test}: {why}");
        return true;
    }
    false
}

pub fn db(e: &Env) -> rusqlite::Connection {
    assert!(
        e.pg.is_none(),
        "an SQLite-only helper on a PostgreSQL store"
    );
    rusqlite::Connection::open(e.store.join("keygate.db")).unwrap()
}

/// A minimal HTTP/1.1 GET: status and lower-cased headers.
pub fn http_get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    s.write_all(format!("{req}\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let h = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, h, body.to_string())
}

/// Starts `keygate serve` (poll 200 ms, scope invoices:read, trust pinned
/// from a copy of the published trust.kgt, /healthz and /metrics on
/// [`metrics_port`]) on the artifact source `args`; returns its port once it
/// accepts connections. `salt` keeps two tests' ports apart.
pub fn start_serve(e: &Env, salt: u32, args: &[&std::ffi::OsStr]) -> (u16, Running) {
    // Below the ephemeral range (32768+), so no client socket takes it.
    let port = 10000 + ((std::process::id() + salt * 101) % 11000) as u16;
    let pinned = e.root.join(format!("pinned-{salt}.kgt"));
    if !pinned.exists() {
        std::fs::copy(e.out.join("trust.kgt"), &pinned).unwrap();
    }
    let child = e
        .cmd()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{}", metrics_port(port)),
            "--poll",
            "200ms",
        ])
        .arg("--trust")
        .arg(&pinned)
        .args(["--scope", "invoices:read"])
        .args(args)
        // A child left running by a failed test must not hold the test
        // harness's output pipe open.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    (port, Running(child))
}

/// A server process, killed and reaped when dropped: a failed assertion
/// leaves nothing running (nor holding the test harness's pipes).
pub struct Running(pub std::process::Child);

impl Running {
    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The metrics listener of the serve on `port`.
pub fn metrics_port(port: u16) -> u16 {
    port + 11000
}

/// Waits until something accepts connections on `port` (10 s at most).
pub fn wait_listening(port: u16) {
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The status the serve on `port` answers for `key` as a bearer token.
pub fn bearer_status(port: u16, key: &str) -> u16 {
    http_get(
        port,
        "/auth",
        &[("Authorization", &format!("Bearer {key}"))],
    )
    .0
}

/// `keygate api` on `port`, publishing into `e.out` after `delay`, stopped
/// when dropped.
pub fn spawn_publishing_api(e: &Env, port: u16, delay: &str) -> Running {
    let child = e
        .cmd()
        .args([
            "api",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--publish-to",
        ])
        .arg(&e.out)
        .args(["--publish-delay", delay])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    Running(child)
}

/// POSTs to `ports` in turn, starting at `first`, until one answers with
/// something other than a failure to reach it or a 5xx (instances are being
/// killed and restarted meanwhile); the same `Idempotency-Key` every time.
pub fn post_until_answered(
    ports: &[u16],
    first: usize,
    admin: &str,
    path: &str,
    idem: &str,
    body: &str,
) -> (u16, Value) {
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let mut n = first;
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{path}: no answer in 60 s"
        );
        let port = ports[n % ports.len()];
        n += 1;
        let r = ureq::post(&format!("http://127.0.0.1:{port}{path}"))
            .timeout(Duration::from_secs(10))
            .set("Authorization", &format!("Bearer {admin}"))
            .set("Idempotency-Key", idem)
            .send_string(body);
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(s, r)) if s < 500 => r,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let status = resp.status();
        let v: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
        return (status, v);
    }
}
