//! End to end, as separate processes of the built binary: broker, relay, fold, worker, api and
//! the simulator, for a scenario of all four flows with duplicates, shuffles, throttling and
//! failures; `sim --verify` must pass (the api converged to the simulator's ground truth and no
//! transcode job was started twice).
//!
//! Runs once on the embedded mock cluster hosted by `live2vod broker`, and once on a real
//! broker process (tansu, persisted to SQLite).
mod support;

use std::time::Duration;

use support::*;

fn run_scenario(dir: &std::path::Path, brokers: &str, sessions: u32, seed: u64) {
    let p = Pipeline::start(dir, brokers, 1, &[]);
    let mut sim = p.spawn_sim(
        sessions,
        seed,
        &[
            "--timeout",
            "80",
            "--duplicate-rate",
            "0.2",
            "--throttle-rate",
            "0.1",
        ],
    );
    let report = expect_sim_verified(&mut sim, &p, Duration::from_secs(90));
    println!("{}", tail(&report, 6));
}

#[test]
fn all_four_flows_converge_on_the_mock_broker_process() {
    let dir = Scratch::new("e2e-mock");
    let (_broker, bootstrap) = start_mock_broker(dir.path());
    run_scenario(dir.path(), &bootstrap, 12, 11);
}

#[test]
fn all_four_flows_converge_on_a_real_broker_process() {
    let dir = Scratch::new("e2e-tansu");
    let tansu = Tansu::start(dir.path());
    run_scenario(dir.path(), &tansu.bootstrap(), 12, 12);
}
