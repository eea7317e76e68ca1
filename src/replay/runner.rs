//! Replay: read the callbacks topic between fixed bounds, fold in memory, then write the
//! aggregates to another topic or diff the projected commands against the live ones.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use crate::domain::policy::Policy;
use crate::domain::{Engine, InputPos};
use crate::kafka::sink::{self, OutRecord};
use crate::kafka::KafkaArgs;

/// Where the replay starts on each partition.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    Beginning,
    /// First record with a timestamp at or after this (ms since the epoch).
    Time(i64),
}

/// What to replay and where to.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub kafka: KafkaArgs,
    pub policy: Policy,
    pub start: Start,
    /// Topic to write the aggregates to; `None` writes nothing.
    pub to_topic: Option<String>,
    /// Collect the projected commands and diff them against the commands topic.
    pub diff: bool,
}

/// One command in a diff.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommandLine {
    pub command_id: String,
    pub video_id: String,
    pub kind: String,
    pub cause: String,
}

/// Commands the projection would emit that are not on the topic, and the reverse.
#[derive(Debug, Clone, Default)]
pub struct CommandDiff {
    pub only_projected: Vec<CommandLine>,
    pub only_live: Vec<CommandLine>,
    pub in_both: u64,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub events: u64,
    pub skipped_live_facts: u64,
    pub derived_facts: u64,
    pub aggregates: u64,
    pub written: u64,
    /// Records no parser accepts (a live fold dead-letters them; replay only counts them).
    pub dead: u64,
    pub dead_examples: Vec<String>,
    pub seconds: f64,
    pub diff: Option<CommandDiff>,
}

impl ReplayReport {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    pub fn print_text(&self) {
        if let Some(d) = &self.diff {
            println!(
                "commands the current projection would emit that are NOT on the commands topic: {}",
                d.only_projected.len()
            );
            for c in &d.only_projected {
                println!(
                    "  + {} {} video={} cause={}",
                    c.command_id, c.kind, c.video_id, c.cause
                );
            }
            println!(
                "commands on the commands topic that the current projection would NOT emit: {}",
                d.only_live.len()
            );
            for c in &d.only_live {
                println!(
                    "  - {} {} video={} cause={}",
                    c.command_id, c.kind, c.video_id, c.cause
                );
            }
            println!("commands in both: {}", d.in_both);
        }
        println!(
            "replayed {} events into {} aggregates in {:.2}s ({:.0} events/s); {} written; {} undecodable (DLQ); {} live stream facts re-derived as {}",
            self.events, self.aggregates, self.seconds, self.events_per_s(), self.written, self.dead,
            self.skipped_live_facts, self.derived_facts
        );
        for e in &self.dead_examples {
            println!("  undecodable: {e}");
        }
    }

    pub fn print_json(&self) {
        if let Some(d) = &self.diff {
            for (side, list) in [
                ("projected_only", &d.only_projected),
                ("live_only", &d.only_live),
            ] {
                for c in list {
                    println!(
                        "{}",
                        json!({"diff": side, "command_id": c.command_id, "kind": c.kind, "video_id": c.video_id, "cause": c.cause})
                    );
                }
            }
        }
        println!(
            "{}",
            json!({
                "summary": {
                    "events": self.events, "aggregates": self.aggregates, "seconds": self.seconds,
                    "events_per_s": self.events_per_s(), "written": self.written, "dlq": self.dead,
                    "projected_only": self.diff.as_ref().map(|d| d.only_projected.len()),
                    "live_only": self.diff.as_ref().map(|d| d.only_live.len()),
                    "in_both": self.diff.as_ref().map(|d| d.in_both),
                }
            })
        );
    }
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} does not exist or has no partitions")]
    NoTopic(String),
    #[error("could not write the aggregates: {0}")]
    Produce(String),
    #[error("{0}")]
    Other(String),
}

struct Folded {
    engine: Engine,
    report: ReplayReport,
    projected: BTreeMap<String, CommandLine>,
}

