//! The in-process pipeline the reconcile end-to-end tests run: librdkafka's mock cluster
//! (3 partitions, the positions topic created), the simulator's policy with its app listed
//! for reconciliation (a stream whose every recording callback was lost is known to no
//! aggregate) and composed videos probed 3 s after their compose started instead of
//! 10 minutes, 8 sessions (the four flows), and reconcile sweeping every second.
use std::time::Duration;

use live2vod::demo::{demo_reconcile_config, PipelineConfig};
use live2vod::domain::Policy;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;

/// The broker (keep it alive for the test) and the pipeline's configuration for `seed`.
pub fn pipeline(seed: u64) -> (EmbeddedBroker, PipelineConfig) {
    live2vod::metrics::install();
    let broker = EmbeddedBroker::start(1).expect("mock cluster starts");
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = 3;
    broker
        .create_topics(&kafka.topics(), 3)
        .expect("topics on the mock cluster");
    broker
        .create_topic(
            &live2vod::reconcile::positions_topic(&kafka.topic_prefix),
            3,
        )
        .expect("positions topic");
    let mut policy = Policy::parse(&live2vod::sim::policy_toml()).expect("the sim's policy");
    policy.reconcile_apps = vec!["live.demo.example.com/live".into()];
    policy.defaults.compose_deadline_secs = 3;
    for r in &mut policy.rules {
        r.policy.compose_deadline_secs = 3;
    }
    let mut cfg = PipelineConfig::new(kafka.clone(), policy.clone());
    cfg.sim.sessions = 8;
    cfg.sim.seed = seed;
    cfg.sim.duplicate_rate = 0.1;
    let mut rc = demo_reconcile_config(&kafka, policy);
    rc.sweep_interval = Duration::from_secs(1);
    rc.probe_after = Duration::from_secs(3);
    cfg.reconcile = Some(rc);
    (broker, cfg)
}

/// The recoveries counted by `live2vod_reconcile_recovered_total`, all kinds.
pub fn recovered_total() -> f64 {
    super::metric_sum(
        &live2vod::metrics::render(),
        live2vod::metrics::RECONCILE_RECOVERED,
    )
}
