//! Fold crash recovery on a real broker process (tansu): two `live2vod fold` processes share
//! the partitions of one consumer group while a seeded scenario's callbacks stream in; one of
//! them is SIGKILLed at seeded instants (and restarted) several times. The survivor takes the
//! partitions over and restores them from the aggregates topic. The two crashed folds keep a
//! local state store each (`--state-dir`, kept across their SIGKILLs, so a restart restores
//! only the tail its store does not reflect; its cache is small enough that aggregates are
//! loaded from the store all the time); the clean run keeps everything in memory, so the
//! comparison also checks the store against the in-memory fold. Once everything is consumed,
//! the latest snapshot of every aggregate must hold the same state as a clean single-fold run
//! of the same input, and the projectors must have emitted the same set of command ids.
//!
//! Replay a failure with `LIVE2VOD_TEST_SEED=<seed printed by the test>`.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use live2vod::kafka::KafkaArgs;
use live2vod::sim::Scenario;
use prost::Message as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rdkafka::producer::FutureRecord;

use support::*;

const PARTITIONS: i32 = 6;
const SESSIONS: usize = 40;
/// The crash run's input arrives over about this long, in chunks.
const PRODUCE_SECS: f64 = 20.0;
const CHUNKS: usize = 80;

/// The input: every callback of the scenario, some twice, in a seeded order.
fn input(seed: u64) -> (Vec<(String, String)>, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let sc = Scenario::generate(seed, SESSIONS, 1_790_000_000_000);
    let mut out = Vec::new();
    let mut dups = 0;
    for e in &sc.events {
        let key = live2vod::domain::routing_key(e.body.as_bytes())
            .unwrap_or_else(|err| panic!("scenario body without routing key ({err}): {}", e.body));
        out.push((key.clone(), e.body.clone()));
        if rng.random_bool(0.15) {
            out.push((key, e.body.clone()));
            dups += 1;
        }
    }
    out.shuffle(&mut rng);
    (out, dups)
}

/// Produces `records` to `<prefix>callbacks` in `chunks` chunks, `pause` apart.
fn produce(kafka: &KafkaArgs, records: &[(String, String)], chunks: usize, pause: Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let producer = live2vod::kafka::producer::idempotent_producer(kafka).expect("create producer");
    let topic = kafka.topics().callbacks;
    let per_chunk = records.len().div_ceil(chunks.max(1));
    for (i, chunk) in records.chunks(per_chunk).enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        rt.block_on(async {
            let sends = chunk.iter().map(|(k, v)| {
                producer.send(
                    FutureRecord::to(&topic).key(k).payload(v),
                    Duration::from_secs(30),
                )
            });
            for r in futures::future::join_all(sends).await {
                if let Err((e, _)) = r {
                    panic!("produce to {topic}: {e}");
                }
            }
        });
    }
}

fn spawn_fold(
    dir: &Path,
    name: &str,
    brokers: &str,
    prefix: &str,
    policy: &Path,
    state: Option<&Path>,
) -> (Proc, String) {
    let metrics = format!("127.0.0.1:{}", free_port());
    let state = state.map(|p| p.to_str().expect("utf-8 path").to_string());
    let mut args = vec![
        "fold",
        "--brokers",
        brokers,
        "--topic-prefix",
        prefix,
        "--group-id",
        prefix,
        "--policy",
        policy.to_str().expect("utf-8 path"),
        "--metrics-listen",
        &metrics,
        "--no-create-topics",
    ];
    args.extend(FAST_GROUP);
    if let Some(state) = &state {
        args.extend(["--state-dir", state.as_str(), "--state-cache-mb", "8"]);
    }
    let p = Proc::spawn(dir, name, bin(), &args, &[]);
    wait_http_ok(
        &format!("http://{metrics}/readyz"),
        Duration::from_secs(60),
        &p,
    );
    (p, metrics)
}

/// What a fold run left behind: aggregate states by key, distinct command ids, record counts.
struct Outcome {
    states: BTreeMap<String, Vec<u8>>,
    snapshots: BTreeMap<String, Vec<u8>>,
    command_ids: BTreeSet<String>,
    commands_total: usize,
    dlq: usize,
    callbacks: i64,
}

