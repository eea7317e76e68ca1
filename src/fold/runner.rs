//! The fold's consume-fold-produce-commit loop.
//!
//! Per batch, in this order (each step waits for the broker's acknowledgement):
//! 1. commands, derived stream facts and dead letters are produced;
//! 2. the snapshots of the aggregates the batch changed are produced, each to the aggregates
//!    partition with the same number as its input partition (co-partitioning by construction);
//! 3. the input offsets are committed.
//!
//! A crash between 1 and 2 re-folds the batch from older snapshots and re-emits the same
//! commands (same ids: the worker's ledger and VOD's SessionId absorb them); a crash between 2
//! and 3 re-delivers records that the restored aggregates recognise as already applied. No
//! step can lose an event or a command.
//!
//! A record no parser accepts (or without a usable key or value) becomes a dead letter of the
//! batch, written in step 1 with its original key and value (cut, with its length in a
//! header, only when too large to forward) and headers naming its origin and the error; its
//! offset is committed with the batch, so the partition keeps moving. When the dead-letter
//! breaker trips, the batch ends at the tripping record, is made durable and committed like
//! any other, and then the fold stops with [`FoldError::BreakerOpen`] (readiness falls).
//!
//! With `--exactly-once` (`txn.rs`, `flush_txn`) the three steps become one Kafka transaction
//! (the input offsets go in with `send_offsets_to_transaction`): nothing of a batch is visible
//! to read_committed consumers until all of it is, and an aborted batch is rewound to the
//! committed offsets and folded again from restored snapshots. Correctness does not depend on
//! it; it removes the re-emitted duplicates a crash can cause.
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::state::{self as local, StateConfig};
use super::txn::{self, Outcome, TxnError};
use crate::domain::engine::ApplyError;
use crate::domain::video::VideoStatus;
use crate::domain::{Engine, InputPos};
use crate::http::Health;
use crate::kafka::consumer::{Commits, GroupContext, RebalanceEvent};
use crate::kafka::dlq::{Breaker, DeadLetter};
use crate::kafka::read::ReadTo;
use crate::kafka::sink::{self, OutRecord};
use crate::kafka::{KafkaArgs, Topics};
use crate::metrics as m;
use crate::store::{PartitionStore, StoreBatch};

use super::config::FoldConfig;

/// Why the fold stopped.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("could not make a batch's output durable: {0}")]
    Produce(String),
    #[error("restoring partitions {partitions:?} from {topic}: {error}")]
    Restore {
        topic: String,
        partitions: Vec<i32>,
        error: String,
    },
    #[error(
        "--exactly-once: cannot use Kafka transactions (transactional id {id:?}): {error}; {hint}"
    )]
    TransactionsUnavailable {
        id: String,
        error: String,
        hint: &'static str,
    },
    #[error("state store (--state-dir): {0}")]
    State(String),
    #[error("--exactly-once: fatal transaction error, the producer cannot continue (another instance with the same --transactional-id fenced this one?): {0}")]
    TransactionFatal(String),
    #[error("dead-letter circuit breaker open: {dead} of the last {seen} records went to the DLQ, more than --dlq-max-ratio {max_ratio} (last error: {last}); the input topic probably carries foreign data — inspect the DLQ topic {dlq_topic}, fix the producer, then restart (the records up to the one that tripped it are dead-lettered and committed; tune with --dlq-max-ratio, --dlq-window, --dlq-min)")]
    BreakerOpen {
        dead: u64,
        seen: u64,
        max_ratio: f64,
        dlq_topic: String,
        last: String,
    },
}

impl From<TxnError> for FoldError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Unavailable { id, error, hint } => {
                FoldError::TransactionsUnavailable { id, error, hint }
            }
            TxnError::Fatal(e) => FoldError::TransactionFatal(e),
        }
    }
}

/// Counters of one fold run, returned when it stops.
#[derive(Debug, Default, Clone)]
pub struct FoldStats {
    pub records: u64,
    pub folded: u64,
    pub duplicates: u64,
    pub already_applied: u64,
    pub dead_lettered: u64,
    pub commands: u64,
    pub derived: u64,
    pub snapshots: u64,
    pub batches: u64,
    /// Next offset per input partition as of the last batch whose offsets were committed
    /// (in `--exactly-once` mode: sent with its transaction).
    pub offsets: std::collections::BTreeMap<i32, i64>,
    /// `--exactly-once`: batches whose transaction was aborted (and folded again).
    pub aborted: u64,
    /// `--state-dir`: changelog records the restores of this run read (a kept store: only
    /// the tail it did not reflect).
    pub restored_records: u64,
    /// `--state-dir`: partition stores found untrusted (unreadable file, another partition's,
    /// ahead of the topic, a value failing its checksum), deleted and rebuilt from the topic.
    pub stores_rebuilt: u64,
}

