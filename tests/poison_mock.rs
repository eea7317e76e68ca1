//! Poison records on the input topics, on librdkafka's in-process mock cluster (DESIGN.md:
//! "bad input never crashes a role and never vanishes silently").
//!
//! - Sparse poison (not JSON, a JSON array, no routing id, invalid UTF-8, empty, 1 MiB of
//!   garbage, a tombstone, keys that are missing, not UTF-8 or not the body's) interleaved with
//!   good callbacks on every partition: each poison record lands in the DLQ once, with its
//!   origin, a reason naming the problem and its original bytes; the good callbacks fold to
//!   the same aggregates as a clean run of them alone; the group's committed offsets reach the
//!   end of every partition and the fold stays up and ready.
//! - A flood of poison trips the dead-letter circuit breaker: the fold stops with an error
//!   naming the breaker and its ratio, turns not ready, and has dead-lettered and committed
//!   exactly the records before the trip; restarted with a breaker that cannot trip, it
//!   accounts for every record (each poison record dead-lettered once, every good one folded).
//! - The worker dead-letters undecodable commands the same way and keeps its partitions moving.
//!
//! The figures (poison written, dead letters found per reason, the trip point) are printed
//! with a `[figures]` prefix.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use live2vod::domain::codec::{decode_snapshot, encode_state};
use live2vod::domain::Policy;
use live2vod::fold::{run_fold, FoldConfig, FoldError, FoldStats};
use live2vod::http::Health;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::read::{read_records, ReadTo};
use live2vod::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;
/// Good callbacks: this many simulated live sessions of the benchmark corpus.
const SESSIONS: usize = 6;
const SEED: u64 = 7;
const HUGE: usize = 1 << 20;

/// One cluster for the file, and the aggregates of a clean fold of the good callbacks alone.
struct Shared {
    broker: EmbeddedBroker,
    good: Vec<(String, Vec<u8>)>,
    /// Aggregate key -> folded state (snapshot `state` part), from the clean run.
    clean: BTreeMap<String, Vec<u8>>,
}

static SHARED: tokio::sync::OnceCell<Shared> = tokio::sync::OnceCell::const_new();

/// The folds use both cores; the tests of this file take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            live2vod::metrics::install();
            let broker = EmbeddedBroker::start(1).expect("mock cluster starts");
            let good = live2vod::bench::corpus::callbacks(SESSIONS, SEED);
            let kafka = kafka_for(&broker, "clean.");
            let writes: Vec<Write> = good.iter().map(Write::good).collect();
            produce(&kafka, &writes).await;
            let mut cfg = fold_config(&kafka, "clean-fold");
            cfg.stop_after_records = Some(good.len() as u64);
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let stats = tokio::time::timeout(
                Duration::from_secs(60),
                run_fold(cfg, Health::default(), stop_rx),
            )
            .await
            .expect("hang guard: the clean fold did not finish in 60 s")
            .expect("the clean fold runs");
            assert_eq!(stats.dead_lettered, 0, "the corpus is clean: {stats:?}");
            let clean = states(&kafka);
            println!(
                "clean run: {} good callbacks -> {} aggregates ({} commands)",
                good.len(),
                clean.len(),
                stats.commands
            );
            Shared {
                broker,
                good,
                clean,
            }
        })
        .await
}

fn kafka_for(broker: &EmbeddedBroker, prefix: &str) -> KafkaArgs {
    let mut k = KafkaArgs::for_brokers(broker.bootstrap());
    k.topic_prefix = prefix.to_string();
    k.topic_partitions = PARTITIONS;
    // The mock group coordinator waits about a session timeout before it re-forms a group
    // whose member left (the fold restarted after a trip); keep that short.
    k.kafka.push(("session.timeout.ms".into(), "6000".into()));
    k.kafka.push(("heartbeat.interval.ms".into(), "500".into()));
    broker
        .create_topics(&k.topics(), PARTITIONS)
        .expect("topics on the mock cluster");
    k
}

