//! The simulated VOD OpenAPI: signature v1 checks, SessionId de-duplication, status rules,
//! transcodes played back as callbacks, injected throttling.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use live2vod::sim::scenario::{Flow, TG_COMPOSE_LATER, TG_MANUAL};
use live2vod::sim::time::{fmt_utc, now_ms};
use live2vod::sim::{SimConfig, SimHandle, Simulator};
use live2vod::vod::sign::{encode_query, sign_request, Common};
use serde_json::Value;

const KEY_ID: &str = "test-key-id";
const SECRET: &str = "test-secret";
static NONCE: AtomicU64 = AtomicU64::new(0);

/// A relay stand-in that accepts everything and keeps the bodies.
async fn relay() -> (String, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = Router::new().route(
        "/callbacks/vod",
        post(move |body: Bytes| {
            let g = g.clone();
            async move {
                g.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&body).into_owned());
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/callbacks/vod"), got)
}

async fn sim(throttle_rate: f64) -> (SimHandle, Arc<Mutex<Vec<String>>>) {
    let (url, got) = relay().await;
    let mut cfg = SimConfig::new(&url, "https://relay.example.com/callbacks/vod", "k");
    cfg.access_key_id = KEY_ID.into();
    cfg.access_key_secret = SECRET.into();
    cfg.throttle_rate = throttle_rate;
    cfg.duplicate_rate = 0.0;
    cfg.transcode_delay = Duration::from_millis(50);
    cfg.runtime_shuffle_ms = 100;
    (Simulator::start(cfg).await.expect("sim starts"), got)
}

struct Call {
    key_id: &'static str,
    secret: &'static str,
    timestamp: String,
    nonce: String,
    method: &'static str,
}

impl Call {
    fn new() -> Self {
        Call {
            key_id: KEY_ID,
            secret: SECRET,
            timestamp: fmt_utc(now_ms()),
            nonce: format!("n-{}-{}", now_ms(), NONCE.fetch_add(1, Ordering::Relaxed)),
            method: "POST",
        }
    }

    async fn send(&self, sim: &SimHandle, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let common = Common {
            access_key_id: self.key_id,
            security_token: None,
            timestamp: &self.timestamp,
            nonce: &self.nonce,
            version: "2017-03-21",
        };
        let signed = sign_request(self.secret, self.method, action, &common, params);
        let wire = encode_query(&signed);
        let client = reqwest::Client::new();
        let req = if self.method == "POST" {
            client
                .post(sim.vod_endpoint())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(wire)
        } else {
            client.get(format!("{}?{wire}", sim.vod_endpoint()))
        };
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.text().await.expect("body");
        (status, serde_json::from_str(&body).expect("JSON answer"))
    }
}

async fn call(sim: &SimHandle, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
    Call::new().send(sim, action, params).await
}

fn first_segment(sim: &SimHandle, flow: Flow) -> String {
    sim.scenario()
        .streams
        .iter()
        .find(|s| s.flow == flow)
        .and_then(|s| s.sessions[0].segments.first())
        .map(|g| g.video_id.clone())
        .expect("segment")
}

#[tokio::test]
async fn signatures_are_checked_like_vod() {
    let (sim, _) = sim(0.0).await;
    sim.deliver_matching(|e| e.event_type == "AddLiveRecordVideoComplete")
        .await;
    let vid = first_segment(&sim, Flow::StoreOnly);

    let (st, v) = call(&sim, "GetVideoInfo", &[("VideoId", &vid)]).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Video"]["Status"], "UploadSucc");
    assert!(v["RequestId"].is_string());

    let mut get = Call::new();
    get.method = "GET";
    let (st, v) = get.send(&sim, "GetVideoInfo", &[("VideoId", &vid)]).await;
    assert_eq!(st, 200, "GET with a query string works too: {v}");

    let mut bad = Call::new();
    bad.secret = "wrong";
    let (st, v) = bad.send(&sim, "GetVideoInfo", &[("VideoId", &vid)]).await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (400, Some("SignatureDoesNotMatch"))
    );
    for k in ["RequestId", "HostId", "Code", "Message"] {
        assert!(v[k].is_string(), "{k} in {v}");
    }

    let mut unknown = Call::new();
    unknown.key_id = "nobody";
    let (st, v) = unknown
        .send(&sim, "GetVideoInfo", &[("VideoId", &vid)])
        .await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (404, Some("InvalidAccessKeyId.NotFound"))
    );

    let mut old = Call::new();
    old.timestamp = fmt_utc(now_ms() - 3_600_000);
    let (st, v) = old.send(&sim, "GetVideoInfo", &[("VideoId", &vid)]).await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (400, Some("InvalidTimeStamp.Expired"))
    );

    let once = Call::new();
    assert_eq!(
        once.send(&sim, "GetVideoInfo", &[("VideoId", &vid)])
            .await
            .0,
        200
    );
    let (st, v) = once.send(&sim, "GetVideoInfo", &[("VideoId", &vid)]).await;
    assert_eq!((st, v["Code"].as_str()), (400, Some("SignatureNonceUsed")));

    let (st, v) = call(&sim, "GetVideoInfo", &[("VideoId", "nope")]).await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (404, Some("InvalidVideo.NotFound"))
    );

    let (st, v) = call(&sim, "GetPlayInfo", &[("VideoId", &vid)]).await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (404, Some("InvalidVideo.NoneStream")),
        "nothing transcoded yet"
    );

    let calls = sim.stats().calls;
    assert_eq!(
        calls.get(&(
            "GetVideoInfo".to_string(),
            "SignatureDoesNotMatch".to_string()
        )),
        Some(&1)
    );
}

