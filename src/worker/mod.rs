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
pub mod consumer;
pub mod execute;
pub mod ledger;
pub mod outcome;
pub mod tracker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::http::Health;
use crate::kafka::admin::{ensure_topics, AdminError};
use crate::kafka::producer::idempotent_producer;
use crate::kafka::KafkaArgs;
use crate::vod::client::{RetryPolicy, Secret, VodClient, VodConfig, VodError};
use consumer::{LoopSettings, WorkerContext};
use execute::Executor;
use ledger::{Ledger, LedgerError};

const LONG_ABOUT: &str = "\
Execute commands against the Alibaba Cloud VOD OpenAPI and feed the outcomes back as events.

Consumes <prefix>commands in a consumer group (--group-id) and runs each command:
  SubmitTranscode  -> SubmitTranscodeJobs with SessionId = command id
                      -> live2vod.TranscodeSubmitted, or live2vod.TranscodeRejected on a
                         permanent VOD error (e.g. Forbidden.IllegalStatus)
  TrackCompose     -> at its deadline, GetVideoInfo -> live2vod.VideoInfoObserved
  RefreshPlayInfo  -> GetPlayInfo -> live2vod.PlayInfoResolved
Outcomes go to <prefix>callbacks keyed by VideoId; undecodable commands go to <prefix>dlq.

Once in effect: finished command ids are appended to the compacted <prefix>worker-ledger
after the outcome is acknowledged, and the ledger is read fully before any command runs, so
restarts, rebalances and duplicate commands skip finished work. Offsets are committed only
after the ledger write, per partition up to the lowest unfinished command. A crash between
the VOD call and the ledger write re-runs the command; VOD drops the repeated submission
because of its SessionId (7-day de-duplication), and the other commands only read.

Throttling, 5xx and timeouts are retried with jittered exponential backoff; a command that
still fails stays uncommitted and is retried later, never dropped.

SIGTERM: stop reading, finish running commands (--shutdown-timeout-secs), commit, exit.
/readyz turns ready once the ledger is loaded.

Every flag also reads its LIVE2VOD_* environment variable; pass the AccessKey secret through
LIVE2VOD_ACCESS_KEY_SECRET rather than the command line.";

/// Options of `live2vod worker`.
///
/// Consumes `<prefix>commands` in a consumer group, calls the Alibaba Cloud VOD OpenAPI
/// (SubmitTranscodeJobs, GetVideoInfo, GetPlayInfo) and writes the outcomes as `live2vod.*`
/// events to `<prefix>callbacks`. Finished command ids are kept on `<prefix>worker-ledger`, so
/// restarts, rebalances and duplicate commands never execute a command twice in effect.
#[derive(ClapArgs, Debug, Clone)]
#[command(after_long_help = LONG_ABOUT)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// VOD OpenAPI endpoint (RPC style). Default: `https://vod.<region>.aliyuncs.com/`.
    /// Point it at `live2vod sim` for tests and the demo.
    #[arg(long, env = "LIVE2VOD_VOD_ENDPOINT", value_name = "URL")]
    pub vod_endpoint: Option<String>,

    /// Region of the VOD service.
    #[arg(long, env = "LIVE2VOD_REGION", default_value = "cn-shanghai")]
    pub region: String,

    /// AccessKey id the requests are signed with (a RAM user allowed SubmitTranscodeJobs,
    /// GetVideoInfo and GetPlayInfo).
    #[arg(long, env = "LIVE2VOD_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: String,

    /// AccessKey secret. Prefer the env var over the flag (flags show in `ps`).
    #[arg(long, env = "LIVE2VOD_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: String,

    /// STS security token, when the AccessKey pair is temporary.
    #[arg(long, env = "LIVE2VOD_SECURITY_TOKEN", hide_env_values = true)]
    pub security_token: Option<String>,

    /// Consumer group of the workers; instances in one group share the partitions.
    #[arg(long, env = "LIVE2VOD_GROUP_ID", default_value = "live2vod-worker")]
    pub group_id: String,

    /// VOD calls running at once (commands waiting for a compose deadline do not count).
    #[arg(long, env = "LIVE2VOD_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,

    /// Commands held at once (running or waiting for their deadline) before reading pauses.
    #[arg(long, env = "LIVE2VOD_MAX_PENDING", default_value_t = 10_000)]
    pub max_pending: usize,

    /// Timeout of one VOD HTTP attempt, seconds.
    #[arg(long, env = "LIVE2VOD_VOD_TIMEOUT_SECS", default_value_t = 10)]
    pub vod_timeout_secs: u64,

    /// Attempts per VOD call for retryable errors (throttling, 5xx, timeouts), the first
    /// included; a command whose call still fails is retried later (it is never dropped).
    #[arg(long, env = "LIVE2VOD_VOD_MAX_ATTEMPTS", default_value_t = 5)]
    pub vod_max_attempts: u32,

    /// On SIGTERM, how long to wait for running commands before leaving them (uncommitted)
    /// to the next owner, seconds.
    #[arg(long, env = "LIVE2VOD_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Where `/healthz`, `/readyz` (ready once the ledger is loaded) and `/metrics` listen.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    pub metrics_listen: SocketAddr,
}

