//! `live2vod topics ...`: explicit topic administration for operators and deploy jobs.
use clap::{Args, Subcommand};

use super::admin::{create_topics, TopicOutcome};
use super::config::KafkaArgs;

/// Topic administration.
#[derive(Subcommand, Debug, Clone)]
pub enum TopicsCommand {
    /// Create live2vod's topics (callbacks, commands, aggregates, dlq, worker-ledger) with
    /// `--topic-partitions` partitions and `--topic-replication` replicas; aggregates and
    /// worker-ledger are compacted. Existing topics are left as they are. Prints one line per
    /// topic (`created` or `existing`); exits non-zero when the broker refuses.
    Create(CreateArgs),
}

/// Options of `live2vod topics create`.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Runs a `topics` subcommand; prints the report on stdout.
pub async fn run(cmd: TopicsCommand) -> anyhow::Result<()> {
    match cmd {
        TopicsCommand::Create(a) => {
            let report = create_topics(&a.kafka)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create topics on {}: {e}", a.kafka.brokers))?;
            for (topic, outcome) in report {
                let detail = match outcome {
                    TopicOutcome::Created => format!(
                        " ({} partitions, replication {})",
                        a.kafka.topic_partitions, a.kafka.topic_replication
                    ),
                    TopicOutcome::Existing => String::new(),
                };
                println!("{topic}: {}{detail}", outcome.as_str());
            }
            Ok(())
        }
    }
}