fn outcome(brokers: &str, prefix: &str) -> Outcome {
    let kafka = kafka_args(brokers, prefix);
    let t = kafka.topics();
    let snapshots = latest_per_key(&kafka, &t.aggregates, PARTITIONS);
    let states = snapshots
        .iter()
        .map(|(k, v)| {
            let snap = live2vod::proto::AggregateSnapshot::decode(v.as_slice())
                .unwrap_or_else(|e| panic!("snapshot of {k} does not decode: {e}"));
            // `meta` (deliveries, duplicates, last applied position) depends on how often
            // Kafka delivered things; the state must not.
            let state = snap
                .state
                .as_ref()
                .map(|s| {
                    let mut buf = Vec::new();
                    s.encode(&mut buf);
                    buf
                })
                .unwrap_or_default();
            (k.clone(), state)
        })
        .collect();
    let commands = read_topic(&kafka, &t.commands, PARTITIONS);
    let command_ids = commands
        .iter()
        .map(|(_, v)| {
            live2vod::proto::Command::decode(v.as_slice())
                .expect("command decodes")
                .command_id
        })
        .collect();
    let callbacks = group_positions(brokers, prefix, &t.callbacks, PARTITIONS)
        .iter()
        .map(|(_, h)| h)
        .sum();
    Outcome {
        states,
        snapshots,
        command_ids,
        commands_total: commands.len(),
        dlq: read_topic(&kafka, &t.dlq, PARTITIONS).len(),
        callbacks,
    }
}

fn json_of(bytes: &[u8]) -> String {
    live2vod::domain::view::snapshot_json(bytes)
        .map(|(_, j)| j.to_string())
        .unwrap_or_else(|e| format!("<undecodable: {e}>"))
}

