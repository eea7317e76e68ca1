//! Consumers: the one consumer context (lag gauge, rebalance events, commit of stored offsets
//! on revoke), the group-consumer factory and the assign-and-read reader factory.
use std::sync::mpsc;
use std::sync::Mutex;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Statistics, TopicPartitionList};

use super::client::{self, ClientKind};
use super::config::KafkaArgs;

/// A partition assignment change, seen by the run loop between records: `(topic, partition)`.
/// Both are sent from inside the consumer's poll, so a loop that drains them before handling
/// the record the poll returned sees them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

impl RebalanceEvent {
    /// The partition numbers it is about.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        let (RebalanceEvent::Assigned(l) | RebalanceEvent::Revoked(l)) = self;
        l.iter().map(|(_, p)| *p)
    }
}

/// How a group member's offsets reach the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commits {
    /// The run loop commits the offsets it chose (the fold, after a batch is durable).
    Explicit,
    /// The run loop stores offsets as records finish and librdkafka commits the stored ones;
    /// the context also commits them before partitions are revoked (the worker).
    Stored,
}

/// The consumer context of every group consumer: publishes per-partition lag from
/// librdkafka's statistics (`statistics.interval.ms`) as [`crate::metrics::CONSUMER_LAG`],
/// forwards rebalances to the run loop and, for [`Commits::Stored`], commits before a revoke.
pub struct GroupContext {
    events: Mutex<mpsc::Sender<RebalanceEvent>>,
    commits: Commits,
}

impl GroupContext {
    /// A context and the receiver of its rebalance events.
    pub fn new(commits: Commits) -> (Self, mpsc::Receiver<RebalanceEvent>) {
        let (tx, rx) = mpsc::channel();
        (
            GroupContext {
                events: Mutex::new(tx),
                commits,
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

fn list(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// One line per topic: `<topic> partitions assigned partitions=[0, 3]` (operators and the
/// process tests read these lines).
fn log_by_topic(tpl: &TopicPartitionList, what: &str) {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for (topic, p) in list(tpl) {
        by_topic.entry(topic).or_default().push(p);
    }
    for (topic, partitions) in by_topic {
        tracing::info!(?partitions, "{topic} partitions {what}");
    }
}

/// A commit that found nothing to commit is not a failure.
fn no_offset(e: &KafkaError) -> bool {
    matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset))
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Revoke(_), Commits::Stored) = (rebalance, self.commits) {
            // Whatever finished is committed before another member takes the partitions, so
            // it does not re-read (and skip) more than needed.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(e) if no_offset(&e) => {}
                Err(e) => tracing::warn!(error = %e, "commit on revoke failed"),
            }
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                log_by_topic(tpl, "assigned");
                self.send(RebalanceEvent::Assigned(list(tpl)));
            }
            Rebalance::Revoke(tpl) => {
                log_by_topic(tpl, "revoked");
                self.send(RebalanceEvent::Revoked(list(tpl)));
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        // Explicit commits report their own failures to the loop that made them.
        if self.commits == Commits::Stored {
            if let Err(e) = result {
                if !no_offset(&e) {
                    tracing::warn!(error = %e, "offset commit failed");
                }
            }
        }
    }
}

/// A group consumer of `group_id` subscribed to `topics`, and its rebalance events.
pub fn group(
    kafka: &KafkaArgs,
    group_id: &str,
    commits: Commits,
    topics: &[&str],
) -> Result<(StreamConsumer<GroupContext>, mpsc::Receiver<RebalanceEvent>), KafkaError> {
    let kind = match commits {
        Commits::Explicit => ClientKind::GroupExplicitCommits { group_id },
        Commits::Stored => ClientKind::GroupStoredOffsets { group_id },
    };
    let (ctx, events) = GroupContext::new(commits);
    let consumer: StreamConsumer<GroupContext> =
        client::config(kafka, kind).create_with_context(ctx)?;
    consumer.subscribe(topics)?;
    Ok((consumer, events))
}

/// An assign-and-read client outside any group (it never commits), blocking or async
/// (`C` = [`BaseConsumer`] or [`StreamConsumer`]). `name` labels it; `eof`: report each
/// partition's end as [`KafkaError::PartitionEOF`].
pub fn reader<C>(kafka: &KafkaArgs, name: &str, eof: bool) -> Result<C, KafkaError>
where
    C: rdkafka::config::FromClientConfig,
{
    client::config(kafka, ClientKind::Reader { name, eof }).create()
}
