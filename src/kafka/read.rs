//! Bounded reads of one partition (state restore, replay, diff), outside any consumer group.
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::config::KafkaArgs;
use super::consumer::reader;

/// The label of these readers' clients.
const READER: &str = "live2vod-reader";

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

/// One record as stored: tombstones (`value: None`), keyless records and headers included.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where [`read_records`] stops reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTo {
    /// The high watermark seen at the start (records produced later are not waited for).
    HighWatermark,
    /// The end of the log under `read_committed` (librdkafka's partition EOF, at the last
    /// stable offset): for topics written in transactions, whose markers take offsets but are
    /// never delivered, so "the record at high watermark - 1" may never come.
    CommittedEnd,
}

/// Reads `partitions` of `topic` from their first retained record to `to`, with one consumer
/// outside any group (restoring many partitions at once costs one client, not one each).
/// Records come in offset order within a partition.
pub fn read_records(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: &[i32],
    to: ReadTo,
) -> Result<Vec<RawRecord>, KafkaError> {
    // Both modes read committed records only (librdkafka's default); the committed end is
    // where librdkafka reports the partition's end.
    let c: BaseConsumer = reader(kafka, READER, to == ReadTo::CommittedEnd)?;
    // Open partitions, with the high watermark at the start.
    let mut open = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
            open.insert(p, high);
        }
    }
    let mut out = Vec::new();
    if open.is_empty() {
        return Ok(out);
    }
    c.assign(&tpl)?;
    drain(&c, &mut open, to == ReadTo::HighWatermark, |r| {
        out.push(r);
        true
    })?;
    Ok(out)
}

/// The first retained offset and the high watermark of a partition.
pub fn watermarks(
    kafka: &KafkaArgs,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    let c: BaseConsumer = reader(kafka, READER, false)?;
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
}

/// Reads one partition of `topic` from `start` (or its first retained record when that is
/// later) to `to`, handing `f` each record as it comes (nothing is collected: a restore of
/// millions of records holds one at a time); `f` returning `false` stops the read. Returns
/// the first retained offset and the high watermark seen when it started.
pub fn stream_partition(
    kafka: &KafkaArgs,
    topic: &str,
    partition: i32,
    start: i64,
    to: ReadTo,
    f: impl FnMut(RawRecord) -> bool,
) -> Result<(i64, i64), KafkaError> {
    let c: BaseConsumer = reader(kafka, READER, to == ReadTo::CommittedEnd)?;
    let (low, high) = c.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let from = start.max(low);
    if from >= high {
        return Ok((low, high));
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
    c.assign(&tpl)?;
    let mut open = std::collections::HashMap::from([(partition, high)]);
    drain(&c, &mut open, to == ReadTo::HighWatermark, f)?;
    Ok((low, high))
}

/// Polls `c` until every partition in `open` (partition -> high watermark) reached its end:
/// the record before the watermark when `stop_at_high`, else librdkafka's partition EOF (under
/// `read_committed`, where transaction markers take the last offsets). Hands `f` each record;
/// `f` returning `false` ends the read.
fn drain(
    c: &BaseConsumer,
    open: &mut std::collections::HashMap<i32, i64>,
    stop_at_high: bool,
    mut f: impl FnMut(RawRecord) -> bool,
) -> Result<(), KafkaError> {
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                let (p, off) = (msg.partition(), msg.offset());
                if !f(raw(&msg)) {
                    return Ok(());
                }
                if stop_at_high && open.get(&p).is_some_and(|end| off + 1 >= *end) {
                    open.remove(&p);
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
    Ok(())
}

/// Follows every given partition of a topic outside any group: each [`Tail::catch_up`] reads
/// what was written since the previous one, up to the high watermarks seen when it starts. For
/// a reader that needs a whole topic again and again (reconcile's view of the aggregates):
/// reading it from the start each time costs the topic's size per cycle, and on a broker that
/// does not compact (tansu 0.6) every snapshot ever written.
pub struct Tail {
    consumer: BaseConsumer,
    topic: String,
    /// Partition -> the next offset to read.
    next: std::collections::HashMap<i32, i64>,
}

impl Tail {
    /// Assigns `partitions` of `topic` from their first retained record.
    pub fn open(kafka: &KafkaArgs, topic: &str, partitions: &[i32]) -> Result<Tail, KafkaError> {
        let consumer: BaseConsumer = reader(kafka, READER, true)?;
        let mut tpl = TopicPartitionList::new();
        let mut next = std::collections::HashMap::new();
        for &p in partitions {
            let (low, _) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
            next.insert(p, low);
        }
        consumer.assign(&tpl)?;
        Ok(Tail {
            consumer,
            topic: topic.to_string(),
            next,
        })
    }

    /// How many partitions it follows.
    pub fn partitions(&self) -> usize {
        self.next.len()
    }

    /// Hands `f` every record written since the previous call, up to the high watermarks seen
    /// now (or a partition's end under `read_committed`, where transaction markers take the
    /// last offsets); returns how many. Records produced meanwhile may come too.
    pub fn catch_up(&mut self, mut f: impl FnMut(RawRecord)) -> Result<u64, KafkaError> {
        let mut n = 0u64;
        // Events queued since the last call: records are kept, end-of-partition notices are
        // stale.
        while let Some(ev) = self.consumer.poll(Duration::ZERO) {
            match ev {
                Ok(msg) => {
                    self.next.insert(msg.partition(), msg.offset() + 1);
                    f(raw(&msg));
                    n += 1;
                }
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut open = std::collections::HashMap::new();
        for (&p, &next) in &self.next {
            let (_, high) =
                self.consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(10))?;
            if high > next {
                open.insert(p, high);
            }
        }
        let next = &mut self.next;
        drain(&self.consumer, &mut open, true, |r| {
            next.insert(r.partition, r.offset + 1);
            f(r);
            n += 1;
            true
        })?;
        Ok(n)
    }
}

fn raw<M: Message>(msg: &M) -> RawRecord {
    let headers = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    RawRecord {
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// [`read_records`] as `(partition, key, value)`: tombstones and keyless records are left
/// out, and so are keys that are not UTF-8 (with a warning).
pub fn read_partitions_to(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: &[i32],
    to: ReadTo,
) -> Result<Vec<(i32, String, Vec<u8>)>, KafkaError> {
    Ok(read_records(kafka, topic, partitions, to)?
        .into_iter()
        .filter_map(|r| match (r.key, r.value) {
            (Some(k), Some(v)) => match String::from_utf8(k) {
                Ok(k) => Some((r.partition, k, v)),
                Err(_) => {
                    tracing::warn!(
                        topic,
                        partition = r.partition,
                        offset = r.offset,
                        "skipping a record with a non-UTF-8 key"
                    );
                    None
                }
            },
            _ => None,
        })
        .collect())
}

/// Several partitions of `topic`, each to the high watermark seen at the start, as
/// `(partition, key, value)` ([`read_partitions_to`] with [`ReadTo::HighWatermark`]).
pub fn read_partitions(
    kafka: &KafkaArgs,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, String, Vec<u8>)>, KafkaError> {
    read_partitions_to(kafka, topic, partitions, ReadTo::HighWatermark)
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
    reader(kafka, READER, false)
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
