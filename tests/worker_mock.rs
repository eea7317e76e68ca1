//! The worker on the embedded mock Kafka cluster against a VOD stand-in that counts
//! SubmitTranscodeJobs per SessionId: once-in-effect execution, outcome events, ledger, DLQ,
//! permanent VOD errors and restarts.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use live2vod::http::Health;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::{producer, KafkaArgs};
use live2vod::proto::{command, Command, RefreshPlayInfo, SubmitTranscode, TrackCompose};
use live2vod::vod::client::{RetryPolicy, VodConfig};
use live2vod::vod::sign::{decode_query, verify};
use live2vod::worker::{self, WorkerConfig, WorkerHandle};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

const KEY_ID: &str = "worker-test-key";
const SECRET: &str = "worker-test-secret";
/// The stand-in answers Forbidden.IllegalStatus for this video.
const ILLEGAL_VIDEO: &str = "vid-illegal";

/// VOD stand-in state: SubmitTranscodeJobs calls per SessionId, and every action seen.
#[derive(Clone, Default)]
struct Vod {
    submits: Arc<Mutex<HashMap<String, usize>>>,
    actions: Arc<Mutex<Vec<String>>>,
}

impl Vod {
    fn submits_for(&self, session: &str) -> usize {
        self.submits
            .lock()
            .unwrap()
            .get(session)
            .copied()
            .unwrap_or(0)
    }
}

fn vod_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        format!(
            r#"{{"RequestId":"r","HostId":"h","Code":"{code}","Message":"{code} (stand-in)"}}"#
        ),
    )
        .into_response()
}

async fn vod_handler(State(vod): State<Vod>, body: String) -> Response {
    let Some(params) = decode_query(&body) else {
        return vod_error(StatusCode::BAD_REQUEST, "InvalidParameter");
    };
    if !verify(SECRET, "POST", &params) {
        return vod_error(StatusCode::BAD_REQUEST, "SignatureDoesNotMatch");
    }
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let action = get("Action");
    vod.actions.lock().unwrap().push(action.clone());
    let video = get("VideoId");
    match action.as_str() {
        "SubmitTranscodeJobs" => {
            let session = get("SessionId");
            if session.is_empty() {
                return vod_error(StatusCode::BAD_REQUEST, "MissingParameter");
            }
            *vod.submits.lock().unwrap().entry(session.clone()).or_default() += 1;
            if video == ILLEGAL_VIDEO {
                return vod_error(StatusCode::FORBIDDEN, "Forbidden.IllegalStatus");
            }
            format!(
                r#"{{"RequestId":"r","TranscodeTaskId":"task-{session}","TranscodeJobs":{{"TranscodeJob":[{{"JobId":"job-{session}"}}]}}}}"#
            )
            .into_response()
        }
        "GetVideoInfo" => format!(
            r#"{{"RequestId":"r","Video":{{"VideoId":"{video}","Status":"UploadSucc","Size":"4096"}}}}"#
        )
        .into_response(),
        "GetPlayInfo" => format!(
            r#"{{"RequestId":"r","PlayInfoList":{{"PlayInfo":[{{"PlayURL":"https://cdn.example/{video}/hd.m3u8","Definition":"HD","Format":"m3u8","Bitrate":"1200","Duration":"10.0","Size":"100","Width":1280,"Height":720,"JobId":"j","Status":"Normal"}}]}}}}"#
        )
        .into_response(),
        _ => vod_error(StatusCode::BAD_REQUEST, "InvalidParameter"),
    }
}

