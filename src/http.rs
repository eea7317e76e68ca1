//! HTTP plumbing shared by the roles: health, readiness, metrics, graceful shutdown.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Default of `--metrics-listen` for the roles that always serve their own ops listener.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9464";

/// Readiness flag a role flips once it can do its work (e.g. state restored, topics exist).
#[derive(Clone, Default, Debug)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Serves the ops routes on their own listener (`--metrics-listen`) until the process ends.
pub async fn spawn_ops_listener(
    addr: SocketAddr,
    health: Health,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--metrics-listen): {e}"))?;
    Ok(tokio::spawn(serve_on(
        listener,
        ops_router(health),
        std::future::pending::<()>(),
    )))
}

/// `/healthz` (the process answers), `/readyz` (the role can do its work), `/metrics`.
pub fn ops_router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

/// Binds `addr` (clear error when taken) and serves `router` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    serve_on(listener, router, shutdown).await
}

/// Largest request head (request line and headers; 431 beyond it). VOD's are well under 1 KiB.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Read buffer of a connection: hyper's default (~400 KiB) times many slow connections adds up.
const MAX_BUF_BYTES: usize = 64 * 1024;

/// What every server allows its clients, so that slow or stuck clients (slowloris) cannot
/// hold connections and a graceful shutdown cannot wait on them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time a client has to send a request's head (request line and headers) once the server
    /// waits for one; an idle keep-alive connection is closed after it too. Without it, a
    /// client that sends a byte now and then holds its connection (and a shutdown) forever.
    pub header_timeout: Duration,
    /// Connections served at once; beyond it the server stops accepting (new clients wait in
    /// the listen backlog) until one closes.
    pub max_connections: usize,
}

impl ServeLimits {
    /// Default of `--header-timeout-ms`.
    pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
    /// Default of `--max-connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_timeout: Duration::from_millis(Self::DEFAULT_HEADER_TIMEOUT_MS),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on an already bound listener until `shutdown` resolves, with the default
/// [`ServeLimits`].
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_on_with(listener, router, shutdown, ServeLimits::default()).await
}

/// Serves `router` (HTTP/1.1) on an already bound listener until `shutdown` resolves, then
/// stops accepting, lets in-flight requests finish and returns once every connection closed.
///
/// Not `axum::serve`: it offers no header-read timeout and no connection cap.
pub async fn serve_on_with(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: accepting again at once would spin.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_header_size(MAX_HEAD_BYTES)
                .max_buf_size(MAX_BUF_BYTES);
            let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
            let served = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { stop.wait_for(|stopping| *stopping).await.map(|_| ()) } => {
                    // Closes at once when idle, after the current response otherwise.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "http: connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}
