//! `fold --exactly-once` against a broker without Kafka transactions (tansu, a real broker
//! process, has no EndTxn): the fold must stop with a message that points to the default
//! mode, not hang or fold without the guarantee it was asked for.
mod support;

use std::time::Duration;

use live2vod::domain::Policy;
use live2vod::fold::{run_fold, FoldConfig, FoldError};
use live2vod::http::Health;
use live2vod::kafka::KafkaArgs;
use rdkafka::producer::FutureRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_on_a_broker_without_transactions_fails_with_a_clear_error() {
    let scratch = support::Scratch::new("fold-eos-tansu");
    let port = support::free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let bin = support::tansu_bin();
    // The database path is relative to the process's directory (the scratch directory):
    // tansu reads `sqlite:///abs/path` as a path under its working directory.
    let _tansu = support::Proc::spawn(
        scratch.path(),
        "tansu",
        bin.to_str().expect("utf-8 path"),
        &[
            "broker",
            "--storage-engine",
            "sqlite://tansu.db",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--cluster-id",
            "live2vod-eos-test",
            "--silent",
        ],
        &[],
    );
    let mut listening = false;
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(listening, "tansu did not listen:\n{}", _tansu.log_text());
    let mut kafka = KafkaArgs::for_brokers(format!("127.0.0.1:{port}"));
    kafka.topic_partitions = 2;
    live2vod::kafka::admin::ensure_topics(&kafka)
        .await
        .expect("topics on tansu");
    let producer = live2vod::kafka::producer::idempotent_producer(&kafka).expect("producer");
    for (key, body) in live2vod::bench::corpus::callbacks(1, 3) {
        producer
            .send(
                FutureRecord::to(&kafka.topics().callbacks)
                    .key(&key)
                    .payload(&body),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("callback produced");
    }
    let cfg = FoldConfig {
        kafka: kafka.clone(),
        policy: Policy::parse(live2vod::bench::corpus::POLICY).expect("policy"),
        group_id: "eos-tansu".into(),
        batch_max: 50,
        batch_wait: Duration::from_millis(5),
        dlq_max_ratio: 0.5,
        dlq_window: 1000,
        dlq_min: 100,
        stop_after_records: Some(u64::MAX / 2),
        transactional_id: Some("eos-tansu-0".into()),
        state: None,
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let err = run_fold(cfg, Health::default(), stop_rx)
        .await
        .expect_err("no transactions on tansu");
    let text = err.to_string();
    assert!(
        matches!(err, FoldError::TransactionsUnavailable { .. }),
        "{text}"
    );
    assert!(text.contains("without --exactly-once"), "{text}");
    println!("{text}");
}
