//! The HTTP server: what `axum::serve` does (HTTP/1.1, graceful shutdown), plus what it cannot
//! be told: a client has [`HEADER_READ_TIMEOUT`] to send a request's line and headers, or the
//! connection is closed (a half-sent request no longer holds a connection open), and every
//! request carries its peer's address ([`axum::extract::ConnectInfo<SocketAddr>`], through
//! [`Router::into_make_service_with_connect_info`]).

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::{Service, ServiceExt};

/// How long a client has to send a request's line and headers once the server waits for them:
/// after the connection is accepted, and between the requests of a kept-alive connection (so it
/// is also how long an idle connection stays open). Then the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets the requests
/// in flight finish (idle connections are closed at once) and returns.
pub async fn serve<F>(listener: TcpListener, app: Router, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            // Reap the connections that ended, so the set holds the open ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let service = match ServiceExt::<SocketAddr>::ready(&mut make_service).await {
            Ok(ready) => ready.call(peer).await,
            Err(never) => match never {},
        };
        let service = match service {
            Ok(service) => TowerToHyperService::new(service),
            Err(never) => match never {},
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                // The value only ever turns true: a change is the signal.
                _ = stopping.changed() => connection.as_mut().graceful_shutdown(),
            }
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// As `axum::serve`: a connection that failed before it was accepted is skipped; anything else
/// (such as too many open files) is logged and accepting pauses a second.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
