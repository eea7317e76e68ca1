//! Topic administration against the mock cluster: existing topics accepted, co-partitioning
//! enforced, `--no-create-topics` honoured.
use live2vod::kafka::admin::{create_topics, ensure_topics, AdminError, TopicOutcome};
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::{KafkaArgs, Topics};

fn args(broker: &EmbeddedBroker, prefix: &str) -> KafkaArgs {
    let mut a = KafkaArgs::for_brokers(broker.bootstrap());
    a.topic_prefix = prefix.into();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_topics_are_reported_and_co_partitioning_is_checked() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");

    broker
        .create_topics(&Topics::with_prefix("a."), 3)
        .expect("topics");
    ensure_topics(&args(&broker, "a."))
        .await
        .expect("all there");
    let report = create_topics(&args(&broker, "a.")).await.expect("report");
    assert_eq!(
        report.len(),
        6,
        "callbacks, commands, aggregates, dlq, worker-ledger, reconcile-positions"
    );
    assert!(report.iter().all(|(_, o)| *o == TopicOutcome::Existing));

    let b = Topics::with_prefix("b.");
    for (name, partitions) in [
        (&b.callbacks, 2),
        (&b.aggregates, 3),
        (&b.commands, 2),
        (&b.dlq, 1),
        (&b.ledger, 1),
        (&b.reconcile_positions, 1),
    ] {
        let name = name.clone();
        broker
            .control(move |c| c.create_topic(&name, partitions, 1))
            .expect("control")
            .expect("topic");
    }
    match ensure_topics(&args(&broker, "b.")).await {
        Err(AdminError::NotCoPartitioned {
            callbacks_n: 2,
            aggregates_n: 3,
            ..
        }) => {}
        other => panic!("expected a co-partitioning refusal, got {other:?}"),
    }

    let mut c = args(&broker, "c.");
    c.no_create_topics = true;
    match ensure_topics(&c).await {
        Err(AdminError::Missing(t)) => assert_eq!(t, "c.callbacks"),
        other => panic!("expected a missing-topic refusal, got {other:?}"),
    }
}
