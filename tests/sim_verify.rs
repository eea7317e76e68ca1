//! Verify against an api stand-in built from the truth (faithful, or with one field wrong), the
//! operator's manual transcodes, and duplicate transcode jobs being reported.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use live2vod::sim::scenario::{Flow, TG_COMPOSE_LATER};
use live2vod::sim::time::{fmt_utc, now_ms};
use live2vod::sim::{verify, SimConfig, SimHandle, Simulator, Truth};
use live2vod::vod::sign::{encode_query, sign_request, Common};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Api {
    videos: Arc<Mutex<HashMap<String, Value>>>,
    streams: Arc<Mutex<HashMap<String, Value>>>,
    /// POST /transcode calls per video: (count, last body).
    transcodes: Arc<Mutex<HashMap<String, (u32, String)>>>,
}

fn api_json(truth: &Truth) -> (HashMap<String, Value>, HashMap<String, Value>) {
    let videos = truth
        .videos
        .values()
        .map(|v| {
            let renditions: Vec<Value> = v
                .renditions
                .iter()
                .map(|r| json!({"definition": r.definition, "format": r.format, "status": r.status, "file_url": "https://x"}))
                .collect();
            (
                v.video_id.clone(),
                json!({"video_id": v.video_id, "status": v.status,
                       "origin": {"kind": v.origin_kind, "domain": v.domain, "app": v.app, "stream": v.stream},
                       "cover_url": v.cover.then(|| format!("https://cdn.example.com/{}/cover.jpg", v.video_id)),
                       "renditions": renditions, "events": 3}),
            )
        })
        .collect();
    let streams = truth
        .streams
        .values()
        .map(|s| {
            let sessions: Vec<Value> = s
                .sessions
                .iter()
                .map(|x| json!({"segments": x.segments, "composed_video_id": x.composed_video_id, "compose_status": x.compose_status}))
                .collect();
            (s.key(), json!({"domain": s.domain, "app": s.app, "stream": s.stream, "sessions": sessions}))
        })
        .collect();
    (videos, streams)
}

