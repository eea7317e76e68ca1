//! The `fold` role: consumes the callbacks topic in a consumer group, folds events into
//! aggregates (restored per partition from the compacted aggregates topic), emits commands
//! and snapshots, and commits input offsets only once what they caused is durable.
mod runner;
mod txn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::domain::Policy;
use crate::http::Health;
use crate::kafka::KafkaArgs;

pub use runner::{run_fold, FoldConfig, FoldError, FoldStats};

/// Options of `live2vod fold`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Policy file (TOML) deciding what happens to segments and composed videos (see
    /// deploy/policy.example.toml). Without it nothing is transcoded automatically and
    /// manual requests are refused. A bad file stops the fold at start, naming the line.
    #[arg(long, env = "LIVE2VOD_POLICY")]
    pub policy: Option<PathBuf>,

    /// Consumer group of the fold instances (all instances of one deployment share it).
    #[arg(long, env = "LIVE2VOD_FOLD_GROUP", default_value = "live2vod-fold")]
    pub group_id: String,

    /// Most records folded per batch (one produce-and-commit round per batch).
    #[arg(long, env = "LIVE2VOD_FOLD_BATCH_MAX", default_value_t = 5000)]
    pub batch_max: usize,

    /// Longest wait (ms) for a batch to fill once its first record arrived.
    #[arg(long, env = "LIVE2VOD_FOLD_BATCH_MS", default_value_t = 20)]
    pub batch_ms: u64,

    /// Dead-letter circuit breaker: stop when more than this share of the recent window of
    /// records could not be processed. The batch up to the record that tripped it is written
    /// (its dead letters are in the DLQ) and committed, nothing after it is consumed; a
    /// restart goes on from there and trips again after at least --dlq-min more dead letters
    /// if the flood goes on (1.0 never trips).
    #[arg(long, env = "LIVE2VOD_DLQ_MAX_RATIO", default_value_t = 0.5)]
    pub dlq_max_ratio: f64,

    /// Dead-letter circuit breaker: the window (records) the ratio is measured over.
    #[arg(long, env = "LIVE2VOD_DLQ_WINDOW", default_value_t = 1000)]
    pub dlq_window: u64,

    /// Dead-letter circuit breaker: never trip below this many dead-lettered records.
    #[arg(long, env = "LIVE2VOD_DLQ_MIN", default_value_t = 100)]
    pub dlq_min: u64,

    /// Exactly-once mode: commit each batch's commands, stream facts, dead letters, snapshots
    /// and input offsets in one Kafka transaction, so a crash or rebalance never leaves a
    /// re-emitted command or snapshot visible to read_committed consumers. Use it only when
    /// the broker implements transactions (Apache Kafka, Redpanda; not tansu) and fewer
    /// duplicate commands on the commands topic are worth a transaction per batch.
    /// Correctness does not depend on it: the default mode is already correct through
    /// idempotence (deterministic command ids, snapshots that record applied positions).
    /// On a broker without transactions it stops with a message naming the default mode:
    /// at start when the broker refuses InitProducerId, else at the first batch's commit
    /// (tansu accepts InitProducerId but has no EndTxn), before any offset is committed.
    #[arg(long, env = "LIVE2VOD_EXACTLY_ONCE")]
    pub exactly_once: bool,

    /// Transactional id of this instance in --exactly-once mode; default
    /// `live2vod-fold-<hostname>`. Each instance needs its own, stable across restarts
    /// (e.g. a StatefulSet pod name): a restarted instance with the same id fences its
    /// previous incarnation; two live instances sharing one id fence each other.
    #[arg(long, env = "LIVE2VOD_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,

    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    pub metrics_listen: SocketAddr,
}

impl Args {
    /// The runner's configuration; reads and checks the policy file.
    pub fn config(&self) -> anyhow::Result<FoldConfig> {
        let policy = match &self.policy {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read policy file {}: {e}", path.display())
                })?;
                Policy::parse(&text)
                    .map_err(|e| anyhow::anyhow!("policy file {}: {e}", path.display()))?
            }
            None => Policy::default(),
        };
        Ok(FoldConfig {
            kafka: self.kafka.clone(),
            policy,
            group_id: self.group_id.clone(),
            batch_max: self.batch_max.max(1),
            batch_wait: Duration::from_millis(self.batch_ms),
            dlq_max_ratio: self.dlq_max_ratio,
            dlq_window: self.dlq_window,
            dlq_min: self.dlq_min,
            stop_after_records: None,
            transactional_id: self.exactly_once.then(|| {
                self.transactional_id
                    .clone()
                    .unwrap_or_else(txn::default_transactional_id)
            }),
        })
    }
}

/// Reads and checks a policy file; no file means the default policy (nothing automatic).
pub fn load_policy(path: Option<&std::path::Path>) -> anyhow::Result<Policy> {
    let Some(path) = path else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read policy file {}: {e}", path.display()))?;
    Policy::parse(&text).map_err(|e| anyhow::anyhow!("policy file {}: {e}", path.display()))
}

/// Runs the fold until SIGTERM/SIGINT, then finishes the batch in flight and commits.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    let cfg = args.config()?;
    crate::kafka::admin::ensure_topics(&cfg.kafka).await?;
    let health = Health::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ops = crate::http::ops_router(health.clone());
    let mut ops_stop = stop_rx.clone();
    let ops_task = tokio::spawn(crate::http::serve(args.metrics_listen, ops, async move {
        let _ = ops_stop.wait_for(|s| *s).await;
    }));
    tokio::spawn(async move {
        crate::http::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let result = run_fold(cfg, health, stop_rx).await;
    ops_task.abort();
    result
        .map(|stats| tracing::info!(?stats, "fold stopped"))
        .map_err(Into::into)
}
