//! The relay against librdkafka's in-process mock cluster: what VOD sees (status codes) and
//! what lands on the callbacks topic.
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;
use live2vod::relay::{self, Auth, Config, RelayHandle};
use live2vod::vod::callback_auth::{sign, CallbackVerifier};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const URL: &str = "https://relay.example.com/callbacks/vod";
const KEY: &str = "current-key";
const OLD_KEY: &str = "previous-key";

fn kafka(broker: &EmbeddedBroker) -> KafkaArgs {
    let mut k = KafkaArgs::for_brokers(broker.bootstrap());
    k.topic_partitions = 2;
    broker
        .create_topics(&k.topics(), k.topic_partitions)
        .expect("topics on the mock cluster");
    k
}

async fn start_relay(kafka: KafkaArgs, ack_timeout: Duration) -> RelayHandle {
    let mut cfg = Config::new(
        kafka,
        Auth::Verify(CallbackVerifier::new(URL, KEY, Some(OLD_KEY.into()), 300)),
    );
    cfg.relay_id = "relay-test".into();
    cfg.ack_timeout = ack_timeout;
    cfg.max_body_bytes = 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    relay::start(cfg, listener).await.expect("relay starts")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

struct Post {
    status: u16,
    body: serde_json::Value,
}

async fn post(relay: &RelayHandle, body: &[u8], ts: Option<i64>, key: Option<&str>) -> Post {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut req = client.post(relay.callback_endpoint()).body(body.to_vec());
    if let Some(ts) = ts {
        req = req.header("X-VOD-TIMESTAMP", ts.to_string());
        if let Some(key) = key {
            req = req.header("X-VOD-SIGNATURE", sign(URL, &ts.to_string(), key));
        }
    }
    let resp = req.send().await.expect("relay answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text:?}"));
    Post { status, body }
}

async fn signed(relay: &RelayHandle, body: &[u8]) -> Post {
    post(relay, body, Some(now_secs()), Some(KEY)).await
}

fn callback(video_id: &str) -> Vec<u8> {
    // Deliberately odd formatting: the relay must keep the body byte for byte.
    format!(
        "{{ \"EventTime\":\"2026-11-25T09:26:17Z\",  \"EventType\":\"AddLiveRecordVideoComplete\",\n\"VideoId\":\"{video_id}\",\"Status\":\"success\",\"Unknown\":[1,2.50]}}"
    )
    .into_bytes()
}

struct Record {
    key: String,
    payload: Vec<u8>,
    headers: HashMap<String, String>,
}

