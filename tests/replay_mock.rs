//! `live2vod replay` on the embedded mock cluster, after a real pipeline run (relay, fold,
//! worker, api and the simulated Live+VOD, converged to the simulator's truth):
//!
//! - the replayed aggregates equal the live ones. Compared, per aggregate key: the folded
//!   **state** (the snapshot's `state` part, byte for byte: ARCHITECTURE.md makes it identical
//!   for any order and duplication of the same events) and the api JSON without the
//!   per-delivery counters. Not compared: the snapshot's `meta` (deliveries, duplicates, last
//!   applied input position) and the JSON fields derived from it (`duplicates` of videos,
//!   `events`/`duplicates` of streams): the live fold folds each stream fact once per copy it
//!   derived and produced (one per ordering of the video's events), while replay skips those
//!   copies and re-derives facts in memory, so stream counters legitimately differ; a video's
//!   `duplicates` is compared separately and only reported, since records a crashed fold
//!   re-folds count differently too;
//! - replay is side-effect free: the high watermarks of the callbacks, commands, dlq, ledger and
//!   live aggregates topics do not move;
//! - `--diff` finds no difference with the live commands for the policy the live fold ran,
//!   and exactly the added transcodes for a policy that transcodes more;
//! - `--from-time` starts at the first record at or after the time.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use live2vod::demo::{Pipeline, PipelineConfig};
use live2vod::domain::codec::{decode_snapshot, encode_state};
use live2vod::domain::view::snapshot_json;
use live2vod::domain::Policy;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::{KafkaArgs, Topics};
use live2vod::replay::{run_replay, ReplayConfig, ReplayReport, Start};
use live2vod::sim::{Flow, Scenario, Truth};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::TopicPartitionList;
use serde_json::Value;

const PARTITIONS: i32 = 3;

/// A mock cluster holding the topics of one converged pipeline run, shared by the tests of
/// this file (each replays into a topic of its own or only reads).
struct Corpus {
    broker: EmbeddedBroker,
    kafka: KafkaArgs,
    policy: Policy,
    scenario: Scenario,
    /// The simulator's ground truth the live api converged to.
    truth: Truth,
}

static CORPUS: tokio::sync::OnceCell<Corpus> = tokio::sync::OnceCell::const_new();

fn kafka_for(broker: &EmbeddedBroker) -> KafkaArgs {
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = PARTITIONS;
    broker
        .create_topics(&kafka.topics(), PARTITIONS)
        .expect("topics on the mock cluster");
    kafka
}

fn consumer(kafka: &KafkaArgs, group: &str) -> BaseConsumer {
    let mut cc = kafka.client_config();
    cc.set("group.id", group).set("enable.auto.commit", "false");
    cc.create().expect("consumer")
}

