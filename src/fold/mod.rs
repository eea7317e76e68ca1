//! The `fold` role: consumes the callbacks topic in a consumer group, folds events into
//! aggregates (restored per partition from the compacted aggregates topic), emits commands
//! and snapshots, and commits input offsets only once what they caused is durable.
mod config;
mod runner;
pub mod state;
mod txn;

use crate::http::Health;
use crate::role::RoleHandle;

pub use config::{
    load_policy, Args, FoldConfig, PolicyArgs, StateArgs, DEFAULT_BATCH_MAX, DEFAULT_BATCH_MS,
    DEFAULT_DLQ_MAX_RATIO, DEFAULT_DLQ_MIN, DEFAULT_DLQ_WINDOW, DEFAULT_GROUP,
};
pub use runner::{run_fold, FoldError, FoldStats};

/// Starts the fold as a role: it runs until [`RoleHandle::shutdown`] (the batch in flight is
/// finished and committed) or an error, and reports its counters.
pub fn start(cfg: FoldConfig, health: Health) -> RoleHandle<FoldStats> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    RoleHandle::spawn("fold", health.clone(), stop_tx, async move {
        let stats = run_fold(cfg, health, stop_rx)
            .await
            .map_err(|e| anyhow::anyhow!("the fold stopped: {e}"))?;
        tracing::info!(?stats, "fold stopped");
        Ok(stats)
    })
}

/// Runs the fold until SIGTERM/SIGINT, then finishes the batch in flight and commits.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let health = Health::default();
    crate::role::run_with_ops(args.metrics_listen, health.clone(), async {
        crate::kafka::admin::ensure_topics(&cfg.kafka).await?;
        Ok(start(cfg, health))
    })
    .await
    .map(drop)
}
