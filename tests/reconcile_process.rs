//! Reconcile as a process among the others, with VOD's real delivery (3 attempts, 1 s apart,
//! then the callback is gone for good):
//!
//! - the relay stopped for 30 s in the middle of a run: every callback VOD tried in that time
//!   is lost at VOD, and reconcile brings every fact back (`verify --require-recovered`);
//! - reconcile SIGKILLed mid-sweep (while its VOD call counter is rising) and restarted, on
//!   tansu: it goes on from the positions kept in Kafka and the api still converges.
//!
//! Both also drop a share of callbacks at VOD (`drop_rate`) and check that no transcode job
//! was started twice. Replay a failure with `LIVE2VOD_TEST_SEED=<seed printed by the test>`.
mod support;

use std::time::{Duration, Instant};

use support::*;

const PARTITIONS: i32 = 6;

/// One pipeline at a time: two on two cores would blur the timing of what is done to them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `live2vod_reconcile_api_calls_total` summed over actions and outcomes, from `metrics`.
fn api_calls(metrics: &str) -> Option<f64> {
    let body = http_get_body(&format!("http://{metrics}/metrics"))?;
    Some(metric_sum(&body, live2vod::metrics::RECONCILE_API_CALLS))
}

/// What both tests check at the end: the api holds everything VOD did, including what it
/// never delivered; nothing acknowledged is missing from the topic; no job was doubled; and
/// something was really lost at VOD and recovered. Returns a one-line report.
fn finish(
    seed: u64,
    p: &Pipeline,
    rt: &tokio::runtime::Runtime,
    sim: &live2vod::sim::SimHandle,
    api: String,
) -> String {
    rt.block_on(sim.deliver_all());
    let report = rt.block_on(sim.verify_recovered(&api, Duration::from_secs(240)));
    let stats = sim.stats();
    assert!(
        report.ok,
        "seed {seed}: the api did not converge to VOD's truth with reconciliation:\n{report}\n{stats}\n{}",
        p.logs()
    );
    assert_acknowledged_on_topic(&p.brokers, &sim.acknowledged_bodies(), PARTITIONS, seed);
    let doubled: Vec<_> = stats.jobs_started.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "seed {seed}: (video, group) pairs with more than one transcode job: {doubled:?}"
    );
    assert!(
        !stats.undelivered.is_empty(),
        "seed {seed}: VOD lost no callback, so nothing was recovered and the test shows nothing:\n{stats}"
    );
    let observed = observations_on_topic(&p.brokers, PARTITIONS);
    format!(
        "acknowledged {}, lost after 3 attempts {}, dropped {}, never sent {}, events undelivered {}; observations on the topic {:?}; transcode jobs {} for {} pairs, 0 doubled; api converged",
        stats.delivery.acknowledged,
        stats.lost_by_vod.len(),
        stats.dropped_by_vod.len(),
        stats.never_sent.len(),
        stats.undelivered.len(),
        observed,
        stats.jobs_started.values().sum::<u32>(),
        stats.jobs_started.len()
    )
}

/// 40 sessions paced at 12 callbacks a second (about 105 s of delivery: long enough to outlast
/// the relay's 30 s outage and its restart on a busy 2-core machine), VOD's real retries,
/// 5 % of callbacks never posted, 10 % duplicates, failed compose uploads half silent.
fn sim_config(p: &Pipeline, seed: u64) -> live2vod::sim::SimConfig {
    let mut cfg = p.sim_config(40, seed);
    cfg.rate = Some(12.0);
    cfg.drop_rate = 0.05;
    cfg.silent_failure_rate = 0.5;
    cfg.duplicate_rate = 0.1;
    assert_eq!(cfg.attempts, 3, "VOD's real delivery: 3 attempts");
    cfg
}

#[test]
fn relay_down_for_30_s_loses_callbacks_at_vod_and_reconcile_recovers_every_fact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = test_seed("relay outage");
    let dir = Scratch::new("reconcile-relay-outage");
    let (_broker, bootstrap) = start_mock_broker(dir.path());
    let mut p = Pipeline::start_with_policy(
        dir.path(),
        &bootstrap,
        1,
        &FAST_GROUP,
        &sim_policy_with_compose_deadline(3),
    );
    let metrics = format!("127.0.0.1:{}", free_port());
    let _reconcile = p.start_reconcile(&metrics, 50.0);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let cfg = sim_config(&p, seed);
    let api = cfg.api_url.clone().expect("api url");
    let (sim, task) = start_delivering(&rt, cfg);

    std::thread::sleep(Duration::from_secs(8));
    let before = sim.progress();
    p.relay.kill9();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    p.relay = p.spawn_relay();
    wait_http_ok(
        &format!("http://{}/readyz", p.relay_listen),
        Duration::from_secs(60),
        &p.relay,
    );
    let after = sim.progress();
    println!(
        "relay down {:.1} s: callbacks acknowledged {} -> {}, lost after 3 attempts {} -> {}",
        down.elapsed().as_secs_f64(),
        before.acknowledged,
        after.acknowledged,
        before.lost,
        after.lost
    );
    assert!(
        !task.is_finished(),
        "seed {seed}: the scenario ended before the relay came back; it is too short for the test"
    );
    rt.block_on(task).expect("delivery task");
    let stats = sim.stats();
    assert!(
        stats.lost_by_vod.len() >= 100,
        "seed {seed}: a 30 s outage should lose hundreds of callbacks after VOD's 3 attempts, lost {}",
        stats.lost_by_vod.len()
    );
    let line = finish(seed, &p, &rt, &sim, api);
    println!("relay outage (seed {seed}): {line}");
}

#[test]
fn reconcile_killed_mid_sweep_and_restarted_goes_on_from_its_positions() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = test_seed("reconcile kills");
    let dir = Scratch::new("reconcile-kills");
    let tansu = Tansu::start(dir.path());
    let p = Pipeline::start_with_policy(
        dir.path(),
        &tansu.bootstrap(),
        1,
        &FAST_GROUP,
        &sim_policy_with_compose_deadline(3),
    );
    let metrics = format!("127.0.0.1:{}", free_port());
    // 20 calls a second: a sweep over the scenario's streams takes seconds, so a kill lands
    // inside one.
    let mut reconcile = p.start_reconcile(&metrics, 20.0);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let cfg = sim_config(&p, seed);
    let api = cfg.api_url.clone().expect("api url");
    let (sim, task) = start_delivering(&rt, cfg);
    let started = Instant::now();
    let mut kills = 0;
    for at in [6.0, 18.0, 30.0] {
        let when = started + Duration::from_secs_f64(at);
        if let Some(d) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        // Mid-sweep: the call counter moved within the last 200 ms.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = api_calls(&metrics);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = api_calls(&metrics);
            if matches!((last, now), (Some(a), Some(b)) if b > a) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: reconcile made no VOD call for 20 s:\n{}",
                tail(&reconcile.log_text(), 30)
            );
            last = now;
        }
        let calls = api_calls(&metrics).unwrap_or(0.0);
        reconcile.kill9();
        kills += 1;
        println!(
            "{:6.2} s: SIGKILL reconcile mid-sweep (after {calls} VOD calls of this instance)",
            started.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(500));
        reconcile = p.start_reconcile(&metrics, 20.0);
    }
    assert_eq!(kills, 3);
    rt.block_on(task).expect("delivery task");
    let line = finish(seed, &p, &rt, &sim, api);
    println!("reconcile SIGKILLed {kills} times mid-sweep (seed {seed}): {line}");
}
