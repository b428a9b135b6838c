//! The layer's cost per request (issue 20): one axum server, the same
//! hello-world route without auth (`/plain`), behind a layer that only
//! passes the request on (`/passthrough`: what any tower layer costs in
//! axum's routing, the peer of keygate's own work) and behind the keygate
//! layer (`/keygate`); `bench.sh` drives them with wrk.
//! Usage: bench PUBLISH_DIR LISTEN
use std::task::{Context, Poll};

use axum::{routing::get, Router};
use keygate_tower::Keygate;

/// A layer whose service forwards every request as it is.
#[derive(Clone)]
struct PassThrough;

#[derive(Clone)]
struct Pass<S>(S);

impl<S> tower_layer::Layer<S> for PassThrough {
    type Service = Pass<S>;
    fn layer(&self, inner: S) -> Pass<S> {
        Pass(inner)
    }
}

impl<S: tower_service::Service<R>, R> tower_service::Service<R> for Pass<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, req: R) -> S::Future {
        self.0.call(req)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("publish directory")?;
    let listen = args.next().ok_or("listen address")?;
    let keygate = Keygate::from_dir(&dir)?;
    let app = Router::new()
        .route(
            "/keygate",
            get(|| async { "hello\n" }).route_layer(keygate.require("invoices:read")),
        )
        .route(
            "/passthrough",
            get(|| async { "hello\n" }).route_layer(PassThrough),
        )
        .route("/plain", get(|| async { "hello\n" }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
