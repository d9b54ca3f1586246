//! The HTTPS accept loop: TCP → TLS 1.3 (bounded handshake time) → HTTP/1.1 or HTTP/2 served by
//! an axum `Router`, with a per-connection [`ConnectionInfo`] (exporter value, peer, id) in every
//! request's extensions, a cap on concurrent connections and graceful shutdown.
//!
//! No peer holds a connection slot for longer than the limits allow, however slowly it sends
//! ([`ServeOptions`]): the TLS handshake, an HTTP/1 request head, a whole request body, and any
//! stretch with no request in flight (HTTP/1 keep-alive and HTTP/2 alike) each have a deadline;
//! a connection past one is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::Instrument;

use crate::deadline::{Activity, DeadlineBody, TrackedBody};
use crate::tls::{EXPORTER_LEN, exporter};

/// What handlers learn about the connection a request arrived on. Extract it with
/// `axum::Extension<ConnectionInfo>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The TLS exporter value of this connection (label `EXPORTER-confidant-session`, no
    /// context, 32 bytes); session evidence binds to it.
    pub exporter: [u8; EXPORTER_LEN],
    /// The client's address.
    pub peer: SocketAddr,
    /// Unique per server, increasing.
    pub conn_id: u64,
}

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for an HTTP/1 request head.
    pub header_read_timeout: Duration,
    /// Time allowed for a whole request body, from its request head.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 and HTTP/2).
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// On shutdown, how long open connections may take to finish in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::with_timeouts(&ServerTimeouts::default())
    }
}

impl ServeOptions {
    /// The defaults with `timeouts` applied.
    pub fn with_timeouts(timeouts: &ServerTimeouts) -> Self {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Self {
            handshake_timeout: secs(timeouts.handshake_secs),
            header_read_timeout: secs(timeouts.header_secs),
            body_read_timeout: secs(timeouts.body_secs),
            idle_timeout: secs(timeouts.idle_secs),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// `[server.timeouts]` of both services' configuration: how long a peer may take, in seconds
/// (each at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTimeouts {
    /// The TLS handshake.
    pub handshake_secs: u64,
    /// An HTTP/1 request head (request line and headers).
    pub header_secs: u64,
    /// A whole request body, from its head.
    pub body_secs: u64,
    /// A connection with no request in flight.
    pub idle_secs: u64,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            handshake_secs: 10,
            header_secs: 30,
            body_secs: 30,
            idle_secs: 60,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Could not bind the address.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Could not read the bound address back.
    #[error("local address: {0}")]
    LocalAddr(#[source] std::io::Error),
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A token that stops the server when cancelled (e.g. from a signal handler).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Stops accepting, lets open connections finish (up to the drain timeout) and waits.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.stopped().await;
    }

    /// Waits until the server has stopped (after its token was cancelled).
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

/// Binds `addr` and serves `app` over TLS with `tls` (see [`crate::tls::server_config`]).
pub async fn serve(
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    app: Router,
    options: ServeOptions,
) -> Result<ServerHandle, ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_listener(listener, tls, app, options)
}

/// Serves on an already bound listener. Must be called inside a tokio runtime.
pub fn serve_listener(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    options: ServeOptions,
) -> Result<ServerHandle, ServeError> {
    let local_addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    let token = CancellationToken::new();
    let server = Server {
        acceptor: TlsAcceptor::from(tls),
        app,
        options,
        token: token.clone(),
        http: http_builder(&options),
    };
    let task = tokio::spawn(server.run(listener));
    tracing::info!(%local_addr, "serving HTTPS");
    Ok(ServerHandle {
        local_addr,
        token,
        task,
    })
}

fn http_builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        // Pings find peers that vanished without closing (a live idle peer answers them: the
        // idle timeout bounds that one).
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

struct Server {
    acceptor: TlsAcceptor,
    app: Router,
    options: ServeOptions,
    token: CancellationToken,
    http: auto::Builder<TokioExecutor>,
}

impl Server {
    async fn run(self, listener: TcpListener) {
        let this = Arc::new(self);
        let limit = Arc::new(Semaphore::new(this.options.max_connections.max(1)));
        let tracker = TaskTracker::new();
        let mut next_id: u64 = 0;
        loop {
            let permit = tokio::select! {
                () = this.token.cancelled() => break,
                p = limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                () = this.token.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // e.g. EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            next_id += 1;
            let span = tracing::debug_span!("conn", conn_id = next_id, %peer);
            tracker.spawn(
                this.clone()
                    .connection(stream, peer, next_id, permit)
                    .instrument(span),
            );
        }
        drop(listener);
        tracker.close();
        if tokio::time::timeout(this.options.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = tracker.len(),
                "connections still open after drain timeout"
            );
        }
        tracing::info!("server stopped");
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        conn_id: u64,
        _permit: OwnedSemaphorePermit,
    ) {
        let _ = stream.set_nodelay(true);
        let handshake =
            tokio::time::timeout(self.options.handshake_timeout, self.acceptor.accept(stream));
        let tls = tokio::select! {
            () = self.token.cancelled() => return,
            r = handshake => match r {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            },
        };
        let exporter = match exporter(tls.get_ref().1) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "TLS exporter unavailable");
                return;
            }
        };
        let info = ConnectionInfo {
            exporter,
            peer,
            conn_id,
        };
        let app = self.app.clone();
        let activity = Arc::new(Activity::default());
        let in_flight = Arc::clone(&activity);
        let body_limit = self.options.body_read_timeout;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(info);
            let guard = in_flight.begin();
            let req = req.map(|b| Body::new(DeadlineBody::new(b, body_limit)));
            let response = app.clone().oneshot(req);
            async move {
                let resp = response.await?;
                Ok::<_, std::convert::Infallible>(
                    resp.map(|b| Body::new(TrackedBody::new(b, guard))),
                )
            }
        });
        let conn = self.http.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(conn);
        let idle = self.options.idle_timeout;
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = self.token.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            () = idle_expired(&activity, idle) => {
                tracing::debug!(idle_secs = idle.as_secs(), "closing idle connection");
                conn.as_mut().graceful_shutdown();
                // A peer that does not take part in the shutdown is dropped.
                match tokio::time::timeout(self.options.drain_timeout, conn).await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with error");
        }
    }
}

/// Completes once the connection has had no request in flight for `limit`.
async fn idle_expired(activity: &Activity, limit: Duration) {
    let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        if activity.idle_for().is_some_and(|d| d >= limit) {
            return;
        }
        tokio::time::sleep(tick).await;
    }
}
