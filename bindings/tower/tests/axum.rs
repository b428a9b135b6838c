//! The layer in a real axum server on 127.0.0.1, called over HTTP by a hyper
//! client: every answer of the gateway contract, what the handler sees, the
//! extractor, a reload under a running server, and the metrics.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::routing;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use keygate::{
    build_bundle, build_update, ApiKey, Artifact, KeyId, Name, Prefix, RecordSpec, Signer,
    SnapshotBuilder, Status, UpdateSpec,
};
use keygate_tower::{Keygate, Principal};

const PREFIX: &str = "acme_live";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Fixture {
    signer: Signer,
    valid: ApiKey,
    deprecated: ApiKey,
    revoked: ApiKey,
    reader: ApiKey,
    universe: Vec<KeyId>,
}

fn keyset() -> Name {
    Name::new("acme").unwrap()
}

/// A published keyset in `dir`: trust, a snapshot, an update (none revoked).
fn publish(dir: &Path) -> Fixture {
    let signer = Signer::dangerous_from_seed(&[7; 32]);
    let t = now();
    let f = Fixture {
        valid: ApiKey::generate(PREFIX).unwrap(),
        deprecated: ApiKey::generate(PREFIX).unwrap(),
        revoked: ApiKey::generate(PREFIX).unwrap(),
        reader: ApiKey::generate(PREFIX).unwrap(),
        universe: Vec::new(),
        signer,
    };
    let mut b = SnapshotBuilder::new(keyset(), Prefix::new(PREFIX).unwrap(), 1, t - 60)
        .valid_until(t + 86_400);
    let mut records = vec![
        RecordSpec::active(
            f.valid.digest(),
            "billing-service",
            &["invoices:read", "invoices:write"],
        ),
        RecordSpec::active(f.revoked.digest(), "leaky", &["invoices:read"]),
        RecordSpec::active(f.reader.digest(), "search-indexer", &["search:read"]),
    ];
    let mut d = RecordSpec::active(f.deprecated.digest(), "mobile-app", &["invoices:read"]);
    d.status = Status::Deprecated;
    d.deprecated_at = Some(t - 3600);
    d.sunset_at = Some(t + 7 * 86_400);
    records.push(d);
    let mut gone = RecordSpec::active(ApiKey::generate(PREFIX).unwrap().digest(), "x", &[]);
    gone.status = Status::Revoked;
    records.push(gone);
    let universe: Vec<KeyId> = records.iter().map(|r| r.digest.key_id()).collect();
    for r in records {
        b.push(r);
    }
    let snapshot = b.build(&f.signer).unwrap();
    let trust = build_bundle(&keyset(), 1, t - 60, &[f.signer.trusted()], &[&f.signer]);
    std::fs::write(dir.join(Artifact::Trust.file_name()), trust).unwrap();
    std::fs::write(dir.join(Artifact::Snapshot.file_name()), snapshot).unwrap();
    let f = Fixture { universe, ..f };
    write_update(dir, &f, 1, &[]);
    f
}

fn write_update(dir: &Path, f: &Fixture, seq: u64, revoked: &[KeyId]) {
    let t = now();
    let spec = UpdateSpec {
        keyset: keyset(),
        base_version: 1,
        sequence: seq,
        created_at: t,
        valid_until: t + 3600,
    };
    let update = build_update(&spec, &f.universe, revoked, &f.signer).unwrap();
    // Renamed into place, as `keygate publish` does.
    let tmp = dir.join(".revocations.tmp");
    std::fs::write(&tmp, update).unwrap();
    std::fs::rename(tmp, dir.join(Artifact::Revocations.file_name())).unwrap();
}