/// Replays the callbacks topic as configured. `progress(done, total, elapsed)` is called often.
pub async fn run_replay(
    cfg: ReplayConfig,
    progress: impl FnMut(u64, u64, Duration) + Send + 'static,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let kafka = cfg.kafka.clone();
    let policy = cfg.policy.clone();
    let start = cfg.start;
    let diff = cfg.diff;
    let callbacks = kafka.topics().callbacks;
    let folded = tokio::task::spawn_blocking(move || {
        fold_topic(&kafka, &callbacks, policy, start, diff, progress)
    })
    .await
    .map_err(|e| ReplayError::Other(e.to_string()))??;
    let Folded {
        engine,
        mut report,
        projected,
    } = folded;
    report.seconds = started.elapsed().as_secs_f64();

    if let Some(topic) = &cfg.to_topic {
        report.written = write_aggregates(&cfg.kafka, topic, &engine).await?;
    }
    if cfg.diff {
        let kafka = cfg.kafka.clone();
        let live = tokio::task::spawn_blocking(move || read_commands(&kafka))
            .await
            .map_err(|e| ReplayError::Other(e.to_string()))??;
        let mut d = CommandDiff::default();
        for (id, c) in &projected {
            if live.contains_key(id) {
                d.in_both += 1;
            } else {
                d.only_projected.push(c.clone());
            }
        }
        d.only_live = live
            .into_iter()
            .filter(|(id, _)| !projected.contains_key(id))
            .map(|(_, c)| c)
            .collect();
        report.diff = Some(d);
    }
    Ok(report)
}

fn consumer(kafka: &KafkaArgs) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
    crate::kafka::consumer::reader(kafka, "live2vod-replay", false)
}

/// `[start, end)` per partition: from the configured start to the high watermark now.
fn bounds(
    c: &BaseConsumer,
    topic: &str,
    start: Start,
) -> Result<Vec<(i32, i64, i64)>, ReplayError> {
    let timeout = Duration::from_secs(10);
    let md = c.fetch_metadata(Some(topic), timeout)?;
    let n = md
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
        .ok_or_else(|| ReplayError::NoTopic(topic.to_string()))?;
    let mut out = Vec::with_capacity(n);
    let by_time = match start {
        // Not `offsets_for_timestamp`: that looks up the consumer's current assignment, which
        // is empty here (librdkafka then refuses the request).
        Start::Time(ms) => {
            let mut tpl = TopicPartitionList::new();
            for p in 0..n as i32 {
                tpl.add_partition_offset(topic, p, Offset::Offset(ms))?;
            }
            Some(c.offsets_for_times(tpl, timeout)?)
        }
        Start::Beginning => None,
    };
    for p in 0..n as i32 {
        let (low, high) = c.fetch_watermarks(topic, p, timeout)?;
        let from = match (&by_time, start) {
            (Some(tpl), Start::Time(ms)) => {
                match tpl.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.max(low),
                    // "No record at or after the time" — or a broker that does not look offsets
                    // up by time (librdkafka's mock cluster answers -1 for every time): check
                    // against the records themselves rather than silently replaying nothing.
                    _ => first_offset_at_or_after(c, topic, p, low, high, ms)?,
                }
            }
            _ => low,
        };
        out.push((p, from, high));
    }
    Ok(out)
}

/// The first offset in `[low, high)` whose record has a timestamp at or after `ms` (`high` if
/// none), by binary search over the records' timestamps (assumed non-decreasing, as the
/// broker's own time index assumes). Costs O(log n) single-record fetches.
fn first_offset_at_or_after(
    c: &BaseConsumer,
    topic: &str,
    partition: i32,
    low: i64,
    high: i64,
    ms: i64,
) -> Result<i64, ReplayError> {
    let (mut lo, mut hi) = (low, high);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // Offsets below the high watermark can be missing (retention): `at` is the first one
        // still there at or after `mid`.
        match record_time_at(c, topic, partition, mid, high)? {
            Some((at, ts)) if ts < ms => lo = at + 1,
            Some(_) => hi = mid,
            None => hi = mid,
        }
    }
    Ok(lo)
}

