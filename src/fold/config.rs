//! What the user sets: `live2vod fold` flags (each with its `LIVE2VOD_*` env var), their
//! defaults (declared once, here, for clap and for [`FoldConfig::new`]) and the
//! [`FoldConfig`] the runner takes. A new fold flag is a field of [`Args`] and of
//! [`FoldConfig`], both here.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;

use super::state::StateConfig;
use crate::domain::Policy;
use crate::kafka::KafkaArgs;

/// Default of `--group-id`.
pub const DEFAULT_GROUP: &str = "live2vod-fold";
/// Default of `--batch-max`.
pub const DEFAULT_BATCH_MAX: usize = 5000;
/// Default of `--batch-ms`.
pub const DEFAULT_BATCH_MS: u64 = 20;
/// Default of `--dlq-max-ratio`.
pub const DEFAULT_DLQ_MAX_RATIO: f64 = 0.5;
/// Default of `--dlq-window`.
pub const DEFAULT_DLQ_WINDOW: u64 = 1000;
/// Default of `--dlq-min`.
pub const DEFAULT_DLQ_MIN: u64 = 100;

/// `--policy`: shared by `fold` and `run`.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// Policy file (TOML) deciding what happens to segments and composed videos (see
    /// deploy/policy.example.toml). Without it nothing is transcoded automatically and
    /// manual requests (`POST /v1/videos/{id}/transcode`) are honoured. A bad file stops the
    /// fold at start, naming the line.
    #[arg(long, env = "LIVE2VOD_POLICY")]
    pub policy: Option<PathBuf>,
}

impl PolicyArgs {
    /// Reads and checks the file (no file: the default policy).
    pub fn load(&self) -> anyhow::Result<Policy> {
        load_policy(self.policy.as_deref())
    }
}

/// `--state-dir` and `--state-cache-mb`: shared by `fold` and `run`.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct StateArgs {
    /// Directory of the local state store: one file per owned partition of the aggregates
    /// topic, a cache of that topic. With it, the fold keeps only --state-cache-mb of
    /// aggregates in memory and a restart restores only what the store does not reflect yet
    /// (a kept volume: the tail written since; a new one: the whole partition). Deleting it
    /// loses nothing. Without it, every aggregate of the owned partitions stays in memory and
    /// every start reads the whole partitions back (fine for a demo, not for a year of
    /// recordings). One directory per instance (a StatefulSet volume).
    #[arg(long, env = "LIVE2VOD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Memory budget (MiB) of the state with --state-dir: half for decoded aggregates (least
    /// recently used dropped first), half for the stores' page caches.
    /// Size it to the working set (videos still receiving events); see docs/OPERATIONS.md.
    #[arg(long, env = "LIVE2VOD_STATE_CACHE_MB", default_value_t = super::state::DEFAULT_CACHE_MB as u64, value_parser = clap::value_parser!(u64).range(8..=1_048_576))]
    pub state_cache_mb: u64,
}

impl StateArgs {
    /// The fold's state configuration (`None` without --state-dir).
    pub fn config(&self) -> Option<StateConfig> {
        self.state_dir.clone().map(|dir| StateConfig {
            dir,
            cache_bytes: (self.state_cache_mb as usize) << 20,
        })
    }
}

/// Options of `live2vod fold`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Consumer group of the fold instances (all instances of one deployment share it).
    #[arg(long, env = "LIVE2VOD_FOLD_GROUP", default_value = DEFAULT_GROUP)]
    pub group_id: String,

    /// Most records folded per batch (one produce-and-commit round per batch).
    #[arg(long, env = "LIVE2VOD_FOLD_BATCH_MAX", default_value_t = DEFAULT_BATCH_MAX)]
    pub batch_max: usize,

    /// Longest wait (ms) for a batch to fill once its first record arrived.
    #[arg(long, env = "LIVE2VOD_FOLD_BATCH_MS", default_value_t = DEFAULT_BATCH_MS)]
    pub batch_ms: u64,

    /// Dead-letter circuit breaker: stop when more than this share of the recent window of
    /// records could not be processed. The batch up to the record that tripped it is written
    /// (its dead letters are in the DLQ) and committed, nothing after it is consumed; a
    /// restart goes on from there and trips again after at least --dlq-min more dead letters
    /// if the flood goes on (1.0 never trips).
    #[arg(long, env = "LIVE2VOD_DLQ_MAX_RATIO", default_value_t = DEFAULT_DLQ_MAX_RATIO)]
    pub dlq_max_ratio: f64,

    /// Dead-letter circuit breaker: the window (records) the ratio is measured over.
    #[arg(long, env = "LIVE2VOD_DLQ_WINDOW", default_value_t = DEFAULT_DLQ_WINDOW)]
    pub dlq_window: u64,

    /// Dead-letter circuit breaker: never trip below this many dead-lettered records.
    #[arg(long, env = "LIVE2VOD_DLQ_MIN", default_value_t = DEFAULT_DLQ_MIN)]
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

    #[command(flatten)]
    pub state: StateArgs,

    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", default_value = crate::http::DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
}

impl Args {
    /// The runner's configuration; reads and checks the policy file.
    pub fn config(&self) -> anyhow::Result<FoldConfig> {
        let policy = load_policy(self.policy.policy.as_deref())?;
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
                    .unwrap_or_else(super::txn::default_transactional_id)
            }),
            state: self.state.config(),
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

/// What the runner needs; built from the CLI by `fold::Args::config`.
#[derive(Debug, Clone)]
pub struct FoldConfig {
    pub kafka: KafkaArgs,
    pub policy: Policy,
    pub group_id: String,
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub dlq_max_ratio: f64,
    pub dlq_window: u64,
    pub dlq_min: u64,
    /// Stop by itself once this many records, plus the stream facts this run derived (they
    /// come back through the input topic), were folded and committed (benchmarks, tests).
    pub stop_after_records: Option<u64>,
    /// `--exactly-once`: commit each batch's output and input offsets in one Kafka transaction
    /// under this transactional id (stable and unique per instance). `None`: the default mode.
    pub transactional_id: Option<String>,
    /// `--state-dir`: a local store per partition with a bounded cache. `None`: everything
    /// in memory.
    pub state: Option<StateConfig>,
}

impl FoldConfig {
    /// A configuration with the command line's defaults (the `DEFAULT_*` constants above, which
    /// the flags use too; no stop, no transactions).
    pub fn new(kafka: KafkaArgs, policy: Policy) -> Self {
        FoldConfig {
            kafka,
            policy,
            group_id: DEFAULT_GROUP.into(),
            batch_max: DEFAULT_BATCH_MAX,
            batch_wait: Duration::from_millis(DEFAULT_BATCH_MS),
            dlq_max_ratio: DEFAULT_DLQ_MAX_RATIO,
            dlq_window: DEFAULT_DLQ_WINDOW,
            dlq_min: DEFAULT_DLQ_MIN,
            stop_after_records: None,
            transactional_id: None,
            state: None,
        }
    }
}
