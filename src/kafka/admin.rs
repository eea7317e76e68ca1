//! Topic administration: create live2vod's topics when missing, check co-partitioning.
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use super::config::{KafkaArgs, Topics};

/// Topic administration failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("the broker refused to create topic {topic}: {code} (create it by hand or fix permissions; see `live2vod topics create --help`)")]
    Refused { topic: String, code: String },
    #[error("creating topics failed: {0} (the cluster may not support CreateTopics: librdkafka's mock cluster does not, `live2vod broker` pre-creates them)")]
    Create(rdkafka::error::KafkaError),
    #[error("admin task failed: {0}")]
    Task(String),
    #[error("topic {0} does not exist and topic creation is disabled (--no-create-topics)")]
    Missing(String),
    #[error("topics {callbacks} ({callbacks_n} partitions) and {aggregates} ({aggregates_n}) must have the same partition count: aggregates are co-partitioned with callbacks")]
    NotCoPartitioned {
        callbacks: String,
        callbacks_n: usize,
        aggregates: String,
        aggregates_n: usize,
    },
}

/// How one topic should look when created.
pub struct Spec<'a> {
    pub name: &'a str,
    pub compacted: bool,
}

/// The topics live2vod needs and whether each is compacted.
pub fn specs(t: &Topics) -> [Spec<'_>; 6] {
    [
        Spec {
            name: &t.callbacks,
            compacted: false,
        },
        Spec {
            name: &t.commands,
            compacted: false,
        },
        Spec {
            name: &t.aggregates,
            compacted: true,
        },
        Spec {
            name: &t.dlq,
            compacted: false,
        },
        Spec {
            name: &t.ledger,
            compacted: true,
        },
        Spec {
            name: &t.reconcile_positions,
            compacted: true,
        },
    ]
}

/// Partition count of each existing topic, by name (missing topics are absent).
pub fn partition_counts(
    args: &KafkaArgs,
    timeout: Duration,
) -> Result<std::collections::HashMap<String, usize>, AdminError> {
    let consumer: BaseConsumer =
        super::client::config(args, super::client::ClientKind::Admin).create()?;
    let md = consumer.fetch_metadata(None, timeout)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

/// What happened to one topic in [`create_topics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    Existing,
}

impl TopicOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicOutcome::Created => "created",
            TopicOutcome::Existing => "existing",
        }
    }
}

/// Creates every missing live2vod topic (partitions and replication from `args`; compaction
/// for aggregates and the worker ledger) and reports, per topic, whether it was created or
/// already there. Ignores `--no-create-topics`: this is the explicit creation path.
pub async fn create_topics(args: &KafkaArgs) -> Result<Vec<(String, TopicOutcome)>, AdminError> {
    let topics = args.topics();
    let timeout = Duration::from_secs(10);
    let existing = {
        let args = args.clone();
        tokio::task::spawn_blocking(move || partition_counts(&args, timeout))
            .await
            .map_err(|e| AdminError::Task(e.to_string()))??
    };
    let mut report = Vec::new();
    let mut missing = Vec::new();
    for s in specs(&topics) {
        if existing.contains_key(s.name) {
            report.push((s.name.to_string(), TopicOutcome::Existing));
        } else {
            missing.push(s);
        }
    }
    if missing.is_empty() {
        return Ok(report);
    }
    let admin: AdminClient<DefaultClientContext> =
        super::client::config(args, super::client::ClientKind::Admin).create()?;
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|s| {
            let t = NewTopic::new(
                s.name,
                args.topic_partitions,
                TopicReplication::Fixed(args.topic_replication),
            );
            if s.compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(AdminError::Create)?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, "created topic");
                report.push((name, TopicOutcome::Created));
            }
            // Another process created it between our metadata read and our request.
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                report.push((topic, TopicOutcome::Existing))
            }
            Err((topic, code)) => {
                return Err(AdminError::Refused {
                    topic,
                    code: code.to_string(),
                })
            }
        }
    }
    Ok(report)
}

/// Creates every missing live2vod topic (unless `--no-create-topics`), then checks that the
/// callbacks and aggregates topics have the same partition count.
pub async fn ensure_topics(args: &KafkaArgs) -> Result<(), AdminError> {
    let topics = args.topics();
    let timeout = Duration::from_secs(10);
    if args.no_create_topics {
        let existing = {
            let args = args.clone();
            tokio::task::spawn_blocking(move || partition_counts(&args, timeout))
                .await
                .map_err(|e| AdminError::Task(e.to_string()))??
        };
        if let Some(s) = specs(&topics)
            .into_iter()
            .find(|s| !existing.contains_key(s.name))
        {
            return Err(AdminError::Missing(s.name.to_string()));
        }
    } else {
        create_topics(args).await?;
    }
    check_co_partitioned(args, &topics, timeout).await
}

async fn check_co_partitioned(
    args: &KafkaArgs,
    topics: &Topics,
    timeout: Duration,
) -> Result<(), AdminError> {
    // Metadata of freshly created topics can lag a moment behind.
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let counts = {
            let args = args.clone();
            tokio::task::spawn_blocking(move || partition_counts(&args, timeout))
                .await
                .map_err(|e| AdminError::Task(e.to_string()))??
        };
        match (
            counts.get(&topics.callbacks),
            counts.get(&topics.aggregates),
        ) {
            (Some(&c), Some(&a)) if c == a => return Ok(()),
            (Some(&c), Some(&a)) => {
                return Err(AdminError::NotCoPartitioned {
                    callbacks: topics.callbacks.clone(),
                    callbacks_n: c,
                    aggregates: topics.aggregates.clone(),
                    aggregates_n: a,
                })
            }
            (c, _) if std::time::Instant::now() >= deadline => {
                let name = if c.is_none() {
                    &topics.callbacks
                } else {
                    &topics.aggregates
                };
                return Err(AdminError::Missing(name.clone()));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Creates `topic` when missing, with the partition count of `like` (so it stays
/// co-partitioned with it) and optionally compacted.
pub async fn ensure_topic_like(
    args: &KafkaArgs,
    like: &str,
    topic: &str,
    compacted: bool,
) -> Result<(), AdminError> {
    let timeout = Duration::from_secs(10);
    let existing = partition_counts(args, timeout)?;
    if existing.contains_key(topic) {
        return Ok(());
    }
    let partitions = *existing
        .get(like)
        .ok_or_else(|| AdminError::Missing(like.to_string()))? as i32;
    let admin: AdminClient<DefaultClientContext> =
        super::client::config(args, super::client::ClientKind::Admin).create()?;
    let mut t = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(args.topic_replication),
    );
    if compacted {
        t = t.set("cleanup.policy", "compact");
    }
    // A request timeout too: a cluster without CreateTopics (librdkafka's mock cluster, which
    // `live2vod broker` hosts) otherwise leaves the request hanging for minutes.
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics([&t], &opts)
        .await
        .map_err(AdminError::Create)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(AdminError::Refused {
                    topic,
                    code: code.to_string(),
                })
            }
        }
    }
    Ok(())
}
