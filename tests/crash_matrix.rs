//! The crash matrix, on a real broker process (tansu, durable on disk): relay, fold, worker and
//! api run as separate processes while the simulator drives a scenario of many live sessions
//! through them (VOD's callbacks, signed, duplicated and shuffled; its OpenAPI, throttling).
//! Every role is SIGKILLed several times at seeded instants and restarted. At the end:
//!
//! - every callback the relay acknowledged (answered 200) is on the callbacks topic, byte for
//!   byte, and VOD lost none (its retries outlast every relay outage of the plan);
//! - the simulator's ground truth shows exactly one transcode job per (VideoId, template
//!   group) — nothing done twice — and the api converged to its truth (`verify`);
//! - every command the fold emitted has its outcome event;
//! - the live aggregates hold the same state as a clean rebuild of the same callbacks topic by
//!   `live2vod replay`, and `replay --diff` finds no command missing or extra.
//!
//! A second test does the same on the mock broker process with fold instances joining and
//! leaving the group under load (graceful leaves, a SIGKILL, re-joins): each rebalance restores
//! the moved partitions from the aggregates topic, and the end state passes the same checks.
//!
//! Replay a failure with `LIVE2VOD_TEST_SEED=<seed printed by the test>`; the test prints the
//! kill plan and the figures RELIABILITY.md reports.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use live2vod::sim::{SimHandle, VerifyReport};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use support::*;

const SESSIONS: usize = 150;
const PARTITIONS: i32 = 6;
/// Kills happen within this many seconds after the simulator started.
const WINDOW_SECS: f64 = 40.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Relay,
    Fold,
    Worker,
    Api,
}

/// How long a killed role stays down. The relay and the api come back at once; a fold or a
/// worker comes back only after its 6 s group session expired, because tansu 0.6's group
/// coordinator does not reliably hand a SIGKILLed member's partitions to a newcomer that
/// joins within the dead member's session (see tests/crash_fold.rs).
fn downtime(role: Role, rng: &mut StdRng) -> f64 {
    match role {
        Role::Relay | Role::Api => rng.random_range(0.1..3.0),
        Role::Fold | Role::Worker => rng.random_range(6.5..8.0),
    }
}

/// The state of every aggregate (snapshot `state`, without the delivery counters of `meta`,
/// which depend on how often Kafka delivered things), by key.
fn states(brokers: &str, topic: &str) -> BTreeMap<String, Vec<u8>> {
    let kafka = kafka_args(brokers, "live2vod.");
    latest_per_key(&kafka, topic, PARTITIONS)
        .into_iter()
        .map(|(k, v)| {
            let snap = live2vod::proto::AggregateSnapshot::decode(v.as_slice())
                .unwrap_or_else(|e| panic!("snapshot of {k} on {topic} does not decode: {e}"));
            let mut state = Vec::new();
            if let Some(s) = snap.state {
                s.encode(&mut state);
            }
            (k, state)
        })
        .collect()
}