/// Offset and timestamp (ms) of the first record at or after `offset` (below `high`).
fn record_time_at(
    c: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
    high: i64,
) -> Result<Option<(i64, i64)>, ReplayError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    c.assign(&tpl)?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.partition() == partition && m.offset() >= offset => {
                if m.offset() >= high {
                    return Ok(None);
                }
                let ts = m.timestamp().to_millis().unwrap_or(i64::MIN);
                return Ok(Some((m.offset(), ts)));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Err(ReplayError::Other(format!(
        "could not read {topic}[{partition}] at offset {offset} to find where --from-time starts"
    )))
}

fn fold_topic(
    kafka: &KafkaArgs,
    topic: &str,
    policy: Policy,
    start: Start,
    diff: bool,
    mut progress: impl FnMut(u64, u64, Duration),
) -> Result<Folded, ReplayError> {
    let started = Instant::now();
    let c = consumer(kafka)?;
    let bounds = bounds(&c, topic, start)?;
    let total: u64 = bounds.iter().map(|(_, s, e)| (e - s).max(0) as u64).sum();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &(p, s, e) in &bounds {
        if s < e {
            tpl.add_partition_offset(topic, p, Offset::Offset(s))?;
            ends.insert(p, e);
        }
    }
    let mut engine = Engine::new(policy);
    let mut report = ReplayReport::default();
    let mut projected = BTreeMap::new();
    let mut done = 0u64;
    let mut derived_seq = 0i64;
    if !ends.is_empty() {
        c.assign(&tpl)?;
    }
    // A reader thread polls and copies records while this thread folds: replay then takes
    // about max(read, fold) instead of their sum.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Rec>, ReplayError>>(16);
    let reader = std::thread::spawn(move || read_all(c, ends, tx));
    for batch in rx {
        let batch = batch?;
        for rec in batch {
            let (p, off) = (rec.partition, rec.offset);
            done += 1;
            metrics::counter!(crate::metrics::REPLAY_EVENTS).increment(1);
            progress(done, total, started.elapsed());
            if rec.is_fact {
                report.skipped_live_facts += 1;
                continue;
            }
            let key = rec.key.as_deref().and_then(|k| std::str::from_utf8(k).ok());
            let (Some(key), Some(body)) = (key, rec.payload.as_deref()) else {
                note_dead(&mut report, p, off, "no key or no value".into());
                continue;
            };
            report.events += 1;
            match engine.apply(
                key,
                body,
                InputPos {
                    partition: p,
                    offset: off,
                },
            ) {
                Ok(applied) => {
                    if diff {
                        for c in &applied.commands {
                            projected.insert(c.command_id.clone(), command_line(c));
                        }
                    }
                    let mut facts = applied.derived;
                    while let Some((k, b)) = facts.pop() {
                        report.derived_facts += 1;
                        // Derived facts never passed through Kafka here: give them positions of
                        // their own (partition -1, increasing), so none is taken for a re-delivery.
                        derived_seq += 1;
                        let pos = InputPos {
                            partition: -1,
                            offset: derived_seq,
                        };
                        match engine.apply(&k, &b, pos) {
                            Ok(a) => facts.extend(a.derived),
                            Err(e) => {
                                note_dead(&mut report, p, off, format!("derived fact for {k}: {e}"))
                            }
                        }
                    }
                }
                Err(e) => note_dead(&mut report, p, off, e.to_string()),
            }
        }
    }
    reader
        .join()
        .map_err(|_| ReplayError::Other("the reader thread panicked".into()))?;
    progress(done, total, started.elapsed());
    report.aggregates = engine.len() as u64;
    Ok(Folded {
        engine,
        report,
        projected,
    })
}

/// One record of the callbacks topic, copied out of librdkafka's buffer by the reader.
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    /// A stream fact the live fold derived (re-derived here instead).
    is_fact: bool,
}

