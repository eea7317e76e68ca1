//! Every kind of callback VOD can lose is recovered by `reconcile`, in all four flows.
//!
//! Each test makes the simulated VOD never post one event type at all (`sim --drop-type`:
//! every callback of that type, those of the jobs the worker starts included) while its state,
//! and so its OpenAPI answers, has everything it did. VOD's delivery is otherwise its real
//! one (3 attempts about 1 s apart). The api must then show everything VOD did, as
//! `sim --verify --require-recovered` demands (nothing skipped), and no transcode job may be
//! started twice:
//! - AddLiveRecordVideoComplete: sweeps -> `RecordingObserved` (the app is listed for
//!   reconciliation: a stream whose every recording callback was lost is known to nobody);
//! - LiveRecordVideoComposeStart: sweeps -> `ComposeObserved` (the entry whose record window
//!   holds its session's segments);
//! - FileUploadComplete: source probes -> `SourceObserved`;
//! - StreamTranscodeComplete and TranscodeComplete: transcode probes -> `TranscodeObserved`;
//! - SnapshotComplete: cover probes -> `SnapshotObserved`.
use std::time::Duration;

use live2vod::demo::{demo_reconcile_config, Pipeline, PipelineConfig};
use live2vod::domain::Policy;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;
use live2vod::sim::Flow;

/// Hang guard of the convergence (a healthy run converges in well under a minute).
const GUARD: Duration = Duration::from_secs(150);

async fn recovered_when_vod_never_posts(event_type: &str) {
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
    // Composed videos are probed 3 s after their compose started instead of 10 minutes.
    policy.defaults.compose_deadline_secs = 3;
    for r in &mut policy.rules {
        r.policy.compose_deadline_secs = 3;
    }
    let mut cfg = PipelineConfig::new(kafka.clone(), policy.clone());
    cfg.sim.sessions = 8;
    cfg.sim.seed = 33;
    cfg.sim.duplicate_rate = 0.1;
    cfg.sim.drop_types = vec![event_type.to_string()];
    let mut rc = demo_reconcile_config(&kafka, policy);
    rc.sweep_interval = Duration::from_secs(1);
    rc.probe_after = Duration::from_secs(3);
    cfg.reconcile = Some(rc);
    let p = Pipeline::start(cfg).await.expect("pipeline starts");
    let flows: std::collections::BTreeSet<Flow> =
        p.sim.scenario().streams.iter().map(|s| s.flow).collect();
    assert_eq!(flows.len(), 4, "the scenario covers the four flows");

    let delivered = p.sim.deliver_all().await;
    println!("{event_type} never posted; delivery: {delivered}");
    let report = p.sim.verify_recovered(&p.api_url, GUARD).await;
    println!("{report}");
    let stats = p.sim.stats();
    assert!(
        !stats.dropped_by_vod.is_empty(),
        "VOD posted every {event_type}: the test lost nothing"
    );
    assert!(
        stats
            .dropped_by_vod
            .iter()
            .all(|l| l.event_type == event_type),
        "only {event_type} is dropped"
    );
    assert!(report.ok, "not recovered:\n{report}");
    assert!(
        !report.must_recover.is_empty(),
        "nothing had to be recovered"
    );
    assert!(
        report.duplicate_jobs().is_empty(),
        "a transcode job was started twice:\n{report}"
    );
    let recovered: f64 = live2vod::metrics::render()
        .lines()
        .filter(|l| l.starts_with("live2vod_reconcile_recovered_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(recovered >= 1.0, "no recovery counted");
    p.shutdown().await.expect("clean shutdown");
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_recordings_are_recovered() {
    recovered_when_vod_never_posts("AddLiveRecordVideoComplete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_compose_starts_are_recovered() {
    recovered_when_vod_never_posts("LiveRecordVideoComposeStart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_uploads_are_recovered() {
    recovered_when_vod_never_posts("FileUploadComplete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_rendition_callbacks_are_recovered() {
    recovered_when_vod_never_posts("StreamTranscodeComplete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_transcode_completions_are_recovered() {
    recovered_when_vod_never_posts("TranscodeComplete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_snapshots_are_recovered() {
    recovered_when_vod_never_posts("SnapshotComplete").await;
}
