//! The simulated VOD loses callbacks the ways the real one can (never posted, silent compose
//! failures, lost after 3 attempts), its OpenAPI still answers from what VOD did, and
//! `verify` with `--require-recovered` refuses an api that misses any of it.
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use live2vod::sim::scenario::Flow;
use live2vod::sim::time::{fmt_utc, now_ms};
use live2vod::sim::truth::Truth;
use live2vod::sim::{verify, SimConfig, SimHandle, Simulator};
use live2vod::vod::sign::{encode_query, sign_request, Common};
use serde_json::{json, Value};

const KEY_ID: &str = "losses-key-id";
const SECRET: &str = "losses-secret";
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

async fn sim(drop_rate: f64, silent: f64) -> (SimHandle, Arc<Mutex<Vec<String>>>) {
    let (url, got) = relay().await;
    let mut cfg = SimConfig::new(&url, "https://relay.example.com/callbacks/vod", "k");
    cfg.access_key_id = KEY_ID.into();
    cfg.access_key_secret = SECRET.into();
    cfg.duplicate_rate = 0.2;
    cfg.drop_rate = drop_rate;
    cfg.silent_failure_rate = silent;
    cfg.seed = 3;
    cfg.sessions = 8;
    (Simulator::start(cfg).await.expect("sim starts"), got)
}

async fn call(sim: &SimHandle, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let ts = fmt_utc(now_ms());
    let nonce = format!("n-{}-{}", now_ms(), NONCE.fetch_add(1, Ordering::Relaxed));
    let common = Common {
        access_key_id: KEY_ID,
        security_token: None,
        timestamp: &ts,
        nonce: &nonce,
        version: "2017-03-21",
    };
    let signed = sign_request(SECRET, "POST", action, &common, params);
    let res = reqwest::Client::new()
        .post(sim.vod_endpoint())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encode_query(&signed))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let body = res.text().await.expect("body");
    (status, serde_json::from_str(&body).expect("JSON answer"))
}