async fn start_vod() -> (Vod, String) {
    let vod = Vod::default();
    let app = Router::new()
        .route("/", post(vod_handler))
        .with_state(vod.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (vod, format!("http://{addr}/"))
}

/// Kafka options for `prefix`, with its topics created (3 partitions each). The mock cluster
/// has no CreateTopics request, so they are made through its control API; the worker's own
/// `ensure_topics` then finds them.
fn kafka_args(broker: &EmbeddedBroker, prefix: &str) -> KafkaArgs {
    let mut k = KafkaArgs::for_brokers(broker.bootstrap());
    k.topic_prefix = prefix.to_string();
    k.topic_partitions = 3;
    // The mock group coordinator waits almost a session timeout before re-forming a group
    // whose last member left; keep that short so the restart below rejoins quickly.
    k.kafka.push(("session.timeout.ms".into(), "6000".into()));
    k.kafka.push(("heartbeat.interval.ms".into(), "500".into()));
    broker.create_topics(&k.topics(), 3).unwrap();
    k
}

fn worker_config(kafka: &KafkaArgs, endpoint: &str) -> WorkerConfig {
    let mut vod = VodConfig::new("cn-shanghai", KEY_ID, SECRET);
    vod.endpoint = Some(endpoint.to_string());
    vod.timeout = Duration::from_secs(5);
    vod.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_elapsed: Duration::from_secs(10),
    };
    let mut cfg = WorkerConfig::new(kafka.clone(), vod);
    cfg.group_id = "worker-test".into();
    cfg.concurrency = 4;
    cfg.shutdown_timeout = Duration::from_secs(10);
    cfg.retry_max_backoff = Duration::from_millis(200);
    cfg
}

async fn start_worker(kafka: &KafkaArgs, endpoint: &str) -> WorkerHandle {
    let health = Health::default();
    let h = worker::start(worker_config(kafka, endpoint), health.clone())
        .await
        .unwrap();
    assert!(health.is_ready(), "ready once the ledger is loaded");
    h
}

fn submit(id: &str, video: &str, group: &str) -> Command {
    Command {
        command_id: id.into(),
        video_id: video.into(),
        cause: "test".into(),
        cause_time_ms: 0,
        kind: Some(command::Kind::SubmitTranscode(SubmitTranscode {
            template_group_id: group.into(),
            priority: "5".into(),
        })),
    }
}

async fn produce(p: &FutureProducer, topic: &str, key: &str, value: &[u8]) {
    p.send(
        FutureRecord::to(topic).key(key).payload(value),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
}

async fn produce_command(p: &FutureProducer, kafka: &KafkaArgs, c: &Command) {
    produce(p, &kafka.topics().commands, &c.video_id, &c.encode_to_vec()).await;
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
struct Rec {
    key: String,
    value: Vec<u8>,
    headers: HashMap<String, String>,
}

impl Rec {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.value).unwrap_or(Value::Null)
    }
}

/// Every record of `topic` up to the current high watermarks.
fn read_all(kafka: &KafkaArgs, topic: &str) -> Vec<Rec> {
    let mut cfg = kafka.client_config();
    cfg.set("group.id", "worker-test-reader")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in &parts {
        let (_, high) = c
            .fetch_watermarks(topic, *p, Duration::from_secs(5))
            .unwrap();
        if high > 0 {
            ends.insert(*p, high);
            tpl.add_partition_offset(topic, *p, Offset::Beginning)
                .unwrap();
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return out;
    }
    c.assign(&tpl).unwrap();
    let started = Instant::now();
    while !ends.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "reading {topic} stalled"
        );
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for hd in h.iter() {
                headers.insert(
                    hd.key.to_string(),
                    String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push(Rec {
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            value: m.payload().unwrap_or_default().to_vec(),
            headers,
        });
        if ends
            .get(&m.partition())
            .is_some_and(|h| m.offset() + 1 >= *h)
        {
            ends.remove(&m.partition());
        }
    }
    out
}

/// The group has committed every record of the commands topic (so every command, including
/// duplicates and skipped ones, was handled).
fn all_commands_committed(kafka: &KafkaArgs) -> bool {
    let topic = kafka.topics().commands;
    let mut cfg = kafka.client_config();
    cfg.set("group.id", "worker-test")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut highs = HashMap::new();
    for p in 0..3 {
        let (_, high) = c
            .fetch_watermarks(&topic, p, Duration::from_secs(5))
            .unwrap();
        highs.insert(p, high);
        tpl.add_partition(&topic, p);
    }
    let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(5)) else {
        return false;
    };
    highs.iter().all(|(p, high)| {
        *high == 0
            || committed
                .find_partition(&topic, *p)
                .is_some_and(|e| e.offset() == Offset::Offset(*high))
    })
}

