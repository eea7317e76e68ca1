//! Restore reads for `--exactly-once`: the aggregates topic then holds transaction markers
//! (control records that take an offset but are never delivered), so "read until the record
//! at high watermark - 1" can wait forever; this reader stops at each partition's end of
//! log instead (librdkafka's partition EOF, at the last stable offset under read_committed).
use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::kafka::KafkaArgs;

/// Reads `partitions` of `topic` from their first retained record to their end, committed
/// records only. Records come as `(partition, key, value)`, in offset order per partition.
pub(super) fn read_committed_partitions(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, String, Vec<u8>)>, KafkaError> {
    let mut cc = kafka.client_config();
    cc.set("enable.auto.commit", "false");
    cc.set("group.id", "live2vod-reader");
    cc.set("isolation.level", "read_committed");
    cc.set("enable.partition.eof", "true");
    let c: BaseConsumer = cc.create()?;
    let mut open = HashSet::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
            open.insert(p);
        }
    }
    let mut out = Vec::new();
    if open.is_empty() {
        return Ok(out);
    }
    c.assign(&tpl)?;
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                match (msg.key().map(std::str::from_utf8), msg.payload()) {
                    (Some(Ok(k)), Some(v)) => {
                        out.push((msg.partition(), k.to_string(), v.to_vec()))
                    }
                    (Some(Err(_)), _) => tracing::warn!(
                        topic,
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "skipping a record with a non-UTF-8 key"
                    ),
                    _ => {}
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                last_progress = Instant::now();
                open.remove(&p);
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