#[tokio::test]
async fn same_session_id_starts_one_job_and_the_transcode_plays_back() {
    let (sim, got) = sim(0.0).await;
    sim.deliver_matching(|e| e.event_type == "AddLiveRecordVideoComplete")
        .await;
    let vid = first_segment(&sim, Flow::StoreOnly);
    let params = [
        ("VideoId", vid.as_str()),
        ("TemplateGroupId", TG_MANUAL),
        ("SessionId", "tc-0123456789abcdef"),
        ("UserData", r#"{"Extend":{"cmd":"tc-1"}}"#),
    ];
    let (st, a) = call(&sim, "SubmitTranscodeJobs", &params).await;
    assert_eq!(st, 200, "{a}");
    let (st, b) = call(&sim, "SubmitTranscodeJobs", &params).await;
    assert_eq!(st, 200, "{b}");
    assert!(a["TranscodeTaskId"].is_string());
    assert_eq!(a["TranscodeTaskId"], b["TranscodeTaskId"]);
    assert_eq!(a["TranscodeJobs"], b["TranscodeJobs"]);
    let key = (vid.clone(), TG_MANUAL.to_string());
    assert_eq!(sim.stats().jobs_started.get(&key), Some(&1));
    assert_eq!(sim.stats().session_dedup_hits, 1);

    // The callbacks of the transcode reach the relay, with Extend echoed.
    assert!(
        sim.wait_idle(Duration::from_secs(10)).await,
        "transcode played"
    );
    let bodies: Vec<Value> = got
        .lock()
        .expect("lock")
        .iter()
        .map(|b| serde_json::from_str(b).expect("json"))
        .filter(|b: &Value| b["VideoId"] == vid.as_str())
        .collect();
    let plan = sim.scenario().transcode_plan(&vid).expect("plan").clone();
    let count = |t: &str| bodies.iter().filter(|b| b["EventType"] == t).count();
    assert_eq!(count("SnapshotComplete"), 1);
    assert_eq!(count("StreamTranscodeComplete"), plan.renditions.len());
    assert_eq!(count("TranscodeComplete"), 1);
    assert!(bodies
        .iter()
        .filter(|b| b["EventType"] == "TranscodeComplete")
        .all(|b| b["Extend"]["cmd"] == "tc-1"));

    let (_, info) = call(&sim, "GetVideoInfo", &[("VideoId", &vid)]).await;
    let want = if plan.success() {
        "Normal"
    } else {
        "TranscodeFail"
    };
    assert_eq!(info["Video"]["Status"], want);
    if plan.success() {
        let (st, p) = call(&sim, "GetPlayInfo", &[("VideoId", &vid)]).await;
        assert_eq!(st, 200, "{p}");
        let n = plan.renditions.iter().filter(|r| r.success).count();
        assert_eq!(
            p["PlayInfoList"]["PlayInfo"].as_array().map(Vec::len),
            Some(n)
        );
    }

    // Another SessionId is another job: that is what verify reports as a duplicate.
    let (st, _) = call(
        &sim,
        "SubmitTranscodeJobs",
        &[
            ("VideoId", vid.as_str()),
            ("TemplateGroupId", TG_MANUAL),
            ("SessionId", "tc-other"),
        ],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(sim.stats().jobs_started.get(&key), Some(&2));
}

#[tokio::test]
async fn transcode_of_a_source_that_is_not_ready_is_illegal_status() {
    let (sim, _) = sim(0.0).await;
    // Nothing emitted yet: VOD does not know the video.
    let compose_only = sim
        .scenario()
        .streams
        .iter()
        .find(|s| s.flow == Flow::ComposeOnly)
        .expect("compose-only stream")
        .clone();
    let ok = compose_only
        .sessions
        .iter()
        .filter_map(|s| s.compose.as_ref())
        .find(|c| c.success)
        .expect("a successful compose")
        .video_id
        .clone();
    let failed = compose_only
        .sessions
        .iter()
        .filter_map(|s| s.compose.as_ref())
        .find(|c| !c.success)
        .expect("a failed compose")
        .video_id
        .clone();
    let (st, v) = call(
        &sim,
        "SubmitTranscodeJobs",
        &[("VideoId", &ok), ("TemplateGroupId", TG_COMPOSE_LATER)],
    )
    .await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (404, Some("InvalidVideo.NotFound"))
    );

    // Compose started, file not uploaded yet.
    sim.deliver_matching(|e| e.event_type == "LiveRecordVideoComposeStart")
        .await;
    let (_, info) = call(&sim, "GetVideoInfo", &[("VideoId", &ok)]).await;
    assert_eq!(info["Video"]["Status"], "Uploading");
    let (st, v) = call(
        &sim,
        "SubmitTranscodeJobs",
        &[("VideoId", &ok), ("TemplateGroupId", TG_COMPOSE_LATER)],
    )
    .await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (403, Some("Forbidden.IllegalStatus"))
    );

    sim.deliver_matching(|e| e.event_type == "FileUploadComplete")
        .await;
    let (_, info) = call(&sim, "GetVideoInfo", &[("VideoId", &failed)]).await;
    assert_eq!(info["Video"]["Status"], "UploadFail");
    let (st, v) = call(
        &sim,
        "SubmitTranscodeJobs",
        &[("VideoId", &failed), ("TemplateGroupId", TG_COMPOSE_LATER)],
    )
    .await;
    assert_eq!(
        (st, v["Code"].as_str()),
        (403, Some("Forbidden.IllegalStatus")),
        "compose failed"
    );
    let (st, v) = call(
        &sim,
        "SubmitTranscodeJobs",
        &[("VideoId", &ok), ("TemplateGroupId", TG_COMPOSE_LATER)],
    )
    .await;
    assert_eq!(st, 200, "uploaded now: {v}");

    // ListLiveRecordVideo lists a stream's segments VOD recorded and its composed videos
    // (whose compose started above).
    sim.deliver_matching(|e| e.event_type == "AddLiveRecordVideoComplete")
        .await;
    let n: usize = compose_only
        .sessions
        .iter()
        .map(|s| s.segments.len() + usize::from(s.compose.is_some()))
        .sum();
    let (st, v) = call(
        &sim,
        "ListLiveRecordVideo",
        &[
            ("DomainName", compose_only.domain.as_str()),
            ("AppName", compose_only.app.as_str()),
            ("StreamName", compose_only.stream.as_str()),
            ("PageSize", "100"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["Total"], n.to_string(), "Total arrives as a string");
    assert_eq!(
        v["LiveRecordVideoList"]["LiveRecordVideo"]
            .as_array()
            .map(Vec::len),
        Some(n.min(100))
    );
}

#[tokio::test]
async fn throttling_at_rate_one_answers_every_call_like_vod() {
    let (sim, _) = sim(1.0).await;
    for _ in 0..3 {
        let (st, v) = call(&sim, "GetVideoInfo", &[("VideoId", "x")]).await;
        assert_eq!(
            (st, v["Code"].as_str()),
            (400, Some("Throttling.User")),
            "{v}"
        );
        assert!(v["RequestId"].is_string() && v["HostId"].is_string() && v["Message"].is_string());
    }
    // A bad signature is still reported as such: throttling comes after authentication.
    let mut bad = Call::new();
    bad.secret = "wrong";
    let (_, v) = bad.send(&sim, "GetVideoInfo", &[("VideoId", "x")]).await;
    assert_eq!(v["Code"], "SignatureDoesNotMatch");
    assert_eq!(
        sim.stats()
            .calls
            .get(&("GetVideoInfo".to_string(), "Throttling.User".to_string())),
        Some(&3)
    );
}
