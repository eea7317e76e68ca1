//! The whole path — relay -> fold -> worker -> api — in one process on librdkafka's embedded
//! mock cluster, driven by the simulated Alibaba Live+VOD (every seed flow, shuffled and
//! duplicated callbacks, throttled OpenAPI calls) and checked against the simulator's ground
//! truth through the api. Then the same with trouble injected mid-scenario: produce errors
//! (the relay answers 503, VOD's retries bring the callbacks in), a broker outage while the
//! pipeline runs, a broker outage while the consumer groups make their first join, and the
//! fold killed (task aborted) and replaced twice.
//!
//! Consumer-group caveat the tests make visible: a member that vanished without leaving (a
//! killed fold, or a join cut by an outage) holds its partitions until `session.timeout.ms`
//! (librdkafka's default 45 s), so catch-up waits that long; the tests that provoke it use
//! 6 s sessions (`short_sessions`), as a deployment that wants fast takeover would.
//!
//! Time appears only as hang guards (each with a message) and as the length of an injected
//! outage; assertions are on outcomes: convergence, no acknowledged callback lost, no
//! transcode job started twice.
use std::time::{Duration, Instant};

use live2vod::demo::{Pipeline, PipelineConfig};
use live2vod::domain::Policy;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;
use live2vod::sim::{Flow, SimHandle, Stats, Truth, VerifyReport};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// Each pipeline uses both cores; running two at once only makes both slower.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Hang guard of the api's convergence (a healthy run converges in ~10-15 s).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(45);

struct Setup {
    broker: EmbeddedBroker,
    pipeline: Pipeline,
}

/// A fresh mock cluster with live2vod's topics and the whole pipeline on it.
async fn setup(seed: u64, tweak: impl FnOnce(&mut PipelineConfig)) -> Setup {
    live2vod::metrics::install();
    let broker = EmbeddedBroker::start(1).expect("mock cluster starts");
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = 3;
    broker
        .create_topics(&kafka.topics(), kafka.topic_partitions)
        .expect("topics on the mock cluster");
    let policy = Policy::parse(&live2vod::sim::policy_toml()).expect("the sim's policy parses");
    let mut cfg = PipelineConfig::new(kafka, policy);
    cfg.sim.sessions = 8; // two sessions of each of the four flows
    cfg.sim.seed = seed;
    cfg.sim.duplicate_rate = 0.2;
    cfg.sim.throttle_rate = 0.1;
    tweak(&mut cfg);
    let pipeline = Pipeline::start(cfg).await.expect("pipeline starts");
    Setup { broker, pipeline }
}

/// Consumer group sessions of 6 s instead of librdkafka's 45 s, for every client.
fn short_sessions(kafka: &mut KafkaArgs) {
    for (k, v) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "1000"),
    ] {
        kafka.kafka.push((k.into(), v.into()));
    }
}