async fn serve(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> Got {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .uri(path)
        .header("host", "127.0.0.1");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(port: u16, path: &str, key: Option<&str>) -> Got {
    match key {
        Some(k) => get_with(port, path, &[("authorization", &format!("Bearer {k}"))]).await,
        None => get_with(port, path, &[]).await,
    }
}

fn header(g: &Got, name: &str) -> String {
    g.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// What the handler saw: the extractor and the request's headers.
async fn invoices(p: Principal, headers: http::HeaderMap) -> String {
    format!(
        "principal={} scopes={} header={} auth={} api-key={} deprecated={}",
        p.name(),
        p.scopes().collect::<Vec<_>>().join(","),
        headers
            .get("x-keygate-principal")
            .map_or("-", |v| v.to_str().unwrap()),
        headers.contains_key("authorization"),
        headers.contains_key("x-api-key"),
        p.deprecated(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_through_a_real_axum_server() {
    let dir = tempfile::tempdir().unwrap();
    let f = publish(dir.path());
    let keygate = Keygate::from_dir(dir.path()).unwrap();
    let metrics = keygate.clone();
    // `/invoices` is under both layers (the router-wide one added after it
    // wraps it too): its scope is checked behind a layer that already took
    // the key headers away.
    let app = Router::new()
        .route("/invoices", routing::get(invoices))
        .route_layer(keygate.require("invoices:read"))
        .route(
            "/any",
            routing::get(|p: Principal| async move { p.name().to_string() }),
        )
        .route_layer(keygate.layer())
        .route(
            "/metrics",
            routing::get(move || async move { metrics.metrics() }),
        )
        .route(
            "/unguarded",
            routing::get(|p: Principal| async move { p.name().to_string() }),
        );
    drop(keygate);
    let port = serve(app).await;

    let g = get(port, "/invoices", Some(f.valid.expose_secret())).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(
        g.body,
        "principal=billing-service scopes=invoices:read,invoices:write header=billing-service auth=false api-key=false deprecated=false"
    );
    // Under two layers a request is verified once (the inner layer checks
    // its scope on the Principal the outer one left).
    let valid_count = |m: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(r#"keygate_verify_total{outcome="valid"} "#))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    let before = valid_count(&get(port, "/metrics", None).await.body);
    for _ in 0..3 {
        let g = get(port, "/invoices", Some(f.valid.expose_secret())).await;
        assert_eq!(g.status, 200);
    }
    let after = valid_count(&get(port, "/metrics", None).await.body);
    assert_eq!(after - before, 3, "each request verified once");
    let g = get_with(port, "/invoices", &[("x-api-key", f.valid.expose_secret())]).await;
    assert_eq!(g.status, 200, "X-API-Key: {}", g.body);
    assert!(g.body.contains("api-key=false"), "{}", g.body);
    // A client's own principal header never reaches the handler.
    let g = get_with(
        port,
        "/invoices",
        &[
            (
                "authorization",
                &format!("Bearer {}", f.valid.expose_secret()),
            ),
            ("x-keygate-principal", "admin"),
            ("x_keygate_principal", "admin"),
        ],
    )
    .await;
    assert!(g.body.contains("header=billing-service"), "{}", g.body);

    let g = get(port, "/invoices", Some(f.deprecated.expose_secret())).await;
    assert_eq!(g.status, 200);
    assert!(g.body.ends_with("deprecated=true"), "{}", g.body);
    assert!(
        header(&g, "deprecation").starts_with('@'),
        "{:?}",
        g.headers
    );
    assert!(header(&g, "sunset").ends_with("GMT"), "{:?}", g.headers);

    let g = get(port, "/invoices", None).await;
    assert_eq!(g.status, 401);
    assert_eq!(header(&g, "www-authenticate"), r#"Bearer realm="keygate""#);
    let g = get(port, "/invoices", Some(f.revoked.expose_secret())).await;
    assert!(
        g.status == 200,
        "revoked only by the update that comes later: {}",
        g.status
    );
    let g = get(port, "/invoices", Some("acme_live_nope")).await;
    assert_eq!(g.status, 401);
    assert!(header(&g, "www-authenticate").contains("malformed"));
    let g = get(port, "/invoices", Some(f.reader.expose_secret())).await;
    assert_eq!(g.status, 403);
    assert!(header(&g, "www-authenticate").contains(r#"error="insufficient_scope""#));
    // Another route, no scope required: the same key is good there.
    let g = get(port, "/any", Some(f.reader.expose_secret())).await;
    assert_eq!((g.status, g.body.as_str()), (200, "search-indexer"));
    let g = get_with(
        port,
        "/any",
        &[
            (
                "authorization",
                &format!("Bearer {}", f.valid.expose_secret()),
            ),
            ("x-api-key", f.reader.expose_secret()),
        ],
    )
    .await;
    assert_eq!(g.status, 400, "two different keys");
    // The extractor on a route without the layer is a server mistake.
    let g = get(port, "/unguarded", Some(f.valid.expose_secret())).await;
    assert_eq!(g.status, 500);

    // A revocation published while the server runs is in force within the
    // poll interval (1 s) plus a margin.
    write_update(dir.path(), &f, 2, &[f.revoked.digest().key_id()]);
    let t0 = Instant::now();
    loop {
        let g = get(port, "/invoices", Some(f.revoked.expose_secret())).await;
        if g.status == 401 {
            assert!(header(&g, "www-authenticate").contains("revoked"));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(2500),
            "revocation not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A damaged update changes nothing.
    std::fs::write(
        dir.path().join(Artifact::Revocations.file_name()),
        b"KGR garbage",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        get(port, "/invoices", Some(f.valid.expose_secret()))
            .await
            .status,
        200
    );
    assert_eq!(
        get(port, "/invoices", Some(f.revoked.expose_secret()))
            .await
            .status,
        401
    );

    let m = get(port, "/metrics", None).await.body;
    assert!(
        m.lines()
            .any(|l| l.starts_with(r#"keygate_verify_total{outcome="valid"} "#)),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l
            .starts_with(r#"keygate_artifact_refused_total{artifact="revocations"} "#)
            && !l.ends_with(" 0")),
        "the damaged update is counted: {m}"
    );
    for k in [&f.valid, &f.revoked, &f.reader] {
        assert!(!m.contains(k.expose_secret()), "no key in the metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_loaded_is_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let f = publish(dir.path());
    std::fs::remove_file(dir.path().join(Artifact::Snapshot.file_name())).unwrap();
    let keygate = Keygate::from_dir(dir.path()).unwrap();
    let app = Router::new()
        .route("/invoices", routing::get(invoices))
        .route_layer(keygate.require("invoices:read"));
    let port = serve(app).await;
    let g = get(port, "/invoices", Some(f.valid.expose_secret())).await;
    assert_eq!(g.status, 503, "{}", g.body);
    assert_eq!(header(&g, "retry-after"), "5");
}

#[test]
fn a_bad_anchor_or_setting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Keygate::from_dir(dir.path()),
        Err(keygate_tower::Error::Anchor(_))
    ));
    assert!(matches!(
        Keygate::from_url(b"not a trust bundle", "http://127.0.0.1:1/"),
        Err(keygate_tower::Error::Refused(_))
    ));
    publish(dir.path());
    let anchor = std::fs::read(dir.path().join("trust.kgt")).unwrap();
    let bad = keygate_tower::Options {
        principal_header: "bad header".into(),
        ..Default::default()
    };
    assert!(Keygate::new(&anchor, keygate::Origin::dir(dir.path()), bad).is_err());
    let k = Keygate::from_dir(dir.path()).unwrap();
    assert!(
        !format!("{k:?}").contains("acme_live_"),
        "Debug holds no key"
    );
}
