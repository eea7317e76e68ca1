//! `live2vod bench`: benchmarks that print figures; the last stdout line is one JSON object.
use clap::Subcommand;

pub mod fold;

/// Which benchmark to run.
#[derive(Subcommand, Debug, Clone)]
pub enum Bench {
    /// Parse + fold throughput of the domain engine on one thread, and bytes per video aggregate.
    Fold(fold::Args),
}

/// Runs one benchmark.
pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Fold(args) => fold::run(args),
    }
}