/// `live2vod_relay_requests_total{outcome="unavailable"}` (503s) so far in this process.
fn relay_503s() -> u64 {
    let text = live2vod::metrics::render();
    text.lines()
        .filter(|l| {
            l.starts_with("live2vod_relay_requests_total") && l.contains("outcome=\"unavailable\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until `cond` holds on the simulator's delivery counters; panics with `what` after
/// `guard` (a hang guard, not a timed assertion).
async fn wait_for(
    sim: &SimHandle,
    what: &str,
    guard: Duration,
    cond: impl Fn(&live2vod::sim::Progress) -> bool,
) {
    let start = Instant::now();
    loop {
        let p = sim.progress();
        if cond(&p) {
            return;
        }
        assert!(
            start.elapsed() < guard,
            "hang guard: {what} did not happen within {guard:?} ({p})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asserts what every scenario must end with and prints what happened.
fn check_outcome(
    name: &str,
    report: &VerifyReport,
    stats: &Stats,
    truth: &Truth,
    expect_lost: bool,
) {
    println!("[{name}] {report}");
    println!("[{name}] {stats}");
    assert!(
        report.ok,
        "[{name}] the api did not converge to the truth:\n{report}"
    );
    assert!(
        report.duplicate_jobs().is_empty(),
        "[{name}] transcode jobs started twice: {:?}",
        report.duplicate_jobs()
    );
    let twice: Vec<_> = stats.jobs_started.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "[{name}] jobs started more than once: {twice:?}"
    );
    if !expect_lost {
        assert!(
            stats.lost_by_vod.is_empty(),
            "[{name}] VOD gave up on callbacks (the outage was meant to be short enough): {:?}",
            stats.lost_by_vod
        );
        assert!(report.skipped_lost.is_empty());
    }
    // The scenario covers every seed flow, each with segments verified.
    for flow in [
        Flow::RecordTranscode,
        Flow::StoreOnly,
        Flow::ComposeTranscode,
        Flow::ComposeOnly,
    ] {
        assert!(
            truth.videos.values().any(|v| v.flow == flow),
            "[{name}] no video of {flow:?} in the scenario"
        );
    }
    assert_eq!(
        report.videos_matching,
        truth.videos.len() - report.skipped_lost.len()
    );
    assert!(
        report.jobs_checked > 0,
        "[{name}] no transcode job was checked"
    );
}

/// What the pipeline looks like from outside, printed when a scenario did not converge.
fn diagnose(name: &str, s: &Setup) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let p = &s.pipeline;
    println!(
        "[{name}] diagnosis: fold task finished: {}, api holds {} aggregates, worker (in flight, finished): {:?}",
        p.fold_finished(),
        p.api.store().len(),
        p.worker().map(|w| (w.in_flight(), w.finished_commands()))
    );
    let mut cc = rdkafka::ClientConfig::new();
    cc.set("bootstrap.servers", s.broker.bootstrap())
        .set("group.id", "live2vod-fold");
    let c: BaseConsumer = cc.create().expect("consumer");
    let topics = live2vod::kafka::Topics::with_prefix("live2vod.");
    for t in [
        &topics.callbacks,
        &topics.commands,
        &topics.aggregates,
        &topics.dlq,
    ] {
        let marks: Vec<_> = (0..3)
            .map(|i| {
                c.fetch_watermarks(t, i, Duration::from_secs(5))
                    .map(|w| w.1)
            })
            .collect();
        println!("[{name}]   {t} high watermarks {marks:?}");
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    for i in 0..3 {
        tpl.add_partition(&topics.callbacks, i);
    }
    println!(
        "[{name}]   fold group committed {:?}",
        c.committed_offsets(tpl, Duration::from_secs(5)).map(|t| t
            .elements()
            .iter()
            .map(|e| e.offset())
            .collect::<Vec<_>>())
    );
}

async fn finish(name: &str, s: Setup) {
    let mut pipeline = s.pipeline;
    let fold = pipeline
        .stop_fold()
        .await
        .expect("the fold ran until stopped");
    println!(
        "[{name}] fold: {} records, {} folded, {} duplicates, {} re-deliveries recognised as already applied, {} commands, {} stream facts, {} dead letters",
        fold.records, fold.folded, fold.duplicates, fold.already_applied, fold.commands, fold.derived, fold.dead_lettered
    );
    assert_eq!(
        fold.dead_lettered, 0,
        "[{name}] nothing the sim sends is bad input"
    );
    pipeline.shutdown().await.expect("clean shutdown");
    drop(s.broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_converges_with_duplicates_and_shuffles() {
    let _serial = SERIAL.lock().await;
    let s = setup(11, |_| {}).await;
    let p = &s.pipeline;
    let progress = p.sim.deliver_all().await;
    let report = p.sim.verify(&p.api_url, VERIFY_TIMEOUT).await;
    if !report.ok {
        diagnose("clean", &s);
    }
    let (stats, truth) = (p.sim.stats(), p.sim.truth());
    check_outcome("clean", &report, &stats, &truth, false);
    assert!(
        progress.duplicates_acknowledged > 0,
        "the scenario must deliver duplicates: {progress}"
    );
    assert_eq!(
        progress.retried, 0,
        "no fault injected, no retry expected: {progress}"
    );
    finish("clean", s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_answered_503_and_vod_retries_bring_the_callbacks_in() {
    let _serial = SERIAL.lock().await;
    let s = setup(12, |c| c.relay_ack_timeout = Duration::from_millis(1000)).await;
    let p = &s.pipeline;
    let before_503 = relay_503s();
    // Every Produce request fails (retriably) until cleared: the relay's idempotent producer
    // keeps retrying, the relay answers 503 once its ack timeout passed.
    s.broker
        .control(|c| {
            c.request_errors(
                RDKafkaApiKey::Produce,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000],
            )
        })
        .expect("inject produce errors");
    let injected = Instant::now();
    let control = async {
        // The burst lasts until a full round of VOD's concurrent deliveries was refused.
        wait_for(
            &p.sim,
            "16 refused deliveries",
            Duration::from_secs(30),
            |pr| pr.retried >= 16,
        )
        .await;
        s.broker
            .control(|c| c.clear_request_errors(RDKafkaApiKey::Produce))
            .expect("clear produce errors");
        injected.elapsed()
    };
    let (progress, burst) = tokio::join!(p.sim.deliver_all(), control);
    let report = p.sim.verify(&p.api_url, VERIFY_TIMEOUT).await;
    if !report.ok {
        diagnose("produce errors", &s);
    }
    let (stats, truth) = (p.sim.stats(), p.sim.truth());
    let answered_503 = relay_503s() - before_503;
    println!(
        "[produce errors] burst of {:.2}s: relay answered {answered_503} x 503, VOD retried {} deliveries, {} lost by VOD, {} acknowledged",
        burst.as_secs_f64(),
        progress.retried,
        progress.lost,
        progress.acknowledged
    );
    assert!(
        answered_503 >= 16,
        "the relay must have answered 503 during the burst"
    );
    // Every refused attempt was either retried or was the last one (lost).
    assert_eq!(
        answered_503,
        stats.delivery.retried + stats.delivery.lost,
        "every non-200 answer the sim saw is a 503 from the relay"
    );
    check_outcome("produce errors", &report, &stats, &truth, false);
    finish("produce errors", s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_mid_scenario_is_caught_up() {
    let _serial = SERIAL.lock().await;
    let s = setup(13, |c| {
        c.relay_ack_timeout = Duration::from_millis(1000);
        // Slower delivery, so the outage falls in the middle of it.
        c.sim.concurrency = 4;
    })
    .await;
    let p = &s.pipeline;
    // Phase 1: one stream's callbacks, until the api shows aggregates: the fold and the
    // worker have joined their groups and the pipeline runs (an outage during the first join
    // is `a_broker_outage_during_the_first_group_join_is_recovered`).
    let first = p.sim.scenario().streams[0].key();
    let warmup = p.sim.deliver_matching(|e| e.stream == first).await;
    wait_running(p).await;
    // Phase 2: the other streams, with the broker down once a third of them is in.
    let rest = p
        .sim
        .scenario()
        .events
        .iter()
        .filter(|e| e.stream != first)
        .count() as u64;
    let before_503 = relay_503s();
    let control = async {
        wait_for(
            &p.sim,
            "a third of the remaining callbacks acknowledged",
            Duration::from_secs(30),
            |pr| pr.acknowledged >= warmup.acknowledged + rest / 3,
        )
        .await;
        let at = p.sim.progress();
        s.broker
            .control(|c| c.broker_down(1))
            .expect("control")
            .expect("broker down");
        let down = Instant::now();
        // Down until VOD saw its in-flight deliveries refused, then up again.
        wait_for(
            &p.sim,
            "4 refused deliveries",
            Duration::from_secs(30),
            |pr| pr.retried >= 4,
        )
        .await;
        s.broker
            .control(|c| c.broker_up(1))
            .expect("control")
            .expect("broker up");
        (at, down.elapsed())
    };
    let (progress, (at, outage)) =
        tokio::join!(p.sim.deliver_matching(|e| e.stream != first), control);
    let report = p.sim.verify(&p.api_url, VERIFY_TIMEOUT).await;
    if !report.ok {
        diagnose("broker outage", &s);
    }
    let (stats, truth) = (p.sim.stats(), p.sim.truth());
    let answered_503 = relay_503s() - before_503;
    println!(
        "[broker outage] down for {:.2}s after {} of {} deliveries were acknowledged: relay answered {answered_503} x 503, VOD retried {}, {} lost by VOD",
        outage.as_secs_f64(),
        at.acknowledged,
        progress.scheduled,
        progress.retried,
        progress.lost
    );
    assert!(
        at.acknowledged < progress.scheduled,
        "the outage must start before the scenario was delivered"
    );
    assert!(answered_503 >= 4);
    check_outcome("broker outage", &report, &stats, &truth, false);
    finish("broker outage", s).await;
}

/// A slow broker (round-trip time injected on the mock cluster): first 200 ms on every
/// request of every client, within every timeout, then 1.5 s, beyond the relay's 1 s ack
/// timeout, so the relay answers 503 and VOD retries, then back to 200 ms. Nothing lost, no
/// job twice, and the pipeline converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_slows_the_pipeline_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let s = setup(17, |c| {
        c.relay_ack_timeout = Duration::from_millis(1000);
        c.sim.concurrency = 4;
        // VOD's retries outlast the slow phase.
        c.sim.attempts = 10;
    })
    .await;
    let p = &s.pipeline;
    let rtt = |ms: u64| {
        s.broker
            .control(move |c| c.broker_round_trip_time(-1, Duration::from_millis(ms)))
            .expect("control")
            .expect("set the round-trip time");
    };
    rtt(200);
    let before_503 = relay_503s();
    let started = Instant::now();
    let control = async {
        wait_for(
            &p.sim,
            "a third of the callbacks acknowledged at 200 ms RTT",
            Duration::from_secs(120),
            |pr| pr.scheduled > 0 && pr.acknowledged >= pr.scheduled / 3,
        )
        .await;
        let at = p.sim.progress();
        rtt(1500);
        let slow = Instant::now();
        wait_for(
            &p.sim,
            "4 deliveries refused at 1.5 s RTT",
            Duration::from_secs(60),
            |pr| pr.retried >= 4,
        )
        .await;
        rtt(200);
        (at, slow.elapsed())
    };
    let (progress, (at, slow)) = tokio::join!(p.sim.deliver_all(), control);
    let report = p.sim.verify(&p.api_url, VERIFY_TIMEOUT).await;
    rtt(0);
    if !report.ok {
        diagnose("slow broker", &s);
    }
    let (stats, truth) = (p.sim.stats(), p.sim.truth());
    let answered_503 = relay_503s() - before_503;
    println!(
        "[slow broker] 200 ms RTT throughout, 1.5 s for {:.2}s after {} of {} deliveries: relay answered {answered_503} x 503, VOD retried {}, {} lost by VOD; converged {:.1}s after the start",
        slow.as_secs_f64(),
        at.acknowledged,
        progress.scheduled,
        progress.retried,
        progress.lost,
        started.elapsed().as_secs_f64()
    );
    assert!(
        at.acknowledged < progress.scheduled,
        "the slow phase must start before the scenario was delivered"
    );
    assert!(
        answered_503 >= 4,
        "the relay answered 503 while the broker was slower than its ack timeout"
    );
    check_outcome("slow broker", &report, &stats, &truth, false);
    finish("slow broker", s).await;
}

/// An outage while the fold's and worker's consumers make their first group join (the mock
/// coordinator delays a new group's first rebalance by 3 s, delivery takes ~1.5 s): the
/// coordinator keeps the half-joined member until its session times out, so the groups only
/// settle after that (with the default 45 s session the pipeline converged after ~95 s). With
/// short sessions the pipeline recovers by itself, nothing lost, no job twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_during_the_first_group_join_is_recovered() {
    let _serial = SERIAL.lock().await;
    let s = setup(14, |c| {
        c.relay_ack_timeout = Duration::from_millis(1000);
        c.sim.concurrency = 4;
        for (k, v) in [
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
        ] {
            c.kafka.kafka.push((k.into(), v.into()));
        }
    })
    .await;
    let p = &s.pipeline;
    let scheduled = p.sim.scenario().events.len() as u64;
    let control = async {
        wait_for(
            &p.sim,
            "a third of the callbacks acknowledged",
            Duration::from_secs(30),
            |pr| pr.acknowledged >= scheduled / 3,
        )
        .await;
        let folded_before = p.api.store().len();
        s.broker
            .control(|c| c.broker_down(1))
            .expect("control")
            .expect("broker down");
        let down = Instant::now();
        wait_for(
            &p.sim,
            "4 refused deliveries",
            Duration::from_secs(30),
            |pr| pr.retried >= 4,
        )
        .await;
        s.broker
            .control(|c| c.broker_up(1))
            .expect("control")
            .expect("broker up");
        (folded_before, down.elapsed())
    };
    let (progress, (folded_before, outage)) = tokio::join!(p.sim.deliver_all(), control);
    let report = p.sim.verify(&p.api_url, VERIFY_TIMEOUT).await;
    if !report.ok {
        diagnose("outage at join", &s);
    }
    let (stats, truth) = (p.sim.stats(), p.sim.truth());
    println!(
        "[outage at join] down for {:.2}s with {folded_before} aggregates in the api: VOD retried {}, {} lost by VOD",
        outage.as_secs_f64(),
        progress.retried,
        progress.lost
    );
    check_outcome("outage at join", &report, &stats, &truth, false);
    finish("outage at join", s).await;
}

/// Waits until the api shows aggregates: the fold and the worker have joined their groups
/// and the pipeline runs.
async fn wait_running(p: &Pipeline) {
    let started = Instant::now();
    while p.api.store().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "hang guard: the pipeline did not fold the first stream within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fold is killed twice mid-scenario (its task aborted wherever it was: mid-batch, between
/// its produce and its commit, ...) and a new one takes over each time: nothing acknowledged
/// is lost, re-delivered records are recognised, re-emitted commands start no second job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fold_crashes_mid_scenario_lose_nothing_and_start_no_job_twice() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(15, |c| {
        c.sim.concurrency = 4;
        // A killed consumer does not leave its group: the coordinator hands its partitions to
        // the new fold only once its session timed out (45 s by default; then the scenario
        // converges only after ~50 s). A short session keeps the test short.
        short_sessions(&mut c.kafka);
    })
    .await;
    let first = s.pipeline.sim.scenario().streams[0].key();
    let warmup = s.pipeline.sim.deliver_matching(|e| e.stream == first).await;
    wait_running(&s.pipeline).await;
    let rest = s
        .pipeline
        .sim
        .scenario()
        .events
        .iter()
        .filter(|e| e.stream != first)
        .count() as u64;
    let Pipeline { sim, fold, .. } = &mut s.pipeline;
    let sim = &*sim;
    let control = async {
        let mut at = Vec::new();
        for k in 1..=2 {
            wait_for(
                sim,
                "part of the callbacks acknowledged",
                Duration::from_secs(60),
                |pr| pr.acknowledged >= warmup.acknowledged + k * rest / 3,
            )
            .await;
            at.push(sim.progress().acknowledged);
            fold.crash_and_restart().await;
        }
        at
    };
    let (progress, at) = tokio::join!(sim.deliver_matching(|e| e.stream != first), control);
    let report = s
        .pipeline
        .sim
        .verify(&s.pipeline.api_url, VERIFY_TIMEOUT)
        .await;
    if !report.ok {
        diagnose("fold crashes", &s);
    }
    let (stats, truth) = (s.pipeline.sim.stats(), s.pipeline.sim.truth());
    println!(
        "[fold crashes] fold killed after {at:?} of {} deliveries were acknowledged",
        progress.scheduled
    );
    check_outcome("fold crashes", &report, &stats, &truth, false);
    finish("fold crashes", s).await;
}

/// The worst moment for a fold to die: its commands and snapshots are durable but its input
/// offsets are not (the broker refuses every OffsetCommit meanwhile). The next fold re-reads
/// those records, recognises each as already applied from the restored snapshots (no counter
/// moves twice) and re-emits no command that starts a second job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_killed_before_its_offsets_were_committed_applies_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(16, |c| short_sessions(&mut c.kafka)).await;
    let first = s.pipeline.sim.scenario().streams[0].key();
    s.pipeline.sim.deliver_matching(|e| e.stream == first).await;
    wait_running(&s.pipeline).await;
    let warm = s.pipeline.api.store().len();
    s.broker
        .control(|c| {
            c.request_errors(
                RDKafkaApiKey::OffsetCommit,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE; 100_000],
            )
        })
        .expect("refuse offset commits");
    s.pipeline.sim.deliver_matching(|e| e.stream != first).await;
    // The fold keeps folding (commit failures are only logged): wait until the api shows the
    // other streams' aggregates, i.e. their snapshots are durable, with no offset committed.
    let started = Instant::now();
    while s.pipeline.api.store().len() < warm + 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "hang guard: the fold did not fold the other streams within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.pipeline.fold.crash_and_restart().await;
    s.broker
        .control(|c| c.clear_request_errors(RDKafkaApiKey::OffsetCommit))
        .expect("accept offset commits again");
    let p = &s.pipeline;
    let report = p.sim.verify(&p.api_url, VERIFY_TIMEOUT).await;
    if !report.ok {
        diagnose("uncommitted crash", &s);
    }
    let (stats, truth) = (p.sim.stats(), p.sim.truth());
    check_outcome("uncommitted crash", &report, &stats, &truth, false);
    let mut pipeline = s.pipeline;
    let fold = pipeline
        .stop_fold()
        .await
        .expect("the fold ran until stopped");
    println!(
        "[uncommitted crash] the new fold: {} records, {} recognised as already applied, {} folded, {} commands",
        fold.records, fold.already_applied, fold.folded, fold.commands
    );
    assert!(
        fold.already_applied >= 20,
        "the new fold must re-read the uncommitted records and recognise them: {fold:?}"
    );
    pipeline.shutdown().await.expect("clean shutdown");
}

/// `live2vod run` reports one readiness for all its roles: a fold that stopped on an error
/// (here: a snapshot it cannot read, so it refuses to fold on a partial state) must turn its
/// part of it to not ready, not leave it green while nothing is folded any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_that_stopped_on_an_error_is_not_ready() {
    use live2vod::fold::{run_fold, FoldConfig, FoldError};
    use rdkafka::producer::FutureRecord;
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = 1;
    broker
        .create_topics(&kafka.topics(), 1)
        .expect("topics on the mock cluster");
    let topics = kafka.topics();
    let producer = live2vod::kafka::producer::idempotent_producer(&kafka).expect("producer");
    for (topic, key, value) in [
        (&topics.aggregates, "vid-1", &b"not a snapshot"[..]),
        (
            &topics.callbacks,
            "vid-1",
            &br#"{"EventType":"FileUploadComplete","VideoId":"vid-1","Status":"success"}"#[..],
        ),
    ] {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(value),
                Duration::from_secs(10),
            )
            .await
            .expect("produced");
    }
    let health = live2vod::http::Health::default();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let cfg = FoldConfig {
        batch_max: 100,
        ..FoldConfig::new(kafka, Policy::default())
    };
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        run_fold(cfg, health.clone(), stop_rx),
    )
    .await
    .expect("hang guard: the fold neither failed nor stopped within 60 s");
    assert!(
        matches!(result, Err(FoldError::Restore { .. })),
        "the fold must refuse the unreadable snapshot: {result:?}"
    );
    assert!(
        !health.is_ready(),
        "a fold that stopped on an error still reports ready"
    );
}
