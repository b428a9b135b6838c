use axum::{http::HeaderMap, routing::get, Router};
use keygate_tower::{Keygate, Principal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Where `keygate publish` writes, and where to listen.
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "/srv/keygate".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());

    // The anchor is pinned from the directory now; the snapshot and its
    // update are reloaded every second.
    let keygate = Keygate::from_dir(&dir)?;
    let metrics = keygate.clone();
    let app = Router::new()
        .route("/invoices/{id}", get(invoice))
        .route_layer(keygate.require("invoices:read"))
        .route("/metrics", get(move || async move { metrics.metrics() }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn invoice(p: Principal, headers: HeaderMap) -> String {
    // The principal reaches the handler; the key never does.
    let key = headers.contains_key("authorization") || headers.contains_key("x-api-key");
    format!(
        "principal={} auth={}\n",
        p.name(),
        if key { "set" } else { "-" }
    )
}
