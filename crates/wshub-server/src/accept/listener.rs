//! The TCP accept loop and HTTP/1 connection serving.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// After `stop`, how long idle keep-alive HTTP connections get to finish.
const HTTP_DRAIN: Duration = Duration::from_secs(1);
/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections until `stop`, then lets HTTP connections finish briefly.
/// Upgraded WebSocket connections are not tracked here: their sessions own them.
pub async fn accept_loop(listener: TcpListener, router: Router, handshake_timeout: Duration, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Events are small and latency matters more than packing segments.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let service = router.clone().map_request(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let stop = stop.clone();
        connections.spawn(serve_http(
            stream,
            peer,
            TowerToHyperService::new(service),
            handshake_timeout,
            stop,
        ));
    }
    connections.close();
    let _ = tokio::time::timeout(HTTP_DRAIN, connections.wait()).await;
}

async fn serve_http<S>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    service: S,
    handshake_timeout: Duration,
    stop: CancellationToken,
) where
    S: hyper::service::Service<http::Request<Incoming>, Response = axum::response::Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "http connection ended with an error");
    }
}
