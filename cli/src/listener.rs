//! The hardened HTTP/1 accept loop `keygate serve` and `keygate api` share:
//! a connection cap (extra connections are closed at once and counted),
//! accept errors (EMFILE included) waited out, a bounded request head, a
//! header read timeout that also covers idle keep-alive, and a lifetime after
//! which each connection is shut down gracefully.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};

/// The largest request head (request line + headers) read.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// How long one connection is kept (proxies and clients keep connections
/// alive and reconnect when one is closed).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Serves `listener` forever with `service` (a hyper service, cloned per
/// connection), at most `cap` connections at once; connections over the cap
/// are closed at once and counted in `shed`. `who` names the server in logs.
pub(crate) async fn serve<S, B>(
    who: &'static str,
    listener: tokio::net::TcpListener,
    cap: usize,
    header_timeout: Duration,
    shed: Arc<AtomicU64>,
    service: S,
) where
    S: hyper::service::Service<Request<Incoming>, Response = hyper::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(cap.max(1)));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("{who}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            shed.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            // No connection holds its slot forever (a client that stops
            // reading our answers): after its lifetime it is shut down
            // gracefully — a request in flight is answered first — and cut
            // if even that stalls.
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(header_timeout, conn).await;
                }
            }
            drop(permit);
        });
    }
}

/// Binds a TCP listener on an `IP:port` address.
pub(crate) async fn bind(addr: &str) -> crate::Res<tokio::net::TcpListener> {
    let a: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| crate::input(format!("listen {addr}: {e}")))?;
    tokio::net::TcpListener::bind(a)
        .await
        .map_err(|e| crate::input(format!("listen {addr}: {e}")))
}