/// Output of a batch waiting to be made durable.
#[derive(Default)]
struct Pending {
    /// Commands with the relay's receipt time of their cause and their input partition.
    commands: Vec<(crate::proto::Command, Option<i64>, i32)>,
    /// Derived stream facts (key, body) with their input partition.
    derived: Vec<(String, Vec<u8>, i32)>,
    dead: Vec<DeadRecord>,
    /// Aggregate key -> input partition, for the snapshots to write. Snapshots are encoded once
    /// per aggregate at flush (the newest state), not once per record.
    dirty: HashMap<String, i32>,
    /// Next offset to commit, per input partition.
    offsets: HashMap<i32, i64>,
}

impl Pending {
    /// Forgets everything the batch produced from input partition `p` (revoked mid-batch):
    /// its new owner folds those records again from the last commit, and writing them from
    /// here could land after the new owner's snapshots and overwrite them in the compacted
    /// topic (a zombie write that loses the new owner's events).
    fn drop_partition(&mut self, p: i32) {
        self.commands.retain(|c| c.2 != p);
        self.derived.retain(|d| d.2 != p);
        self.dead.retain(|d| d.partition != p);
        self.dirty.retain(|_, partition| *partition != p);
        self.offsets.remove(&p);
    }
}

struct DeadRecord {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    partition: i32,
    offset: i64,
    reason: &'static str,
    error: String,
}

impl DeadRecord {
    /// The value its dead letter carries (cut to fit `max_message`), and the original length
    /// when cut.
    fn fit(&self, max_message: usize) -> (Option<&[u8]>, Option<usize>) {
        let key_len = self.key.as_ref().map_or(0, Vec::len);
        match &self.payload {
            Some(p) => {
                let (kept, from) = crate::kafka::dlq::fit_value(p, key_len, max_message);
                (Some(kept), from)
            }
            None => (None, None),
        }
    }
}

/// A batch's records for the sinks: step 1, step 2, and the kind of each command.
struct Output<'t> {
    records: Vec<OutRecord<'t>>,
    snapshots: Vec<OutRecord<'t>>,
    kinds: Vec<&'static str>,
    /// With a state store: per snapshot (in the order of `snapshots`), what the store gets
    /// once the snapshot is durable: key, video status, bytes.
    store_puts: Vec<(String, Option<VideoStatus>, Vec<u8>)>,
}

/// Runs the fold until `stop` turns true (then the batch in flight is finished and committed).
pub async fn run_fold(
    cfg: FoldConfig,
    health: Health,
    mut stop: watch::Receiver<bool>,
) -> Result<FoldStats, FoldError> {
    let topics = cfg.kafka.topics();
    let (consumer, rebalances) = crate::kafka::consumer::group(
        &cfg.kafka,
        &cfg.group_id,
        Commits::Explicit,
        &[&topics.callbacks],
    )?;
    let producer = match &cfg.transactional_id {
        Some(id) => txn::producer(&cfg.kafka, id).await?,
        None => crate::kafka::producer::idempotent_producer(&cfg.kafka)?,
    };
    let mut fold = Fold {
        engine: Engine::new(cfg.policy.clone()),
        restored: HashSet::new(),
        dropped: HashSet::new(),
        assigned: HashSet::new(),
        rebalances,
        breaker: Breaker::new(cfg.dlq_window, cfg.dlq_max_ratio, cfg.dlq_min),
        stats: FoldStats::default(),
        topics,
        kafka: cfg.kafka.clone(),
        exactly_once: cfg.transactional_id.is_some(),
        committed_txn: false,
        transactional_id: cfg.transactional_id.clone().unwrap_or_default(),
        dlq_max_message: crate::kafka::dlq::max_message_bytes(&cfg.kafka),
        tripped: None,
        state: cfg.state.clone().map(|cfg| State {
            cfg,
            stores: HashMap::new(),
        }),
        health: health.clone(),
    };
    match &cfg.state {
        Some(s) => tracing::info!(dir = %s.dir.display(), cache_mb = s.cache_bytes >> 20, "fold state: a local store per partition with a bounded cache"),
        None => tracing::info!("fold state: no --state-dir, every aggregate of the owned partitions is kept in memory and every start restores whole partitions from the topic; set --state-dir for bounded memory and restarts"),
    }
    health.set_ready(true);
    tracing::info!(group = %cfg.group_id, topic = %fold.topics.callbacks, transactional_id = ?cfg.transactional_id, "fold started");

    // Readiness must fall whichever way the loop ends: `live2vod run` reports one readiness
    // for all its roles, and a fold that died on an error must not keep it green.
    let outcome: Result<(), FoldError> = async {
        loop {
            fold.handle_rebalances(None);
            // Wait for the first record of a batch, or for the stop signal.
            let first = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                msg = consumer.recv() => msg,
            };
            let started = Instant::now();
            let stats_before = fold.stats.clone();
            let mut pending = Pending::default();
            match first {
                Ok(msg) => fold.process(&consumer, &msg, &mut pending).await?,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    continue;
                }
            }
            let deadline = tokio::time::Instant::now() + cfg.batch_wait;
            let mut n = 1;
            // A tripped breaker ends the batch at the record that tripped it.
            while n < cfg.batch_max && fold.tripped.is_none() {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(Ok(msg)) => {
                        fold.process(&consumer, &msg, &mut pending).await?;
                        n += 1;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                    Err(_) => break,
                }
            }
            fold.flush(&producer, &consumer, pending, stats_before)
                .await?;
            metrics::histogram!(m::FOLD_BATCH_LATENCY).record(started.elapsed().as_secs_f64());
            // The batch up to the tripping record is durable and committed (its dead letters
            // are in the DLQ for the operator to inspect); nothing after it was consumed.
            if let Some(e) = fold.tripped.take() {
                return Err(e);
            }
            if cfg
                .stop_after_records
                .is_some_and(|n| fold.stats.records >= n + fold.stats.derived)
            {
                break;
            }
        }
        Ok(())
    }
    .await;
    health.set_ready(false);
    fold.close_stores();
    outcome?;
    consumer.unsubscribe();
    tracing::info!(stats = ?fold.stats, "fold stopping");
    Ok(fold.stats)
}