async fn video(State(a): State<Api>, Path(id): Path<String>) -> impl IntoResponse {
    match a.videos.lock().expect("lock").get(&id) {
        Some(v) => (StatusCode::OK, Json(v.clone())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn stream(
    State(a): State<Api>,
    Path((d, ap, s)): Path<(String, String, String)>,
) -> impl IntoResponse {
    match a
        .streams
        .lock()
        .expect("lock")
        .get(&format!("{d}/{ap}/{s}"))
    {
        Some(v) => (StatusCode::OK, Json(v.clone())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Like the real api before the fold caught up: 404 on the first request for a video.
async fn transcode(State(a): State<Api>, Path(id): Path<String>, body: String) -> StatusCode {
    let mut t = a.transcodes.lock().expect("lock");
    let e = t.entry(id).or_insert((0, String::new()));
    e.0 += 1;
    e.1 = body;
    if e.0 == 1 {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::ACCEPTED
    }
}

async fn serve(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, router).await });
    format!("http://{addr}")
}

async fn api() -> (String, Api) {
    let a = Api::default();
    let r = Router::new()
        .route("/v1/videos/{id}", get(video))
        .route("/v1/videos/{id}/transcode", post(transcode))
        .route("/v1/streams/{d}/{a}/{s}", get(stream))
        .with_state(a.clone());
    (serve(r).await, a)
}

async fn relay() -> String {
    let r = Router::new().route("/callbacks/vod", post(|| async { "ok" }));
    format!("{}/callbacks/vod", serve(r).await)
}

async fn sim(api_url: Option<String>) -> SimHandle {
    let mut cfg = SimConfig::new(&relay().await, "https://r.example.com/cb", "k");
    cfg.api_url = api_url;
    cfg.transcode_delay = Duration::from_millis(20);
    cfg.runtime_shuffle_ms = 50;
    Simulator::start(cfg).await.expect("start")
}

#[tokio::test]
async fn verify_converges_on_a_faithful_api_and_names_each_difference() {
    let s = sim(None).await;
    let truth = s.truth();
    let (url, a) = api().await;
    let (videos, streams) = api_json(&truth);
    *a.videos.lock().expect("lock") = videos;
    *a.streams.lock().expect("lock") = streams;
    let r = verify(&url, &truth, Duration::from_secs(5)).await;
    assert!(r.ok, "{r}");
    assert_eq!(r.videos_matching, truth.videos.len());
    assert_eq!(r.streams_matching, truth.streams.len());

    // One wrong status, one missing video, one wrong compose status.
    let (v1, v2) = {
        let mut ids = truth.videos.keys();
        (
            ids.next().expect("v").clone(),
            ids.next().expect("v").clone(),
        )
    };
    let key = truth
        .streams
        .values()
        .find(|s| s.sessions.iter().any(|x| x.compose_status == "success"))
        .expect("a composed stream")
        .key();
    {
        let mut vs = a.videos.lock().expect("lock");
        if let Some(v) = vs.get_mut(&v1) {
            v["status"] = json!("transcoding");
        }
        vs.remove(&v2);
        let mut ss = a.streams.lock().expect("lock");
        if let Some(s) = ss.get_mut(&key) {
            for x in s["sessions"].as_array_mut().expect("sessions") {
                x["compose_status"] = json!("composing");
            }
        }
    }
    let r = verify(&url, &truth, Duration::from_millis(1500)).await;
    assert!(!r.ok && r.timed_out);
    let text = r.to_string();
    assert!(
        r.diffs.iter().any(|d| d.subject.contains(&v1)
            && d.field == "status"
            && d.actual == "\"transcoding\""),
        "{text}"
    );
    assert!(text.contains(&v2) && text.contains("HTTP 404"), "{text}");
    assert!(
        text.contains(&format!("stream {key}")) && text.contains("compose_status"),
        "{text}"
    );
    assert_eq!(r.videos_matching, truth.videos.len() - 2);
}

#[tokio::test]
async fn the_operator_requests_tg_manual_for_each_store_segment_retrying_404() {
    let (url, a) = api().await;
    let s = sim(Some(url)).await;
    s.deliver_all().await;
    assert!(s.wait_idle(Duration::from_secs(20)).await);
    let store: Vec<String> = s
        .scenario()
        .streams
        .iter()
        .filter(|x| x.flow == Flow::StoreOnly)
        .flat_map(|x| &x.sessions)
        .flat_map(|x| &x.segments)
        .map(|g| g.video_id.clone())
        .collect();
    assert!(!store.is_empty());
    let t = a.transcodes.lock().expect("lock").clone();
    assert_eq!(t.len(), store.len(), "only store-* segments, each once");
    for v in &store {
        let (n, body) = t.get(v).expect("requested");
        assert_eq!(*n, 2, "404 then 202");
        let b: Value = serde_json::from_str(body).expect("json");
        assert_eq!(b["template_group_id"], "tg-manual");
    }
    let op = s.stats().operator;
    assert_eq!(
        (op.requested, op.accepted, op.failed),
        (store.len() as u64, store.len() as u64, 0)
    );
}

async fn submit(s: &SimHandle, vid: &str, session: &str) -> u16 {
    let ts = fmt_utc(now_ms());
    let nonce = format!("{session}-{}", now_ms());
    let common = Common {
        access_key_id: &s.config().access_key_id,
        security_token: None,
        timestamp: &ts,
        nonce: &nonce,
        version: "2017-03-21",
    };
    let p = sign_request(
        &s.config().access_key_secret,
        "POST",
        "SubmitTranscodeJobs",
        &common,
        &[
            ("VideoId", vid),
            ("TemplateGroupId", TG_COMPOSE_LATER),
            ("SessionId", session),
        ],
    );
    reqwest::Client::new()
        .post(s.vod_endpoint())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encode_query(&p))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test]
async fn verify_checks_job_counts_and_stops_at_a_duplicate_job() {
    let s = sim(None).await;
    s.deliver_all().await;
    let truth = s.truth();
    let (url, a) = api().await;
    let (videos, streams) = api_json(&truth);
    *a.videos.lock().expect("lock") = videos;
    *a.streams.lock().expect("lock") = streams;
    // Nobody submitted the policy's and the operator's transcodes: exactly those are missing.
    let r = s.verify(&url, Duration::from_millis(1200)).await;
    assert!(!r.ok);
    assert!(
        r.jobs_matching > 0,
        "VOD's own transcodes counted once each"
    );
    assert!(
        r.diffs
            .iter()
            .all(|d| d.field == "transcode jobs" && d.expected == "1" && d.actual == "0"),
        "{r}"
    );

    let composed = s
        .scenario()
        .streams
        .iter()
        .filter(|x| x.flow == Flow::ComposeOnly)
        .flat_map(|x| &x.sessions)
        .filter_map(|x| x.compose.as_ref())
        .find(|c| c.success)
        .expect("a composed video")
        .video_id
        .clone();
    assert_eq!(submit(&s, &composed, "tc-a").await, 200);
    assert_eq!(submit(&s, &composed, "tc-a").await, 200);
    assert_eq!(submit(&s, &composed, "tc-b").await, 200);
    let r = s.verify(&url, Duration::from_secs(30)).await;
    assert!(!r.timed_out, "a duplicate job ends verify at once");
    let dups = r.duplicate_jobs();
    assert_eq!(dups.len(), 1, "{r}");
    assert!(dups[0].subject.contains(&composed) && dups[0].actual == "2");
}
