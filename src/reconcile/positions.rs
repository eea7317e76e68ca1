//! Sweep positions and ownership, both kept in Kafka (never on local disk).
//!
//! The positions topic (`<prefix>reconcile-positions`, compacted, as many partitions as the
//! callbacks topic) holds one record per sweep unit (`sweep:<domain>/<app>[/<stream>]` ->
//! `{"to_ms":N}`), in the partition its key hashes to. Reconcile instances form one consumer
//! group on that topic: the partitions a member is assigned are the units it owns, so two
//! instances never sweep the same unit, and a unit moves with its partition when an instance
//! dies (after the group's session timeout). A member never commits offsets: every
//! assignment is read from the start, which restores the positions its previous owner wrote.
//! A partition counts as owned only once it has been read up to its high watermark.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::Offset;
use sha1::{Digest, Sha1};

use crate::kafka::KafkaArgs;

/// The partition a unit (or its stream) belongs to: stable across processes and versions.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let d = Sha1::digest(key.as_bytes());
    let h = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    (h % partitions.max(1) as u32) as i32
}

/// Ownership and positions of one reconcile instance.
pub struct Positions {
    consumer: Arc<StreamConsumer<crate::kafka::consumer::GroupContext>>,
    producer: FutureProducer,
    topic: String,
    partitions: i32,
    state: Arc<Mutex<HashMap<String, i64>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Positions {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Positions {
    /// Joins the group `group` on `topic` (which must exist) and starts reading it.
    pub fn start(kafka: &KafkaArgs, topic: &str, group: &str) -> Result<Positions, KafkaError> {
        // Never commits: every assignment re-reads the positions its previous owner wrote.
        // The rebalance events are not needed (ownership is read from the assignment).
        let (consumer, _events) = crate::kafka::consumer::group(
            kafka,
            group,
            crate::kafka::consumer::Commits::Explicit,
            &[topic],
        )?;
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = meta
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len() as i32);
        if partitions == 0 {
            return Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        let consumer = Arc::new(consumer);
        let state: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let reader = {
            let (c, state) = (consumer.clone(), state.clone());
            tokio::spawn(async move {
                loop {
                    match c.recv().await {
                        Ok(msg) => {
                            let (Some(k), Some(v)) = (msg.key(), msg.payload()) else {
                                continue;
                            };
                            let (Ok(k), Some(to)) = (std::str::from_utf8(k), parse_position(v))
                            else {
                                continue;
                            };
                            if let Ok(mut s) = state.lock() {
                                let e = s.entry(k.to_string()).or_insert(to);
                                *e = (*e).max(to);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reconcile: reading positions failed");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            })
        };
        let producer = crate::kafka::producer::idempotent_producer(kafka)?;
        Ok(Positions {
            consumer,
            producer,
            topic: topic.to_string(),
            partitions,
            state,
            reader,
        })
    }

    /// Partitions of the positions topic (and so of the unit space).
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The partitions this instance owns and has fully read.
    pub fn owned(&self) -> Vec<i32> {
        let Ok(assigned) = self.consumer.assignment() else {
            return Vec::new();
        };
        let position = self.consumer.position().ok();
        let mut out = Vec::new();
        for e in assigned.elements_for_topic(&self.topic) {
            let p = e.partition();
            let Ok((low, high)) =
                self.consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(5))
            else {
                continue;
            };
            let at = position
                .as_ref()
                .and_then(|l| l.find_partition(&self.topic, p))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let caught_up = high <= low || at.is_some_and(|o| o >= high);
            if caught_up {
                out.push(p);
            }
        }
        out.sort_unstable();
        out
    }

    /// Where the unit's last sweep ended (ms), if it ever finished one.
    pub fn get(&self, unit_key: &str) -> Option<i64> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.get(&format!("sweep:{unit_key}")).copied())
    }

    /// Records that the unit was swept up to `to_ms` (after its events were acknowledged).
    pub async fn put(&self, unit_key: &str, to_ms: i64) -> Result<(), KafkaError> {
        let key = format!("sweep:{unit_key}");
        let value = format!("{{\"to_ms\":{to_ms}}}");
        let partition = partition_of(unit_key, self.partitions);
        let rec = FutureRecord::to(&self.topic)
            .key(&key)
            .payload(&value)
            .partition(partition);
        self.producer
            .send(rec, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
        if let Ok(mut s) = self.state.lock() {
            let e = s.entry(key).or_insert(to_ms);
            *e = (*e).max(to_ms);
        }
        Ok(())
    }
}

fn parse_position(v: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(v)
        .ok()?
        .get("to_ms")?
        .as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioning_is_stable_and_in_range() {
        for k in ["d/a", "d/a/s", "x/y/z"] {
            let p = partition_of(k, 6);
            assert!((0..6).contains(&p));
            assert_eq!(p, partition_of(k, 6));
        }
        assert_eq!(parse_position(br#"{"to_ms":42}"#), Some(42));
    }
}
