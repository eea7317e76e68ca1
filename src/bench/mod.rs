//! `live2vod bench`: benchmarks that print figures; the last stdout line is one JSON object.
use clap::Subcommand;

pub mod corpus;
pub mod fold;
pub mod pipeline;
pub mod reconcile;
pub mod relay;
pub mod replay;
pub mod state;

/// Which benchmark to run.
#[derive(Subcommand, Debug, Clone)]
pub enum Bench {
    /// Parse + fold throughput of the domain engine on one thread, and bytes per video aggregate.
    Fold(fold::Args),
    /// Fold throughput end to end on the embedded cluster, next to a plain consumer.
    Pipeline(pipeline::PipelineArgs),
    /// Callbacks accepted per second by the relay over loopback, with latency percentiles.
    Relay(relay::RelayArgs),
    /// Replay throughput next to a plain consumer on the same topic.
    Replay(replay::ReplayArgs),
    /// VOD calls and wall time of one full reconcile sweep over simulated streams.
    Reconcile(reconcile::ReconcileArgs),
    /// The fold's state store: millions of aggregates behind a bounded cache (peak memory,
    /// fold rate against all-in-memory, GET latency, disk per aggregate).
    State(state::Args),
}

/// Runs one benchmark.
pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Fold(args) => fold::run(args),
        Bench::Pipeline(args) => pipeline::run(args).await,
        Bench::Relay(args) => relay::run(args).await,
        Bench::Replay(args) => replay::run(args).await,
        Bench::Reconcile(args) => reconcile::run(args).await,
        Bench::State(args) => tokio::task::block_in_place(|| state::run(args)),
    }
}
