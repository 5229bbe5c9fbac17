//! Serving a router: the accept loop, one task per connection, the header read timeout.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::service::Service;

use super::router;
use super::tls::{TlsConfig, TlsListener};

/// How long a client may take to send a request's headers (from the connection's start, or
/// from the end of the previous request on a kept-alive connection) before the connection is
/// closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API with default settings on `listener` until the task is dropped or fails.
pub async fn serve(listener: TcpListener, service: Service) -> std::io::Result<()> {
    serve_router(listener, router(service)).await
}

/// Serves a router (e.g. from [`router_with`](super::router_with)) over plain HTTP/1.1 on `listener`: each
/// connection in a task of its own, its client address handed to the router (for the rate
/// limit), and closed if a request's headers take longer than [`HEADER_READ_TIMEOUT`].
pub async fn serve_router(listener: TcpListener, router: Router) -> std::io::Result<()> {
    serve_router_with(listener, router, None, HEADER_READ_TIMEOUT).await
}

/// Serves a router over TLS on `listener` (HTTP/1.1 inside TLS 1.2 or 1.3), otherwise as
/// [`serve_router`].
pub async fn serve_router_tls(
    listener: TcpListener,
    router: Router,
    tls: TlsConfig,
) -> std::io::Result<()> {
    serve_router_with(listener, router, Some(tls), HEADER_READ_TIMEOUT).await
}

/// Serves a router over TLS (`tls`) or plain HTTP (`None`) as [`serve_router`] does, closing a
/// connection whose request headers take longer than `header_read_timeout`.
pub async fn serve_router_with(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsConfig>,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    set_nodelay(&tcp);
                    let router = router.clone();
                    tokio::spawn(serve_connection(tcp, peer, router, header_read_timeout));
                }
                Err(e) => accept_error(e).await,
            }
        }
    };
    let mut listener = TlsListener::new(listener, tls);
    loop {
        let (stream, peer) = listener.accept().await;
        let router = router.clone();
        tokio::spawn(serve_connection(stream, peer, router, header_read_timeout));
    }
}

/// Serves one connection until the client closes it, breaks the protocol or is too slow to
/// send a request's headers.
async fn serve_connection<I>(io: I, peer: SocketAddr, router: Router, header_read_timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move { tower_service::Service::call(&mut router, request.map(Body::new)).await }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    // A broken or timed-out connection concerns only that client.
    let _ = connection.await;
}

/// Small request and response bodies: send them at once rather than wait for an ACK.
pub(super) fn set_nodelay(stream: &TcpStream) {
    // Only a latency optimisation; a socket that refuses it still works.
    let _ = stream.set_nodelay(true);
}

/// What axum's TCP listener does on an accept error: a connection that died before it was
/// accepted is skipped; anything else (out of file descriptors, say) is waited out for a second
/// rather than turned into a busy loop.
pub(super) async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if !matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
