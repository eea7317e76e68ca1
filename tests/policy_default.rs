//! Manual transcode requests end to end, in one process on the embedded mock cluster with the
//! simulated VOD (issue 12, "defaults that do what the user asked"):
//!
//! - a fold with no policy file honours `POST /v1/videos/{id}/transcode`: the job reaches VOD;
//! - where the policy says `none`, the POST answers 409 with the reason and nothing reaches
//!   VOD (checked against a request for an allowed video made after it, whose job does start).
use std::time::{Duration, Instant};

use live2vod::demo::{Pipeline, PipelineConfig};
use live2vod::domain::Policy;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;
use live2vod::sim::Flow;

/// Each pipeline uses both cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn pipeline(policy: Policy) -> (EmbeddedBroker, Pipeline) {
    live2vod::metrics::install();
    let broker = EmbeddedBroker::start(1).expect("mock cluster starts");
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = 3;
    broker
        .create_topics(&kafka.topics(), kafka.topic_partitions)
        .expect("topics on the mock cluster");
    let mut cfg = PipelineConfig::new(kafka, policy);
    cfg.sim.sessions = 8;
    cfg.sim.seed = 7;
    let p = Pipeline::start(cfg).await.expect("pipeline starts");
    (broker, p)
}

/// The first segment of a session of `flow`.
fn segment_of(p: &Pipeline, flow: Flow) -> String {
    p.sim
        .scenario()
        .events
        .iter()
        .find(|e| e.flow == flow && e.event_type == "AddLiveRecordVideoComplete")
        .map(|e| e.video_id.clone())
        .unwrap_or_else(|| panic!("the scenario has a {flow:?} segment"))
}

/// Waits (hang guard only) until the api serves `id` with one of the statuses in `want`
/// (empty: any).
async fn wait_status(api: &str, id: &str, want: &[&str]) -> serde_json::Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{api}/v1/videos/{id}")).send().await {
            if r.status().as_u16() == 200 {
                let v: serde_json::Value =
                    serde_json::from_str(&r.text().await.expect("body")).expect("json");
                if want.is_empty() || want.iter().any(|w| v["status"] == *w) {
                    return v;
                }
                assert!(Instant::now() < deadline, "{id} never {want:?}: {v}");
            }
        }
        assert!(Instant::now() < deadline, "{id} never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post_transcode(api: &str, id: &str, group: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{api}/v1/videos/{id}/transcode"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"template_group_id":"{group}"}}"#))
        .send()
        .await
        .expect("api answers");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

/// Waits (hang guard only) until VOD started a job for (id, group); returns how many.
async fn wait_job(p: &Pipeline, id: &str, group: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = p.sim.stats().jobs_started;
        if let Some(n) = jobs.get(&(id.to_string(), group.to_string())) {
            return *n;
        }
        assert!(
            Instant::now() < deadline,
            "no job for ({id}, {group}) reached VOD; jobs: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_file_a_manual_request_reaches_vod() {
    let _serial = SERIAL.lock().await;
    let (broker, p) = pipeline(Policy::default()).await;
    p.sim.deliver_all().await;
    // A segment of flow 3a: VOD transcodes only the composed video, nobody this segment.
    let id = segment_of(&p, Flow::ComposeTranscode);
    wait_status(&p.api_url, &id, &["recorded"]).await;
    let (status, body) = post_transcode(&p.api_url, &id, "tg-by-hand").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(wait_job(&p, &id, "tg-by-hand").await, 1);
    // VOD's job ends (the simulator fails some on purpose): the video leaves `recorded`.
    let v = wait_status(&p.api_url, &id, &["ready", "failed"]).await;
    println!("{v}");
    p.shutdown().await.expect("clean shutdown");
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_policy_says_none_the_request_is_refused_with_409_and_nothing_reaches_vod() {
    let _serial = SERIAL.lock().await;
    let policy = Policy::parse(
        "[defaults]\nsegments = { action = \"none\" }\n\n\
         [[rules]]\nstreams = \"*/*/store-*\"\nsegments = { action = \"manual\" }\n",
    )
    .expect("policy parses");
    let (broker, p) = pipeline(policy).await;
    p.sim.deliver_all().await;
    let refused = segment_of(&p, Flow::ComposeTranscode);
    let allowed = segment_of(&p, Flow::StoreOnly);
    wait_status(&p.api_url, &refused, &["recorded"]).await;
    let (status, body) = post_transcode(&p.api_url, &refused, "tg-by-hand").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("none"), "the reason names the policy: {body}");
    // A request made after the refused one, for a video the policy allows, reaches VOD; the
    // refused one never does.
    // (The simulator's operator transcodes store-* segments with its own group meanwhile.)
    wait_status(&p.api_url, &allowed, &[]).await;
    let (status, body) = post_transcode(&p.api_url, &allowed, "tg-by-hand").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(wait_job(&p, &allowed, "tg-by-hand").await, 1);
    let jobs = p.sim.stats().jobs_started;
    assert!(
        !jobs.contains_key(&(refused.clone(), "tg-by-hand".to_string())),
        "the refused request reached VOD: {jobs:?}"
    );
    p.shutdown().await.expect("clean shutdown");
    drop(broker);
}