struct Fold {
    engine: Engine,
    restored: HashSet<i32>,
    /// Partitions whose records were dropped from a batch when they were revoked mid-batch;
    /// their next record here rewinds them to the committed offset.
    dropped: HashSet<i32>,
    /// Input partitions assigned to this instance (from rebalance events).
    assigned: HashSet<i32>,
    rebalances: Receiver<RebalanceEvent>,
    breaker: Breaker,
    stats: FoldStats,
    topics: Topics,
    kafka: KafkaArgs,
    /// `--exactly-once` mode (batches go through `flush_txn`).
    exactly_once: bool,
    /// Whether a transaction of this run committed yet.
    committed_txn: bool,
    /// `--transactional-id` (empty in the default mode).
    transactional_id: String,
    /// `message.max.bytes` of the producer: dead letters are cut to fit it.
    dlq_max_message: usize,
    /// The dead-letter breaker tripped in the current batch: write the batch so far, then stop.
    tripped: Option<FoldError>,
    /// `--state-dir`: the stores of the owned partitions.
    state: Option<State>,
    /// Readiness: false while partitions restore.
    health: Health,
}

/// The local state of the owned partitions (`--state-dir`).
struct State {
    cfg: StateConfig,
    stores: HashMap<i32, PartitionStore>,
}

impl Fold {
    fn handle_rebalances(&mut self, mut pending: Option<&mut Pending>) {
        while let Ok(ev) = self.rebalances.try_recv() {
            match ev {
                RebalanceEvent::Revoked(_) => {
                    for p in ev.partitions() {
                        // Nothing this batch derived from the lost partition is written (see
                        // `Pending::drop_partition`). If the partition comes straight back to
                        // this instance (eager rebalancing often does that), the consumer may
                        // go on from its fetch position, past the dropped records: the next
                        // record of the partition rewinds it to the committed offset first.
                        if let Some(pending) = pending.as_deref_mut() {
                            if pending.offsets.contains_key(&p) {
                                self.dropped.insert(p);
                            }
                            pending.drop_partition(p);
                        }
                        // Another instance owns it now and will restore it from the snapshots.
                        self.assigned.remove(&p);
                        self.restored.remove(&p);
                        self.engine.evict_partition(p);
                        self.close_store(p);
                    }
                    self.recount_statuses();
                }
                RebalanceEvent::Assigned(_) => {
                    self.assigned.extend(ev.partitions());
                }
            }
        }
    }

