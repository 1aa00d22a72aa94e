//! The listener: HTTP/1.1 and HTTP/2 (prior knowledge) on one port, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Gateway;
use crate::handler::handle;

/// The next connection, or `None` once `shutdown` is cancelled. A failed accept (EMFILE and friends) is
/// logged and retried after a short pause instead of spinning. `server` names the listener in the log.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    server: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(error) => {
                tracing::warn!(server, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves until `shutdown` is cancelled, then stops accepting and lets in-flight requests and streams finish
/// for up to `grace`. Returns once every connection has closed (or the grace period ran out) and every
/// background drain has ended.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, shutdown: CancellationToken, grace: Duration) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    // `server.max_connections`: past it, new connections wait in the kernel's accept queue until one closes.
    let slots = Arc::new(Semaphore::new(gateway.config.server.max_connections.max(1)));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let Some((stream, peer)) = accept(&listener, &shutdown, "proxy").await else { break };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let service = service_fn(move |request| {
            let gateway = gateway.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(gateway, request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(grace_s = grace.as_secs(), "stopped accepting; waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    gateway.tasks.close();
    if tokio::time::timeout(grace, gateway.tasks.wait()).await.is_err() {
        tracing::warn!(pending = gateway.tasks.len(), "background drains still running at exit");
    }
}
