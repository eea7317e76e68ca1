//! The `api` role: the read side. Serves the aggregates of the compacted aggregates topic
//! (held in memory, latest value per key) and accepts manual transcode requests, which it
//! turns into `live2vod.TranscodeRequested` events for the fold.
//!
//! Library entry for the demo and tests: [`start`] with a [`Config`] and a bound listener.
pub mod command;
mod config;
pub mod console;
mod decode;
mod handler;
pub mod index;
pub mod listing;
pub mod operator;
mod reader;
mod state;
pub mod store;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::{Health, ServeLimits};
use crate::kafka::admin::{ensure_topics, AdminError};
use crate::kafka::producer::idempotent_producer;
use crate::role::{RoleHandle, Server};

pub use config::{Args, Config, DEFAULT_ACK_TIMEOUT_MS, DEFAULT_LISTEN};

pub use handler::router;
pub use reader::ReaderError;
pub use state::{ApiError, ApiState};
pub use store::{SnapshotDecoder, Store};

/// The api could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("topics: {0}")]
    Topics(#[from] AdminError),
    #[error("aggregates: {0}")]
    Reader(#[from] ReaderError),
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
}

/// A running api: the role's [`RoleHandle`], its address and its in-memory aggregates.
pub struct ApiHandle {
    addr: SocketAddr,
    store: Store,
    caught_up: watch::Receiver<bool>,
    role: RoleHandle,
}

impl ApiHandle {
    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The api's readiness flag.
    pub fn health(&self) -> Health {
        self.role.health()
    }

    /// The role's handle (for composing roles, e.g. `run`).
    pub fn role(&self) -> &RoleHandle {
        &self.role
    }

    /// The in-memory aggregates (shared with the running api).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Resolves once the aggregates topic was read up to the end it had at start.
    pub async fn caught_up(&self) {
        let mut rx = self.caught_up.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Stops the server and the reader, flushes the producer.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.role.shutdown().await
    }

    /// Serves until `signal` resolves (then shuts down) or the server fails.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        self.role.run_until(signal).await
    }
}

/// Checks the topics, starts reading the aggregates topic and serves the API on `listener`.
/// Returns at once; readiness ([`ApiHandle::caught_up`], `/readyz`) follows the catch-up.
pub async fn start(cfg: Config, listener: TcpListener) -> Result<ApiHandle, StartError> {
    ensure_topics(&cfg.kafka).await?;
    let topics = cfg.kafka.topics();
    let aggregates = cfg
        .aggregates_topic
        .clone()
        .unwrap_or_else(|| topics.aggregates.clone());
    let (consumer, targets) = reader::assign(&cfg.kafka, &aggregates).await?;
    let producer = idempotent_producer(&cfg.kafka)?;
    let addr = listener.local_addr()?;
    let store = Store::with_index(cfg.decoder.clone());
    let (caught_tx, caught_rx) = watch::channel(false);
    let (stop_reader_tx, stop_reader_rx) = watch::channel(false);
    let reader_task = tokio::spawn(reader::run(
        consumer,
        targets,
        store.clone(),
        cfg.health.clone(),
        caught_tx,
        stop_reader_rx,
    ));
    let (fatal_tx, fatal) = watch::channel::<Option<String>>(None);
    let state = ApiState::new(state::Inner {
        store: store.clone(),
        decoder: cfg.decoder.clone(),
        producer: producer.clone(),
        callbacks_topic: topics.callbacks.clone(),
        ack_timeout: cfg.ack_timeout,
        instance: format!(
            "api:{}",
            crate::clock::hostname().unwrap_or_else(|| "relay".into())
        ),
        caught_up: caught_rx.clone(),
        fatal: fatal_tx,
        console: operator::Console::new(cfg.operator_token.clone(), cfg.policy.clone()),
    });
    let mut app = router(state);
    if cfg.serve_ops {
        app = crate::http::ops_router(cfg.health.clone()).merge(app);
    }
    let role = Server {
        name: "api",
        listener,
        app,
        limits: ServeLimits::default(),
        health: cfg.health.clone(),
        producer,
        fatal,
    }
    .spawn(async move {
        let _ = stop_reader_tx.send(true);
        let _ = reader_task.await;
    });
    tracing::info!(%addr, topic = %aggregates, console = %format!("http://{addr}/"),
        operator_token = cfg.operator_token.is_some(), policy = cfg.policy.is_some(),
        "api serving; loading aggregates");
    Ok(ApiHandle {
        addr,
        store,
        caught_up: caught_rx,
        role,
    })
}

/// Runs the role until SIGTERM/SIGINT (or a fatal producer error).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::from_args(&args)?;
    let listener =
        crate::role::http_role_listener(args.listen, args.metrics_listen, &cfg.health).await?;
    start(cfg, listener)
        .await?
        .run_until(crate::http::shutdown_signal())
        .await
}
