//! How every role runs: one handle type ([`RoleHandle`]: readiness, graceful shutdown,
//! run-until-signal-or-fatal), the one way the HTTP roles (relay, api) serve and stop
//! ([`Server`]), and the one way a role's `run` wires the ops endpoints and the signals
//! ([`run_with_ops`], [`bind`]).
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{Health, ServeLimits};

/// A running role: its task, its readiness and its stop signal. `T` is what the role reports
/// when it ends (the fold's counters; nothing for the others).
pub struct RoleHandle<T = ()> {
    name: &'static str,
    health: Health,
    stop: watch::Sender<bool>,
    ended: watch::Receiver<bool>,
    task: JoinHandle<anyhow::Result<T>>,
}

impl<T: Send + 'static> RoleHandle<T> {
    /// Spawns `run`, the role's body. It must end soon after `stop` (whose receivers the
    /// role took from the same channel) turns true, and may end earlier on a fatal error.
    pub fn spawn(
        name: &'static str,
        health: Health,
        stop: watch::Sender<bool>,
        run: impl Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> Self {
        let (ended_tx, ended) = watch::channel(false);
        let task = tokio::spawn(async move {
            let r = run.await;
            let _ = ended_tx.send(true);
            r
        });
        RoleHandle {
            name,
            health,
            stop,
            ended,
            task,
        }
    }

    /// The role's readiness flag.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Asks the role to stop (it finishes the work in flight first).
    pub fn request_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Whether the role's task has ended (stopped, or on its own after a fatal error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Resolves once the role's task has ended; then [`wait`](Self::wait) returns at once.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|e| *e).await;
    }

    /// Ends the task where it is (for crash tests); [`wait`](Self::wait) then reports it.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Waits until the role's task ends; readiness falls.
    pub async fn wait(self) -> anyhow::Result<T> {
        let name = self.name;
        let r = self.task.await;
        self.health.set_ready(false);
        r.map_err(|e| anyhow::anyhow!("{name} task: {e}"))?
    }

    /// Stops the role gracefully and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<T> {
        self.request_shutdown();
        self.wait().await
    }

    /// Runs until `signal` resolves (then shuts down gracefully) or the role ends on its own
    /// (a fatal error: its result is returned, so the process exits and is restarted).
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<T> {
        tokio::select! {
            _ = signal => {}
            _ = self.ended() => {}
        }
        self.shutdown().await
    }
}

/// Binds a role's listener with an error naming the address and what it is for.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))
}

/// The `run` of a role with its own ops listener (`/healthz`, `/readyz`, `/metrics` on
/// `metrics_listen`): installs the metrics, serves them, starts the role (a signal during the
/// start ends it cleanly with `None`), runs it until SIGTERM/SIGINT or its own end, then
/// stops the ops listener.
pub async fn run_with_ops<T: Send + 'static>(
    metrics_listen: SocketAddr,
    health: Health,
    start: impl Future<Output = anyhow::Result<RoleHandle<T>>>,
) -> anyhow::Result<Option<T>> {
    crate::metrics::install();
    let listener = bind(metrics_listen, "--metrics-listen").await?;
    let (ops_stop, mut ops_rx) = watch::channel(false);
    let ops = tokio::spawn(crate::http::serve_on(
        listener,
        crate::http::ops_router(health),
        async move {
            let _ = ops_rx.wait_for(|s| *s).await;
        },
    ));
    let result = tokio::select! {
        h = start => match h {
            Ok(h) => h.run_until(crate::http::shutdown_signal()).await.map(Some),
            Err(e) => Err(e),
        },
        _ = crate::http::shutdown_signal() => Ok(None),
    };
    let _ = ops_stop.send(true);
    let _ = ops.await;
    result
}

/// The `run` of an HTTP role (relay, api): metrics installed, the ops routes on
/// `metrics_listen` if given (else the role mounts them on its own listener), the role's
/// listener bound; the caller starts the role on it and calls
/// [`RoleHandle::run_until`] with [`crate::http::shutdown_signal`].
pub async fn http_role_listener(
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    health: &Health,
) -> anyhow::Result<TcpListener> {
    crate::metrics::install();
    if let Some(addr) = metrics_listen {
        crate::http::spawn_ops_listener(addr, health.clone()).await?;
    }
    TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))
}

/// An HTTP role that writes to Kafka (relay, api): how it serves, and how it stops (on
/// shutdown, or when its producer hit a fatal error): stop accepting, finish the requests in
/// flight, run `after_serve`, flush the producer, report the fatal error if there was one.
pub(crate) struct Server {
    pub name: &'static str,
    pub listener: TcpListener,
    pub app: Router,
    pub limits: ServeLimits,
    pub health: Health,
    pub producer: FutureProducer,
    /// Set (to the reason) by the request handlers when the producer hit a fatal error.
    pub fatal: watch::Receiver<Option<String>>,
}

impl Server {
    /// Spawns the server; `after_serve` runs once the last connection closed (e.g. stopping
    /// a reader), before the producer is flushed.
    pub fn spawn(self, after_serve: impl Future<Output = ()> + Send + 'static) -> RoleHandle {
        let Server {
            name,
            listener,
            app,
            limits,
            health,
            producer,
            fatal,
        } = self;
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let task_health = health.clone();
        let mut fatal_watch = fatal.clone();
        let run = async move {
            let served = crate::http::serve_on_with(
                listener,
                app,
                async move {
                    tokio::select! {
                        _ = stop_rx.wait_for(|s| *s) => {}
                        _ = fatal_watch.wait_for(Option::is_some) => {}
                    }
                    task_health.set_ready(false);
                },
                limits,
            )
            .await;
            after_serve.await;
            // Whatever is still queued (including records whose requests timed out) gets its
            // chance to reach the broker before the process ends.
            let flushed =
                tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
                    .await
                    .map_err(|e| anyhow::anyhow!("flush task: {e}"))?;
            if let Err(e) = flushed {
                tracing::warn!(error = %e, "producer flush at shutdown did not complete");
            }
            tracing::info!("{name} stopped");
            if let Some(reason) = fatal.borrow().clone() {
                anyhow::bail!(
                    "the Kafka producer hit a fatal error ({reason}); restart the {name}"
                );
            }
            served
        };
        RoleHandle::spawn(name, health, stop_tx, run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_stops_the_role_and_readiness_falls() {
        let health = Health::default();
        health.set_ready(true);
        let (tx, mut rx) = watch::channel(false);
        let h = RoleHandle::spawn("test", health.clone(), tx, async move {
            let _ = rx.wait_for(|s| *s).await;
            Ok(7)
        });
        assert!(!h.is_finished());
        assert_eq!(h.shutdown().await.expect("clean"), 7);
        assert!(!health.is_ready());
    }

    #[tokio::test]
    async fn run_until_returns_when_the_role_fails_on_its_own() {
        let (tx, _rx) = watch::channel(false);
        let h: RoleHandle = RoleHandle::spawn("test", Health::default(), tx, async {
            anyhow::bail!("fatal")
        });
        let r = h.run_until(std::future::pending::<()>()).await;
        assert_eq!(r.expect_err("fails").to_string(), "fatal");
    }
}
