//! Callbacks VOD never delivers are recovered by `reconcile`, end to end on librdkafka's mock
//! cluster with the simulated VOD: the relay is down while VOD sends a chosen subset of the
//! scenario's callbacks (recordings, composed uploads, transcode completions), so VOD's three
//! attempts fail and it drops them for good (its own state still has them, as real VOD's
//! does); the rest is delivered normally. Reconcile's sweeps and probes must bring the lost
//! facts back: the api converges to the truth for every video and stream, the lost ones
//! included, and no transcode job is started twice.
use std::time::{Duration, Instant};

use live2vod::demo::Pipeline;
use live2vod::sim::scenario::Effect;
use live2vod::sim::verify::{diff_stream, diff_video};
use live2vod::sim::{Flow, ScenarioEvent};
use serde_json::Value;

mod support;

/// Hang guard of the convergence (a healthy run converges in ~20 s).
const GUARD: Duration = Duration::from_secs(90);

/// The callbacks this test makes VOD lose: every 2nd recording of the flows without an
/// operator (the store-only flow's operator acts on the recording callback it sees, so a lost
/// one there changes the truth itself), every composed upload that succeeded, every 2nd
/// TranscodeComplete.
fn lost(e: &ScenarioEvent) -> bool {
    let n = e.id % 2 == 0;
    match (&e.effect, e.flow) {
        (Effect::Recorded { .. }, Flow::StoreOnly) => false,
        (Effect::Recorded { .. }, _) => n,
        (Effect::Uploaded { ok: true, .. }, _) => e.event_type == "FileUploadComplete",
        (Effect::TranscodeDone { .. }, _) => n,
        _ => false,
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Option<Value> {
    let r = client.get(url).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_vod_dropped_are_recovered_and_no_job_is_doubled() {
    let (broker, mut cfg) = support::reconcile::pipeline(21);
    cfg.sim.throttle_rate = 0.05;
    // VOD's three attempts (its real number) fail fast against the closed port.
    cfg.sim.retry_interval = Duration::from_millis(100);
    let mut p = Pipeline::start(cfg).await.expect("pipeline starts");

    // VOD emits the lost callbacks while the relay is down, then the rest with the relay up.
    p.stop_relay().await.expect("relay stops");
    let dropped = p.sim.deliver_matching(lost).await;
    p.start_relay().await.expect("relay starts again");
    let delivered = p.sim.deliver_matching(|e| !lost(e)).await;
    println!("dropped phase: {dropped}\ndelivered phase: {delivered}");
    assert!(dropped.lost > 0, "VOD lost nothing: {dropped}");

    let truth = p.sim.truth();
    let lost_kinds: std::collections::BTreeSet<&str> = p
        .sim
        .scenario()
        .events
        .iter()
        .filter(|e| lost(e))
        .map(|e| e.event_type)
        .collect();
    println!(
        "lost kinds: {lost_kinds:?}; lost videos {}",
        truth.lost_videos.len()
    );
    assert!(lost_kinds.contains("AddLiveRecordVideoComplete"));
    assert!(lost_kinds.contains("FileUploadComplete"));
    assert!(lost_kinds.contains("TranscodeComplete"));
    assert!(!truth.lost_videos.is_empty());

    // Every video and stream, the ones VOD lost callbacks of included, matches the truth.
    let client = reqwest::Client::new();
    let started = Instant::now();
    let diffs = loop {
        let mut diffs = Vec::new();
        for v in truth.videos.values() {
            let got = get(&client, &format!("{}/v1/videos/{}", p.api_url, v.video_id))
                .await
                .unwrap_or(Value::Null);
            diffs.extend(diff_video(v, &got));
        }
        for s in truth.streams.values() {
            let got = get(&client, &format!("{}/v1/streams/{}", p.api_url, s.key()))
                .await
                .unwrap_or(Value::Null);
            diffs.extend(diff_stream(s, &got));
        }
        if diffs.is_empty() || started.elapsed() > GUARD {
            break diffs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let shown: Vec<String> = diffs.iter().take(40).map(ToString::to_string).collect();
    assert!(
        diffs.is_empty(),
        "not recovered after {:?} ({} differences):\n{}",
        started.elapsed(),
        diffs.len(),
        shown.join("\n")
    );
    println!("converged after {:.1} s", started.elapsed().as_secs_f64());

    let recovered = support::reconcile::recovered_total();
    println!("recovered facts: {recovered}");
    assert!(recovered >= 1.0);

    // No (video, template group) saw a second transcode job.
    let stats = p.sim.stats();
    let twice: Vec<_> = stats.jobs_started.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs started more than once: {twice:?}");
    // Reconcile asked VOD only what it needed (a sweep per second, probes with backoff).
    let reconcile_calls: u64 = stats
        .calls
        .iter()
        .filter(|((a, _), _)| a == "ListLiveRecordVideo" || a == "GetMezzanineInfo")
        .map(|(_, n)| n)
        .sum();
    println!("ListLiveRecordVideo + GetMezzanineInfo calls: {reconcile_calls}");
    p.shutdown().await.expect("clean shutdown");
    drop(broker);
}
