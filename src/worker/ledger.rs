//! The ledger of finished command ids, kept on the compacted `<prefix>worker-ledger` topic
//! (key = command id, value = [`LedgerRecord`] JSON, tombstone = forget).
//!
//! It is read fully (every partition up to the high watermark seen at start) before the worker
//! takes commands, then tailed for as long as the worker runs, so that commands finished by
//! another instance (after a rebalance) are recognised too.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::outcome::LedgerRecord;
use crate::kafka::KafkaArgs;

/// Reading the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger topic {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("ledger topic {0} does not exist")]
    Missing(String),
    #[error("ledger topic {topic}: no progress for {idle:?} while loading ({loaded} ids so far)")]
    Stalled {
        topic: String,
        idle: Duration,
        loaded: usize,
    },
    #[error("ledger: {0}")]
    Task(String),
}

/// Command ids known to be finished, shared by the loader/tailer and the executors.
#[derive(Debug, Default)]
pub struct Ledger {
    done: Mutex<HashMap<String, String>>,
}

impl Ledger {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether `command_id` finished (here or in another instance).
    pub fn contains(&self, command_id: &str) -> bool {
        self.lock().contains_key(command_id)
    }

    /// Records `command_id` as finished with `outcome`.
    pub fn insert(&self, command_id: &str, outcome: &str) {
        self.lock()
            .insert(command_id.to_string(), outcome.to_string());
    }

    /// Finished command ids.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // The map stays consistent even if a holder panicked (single inserts/removes).
        self.done.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one ledger record: a value marks the key finished, a tombstone forgets it.
    fn apply(&self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(id) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            tracing::warn!("ledger record without a UTF-8 key ignored");
            return;
        };
        match value {
            None => {
                self.lock().remove(id);
            }
            Some(v) => {
                // A record that does not parse still says "finished": never run it twice.
                let outcome = serde_json::from_slice::<LedgerRecord>(v)
                    .map(|r| r.outcome)
                    .unwrap_or_else(|_| "unknown".into());
                self.insert(id, &outcome);
            }
        }
    }
}

/// A consumer positioned at the end of the ledger after [`load`]; tail it with [`tail`].
pub struct LedgerReader {
    consumer: StreamConsumer,
    topic: String,
}

/// Reads the whole ledger into `ledger`: every partition up to the high watermark observed at
/// start. Fails when the broker gives no progress for `idle` (a stuck load must not let the
/// worker run commands blind).
pub async fn load(
    args: &KafkaArgs,
    ledger: &Ledger,
    idle: Duration,
) -> Result<LedgerReader, LedgerError> {
    let topic = args.topics().ledger;
    let kerr = |source| LedgerError::Kafka {
        topic: topic.clone(),
        source,
    };
    let consumer: StreamConsumer =
        crate::kafka::consumer::reader(args, "live2vod-worker-ledger-reader", true)
            .map_err(kerr)?;

    // Metadata and watermarks are blocking calls: keep them off the async threads.
    let (consumer, ends) = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(10);
            let md = consumer.fetch_metadata(Some(&topic), timeout)?;
            let parts: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            let mut ends = HashMap::new();
            for p in parts {
                let (low, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
                ends.insert(p, (low, high));
            }
            Ok::<_, KafkaError>((consumer, ends))
        })
        .await
        .map_err(|e| LedgerError::Task(e.to_string()))?
        .map_err(kerr)?
    };
    if ends.is_empty() {
        return Err(LedgerError::Missing(topic));
    }
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(&topic, *p, Offset::Beginning)
            .map_err(kerr)?;
    }
    consumer.assign(&tpl).map_err(kerr)?;

    let mut remaining: HashSet<i32> = ends
        .iter()
        .filter(|(_, (low, high))| high > low)
        .map(|(p, _)| *p)
        .collect();
    while !remaining.is_empty() {
        let next = tokio::time::timeout(idle, consumer.recv()).await;
        match next {
            Err(_) => {
                return Err(LedgerError::Stalled {
                    topic,
                    idle,
                    loaded: ledger.len(),
                })
            }
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
            }
            Ok(Err(e)) => {
                // Transient broker errors are retried by librdkafka; keep going.
                tracing::warn!(error = %e, "ledger load: consumer error");
            }
            Ok(Ok(m)) => {
                ledger.apply(m.key(), m.payload());
                let high = ends.get(&m.partition()).map_or(0, |(_, h)| *h);
                if m.offset() + 1 >= high {
                    remaining.remove(&m.partition());
                }
            }
        }
    }
    tracing::info!(topic = %topic, finished_commands = ledger.len(), "ledger loaded");
    Ok(LedgerReader { consumer, topic })
}

/// Keeps applying new ledger records (from this and other worker instances) until `stop`.
pub async fn tail(reader: LedgerReader, ledger: Arc<Ledger>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            m = reader.consumer.recv() => match m {
                Ok(m) => ledger.apply(m.key(), m.payload()),
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => {
                    tracing::warn!(topic = %reader.topic, error = %e, "ledger tail: consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if *stop.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_mark_finished_and_tombstones_forget() {
        let l = Ledger::default();
        l.apply(Some(b"tc-1"), Some(br#"{"Outcome":"ok"}"#));
        l.apply(Some(b"tc-2"), Some(b"not json"));
        assert!(l.contains("tc-1"));
        assert!(
            l.contains("tc-2"),
            "an unreadable record still means finished"
        );
        l.apply(Some(b"tc-1"), None);
        assert!(!l.contains("tc-1"));
        l.apply(None, Some(b"{}"));
        assert_eq!(l.len(), 1);
    }
}