    async fn process(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        msg: &BorrowedMessage<'_>,
        pending: &mut Pending,
    ) -> Result<(), FoldError> {
        let partition = msg.partition();
        let offset = msg.offset();
        self.handle_rebalances(Some(pending));
        if !self.assigned.contains(&partition) {
            // Fetched before its partition was revoked: the new owner folds it.
            tracing::debug!(
                partition,
                offset,
                "record of a partition no longer assigned skipped"
            );
            return Ok(());
        }
        if self.dropped.remove(&partition) {
            // Records of this partition were dropped from an earlier batch when it was
            // revoked, and it came back here: fold again from the committed offset (the
            // seek discards what was fetched before it; this record comes again too).
            tracing::info!(
                partition,
                offset,
                "partition re-assigned after its batch output was dropped; rewinding to the committed offset"
            );
            self.rewind(consumer, &[partition])?;
            return Ok(());
        }
        if !self.restored.contains(&partition) {
            // Restore every newly assigned partition in one read, not one client each.
            let mut todo: Vec<i32> = self
                .assigned
                .iter()
                .copied()
                .filter(|p| !self.restored.contains(p))
                .collect();
            if !todo.contains(&partition) {
                todo.push(partition);
            }
            self.restore(&todo).await?;
            self.restored.extend(todo);
            self.recount_statuses();
        }
        self.stats.records += 1;
        pending.offsets.insert(partition, offset + 1);
        let key = msg.key().and_then(|k| std::str::from_utf8(k).ok());
        let (Some(key), Some(body)) = (key, msg.payload()) else {
            let error = if msg.payload().is_none() {
                "record has no value"
            } else {
                "record key is missing or not UTF-8"
            };
            return self.dead(msg, pending, "unroutable", error.to_string());
        };
        let pos = InputPos { partition, offset };
        let result = match self.state.as_ref().and_then(|s| s.stores.get(&partition)) {
            Some(store) => self.engine.apply_loading(key, body, pos, |k| {
                let got = store.get(k).map_err(|e| e.to_string())?;
                if got.is_some() {
                    metrics::counter!(m::STATE_CACHE_LOADS).increment(1);
                }
                Ok(got)
            }),
            // Everything in memory: nothing to load, but the status before is wanted too.
            None => self.engine.apply_loading(key, body, pos, |_| Ok(None)),
        };
        match result {
            Err(ApplyError::Load { key, error }) => {
                self.untrusted_store(consumer, pending, partition, &key, &error)?;
                Ok(())
            }
            Ok(applied) => {
                self.track_status(&applied);
                self.breaker.record(false);
                if applied.already_applied {
                    self.stats.already_applied += 1;
                    return Ok(());
                }
                self.stats.folded += 1;
                metrics::counter!(m::FOLD_EVENTS, "event_type" => applied.event_type.clone())
                    .increment(1);
                if applied.duplicate {
                    self.stats.duplicates += 1;
                    metrics::counter!(m::FOLD_DUPLICATES).increment(1);
                }
                if let Some((fact, source_ms)) = applied.recovered {
                    // Counted here, not where reconcile writes the observation: only the fold
                    // knows whether a callback brought the fact first (reconcile's view of the
                    // aggregates trails the fold by a snapshot).
                    metrics::counter!(m::RECONCILE_RECOVERED, "what" => fact.name()).increment(1);
                    let delay = (now_ms() - source_ms).max(0) as f64 / 1000.0;
                    metrics::histogram!(m::RECONCILE_RECOVERY_DELAY).record(delay);
                }
                let received_at = header_i64(msg, crate::domain::vocab::header::RECEIVED_AT_MS);
                pending.commands.extend(
                    applied
                        .commands
                        .into_iter()
                        .map(|c| (c, received_at, partition)),
                );
                pending
                    .derived
                    .extend(applied.derived.into_iter().map(|(k, b)| (k, b, partition)));
                // Counters and the input position move even when the state does not: write
                // them too, so a re-delivery after a crash is recognised and counted once.
                if applied.dirty {
                    pending.dirty.insert(applied.aggregate_key, partition);
                }
                Ok(())
            }
            Err(ApplyError::Event(e)) => self.dead(msg, pending, "undecodable", e.to_string()),
        }
    }

    /// A value of `partition`'s store failed its checksum or does not decode: nothing of the
    /// store is trusted any more. It is deleted, the batch's output from the partition is
    /// dropped, and the partition is rewound to its committed offset, so its next record
    /// restores it from the topic (the record that hit the bad value comes again).
    fn untrusted_store(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        pending: &mut Pending,
        partition: i32,
        key: &str,
        error: &str,
    ) -> Result<(), FoldError> {
        tracing::error!(partition, key, error, "state store value cannot be trusted; deleting the store and restoring the partition from the topic");
        metrics::counter!(m::STATE_STORE_REBUILT, "reason" => "bad_value").increment(1);
        self.stats.stores_rebuilt += 1;
        if let Some(store) = self
            .state
            .as_mut()
            .and_then(|s| s.stores.remove(&partition))
        {
            store.wipe().map_err(|e| FoldError::State(e.to_string()))?;
        }
        pending.drop_partition(partition);
        self.rewind(consumer, &[partition])
    }

