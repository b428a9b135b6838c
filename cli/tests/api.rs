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
    let reply = Reply {
        status: resp.status(),
        content_type: resp.header("content-type").unwrap_or_default().to_string(),
        replayed: resp.header("idempotent-replayed").is_some(),
        www: resp.header("www-authenticate").map(String::from),
        body: resp.into_string().unwrap_or_default(),
    };
    conforms(method, path, &reply);
    reply
}

/// The API's own OpenAPI document.
fn openapi() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(include_str!("../src/openapi.json")).unwrap())
}

/// Checks an answer against the OpenAPI document: the path, method, status
/// and content type are documented, and a JSON body is valid under the
/// documented schema.
fn conforms(method: &str, path: &str, r: &Reply) {
    let doc = openapi();
    let path = path.split('?').next().unwrap();
    let matches = |template: &str| {
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
    };
    let Some(template) = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find(|t| matches(t))
    else {
        // The fallback: a problem for any path the API does not have.
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (404, "application/problem+json"),
            "{path}"
        );
        return;
    };
    let m = method.to_lowercase();
    let op = &doc["paths"][template][&m];
    if op.is_null() {
        // A method the path does not take.
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (405, "application/problem+json"),
            "{method} {template}"
        );
        return;
    }
    let status = r.status.to_string();
    assert!(
        !op["responses"][&status].is_null(),
        "{method} {template} answered {status}, which openapi.json does not list: {}",
        r.body
    );
    let ct = r.content_type.split(';').next().unwrap().trim();
    let media = &op["responses"][&status]["content"][ct];
    assert!(
        !media.is_null(),
        "{method} {template} {status}: content type {ct} not in openapi.json"
    );
    if !ct.ends_with("json") {
        return;
    }
    // A JSON pointer, as a URI fragment.
    let esc = |s: &str| {
        s.replace('~', "~0")
            .replace('/', "~1")
            .replace('{', "%7B")
            .replace('}', "%7D")
    };
    let mut root = doc.clone();
    root["$ref"] = Value::String(format!(
        "#/paths/{}/{m}/responses/{status}/content/{}/schema",
        esc(template),
        esc(ct)
    ));
    let validator = jsonschema::validator_for(&root).unwrap();
    let body: Value = serde_json::from_str(&r.body).unwrap();
    if let Err(e) = validator.validate(&body) {
        panic!(
            "{method} {template} {status}: the answer does not match openapi.json: {e}\n{}",
            r.body
        );
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
        &call(&api, "GET", "/v1/keys?limit=0", Some(&writer), None, ""),
        400,
        "invalid-request",
    );
    assert_problem(
        &call(&api, "GET", "/v1/keys?bogus=1", Some(&writer), None, ""),
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
    // The retried issue ran again and was undone when its record found
    // the first answer: one issue in the chain, not two.
    let issues = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "issue" && a["principal"] == "billing-service")
        .count();
    assert_eq!(issues, 1, "{audit}");

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

