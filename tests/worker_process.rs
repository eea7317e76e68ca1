//! `live2vod worker` as a process (the built binary) on the embedded mock cluster hosted by
//! this test: flags and `LIVE2VOD_*` env vars, `/readyz` and `/metrics`, SIGTERM with a clean
//! exit and committed offsets.
mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::{producer, KafkaArgs};
use live2vod::proto::{command, Command, SubmitTranscode};
use live2vod::vod::sign::{decode_query, verify};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use support::{bin, free_port, wait_http_ok, Proc, Scratch};

const SECRET: &str = "process-test-secret";

/// Minimal blocking HTTP/1.0 GET returning the body.
fn http_get_body(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf.split_once("\r\n\r\n")?.1.to_string())
}

fn committed_everything(kafka: &KafkaArgs, group: &str, partitions: i32) -> bool {
    let topic = kafka.topics().commands;
    let mut cfg = kafka.client_config();
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false");
    let Ok(c) = cfg.create::<BaseConsumer>() else {
        return false;
    };
    let mut tpl = TopicPartitionList::new();
    let mut highs = HashMap::new();
    for p in 0..partitions {
        let Ok((_, high)) = c.fetch_watermarks(&topic, p, Duration::from_secs(5)) else {
            return false;
        };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_binary_serves_ops_endpoints_executes_and_exits_cleanly_on_sigterm() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_prefix = "wp.".into();
    broker.create_topics(&kafka.topics(), 2).unwrap();

    // VOD stand-in: counts signed SubmitTranscodeJobs per SessionId.
    let submits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let s2 = submits.clone();
    let app = Router::new().route(
        "/",
        post(move |body: String| {
            let s2 = s2.clone();
            async move {
                let params = decode_query(&body).unwrap_or_default();
                if !verify(SECRET, "POST", &params) {
                    return r#"{"Code":"SignatureDoesNotMatch","Message":"bad","RequestId":"r"}"#
                        .to_string();
                }
                let session = params
                    .iter()
                    .find(|(k, _)| k == "SessionId")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                *s2.lock().unwrap().entry(session).or_default() += 1;
                r#"{"RequestId":"r","TranscodeTaskId":"task","TranscodeJobs":{"TranscodeJob":[{"JobId":"j"}]}}"#
                    .to_string()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vod_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let p = producer::idempotent_producer(&kafka).unwrap();
    let cmd = Command {
        command_id: "tc-proc".into(),
        video_id: "vid-proc".into(),
        cause: "test".into(),
        cause_time_ms: 0,
        kind: Some(command::Kind::SubmitTranscode(SubmitTranscode {
            template_group_id: "tg".into(),
            priority: String::new(),
        })),
    };
    p.send(
        FutureRecord::to(&kafka.topics().commands)
            .key("vid-proc")
            .payload(&cmd.encode_to_vec()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();

    let dir = Scratch::new("worker-process");
    let ops = format!("127.0.0.1:{}", free_port());
    let mut worker = Proc::spawn(
        dir.path(),
        "worker",
        bin(),
        &[
            "worker",
            "--vod-endpoint",
            &vod_url,
            "--metrics-listen",
            &ops,
            "--group-id",
            "wp-group",
            "--kafka",
            "session.timeout.ms=6000",
        ],
        &[
            ("LIVE2VOD_BROKERS", broker.bootstrap()),
            ("LIVE2VOD_TOPIC_PREFIX", "wp."),
            ("LIVE2VOD_TOPIC_PARTITIONS", "2"),
            ("LIVE2VOD_ACCESS_KEY_ID", "process-test-key"),
            ("LIVE2VOD_ACCESS_KEY_SECRET", SECRET),
        ],
    );
    let ready = format!("http://{ops}/readyz");
    tokio::task::block_in_place(|| wait_http_ok(&ready, Duration::from_secs(60), &worker));

    let started = Instant::now();
    loop {
        let done = tokio::task::block_in_place(|| committed_everything(&kafka, "wp-group", 2));
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "worker never committed the command; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(submits.lock().unwrap().get("tc-proc"), Some(&1));

    let metrics = tokio::task::block_in_place(|| http_get_body(&ops, "/metrics")).unwrap();
    assert!(
        metrics.contains(
            r#"live2vod_commands_executed_total{kind="submit_transcode",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"live2vod_vod_api_calls_total{action="SubmitTranscodeJobs",code="ok"} 1"#),
        "{metrics}"
    );

    let exited = tokio::task::block_in_place(|| worker.term(Duration::from_secs(30)));
    assert!(exited, "no exit after SIGTERM; log:\n{}", worker.log_text());
    let status = worker.child.wait().unwrap();
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        worker.log_text()
    );
    let log = worker.log_text();
    assert!(!log.contains(SECRET), "the secret leaked into the log");
    assert!(log.contains("worker stopped"), "{log}");
}