fn fold_config(kafka: &KafkaArgs, group: &str) -> FoldConfig {
    FoldConfig {
        group_id: group.into(),
        // Small batches: many produce-and-commit rounds, so a trip happens mid-stream.
        batch_max: 20,
        batch_wait: Duration::from_millis(5),
        ..FoldConfig::new(
            kafka.clone(),
            Policy::parse(live2vod::bench::corpus::POLICY).expect("policy"),
        )
    }
}

/// One record to produce: explicit partition or the key's, key and value as raw bytes.
#[derive(Clone)]
struct Write {
    kind: &'static str,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

impl Write {
    fn good((key, body): &(String, Vec<u8>)) -> Self {
        Write {
            kind: "good",
            partition: None,
            key: Some(key.clone().into_bytes()),
            value: Some(body.clone()),
        }
    }
}

/// A poison record of one kind, with the reason header and a piece of the error header its
/// dead letter must carry.
struct Poison {
    kind: &'static str,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    reason: &'static str,
    error: &'static str,
}

/// Every kind of poison; `n` makes keys distinct, `video` is a real VideoId of the corpus.
fn poison_kinds(n: usize, video: &str, with_huge: bool) -> Vec<Poison> {
    let good_body = format!(
        r#"{{"EventTime":"2026-11-01T09:00:00Z","EventType":"FileUploadComplete","VideoId":"{video}","Status":"success"}}"#
    );
    let mut garbage = Vec::with_capacity(HUGE);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ n as u64;
    while garbage.len() < HUGE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        garbage.extend_from_slice(&x.to_le_bytes());
    }
    let mut kinds = vec![
        Poison {
            kind: "not_json",
            // A real video's key: the poison must not touch its aggregate.
            key: Some(video.as_bytes().to_vec()),
            value: Some(b"<html><body>502 Bad Gateway</body></html>".to_vec()),
            reason: "undecodable",
            error: "not valid JSON",
        },
        Poison {
            kind: "json_array",
            key: Some(format!("poison-array-{n}").into_bytes()),
            value: Some(format!(r#"[{{"VideoId":"poison-array-{n}"}}]"#).into_bytes()),
            reason: "undecodable",
            error: "not an object",
        },
        Poison {
            kind: "no_routing_id",
            key: Some(format!("poison-noid-{n}").into_bytes()),
            value: Some(br#"{"EventType":"FileUploadComplete","Status":"success"}"#.to_vec()),
            reason: "undecodable",
            error: "no routing id",
        },
        Poison {
            kind: "invalid_utf8",
            key: Some(format!("poison-utf8-{n}").into_bytes()),
            value: Some(
                b"{\"EventType\":\"FileUploadComplete\",\"VideoId\":\"bad-\xff\xfe\"}".to_vec(),
            ),
            reason: "undecodable",
            error: "invalid unicode",
        },
        Poison {
            kind: "empty",
            key: Some(format!("poison-empty-{n}").into_bytes()),
            value: Some(Vec::new()),
            reason: "undecodable",
            error: "EOF",
        },
        Poison {
            kind: "tombstone",
            key: Some(video.as_bytes().to_vec()),
            value: None,
            reason: "unroutable",
            error: "no value",
        },
        Poison {
            kind: "no_key",
            key: None,
            value: Some(good_body.clone().into_bytes()),
            reason: "unroutable",
            error: "key is missing or not UTF-8",
        },
        Poison {
            kind: "key_not_utf8",
            key: Some(b"vid-\xc3\x28".to_vec()),
            value: Some(good_body.clone().into_bytes()),
            reason: "unroutable",
            error: "key is missing or not UTF-8",
        },
        Poison {
            kind: "key_mismatch",
            key: Some(format!("poison-other-{n}").into_bytes()),
            value: Some(good_body.into_bytes()),
            reason: "undecodable",
            error: "does not match the body's routing key",
        },
    ];
    if with_huge {
        kinds.push(Poison {
            kind: "huge_1MiB",
            key: Some(format!("poison-huge-{n}").into_bytes()),
            value: Some(garbage),
            reason: "undecodable",
            error: "not valid JSON",
        });
    }
    kinds
}

/// A record as written: where it landed and what it was.
#[derive(Clone)]
struct Written {
    write: Write,
    partition: i32,
    offset: i64,
}

/// Produces `writes` in order (the idempotent producer keeps each partition's order) and
/// returns where each landed.
async fn produce(kafka: &KafkaArgs, writes: &[Write]) -> Vec<Written> {
    let mut k = kafka.clone();
    // The 1 MiB record is larger than librdkafka's default limit of the producer.
    k.kafka
        .push(("message.max.bytes".into(), (4 * HUGE).to_string()));
    let producer: FutureProducer =
        live2vod::kafka::producer::idempotent_producer(&k).expect("producer");
    let topic = kafka.topics().callbacks;
    let sends = writes.iter().map(|w| {
        let mut r = FutureRecord::<[u8], [u8]>::to(&topic);
        if let Some(p) = w.partition {
            r = r.partition(p);
        }
        if let Some(key) = &w.key {
            r = r.key(key.as_slice());
        }
        if let Some(v) = &w.value {
            r = r.payload(v.as_slice());
        }
        producer.send(r, Duration::from_secs(30))
    });
    let done = futures::future::try_join_all(sends)
        .await
        .map_err(|(e, _)| e)
        .expect("records produced");
    done.into_iter()
        .zip(writes)
        .map(|(d, w)| Written {
            write: w.clone(),
            partition: d.partition,
            offset: d.offset,
        })
        .collect()
}

/// The good callbacks with poison records (each kind `rounds` times, spread over the
/// partitions) inserted every `every` good ones; the poison continues after the good ones
/// run out.
fn interleave(
    good: &[(String, Vec<u8>)],
    rounds: usize,
    every: usize,
    with_huge: bool,
) -> Vec<Write> {
    let video = good
        .iter()
        .find(|(k, _)| !k.starts_with("stream:"))
        .map(|(k, _)| k.clone())
        .expect("a video in the corpus");
    let mut poison = Vec::new();
    for round in 0..rounds {
        for (i, p) in poison_kinds(round, &video, with_huge && round < 2)
            .into_iter()
            .enumerate()
        {
            poison.push(Write {
                kind: p.kind,
                partition: Some(((round + i) % PARTITIONS as usize) as i32),
                key: p.key,
                value: p.value,
            });
        }
    }
    let mut out = Vec::new();
    let mut poison = poison.into_iter();
    for (i, g) in good.iter().enumerate() {
        out.push(Write::good(g));
        if (i + 1) % every == 0 {
            out.extend(poison.next());
        }
    }
    out.extend(poison);
    out
}

/// One dead letter as read back.
#[derive(Debug, Clone)]
struct Dead {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: HashMap<String, String>,
}

impl Dead {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("dead letter without {name}: {:?}", self.headers))
    }
    /// (origin partition, origin offset).
    fn origin(&self) -> (i32, i64) {
        (
            self.header("live2vod-dlq-partition")
                .parse()
                .expect("partition"),
            self.header("live2vod-dlq-offset").parse().expect("offset"),
        )
    }
}

/// Every record of `topic`, to each partition's end.
fn read_dlq(brokers: &str, topic: &str) -> Vec<Dead> {
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    read_records(
        &KafkaArgs::for_brokers(brokers),
        topic,
        &partitions,
        ReadTo::HighWatermark,
    )
    .unwrap_or_else(|e| panic!("reading {topic}: {e}"))
    .into_iter()
    .map(|r| Dead {
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
    })
    .collect()
}

/// Aggregate key -> folded state, from the newest snapshot of every key.
fn states(kafka: &KafkaArgs) -> BTreeMap<String, Vec<u8>> {
    let topic = kafka.topics().aggregates;
    let mut out = BTreeMap::new();
    for p in 0..PARTITIONS {
        for (k, v) in live2vod::kafka::read::read_partition(kafka, &topic, p).expect("read") {
            let agg = decode_snapshot(&v).expect("snapshot decodes");
            out.insert(k, encode_state(&agg));
        }
    }
    out
}

/// Per partition of the callbacks topic: (committed offset of `group`, high watermark).
fn positions(kafka: &KafkaArgs, group: &str) -> Vec<(i64, i64)> {
    let topic = kafka.topics().callbacks;
    let mut cc = kafka.client_config();
    cc.set("group.id", group).set("enable.auto.commit", "false");
    let c: BaseConsumer = cc.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&topic, p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..PARTITIONS)
        .map(|p| {
            let off = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            let (_, high) = c
                .fetch_watermarks(&topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (off, high)
        })
        .collect()
}

/// Waits until `group` committed every record of the callbacks topic, twice in a row 300 ms
/// apart (the fold writes its stream facts to the same topic before committing their cause).
async fn wait_caught_up(
    kafka: &KafkaArgs,
    group: &str,
    fold: &mut tokio::task::JoinHandle<Result<FoldStats, FoldError>>,
) -> Vec<(i64, i64)> {
    let started = Instant::now();
    let mut last = None;
    loop {
        if fold.is_finished() {
            let result = fold.await;
            panic!("the fold stopped before reaching the end of its input: {result:?}");
        }
        let now = positions(kafka, group);
        let done = now.iter().all(|(c, h)| c == h);
        if done && last.as_ref() == Some(&now) {
            return now;
        }
        last = done.then_some(now.clone());
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "hang guard: the fold did not reach the end of every partition: (committed, high) {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Asserts the dead letters are exactly the poison records of `written` (matched by origin),
/// each once, with their headers and bytes; returns the count per kind and reason.
fn check_dead_letters(
    topic: &str,
    written: &[&Written],
    dead: &[Dead],
    role: &str,
) -> BTreeMap<(String, String), usize> {
    let mut by_origin: HashMap<(i32, i64), &Dead> = HashMap::new();
    for d in dead {
        assert!(
            by_origin.insert(d.origin(), d).is_none(),
            "record {:?} dead-lettered twice",
            d.origin()
        );
    }
    let mut counts = BTreeMap::new();
    for w in written {
        let d = by_origin
            .remove(&(w.partition, w.offset))
            .unwrap_or_else(|| {
                panic!(
                    "poison record {} at {}/{} is not in the DLQ",
                    w.write.kind, w.partition, w.offset
                )
            });
        assert_eq!(d.header("live2vod-dlq-role"), role);
        assert_eq!(d.header("live2vod-dlq-topic"), topic);
        assert_eq!(d.key, w.write.key, "{}: key kept", w.write.kind);
        match (&d.value, &w.write.value) {
            (Some(got), Some(orig)) if got.len() < orig.len() => {
                // Too large to forward whole: the first bytes, and the length it had.
                assert_eq!(
                    d.header("live2vod-dlq-truncated-from"),
                    orig.len().to_string(),
                    "{}: a cut value names its length",
                    w.write.kind
                );
                assert!(
                    got.len() > orig.len() / 2,
                    "{}: most of it kept",
                    w.write.kind
                );
                assert_eq!(got[..], orig[..got.len()], "{}: a prefix", w.write.kind);
            }
            (got, orig) => {
                assert_eq!(got, orig, "{}: the original bytes", w.write.kind);
                assert!(!d.headers.contains_key("live2vod-dlq-truncated-from"));
            }
        }
        counts
            .entry((
                w.write.kind.to_string(),
                d.header("live2vod-dlq-reason").to_string(),
            ))
            .and_modify(|n| *n += 1)
            .or_insert(1usize);
    }
    assert!(
        by_origin.is_empty(),
        "dead letters of records that were not poison: {:?}",
        by_origin.keys().collect::<Vec<_>>()
    );
    counts
}

/// The reason and error each poison kind must be dead-lettered with.
fn expected_reason(kind: &str) -> (&'static str, &'static str) {
    let p = poison_kinds(0, "v", true)
        .into_iter()
        .find(|p| p.kind == kind)
        .unwrap_or_else(|| panic!("unknown kind {kind}"));
    (p.reason, p.error)
}

fn check_reasons(written: &[&Written], dead: &[Dead]) {
    let by_origin: HashMap<(i32, i64), &Dead> = dead.iter().map(|d| (d.origin(), d)).collect();
    for w in written {
        let d = by_origin[&(w.partition, w.offset)];
        let (reason, error) = expected_reason(w.write.kind);
        assert_eq!(d.header("live2vod-dlq-reason"), reason, "{}", w.write.kind);
        let got = d.header("live2vod-dlq-error");
        assert!(
            got.contains(error),
            "{}: the error names the problem ({error:?}), got {got:?}",
            w.write.kind
        );
    }
}

fn print_counts(name: &str, counts: &BTreeMap<(String, String), usize>) {
    for ((kind, reason), n) in counts {
        println!("[figures] {name}: {kind:<14} reason={reason:<12} {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_with_its_reason_and_every_partition_keeps_moving() {
    let s = shared().await;
    let _serial = SERIAL.lock().await;
    let kafka = kafka_for(&s.broker, "sparse.");
    let writes = interleave(&s.good, 4, 8, true);
    let written = produce(&kafka, &writes).await;
    let poison: Vec<&Written> = written.iter().filter(|w| w.write.kind != "good").collect();
    let parts: std::collections::BTreeSet<i32> = poison.iter().map(|w| w.partition).collect();
    assert_eq!(
        parts.len(),
        PARTITIONS as usize,
        "poison on every partition"
    );

    let health = Health::default();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut fold = tokio::spawn(run_fold(
        fold_config(&kafka, "sparse-fold"),
        health.clone(),
        stop_rx,
    ));
    let ends = wait_caught_up(&kafka, "sparse-fold", &mut fold).await;
    assert!(
        health.is_ready(),
        "the fold is still ready after the poison"
    );
    let _ = stop.send(true);
    let stats = tokio::time::timeout(Duration::from_secs(30), fold)
        .await
        .expect("hang guard: the fold did not stop")
        .expect("fold task")
        .expect("the fold stops cleanly after poison");
    println!("sparse: {stats:?}");
    assert_eq!(stats.dead_lettered, poison.len() as u64, "{stats:?}");

    let dead = read_dlq(s.broker.bootstrap(), &kafka.topics().dlq);
    let counts = check_dead_letters(&kafka.topics().callbacks, &poison, &dead, "fold");
    check_reasons(&poison, &dead);
    for (p, (committed, high)) in ends.iter().enumerate() {
        println!("[figures] sparse: partition {p}: committed {committed} of {high}");
    }
    assert_eq!(
        states(&kafka),
        s.clean,
        "the good callbacks fold to the aggregates of a clean run"
    );
    println!(
        "[figures] sparse: {} good callbacks, {} poison records written, {} dead letters found",
        s.good.len(),
        poison.len(),
        dead.len()
    );
    print_counts("sparse", &counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_poison_trips_the_breaker_and_nothing_is_skipped() {
    let s = shared().await;
    let _serial = SERIAL.lock().await;
    let kafka = kafka_for(&s.broker, "flood.");
    // A third of the good callbacks, then the rest with four poison records after each.
    let (before, during) = s.good.split_at(s.good.len() / 3);
    let mut writes: Vec<Write> = before.iter().map(Write::good).collect();
    let rounds = during.len() / 9 + 1;
    writes.extend(
        interleave(during, rounds, 1, false)
            .into_iter()
            .flat_map(|w| {
                // interleave puts one poison after each good record; this puts four.
                let extra = if w.kind == "good" { 0 } else { 3 };
                std::iter::repeat_n(w, 1 + extra)
            }),
    );
    let written = produce(&kafka, &writes).await;
    let poison: Vec<&Written> = written.iter().filter(|w| w.write.kind != "good").collect();

    // A breaker that a flood trips: more than half of a 200-record window, at least 50.
    let mut cfg = fold_config(&kafka, "flood-fold");
    cfg.dlq_window = 200;
    cfg.dlq_max_ratio = 0.5;
    cfg.dlq_min = 50;
    let health = Health::default();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let result = tokio::time::timeout(
        Duration::from_secs(45),
        run_fold(cfg.clone(), health.clone(), stop_rx),
    )
    .await
    .expect("hang guard: the flood did not stop the fold within 45 s");
    let err = result.expect_err("a flood of poison must stop the fold");
    let text = err.to_string();
    println!("[figures] flood: the fold stopped with: {text}");
    let FoldError::BreakerOpen { dead, seen, .. } = &err else {
        panic!("the fold must stop on the breaker, not on: {err:?}");
    };
    for needle in [
        "dead-letter circuit breaker open",
        "--dlq-max-ratio 0.5",
        &kafka.topics().dlq,
    ] {
        assert!(text.contains(needle), "the error names {needle:?}: {text}");
    }
    assert!(*dead >= 50 && *dead * 2 > *seen, "{dead} of {seen}");
    assert!(!health.is_ready(), "a tripped fold must not stay ready");
    assert!(
        live2vod::metrics::render()
            .lines()
            .any(|l| l == "live2vod_dlq_breaker_open 1"),
        "the breaker gauge shows it open"
    );

    // Exactly the records before the trip were dead-lettered and committed; nothing after.
    let at_trip = positions(&kafka, "flood-fold");
    let behind: i64 = at_trip.iter().map(|(c, h)| h - c).sum();
    assert!(behind > 0, "the fold stopped before the end: {at_trip:?}");
    let dead_at_trip = read_dlq(s.broker.bootstrap(), &kafka.topics().dlq);
    let consumed: Vec<&Written> = poison
        .iter()
        .copied()
        .filter(|w| w.offset < at_trip[w.partition as usize].0)
        .collect();
    check_dead_letters(&kafka.topics().callbacks, &consumed, &dead_at_trip, "fold");
    let consumed_records: i64 = at_trip.iter().map(|(c, _)| c).sum();
    println!(
        "[figures] flood: {} records written ({} poison); breaker (window 200, ratio 0.5, min 50) tripped at {dead} dead of {seen} in the window, after {consumed_records} records were committed; {} dead letters in the DLQ at the trip; {behind} records left unconsumed; committed/high per partition {at_trip:?}",
        written.len(),
        poison.len(),
        dead_at_trip.len()
    );

    // Restarted with a breaker that cannot trip: every record is accounted for.
    cfg.dlq_max_ratio = 1.0;
    let health = Health::default();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut fold = tokio::spawn(run_fold(cfg, health.clone(), stop_rx));
    wait_caught_up(&kafka, "flood-fold", &mut fold).await;
    assert!(health.is_ready());
    let _ = stop.send(true);
    let stats = tokio::time::timeout(Duration::from_secs(30), fold)
        .await
        .expect("hang guard: the fold did not stop")
        .expect("fold task")
        .expect("the restarted fold stops cleanly");
    let dead = read_dlq(s.broker.bootstrap(), &kafka.topics().dlq);
    let counts = check_dead_letters(&kafka.topics().callbacks, &poison, &dead, "fold");
    check_reasons(&poison, &dead);
    assert_eq!(
        stats.dead_lettered as usize,
        poison.len() - consumed.len(),
        "the restart dead-letters the rest: {stats:?}"
    );
    assert_eq!(
        states(&kafka),
        s.clean,
        "every good callback is folded across the trip and the restart"
    );
    println!(
        "[figures] flood: after the restart: {} dead letters in the DLQ for {} poison records (each once), aggregates equal the clean run",
        dead.len(),
        poison.len()
    );
    print_counts("flood", &counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_dead_letters_undecodable_commands_and_keeps_moving() {
    use live2vod::proto::{command, Command, RefreshPlayInfo};
    use live2vod::vod::client::VodConfig;
    use prost::Message as _;
    let s = shared().await;
    let _serial = SERIAL.lock().await;
    let kafka = kafka_for(&s.broker, "worker.");
    let topic = kafka.topics().commands;
    let no_id = Command {
        video_id: "vid-1".into(),
        kind: Some(command::Kind::RefreshPlayInfo(RefreshPlayInfo::default())),
        ..Default::default()
    }
    .encode_to_vec();
    let mut huge = vec![0xffu8; HUGE];
    huge[..4].copy_from_slice(b"\x08\x96\x01\xff");
    /// (kind, key, value, reason, error).
    type Kind<'a> = (&'a str, &'a [u8], Option<Vec<u8>>, &'a str, &'a str);
    let kinds: Vec<Kind> = vec![
        (
            "not_protobuf",
            b"vid-1",
            Some(b"\xff\xff not a protobuf".to_vec()),
            "undecodable",
            "not a protobuf Command",
        ),
        (
            "json",
            b"vid-2",
            Some(br#"{"command_id":"c1"}"#.to_vec()),
            "undecodable",
            "not a protobuf Command",
        ),
        (
            "empty",
            b"vid-3",
            Some(Vec::new()),
            "invalid_command",
            "without a kind",
        ),
        ("tombstone", b"vid-4", None, "undecodable", "no value"),
        (
            "no_command_id",
            b"vid-5",
            Some(no_id),
            "invalid_command",
            "without command_id",
        ),
        (
            "huge_1MiB",
            b"vid-6",
            Some(huge),
            "undecodable",
            "not a protobuf Command",
        ),
    ];
    let mut k = kafka.clone();
    k.kafka
        .push(("message.max.bytes".into(), (4 * HUGE).to_string()));
    let producer: FutureProducer =
        live2vod::kafka::producer::idempotent_producer(&k).expect("producer");
    let mut written = Vec::new();
    for round in 0..2 {
        for (i, (kind, key, value, _, _)) in kinds.iter().enumerate() {
            let mut r = FutureRecord::<[u8], [u8]>::to(&topic)
                .partition(((round + i) % PARTITIONS as usize) as i32)
                .key(*key);
            if let Some(v) = value {
                r = r.payload(v.as_slice());
            }
            let d = producer
                .send(r, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .expect("produced");
            written.push(Written {
                write: Write {
                    kind,
                    partition: Some(d.partition),
                    key: Some(key.to_vec()),
                    value: value.clone(),
                },
                partition: d.partition,
                offset: d.offset,
            });
        }
    }

    // VOD is never reached: nothing here is a command it could run.
    let mut vod = VodConfig::new("cn-shanghai", "poison-ak-id", "poison-ak-secret");
    vod.endpoint = Some("http://127.0.0.1:9/".into());
    let mut cfg = live2vod::worker::WorkerConfig::new(kafka.clone(), vod);
    cfg.group_id = "poison-worker".into();
    let health = Health::default();
    let worker = live2vod::worker::start(cfg, health.clone())
        .await
        .expect("worker starts");
    let started = Instant::now();
    let dead = loop {
        let dead = read_dlq(s.broker.bootstrap(), &kafka.topics().dlq);
        if dead.len() >= written.len() {
            break dead;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hang guard: {} of {} poison commands dead-lettered",
            dead.len(),
            written.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(health.is_ready(), "the worker stays ready");
    assert_eq!(worker.in_flight(), 0);
    worker.shutdown().await.expect("worker stops cleanly");
    let refs: Vec<&Written> = written.iter().collect();
    let counts = check_dead_letters(&topic, &refs, &dead, "worker");
    let by_origin: HashMap<(i32, i64), &Dead> = dead.iter().map(|d| (d.origin(), d)).collect();
    for w in &written {
        let d = by_origin[&(w.partition, w.offset)];
        let (_, _, _, reason, error) = kinds.iter().find(|k| k.0 == w.write.kind).expect("kind");
        assert_eq!(d.header("live2vod-dlq-reason"), *reason, "{}", w.write.kind);
        let got = d.header("live2vod-dlq-error");
        assert!(got.contains(error), "{}: {got:?}", w.write.kind);
    }
    // The worker's committed offsets reach the end of every commands partition.
    let mut cc = kafka.client_config();
    cc.set("group.id", "poison-worker");
    let c: BaseConsumer = cc.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&topic, p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    for p in 0..PARTITIONS {
        let (_, high) = c
            .fetch_watermarks(&topic, p, Duration::from_secs(10))
            .expect("marks");
        let off = committed
            .find_partition(&topic, p)
            .map(|e| e.offset())
            .expect("partition");
        assert_eq!(
            off,
            Offset::Offset(high),
            "commands partition {p} committed to its end"
        );
    }
    println!(
        "[figures] worker: {} poison commands written, {} dead letters found",
        written.len(),
        dead.len()
    );
    print_counts("worker", &counts);
}
