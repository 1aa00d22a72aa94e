//! The admin listener: HTTP/1.1 with a deadline on the request head and on the body, and graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{AdminState, router_with};

/// Deadlines of the admin listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// From the first byte of a request (or of an idle connection's wait) to the end of its head; then the
    /// connection is closed. 10 s: an operator's tool sends its head at once.
    pub header_read_timeout: Duration,
    /// From the request head to the end of its body; then 408. 30 s: admin bodies are small JSON documents.
    pub body_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(30) }
    }
}

/// Serves the admin API with the default [`ServeOptions`] until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: CancellationToken) -> std::io::Result<()> {
    serve_with(listener, state, shutdown, ServeOptions::default()).await
}

/// Serves the admin API until `shutdown` is cancelled, then stops accepting and waits for the requests in
/// flight to finish (idle connections close at once).
pub async fn serve_with(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> std::io::Result<()> {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(listen = ?local, "tollgate admin listening");
    let router = router_with(state, &options);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let Some((stream, peer)) = tollgate_proxy::accept(&listener, &shutdown, "admin").await else { break };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
