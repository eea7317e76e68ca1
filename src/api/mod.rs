//! The `api` role: the read side. Serves the aggregates of the compacted aggregates topic
//! (held in memory, latest value per key) and accepts manual transcode requests, which it
//! turns into `live2vod.TranscodeRequested` events for the fold.
//!
//! Library entry for the demo and tests: [`start`] with a [`Config`] and a bound listener.
pub mod command;
pub mod console;
mod handler;
pub mod listing;
mod reader;
pub mod store;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;
use rdkafka::producer::Producer;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::http::Health;
use crate::kafka::admin::{ensure_topics, AdminError};
use crate::kafka::producer::idempotent_producer;
use crate::kafka::KafkaArgs;

pub use handler::{router, ApiError, ApiState};
pub use reader::ReaderError;
pub use store::{SnapshotDecoder, Store};

/// Options of `live2vod api`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address the HTTP API listens on.
    #[arg(long, env = "LIVE2VOD_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,

    /// Read aggregates from this topic instead of `<prefix>aggregates` (e.g. a topic rebuilt
    /// by `live2vod replay --to-topic`).
    #[arg(long, env = "LIVE2VOD_AGGREGATES_TOPIC")]
    pub aggregates_topic: Option<String>,

    /// How long a transcode request waits for the broker's acknowledgement before 503.
    #[arg(long, env = "LIVE2VOD_ACK_TIMEOUT_MS", default_value_t = 3000)]
    pub ack_timeout_ms: u64,

    /// Serve `/healthz`, `/readyz` and `/metrics` on this address instead of on `--listen`.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Policy file (the fold's): `POST .../transcode` answers 409 with the reason when it
    /// refuses the request, and the console greys the button. Without it the api accepts
    /// every request and the fold decides.
    #[arg(long, env = "LIVE2VOD_POLICY", value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,

    /// Operator token: when set, the console at `/`, `/v1/console/*` and `POST .../transcode`
    /// need it (Bearer header, or the console's login). The JSON GETs stay open.
    #[arg(long, env = "LIVE2VOD_OPERATOR_TOKEN", hide_env_values = true, value_parser = secret)]
    pub operator_token: Option<crate::vod::client::Secret>,
}

/// Secrets parse into [`crate::vod::client::Secret`] so that `Debug` never shows them.
fn secret(s: &str) -> Result<crate::vod::client::Secret, String> {
    Ok(crate::vod::client::Secret::new(s))
}

/// Everything an api needs, independent of the command line.
#[derive(Clone)]
pub struct Config {
    pub kafka: KafkaArgs,
    /// Topic to read aggregates from (default `<prefix>aggregates`).
    pub aggregates_topic: Option<String>,
    /// Snapshot bytes -> API JSON.
    pub decoder: SnapshotDecoder,
    pub ack_timeout: Duration,
    /// Readiness: flipped once the aggregates topic was read up to its end at start.
    pub health: Health,
    /// Mount `/healthz`, `/readyz`, `/metrics` on the API listener too.
    pub serve_ops: bool,
    /// Operator token of the console and the POST (`None`: open).
    pub operator_token: Option<crate::vod::client::Secret>,
    /// Policy manual requests are checked against (`None`: all accepted; the fold decides).
    pub policy: Option<crate::domain::Policy>,
}

impl Config {
    /// Defaults of the command line, with the temporary JSON decoder (see
    /// [`store::default_decoder`]).
    pub fn new(kafka: KafkaArgs) -> Self {
        Config {
            kafka,
            aggregates_topic: None,
            decoder: store::default_decoder(),
            ack_timeout: Duration::from_millis(3000),
            health: Health::default(),
            serve_ops: true,
            operator_token: None,
            policy: None,
        }
    }
}

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

/// A running api.
pub struct ApiHandle {
    addr: SocketAddr,
    health: Health,
    store: Store,
    caught_up: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
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
        self.health.clone()
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
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .map_err(|e| anyhow::anyhow!("api task: {e}"))?
    }

    /// Serves until `signal` resolves (then shuts down) or the server fails.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = signal => self.shutdown().await,
            r = &mut self.task => r.map_err(|e| anyhow::anyhow!("api task: {e}"))?,
        }
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
    let (fatal_tx, fatal_rx) = watch::channel::<Option<String>>(None);
    let state = ApiState::new(handler::Inner {
        store: store.clone(),
        decoder: cfg.decoder.clone(),
        producer: producer.clone(),
        callbacks_topic: topics.callbacks.clone(),
        ack_timeout: cfg.ack_timeout,
        instance: format!("api:{}", crate::relay::hostname()),
        caught_up: caught_rx.clone(),
        fatal: fatal_tx,
        console: console::Console::new(cfg.operator_token.clone(), cfg.policy.clone()),
    });
    let mut app = router(state);
    if cfg.serve_ops {
        app = crate::http::ops_router(cfg.health.clone()).merge(app);
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let health = cfg.health.clone();
    let task_health = health.clone();
    let task = tokio::spawn(async move {
        let fatal_watch = fatal_rx.clone();
        let served = crate::http::serve_on(listener, app, async move {
            let mut fatal_rx = fatal_watch;
            tokio::select! {
                _ = stop_rx => {}
                _ = fatal_rx.wait_for(Option::is_some) => {}
            }
            task_health.set_ready(false);
        })
        .await;
        let _ = stop_reader_tx.send(true);
        let _ = reader_task.await;
        let flushed = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
            .await
            .map_err(|e| anyhow::anyhow!("flush task: {e}"))?;
        if let Err(e) = flushed {
            tracing::warn!(error = %e, "producer flush at shutdown did not complete");
        }
        tracing::info!("api stopped");
        if let Some(reason) = fatal_rx.borrow().clone() {
            anyhow::bail!("the Kafka producer hit a fatal error ({reason}); restart the api");
        }
        served
    });
    tracing::info!(%addr, topic = %aggregates, console = %format!("http://{addr}/"),
        operator_token = cfg.operator_token.is_some(), policy = cfg.policy.is_some(),
        "api serving; loading aggregates");
    Ok(ApiHandle {
        addr,
        health,
        store,
        caught_up: caught_rx,
        stop: Some(stop_tx),
        task,
    })
}

/// Runs the role until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    let mut cfg = Config::new(args.kafka.clone());
    cfg.aggregates_topic = args.aggregates_topic.clone();
    cfg.ack_timeout = Duration::from_millis(args.ack_timeout_ms);
    cfg.serve_ops = args.metrics_listen.is_none();
    cfg.operator_token = args.operator_token.clone();
    if let Some(path) = &args.policy {
        cfg.policy = Some(crate::fold::load_policy(Some(path))?);
    }
    if let Some(addr) = args.metrics_listen {
        crate::http::spawn_ops_listener(addr, cfg.health.clone()).await?;
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let handle = start(cfg, listener).await?;
    handle.run_until(crate::http::shutdown_signal()).await
}
