//! Producers: idempotent, acks=all, Java-compatible partitioning, and a bounded wait for the
//! broker's acknowledgement.
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::client::{self, ClientKind};
use super::config::KafkaArgs;

/// An idempotent producer (acks=all) that partitions keys like Java clients (murmur2), so
/// every live2vod producer agrees on where a key lives (settings: [`ClientKind::AckedProducer`]).
pub fn idempotent_producer(args: &KafkaArgs) -> Result<FutureProducer, KafkaError> {
    client::config(args, ClientKind::AckedProducer).create()
}

/// A transactional producer under `transactional_id` (idempotent, acks=all, Java-compatible
/// partitioning), transactions not yet initialised: the caller runs `init_transactions`.
pub fn transactional_producer(
    args: &KafkaArgs,
    transactional_id: &str,
) -> Result<FutureProducer, KafkaError> {
    client::config(args, ClientKind::TransactionalProducer { transactional_id }).create()
}

/// A write that was not acknowledged in time or was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The local queue refused the record (full, or the producer is failing).
    #[error("the producer did not accept the record: {0}")]
    Enqueue(KafkaError),
    /// The broker refused the record for good (after the producer's own retries).
    #[error("the broker refused the record: {0}")]
    Refused(KafkaError),
    /// No acknowledgement within the bound; the producer may still deliver it later.
    #[error("no acknowledgement from the broker within {0:?}")]
    Timeout(Duration),
    /// The producer was dropped before it reported an outcome.
    #[error("the producer shut down before the broker acknowledged the record")]
    Canceled,
}

/// Produces one record and waits at most `timeout` for the broker's acknowledgement.
///
/// On timeout the record stays queued: the idempotent producer keeps retrying it (without
/// duplicating it) until `message.timeout.ms`; a background task logs the late outcome.
pub async fn produce_acked(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: OwnedHeaders,
    timeout: Duration,
) -> Result<Delivery, AckError> {
    let record = FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers);
    let mut delivery = producer
        .send_result(record)
        .map_err(|(e, _)| AckError::Enqueue(e))?;
    match tokio::time::timeout(timeout, &mut delivery).await {
        Ok(Ok(Ok(d))) => Ok(d),
        Ok(Ok(Err((e, _)))) => Err(AckError::Refused(e)),
        Ok(Err(_)) => Err(AckError::Canceled),
        Err(_) => {
            let topic = topic.to_string();
            let key = key.to_string();
            tokio::spawn(async move {
                match delivery.await {
                    Ok(Ok(d)) => tracing::info!(
                        %topic, %key, partition = d.partition, offset = d.offset,
                        "record delivered after its request timed out (the sender was told 503 and will retry; consumers de-duplicate)"
                    ),
                    Ok(Err((e, _))) => {
                        tracing::warn!(%topic, %key, error = %e, "record not delivered after its request timed out")
                    }
                    Err(_) => {
                        tracing::warn!(%topic, %key, "producer closed before a timed-out record was delivered")
                    }
                }
            });
            Err(AckError::Timeout(timeout))
        }
    }
}

/// The producer's fatal error, if it hit one. An idempotent producer that lost its
/// sequence guarantees refuses every further record; the only recovery is a new producer,
/// which for live2vod means restarting the role (its callers retry meanwhile).
pub fn fatal_error(producer: &FutureProducer) -> Option<String> {
    producer
        .client()
        .fatal_error()
        .map(|(code, reason)| format!("{code}: {reason}"))
}
