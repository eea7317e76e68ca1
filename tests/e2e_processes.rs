//! End to end, as separate processes of the built binary: broker, relay, fold, worker, api and
//! the simulator, for a scenario of all four flows with duplicates, shuffles, throttling and
//! failures; `sim --verify` must pass (the api converged to the simulator's ground truth and no
//! transcode job was started twice).
//!
//! Runs once on the embedded mock cluster hosted by `live2vod broker`, and once on a real
//! broker process (tansu, persisted to SQLite).
mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const AUTH_KEY: &str = "e2e-callback-key";
const AK_ID: &str = "e2e-ak-id";
const AK_SECRET: &str = "e2e-ak-secret";

fn run_scenario(dir: &std::path::Path, brokers: &str, sessions: u32, seed: u64) {
    let policy = dir.join("policy.toml");
    let out = Command::new(bin())
        .args(["sim", "--print-policy"])
        .output()
        .expect("run sim --print-policy");
    assert!(
        out.status.success(),
        "sim --print-policy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&policy, &out.stdout).expect("write policy");

    let topics = Command::new(bin())
        .args([
            "topics",
            "create",
            "--brokers",
            brokers,
            "--topic-partitions",
            "6",
        ])
        .output()
        .expect("run topics create");
    assert!(
        topics.status.success(),
        "topics create failed: {}{}",
        String::from_utf8_lossy(&topics.stdout),
        String::from_utf8_lossy(&topics.stderr)
    );

    let relay_port = free_port();
    let api_port = free_port();
    let sim_port = free_port();
    let callback_url = format!("http://127.0.0.1:{relay_port}/callbacks/vod");
    let relay_listen = format!("127.0.0.1:{relay_port}");
    let api_listen = format!("127.0.0.1:{api_port}");
    let sim_listen = format!("127.0.0.1:{sim_port}");
    let vod_endpoint = format!("http://127.0.0.1:{sim_port}/");
    let api_url = format!("http://127.0.0.1:{api_port}");
    let fold_metrics = format!("127.0.0.1:{}", free_port());
    let worker_metrics = format!("127.0.0.1:{}", free_port());

    let relay = Proc::spawn(
        dir,
        "relay",
        bin(),
        &[
            "relay",
            "--brokers",
            brokers,
            "--listen",
            &relay_listen,
            "--callback-url",
            &callback_url,
            "--auth-key",
            AUTH_KEY,
        ],
        &[],
    );
    let fold = Proc::spawn(
        dir,
        "fold",
        bin(),
        &[
            "fold",
            "--brokers",
            brokers,
            "--policy",
            policy.to_str().expect("utf-8"),
            "--metrics-listen",
            &fold_metrics,
        ],
        &[],
    );
    let worker = Proc::spawn(
        dir,
        "worker",
        bin(),
        &[
            "worker",
            "--brokers",
            brokers,
            "--vod-endpoint",
            &vod_endpoint,
            "--access-key-id",
            AK_ID,
            "--access-key-secret",
            AK_SECRET,
            "--metrics-listen",
            &worker_metrics,
        ],
        &[],
    );
    let api = Proc::spawn(
        dir,
        "api",
        bin(),
        &["api", "--brokers", brokers, "--listen", &api_listen],
        &[],
    );
    wait_http_ok(
        &format!("http://{relay_listen}/readyz"),
        Duration::from_secs(60),
        &relay,
    );
    wait_http_ok(
        &format!("http://{fold_metrics}/readyz"),
        Duration::from_secs(60),
        &fold,
    );
    wait_http_ok(
        &format!("http://{worker_metrics}/readyz"),
        Duration::from_secs(60),
        &worker,
    );
    wait_http_ok(
        &format!("http://{api_listen}/readyz"),
        Duration::from_secs(60),
        &api,
    );

    let sessions = sessions.to_string();
    let seed = seed.to_string();
    let mut sim = Proc::spawn(
        dir,
        "sim",
        bin(),
        &[
            "sim",
            "--relay-url",
            &callback_url,
            "--callback-url",
            &callback_url,
            "--auth-key",
            AUTH_KEY,
            "--listen",
            &sim_listen,
            "--access-key-id",
            AK_ID,
            "--access-key-secret",
            AK_SECRET,
            "--sessions",
            &sessions,
            "--seed",
            &seed,
            "--verify",
            &api_url,
            "--timeout",
            "180",
            "--duplicate-rate",
            "0.2",
            "--throttle-rate",
            "0.1",
        ],
        &[],
    );
    let status = sim.child.wait().expect("wait for sim");
    let logs = [&relay, &fold, &worker, &api]
        .iter()
        .map(|p| format!("--- {} ---\n{}", p.name, tail(&p.log_text(), 40)))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        status.success(),
        "sim --verify failed:\n{}\n{logs}",
        sim.log_text()
    );
    let report = sim.log_text();
    println!("{}", tail(&report, 30));
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
