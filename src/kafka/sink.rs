//! The output stages of a consume–process–commit loop: a batch's records as one owned type,
//! the acked sink (produce every record, wait for every acknowledgement) and the offset
//! commit. The transactional sink (`fold/txn.rs`) writes the same [`OutRecord`]s.
use std::collections::HashMap;
use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// One record a batch writes, owned so it can be written after the batch was built, by
/// either sink.
#[derive(Debug)]
pub struct OutRecord<'t> {
    pub topic: &'t str,
    /// An explicit partition (snapshots: the input's number); `None`: by key.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// `None`: a record without value (a dead letter of a record that had none).
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

impl<'t> OutRecord<'t> {
    /// A keyed record with a value and no headers.
    pub fn keyed(topic: &'t str, key: impl Into<Vec<u8>>, payload: Vec<u8>) -> Self {
        OutRecord {
            topic,
            partition: None,
            key: Some(key.into()),
            payload: Some(payload),
            headers: None,
        }
    }

    /// The same record with these headers.
    pub fn with_headers(mut self, headers: OwnedHeaders) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The same record to this partition.
    pub fn to_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// The record as rdkafka takes it, with `headers` (taken out of it or copied).
    pub fn future_record(&self, headers: Option<OwnedHeaders>) -> FutureRecord<'_, [u8], [u8]> {
        let mut rec = FutureRecord::<[u8], [u8]>::to(self.topic);
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        if let Some(p) = self.partition {
            rec = rec.partition(p);
        }
        if let Some(k) = &self.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &self.payload {
            rec = rec.payload(v.as_slice());
        }
        rec
    }
}

/// The acked sink: produces every record at once and waits until the broker acknowledged all
/// of them (each bounded by `timeout` in the local queue); the first failure is returned.
/// Returns the partition and offset of each record, in order.
pub async fn produce_all(
    producer: &FutureProducer,
    mut records: Vec<OutRecord<'_>>,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let headers: Vec<_> = records.iter_mut().map(|r| r.headers.take()).collect();
    let sends = records
        .iter()
        .zip(headers)
        .map(|(r, h)| producer.send(r.future_record(h), timeout));
    try_join_all(sends)
        .await
        .map(|ds| ds.into_iter().map(|d| (d.partition, d.offset)).collect())
        .map_err(|(e, _)| e)
}

/// Next offsets to commit (`partition -> offset`) of `topic` as a list.
pub fn offset_list(
    topic: &str,
    next: &HashMap<i32, i64>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in next {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
    }
    Ok(tpl)
}

/// The commit stage: commits `offsets` synchronously.
pub fn commit_offsets<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    offsets: &TopicPartitionList,
) -> Result<(), KafkaError> {
    consumer.commit(offsets, CommitMode::Sync)
}
