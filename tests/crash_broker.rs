//! Broker crash with data: the whole pipeline runs as processes on tansu (persisted to
//! SQLite) while the simulator plays a scenario; tansu is SIGKILLed at a seeded instant
//! mid-load and restarted on the same port and data. Meanwhile the relay cannot get writes
//! acknowledged and answers 503, VOD (the simulator) retries, and every role reconnects. In the
//! end nothing acknowledged is lost: every callback got through, the api converged to the
//! simulator's ground truth, and no transcode job was started twice.
//!
//! Replay a failure with `LIVE2VOD_TEST_SEED=<seed printed by the test>`.
mod support;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::*;

#[test]
fn a_killed_broker_restarted_with_its_data_loses_nothing_acknowledged() {
    let started = Instant::now();
    let seed = test_seed("a_killed_broker_restarted_with_its_data_loses_nothing_acknowledged");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x62726f6b);
    let dir = Scratch::new("crash-broker");
    let mut tansu = Tansu::start(dir.path());
    let p = Pipeline::start(dir.path(), &tansu.bootstrap(), 1, &FAST_GROUP);

    let kill_at = rng.random_range(1.0..4.0);
    // Longer than the relay's 3 s acknowledgement timeout, so some callbacks get a 503.
    let down = rng.random_range(3.5..5.0);
    println!("plan: SIGKILL tansu {kill_at:.2} s after the sim started, restart {down:.2} s later");

    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut cfg = p.sim_config(16, seed);
    cfg.duplicate_rate = 0.1;
    cfg.throttle_rate = 0.1;
    // VOD retries a failed callback; give it enough attempts to outlast the restart (the
    // relay answers 503 after its 3 s acknowledgement timeout while the broker is away).
    cfg.attempts = 6;
    let (sim, run) = start_sim(&rt, cfg, Duration::from_secs(100));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(kill_at));
    let before = sim.progress();
    assert!(
        !run.is_finished() && before.pending() > 0,
        "the scenario was over before the broker was killed ({before})"
    );
    tansu.proc.kill9();
    println!(
        "{:6.2} s: SIGKILL tansu ({before})",
        t0.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs_f64(down));
    tansu.restart();
    println!(
        "{:6.2} s: tansu listening again",
        t0.elapsed().as_secs_f64()
    );

    let report = rt.block_on(run).expect("simulator task");
    let stats = sim.stats();
    assert!(
        report.ok,
        "seed {seed}: the api did not converge to the simulator's truth after the broker restart:\n{report}\n{stats}\n{}",
        p.logs()
    );
    assert_eq!(
        stats.delivery.lost, 0,
        "seed {seed}: VOD gave up on callbacks the relay never acknowledged:\n{stats}"
    );
    // Acknowledged means durable: every body answered 200 survived the broker's SIGKILL.
    let acknowledged = sim.acknowledged_bodies();
    assert_acknowledged_on_topic(&p.brokers, &acknowledged, 6, seed);
    let doubled = stats.jobs_started.values().filter(|n| **n > 1).count();
    assert_eq!(
        doubled, 0,
        "seed {seed}: transcodes started twice:\n{stats}"
    );
    println!(
        "1 broker SIGKILL + restart; callbacks: {} acknowledged (all on the topic after the restart), {} retried attempts, {} lost; {} s\n{report}\n{stats}",
        stats.delivery.acknowledged,
        stats.delivery.retried,
        stats.delivery.lost,
        started.elapsed().as_secs()
    );
}