/// Cursor pagination, the audit log followed by `after`, keys falling due,
/// imports by digest, a revoke-only key, metrics and the OpenAPI document
/// (every answer here, as in every test of this file, is checked against it).
#[test]
fn pages_audit_due_import_metrics_and_the_openapi_document() {
    let e = env();
    e.init();
    let writer = admin_key(&e, "dashboard", &["keys:write", "keys:read"]);
    let revoker = admin_key(&e, "incident-bot", &["keys:revoke"]);
    let auditor = admin_key(&e, "auditor", &["audit:read", "metrics:read"]);
    let api = start_api(&e, 5, &[]);

    // 7 keys, listed 3 at a time: every key once, newest first, and a page
    // stays put while a key is added meanwhile.
    let mut ids = Vec::new();
    for n in 0..7 {
        let body = format!(r#"{{"principal":"p{n}","expires_in":86400}}"#);
        let r = call(&api, "POST", "/v1/keys", Some(&writer), None, &body);
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.json()["key_id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/keys?limit=3&cursor={c}"),
            None => "/v1/keys?limit=3".into(),
        };
        let page = call(&api, "GET", &path, Some(&writer), None, "").json();
        pages += 1;
        if pages == 1 {
            // Added after the first page: it sorts before it, never into a later one.
            let r = call(
                &api,
                "POST",
                "/v1/keys",
                Some(&writer),
                None,
                r#"{"principal":"late"}"#,
            );
            assert_eq!(r.status, 201);
        }
        for k in page["keys"].as_array().unwrap() {
            seen.push(k["key_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want = ids.clone();
    want.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, want, "each key exactly once");
    assert_problem(
        &call(&api, "GET", "/v1/keys?cursor=zz", Some(&writer), None, ""),
        400,
        "invalid-request",
    );

    // Following the audit log two entries at a time.
    let mut after = 0u64;
    let mut entries = 0;
    loop {
        let path = format!("/v1/audit?after={after}&limit=2");
        let page = call(&api, "GET", &path, Some(&auditor), None, "").json();
        let got = page["entries"].as_array().unwrap();
        if got.is_empty() {
            assert_eq!(page["next_after"], Value::Null);
            break;
        }
        assert!(got.len() <= 2);
        for en in got {
            assert_eq!(en["seq"].as_u64().unwrap(), after + 1, "no gap, no repeat");
            after += 1;
            entries += 1;
        }
        assert_eq!(page["next_after"], after);
    }
    assert!(entries >= 9, "init, 3 admin keys, 8 issues: {entries}");

    // Due within 2 days: the seven keys with a one-day lifetime.
    let due = call(&api, "GET", "/v1/due?within=2d", Some(&writer), None, "").json();
    let due_ids: Vec<&str> = due["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(due_ids.len(), 7, "{due}");
    assert_problem(
        &call(&api, "GET", "/v1/due?within=soon", Some(&writer), None, ""),
        400,
        "invalid-request",
    );

    // Import by digest: the key itself never travels.
    let secret = "acme_live_1ImportedKeyImportedKeyImported01";
    let digest: String = keygate::Digest::of(secret.as_bytes())
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let body =
        format!(r#"{{"keys":[{{"principal":"legacy","digest":"{digest}","scopes":["read"]}}]}}"#);
    let r = call(&api, "POST", "/v1/keys:import", Some(&writer), None, &body);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["keys"][0]["imported"], true);
    // The same digest again: refused, nothing imported twice.
    assert_problem(
        &call(&api, "POST", "/v1/keys:import", Some(&writer), None, &body),
        409,
        "conflict",
    );
    for bad in [
        r#"{"keys":[]}"#,
        r#"{"keys":[{"principal":"x","digest":"00"}]}"#,
    ] {
        assert_problem(
            &call(&api, "POST", "/v1/keys:import", Some(&writer), None, bad),
            400,
            "invalid-request",
        );
    }
    let legacy = call(
        &api,
        "GET",
        "/v1/keys?principal=legacy",
        Some(&writer),
        None,
        "",
    )
    .json();
    assert_eq!(legacy["keys"].as_array().unwrap().len(), 1);

    // A revoke-only key revokes, and cannot issue.
    let path = format!("/v1/keys/{}/revoke", ids[0]);
    let r = call(
        &api,
        "POST",
        &path,
        Some(&revoker),
        None,
        r#"{"reason":"leaked"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_problem(
        &call(
            &api,
            "POST",
            "/v1/keys",
            Some(&revoker),
            None,
            r#"{"principal":"x"}"#,
        ),
        403,
        "insufficient-scope",
    );

    // Metrics: Prometheus text, for metrics:read only.
    let m = call(&api, "GET", "/metrics", Some(&auditor), None, "");
    assert_eq!(m.status, 200);
    assert!(m.content_type.starts_with("text/plain"));
    assert!(
        m.body.contains("keygate_issuer_keys{status=\"revoked\""),
        "{}",
        m.body
    );
    assert_problem(
        &call(&api, "GET", "/metrics", Some(&writer), None, ""),
        403,
        "insufficient-scope",
    );

    // The document served is the one the answers were checked against.
    let doc = call(&api, "GET", "/v1/openapi.json", None, None, "");
    assert_eq!(doc.status, 200);
    assert_eq!(&doc.json(), openapi());
    assert_eq!(doc.json()["openapi"], "3.1.0");

    // Errors the HTTP stack makes itself are problems too.
    assert_problem(
        &call(&api, "DELETE", "/v1/keys", Some(&writer), None, ""),
        405,
        "method-not-allowed",
    );
}

/// With nothing changing, a full snapshot is still rebuilt every
/// --snapshot-every, so published artifacts never run out of --valid-for.
#[test]
fn snapshots_are_rebuilt_on_a_schedule() {
    let e = env();
    e.init();
    // No admin key yet: the API refuses to start (no unauthenticated mode).
    let o = e
        .cmd()
        .args(["api", "--listen", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no admin key"));
    admin_key(&e, "ops", &["publish"]);
    let out = e.out.to_str().unwrap().to_string();
    let _api = start_api(
        &e,
        4,
        &[
            "--publish-to",
            &out,
            "--publish-delay",
            "0s",
            "--snapshot-every",
            "1s",
        ],
    );
    let version = || {
        let b = std::fs::read(e.out.join("snapshot.kgs")).ok()?;
        let trust = std::fs::read(e.out.join("trust.kgt")).ok()?;
        let trust = keygate::TrustSet::from_chain(&trust).ok()?;
        Some(
            keygate::SnapshotView::new(&b, &trust)
                .ok()?
                .header()
                .version,
        )
    };
    let t0 = Instant::now();
    while version().unwrap_or(0) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "snapshot v{:?} after 10 s",
            version()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