/// Everything [`start`] needs (built from [`Args`], or directly by the demo and tests).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub kafka: KafkaArgs,
    pub vod: VodConfig,
    pub group_id: String,
    pub concurrency: usize,
    pub max_pending: usize,
    pub shutdown_timeout: Duration,
    /// Cap of the pause between rounds of a command whose VOD call keeps failing retryably.
    pub retry_max_backoff: Duration,
    /// How long the ledger load may see no progress before start fails.
    pub ledger_idle_timeout: Duration,
}

impl WorkerConfig {
    /// A config with the defaults of the CLI.
    pub fn new(kafka: KafkaArgs, vod: VodConfig) -> Self {
        WorkerConfig {
            kafka,
            vod,
            group_id: "live2vod-worker".into(),
            concurrency: 8,
            max_pending: 10_000,
            shutdown_timeout: Duration::from_secs(30),
            retry_max_backoff: Duration::from_secs(60),
            ledger_idle_timeout: Duration::from_secs(30),
        }
    }
}

impl TryFrom<&Args> for WorkerConfig {
    type Error = WorkerError;

    fn try_from(a: &Args) -> Result<Self, WorkerError> {
        if a.concurrency == 0 {
            return Err(WorkerError::Config(
                "--concurrency must be at least 1".into(),
            ));
        }
        let mut vod = VodConfig::new(&a.region, &a.access_key_id, &a.access_key_secret);
        vod.endpoint = a.vod_endpoint.clone();
        vod.security_token = a.security_token.clone().map(Secret::new);
        vod.timeout = Duration::from_secs(a.vod_timeout_secs.max(1));
        vod.retry = RetryPolicy {
            max_attempts: a.vod_max_attempts.max(1),
            ..RetryPolicy::default()
        };
        Ok(WorkerConfig {
            group_id: a.group_id.clone(),
            concurrency: a.concurrency,
            max_pending: a.max_pending.max(1),
            shutdown_timeout: Duration::from_secs(a.shutdown_timeout_secs),
            ..WorkerConfig::new(a.kafka.clone(), vod)
        })
    }
}

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

/// A running worker.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ledger: Arc<Ledger>,
    health: Health,
}

impl WorkerHandle {
    /// Readiness (true once the ledger is loaded and commands are consumed).
    pub fn health(&self) -> Health {
        self.health.clone()
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
        let _ = self.stop.send(true);
    }

    /// Stops the worker and waits until offsets are committed and the producer flushed.
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        self.request_shutdown();
        self.wait().await
    }

    /// Waits until the worker stops (after [`request_shutdown`](Self::request_shutdown)).
    pub async fn wait(self) -> Result<(), WorkerError> {
        let r = self
            .task
            .await
            .map_err(|e| WorkerError::Task(e.to_string()));
        self.health.set_ready(false);
        r
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
    let (rebalance_tx, rebalance_rx) = mpsc::unbounded_channel();
    let mut ccfg = cfg.kafka.client_config();
    for (k, v) in [
        ("group.id", cfg.group_id.as_str()),
        // Offsets are stored by hand once a command is done (see the tracker) and committed
        // by librdkafka's auto-commit, on revoke and at shutdown.
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "1000"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("statistics.interval.ms", "5000"),
    ] {
        // `--kafka` pass-through settings win, except where correctness depends on ours.
        let ours = matches!(k, "enable.auto.offset.store" | "group.id");
        if ours || ccfg.get(k).is_none() {
            ccfg.set(k, v);
        }
    }
    let consumer: StreamConsumer<WorkerContext> = ccfg.create_with_context(WorkerContext {
        topic: topics.commands.clone(),
        events: rebalance_tx,
    })?;
    consumer.subscribe(&[&topics.commands])?;

    let exec = Arc::new(Executor::new(
        vod,
        producer.clone(),
        topics.clone(),
        ledger.clone(),
        cfg.concurrency,
        stop_rx.clone(),
        cfg.retry_max_backoff,
    ));
    let settings = LoopSettings {
        topic: topics.commands.clone(),
        max_pending: cfg.max_pending,
        shutdown_timeout: cfg.shutdown_timeout,
    };
    let tail = tokio::spawn(ledger::tail(reader, ledger.clone(), stop_rx.clone()));
    let loop_stop = stop_rx.clone();
    let task = tokio::spawn(async move {
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
    });
    health.set_ready(true);
    tracing::info!(
        group = %cfg.group_id,
        commands = %topics.commands,
        vod = %cfg.vod.endpoint_url(),
        finished_commands = ledger.len(),
        "worker started"
    );
    Ok(WorkerHandle {
        stop: stop_tx,
        task,
        ledger,
        health,
    })
}

/// Runs the role until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    let cfg = WorkerConfig::try_from(&args)?;
    let health = Health::default();
    let (http_stop_tx, mut http_stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.metrics_listen))?;
    let http = tokio::spawn(crate::http::serve_on(
        listener,
        crate::http::ops_router(health.clone()),
        async move {
            let _ = http_stop_rx.wait_for(|s| *s).await;
        },
    ));

    let handle = tokio::select! {
        h = start(cfg, health) => h?,
        _ = crate::http::shutdown_signal() => {
            let _ = http_stop_tx.send(true);
            return Ok(());
        }
    };
    crate::http::shutdown_signal().await;
    let result = handle.shutdown().await;
    let _ = http_stop_tx.send(true);
    let _ = http.await;
    result.map_err(Into::into)
}
