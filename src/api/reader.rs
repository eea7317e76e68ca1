//! Reads the aggregates topic into the [`Store`]: every partition from the beginning, by
//! assignment (no consumer group, no commits), forever. Ready once it caught up with the high
//! watermarks it saw at start.
use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::store::Store;
use crate::http::Health;
use crate::kafka::KafkaArgs;

/// The reader could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("kafka client: {0}")]
    Client(#[from] KafkaError),
    #[error("topic {0} does not exist (or has no partitions)")]
    NoTopic(String),
    #[error("reader task: {0}")]
    Task(String),
}

/// A consumer assigned to every partition of `topic` from the beginning, plus the offsets
/// it must reach to be caught up (partition -> high watermark at start, non-empty ones only).
pub(super) async fn assign(
    kafka: &KafkaArgs,
    topic: &str,
) -> Result<(StreamConsumer, HashMap<i32, i64>), ReaderError> {
    let consumer: StreamConsumer = crate::kafka::consumer::reader(kafka, "live2vod-api", true)?;
    let consumer = std::sync::Arc::new(consumer);
    let c = consumer.clone();
    let t = topic.to_string();
    let targets = tokio::task::spawn_blocking(move || -> Result<_, ReaderError> {
        let timeout = Duration::from_secs(10);
        let md = c.fetch_metadata(None, timeout)?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .find(|m| m.name() == t && m.error().is_none())
            .map(|m| m.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(ReaderError::NoTopic(t));
        }
        let mut tpl = TopicPartitionList::new();
        let mut targets = HashMap::new();
        for p in partitions {
            let (low, high) = c.fetch_watermarks(&t, p, timeout)?;
            if high > low {
                targets.insert(p, high);
            }
            tpl.add_partition_offset(&t, p, Offset::Beginning)?;
        }
        c.assign(&tpl)?;
        Ok(targets)
    })
    .await
    .map_err(|e| ReaderError::Task(e.to_string()))??;
    let consumer = std::sync::Arc::try_unwrap(consumer)
        .map_err(|_| ReaderError::Task("consumer still shared".into()))?;
    Ok((consumer, targets))
}

/// Consumes until `stop` changes; flips `health` ready once every partition reached its
/// target (end of partition or the high watermark seen at start).
pub(super) async fn run(
    consumer: StreamConsumer,
    mut targets: HashMap<i32, i64>,
    store: Store,
    health: Health,
    caught_up: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mark_if_done = |targets: &HashMap<i32, i64>| {
        if targets.is_empty() && !*caught_up.borrow() {
            let _ = caught_up.send(true);
            health.set_ready(true);
            tracing::info!(
                aggregates = store.len(),
                "api caught up with the aggregates topic"
            );
        }
    };
    mark_if_done(&targets);
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => break,
            m = consumer.recv() => m,
        };
        match msg {
            Ok(m) => {
                let partition = m.partition();
                let offset = m.offset();
                match m.key().map(std::str::from_utf8) {
                    Some(Ok(key)) => store.apply(key, m.payload()),
                    _ => tracing::warn!(
                        partition,
                        offset,
                        "aggregate record without a UTF-8 key skipped"
                    ),
                }
                if targets.get(&partition).is_some_and(|&h| offset + 1 >= h) {
                    targets.remove(&partition);
                    mark_if_done(&targets);
                }
            }
            Err(KafkaError::PartitionEOF(p)) => {
                if targets.remove(&p).is_some() {
                    mark_if_done(&targets);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the aggregates topic");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