    /// Makes a partition's store durable and closes it (revoked: the file stays for when it
    /// comes back).
    fn close_store(&mut self, partition: i32) {
        if let Some(mut store) = self
            .state
            .as_mut()
            .and_then(|s| s.stores.remove(&partition))
        {
            if let Err(e) = store.sync() {
                tracing::warn!(partition, error = %e, "state store could not be synced on close (the next restore reads a longer tail)");
            }
        }
    }

    /// Closes every store (the fold stops).
    fn close_stores(&mut self) {
        let parts: Vec<i32> = self
            .state
            .as_ref()
            .map(|s| s.stores.keys().copied().collect())
            .unwrap_or_default();
        for p in parts {
            self.close_store(p);
        }
    }

    /// Keeps the videos-by-status gauge (without a state store; with one, the gauge is set from
    /// the stores' counts after each batch) and the record-to-playable histogram (the user's
    /// SLO: RecordEndTime of a segment, or compose start of a composed video, to the
    /// TranscodeComplete that made it playable, both in event time).
    fn track_status(&self, applied: &crate::domain::Applied) {
        let Some(v) = self.engine.video(&applied.aggregate_key) else {
            return;
        };
        let before = applied.status_before;
        let after = v.status();
        if before == Some(after) {
            return;
        }
        if self.state.is_none() {
            if let Some(b) = before {
                metrics::gauge!(m::VIDEOS_BY_STATUS, "status" => b.as_str()).decrement(1.0);
            }
            metrics::gauge!(m::VIDEOS_BY_STATUS, "status" => after.as_str()).increment(1.0);
        }
        if after == VideoStatus::Ready {
            let start = v
                .origin
                .as_ref()
                .map(|o| o.value.record_end_ms.unwrap_or(o.at_ms));
            if let (Some(start), Some(ready)) = (start, v.last_event_ms) {
                if ready >= start {
                    metrics::histogram!(m::RECORD_TO_PLAYABLE)
                        .record((ready - start) as f64 / 1000.0);
                }
            }
        }
    }

