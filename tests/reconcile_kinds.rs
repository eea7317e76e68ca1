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

use live2vod::demo::Pipeline;
use live2vod::sim::Flow;

mod support;

/// Hang guard of the convergence (a healthy run converges in well under a minute).
const GUARD: Duration = Duration::from_secs(150);

async fn recovered_when_vod_never_posts(event_type: &str) {
    let (broker, mut cfg) = support::reconcile::pipeline(33);
    cfg.sim.drop_types = vec![event_type.to_string()];
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
    let recovered = support::reconcile::recovered_total();
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
