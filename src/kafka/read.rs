//! Bounded reads of one partition (state restore, replay, diff), outside any consumer group.
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::config::KafkaArgs;

/// Reads one partition from its first retained record to the high watermark seen at the start.
pub fn read_partition(
    kafka: &KafkaArgs,
    topic: &str,
    partition: i32,
) -> Result<Vec<(String, Vec<u8>)>, KafkaError> {
    let c = consumer(kafka)?;
    let (low, high) = c.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    read_with(&c, topic, partition, low, high)
}

/// Reads several partitions of `topic`, each from its first retained record to the high
/// watermark seen at the start, with one consumer (restoring many partitions at once costs one
/// client, not one per partition). Records come as `(partition, key, value)`, in offset order
/// within a partition.
pub fn read_partitions(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, String, Vec<u8>)>, KafkaError> {
    let c = consumer(kafka)?;
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
            ends.insert(p, high);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    c.assign(&tpl)?;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                let (p, off) = (msg.partition(), msg.offset());
                match (msg.key().map(std::str::from_utf8), msg.payload()) {
                    (Some(Ok(k)), Some(v)) => out.push((p, k.to_string(), v.to_vec())),
                    (Some(Err(_)), _) => {
                        tracing::warn!(
                            topic,
                            partition = p,
                            offset = off,
                            "skipping a record with a non-UTF-8 key"
                        )
                    }
                    _ => {}
                }
                if ends.get(&p).is_some_and(|end| off + 1 >= *end) {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => return Err(e),
            None if last_progress.elapsed() > Duration::from_secs(30) => {
                return Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::OperationTimedOut,
                ))
            }
            None => {}
        }
    }
    Ok(out)
}

/// Reads `[start, end)` of one partition. Tombstones (no value) are skipped, and so are keys
/// that are not UTF-8 (with a warning).
pub fn read_range(
    kafka: &KafkaArgs,
    topic: &str,
    partition: i32,
    start: i64,
    end: i64,
) -> Result<Vec<(String, Vec<u8>)>, KafkaError> {
    let c = consumer(kafka)?;
    read_with(&c, topic, partition, start, end)
}

fn consumer(kafka: &KafkaArgs) -> Result<BaseConsumer, KafkaError> {
    let mut cc = kafka.client_config();
    cc.set("enable.auto.commit", "false");
    cc.set("group.id", "live2vod-reader");
    cc.create()
}

fn read_with(
    c: &BaseConsumer,
    topic: &str,
    partition: i32,
    start: i64,
    end: i64,
) -> Result<Vec<(String, Vec<u8>)>, KafkaError> {
    let mut out = Vec::new();
    if end <= start {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
    c.assign(&tpl)?;
    let mut last_progress = Instant::now();
    loop {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                let off = msg.offset();
                match (msg.key().map(std::str::from_utf8), msg.payload()) {
                    (Some(Ok(k)), Some(v)) => out.push((k.to_string(), v.to_vec())),
                    (Some(Err(_)), _) => {
                        tracing::warn!(
                            topic,
                            partition,
                            offset = off,
                            "skipping a record with a non-UTF-8 key"
                        )
                    }
                    _ => {}
                }
                if off + 1 >= end {
                    return Ok(out);
                }
            }
            Some(Err(e)) => return Err(e),
            None if last_progress.elapsed() > Duration::from_secs(30) => {
                return Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::OperationTimedOut,
                ))
            }
            None => {}
        }
    }
}