    /// Sets the videos-by-status gauge from the aggregates held (after a restore or eviction).
    /// With a state store, from the stores' per-status counts (the cache holds only part).
    fn recount_statuses(&self) {
        let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
        match &self.state {
            Some(state) => {
                for (p, store) in &state.stores {
                    match store.status_counts() {
                        Ok(c) => {
                            for (s, n) in c {
                                *counts.entry(s).or_default() += n;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(partition = p, error = %e, "state store counts unreadable; the videos gauge is partial")
                        }
                    }
                }
                metrics::gauge!(m::STATE_CACHE_BYTES).set(self.engine.cached_bytes() as f64);
            }
            None => {
                for (_, agg) in self.engine.aggregates() {
                    if let Some(v) = agg.as_video() {
                        *counts.entry(v.status().as_str().to_string()).or_default() += 1;
                    }
                }
            }
        }
        for s in VideoStatus::ALL {
            let n = counts.get(s.as_str()).copied().unwrap_or(0);
            metrics::gauge!(m::VIDEOS_BY_STATUS, "status" => s.as_str()).set(n as f64);
        }
    }

    fn dead(
        &mut self,
        msg: &BorrowedMessage<'_>,
        pending: &mut Pending,
        reason: &'static str,
        error: String,
    ) -> Result<(), FoldError> {
        tracing::warn!(partition = msg.partition(), offset = msg.offset(), %reason, %error, "dead-lettering record");
        pending.dead.push(DeadRecord {
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().map(<[u8]>::to_vec),
            partition: msg.partition(),
            offset: msg.offset(),
            reason,
            error: error.clone(),
        });
        if self.breaker.record(true) {
            let (dead, seen) = self.breaker.counts();
            metrics::gauge!(m::DLQ_BREAKER_OPEN).set(1.0);
            let e = FoldError::BreakerOpen {
                dead,
                seen,
                max_ratio: self.breaker.max_ratio(),
                dlq_topic: self.topics.dlq.clone(),
                last: error,
            };
            // Logged here too: `live2vod run` keeps serving its other roles' logs a moment.
            tracing::error!(partition = msg.partition(), offset = msg.offset(), error = %e, "stopping the fold");
            self.tripped = Some(e);
        }
        Ok(())
    }

    /// Reads the aggregates partitions with the same numbers from the beginning to their high
    /// watermarks and restores every snapshot (the newest of a key wins).
    async fn restore(&mut self, partitions: &[i32]) -> Result<(), FoldError> {
        if self.state.is_some() {
            self.health.set_ready(false);
            let result = self.restore_stores(partitions).await;
            self.health.set_ready(true);
            return result;
        }
        let topic = self.topics.aggregates.clone();
        let kafka = self.kafka.clone();
        let started = Instant::now();
        let (t, parts) = (topic.clone(), partitions.to_vec());
        let fail = |error: String| FoldError::Restore {
            topic: topic.clone(),
            partitions: partitions.to_vec(),
            error,
        };
        // With `--exactly-once` the aggregates topic holds transaction markers: read to the
        // committed end of each partition, not to the record at high watermark - 1.
        let to = if self.exactly_once {
            ReadTo::CommittedEnd
        } else {
            ReadTo::HighWatermark
        };
        let records = tokio::task::spawn_blocking(move || {
            crate::kafka::read::read_partitions_to(&kafka, &t, &parts, to)
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
        let n = records.len();
        for (_, key, value) in records {
            if let Err(e) = self.engine.restore(&key, &value) {
                // A snapshot this version cannot read: refuse to fold on a partial state.
                return Err(fail(format!("snapshot of {key}: {e}")));
            }
        }
        tracing::info!(
            ?partitions,
            snapshots = n,
            ms = started.elapsed().as_millis() as u64,
            "partitions restored"
        );
        Ok(())
    }

    /// Brings the stores of `partitions` up to the end of their aggregates partitions, one
    /// after the other, off the async threads (`/readyz` is false meanwhile). The engine loads
    /// aggregates from them as records need them.
    async fn restore_stores(&mut self, partitions: &[i32]) -> Result<(), FoldError> {
        let to = if self.exactly_once {
            ReadTo::CommittedEnd
        } else {
            ReadTo::HighWatermark
        };
        let owned = self.assigned.len().max(partitions.len());
        for &p in partitions {
            let state = self
                .state
                .as_mut()
                .expect("restore_stores with a state store");
            let cfg = state.cfg.clone();
            let existing = state.stores.remove(&p);
            let (kafka, topic) = (self.kafka.clone(), self.topics.aggregates.clone());
            let page_cache = cfg.page_cache_bytes(owned);
            let fail = |error: String| FoldError::Restore {
                topic: self.topics.aggregates.clone(),
                partitions: vec![p],
                error,
            };
            let restored = tokio::task::spawn_blocking(move || {
                local::restore_partition(&kafka, &topic, p, &cfg, page_cache, existing, to)
            })
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(fail)?;
            tracing::info!(
                partition = p,
                state = ?restored.opened,
                from = restored.from,
                to = restored.high,
                records = restored.records,
                ms = restored.elapsed.as_millis() as u64,
                "partition state restored"
            );
            self.stats.restored_records += restored.records;
            if matches!(restored.opened, crate::store::Opened::Discarded { .. }) {
                self.stats.stores_rebuilt += 1;
            }
            let state = self
                .state
                .as_mut()
                .expect("restore_stores with a state store");
            state.stores.insert(p, restored.store);
        }
        Ok(())
    }

    /// Writes a durable batch's snapshots to the stores, each partition's with the offset after
    /// the last of its snapshots (`deliveries`: partition and offset of each snapshot, in the
    /// order of `puts`), then drops least recently used aggregates from the cache to fit.
    fn write_back(
        &mut self,
        puts: Vec<(String, Option<VideoStatus>, Vec<u8>)>,
        deliveries: &[(i32, i64)],
    ) -> Result<(), FoldError> {
        let Some(state) = self.state.as_mut() else {
            return Ok(());
        };
        let mut batches: HashMap<i32, StoreBatch> = HashMap::new();
        for (put, &(p, offset)) in puts.into_iter().zip(deliveries) {
            self.engine.note_snapshot_len(&put.0, put.2.len());
            let b = batches.entry(p).or_default();
            b.next_offset = Some(b.next_offset.unwrap_or(0).max(offset + 1));
            b.puts.push(put);
        }
        for (p, batch) in batches {
            let Some(store) = state.stores.get_mut(&p) else {
                // Revoked since: the snapshots are in the topic, its next owner reads them.
                continue;
            };
            store
                .write(batch)
                .map_err(|e| FoldError::State(e.to_string()))?;
        }
        let budget = state.cfg.engine_bytes();
        self.engine.evict_lru(budget);
        self.recount_statuses();
        Ok(())
    }

    /// The batch's output, built once for either sink: commands, stream facts and dead
    /// letters (step 1), then the snapshots of the aggregates it changed (step 2).
    fn output<'t>(&self, topics: &'t Topics, pending: &mut Pending) -> Output<'t> {
        let mut records =
            Vec::with_capacity(pending.commands.len() + pending.derived.len() + pending.dead.len());
        let mut kinds = Vec::with_capacity(pending.commands.len());
        for (c, _, _) in &pending.commands {
            let kind = kind_of(c);
            kinds.push(kind);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: crate::domain::vocab::header::COMMAND_ID,
                    value: Some(c.command_id.as_str()),
                })
                .insert(Header {
                    key: crate::domain::vocab::header::COMMAND_KIND,
                    value: Some(kind),
                });
            records.push(
                OutRecord::keyed(&topics.commands, c.video_id.as_bytes(), c.encode_to_vec())
                    .with_headers(headers),
            );
        }
        for (key, body, _) in &mut pending.derived {
            let headers = OwnedHeaders::new().insert(Header {
                key: crate::domain::vocab::header::EVENT_TYPE,
                value: Some(crate::domain::vocab::event_type::STREAM_FACT),
            });
            records.push(
                OutRecord::keyed(&topics.callbacks, key.as_bytes(), std::mem::take(body))
                    .with_headers(headers),
            );
        }
        for d in &pending.dead {
            let (payload, truncated_from) = d.fit(self.dlq_max_message);
            let dl = DeadLetter {
                role: "fold",
                topic: &topics.callbacks,
                partition: d.partition,
                offset: d.offset,
                reason: d.reason,
                error: d.error.clone(),
                truncated_from,
            };
            records.push(OutRecord {
                topic: &topics.dlq,
                partition: None,
                key: d.key.clone(),
                payload: payload.map(<[u8]>::to_vec),
                headers: Some(dl.headers()),
            });
        }
        let with_store = self.state.is_some();
        let mut store_puts = Vec::new();
        let snapshots = std::mem::take(&mut pending.dirty)
            .into_iter()
            .filter_map(|(key, p)| {
                let bytes = self.engine.snapshot_bytes(&key)?;
                if with_store {
                    let status = self.engine.video(&key).map(|v| v.status());
                    store_puts.push((key.clone(), status, bytes.clone()));
                }
                Some(OutRecord::keyed(&topics.aggregates, key, bytes).to_partition(p))
            })
            .collect();
        Output {
            records,
            snapshots,
            kinds,
            store_puts,
        }
    }

    /// Writes a batch (through the acked or the transactional sink) and commits its offsets.
    async fn flush(
        &mut self,
        producer: &FutureProducer,
        consumer: &StreamConsumer<GroupContext>,
        mut pending: Pending,
        stats_before: FoldStats,
    ) -> Result<(), FoldError> {
        // A revocation seen by the batch's last poll: drop that partition's output first.
        self.handle_rebalances(Some(&mut pending));
        let started_ms = now_ms();
        let topics = self.topics.clone();
        let Output {
            mut records,
            snapshots,
            kinds,
            store_puts,
        } = self.output(&topics, &mut pending);
        let snapshot_count = snapshots.len() as u64;
        let offsets = sink::offset_list(&topics.callbacks, &pending.offsets)?;
        if self.exactly_once {
            records.extend(snapshots);
            let outcome = txn::commit_batch(
                producer,
                consumer,
                &self.transactional_id,
                records,
                offsets,
                self.committed_txn,
            )
            .await?;
            let deliveries = match outcome {
                Outcome::Aborted(reason) => {
                    let aborted = self.stats.aborted + 1;
                    self.stats = stats_before;
                    self.stats.aborted = aborted;
                    let parts: Vec<i32> = pending.offsets.keys().copied().collect();
                    self.rewind(consumer, &parts)?;
                    tracing::warn!(partitions = ?parts, %reason, "batch aborted; partitions rewound to their committed offsets and will be restored and folded again");
                    return Ok(());
                }
                Outcome::Committed(deliveries) => deliveries,
            };
            self.committed_txn = true;
            // The snapshots went last into the transaction.
            let first_snapshot = deliveries.len().saturating_sub(store_puts.len());
            self.write_back(store_puts, &deliveries[first_snapshot..])?;
            self.durable(&pending, &kinds, started_ms);
            self.stats.offsets.extend(&pending.offsets);
        } else {
            let timeout = Duration::from_secs(30);
            let failed = |e: rdkafka::error::KafkaError| FoldError::Produce(e.to_string());
            // 1. Commands, derived facts, dead letters.
            sink::produce_all(producer, records, timeout)
                .await
                .map_err(failed)?;
            self.durable(&pending, &kinds, started_ms);
            // 2. Snapshots of what changed, co-partitioned with the input (then the same bytes
            // to the local stores, with the offsets the broker gave them).
            let deliveries = sink::produce_all(producer, snapshots, timeout)
                .await
                .map_err(failed)?;
            self.write_back(store_puts, &deliveries)?;
            // 3. Input offsets.
            if !pending.offsets.is_empty() {
                if let Err(e) = sink::commit_offsets(consumer, &offsets) {
                    // After a revocation the new owner re-folds from the last commit: at
                    // least once.
                    tracing::warn!(error = %e, "offset commit failed (rebalance?)");
                } else {
                    self.stats.offsets.extend(&pending.offsets);
                }
            }
        }
        self.stats.snapshots += snapshot_count;
        self.stats.batches += 1;
        Ok(())
    }

    /// Counts a batch's commands, facts and dead letters once they are durable (the
    /// callback-to-command latency ends here).
    fn durable(&mut self, pending: &Pending, kinds: &[&'static str], started_ms: i64) {
        let durable_ms = started_ms.max(now_ms());
        for ((_, received_at, _), kind) in pending.commands.iter().zip(kinds) {
            metrics::counter!(m::COMMANDS_EMITTED, "kind" => *kind).increment(1);
            if let Some(r) = received_at {
                metrics::histogram!(m::CALLBACK_TO_COMMAND_LATENCY)
                    .record((durable_ms - r).max(0) as f64 / 1000.0);
            }
        }
        for d in &pending.dead {
            metrics::counter!(m::DLQ_RECORDS, "role" => "fold", "reason" => d.reason).increment(1);
        }
        self.stats.commands += pending.commands.len() as u64;
        self.stats.derived += pending.derived.len() as u64;
        self.stats.dead_lettered += pending.dead.len() as u64;
    }

    /// Seeks `partitions` back to their committed offsets and drops their state, so the next
    /// record of each restores it from the snapshots before folding.
    fn rewind(
        &mut self,
        consumer: &StreamConsumer<GroupContext>,
        partitions: &[i32],
    ) -> Result<(), FoldError> {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition(&self.topics.callbacks, p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
        for e in committed.elements() {
            let to = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                // Nothing committed yet: where `auto.offset.reset=earliest` started.
                _ => Offset::Beginning,
            };
            consumer.seek(e.topic(), e.partition(), to, Duration::from_secs(30))?;
        }
        for &p in partitions {
            self.restored.remove(&p);
            self.engine.evict_partition(p);
        }
        self.recount_statuses();
        Ok(())
    }
}

