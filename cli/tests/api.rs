//! `keygate api` as a client sees it: admin keys and scopes, RFC 9457
//! problems, Idempotency-Key, limits, and publishing on its own (a
//! revocation in the published update within a second).

mod common;

use std::time::{Duration, Instant};

use assert_cmd::assert::OutputAssertExt;
use common::{env, Env, Running};
use serde_json::Value;

struct Api {
    port: u16,
    _child: Running,
}

/// Below the ephemeral range and apart from `start_serve`'s ports.
fn start_api(e: &Env, salt: u32, args: &[&str]) -> Api {
    let port = 5000 + ((std::process::id() * 7 + salt * 131) % 5000) as u16;
    let child = e
        .cmd()
        .args(["api", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(port);
    Api {
        port,
        _child: Running(child),
    }
}

struct Reply {
    status: u16,
    content_type: String,
    replayed: bool,
    www: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn call(
    api: &Api,
    method: &str,
    path: &str,
    key: Option<&str>,
    idem: Option<&str>,
    body: &str,
) -> Reply {
    let mut r = ureq::request(method, &format!("http://127.0.0.1:{}{path}", api.port));
    if let Some(k) = key {
        r = r.set("Authorization", &format!("Bearer {k}"));
    }
    if let Some(i) = idem {
        r = r.set("Idempotency-Key", i);
    }
    let resp = match if method == "GET" {
        r.call()
    } else {
        r.send_string(body)
    } {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    Reply {
        status: resp.status(),
        content_type: resp.header("content-type").unwrap_or_default().to_string(),
        replayed: resp.header("idempotent-replayed").is_some(),
        www: resp.header("www-authenticate").map(String::from),
        body: resp.into_string().unwrap_or_default(),
    }
}

fn admin_key(e: &Env, principal: &str, scopes: &[&str]) -> String {
    let mut args = vec!["admin-key", "--principal", principal];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    e.json(&args)["key"].as_str().unwrap().to_string()
}

/// The outcome of `key` against what is published in `e.out` now.
fn published_outcome(e: &Env, key: &str) -> Option<keygate::Outcome> {
    let read = |f: &str| std::fs::read(e.out.join(f)).ok();
    let v = keygate::Verifier::new(&read("trust.kgt")?).ok()?;
    v.install_snapshot(&read("snapshot.kgs")?).ok()?;
    if let Some(r) = read("revocations.kgr") {
        let _ = v.install_revocations(&r);
    }
    Some(v.verify_now(key, None).outcome)
}

fn assert_problem(r: &Reply, status: u16, slug: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    let p = r.json();
    assert_eq!(
        p["type"],
        format!("https://keygate.dev/problems/{slug}"),
        "{p}"
    );
    assert_eq!(p["status"], status);
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn admin_keys_scopes_problems_idempotency_and_publishing() {
    let e = env();
    e.init();
    let writer = admin_key(&e, "dashboard", &["keys:write", "keys:read"]);
    let reader = admin_key(&e, "support", &["keys:read"]);
    let publisher = admin_key(&e, "ops", &["publish", "audit:read"]);
    let out = e.out.to_str().unwrap().to_string();
    let api = start_api(&e, 1, &["--publish-to", &out, "--publish-delay", "200ms"]);

    // Who may do what.
    let r = call(&api, "GET", "/v1/keys", None, None, "");
    assert_problem(&r, 401, "unauthorized");
    assert_eq!(r.www.as_deref(), Some("Bearer realm=\"keygate-api\""));
    assert_problem(
        &call(&api, "GET", "/v1/keys", Some("kgadmin_nope"), None, ""),
        401,
        "unauthorized",
    );
    let r = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&reader),
        None,
        r#"{"principal":"x"}"#,
    );
    assert_problem(&r, 403, "insufficient-scope");
    assert!(r.www.unwrap().contains("insufficient_scope"));
    assert_problem(
        &call(&api, "GET", "/v1/audit", Some(&writer), None, ""),
        403,
        "insufficient-scope",
    );
    assert_eq!(
        call(&api, "GET", "/v1/audit", Some(&publisher), None, "").status,
        200
    );
    assert_eq!(call(&api, "GET", "/healthz", None, None, "").status, 200);

    // Bad input: a problem each, nothing changed.
    for body in [
        "{\"principal\":",
        "[]",
        r#"{"principal":"p","extra":1}"#,
        r#"{"principal":""}"#,
    ] {
        let r = call(&api, "POST", "/v1/keys", Some(&writer), None, body);
        assert_problem(&r, 400, "invalid-request");
    }
    let big = format!(r#"{{"principal":"{}"}}"#, "p".repeat(70 * 1024));
    assert_eq!(
        call(&api, "POST", "/v1/keys", Some(&writer), None, &big).status,
        413
    );
    assert_problem(
        &call(&api, "GET", "/v1/nope", Some(&writer), None, ""),
        404,
        "not-found",
    );
    assert_problem(
        &call(&api, "GET", "/v1/keys/zz", Some(&writer), None, ""),
        400,
        "invalid-request",
    );
    assert_problem(
        &call(
            &api,
            "GET",
            "/v1/keys/00000000000000000000000000000000",
            Some(&writer),
            None,
            "",
        ),
        404,
        "not-found",
    );
    assert_problem(
        &call(
            &api,
            "GET",
            "/v1/keys?status=bogus",
            Some(&writer),
            None,
            "",
        ),
        400,
        "invalid-request",
    );
    assert_problem(
        &call(&api, "GET", "/v1/keys?limit=5", Some(&writer), None, ""),
        400,
        "invalid-request",
    );
    let long_idem = "k".repeat(256);
    assert_problem(
        &call(
            &api,
            "POST",
            "/v1/keys",
            Some(&writer),
            Some(&long_idem),
            r#"{"principal":"x"}"#,
        ),
        400,
        "invalid-request",
    );
    // A client that never finishes its body holds its own connection only:
    // the store is not locked while a body is read, so others go on.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    std::io::Write::write_all(
        &mut slow,
        format!(
            "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {writer}\r\n\
             Content-Length: 1000\r\n\r\n{{\"principal\""
        )
        .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    assert_eq!(
        call(&api, "GET", "/v1/keys", Some(&reader), None, "").status,
        200
    );
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a stalled body blocked another caller"
    );
    drop(slow);
    let bad_idem = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&writer),
        Some("has space"),
        r#"{"principal":"x"}"#,
    );
    assert_problem(&bad_idem, 400, "invalid-request");
    let listed = call(&api, "GET", "/v1/keys", Some(&reader), None, "").json();
    assert_eq!(
        listed["keys"].as_array().unwrap().len(),
        0,
        "bad requests issued nothing"
    );

    // Issue, retried with the same Idempotency-Key: one key, the same answer.
    let body = r#"{"principal":"billing-service","scopes":["invoices:read"]}"#;
    let first = call(&api, "POST", "/v1/keys", Some(&writer), Some("req-1"), body);
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!first.replayed);
    let issued = first.json();
    let key = issued["key"].as_str().unwrap().to_string();
    assert!(issued["usable_at"].as_u64().is_some());
    let again = call(&api, "POST", "/v1/keys", Some(&writer), Some("req-1"), body);
    assert_eq!((again.status, again.replayed), (201, true));
    assert_eq!(again.json(), issued);
    let other = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&writer),
        Some("req-1"),
        r#"{"principal":"x"}"#,
    );
    assert_problem(&other, 422, "idempotency-key-reused");
    let listed = call(
        &api,
        "GET",
        "/v1/keys?principal=billing-service",
        Some(&reader),
        None,
        "",
    )
    .json();
    assert_eq!(
        listed["keys"].as_array().unwrap().len(),
        1,
        "a retry issued nothing twice"
    );
    let id = issued["key_id"].as_str().unwrap();
    let got = call(
        &api,
        "GET",
        &format!("/v1/keys/{id}"),
        Some(&reader),
        None,
        "",
    )
    .json();
    assert_eq!(got["principal"], "billing-service");
    assert!(got.get("key").is_none(), "the secret is shown once");

    // Published on its own: the new key reaches the artifacts.
    let t0 = Instant::now();
    while published_outcome(&e, &key) != Some(keygate::Outcome::Valid) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the new key was not published"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A revoke reaches the published update within a second.
    let r = call(
        &api,
        "POST",
        &format!("/v1/keys/{id}/revoke"),
        Some(&writer),
        Some("rev-1"),
        r#"{"reason":"leaked"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t0 = Instant::now();
    while published_outcome(&e, &key) != Some(keygate::Outcome::Revoked) {
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "revocation not published within 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "api: revoke -> published in {} ms",
        t0.elapsed().as_millis()
    );

    // Rotation through the API; the old key is deprecated.
    let k2 = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&writer),
        None,
        r#"{"principal":"mobile-app"}"#,
    )
    .json();
    let rot = call(
        &api,
        "POST",
        "/v1/principals/mobile-app/rotate",
        Some(&writer),
        None,
        r#"{"grace":3600}"#,
    );
    assert_eq!(rot.status, 201, "{}", rot.body);
    let rot = rot.json();
    assert_eq!(rot["deprecated"][0]["key_id"], k2["key_id"]);
    assert_ne!(rot["key"], k2["key"]);

    // "wait": "published": answered once the key is in the published artifacts.
    let t0 = Instant::now();
    let w = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&writer),
        None,
        r#"{"principal":"waiter","wait":"published"}"#,
    );
    assert_eq!(w.status, 201, "{}", w.body);
    let wk = w.json()["key"].as_str().unwrap().to_string();
    assert_eq!(
        published_outcome(&e, &wk),
        Some(keygate::Outcome::Valid),
        "answered before it was published"
    );
    eprintln!(
        "api: issue with wait=published answered in {} ms",
        t0.elapsed().as_millis()
    );
    let r = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&writer),
        None,
        r#"{"principal":"w","wait":"soon"}"#,
    );
    assert_problem(&r, 400, "invalid-request");

    // One key of a principal with a key per region: only that one rotates.
    let eu = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&writer),
        None,
        r#"{"principal":"regional","scopes":["a"]}"#,
    )
    .json();
    let us = call(
        &api,
        "POST",
        "/v1/keys",
        Some(&writer),
        None,
        r#"{"principal":"regional","scopes":["b"]}"#,
    )
    .json();
    let path = format!("/v1/keys/{}/rotate", eu["key_id"].as_str().unwrap());
    let one = call(&api, "POST", &path, Some(&writer), None, "{}");
    assert_eq!(one.status, 201, "{}", one.body);
    let one = one.json();
    assert_eq!(
        one["scopes"], eu["scopes"],
        "the new key takes the rotated key's scopes"
    );
    let dep: Vec<&Value> = one["deprecated"].as_array().unwrap().iter().collect();
    assert_eq!((dep.len(), &dep[0]["key_id"]), (1, &eu["key_id"]));
    let us_now = call(
        &api,
        "GET",
        &format!("/v1/keys/{}", us["key_id"].as_str().unwrap()),
        Some(&writer),
        None,
        "",
    )
    .json();
    assert_eq!(
        us_now["status"], "active",
        "the other region's key is untouched"
    );
    // The same from the CLI; a deprecated key cannot be rotated again.
    let cli = e.json(&["rotate", "--key-id", us["key_id"].as_str().unwrap()]);
    assert_eq!(cli["deprecated"][0]["key_id"], us["key_id"]);
    assert_problem(
        &call(&api, "POST", &path, Some(&writer), None, "{}"),
        404,
        "not-found",
    );

    // Publishing on demand needs its own scope.
    assert_problem(
        &call(&api, "POST", "/v1/publish", Some(&writer), None, ""),
        403,
        "insufficient-scope",
    );
    assert_eq!(
        call(&api, "POST", "/v1/publish", Some(&publisher), None, "").status,
        200
    );

    // The audit log names the admin key's principal as the actor.
    let audit = call(&api, "GET", "/v1/audit", Some(&publisher), None, "").json();
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["actor"] == "api:dashboard" && a["action"] == "revoke"));

    // No key secret at rest: not the issued keys, not in idempotency records.
    let bytes = e.store_bytes();
    for k in [&key, rot["key"].as_str().unwrap()] {
        assert!(
            !bytes.windows(k.len()).any(|w| w == k.as_bytes()),
            "the store holds a key"
        );
    }

    // Usage from the gateways' own counters: a fake gateway's /metrics says
    // the key deprecated by the rotation above is still in use.
    let dep_id = rot["deprecated"][0]["key_id"].as_str().unwrap().to_string();
    let gw = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let gw_port = gw.server_addr().to_ip().unwrap().port();
    let export = format!(
        "keygate_deprecated_key_uses_total{{key_id=\"{dep_id}\",principal=\"mobile-app\"}} 42\n\
         keygate_deprecated_key_last_seen_seconds{{key_id=\"{dep_id}\"}} 1767225600\n"
    );
    std::thread::spawn(move || {
        for req in gw.incoming_requests() {
            let _ = req.respond(tiny_http::Response::from_string(export.clone()));
        }
    });
    let gw_url = format!("http://127.0.0.1:{gw_port}/metrics");
    let scraping = start_api(
        &e,
        3,
        &[
            "--usage-from",
            &gw_url,
            "--usage-from",
            "http://127.0.0.1:9/metrics",
        ],
    );
    let u = call(&scraping, "GET", "/v1/usage", Some(&writer), None, "").json();
    let k = u["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == dep_id.as_str())
        .unwrap();
    assert_eq!(
        (k["uses"].as_u64(), k["last_seen"].as_u64()),
        (Some(42), Some(1_767_225_600)),
        "{u}"
    );
    let ok: Vec<bool> = u["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(
        ok,
        [true, false],
        "a gateway that is down is named, not fatal: {u}"
    );
    assert_problem(
        &call(&scraping, "GET", "/v1/usage", None, None, ""),
        401,
        "unauthorized",
    );

    // Without --publish-to there is nothing to wait for.
    let quiet = start_api(&e, 2, &[]);
    let r = call(
        &quiet,
        "POST",
        "/v1/keys",
        Some(&writer),
        None,
        r#"{"principal":"w","wait":"published"}"#,
    );
    assert_problem(&r, 409, "publishing-not-configured");

    // A revoked admin key is refused at once.
    let list = e.json(&["admin-key", "--list"]);
    let reader_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["principal"] == "support")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    e.cmd()
        .args(["admin-key", "--revoke", &reader_id])
        .assert()
        .success();
    assert_problem(
        &call(&api, "GET", "/v1/keys", Some(&reader), None, ""),
        401,
        "unauthorized",
    );
    e.cmd().args(["audit", "verify"]).assert().success();
}
