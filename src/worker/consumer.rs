//! The consume loop over `<prefix>commands`: hands each record to a command task, stores the
//! offset of a partition only up to its lowest unfinished record; librdkafka commits the
//! stored offsets (every second, and on revoke: `kafka::consumer::Commits::Stored`), and the
//! loop commits them at shutdown.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::execute::{Executor, Finish};
use super::tracker::{OffsetTracker, Ticket};
use crate::kafka::consumer::{GroupContext, RebalanceEvent};

/// Settings of the loop.
pub struct LoopSettings {
    pub topic: String,
    /// Records in flight (running or waiting for a deadline) before the loop stops reading.
    pub max_pending: usize,
    /// How long shutdown waits for running commands.
    pub shutdown_timeout: Duration,
    /// Mirror of the records in flight, for [`super::WorkerHandle::in_flight`].
    pub in_flight: Arc<AtomicUsize>,
}

/// Runs until `stop` turns true, then drains in-flight work (bounded) and commits.
pub async fn run_loop(
    consumer: StreamConsumer<GroupContext>,
    mut rebalances: Receiver<RebalanceEvent>,
    exec: Arc<Executor>,
    mut stop: watch::Receiver<bool>,
    settings: LoopSettings,
) {
    let mut tracker = OffsetTracker::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Ticket, Finish)>();
    let mut running = 0usize;

    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            biased;
            // A dropped handle (sender gone) stops the worker like an explicit shutdown.
            changed = stop.changed() => if changed.is_err() { break },
            Some((ticket, finish)) = done_rx.recv() => {
                running -= 1;
                settings.in_flight.store(running, Ordering::Relaxed);
                on_done(&consumer, &settings.topic, &mut tracker, ticket, finish);
            }
            m = consumer.recv(), if running < settings.max_pending => match m {
                Ok(m) => {
                    // The rebalance callback ran inside this poll, before the record was
                    // returned: apply it first so the record lands in the new generation.
                    drain_rebalances(&mut rebalances, &mut tracker);
                    let ticket = tracker.begin(m.partition(), m.offset());
                    let owned = m.detach();
                    let exec = exec.clone();
                    let done = done_tx.clone();
                    running += 1;
                    settings.in_flight.store(running, Ordering::Relaxed);
                    tokio::spawn(async move {
                        // A panicking command must still report back, or its partition's
                        // position would wait for it forever; abandoned, it is retried by the
                        // next owner of the partition.
                        let finish = match tokio::spawn(exec.handle(owned)).await {
                            Ok(f) => f,
                            Err(e) => {
                                tracing::error!(error = %e, "command task failed");
                                Finish::Abandoned
                            }
                        };
                        let _ = done.send((ticket, finish));
                    });
                }
                Err(e) => {
                    drain_rebalances(&mut rebalances, &mut tracker);
                    tracing::warn!(error = %e, "commands consumer error");
                }
            }
        }
    }

    tracing::info!(running, "shutdown: waiting for running commands");
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    while running > 0 {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some((ticket, finish))) => {
                running -= 1;
                settings.in_flight.store(running, Ordering::Relaxed);
                on_done(&consumer, &settings.topic, &mut tracker, ticket, finish);
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    running,
                    "shutdown timeout: leaving commands for the next owner"
                );
                break;
            }
        }
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, "final commit failed"),
    }
}

fn drain_rebalances(rx: &mut Receiver<RebalanceEvent>, tracker: &mut OffsetTracker) {
    while let Ok(ev) = rx.try_recv() {
        if let RebalanceEvent::Revoked(_) = ev {
            for p in ev.partitions() {
                tracker.revoke(p);
            }
        }
    }
}

fn on_done(
    consumer: &StreamConsumer<GroupContext>,
    topic: &str,
    tracker: &mut OffsetTracker,
    ticket: Ticket,
    finish: Finish,
) {
    match finish {
        Finish::Abandoned => tracker.abandon(ticket),
        Finish::Done => {
            if let Some(position) = tracker.finish(ticket) {
                let mut tpl = TopicPartitionList::new();
                if tpl
                    .add_partition_offset(topic, ticket.partition, Offset::Offset(position))
                    .is_ok()
                {
                    // Fails for a partition revoked meanwhile: its new owner re-reads it and
                    // the ledger makes that harmless.
                    if let Err(e) = consumer.store_offsets(&tpl) {
                        tracing::debug!(partition = ticket.partition, error = %e, "offset not stored");
                    }
                }
            }
        }
    }
}
