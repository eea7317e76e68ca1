//! Worker crash recovery on a real broker process (tansu): the whole pipeline runs as processes
//! and the simulator plays a scenario whose OpenAPI throttles often (so commands stay in flight
//! and retry); the worker is SIGKILLed at seeded instants and restarted, several times. At the
//! end the simulator's ground truth must show exactly one transcode job per (VideoId, template
//! group) — a re-executed SubmitTranscodeJobs is absorbed by its SessionId — the api must have
//! converged to the truth (`sim --verify`), and every command the fold emitted must have its
//! outcome event on the callbacks topic.
//!
//! Replay a failure with `LIVE2VOD_TEST_SEED=<seed printed by the test>`.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::*;

const SESSIONS: u32 = 24;

/// Command ids by kind on the commands topic, and command ids with an outcome event on the
/// callbacks topic; TrackCompose commands whose deadline is still ahead are left out (the
/// worker waits for the deadline before it looks).
fn commands_and_outcomes(
    brokers: &str,
) -> (BTreeMap<&'static str, BTreeSet<String>>, BTreeSet<String>) {
    use live2vod::proto::command::Kind;
    let kafka = kafka_args(brokers, "live2vod.");
    let t = kafka.topics();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut commands: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (_, v) in read_topic(&kafka, &t.commands, 6) {
        let c = live2vod::proto::Command::decode(v.as_slice()).expect("command decodes");
        let kind = match &c.kind {
            Some(Kind::SubmitTranscode(_)) => "SubmitTranscode",
            Some(Kind::RefreshPlayInfo(_)) => "RefreshPlayInfo",
            Some(Kind::TrackCompose(tc)) if tc.deadline_ms <= now_ms => "TrackCompose",
            Some(Kind::TrackCompose(_)) => "TrackCompose (deadline ahead, not checked)",
            None => "unknown",
        };
        commands.entry(kind).or_default().insert(c.command_id);
    }
    let outcomes = read_topic(&kafka, &t.callbacks, 6)
        .into_iter()
        .filter_map(|(_, v)| {
            let body: serde_json::Value = serde_json::from_slice(&v).ok()?;
            let ty = body.get("EventType")?.as_str()?;
            if !ty.starts_with("live2vod.") || ty == "live2vod.StreamFact" {
                return None;
            }
            Some(body.get("CommandId")?.as_str()?.to_string())
        })
        .collect();
    (commands, outcomes)
}

/// `transcode jobs: N started for P (video, group) pairs, D pairs with more than one, S
/// SessionId re-submissions absorbed` from the simulator's report.
fn job_figures(report: &str) -> (u64, u64, u64, u64) {
    let line = report
        .lines()
        .find(|l| l.starts_with("transcode jobs:"))
        .unwrap_or_else(|| panic!("no transcode jobs line in the sim report:\n{report}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(n.len() >= 4, "unexpected jobs line: {line}");
    (n[0], n[1], n[2], n[3])
}

#[test]
fn killed_workers_start_each_transcode_once_and_finish_every_command() {
    let started = Instant::now();
    let seed = test_seed("killed_workers_start_each_transcode_once_and_finish_every_command");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x776f726b);
    let dir = Scratch::new("crash-worker");
    let tansu = Tansu::start(dir.path());
    let mut p = Pipeline::start(dir.path(), &tansu.bootstrap(), &FAST_GROUP);

    let kills = rng.random_range(4..=6usize);
    let mut at: Vec<f64> = (0..kills).map(|_| rng.random_range(0.5..14.0)).collect();
    at.sort_by(f64::total_cmp);
    let plan: Vec<(f64, f64)> = at
        .into_iter()
        .map(|t| (t, rng.random_range(0.1..2.0)))
        .collect();
    println!("kill plan (seconds after the sim started, downtime): {plan:?}");

    let scenario_seed = seed % 1000;
    let mut sim = p.spawn_sim(
        SESSIONS,
        scenario_seed,
        &[
            "--timeout",
            "100",
            "--duplicate-rate",
            "0.1",
            "--throttle-rate",
            "0.3",
        ],
    );
    let t0 = Instant::now();
    let mut performed = 0;
    for (t, down) in &plan {
        let when = t0 + Duration::from_secs_f64(*t);
        if let Some(d) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        if matches!(sim.child.try_wait(), Ok(Some(_))) {
            break;
        }
        p.kill_worker();
        performed += 1;
        let killed_at = t0.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs_f64(*down));
        p.restart_worker();
        println!(
            "{killed_at:6.2} s: SIGKILL worker generation {}; {:6.2} s: generation {} ready",
            p.worker_generation - 1,
            t0.elapsed().as_secs_f64(),
            p.worker_generation
        );
    }
    let report = expect_sim_verified(&mut sim, &p, Duration::from_secs(120));
    let (jobs, pairs, doubled, absorbed) = job_figures(&report);
    assert_eq!(
        doubled, 0,
        "seed {seed}: a (video, group) pair got more than one transcode job:\n{report}"
    );
    assert_eq!(
        jobs, pairs,
        "seed {seed}: more jobs than (video, group) pairs:\n{report}"
    );

    // Every command finished: its outcome event is on the callbacks topic (the last ones may
    // still be on their way when the api converged).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (commands, missing) = loop {
        let (commands, outcomes) = commands_and_outcomes(&p.brokers);
        let missing: Vec<String> = commands
            .iter()
            .filter(|(k, _)| !k.contains("not checked"))
            .flat_map(|(_, ids)| ids.iter())
            .filter(|id| !outcomes.contains(*id))
            .cloned()
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break (commands, missing);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        missing.is_empty(),
        "seed {seed}: {} commands have no outcome event after 60 s, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        p.logs()
    );
    let submits = commands.get("SubmitTranscode").map_or(0, BTreeSet::len);
    assert!(
        submits > 0,
        "the scenario made the fold emit no SubmitTranscode"
    );
    println!(
        "{performed} SIGKILLs of the worker ({} generations); commands with an outcome: {}; transcode jobs: {jobs} for {pairs} pairs, {doubled} doubled, {absorbed} SessionId re-submissions absorbed; {} s",
        p.worker_generation,
        commands
            .iter()
            .map(|(k, ids)| format!("{k}={}", ids.len()))
            .collect::<Vec<_>>()
            .join(" "),
        started.elapsed().as_secs()
    );
    println!("{}", tail(&report, 6));
}