fn kind_of(c: &crate::proto::Command) -> &'static str {
    use crate::proto::command::Kind;
    match c.kind {
        Some(Kind::SubmitTranscode(_)) => "submit_transcode",
        Some(Kind::TrackCompose(_)) => "track_compose",
        Some(Kind::RefreshPlayInfo(_)) => "refresh_play_info",
        None => "unknown",
    }
}

fn header_i64(msg: &BorrowedMessage<'_>, name: &str) -> Option<i64> {
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(id: &str) -> crate::proto::Command {
        crate::proto::Command {
            command_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_revoked_partition_leaves_nothing_of_the_batch_behind() {
        let mut p = Pending::default();
        p.commands.push((command("a"), None, 1));
        p.commands.push((command("b"), Some(5), 2));
        p.derived.push(("stream:x".into(), b"{}".to_vec(), 1));
        p.derived.push(("stream:y".into(), b"{}".to_vec(), 2));
        p.dead.push(DeadRecord {
            key: None,
            payload: None,
            partition: 1,
            offset: 9,
            reason: "undecodable",
            error: "e".into(),
        });
        p.dirty.insert("v1".into(), 1);
        p.dirty.insert("v2".into(), 2);
        p.offsets.insert(1, 10);
        p.offsets.insert(2, 20);
        p.drop_partition(1);
        assert_eq!(p.commands.len(), 1);
        assert_eq!(p.commands[0].0.command_id, "b");
        assert_eq!(p.derived.len(), 1);
        assert_eq!(p.derived[0].0, "stream:y");
        assert!(p.dead.is_empty());
        assert_eq!(p.dirty.keys().collect::<Vec<_>>(), vec!["v2"]);
        assert_eq!(p.offsets.get(&1), None);
        assert_eq!(p.offsets.get(&2), Some(&20));
    }
}
