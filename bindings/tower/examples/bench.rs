//! The layer's cost per request (issue 20): one axum server, the same
//! hello-world route without auth (`/plain`) and behind the keygate layer
//! (`/keygate`); `bench.sh` drives both with wrk.
//! Usage: bench PUBLISH_DIR LISTEN
use axum::{routing::get, Router};
use keygate_tower::Keygate;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("publish directory")?;
    let listen = args.next().ok_or("listen address")?;
    let keygate = Keygate::from_dir(&dir)?;
    let app = Router::new()
        .route("/keygate", get(|| async { "hello\n" }))
        .route_layer(keygate.require("invoices:read"))
        .route("/plain", get(|| async { "hello\n" }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
