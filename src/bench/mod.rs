//! `live2vod bench`: benchmarks that print figures; the last stdout line is one JSON object.
use clap::Subcommand;

/// Which benchmark to run.
#[derive(Subcommand, Debug, Clone)]
pub enum Bench {}

/// Runs one benchmark.
pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {}
}
