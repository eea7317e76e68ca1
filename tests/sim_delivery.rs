//! Callback delivery like VOD's: signed, every event at least once, duplicates, no order,
//! 3 attempts on failure then lost-by-VOD.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use live2vod::sim::time::{now_ms, parse_utc};
use live2vod::sim::{SimConfig, Simulator};
use live2vod::vod::callback_auth::CallbackVerifier;
use serde_json::Value;

const CALLBACK_URL: &str = "https://relay.example.com/callbacks/vod";
const KEY: &str = "relay-key";

#[derive(Clone)]
struct Relay {
    verifier: CallbackVerifier,
    /// Status answered to verified callbacks.
    answer: StatusCode,
    /// Every attempt: (verified, body).
    seen: Arc<Mutex<Vec<(bool, String)>>>,
}

async fn callback(State(r): State<Relay>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let ok = r
        .verifier
        .verify(h("X-VOD-TIMESTAMP"), h("X-VOD-SIGNATURE"), now_ms() / 1000)
        .is_ok();
    r.seen
        .lock()
        .expect("lock")
        .push((ok, String::from_utf8_lossy(&body).into_owned()));
    if ok {
        r.answer
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// A relay stand-in that checks X-VOD-SIGNATURE with the relay's verifier.
async fn relay(answer: StatusCode) -> (String, Arc<Mutex<Vec<(bool, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = Relay {
        verifier: CallbackVerifier::new(CALLBACK_URL, KEY, None, 300),
        answer,
        seen: seen.clone(),
    };
    let app = Router::new()
        .route("/callbacks/vod", post(callback))
        .with_state(state);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/callbacks/vod"), seen)
}

fn config(relay_url: &str, key: &str) -> SimConfig {
    let mut cfg = SimConfig::new(relay_url, CALLBACK_URL, key);
    cfg.retry_interval = Duration::from_millis(30);
    cfg
}

#[tokio::test]
async fn every_event_arrives_signed_at_least_once_some_twice_and_out_of_order() {
    let (url, seen) = relay(StatusCode::OK).await;
    let mut cfg = config(&url, KEY);
    cfg.sessions = 4;
    cfg.duplicate_rate = 0.3;
    let sim = Simulator::start(cfg).await.expect("start");
    let progress = sim.deliver_all().await;
    let events = &sim.scenario().events;
    let seen = seen.lock().expect("lock").clone();

    assert!(seen.iter().all(|(ok, _)| *ok), "every callback verifies");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, b) in &seen {
        *count.entry(b.as_str()).or_default() += 1;
    }
    for e in events {
        assert!(
            count.get(e.body.as_str()).is_some_and(|n| *n >= 1),
            "{} of {} never arrived",
            e.event_type,
            e.video_id
        );
    }
    assert!(count.values().any(|n| *n >= 2), "some duplicates arrived");
    assert_eq!(seen.len() as u64, progress.acknowledged);
    assert_eq!(
        progress.acknowledged,
        events.len() as u64 + progress.duplicates_acknowledged
    );
    assert!(progress.duplicates_acknowledged > 0);
    assert_eq!(
        (progress.lost, progress.retried, progress.pending()),
        (0, 0, 0)
    );

    // No order: some later event arrives before an earlier one.
    let times: Vec<i64> = seen
        .iter()
        .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
        .filter_map(|v| v["EventTime"].as_str().and_then(parse_utc))
        .collect();
    assert_eq!(times.len(), seen.len());
    assert!(
        times.windows(2).any(|w| w[1] < w[0]),
        "delivered in time order"
    );
    assert!(sim.truth().lost_videos.is_empty());
}

#[tokio::test]
async fn a_relay_answering_500_gets_exactly_3_attempts_then_the_event_is_lost() {
    let (url, seen) = relay(StatusCode::INTERNAL_SERVER_ERROR).await;
    let mut cfg = config(&url, KEY);
    cfg.sessions = 1;
    cfg.duplicate_rate = 0.0;
    let sim = Simulator::start(cfg).await.expect("start");
    let progress = sim.deliver_all().await;
    let events = &sim.scenario().events;
    let n = events.len() as u64;
    let seen = seen.lock().expect("lock").clone();

    for e in events {
        let attempts = seen.iter().filter(|(_, b)| *b == e.body).count();
        assert_eq!(attempts, 3, "{} of {}", e.event_type, e.video_id);
    }
    assert_eq!(progress.lost, n);
    assert_eq!(progress.retried, 2 * n);
    assert_eq!(progress.acknowledged, 0);
    let stats = sim.stats();
    assert_eq!(stats.lost_by_vod.len() as u64, n);
    assert!(stats.lost_by_vod.iter().all(|l| l.last_error == "HTTP 500"));
    let truth = sim.truth();
    assert_eq!(truth.lost_videos.len(), truth.videos.len());
    assert!(!truth.lost_streams.is_empty());
}

#[tokio::test]
async fn a_wrong_auth_key_is_refused_by_the_relay_and_counted_lost() {
    let (url, seen) = relay(StatusCode::OK).await;
    let mut cfg = config(&url, "not-the-relay-key");
    cfg.sessions = 1;
    cfg.duplicate_rate = 0.0;
    let sim = Simulator::start(cfg).await.expect("start");
    let progress = sim.deliver_all().await;
    assert!(seen.lock().expect("lock").iter().all(|(ok, _)| !*ok));
    assert_eq!(progress.lost, sim.scenario().events.len() as u64);
}

#[tokio::test]
async fn a_relay_slower_than_the_attempt_timeout_counts_as_a_failed_attempt() {
    let seen = Arc::new(Mutex::new(0u32));
    let s = seen.clone();
    let app = Router::new().route(
        "/callbacks/vod",
        post(move || {
            let s = s.clone();
            async move {
                *s.lock().expect("lock") += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
                "too late"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    let mut cfg = config(&format!("http://{addr}/callbacks/vod"), KEY);
    cfg.sessions = 1;
    cfg.duplicate_rate = 0.0;
    cfg.attempt_timeout = Duration::from_millis(100);
    let sim = Simulator::start(cfg).await.expect("start");
    let progress = sim.deliver_all().await;
    let n = sim.scenario().events.len() as u64;
    assert_eq!(progress.lost, n);
    assert_eq!(u64::from(*seen.lock().expect("lock")), 3 * n);
    assert!(sim
        .stats()
        .lost_by_vod
        .iter()
        .all(|l| l.last_error == "timeout"));
}