/// Runs `live2vod replay` with `args` to its end and returns its stdout.
fn replay(p: &Pipeline, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(["replay", "--brokers", &p.brokers, "--progress", "none"])
        .args(["--policy", p.policy.to_str().expect("utf-8 path")])
        .args(args)
        .output()
        .expect("run live2vod replay");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "replay {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A pipeline under a paced simulator run.
struct Run {
    seed: u64,
    p: Pipeline,
    rt: tokio::runtime::Runtime,
    sim: Arc<SimHandle>,
    run: tokio::task::JoinHandle<VerifyReport>,
    t0: Instant,
}

/// Starts the pipeline on `brokers` and the simulator: `SESSIONS` sessions, 10 % duplicates,
/// 20 % throttled OpenAPI calls, about 2,200 scenario callbacks paced over ~40 s so that what
/// the test does to the pipeline happens while they stream in.
fn start(dir: &std::path::Path, brokers: &str, seed: u64) -> Run {
    let p = Pipeline::start(dir, brokers, 1, &FAST_GROUP);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut cfg = p.sim_config(SESSIONS, seed);
    cfg.duplicate_rate = 0.1;
    cfg.throttle_rate = 0.2;
    // VOD's retries must outlast the longest relay outage of the plan (3 s, plus a restart):
    // 12 attempts 1 s apart. A callback VOD gives up on was never acknowledged, so it would
    // not break the no-loss promise, but it would leave the truth short of it.
    cfg.attempts = 12;
    cfg.rate = Some(55.0);
    let (sim, run) = start_sim(&rt, cfg, Duration::from_secs(180));
    Run {
        seed,
        p,
        rt,
        sim,
        run,
        t0: Instant::now(),
    }
}

/// Sleeps until `t` seconds after the simulator started; false when it already finished.
fn at(r: &Run, t: f64) -> bool {
    let when = r.t0 + Duration::from_secs_f64(t);
    if let Some(d) = when.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
    if r.run.is_finished() {
        println!(
            "{:6.2} s: the simulator finished; nothing more is done to the pipeline",
            r.t0.elapsed().as_secs_f64()
        );
        return false;
    }
    true
}

/// What the end checks measured.
struct Figures {
    acknowledged: u64,
    duplicates: u64,
    retries: u64,
    jobs: u32,
    pairs: usize,
    absorbed: u64,
    commands: String,
    aggregates: usize,
}

/// The end checks (see the module documentation); `more_folds`: the fold processes running
/// besides the pipeline's own.
fn finish(r: Run, more_folds: &[&Proc]) -> Figures {
    let Run {
        seed,
        p,
        rt,
        sim,
        run,
        ..
    } = r;
    let report = rt.block_on(run).expect("simulator task");
    let stats = sim.stats();
    assert!(
        report.ok,
        "seed {seed}: the api did not converge to the simulator's truth:\n{report}\n{stats}\n{}",
        p.logs()
    );

    // Nothing acknowledged was lost: every body answered 200 is on the callbacks topic.
    let acknowledged = sim.acknowledged_bodies();
    assert_acknowledged_on_topic(&p.brokers, &acknowledged, PARTITIONS, seed);
    let kafka = kafka_args(&p.brokers, "live2vod.");
    let topics = kafka.topics();
    assert_eq!(
        stats.delivery.lost, 0,
        "seed {seed}: VOD gave up on callbacks (the relay was down longer than its retries): {:?}",
        stats.lost_by_vod
    );

    // Nothing done twice.
    let doubled: Vec<_> = stats.jobs_started.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "seed {seed}: (video, group) pairs with more than one transcode job: {doubled:?}\n{stats}"
    );

    let commands = assert_commands_finished(&p, seed);

    // The live aggregates equal a clean rebuild of the same input.
    let alive: Vec<&Proc> = [&p.fold]
        .into_iter()
        .chain(more_folds.iter().copied())
        .chain(&p.workers)
        .collect();
    wait_drained(
        &p.brokers,
        "live2vod-fold",
        &topics.callbacks,
        PARTITIONS,
        Duration::from_secs(90),
        &alive,
    );
    let rebuilt_topic = "live2vod.crash-matrix-rebuilt";
    let summary = replay(&p, &["--to-topic", rebuilt_topic]);
    let live = states(&p.brokers, &topics.aggregates);
    let rebuilt = states(&p.brokers, rebuilt_topic);
    let differing: Vec<&String> = live
        .keys()
        .chain(rebuilt.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| live.get(*k) != rebuilt.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "seed {seed}: {} of {} aggregates differ from a clean replay, e.g. {:?}\nreplay: {summary}",
        differing.len(),
        live.len(),
        &differing[..differing.len().min(5)]
    );
    let diff = replay(&p, &["--diff", "--json"]);
    let last: serde_json::Value = diff
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("replay --diff --json printed no summary: {diff}"));
    let s = &last["summary"];
    assert_eq!(
        (s["projected_only"].as_u64(), s["live_only"].as_u64()),
        (Some(0), Some(0)),
        "seed {seed}: the commands topic differs from what a clean projection emits:\n{diff}"
    );
    Figures {
        acknowledged: stats.delivery.acknowledged,
        duplicates: stats.delivery.duplicates_acknowledged,
        retries: stats.delivery.retried,
        jobs: stats.jobs_started.values().sum(),
        pairs: stats.jobs_started.len(),
        absorbed: stats.session_dedup_hits,
        commands: commands
            .iter()
            .map(|(k, ids)| format!("{k}={}", ids.len()))
            .collect::<Vec<_>>()
            .join(" "),
        aggregates: live.len(),
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "callbacks acknowledged {} ({} duplicates, {} retries), lost 0, all on the topic; transcode jobs {} for {} (video, group) pairs, 0 doubled, {} SessionId re-submissions absorbed; commands {} all with an outcome; {} aggregates equal to a clean replay, replay --diff 0/0",
            self.acknowledged,
            self.duplicates,
            self.retries,
            self.jobs,
            self.pairs,
            self.absorbed,
            self.commands,
            self.aggregates
        )
    }
}