/// Polls `cond` until it holds; the bound only turns a hang into a failure message.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    loop {
        let ok = tokio::task::block_in_place(&mut cond);
        if ok {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn outcomes_for<'a>(recs: &'a [Rec], command_id: &str) -> Vec<&'a Rec> {
    recs.iter()
        .filter(|r| r.json()["CommandId"] == command_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_execute_once_in_effect_across_duplicates_dlq_and_restarts() {
    live2vod::telemetry::init();
    let broker = EmbeddedBroker::start(1).unwrap();
    let kafka = kafka_args(&broker, "wm.");
    let topics = kafka.topics();
    let (vod, endpoint) = start_vod().await;
    let p = producer::idempotent_producer(&kafka).unwrap();

    // A command finished in an earlier life: its id is in the ledger already.
    produce(
        &p,
        &topics.ledger,
        "tc-done",
        br#"{"CommandId":"tc-done","VideoId":"vid-2","Kind":"submit_transcode","Outcome":"ok","EventType":"live2vod.TranscodeSubmitted","FinishedAt":"2026-01-01T00:00:00Z"}"#,
    )
    .await;

    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let first = submit("tc-a", "vid-1", "tg-1");
    produce_command(&p, &kafka, &first).await;
    produce_command(&p, &kafka, &first).await;
    produce_command(&p, &kafka, &submit("tc-done", "vid-2", "tg-1")).await;
    produce(&p, &topics.commands, "vid-x", b"\xff\xff not a protobuf").await;
    produce_command(&p, &kafka, &submit("tc-ill", ILLEGAL_VIDEO, "tg-1")).await;
    produce_command(
        &p,
        &kafka,
        &Command {
            command_id: "ct-1".into(),
            video_id: "vid-3".into(),
            cause: "compose_start".into(),
            cause_time_ms: now_ms,
            kind: Some(command::Kind::TrackCompose(TrackCompose {
                deadline_ms: now_ms - 1_000,
                domain: "live.example.com".into(),
                app: "app".into(),
                stream: "s1".into(),
            })),
        },
    )
    .await;
    produce_command(
        &p,
        &kafka,
        &Command {
            command_id: "pi-1".into(),
            video_id: "vid-4".into(),
            cause: "transcode_complete".into(),
            cause_time_ms: now_ms,
            kind: Some(command::Kind::RefreshPlayInfo(RefreshPlayInfo {})),
        },
    )
    .await;

    let w = start_worker(&kafka, &endpoint).await;
    eventually("all commands handled and committed", || {
        all_commands_committed(&kafka)
    })
    .await;

    // Exactly one VOD submission per command id; none for the one in the ledger.
    assert_eq!(vod.submits_for("tc-a"), 1);
    assert_eq!(vod.submits_for("tc-ill"), 1);
    assert_eq!(vod.submits_for("tc-done"), 0);

    let callbacks = read_all(&kafka, &topics.callbacks);
    let a = outcomes_for(&callbacks, "tc-a");
    assert_eq!(a.len(), 1, "one outcome for a duplicated command: {a:?}");
    assert_eq!(a[0].key, "vid-1");
    let body = a[0].json();
    assert_eq!(body["EventType"], "live2vod.TranscodeSubmitted");
    assert_eq!(body["VideoId"], "vid-1");
    assert_eq!(body["TemplateGroupId"], "tg-1");
    assert_eq!(body["TranscodeTaskId"], "task-tc-a");
    assert_eq!(body["Status"], "success");
    let t = body["EventTime"].as_str().unwrap();
    assert!(t.len() == 20 && t.ends_with('Z'), "{t}");
    assert_eq!(
        a[0].headers.get("live2vod-event-type").map(String::as_str),
        Some("live2vod.TranscodeSubmitted")
    );
    assert_eq!(
        a[0].headers.get("live2vod-command-id").map(String::as_str),
        Some("tc-a")
    );

    let ill = outcomes_for(&callbacks, "tc-ill");
    assert_eq!(ill.len(), 1);
    assert_eq!(ill[0].key, ILLEGAL_VIDEO);
    assert_eq!(ill[0].json()["EventType"], "live2vod.TranscodeRejected");
    assert_eq!(ill[0].json()["ErrorCode"], "Forbidden.IllegalStatus");
    assert_eq!(ill[0].json()["Status"], "fail");

    let ct = outcomes_for(&callbacks, "ct-1");
    assert_eq!(ct.len(), 1);
    assert_eq!(ct[0].key, "vid-3");
    assert_eq!(ct[0].json()["EventType"], "live2vod.VideoInfoObserved");
    assert_eq!(ct[0].json()["VideoStatus"], "UploadSucc");
    assert_eq!(ct[0].json()["Size"], 4096);

    let pi = outcomes_for(&callbacks, "pi-1");
    assert_eq!(pi.len(), 1);
    assert_eq!(pi[0].key, "vid-4");
    assert_eq!(pi[0].json()["EventType"], "live2vod.PlayInfoResolved");
    assert_eq!(
        pi[0].json()["PlayInfos"][0]["PlayURL"],
        "https://cdn.example/vid-4/hd.m3u8"
    );
    assert!(outcomes_for(&callbacks, "tc-done").is_empty());

    // The undecodable record went to the DLQ with its origin and reason.
    let dlq = read_all(&kafka, &topics.dlq);
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].value, b"\xff\xff not a protobuf");
    assert_eq!(dlq[0].key, "vid-x");
    assert_eq!(
        dlq[0].headers.get("live2vod-dlq-topic").map(String::as_str),
        Some(topics.commands.as_str())
    );
    assert!(dlq[0].headers.contains_key("live2vod-dlq-partition"));
    assert!(dlq[0].headers.contains_key("live2vod-dlq-offset"));
    assert_eq!(
        dlq[0]
            .headers
            .get("live2vod-dlq-reason")
            .map(String::as_str),
        Some("undecodable")
    );
    assert!(dlq[0]
        .headers
        .get("live2vod-dlq-error")
        .is_some_and(|e| e.contains("protobuf")));

    // Ledger records for each executed command.
    let ledger = read_all(&kafka, &topics.ledger);
    for id in ["tc-a", "tc-ill", "ct-1", "pi-1"] {
        let recs: Vec<_> = ledger.iter().filter(|r| r.key == id).collect();
        assert_eq!(recs.len(), 1, "ledger records for {id}");
        assert_eq!(recs[0].json()["CommandId"], id);
    }
    assert_eq!(
        ledger
            .iter()
            .find(|r| r.key == "tc-ill")
            .map(|r| r.json()["Outcome"].clone()),
        Some(Value::from("rejected"))
    );

    // A new instance in the same group: the old command again and a new one.
    w.shutdown().await.unwrap();
    produce_command(&p, &kafka, &first).await;
    produce_command(&p, &kafka, &submit("tc-b", "vid-5", "tg-1")).await;
    let w2 = start_worker(&kafka, &endpoint).await;
    assert!(w2.is_finished("tc-a"), "the ledger was loaded at start");
    eventually("the restarted worker handled everything", || {
        all_commands_committed(&kafka)
    })
    .await;
    assert_eq!(
        vod.submits_for("tc-a"),
        1,
        "not re-executed after a restart"
    );
    assert_eq!(vod.submits_for("tc-b"), 1);
    let callbacks = read_all(&kafka, &topics.callbacks);
    assert_eq!(outcomes_for(&callbacks, "tc-a").len(), 1);
    assert_eq!(outcomes_for(&callbacks, "tc-b").len(), 1);
    w2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_is_written_before_the_ledger_and_the_ledger_before_the_commit() {
    // A command the stand-in keeps throttling never reaches the ledger nor the committed
    // offsets, while later records of other partitions still complete: nothing is dropped.
    live2vod::telemetry::init();
    let broker = EmbeddedBroker::start(1).unwrap();
    let kafka = kafka_args(&broker, "wt.");
    let topics = kafka.topics();
    let throttled = Arc::new(Mutex::new(0usize));
    let t2 = throttled.clone();
    let app = Router::new().route(
        "/",
        post(move |body: String| {
            let t2 = t2.clone();
            async move {
                let params = decode_query(&body).unwrap_or_default();
                let video = params
                    .iter()
                    .find(|(k, _)| k == "VideoId")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                if video == "vid-slow" {
                    *t2.lock().unwrap() += 1;
                    return vod_error(StatusCode::BAD_REQUEST, "Throttling.User");
                }
                r#"{"RequestId":"r","TranscodeTaskId":"task","TranscodeJobs":{"TranscodeJob":[]}}"#
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let p = producer::idempotent_producer(&kafka).unwrap();
    // Same key, same partition: the slow command is first, the fast one after it.
    produce_command(&p, &kafka, &submit("tc-slow", "vid-slow", "tg")).await;
    // Another video in the body, but the same key: it lands behind the slow one.
    let fast = submit("tc-fast", "vid-fast", "tg");
    produce(&p, &topics.commands, "vid-slow", &fast.encode_to_vec()).await;

    let w = start_worker(&kafka, &endpoint).await;
    eventually("the fast command finished", || {
        read_all(&kafka, &topics.ledger)
            .iter()
            .any(|r| r.key == "tc-fast")
    })
    .await;
    eventually("the slow command was retried", || {
        *throttled.lock().unwrap() >= 6
    })
    .await;
    assert!(!w.is_finished("tc-slow"));
    assert!(!read_all(&kafka, &topics.ledger)
        .iter()
        .any(|r| r.key == "tc-slow"));
    assert!(outcomes_for(&read_all(&kafka, &topics.callbacks), "tc-slow").is_empty());
    w.shutdown().await.unwrap();
    // The fast one finished, but the slow one before it in the partition did not: the
    // committed position must not have moved past the slow one.
    assert!(
        !all_commands_committed(&kafka),
        "committed past an unfinished command"
    );
}

fn track_compose(id: &str, video: &str, deadline_ms: i64) -> Command {
    Command {
        command_id: id.into(),
        video_id: video.into(),
        cause: "compose_start".into(),
        cause_time_ms: 0,
        kind: Some(command::Kind::TrackCompose(TrackCompose {
            deadline_ms,
            domain: "d".into(),
            app: "a".into(),
            stream: "s".into(),
        })),
    }
}

fn actions_named(vod: &Vod, action: &str) -> usize {
    vod.actions
        .lock()
        .unwrap()
        .iter()
        .filter(|a| *a == action)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_a_command_waiting_for_its_deadline_to_the_next_owner() {
    live2vod::telemetry::init();
    let broker = EmbeddedBroker::start(1).unwrap();
    let kafka = kafka_args(&broker, "ws.");
    let topics = kafka.topics();
    let (vod, endpoint) = start_vod().await;
    let p = producer::idempotent_producer(&kafka).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Far enough ahead that the first worker is stopped before it; near enough to wait for.
    produce_command(
        &p,
        &kafka,
        &track_compose("ct-late", "vid-c", now_ms + 15_000),
    )
    .await;

    let w1 = start_worker(&kafka, &endpoint).await;
    eventually("the first worker holds the command", || w1.in_flight() == 1).await;
    w1.shutdown().await.unwrap();
    assert_eq!(
        actions_named(&vod, "GetVideoInfo"),
        0,
        "ran before its deadline"
    );
    assert!(
        !all_commands_committed(&kafka),
        "a command abandoned at shutdown must not be committed"
    );

    let w2 = start_worker(&kafka, &endpoint).await;
    eventually("the next owner ran it at its deadline", || {
        all_commands_committed(&kafka)
    })
    .await;
    w2.shutdown().await.unwrap();
    assert_eq!(actions_named(&vod, "GetVideoInfo"), 1);
    let callbacks = read_all(&kafka, &topics.callbacks);
    let ct = outcomes_for(&callbacks, "ct-late");
    assert_eq!(ct.len(), 1);
    assert_eq!(ct[0].json()["EventType"], "live2vod.VideoInfoObserved");
    assert_eq!(ct[0].json()["StreamName"], "s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_in_a_group_share_the_commands_and_lose_none_across_the_rebalance() {
    live2vod::telemetry::init();
    let broker = EmbeddedBroker::start(1).unwrap();
    let kafka = kafka_args(&broker, "wr.");
    let topics = kafka.topics();
    let (vod, endpoint) = start_vod().await;
    let p = producer::idempotent_producer(&kafka).unwrap();
    let ids: Vec<String> = (0..30).map(|i| format!("tc-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        produce_command(&p, &kafka, &submit(id, &format!("vid-{i:02}"), "tg")).await;
    }

    let w1 = start_worker(&kafka, &endpoint).await;
    // The second member joins while the first may be working: a rebalance mid-stream.
    let w2 = start_worker(&kafka, &endpoint).await;
    // Duplicates produced after the rebalance land on either member.
    for (i, id) in ids.iter().enumerate().step_by(3) {
        produce_command(&p, &kafka, &submit(id, &format!("vid-{i:02}"), "tg")).await;
    }
    eventually("every command handled and committed", || {
        all_commands_committed(&kafka)
    })
    .await;
    w1.shutdown().await.unwrap();
    w2.shutdown().await.unwrap();

    let callbacks = read_all(&kafka, &topics.callbacks);
    for id in &ids {
        // Submitted at least once (nothing lost). A second call can only come from a command
        // in flight on a partition revoked by the one rebalance, before its ledger record was
        // seen by the new owner; it carries the same SessionId, which VOD de-duplicates.
        let n = vod.submits_for(id);
        assert!((1..=2).contains(&n), "{id} submitted {n} times");
        let outs = outcomes_for(&callbacks, id);
        assert!(!outs.is_empty(), "no outcome for {id}");
        assert!(outs
            .iter()
            .all(|o| o.json()["EventType"] == "live2vod.TranscodeSubmitted"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_the_vod_call_re_executes_with_the_same_session_id() {
    live2vod::telemetry::init();
    let broker = EmbeddedBroker::start(1).unwrap();
    let kafka = kafka_args(&broker, "wc.");
    let topics = kafka.topics();

    // Like VOD: the first SubmitTranscodeJobs of a SessionId creates the job (and this one
    // never answers: the worker dies waiting); later ones with the same SessionId are
    // recognised and answered with the same task.
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let c2 = calls.clone();
    let app = Router::new().route(
        "/",
        post(move |body: String| {
            let c2 = c2.clone();
            async move {
                let params = decode_query(&body).unwrap_or_default();
                let session = params
                    .iter()
                    .find(|(k, _)| k == "SessionId")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let first = {
                    let mut c = c2.lock().unwrap();
                    c.push(session.clone());
                    c.len() == 1
                };
                if first {
                    std::future::pending::<()>().await;
                }
                format!(
                    r#"{{"RequestId":"r","TranscodeTaskId":"task-{session}","TranscodeJobs":{{"TranscodeJob":[]}}}}"#
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let p = producer::idempotent_producer(&kafka).unwrap();
    produce_command(&p, &kafka, &submit("tc-crash", "vid-crash", "tg")).await;

    // The first worker lives in a runtime of its own, so that it can die at once, mid-call,
    // without any of its shutdown steps.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = worker_config(&kafka, &endpoint);
    cfg.vod.timeout = Duration::from_secs(120);
    let w1 = rt
        .spawn(worker::start(cfg, Health::default()))
        .await
        .unwrap()
        .unwrap();
    eventually("the first worker called VOD", || {
        !calls.lock().unwrap().is_empty()
    })
    .await;
    rt.shutdown_background();
    std::mem::forget(w1);

    let w2 = start_worker(&kafka, &endpoint).await;
    eventually("the next worker finished the command", || {
        all_commands_committed(&kafka)
    })
    .await;
    w2.shutdown().await.unwrap();

    assert_eq!(
        *calls.lock().unwrap(),
        vec!["tc-crash".to_string(), "tc-crash".to_string()],
        "re-executed once, with the command id as SessionId both times"
    );
    let callbacks = read_all(&kafka, &topics.callbacks);
    let outs = outcomes_for(&callbacks, "tc-crash");
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].json()["TranscodeTaskId"], "task-tc-crash");
    let ledger = read_all(&kafka, &topics.ledger);
    assert_eq!(ledger.iter().filter(|r| r.key == "tc-crash").count(), 1);
}
