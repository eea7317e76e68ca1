//! The api against librdkafka's in-process mock cluster: aggregates in, JSON out; manual
//! transcode requests become events on the callbacks topic.
use std::time::{Duration, Instant};

use live2vod::api::{self, ApiHandle, Config};
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};

fn kafka(broker: &EmbeddedBroker) -> KafkaArgs {
    let mut k = KafkaArgs::for_brokers(broker.bootstrap());
    k.topic_partitions = 2;
    broker
        .create_topics(&k.topics(), k.topic_partitions)
        .expect("topics on the mock cluster");
    k
}

async fn put(producer: &FutureProducer, key: &str, value: Option<&Value>) {
    let bytes = value.map(|v| v.to_string().into_bytes());
    let mut record = FutureRecord::<str, [u8]>::to("live2vod.aggregates").key(key);
    if let Some(b) = &bytes {
        record = record.payload(b.as_slice());
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("aggregate produced");
}

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.expect("api answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, body)
}

async fn post(url: &str, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("api answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, body)
}

fn video(id: &str, status: &str) -> Value {
    json!({"video_id": id, "status": status, "renditions": [], "events": 1, "duplicates": 0})
}

async fn start_api(kafka: KafkaArgs) -> ApiHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    // These tests exercise transport and store with JSON values; decoding real protobuf
    // snapshots is covered by `serves_domain_snapshots_as_the_contract_json`.
    let mut cfg = Config::new(kafka);
    cfg.decoder = live2vod::api::store::json_decoder();
    api::start(cfg, listener).await.expect("api starts")
}

/// Payload and headers of one record.
type Record = (Vec<u8>, Vec<(String, String)>);

/// Callbacks-topic records keyed `key`, reading everything up to the high watermarks at the
/// time of the call (every record acknowledged before). `patience` only guards against
/// hanging; it is not a timing assertion.
fn callbacks_for(brokers: &str, key: &str, patience: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "api-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let topic = "live2vod.callbacks";
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut pending = std::collections::HashMap::new();
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
            if m.key() == Some(key.as_bytes()) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((m.payload().unwrap_or_default().to_vec(), headers));
            }
        }
    }
    assert!(
        pending.is_empty(),
        "callbacks topic not read to its end: {pending:?}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_latest_aggregates_and_accepts_manual_transcodes() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let kafka = kafka(&broker);
    let producer: FutureProducer = kafka.client_config().create().expect("producer");
    let stream = json!({"domain": "live.example.com", "app": "app", "stream": "s1",
                        "sessions": [{"segments": ["v1"], "composed_video_id": null}]});
    put(&producer, "v1", Some(&video("v1", "recorded"))).await;
    put(&producer, "v1", Some(&video("v1", "ready"))).await;
    put(&producer, "v2", Some(&video("v2", "recorded"))).await;
    put(&producer, "v2", None).await; // tombstone: v2 is gone
    put(&producer, "stream:live.example.com/app/s1", Some(&stream)).await;

    let api = start_api(kafka).await;
    api.caught_up().await;
    let base = api.base_url();

    assert_eq!(
        get(&format!("{base}/v1/videos/v1")).await,
        (200, video("v1", "ready"))
    );
    assert_eq!(
        get(&format!("{base}/v1/videos/v2")).await,
        (404, json!({"error": "unknown video"}))
    );
    assert_eq!(
        get(&format!("{base}/v1/videos/nope")).await,
        (404, json!({"error": "unknown video"}))
    );
    assert_eq!(
        get(&format!("{base}/v1/streams/live.example.com/app/s1")).await,
        (200, stream)
    );
    assert_eq!(
        get(&format!("{base}/v1/streams/live.example.com/app/s2"))
            .await
            .0,
        404
    );
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);

    // The api keeps consuming after it caught up.
    put(&producer, "v3", Some(&video("v3", "transcoding"))).await;
    let mut seen = (0, Value::Null);
    for _ in 0..100 {
        seen = get(&format!("{base}/v1/videos/v3")).await;
        if seen.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, (200, video("v3", "transcoding")));

    // Manual transcode.
    let (status, answer) = post(
        &format!("{base}/v1/videos/v1/transcode"),
        r#"{"template_group_id": "tg-manual", "priority": "5"}"#,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer["command_id"],
        json!(live2vod::api::command::transcode_command_id(
            "v1",
            "tg-manual"
        ))
    );
    let request_id = answer["request_id"]
        .as_str()
        .expect("request_id")
        .to_string();

    for (body, expected) in [
        ("{", 400),
        (r#"["tg"]"#, 400),
        (r#"{"template_group_id": ""}"#, 400),
        (r#"{"template_group_id": "tg", "priority": 11}"#, 400),
        (r#"{"group": "tg"}"#, 400),
    ] {
        let (status, answer) = post(&format!("{base}/v1/videos/v1/transcode"), body).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    assert_eq!(
        post(
            &format!("{base}/v1/videos/unknown/transcode"),
            r#"{"template_group_id": "tg"}"#
        )
        .await,
        (404, json!({"error": "unknown video"}))
    );

    let records = callbacks_for(broker.bootstrap(), "v1", Duration::from_secs(30));
    assert_eq!(
        records.len(),
        1,
        "exactly the accepted request is on the callbacks topic"
    );
    let (payload, headers) = &records[0];
    let event: Value = serde_json::from_slice(payload).expect("event is JSON");
    assert_eq!(event["EventType"], "live2vod.TranscodeRequested");
    assert_eq!(event["VideoId"], "v1");
    assert_eq!(event["TemplateGroupId"], "tg-manual");
    assert_eq!(event["RequestId"], json!(request_id));
    assert_eq!(event["Priority"], "5");
    let time = event["EventTime"].as_str().expect("EventTime");
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "RFC3339 UTC: {time}"
    );
    assert!(headers
        .iter()
        .any(|(k, v)| k == "live2vod-event-type" && v == "live2vod.TranscodeRequested"));
    api.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn can_read_another_aggregates_topic() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let kafka = kafka(&broker);
    broker
        .control(|c| c.create_topic("rebuilt.aggregates", 2, 1))
        .expect("control")
        .expect("topic");
    let producer: FutureProducer = kafka.client_config().create().expect("producer");
    producer
        .send(
            FutureRecord::to("rebuilt.aggregates")
                .key("v9")
                .payload(&video("v9", "ready").to_string()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produced");
    put(&producer, "v8", Some(&video("v8", "ready"))).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut cfg = Config::new(kafka);
    cfg.decoder = live2vod::api::store::json_decoder();
    cfg.aggregates_topic = Some("rebuilt.aggregates".into());
    let api = api::start(cfg, listener).await.expect("api starts");
    api.caught_up().await;
    let base = api.base_url();
    assert_eq!(
        get(&format!("{base}/v1/videos/v9")).await,
        (200, video("v9", "ready"))
    );
    assert_eq!(get(&format!("{base}/v1/videos/v8")).await.0, 404);
    api.shutdown().await.expect("clean shutdown");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut cfg = Config::new(KafkaArgs::for_brokers(broker.bootstrap()));
    cfg.aggregates_topic = Some("no.such.topic".into());
    let err = api::start(cfg, listener)
        .await
        .err()
        .expect("missing topic refused");
    assert!(err.to_string().contains("no.such.topic"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_domain_snapshots_as_the_contract_json() {
    use live2vod::domain::{Engine, InputPos, Policy};
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let kafka = kafka(&broker);
    let producer: FutureProducer = kafka.client_config().create().expect("producer");
    let mut engine = Engine::new(Policy::default());
    let body = br#"{"EventTime":"2017-12-08T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"43q9fjdhef","Status":"success","StreamName":"s1","DomainName":"live.example.com","AppName":"app","RecordStartTime":"2017-12-08T07:40:56Z","RecordEndTime":"2017-12-08T09:26:17Z"}"#;
    let applied = engine
        .apply(
            "43q9fjdhef",
            body,
            InputPos {
                partition: 0,
                offset: 0,
            },
        )
        .expect("folds");
    assert!(applied.dirty);
    let snapshot = engine.snapshot_bytes("43q9fjdhef").expect("a snapshot");
    producer
        .send(
            FutureRecord::<str, [u8]>::to("live2vod.aggregates")
                .key("43q9fjdhef")
                .payload(snapshot.as_slice()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produced");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = api::start(Config::new(kafka), listener)
        .await
        .expect("api starts");
    api.caught_up().await;
    let (status, v) = get(&format!("{}/v1/videos/43q9fjdhef", api.base_url())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["video_id"], json!("43q9fjdhef"));
    assert_eq!(v["status"], json!("recorded"));
    assert_eq!(v["origin"]["kind"], json!("live_segment"));
    assert_eq!(v["origin"]["stream"], json!("s1"));
    assert_eq!(v["origin"]["record_end"], json!("2017-12-08T09:26:17Z"));
    api.shutdown().await.expect("clean shutdown");
}