/// One pipeline at a time: two on two cores would blur the timing of what is done to them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn every_role_killed_at_random_loses_nothing_and_does_nothing_twice() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let seed = test_seed("crash matrix");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6d617472);
    let dir = Scratch::new("crash-matrix");
    let tansu = Tansu::start(dir.path());

    // Three kills of each stateless role, two of each group member (each costs a 6.5 s+
    // outage on tansu), in a seeded order at seeded instants.
    let mut roles = [Role::Relay; 3].to_vec();
    roles.extend([Role::Api; 3]);
    roles.extend([Role::Fold; 2]);
    roles.extend([Role::Worker; 2]);
    roles.shuffle(&mut rng);
    let mut times: Vec<f64> = roles
        .iter()
        .map(|_| rng.random_range(0.5..WINDOW_SECS))
        .collect();
    times.sort_by(f64::total_cmp);
    let plan: Vec<(f64, Role, f64)> = times
        .into_iter()
        .zip(roles)
        .map(|(t, r)| (t, r, downtime(r, &mut rng)))
        .collect();
    println!("kill plan (seconds after the simulator started, role, downtime s): {plan:?}");

    let mut r = start(dir.path(), &tansu.bootstrap(), seed);
    let mut kills: BTreeMap<Role, u32> = BTreeMap::new();
    for (t, role, down) in &plan {
        if !at(&r, *t) {
            break;
        }
        let progress = r.sim.progress();
        let killed_at = r.t0.elapsed().as_secs_f64();
        let p = &mut r.p;
        match role {
            Role::Relay => p.relay.kill9(),
            Role::Fold => p.fold.kill9(),
            Role::Worker => p.workers[0].kill9(),
            Role::Api => p.api.kill9(),
        }
        *kills.entry(*role).or_default() += 1;
        std::thread::sleep(Duration::from_secs_f64(*down));
        let ready = Duration::from_secs(60);
        match role {
            Role::Relay => {
                p.relay = p.spawn_relay();
                wait_http_ok(
                    &format!("http://{}/readyz", p.relay_listen),
                    ready,
                    &p.relay,
                );
            }
            Role::Fold => {
                p.fold = p.spawn_fold();
                wait_http_ok(&format!("http://{}/readyz", p.fold_metrics), ready, &p.fold);
            }
            Role::Worker => p.workers[0] = p.start_worker(),
            Role::Api => {
                p.api = p.spawn_api();
                wait_http_ok(&format!("http://{}/readyz", p.api_listen), ready, &p.api);
            }
        }
        println!(
            "{killed_at:6.2} s: SIGKILL {role:?} ({} of {} callbacks acknowledged); {:6.2} s: restarted and ready",
            progress.acknowledged,
            progress.scheduled,
            r.t0.elapsed().as_secs_f64()
        );
    }
    assert!(
        kills.len() == 4,
        "seed {seed}: the simulator finished before every role was killed ({kills:?}); the scenario is too short for the plan"
    );
    let figures = finish(r, &[]);
    println!(
        "crash matrix: {SESSIONS} sessions on tansu; SIGKILLs {}; {figures}; {} s",
        kills
            .iter()
            .map(|(r, n)| format!("{r:?}={n}"))
            .collect::<Vec<_>>()
            .join(" "),
        started.elapsed().as_secs()
    );
}