/// Everything on the callbacks topic up to the high watermarks at the time of the call (so
/// every record acknowledged before it), read from the beginning. `patience` only guards
/// against hanging; it is not a timing assertion.
fn read_callbacks(brokers: &str, patience: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "relay-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let topic = "live2vod.callbacks";
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut pending = HashMap::new();
    for p in md.topics()[0].partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            pending.insert(p.id(), high);
        }
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline && !pending.is_empty() {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if pending
                .get(&m.partition())
                .is_some_and(|&h| m.offset() + 1 >= h)
            {
                pending.remove(&m.partition());
            }
            let mut headers = HashMap::new();
            if let Some(h) = m.headers() {
                for hdr in h.iter() {
                    headers.insert(
                        hdr.key.to_string(),
                        String::from_utf8_lossy(hdr.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            out.push(Record {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    assert!(
        pending.is_empty(),
        "callbacks topic not read to its end: {pending:?}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_callbacks_are_stored_verbatim_and_bad_ones_are_refused() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let relay = start_relay(kafka(&broker), Duration::from_secs(3)).await;
    let now = now_secs();

    let good = callback("video-a");
    let ok = signed(&relay, &good).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let rotated = callback("video-b");
    let ok_old = post(&relay, &rotated, Some(now), Some(OLD_KEY)).await;
    assert_eq!(ok_old.status, 200, "{:?}", ok_old.body);
    let media = br#"{"EventType":"AIMediaAuditComplete","MediaId":"media-c","Data":{"x":1}}"#;
    assert_eq!(signed(&relay, media).await.status, 200);

    // Refusals: (what, answer, expected status).
    let refused = [
        (
            "wrong key",
            post(&relay, &callback("bad-1"), Some(now), Some("nope")).await,
            401,
        ),
        (
            "no signature",
            post(&relay, &callback("bad-2"), Some(now), None).await,
            401,
        ),
        (
            "no headers",
            post(&relay, &callback("bad-3"), None, None).await,
            401,
        ),
        (
            "stale",
            post(&relay, &callback("bad-4"), Some(now - 400), Some(KEY)).await,
            401,
        ),
        (
            "future",
            post(&relay, &callback("bad-5"), Some(now + 400), Some(KEY)).await,
            401,
        ),
        (
            "array",
            signed(&relay, br#"[{"VideoId":"bad-6"}]"#).await,
            400,
        ),
        ("not json", signed(&relay, b"VideoId=bad-7").await, 400),
        (
            "internal event",
            signed(
                &relay,
                br#"{"EventType":"live2vod.TranscodeSubmitted","VideoId":"bad-8"}"#,
            )
            .await,
            400,
        ),
        (
            "too large",
            signed(
                &relay,
                format!(r#"{{"VideoId":"bad-9","Pad":"{}"}}"#, "x".repeat(2000)).as_bytes(),
            )
            .await,
            413,
        ),
    ];
    for (what, answer, status) in &refused {
        assert_eq!(answer.status, *status, "{what}: {:?}", answer.body);
        let msg = answer.body["error"].as_str().unwrap_or_default();
        assert!(
            !msg.is_empty(),
            "{what}: error body names the problem: {:?}",
            answer.body
        );
    }

    // Authentic, but naming no id live2vod routes by: kept (VOD would drop it after 3
    // refusals), under the empty key, for the fold to dead-letter with the reason.
    let unrouted_body = br#"{"EventType":"SnapshotComplete","CoverUrl":"x"}"#;
    let unrouted = signed(&relay, unrouted_body).await;
    assert_eq!(unrouted.status, 200, "{:?}", unrouted.body);
    assert_eq!(unrouted.body["routed"], false, "{:?}", unrouted.body);
    assert!(
        unrouted.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("routing id")),
        "{:?}",
        unrouted.body
    );

    let records = read_callbacks(broker.bootstrap(), Duration::from_secs(30));
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["", "media-c", "video-a", "video-b"],
        "only accepted callbacks are on the topic"
    );
    let kept = records.iter().find(|r| r.key.is_empty()).expect("unrouted");
    assert_eq!(kept.payload, unrouted_body.to_vec(), "kept byte for byte");

    let a = records
        .iter()
        .find(|r| r.key == "video-a")
        .expect("video-a");
    assert_eq!(a.payload, good, "raw body kept byte for byte");
    assert_eq!(
        a.headers.get("live2vod-relay-id").map(String::as_str),
        Some("relay-test")
    );
    assert_eq!(
        a.headers.get("live2vod-key-version").map(String::as_str),
        Some("current")
    );
    assert_eq!(
        a.headers.get("live2vod-event-type").map(String::as_str),
        Some("AddLiveRecordVideoComplete")
    );
    let received: i64 = a.headers["live2vod-received-at-ms"]
        .parse()
        .expect("millis");
    assert!(
        (received / 1000 - now).abs() < 120,
        "received-at is a unix time in ms: {received}"
    );
    let b = records
        .iter()
        .find(|r| r.key == "video-b")
        .expect("video-b");
    assert_eq!(b.payload, rotated);
    assert_eq!(
        b.headers.get("live2vod-key-version").map(String::as_str),
        Some("previous")
    );

    // Ops routes share the listener when no --metrics-listen is given.
    let ready = reqwest::get(format!("http://{}/readyz", relay.local_addr()))
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    relay.shutdown().await.expect("clean shutdown");
}

/// Posts `body` like VOD would keep retrying it, until 200 (at most `attempts` times).
async fn post_until_ok(relay: &RelayHandle, body: &[u8], attempts: usize) -> bool {
    for _ in 0..attempts {
        if signed(relay, body).await.status == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn outage_then_recovery(down: impl Fn(&EmbeddedBroker), up: impl Fn(&EmbeddedBroker)) {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let relay = start_relay(kafka(&broker), Duration::from_millis(1500)).await;
    let mut acknowledged = Vec::new();
    // The producer may still be fetching its producer id: retry like VOD would.
    assert!(post_until_ok(&relay, &callback("before-outage"), 20).await);
    acknowledged.push("before-outage".to_string());

    down(&broker);
    for i in 0..3 {
        let answer = signed(&relay, &callback(&format!("during-outage-{i}"))).await;
        assert_eq!(answer.status, 503, "{:?}", answer.body);
        assert!(answer.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("broker"));
    }
    up(&broker);

    for i in 0..5 {
        let id = format!("after-outage-{i}");
        assert!(
            post_until_ok(&relay, &callback(&id), 50).await,
            "{id} never acknowledged after recovery"
        );
        acknowledged.push(id);
    }
    let records = read_callbacks(broker.bootstrap(), Duration::from_secs(30));
    for id in &acknowledged {
        assert!(
            records
                .iter()
                .any(|r| &r.key == id && r.payload == callback(id)),
            "acknowledged callback {id} is missing from the topic"
        );
    }
    relay.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_answer_503_and_nothing_acknowledged_is_lost() {
    outage_then_recovery(
        |b| {
            b.control(|c| {
                c.request_errors(
                    RDKafkaApiKey::Produce,
                    &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 10_000],
                )
            })
            .expect("inject errors");
        },
        |b| {
            b.control(|c| c.clear_request_errors(RDKafkaApiKey::Produce))
                .expect("clear errors");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_answers_503_and_nothing_acknowledged_is_lost() {
    outage_then_recovery(
        |b| {
            b.control(|c| c.broker_down(1))
                .expect("control")
                .expect("broker down");
        },
        |b| {
            b.control(|c| c.broker_up(1))
                .expect("control")
                .expect("broker up");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_unsigned_callbacks_pass_but_internal_events_still_do_not() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let mut cfg = Config::new(kafka(&broker), Auth::Disabled);
    cfg.relay_id = "relay-noauth".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay = relay::start(cfg, listener).await.expect("relay starts");
    let body = callback("unsigned-1");
    let ok = post(&relay, &body, None, None).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let internal = post(
        &relay,
        br#"{"EventType":"live2vod.TranscodeRequested","VideoId":"unsigned-2"}"#,
        None,
        None,
    )
    .await;
    assert_eq!(internal.status, 400, "{:?}", internal.body);
    let records = read_callbacks(broker.bootstrap(), Duration::from_secs(30));
    let r = records
        .iter()
        .find(|r| r.key == "unsigned-1")
        .expect("acknowledged callback on the topic");
    assert_eq!(r.payload, body);
    assert_eq!(
        r.headers.get("live2vod-key-version").map(String::as_str),
        Some("none")
    );
    assert!(records.iter().all(|r| r.key != "unsigned-2"));
    relay.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_stops_the_relay_so_it_is_restarted() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let relay = start_relay(kafka(&broker), Duration::from_millis(1500)).await;
    assert!(post_until_ok(&relay, &callback("before-fatal"), 20).await);
    // A head-of-line sequence error is a desynchronisation the idempotent producer cannot
    // recover from: every later record would be refused.
    broker
        .control(|c| {
            c.request_errors(
                RDKafkaApiKey::Produce,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
            )
        })
        .expect("inject error");
    let answer = signed(&relay, &callback("at-fatal")).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    // The bound only keeps a broken build from hanging the suite.
    let stopped = tokio::time::timeout(
        Duration::from_secs(60),
        relay.run_until(std::future::pending::<()>()),
    )
    .await
    .expect("the relay stops by itself after a fatal producer error");
    let err = stopped.expect_err("the relay stops with an error");
    assert!(err.to_string().contains("fatal"), "{err}");
}
