//! The `worker` role: executes commands from `<prefix>commands` against the VOD OpenAPI and
//! feeds the outcomes back as `live2vod.*` events into `<prefix>callbacks`, once in effect.
//!
//! Once in effect, without Kafka transactions:
//! - a ledger of finished command ids (compacted `<prefix>worker-ledger`) is read fully before
//!   any command runs and appended after the outcome event is acknowledged; a command already
//!   in it is skipped;
//! - offsets are stored only after the ledger write is acknowledged, and per partition only up
//!   to the lowest unfinished record;
//! - a crash between the VOD call and the ledger write re-executes the command:
//!   `SubmitTranscodeJobs` carries `SessionId = command_id`, which VOD de-duplicates for 7 days,
//!   and the other commands only read.
pub mod config;
pub mod consumer;
pub mod execute;
pub mod ledger;
pub mod outcome;
pub mod tracker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::http::Health;
use crate::kafka::admin::{ensure_topics, AdminError};
use crate::kafka::producer::idempotent_producer;
use crate::role::RoleHandle;
use crate::vod::client::{VodClient, VodError};
pub use config::{Args, VodArgs, WorkerConfig};
use consumer::LoopSettings;
use execute::Executor;
use ledger::{Ledger, LedgerError};

/// The worker could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Topics(#[from] AdminError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Vod(#[from] VodError),
    #[error("worker task: {0}")]
    Task(String),
}

/// A running worker: the role's [`RoleHandle`] and what tests and the demo read of it.
pub struct WorkerHandle {
    role: RoleHandle,
    ledger: Arc<Ledger>,
    in_flight: Arc<AtomicUsize>,
}

impl WorkerHandle {
    /// Readiness (true once the ledger is loaded and commands are consumed).
    pub fn health(&self) -> Health {
        self.role.health()
    }

    /// The role's handle (for composing roles, e.g. `run`).
    pub fn role(&self) -> &RoleHandle {
        &self.role
    }

    /// Command records received and not finished yet (running, retrying, or waiting for a
    /// compose deadline).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Command ids known finished (loaded, tailed or executed here).
    pub fn finished_commands(&self) -> usize {
        self.ledger.len()
    }

    /// Whether `command_id` is in the ledger as seen by this instance.
    pub fn is_finished(&self, command_id: &str) -> bool {
        self.ledger.contains(command_id)
    }

    /// Asks the worker to stop (no new commands; running ones finish within the timeout).
    pub fn request_shutdown(&self) {
        self.role.request_shutdown();
    }

    /// Stops the worker and waits until offsets are committed and the producer flushed.
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        self.request_shutdown();
        self.wait().await
    }

    /// Waits until the worker stops (after [`request_shutdown`](Self::request_shutdown)).
    pub async fn wait(self) -> Result<(), WorkerError> {
        self.role
            .wait()
            .await
            .map_err(|e| WorkerError::Task(format!("{e:#}")))
    }
}

/// Starts a worker: creates missing topics, loads the ledger (then `health` turns ready),
/// joins the consumer group and executes commands until [`WorkerHandle::shutdown`].
pub async fn start(cfg: WorkerConfig, health: Health) -> Result<WorkerHandle, WorkerError> {
    let vod = VodClient::new(cfg.vod.clone())?;
    ensure_topics(&cfg.kafka).await?;
    let topics = cfg.kafka.topics();
    let producer = idempotent_producer(&cfg.kafka)?;

    let ledger = Ledger::new();
    let reader = ledger::load(&cfg.kafka, &ledger, cfg.ledger_idle_timeout).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    // Offsets are stored by hand once a command is done (see the tracker) and committed by
    // librdkafka's auto-commit, on revoke and at shutdown.
    let (consumer, rebalance_rx) = crate::kafka::consumer::group(
        &cfg.kafka,
        &cfg.group_id,
        crate::kafka::consumer::Commits::Stored,
        &[&topics.commands],
    )?;

    let mut exec = Executor::new(
        vod,
        producer.clone(),
        topics.clone(),
        ledger.clone(),
        cfg.concurrency,
        stop_rx.clone(),
        cfg.retry_max_backoff,
    );
    exec.dlq_max_message = crate::kafka::dlq::max_message_bytes(&cfg.kafka);
    let exec = Arc::new(exec);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let settings = LoopSettings {
        topic: topics.commands.clone(),
        max_pending: cfg.max_pending,
        shutdown_timeout: cfg.shutdown_timeout,
        in_flight: in_flight.clone(),
    };
    let tail = tokio::spawn(ledger::tail(reader, ledger.clone(), stop_rx.clone()));
    let loop_stop = stop_rx.clone();
    let run = async move {
        consumer::run_loop(consumer, rebalance_rx, exec, loop_stop, settings).await;
        // Outcome and ledger writes were awaited; flushing covers DLQ stragglers.
        let flushed = tokio::task::spawn_blocking(move || {
            rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10))
        })
        .await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "producer flush at shutdown failed");
        }
        let _ = tail.await;
        tracing::info!("worker stopped");
        Ok(())
    };
    health.set_ready(true);
    tracing::info!(
        group = %cfg.group_id,
        commands = %topics.commands,
        vod = %cfg.vod.endpoint_url(),
        finished_commands = ledger.len(),
        "worker started"
    );
    Ok(WorkerHandle {
        role: RoleHandle::spawn("worker", health, stop_tx, run),
        ledger,
        in_flight,
    })
}

/// Runs the role until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = WorkerConfig::try_from(&args)?;
    let health = Health::default();
    crate::role::run_with_ops(args.metrics_listen, health.clone(), async {
        Ok(start(cfg, health).await?.role)
    })
    .await
    .map(drop)
}
