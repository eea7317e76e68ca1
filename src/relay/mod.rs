//! The `relay` role: VOD's callback endpoint. Verifies the signature, keeps the raw body and
//! answers 200 only once the broker acknowledged the write (see DESIGN.md, HTTP contract).
//!
//! Library entry for the demo and tests: [`start`] with a [`Config`] and a bound listener,
//! then [`RelayHandle::shutdown`] (or [`RelayHandle::run_until`]).
mod config;
mod handler;

use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};
use tokio::net::TcpListener;

use crate::http::Health;
use crate::kafka::admin::{ensure_topics, AdminError};
use crate::kafka::producer::idempotent_producer;
use crate::role::{RoleHandle, Server};

pub use config::{
    Args, Auth, AuthArgs, Config, DEFAULT_ACK_TIMEOUT_MS, DEFAULT_BODY_TIMEOUT_MS, DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMESTAMP_WINDOW_SECS,
};

pub use handler::{
    router, RelayError, RelayState, HEADER_EVENT_TYPE, HEADER_KEY_VERSION, HEADER_RECEIVED_AT_MS,
    HEADER_RELAY_ID, UNROUTED_KEY,
};

/// The relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("topics: {0}")]
    Topics(#[from] AdminError),
    #[error("the producer cannot reach the cluster at {brokers}: {error}")]
    Unreachable { brokers: String, error: String },
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
}

/// A running relay: the role's [`RoleHandle`] and the address it serves callbacks on.
pub struct RelayHandle {
    addr: SocketAddr,
    role: RoleHandle,
}

impl RelayHandle {
    /// The address the callback endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/callbacks/vod`.
    pub fn callback_endpoint(&self) -> String {
        format!("http://{}/callbacks/vod", self.addr)
    }

    /// The relay's readiness flag.
    pub fn health(&self) -> Health {
        self.role.health()
    }

    /// The role's handle (for composing roles, e.g. `run`).
    pub fn role(&self) -> &RoleHandle {
        &self.role
    }

    /// Stops accepting, finishes in-flight requests, flushes the producer.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.role.shutdown().await
    }

    /// Serves until `signal` resolves (then shuts down gracefully) or the server fails.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        self.role.run_until(signal).await
    }
}

/// Creates the topics if needed, connects the producer, then serves callbacks on `listener`.
/// Returns once the relay is ready.
pub async fn start(cfg: Config, listener: TcpListener) -> Result<RelayHandle, StartError> {
    if matches!(cfg.auth, Auth::Disabled) {
        tracing::warn!("!!! callback signature checks are DISABLED (--no-auth): anyone who can reach this port can inject events; never run like this in production !!!");
    }
    ensure_topics(&cfg.kafka).await?;
    let producer = idempotent_producer(&cfg.kafka)?;
    let topic = cfg.kafka.topics().callbacks;
    wait_connected(&producer, &topic, &cfg.kafka.brokers).await?;
    let addr = listener.local_addr()?;
    let (fatal_tx, fatal) = tokio::sync::watch::channel::<Option<String>>(None);
    let state = RelayState::new(&cfg, producer.clone(), topic, fatal_tx);
    let mut app = router(state);
    if cfg.serve_ops {
        app = app.merge(crate::http::ops_router(cfg.health.clone()));
    }
    let role = Server {
        name: "relay",
        listener,
        app,
        limits: cfg.limits,
        health: cfg.health.clone(),
        producer,
        fatal,
    }
    .spawn(async {});
    cfg.health.set_ready(true);
    tracing::info!(%addr, relay_id = %cfg.relay_id, "relay ready");
    Ok(RelayHandle { addr, role })
}

async fn wait_connected(
    producer: &FutureProducer,
    topic: &str,
    brokers: &str,
) -> Result<(), StartError> {
    let producer = producer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map(|_| ())
    })
    .await
    .map_err(|e| StartError::Unreachable {
        brokers: brokers.to_string(),
        error: e.to_string(),
    })?
    .map_err(|e| StartError::Unreachable {
        brokers: brokers.to_string(),
        error: e.to_string(),
    })
}

/// Runs the role until SIGTERM/SIGINT (or a fatal producer error).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::from_args(&args, Health::default(), args.metrics_listen.is_none())?;
    let listener =
        crate::role::http_role_listener(args.listen, args.metrics_listen, &cfg.health).await?;
    start(cfg, listener)
        .await?
        .run_until(crate::http::shutdown_signal())
        .await
}
