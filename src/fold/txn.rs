//! `--exactly-once`: a batch's commands, facts, dead letters, snapshots and input offsets
//! committed in one Kafka transaction.
//!
//! Correctness does not depend on this mode (see `runner.rs`: the default mode is correct
//! through idempotence); it only removes the re-emitted duplicates a crash can cause, for
//! brokers that implement transactions.
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::TopicPartitionList;

use crate::kafka::consumer::GroupContext;
use crate::kafka::sink::OutRecord;
use crate::kafka::KafkaArgs;

/// How long one transactional call (init, send offsets, commit, abort) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of a call that failed with a retriable error before giving up.
const RETRIES: u32 = 5;

const NO_TRANSACTIONS_HINT: &str = "the broker may not implement Kafka transactions (tansu, for one, has no EndTxn); run the fold without --exactly-once: the default mode is correct through idempotence";

/// Why transactions cannot go on (the fold turns it into its own error).
#[derive(Debug)]
pub(super) enum TxnError {
    /// The broker (or this configuration) offers no transactions.
    Unavailable {
        id: String,
        error: String,
        hint: &'static str,
    },
    /// A fatal error after transactions worked: the producer cannot continue.
    Fatal(String),
}

/// What became of a batch's transaction.
pub(super) enum Outcome {
    /// Committed; the partition and offset of each record, in order.
    Committed(Vec<(i32, i64)>),
    /// Aborted (an abortable error): nothing of the batch is visible to read_committed
    /// consumers and its offsets were not committed; the caller rewinds.
    Aborted(String),
}

/// The default id when `--transactional-id` is not given: `live2vod-fold-<hostname>`.
pub fn default_transactional_id() -> String {
    let host = crate::clock::hostname().unwrap_or_else(|| "unknown".into());
    format!("live2vod-fold-{host}")
}

/// A transactional producer (idempotent, acks=all, Java-compatible partitioning), with its
/// transactions initialised: this fences an older producer with the same id and fails fast
/// on brokers without transactions.
pub(super) async fn producer(kafka: &KafkaArgs, id: &str) -> Result<FutureProducer, TxnError> {
    let unavailable = |e: String| TxnError::Unavailable {
        id: id.to_string(),
        error: e,
        hint: NO_TRANSACTIONS_HINT,
    };
    let producer = crate::kafka::producer::transactional_producer(kafka, id)
        .map_err(|e| unavailable(e.to_string()))?;
    let p = producer.clone();
    tokio::task::spawn_blocking(move || p.init_transactions(TXN_TIMEOUT))
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(producer)
}

/// Runs one batch's transaction: begin, enqueue every record (the commit flushes them and
/// fails if any failed), add the input offsets with the consumer's group metadata, commit.
/// `committed_before` says whether any transaction of this run committed yet (a fatal error
/// on the first one most likely means the broker lacks transactions).
pub(super) async fn commit_batch(
    producer: &FutureProducer,
    consumer: &StreamConsumer<GroupContext>,
    id: &str,
    records: Vec<OutRecord<'_>>,
    offsets: TopicPartitionList,
    committed_before: bool,
) -> Result<Outcome, TxnError> {
    let fatal = |text: &str| {
        let mut error = text.to_string();
        if let Some(reason) = crate::kafka::producer::fatal_error(producer) {
            error = format!("{error} ({reason})");
        }
        if committed_before {
            TxnError::Fatal(error)
        } else {
            TxnError::Unavailable {
                id: id.to_string(),
                error,
                hint: NO_TRANSACTIONS_HINT,
            }
        }
    };
    if let Err(e) = producer.begin_transaction() {
        return Err(fatal(&e.to_string()));
    }
    let mut deliveries = Vec::with_capacity(records.len());
    for r in &records {
        loop {
            match producer.send_result(r.future_record(r.headers.clone())) {
                // The delivery outcome is not awaited here: commit_transaction flushes every
                // record and fails (abortably) if one of them failed; the offsets are read
                // after the commit.
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return abort(producer, e.to_string(), &fatal).await,
            }
        }
    }
    let Some(group) = consumer.group_metadata() else {
        return abort(
            producer,
            "the consumer has no group metadata".into(),
            &fatal,
        )
        .await;
    };
    let p = producer.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(), CallError> {
        retry(|| p.send_offsets_to_transaction(&offsets, &group, TXN_TIMEOUT))?;
        retry(|| p.commit_transaction(TXN_TIMEOUT))
    })
    .await
    .map_err(|e| TxnError::Fatal(e.to_string()))?;
    match result {
        Ok(()) => {
            // Every delivery resolved before the commit returned.
            let mut offsets = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                match d.await {
                    Ok(Ok(d)) => offsets.push((d.partition, d.offset)),
                    Ok(Err((e, _))) => {
                        return Err(TxnError::Fatal(format!(
                            "a record of a committed transaction reports {e}"
                        )))
                    }
                    Err(_) => {
                        return Err(TxnError::Fatal(
                            "a committed record's delivery report was lost".into(),
                        ))
                    }
                }
            }
            Ok(Outcome::Committed(offsets))
        }
        Err(e) if requires_abort(&e.error) && !unsupported(&e.text) => {
            abort(producer, e.text, &fatal).await
        }
        Err(e) => Err(fatal(&e.text)),
    }
}

/// A transactional call that failed, with the text of every attempt.
struct CallError {
    error: KafkaError,
    text: String,
}

/// Calls `f` again while it fails with a retriable (not fatal, not abortable) error, on the
/// shared retry module (immediately: the transaction timeout already paces librdkafka). The
/// first error is kept in the text: a retry that then conflicts hides the cause otherwise.
fn retry(f: impl FnMut() -> Result<(), KafkaError>) -> Result<(), CallError> {
    let mut text = String::new();
    let retryable = |e: &KafkaError| match e {
        KafkaError::Transaction(e) => {
            !unsupported(&e.to_string())
                && e.is_retriable()
                && !e.is_fatal()
                && !e.txn_requires_abort()
        }
        _ => false,
    };
    let result = crate::retry::retry_blocking(
        &crate::retry::RetryPolicy::immediate(RETRIES),
        crate::retry::Jitter::None,
        f,
        retryable,
        |error, failure| {
            if failure.backoff.is_some() {
                tracing::warn!(%error, attempt = failure.attempt, "retriable transaction error, retrying");
                let e = error.to_string();
                if !text.contains(&e) {
                    text.push_str(&format!("{e}; then "));
                }
            }
        },
    );
    result.map_err(|error| {
        text.push_str(&error.to_string());
        CallError { error, text }
    })
}

/// librdkafka's words for a request the broker does not implement (e.g. EndTxn on tansu):
/// nothing to retry or abort, the mode cannot work on this broker.
fn unsupported(text: &str) -> bool {
    text.contains("not supported by broker")
}

fn requires_abort(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(e) => !e.is_fatal() && (e.txn_requires_abort() || e.is_retriable()),
        _ => false,
    }
}

async fn abort(
    producer: &FutureProducer,
    reason: String,
    fatal: &impl Fn(&str) -> TxnError,
) -> Result<Outcome, TxnError> {
    tracing::warn!(error = %reason, "aborting the batch's transaction");
    let p = producer.clone();
    let aborted = tokio::task::spawn_blocking(move || retry(|| p.abort_transaction(TXN_TIMEOUT)))
        .await
        .map_err(|e| TxnError::Fatal(e.to_string()))?;
    match aborted {
        Ok(()) => Ok(Outcome::Aborted(reason)),
        Err(e) => Err(fatal(&format!("{reason}; abort failed: {}", e.text))),
    }
}
