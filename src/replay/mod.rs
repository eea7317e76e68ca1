//! The `replay` role: rebuilds aggregates from the callbacks topic into another topic
//! (blue/green), or reports how the current projection's commands differ from the live ones,
//! **without side effects**: nothing is produced to the commands or callbacks topics, so
//! nothing reaches the worker or VOD.
//!
//! Stream facts that the live fold derived (`live2vod.StreamFact` records on the callbacks
//! topic) are skipped and re-derived by this version's projection, applied in memory, so a
//! new projection version is judged on its own output.
mod progress;
mod runner;

use std::path::PathBuf;

use clap::Args as ClapArgs;

use crate::domain::policy::Policy;
use crate::kafka::KafkaArgs;

pub use runner::{run_replay, CommandDiff, ReplayConfig, ReplayReport, Start};

/// Options of `live2vod replay`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Topic to write the rebuilt aggregates to (created, compacted, with as many partitions as
    /// the callbacks topic, when missing). Point the api at it with `--aggregates-topic`.
    /// Required unless `--diff`.
    #[arg(
        long,
        env = "LIVE2VOD_REPLAY_TO_TOPIC",
        required_unless_present = "diff"
    )]
    pub to_topic: Option<String>,

    /// Replay from the first record still on the topic (the default).
    #[arg(long, conflicts_with = "from_time")]
    pub from_beginning: bool,

    /// Replay from the first record at or after this time (RFC3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long, env = "LIVE2VOD_REPLAY_FROM_TIME")]
    pub from_time: Option<String>,

    /// Report, without producing anything, the commands the current projection would emit
    /// that are not on the commands topic, and those on it that it would not emit.
    #[arg(long)]
    pub diff: bool,

    /// Print the diff (and the summary) as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,

    /// Policy file, as for `fold` (the projection to check or rebuild with).
    #[arg(long, env = "LIVE2VOD_POLICY")]
    pub policy: Option<PathBuf>,

    /// Progress display: auto (a bar on a terminal, periodic lines otherwise), bar, lines, none.
    #[arg(long, env = "LIVE2VOD_REPLAY_PROGRESS", default_value = "auto")]
    pub progress: progress::Mode,
}

/// Runs the replay and prints its report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read policy file {}: {e}", path.display()))?;
            Policy::parse(&text)
                .map_err(|e| anyhow::anyhow!("policy file {}: {e}", path.display()))?
        }
        None => Policy::default(),
    };
    let start = match &args.from_time {
        Some(t) => Start::Time(crate::domain::time::parse_event_time(t).map_err(|_| {
            anyhow::anyhow!(
                "--from-time {t:?} is not an RFC3339 UTC time like 2026-11-01T00:00:00Z"
            )
        })?),
        None => Start::Beginning,
    };
    let cfg = ReplayConfig {
        kafka: args.kafka.clone(),
        policy,
        start,
        to_topic: if args.diff {
            None
        } else {
            args.to_topic.clone()
        },
        diff: args.diff,
    };
    let bar = std::sync::Arc::new(std::sync::Mutex::new(progress::Progress::new(
        args.progress,
    )));
    let b = bar.clone();
    let report = run_replay(cfg, move |done, total, elapsed| {
        if let Ok(mut b) = b.lock() {
            b.update(done, total, elapsed)
        }
    })
    .await?;
    if let Ok(mut b) = bar.lock() {
        b.finish();
    }
    if args.json {
        report.print_json();
    } else {
        report.print_text();
    }
    Ok(())
}