/// Polls until every partition reached its end, sending records in batches.
fn read_all(
    c: BaseConsumer,
    mut ends: HashMap<i32, i64>,
    tx: std::sync::mpsc::SyncSender<Result<Vec<Rec>, ReplayError>>,
) {
    let mut idle_since = Instant::now();
    let mut batch = Vec::with_capacity(1024);
    while !ends.is_empty() {
        let msg = match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                let _ = tx.send(Err(e.into()));
                return;
            }
            None => {
                // Records below a high watermark can vanish (retention) while we read.
                if idle_since.elapsed() > Duration::from_secs(30) {
                    let _ = tx.send(Err(ReplayError::Other(format!(
                        "no records for 30 s while partitions {:?} had not reached their end",
                        ends.keys().collect::<Vec<_>>()
                    ))));
                    return;
                }
                if !batch.is_empty() && tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    return;
                }
                continue;
            }
        };
        idle_since = Instant::now();
        let (p, off) = (msg.partition(), msg.offset());
        if ends.get(&p).is_some_and(|end| off + 1 >= *end) {
            ends.remove(&p);
        }
        let is_fact = msg
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == crate::domain::vocab::header::EVENT_TYPE)
                    .and_then(|h| h.value)
            })
            .is_some_and(|v| v == crate::domain::vocab::event_type::STREAM_FACT.as_bytes())
            || msg.key().is_some_and(|k| k.starts_with(b"stream:"));
        batch.push(Rec {
            partition: p,
            offset: off,
            key: msg.key().map(<[u8]>::to_vec),
            payload: if is_fact {
                None
            } else {
                msg.payload().map(<[u8]>::to_vec)
            },
            is_fact,
        });
        if batch.len() >= 1024 && tx.send(Ok(std::mem::take(&mut batch))).is_err() {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch));
    }
}

fn note_dead(report: &mut ReplayReport, p: i32, off: i64, e: String) {
    report.dead += 1;
    if report.dead_examples.len() < 10 {
        report
            .dead_examples
            .push(format!("partition {p} offset {off}: {e}"));
    }
}

fn command_line(c: &crate::proto::Command) -> CommandLine {
    use crate::proto::command::Kind;
    let label = crate::domain::vocab::CommandKind::label(c);
    let kind = match &c.kind {
        Some(Kind::SubmitTranscode(t)) => format!("{label}({})", t.template_group_id),
        _ => label.to_string(),
    };
    CommandLine {
        command_id: c.command_id.clone(),
        video_id: c.video_id.clone(),
        kind,
        cause: c.cause.clone(),
    }
}

/// Every command on the commands topic, by id.
fn read_commands(kafka: &KafkaArgs) -> Result<BTreeMap<String, CommandLine>, ReplayError> {
    let topic = kafka.topics().commands;
    let c = consumer(kafka)?;
    let bounds = bounds(&c, &topic, Start::Beginning)?;
    let mut out = BTreeMap::new();
    for (p, s, e) in bounds {
        if s >= e {
            continue;
        }
        for (_key, value) in crate::kafka::read::read_range(kafka, &topic, p, s, e)? {
            match crate::proto::Command::decode(value.as_slice()) {
                Ok(cmd) => {
                    out.insert(cmd.command_id.clone(), command_line(&cmd));
                }
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "undecodable command on the commands topic")
                }
            }
        }
    }
    Ok(out)
}

/// Writes every aggregate's snapshot to `topic` (created like the aggregates topic when
/// missing); returns how many were written.
async fn write_aggregates(
    kafka: &KafkaArgs,
    topic: &str,
    engine: &Engine,
) -> Result<u64, ReplayError> {
    crate::kafka::admin::ensure_topic_like(kafka, &kafka.topics().callbacks, topic, true)
        .await
        .map_err(|e| ReplayError::Other(e.to_string()))?;
    let producer = crate::kafka::producer::idempotent_producer(kafka)?;
    let timeout = Duration::from_secs(30);
    let mut written = 0u64;
    let keys: Vec<String> = engine.aggregates().map(|(k, _)| k.to_string()).collect();
    for chunk in keys.chunks(10_000) {
        let records: Vec<OutRecord<'_>> = chunk
            .iter()
            .filter_map(|k| {
                let bytes = engine.snapshot_bytes(k)?;
                Some(OutRecord::keyed(topic, k.as_bytes(), bytes))
            })
            .collect();
        let n = records.len() as u64;
        sink::produce_all(&producer, records, timeout)
            .await
            .map_err(|e| ReplayError::Produce(e.to_string()))?;
        written += n;
    }
    Ok(written)
}