/// What is done to the fold group in the rebalance test.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Another fold joins the group.
    Join,
    /// The newest extra fold leaves gracefully (SIGTERM: it commits and leaves the group).
    Leave,
    /// The pipeline's own fold is SIGKILLed and restarted at once.
    Kill,
}

#[test]
fn folds_joining_and_leaving_under_load_restore_state_and_lose_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let seed = test_seed("rebalances");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x72656261);
    let dir = Scratch::new("rebalances");
    // The mock cluster as a process: its group coordinator moves partitions promptly on
    // joins, graceful leaves and (after the 6 s session) a killed member.
    let (_broker, bootstrap) = start_mock_broker(dir.path());

    // Up to three folds at a time; joins and leaves in a seeded order, a kill among them.
    let mut changes = vec![Change::Join, Change::Join, Change::Leave, Change::Kill];
    changes.extend([Change::Join, Change::Leave, Change::Leave]);
    changes[..4].shuffle(&mut rng);
    let mut times: Vec<f64> = changes
        .iter()
        .map(|_| rng.random_range(0.5..WINDOW_SECS))
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "plan (seconds after the simulator started, change): {:?}",
        times.iter().zip(&changes).collect::<Vec<_>>()
    );

    let mut r = start(dir.path(), &bootstrap, seed);
    let mut extra: Vec<Proc> = Vec::new();
    let mut made = 0u32;
    let mut done: BTreeMap<String, u32> = BTreeMap::new();
    for (t, change) in times.iter().zip(&changes) {
        if !at(&r, *t) {
            break;
        }
        let when = r.t0.elapsed().as_secs_f64();
        let what = match change {
            Change::Join => {
                made += 1;
                let (fold, metrics) = r.p.spawn_extra_fold(&format!("fold-extra-{made}"));
                wait_http_ok(
                    &format!("http://{metrics}/readyz"),
                    Duration::from_secs(60),
                    &fold,
                );
                let name = fold.name.clone();
                extra.push(fold);
                format!("{name} joined")
            }
            Change::Leave => match extra.pop() {
                Some(mut fold) => {
                    assert!(
                        fold.term(Duration::from_secs(30)),
                        "seed {seed}: {} did not leave within 30 s of SIGTERM:\n{}",
                        fold.name,
                        tail(&fold.log_text(), 30)
                    );
                    format!("{} left", fold.name)
                }
                None => "no extra fold to leave".to_string(),
            },
            Change::Kill => {
                r.p.fold.kill9();
                r.p.fold = r.p.spawn_fold();
                wait_http_ok(
                    &format!("http://{}/readyz", r.p.fold_metrics),
                    Duration::from_secs(60),
                    &r.p.fold,
                );
                "fold SIGKILLed and restarted".to_string()
            }
        };
        *done.entry(format!("{change:?}")).or_default() += 1;
        println!(
            "{when:6.2} s: {what} ({} folds in the group)",
            1 + extra.len()
        );
    }
    assert!(
        done.len() == 3,
        "seed {seed}: the simulator finished before every kind of change happened ({done:?})"
    );
    // Every restore of every fold generation, the first assignments included.
    let logs =
        std::iter::once("fold".to_string()).chain((1..=made).map(|i| format!("fold-extra-{i}")));
    let restored: usize = logs
        .map(|name| {
            std::fs::read_to_string(dir.path().join(format!("{name}.log")))
                .unwrap_or_default()
                .matches("partitions restored")
                .count()
        })
        .sum();
    let more: Vec<&Proc> = extra.iter().collect();
    let figures = finish(r, &more);
    println!(
        "rebalances: {SESSIONS} sessions on the mock broker process; changes {}; {restored} restore rounds logged (each restores every partition newly assigned); {figures}; {} s",
        done.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" "),
        started.elapsed().as_secs()
    );
}