/// High watermark of every partition of `topic`.
fn marks(kafka: &KafkaArgs, topic: &str) -> Vec<i64> {
    let c = consumer(kafka, "replay-test-marks");
    (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// High watermarks of every live2vod topic, by name.
fn all_marks(kafka: &KafkaArgs) -> BTreeMap<String, Vec<i64>> {
    let t = kafka.topics();
    t.names()
        .into_iter()
        .map(|name| (name.to_string(), marks(kafka, name)))
        .collect()
}

/// Waits until the fold's group has committed every callbacks record (the worker is
/// stopped and VOD is idle, so nothing more arrives; the fold produces its stream facts before
/// it commits, so "committed = high" means nothing is left to fold).
async fn wait_fold_caught_up(kafka: &KafkaArgs) {
    let topic = kafka.topics().callbacks;
    let c = consumer(kafka, "live2vod-fold");
    let started = Instant::now();
    loop {
        let high = marks(kafka, &topic);
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&topic, p);
        }
        let committed: Vec<i64> = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets")
            .elements()
            .iter()
            .map(|e| e.offset().to_raw().unwrap_or(-1))
            .collect();
        let all = (0..PARTITIONS as usize).all(|p| high[p] == 0 || committed[p] == high[p]);
        if all {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "hang guard: the fold did not catch up (committed {committed:?}, high {high:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the pipeline once: every flow, duplicates, shuffles, verified against the truth; then
/// stops the worker, lets the fold finish and stops everything but the cluster.
async fn corpus() -> &'static Corpus {
    CORPUS
        .get_or_init(|| async {
            let broker = EmbeddedBroker::start(1).expect("mock cluster starts");
            let kafka = kafka_for(&broker);
            let policy = Policy::parse(&live2vod::sim::policy_toml()).expect("policy");
            let mut cfg = PipelineConfig::new(kafka.clone(), policy.clone());
            cfg.sim.sessions = 8;
            cfg.sim.seed = 21;
            cfg.sim.duplicate_rate = 0.2;
            cfg.sim.throttle_rate = 0.1;
            let mut pipeline = Pipeline::start(cfg).await.expect("pipeline starts");
            pipeline.sim.deliver_all().await;
            let report = pipeline
                .sim
                .verify(&pipeline.api_url, Duration::from_secs(60))
                .await;
            assert!(report.ok, "the live pipeline did not converge:\n{report}");
            assert!(
                report.skipped_lost.is_empty(),
                "VOD lost callbacks in a fault-free run: {:?}",
                report.skipped_lost
            );
            assert!(pipeline.sim.wait_idle(Duration::from_secs(30)).await);
            pipeline.stop_worker().await.expect("worker stops");
            wait_fold_caught_up(&kafka).await;
            let fold = pipeline.stop_fold().await.expect("fold ran until stopped");
            println!(
                "corpus: {} records folded live ({} duplicates), {} commands, {} stream facts",
                fold.folded, fold.duplicates, fold.commands, fold.derived
            );
            let scenario = pipeline.sim.scenario().clone();
            let truth = pipeline.sim.truth();
            pipeline.shutdown().await.expect("clean shutdown");
            Corpus {
                broker,
                kafka,
                policy,
                scenario,
                truth,
            }
        })
        .await
}

/// Latest value of every key of `topic`.
fn latest(kafka: &KafkaArgs, topic: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in 0..PARTITIONS {
        for (k, v) in live2vod::kafka::read::read_partition(kafka, topic, p).expect("read") {
            out.insert(k, v);
        }
    }
    out
}

fn create_topic(broker: &EmbeddedBroker, name: &str) {
    // The mock cluster does not implement CreateTopics, so replay cannot create it there.
    let n = name.to_string();
    broker
        .control(move |c| c.create_topic(&n, PARTITIONS, 1))
        .expect("control")
        .expect("create topic");
}

async fn replay(cfg: ReplayConfig) -> ReplayReport {
    replay_with_progress(cfg).await.0
}

/// Runs a replay; also returns the last `(done, total)` its progress callback reported.
async fn replay_with_progress(cfg: ReplayConfig) -> (ReplayReport, (u64, u64)) {
    let last = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let l = last.clone();
    let progress = move |done, total, _| {
        if let Ok(mut x) = l.lock() {
            *x = (done, total);
        }
    };
    let report = tokio::time::timeout(Duration::from_secs(120), run_replay(cfg, progress))
        .await
        .expect("hang guard: replay did not finish in 120 s")
        .expect("replay succeeds");
    report.print_text();
    let last = *last.lock().expect("progress lock");
    (report, last)
}

/// The api JSON without the per-delivery counters (see the file's doc).
fn comparable(mut json: Value) -> Value {
    if let Some(o) = json.as_object_mut() {
        o.remove("duplicates");
        if o.contains_key("sessions") {
            o.remove("events");
        }
    }
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_the_live_aggregates_without_side_effects() {
    let c = corpus().await;
    let to = "live2vod.aggregates-replayed";
    create_topic(&c.broker, to);
    let before = all_marks(&c.kafka);
    let report = replay(ReplayConfig {
        kafka: c.kafka.clone(),
        policy: c.policy.clone(),
        start: Start::Beginning,
        to_topic: Some(to.into()),
        diff: false,
    })
    .await;
    assert_eq!(
        all_marks(&c.kafka),
        before,
        "replay wrote to a live2vod topic"
    );
    assert_eq!(report.dead, 0, "{:?}", report.dead_examples);

    let topics: Topics = c.kafka.topics();
    let live = latest(&c.kafka, &topics.aggregates);
    let replayed = latest(&c.kafka, to);
    assert_eq!(report.written, report.aggregates);
    assert_eq!(replayed.len() as u64, report.aggregates);
    let live_keys: BTreeSet<_> = live.keys().collect();
    let replayed_keys: BTreeSet<_> = replayed.keys().collect();
    assert_eq!(
        live_keys, replayed_keys,
        "replay and the live fold built different sets of aggregates"
    );
    let (mut videos, mut streams, mut dup_differs) = (0, 0, 0);
    for (key, live_bytes) in &live {
        let re_bytes = &replayed[key];
        let live_agg = decode_snapshot(live_bytes).expect("live snapshot decodes");
        let re_agg = decode_snapshot(re_bytes).expect("replayed snapshot decodes");
        let (k1, j1) = snapshot_json(live_bytes).expect("live json");
        let (k2, j2) = snapshot_json(re_bytes).expect("replayed json");
        assert_eq!((&k1, &k2), (key, key));
        if j1.get("sessions").is_some() {
            streams += 1;
        } else {
            videos += 1;
            if j1["duplicates"] != j2["duplicates"] {
                dup_differs += 1;
            }
        }
        assert_eq!(
            comparable(j1),
            comparable(j2),
            "aggregate {key}: the replayed view differs from the live one"
        );
        assert!(
            encode_state(&live_agg) == encode_state(&re_agg),
            "aggregate {key}: the replayed state is not byte-identical to the live one"
        );
    }
    println!(
        "compared {videos} videos and {streams} streams: states identical; video duplicate counters differing: {dup_differs}"
    );
    assert!(videos > 0 && streams > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_with_the_live_policy_finds_no_difference() {
    let c = corpus().await;
    let before = all_marks(&c.kafka);
    let report = replay(ReplayConfig {
        kafka: c.kafka.clone(),
        policy: c.policy.clone(),
        start: Start::Beginning,
        to_topic: None,
        diff: true,
    })
    .await;
    assert_eq!(all_marks(&c.kafka), before, "replay --diff wrote something");
    assert_eq!(report.written, 0);
    let d = report.diff.expect("a diff");
    let live_ids: BTreeSet<String> = latest_commands(&c.kafka);
    assert!(
        d.only_projected.is_empty() && d.only_live.is_empty(),
        "differences for the same policy: +{:?} -{:?}",
        d.only_projected,
        d.only_live
    );
    assert_eq!(d.in_both as usize, live_ids.len());
    assert!(d.in_both > 0);
}

/// Command ids on the commands topic.
fn latest_commands(kafka: &KafkaArgs) -> BTreeSet<String> {
    use prost::Message as _;
    let topic = kafka.topics().commands;
    let mut out = BTreeSet::new();
    for p in 0..PARTITIONS {
        for (_, v) in live2vod::kafka::read::read_partition(kafka, &topic, p).expect("read") {
            out.insert(
                live2vod::proto::Command::decode(v.as_slice())
                    .expect("command decodes")
                    .command_id,
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_with_a_wider_policy_lists_exactly_the_added_transcodes() {
    let c = corpus().await;
    // Same rules, but every segment no rule claims is transcoded with tg-backfill: the
    // segments of the auto-* and compose-auto-* streams (store-* segments stay manual,
    // compose-only-* segments stay untranscoded).
    let wider = live2vod::sim::policy_toml().replacen(
        "segments = { action = \"none\" }",
        "segments = { action = \"transcode\", template_group = \"tg-backfill\" }",
        1,
    );
    let policy = Policy::parse(&wider).expect("wider policy parses");
    let before = all_marks(&c.kafka);
    let report = replay(ReplayConfig {
        kafka: c.kafka.clone(),
        policy,
        start: Start::Beginning,
        to_topic: None,
        diff: true,
    })
    .await;
    assert_eq!(all_marks(&c.kafka), before, "replay --diff wrote something");
    let d = report.diff.expect("a diff");
    let expected: BTreeSet<(String, String)> = c
        .scenario
        .streams
        .iter()
        .filter(|s| matches!(s.flow, Flow::RecordTranscode | Flow::ComposeTranscode))
        .flat_map(|s| s.sessions.iter().flat_map(|x| x.segments.iter()))
        .map(|seg| {
            (
                live2vod::domain::transcode_command_id(&seg.video_id, "tg-backfill"),
                seg.video_id.clone(),
            )
        })
        .collect();
    let got: BTreeSet<(String, String)> = d
        .only_projected
        .iter()
        .map(|l| (l.command_id.clone(), l.video_id.clone()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        got, expected,
        "the added commands are not the added transcodes"
    );
    assert!(
        d.only_projected
            .iter()
            .all(|l| l.kind == "submit_transcode(tg-backfill)" && l.cause == "policy:segment"),
        "{:?}",
        d.only_projected
    );
    assert!(
        d.only_live.is_empty(),
        "a wider policy drops nothing: {:?}",
        d.only_live
    );
    assert_eq!(d.in_both as usize, latest_commands(&c.kafka).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_time_replays_only_records_at_or_after_the_time() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let kafka = kafka_for(&broker);
    let topic = kafka.topics().callbacks;
    // Two streams' callbacks: the first stream's stamped an hour before the second's.
    let sc = Scenario::generate(5, 4, 1_790_000_000_000);
    let first = sc.streams[0].key();
    let t0 = 1_790_000_000_000i64;
    let t1 = t0 + 3_600_000;
    let producer = live2vod::kafka::producer::idempotent_producer(&kafka).expect("producer");
    let (mut old, mut new) = (BTreeSet::new(), BTreeSet::new());
    let mut new_records = 0u64;
    // Old records first, then new ones: timestamps non-decreasing per partition, as the
    // broker's time index (and replay's search) assume.
    for pass_old in [true, false] {
        for ev in sc.events.iter().filter(|e| (e.stream == first) == pass_old) {
            let key = live2vod::domain::routing_key(ev.body.as_bytes()).expect("routing key");
            let ts = if pass_old { t0 } else { t1 };
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(key.as_str())
                        .payload(ev.body.as_str())
                        .timestamp(ts),
                    Duration::from_secs(10),
                )
                .await
                .expect("produced");
            if pass_old {
                old.insert(key);
            } else {
                new.insert(key);
                new_records += 1;
            }
        }
    }
    assert!(!old.is_empty() && !new.is_empty() && old.is_disjoint(&new));

    let to = "live2vod.aggregates-from-time";
    create_topic(&broker, to);
    let report = replay(ReplayConfig {
        kafka: kafka.clone(),
        policy: Policy::default(),
        start: Start::Time(t0 + 1_800_000),
        to_topic: Some(to.into()),
        diff: false,
    })
    .await;
    assert_eq!(
        report.events, new_records,
        "--from-time must replay exactly the records stamped at or after the time"
    );
    let keys: BTreeSet<String> = latest(&kafka, to)
        .into_keys()
        .filter(|k| !k.starts_with("stream:"))
        .collect();
    assert_eq!(
        keys, new,
        "the replayed aggregates are those of the newer records"
    );

    // A time after every record replays nothing; one before every record replays all.
    let none = replay(ReplayConfig {
        kafka: kafka.clone(),
        policy: Policy::default(),
        start: Start::Time(t1 + 1),
        to_topic: None,
        diff: false,
    })
    .await;
    assert_eq!(none.events, 0);
    let all = replay(ReplayConfig {
        kafka,
        policy: Policy::default(),
        start: Start::Time(t0),
        to_topic: None,
        diff: false,
    })
    .await;
    assert_eq!(all.events as usize, sc.events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_the_replayed_topic_serves_the_truth() {
    // Blue/green: rebuild into a topic of its own, point an api at it, check it against the
    // simulator's ground truth like the live api was.
    let c = corpus().await;
    let to = "live2vod.aggregates-green";
    create_topic(&c.broker, to);
    let report = replay(ReplayConfig {
        kafka: c.kafka.clone(),
        policy: c.policy.clone(),
        start: Start::Beginning,
        to_topic: Some(to.into()),
        diff: false,
    })
    .await;
    assert!(report.written > 0);
    let mut cfg = live2vod::api::Config::new(c.kafka.clone());
    cfg.aggregates_topic = Some(to.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = live2vod::api::start(cfg, listener)
        .await
        .expect("api starts");
    tokio::time::timeout(Duration::from_secs(60), api.caught_up())
        .await
        .expect("hang guard: the api did not read the replayed topic within 60 s");
    let v = live2vod::sim::verify(&api.base_url(), &c.truth, Duration::from_secs(30)).await;
    println!("{v}");
    assert!(
        v.ok,
        "the api on the replayed topic differs from the truth:\n{v}"
    );
    assert_eq!(v.videos_matching, c.truth.videos.len());
    api.shutdown().await.expect("api stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_into_a_topic_the_cluster_cannot_create_says_why() {
    // librdkafka's mock cluster (also what `live2vod broker` hosts) has no CreateTopics: the
    // error must say so, not just fail.
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let kafka = kafka_for(&broker);
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        run_replay(
            ReplayConfig {
                kafka,
                policy: Policy::default(),
                start: Start::Beginning,
                to_topic: Some("live2vod.aggregates-missing".into()),
                diff: false,
            },
            |_, _, _| {},
        ),
    )
    .await
    .expect("hang guard: replay did not finish in 60 s");
    let err = result.expect_err("the topic cannot be created on the mock cluster");
    println!("{err}");
    assert!(
        err.to_string().contains("CreateTopics"),
        "the error does not explain what is missing: {err}"
    );
}
