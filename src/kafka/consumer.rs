//! Consumer-group plumbing: a context that reports lag and rebalances to the run loop.
use std::sync::mpsc;
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics};

/// A partition assignment change, seen by the run loop between batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// Consumer context shared by the group consumers (fold, worker): publishes per-partition lag
/// from librdkafka's statistics (`statistics.interval.ms`) and forwards rebalances.
pub struct GroupContext {
    events: Mutex<mpsc::Sender<RebalanceEvent>>,
}

impl GroupContext {
    /// A context and the receiver of its rebalance events.
    pub fn new() -> (Self, mpsc::Receiver<RebalanceEvent>) {
        let (tx, rx) = mpsc::channel();
        (
            GroupContext {
                events: Mutex::new(tx),
            },
            rx,
        )
    }

    fn send(&self, ev: RebalanceEvent) {
        if let Ok(tx) = self.events.lock() {
            let _ = tx.send(ev);
        }
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports -1 for partitions it does not consume, and an internal
                // partition -1 (UA): skip both.
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(crate::metrics::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(p.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let list = |tpl: &rdkafka::TopicPartitionList| {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect::<Vec<_>>()
        };
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = ?list(tpl), "partitions assigned");
                self.send(RebalanceEvent::Assigned(list(tpl)));
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = ?list(tpl), "partitions revoked");
                self.send(RebalanceEvent::Revoked(list(tpl)));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}