/// Every recording of one stream through ListLiveRecordVideo, paged like the reconcile role.
async fn list_all(sim: &SimHandle, domain: &str, app: &str, stream: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let page_no = page.to_string();
        let (st, v) = call(
            sim,
            "ListLiveRecordVideo",
            &[
                ("DomainName", domain),
                ("AppName", app),
                ("StreamName", stream),
                ("SortBy", "CreationTime:Asc"),
                ("PageSize", "100"),
                ("PageNo", &page_no),
            ],
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert!(v["Total"].is_string(), "Total is a string: {v}");
        let items = v["LiveRecordVideoList"]["LiveRecordVideo"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let n = items.len();
        out.extend(items);
        if n < 100 {
            break;
        }
    }
    out
}

#[tokio::test]
async fn dropped_callbacks_never_reach_the_relay_but_vod_answers_from_what_it_did() {
    let (sim, got) = sim(0.2, 0.0).await;
    let progress = sim.deliver_all().await;
    let stats = sim.stats();
    assert!(progress.dropped > 0, "{progress}");
    assert_eq!(progress.pending(), 0, "{progress}");
    assert_eq!(progress.lost, 0, "the relay answered every post");
    assert_eq!(stats.dropped_by_vod.len() as u64, progress.dropped);
    // Both copies of a duplicated event share its fate: no dropped event ever arrives.
    let bodies: BTreeSet<String> = got.lock().expect("lock").iter().cloned().collect();
    let events = &sim.scenario().events;
    let dropped: BTreeSet<u64> = stats.dropped_by_vod.iter().map(|l| l.event_id).collect();
    for e in events {
        assert_eq!(
            bodies.contains(&e.body),
            !dropped.contains(&e.id),
            "{} {}",
            e.event_type,
            e.video_id
        );
    }
    assert_eq!(stats.undelivered.len(), dropped.len());
    // Roughly the rate, chosen by the seed.
    let share = dropped.len() as f64 / events.len() as f64;
    assert!((0.1..0.3).contains(&share), "{share}");

    // The OpenAPI knows every recording, delivered or not.
    for s in &sim.scenario().streams {
        let listed: BTreeSet<String> = list_all(&sim, &s.domain, &s.app, &s.stream)
            .await
            .iter()
            .filter_map(|e| e["Video"]["VideoId"].as_str().map(str::to_string))
            .collect();
        for sess in &s.sessions {
            for g in &sess.segments {
                assert!(listed.contains(&g.video_id), "{} {}", s.stream, g.video_id);
            }
            if let Some(c) = &sess.compose {
                assert!(listed.contains(&c.video_id), "composed {}", c.video_id);
            }
        }
    }
    let lost_segment = events
        .iter()
        .find(|e| dropped.contains(&e.id) && e.event_type == "AddLiveRecordVideoComplete")
        .expect("a dropped AddLiveRecordVideoComplete at this seed and rate");
    let (st, v) = call(&sim, "GetVideoInfo", &[("VideoId", &lost_segment.video_id)]).await;
    assert_eq!(st, 200, "{v}");
    assert_ne!(v["Video"]["Status"], "Uploading", "{v}");
    let (st, m) = call(
        &sim,
        "GetMezzanineInfo",
        &[("VideoId", &lost_segment.video_id)],
    )
    .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["Mezzanine"]["Status"], "Normal");
    assert!(m["Mezzanine"]["FileURL"].is_string(), "{m}");
    // A stream with no recording (yet) is an empty list, not an error.
    let none = list_all(&sim, "live.demo.example.com", "live", "never-pushed").await;
    assert!(none.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_silent_compose_failure_sends_no_callback_and_vod_says_upload_fail() {
    let (sim, got) = sim(0.0, 1.0).await;
    let progress = sim.deliver_all().await;
    let stats = sim.stats();
    let failed: Vec<String> = sim
        .scenario()
        .streams
        .iter()
        .flat_map(|s| &s.sessions)
        .filter_map(|s| s.compose.as_ref())
        .filter(|c| !c.success)
        .map(|c| c.video_id.clone())
        .collect();
    assert!(!failed.is_empty());
    assert_eq!(progress.dropped, 0);
    let silent: BTreeSet<&str> = stats
        .never_sent
        .iter()
        .map(|l| l.video_id.as_str())
        .collect();
    assert_eq!(silent.len(), failed.len(), "{silent:?}");
    assert!(stats
        .never_sent
        .iter()
        .all(|l| l.event_type == "FileUploadComplete" && l.last_error == "never sent"));
    let bodies = got.lock().expect("lock").clone();
    for vid in &failed {
        assert!(silent.contains(vid.as_str()));
        assert!(
            !bodies
                .iter()
                .any(|b| b.contains(vid) && b.contains("FileUploadComplete")),
            "no FileUploadComplete for {vid}"
        );
        // The compose start was sent; VOD's state says the upload failed.
        assert!(bodies
            .iter()
            .any(|b| b.contains(vid) && b.contains("LiveRecordVideoComposeStart")));
        let (_, v) = call(&sim, "GetVideoInfo", &[("VideoId", vid)]).await;
        assert_eq!(v["Video"]["Status"], "UploadFail", "{v}");
        let (_, m) = call(&sim, "GetMezzanineInfo", &[("VideoId", vid)]).await;
        assert_eq!(m["Mezzanine"]["Status"], "UploadFail", "{m}");
    }
    // Successful uploads still call back.
    let ok = sim
        .scenario()
        .streams
        .iter()
        .flat_map(|s| &s.sessions)
        .filter_map(|s| s.compose.as_ref())
        .find(|c| c.success)
        .expect("a successful compose");
    assert!(bodies
        .iter()
        .any(|b| b.contains(&ok.video_id) && b.contains("FileUploadComplete")));
    sim.shutdown().await;
}

type Views = Arc<HashMap<String, Value>>;

async fn view(State(v): State<Views>, Path(p): Path<String>) -> Response {
    match v.get(&p) {
        Some(body) => (StatusCode::OK, body.to_string()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An api stand-in that shows `truth`'s videos and streams, except those in `missing`.
async fn api(truth: &Truth, missing: &BTreeSet<String>) -> String {
    let mut views = HashMap::new();
    for v in truth.videos.values() {
        if missing.contains(&v.video_id) {
            continue;
        }
        let renditions: Vec<Value> = v
            .renditions
            .iter()
            .map(|r| json!({"definition": r.definition, "format": r.format, "status": r.status}))
            .collect();
        views.insert(
            format!("videos/{}", v.video_id),
            json!({"video_id": v.video_id, "status": v.status,
                "origin": {"kind": v.origin_kind, "domain": v.domain, "app": v.app, "stream": v.stream},
                "cover_url": v.cover.then(|| format!("https://cdn.example.com/{}/cover.jpg", v.video_id)),
                "renditions": renditions}),
        );
    }
    for s in truth.streams.values() {
        let sessions: Vec<Value> = s
            .sessions
            .iter()
            .map(|x| {
                json!({"segments": x.segments, "composed_video_id": x.composed_video_id,
                    "compose_status": x.compose_status})
            })
            .collect();
        views.insert(
            format!("streams/{}/{}/{}", s.domain, s.app, s.stream),
            json!({ "sessions": sessions }),
        );
    }
    let app = Router::new()
        .route("/v1/{*path}", get(view))
        .with_state(Arc::new(views));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn require_recovered_refuses_an_api_that_misses_what_vod_never_delivered() {
    let (sim, _) = sim(0.1, 1.0).await;
    sim.deliver_all().await;
    let undelivered: BTreeSet<String> = sim
        .stats()
        .undelivered
        .iter()
        .map(|l| l.video_id.clone())
        .collect();
    assert!(!undelivered.is_empty());
    let skipping = sim.truth();
    let requiring = sim.truth().requiring_recovery();
    assert!(requiring.lost_videos.is_empty() && requiring.lost_streams.is_empty());
    assert_eq!(
        requiring.must_recover.len(),
        skipping.lost_videos.len() + skipping.lost_streams.len()
    );
    let short = Duration::from_millis(300);

    // An api that shows only what was delivered: fine without the flag, refused with it.
    let partial = api(&skipping, &undelivered).await;
    let r = verify(&partial, &skipping, short).await;
    assert!(r.ok, "{r}");
    assert!(!r.skipped_lost.is_empty());
    let r = verify(&partial, &requiring, short).await;
    assert!(!r.ok, "{r}");
    assert!(r.skipped_lost.is_empty());
    assert!(
        r.diffs
            .iter()
            .any(|d| undelivered.iter().any(|v| d.subject.contains(v.as_str()))),
        "{r}"
    );
    assert!(r
        .to_string()
        .contains("required although VOD never delivered"));

    // An api that shows everything VOD did passes both.
    let full = api(&requiring, &BTreeSet::new()).await;
    let r = verify(&full, &requiring, short).await;
    assert!(r.ok, "{r}");
    assert_eq!(r.videos_checked, requiring.videos.len());
    assert!(verify(&full, &skipping, short).await.ok);
    // The flows are all present, so "every flow" holds for what must be recovered.
    let flows: BTreeSet<Flow> = requiring.videos.values().map(|v| v.flow).collect();
    assert_eq!(flows.len(), 4);
    sim.shutdown().await;
}