#[test]
fn killed_folds_converge_to_the_clean_run() {
    let started = Instant::now();
    let seed = test_seed("killed_folds_converge_to_the_clean_run");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b696c6c);
    let dir = Scratch::new("crash-fold");
    let tansu = Tansu::start(dir.path());
    let brokers = tansu.bootstrap();
    let policy = write_sim_policy(dir.path());
    let (records, dups) = input(seed);

    // The reference: one fold, no crash, the same input on topics of their own.
    let clean = "clean.";
    create_topics(&brokers, clean, PARTITIONS);
    {
        let (mut fold, _) = spawn_fold(dir.path(), "clean-fold", &brokers, clean, &policy, None);
        produce(&kafka_args(&brokers, clean), &records, 1, Duration::ZERO);
        wait_drained(
            &brokers,
            clean,
            &format!("{clean}callbacks"),
            PARTITIONS,
            Duration::from_secs(60),
            &[&fold],
        );
        assert!(
            fold.term(Duration::from_secs(20)),
            "clean fold did not stop on SIGTERM"
        );
    }
    let reference = outcome(&brokers, clean);

    // Two folds in one group, one killed and restarted at seeded instants. The killed fold
    // comes back only after its session timed out (6 s): tansu 0.6's group coordinator does not
    // reliably move a SIGKILLed member's partitions when a newcomer joins within the dead
    // member's session (they stayed with the dead member for good, and the group never
    // drained), while it does expire a silent member when the next one joins after that.
    let crash = "crash.";
    create_topics(&brokers, crash, PARTITIONS);
    let state = |name: &str| dir.path().join(format!("state-{name}"));
    let mut folds = [
        Some(
            spawn_fold(
                dir.path(),
                "fold-a",
                &brokers,
                crash,
                &policy,
                Some(&state("fold-a")),
            )
            .0,
        ),
        Some(
            spawn_fold(
                dir.path(),
                "fold-b",
                &brokers,
                crash,
                &policy,
                Some(&state("fold-b")),
            )
            .0,
        ),
    ];
    let kills = rng.random_range(2..=3usize);
    let mut at: Vec<f64> = (0..kills)
        .map(|_| rng.random_range(0.3..PRODUCE_SECS))
        .collect();
    at.sort_by(f64::total_cmp);
    let plan: Vec<(f64, usize, f64)> = at
        .into_iter()
        .map(|t| (t, rng.random_range(0..2usize), rng.random_range(6.5..8.0)))
        .collect();
    println!("kill plan (seconds into the input, victim, downtime): {plan:?}");

    let crash_kafka = kafka_args(&brokers, crash);
    let producer = {
        let records = records.clone();
        let pause = Duration::from_secs_f64(PRODUCE_SECS / CHUNKS as f64);
        std::thread::spawn(move || produce(&crash_kafka, &records, CHUNKS, pause))
    };
    let t0 = Instant::now();
    let mut generations = [1u32, 1u32];
    for (t, victim, down) in &plan {
        let when = t0 + Duration::from_secs_f64(*t);
        if let Some(d) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let name = ["fold-a", "fold-b"][*victim];
        if let Some(mut p) = folds[*victim].take() {
            p.kill9();
            println!(
                "{:6.2} s: SIGKILL {name} (generation {})",
                t0.elapsed().as_secs_f64(),
                generations[*victim]
            );
        }
        std::thread::sleep(Duration::from_secs_f64(*down));
        generations[*victim] += 1;
        folds[*victim] = Some(
            spawn_fold(
                dir.path(),
                name,
                &brokers,
                crash,
                &policy,
                Some(&state(name)),
            )
            .0,
        );
        println!("{:6.2} s: {name} restarted", t0.elapsed().as_secs_f64());
    }
    producer.join().expect("producer thread");
    let alive: Vec<&Proc> = folds.iter().flatten().collect();
    wait_drained(
        &brokers,
        crash,
        &format!("{crash}callbacks"),
        PARTITIONS,
        Duration::from_secs(90),
        &alive,
    );
    let restores: usize = alive
        .iter()
        .map(|p| p.log_text().matches("partitions restored").count())
        .sum();
    let crashed = outcome(&brokers, crash);

    println!(
        "input: {} records ({} duplicates) of {SESSIONS} sessions over {PARTITIONS} partitions",
        records.len(),
        dups
    );
    println!(
        "clean run: {} callbacks records (with derived stream facts), {} aggregates, {} commands ({} distinct), {} DLQ",
        reference.callbacks,
        reference.states.len(),
        reference.commands_total,
        reference.command_ids.len(),
        reference.dlq
    );
    println!(
        "crash run: {kills} SIGKILLs, {} callbacks records, {} aggregates, {} commands ({} distinct), {} DLQ, {restores} partition restores (all generations)",
        crashed.callbacks,
        crashed.states.len(),
        crashed.commands_total,
        crashed.command_ids.len(),
        crashed.dlq
    );

    let differing: Vec<&String> = reference
        .states
        .keys()
        .chain(crashed.states.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| reference.states.get(*k) != crashed.states.get(*k))
        .collect();
    let show = |o: &Outcome, k: &str| {
        o.snapshots
            .get(k)
            .map(|b| json_of(b))
            .unwrap_or_else(|| "<missing>".into())
    };
    assert!(
        differing.is_empty(),
        "seed {seed}: {} of {} aggregates differ from the clean run, e.g.:\n{}",
        differing.len(),
        reference.states.len(),
        differing
            .iter()
            .take(3)
            .map(|k| format!(
                "{k}\n  clean: {}\n  crash: {}",
                show(&reference, k),
                show(&crashed, k)
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        reference.command_ids, crashed.command_ids,
        "seed {seed}: the crash run emitted a different set of commands"
    );
    assert_eq!(reference.dlq, 0, "the clean run dead-lettered records");
    assert_eq!(
        crashed.dlq, 0,
        "seed {seed}: the crash run dead-lettered records"
    );
    assert!(
        !reference.states.is_empty(),
        "the clean run produced no aggregates"
    );
    println!(
        "{} aggregates equal to the clean run; {} s",
        reference.states.len(),
        started.elapsed().as_secs()
    );
}
