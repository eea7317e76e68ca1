//! `fold --exactly-once` on librdkafka's in-process mock cluster: each batch's commands,
//! stream facts, snapshots and input offsets go out in one Kafka transaction.
//!
//! The mock cluster implements the transactional protocol (InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn) but does not filter aborted transactions for
//! read_committed consumers, so these tests check a run without aborts: what it committed, not
//! what an abort hides (that needs a real broker). Its TxnOffsetCommit handler also answers
//! without storing the offsets (librdkafka `rdkafka_mock_handlers.c`), so the group's
//! committed offsets are checked on what the transactions carried, and read back from the
//! group only where the broker stored them.
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use live2vod::domain::Policy;
use live2vod::fold::{run_fold, FoldConfig, FoldStats};
use live2vod::http::Health;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::read::{read_records, ReadTo};
use live2vod::kafka::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const PARTITIONS: i32 = 4;

fn kafka(broker: &EmbeddedBroker, prefix: &str) -> KafkaArgs {
    let mut k = KafkaArgs::for_brokers(broker.bootstrap());
    k.topic_prefix = prefix.to_string();
    k.topic_partitions = PARTITIONS;
    broker
        .create_topics(&k.topics(), PARTITIONS)
        .expect("topics on the mock cluster");
    k
}

async fn produce_corpus(kafka: &KafkaArgs, corpus: &[(String, Vec<u8>)]) {
    let producer = live2vod::kafka::producer::idempotent_producer(kafka).expect("producer");
    let topic = kafka.topics().callbacks;
    let sends = corpus.iter().map(|(key, body)| {
        producer.send(
            FutureRecord::to(&topic).key(key).payload(body),
            Duration::from_secs(30),
        )
    });
    futures::future::try_join_all(sends)
        .await
        .map_err(|(e, _)| e)
        .expect("corpus produced");
}

fn fold_config(kafka: &KafkaArgs, group: &str, n: u64, txn: Option<&str>) -> FoldConfig {
    FoldConfig {
        kafka: kafka.clone(),
        policy: Policy::parse(live2vod::bench::corpus::POLICY).expect("policy"),
        group_id: group.into(),
        // Small batches: many transactions per run.
        batch_max: 50,
        batch_wait: Duration::from_millis(5),
        dlq_max_ratio: 0.5,
        dlq_window: 1000,
        dlq_min: 100,
        stop_after_records: Some(n),
        transactional_id: txn.map(str::to_string),
        state: None,
    }
}

async fn fold(cfg: FoldConfig) -> FoldStats {
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    run_fold(cfg, Health::default(), stop_rx)
        .await
        .expect("fold runs to the end of the corpus")
}

/// One record: partition, offset, key, value, headers.
type Rec = (i32, i64, String, Vec<u8>, HashMap<String, String>);

/// Every committed record of `topic`, to each partition's end (partition EOF, which
/// transaction markers do not hide).
fn read_all(brokers: &str, topic: &str) -> Vec<Rec> {
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    read_records(
        &KafkaArgs::for_brokers(brokers),
        topic,
        &partitions,
        ReadTo::CommittedEnd,
    )
    .unwrap_or_else(|e| panic!("reading {topic}: {e}"))
    .into_iter()
    .map(|r| {
        let headers = r
            .headers
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        (
            r.partition,
            r.offset,
            String::from_utf8_lossy(&r.key.unwrap_or_default()).into_owned(),
            r.value.unwrap_or_default(),
            headers,
        )
    })
    .collect()
}

/// Newest snapshot per aggregate key, as the API's JSON view.
fn latest_views(recs: &[Rec]) -> BTreeMap<String, serde_json::Value> {
    let mut newest: BTreeMap<String, (i64, &[u8])> = BTreeMap::new();
    for (_, off, key, value, _) in recs {
        let e = newest.entry(key.clone()).or_insert((*off, value));
        if *off >= e.0 {
            *e = (*off, value);
        }
    }
    newest
        .into_iter()
        .map(|(k, (_, v))| {
            let (_, json) = live2vod::domain::view::snapshot_json(v).expect("snapshot decodes");
            (k, json)
        })
        .collect()
}

fn command_ids(recs: &[Rec]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for (_, _, _, _, h) in recs {
        let id = h
            .get("live2vod-command-id")
            .expect("every command names its id")
            .clone();
        *ids.entry(id).or_insert(0) += 1;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_fold_commits_each_command_once_and_the_same_aggregates_as_the_default_mode() {
    let broker = EmbeddedBroker::start(3).expect("mock cluster");
    let corpus = live2vod::bench::corpus::callbacks(12, 42);
    let n = corpus.len() as u64;

    // The transactional fold.
    let eos = kafka(&broker, "eos.");
    produce_corpus(&eos, &corpus).await;
    let stats = fold(fold_config(&eos, "eos-fold", n, Some("eos-test-fold-0"))).await;
    assert!(stats.batches > 1, "several transactions: {stats:?}");
    assert_eq!(stats.aborted, 0, "{stats:?}");
    assert!(stats.commands > 0, "the corpus causes commands: {stats:?}");

    // The default fold of the same corpus, on topics of its own.
    let plain = kafka(&broker, "plain.");
    produce_corpus(&plain, &corpus).await;
    let plain_stats = fold(fold_config(&plain, "plain-fold", n, None)).await;

    let t = eos.topics();
    let commands = read_all(broker.bootstrap(), &t.commands);
    let ids = command_ids(&commands);
    let repeated: Vec<_> = ids.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "commands written more than once: {repeated:?}"
    );
    assert_eq!(commands.len() as u64, stats.commands);
    let plain_ids = command_ids(&read_all(broker.bootstrap(), &plain.topics().commands));
    assert_eq!(
        ids.keys().collect::<Vec<_>>(),
        plain_ids.keys().collect::<Vec<_>>(),
        "both modes emit the same commands"
    );

    let aggregates = read_all(broker.bootstrap(), &t.aggregates);
    assert_eq!(aggregates.len() as u64, stats.snapshots);
    let views = latest_views(&aggregates);
    let plain_views = latest_views(&read_all(broker.bootstrap(), &plain.topics().aggregates));
    assert!(!views.is_empty());
    assert_eq!(views, plain_views, "both modes fold to the same aggregates");
    assert_eq!(stats.derived, plain_stats.derived);

    // The offsets sent with the transactions reach the last record of every input partition,
    // corpus and derived stream facts alike.
    let callbacks = read_all(broker.bootstrap(), &t.callbacks);
    assert_eq!(callbacks.len() as u64, n + stats.derived);
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (p, off, ..) in &callbacks {
        let e = ends.entry(*p).or_insert(0);
        *e = (*e).max(off + 1);
    }
    assert_eq!(
        stats.offsets,
        ends.iter()
            .map(|(p, o)| (*p, *o))
            .collect::<BTreeMap<_, _>>(),
        "offsets committed with the transactions"
    );
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "eos-fold")
        .create()
        .expect("group reader");
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition(&t.callbacks, *p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("committed offsets");
    for e in committed.elements() {
        if e.offset() == Offset::Invalid {
            continue; // the mock cluster did not store the transactional commit
        }
        assert_eq!(
            e.offset(),
            Offset::Offset(ends[&e.partition()]),
            "committed offset of partition {}",
            e.partition()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_fold_restores_from_transactional_snapshots_and_emits_nothing_again() {
    let broker = EmbeddedBroker::start(3).expect("mock cluster");
    let corpus = live2vod::bench::corpus::callbacks(6, 7);
    let n = corpus.len() as u64;
    let eos = kafka(&broker, "again.");
    produce_corpus(&eos, &corpus).await;
    let first = fold(fold_config(&eos, "again-fold", n, Some("again-fold-0"))).await;
    assert!(first.commands > 0 && first.snapshots > 0, "{first:?}");

    // A new group re-reads the whole input (as after lost offsets). Every partition is
    // restored from snapshots written inside transactions (the restore must end at the end
    // of each partition, transaction markers included), and every record is recognised as
    // already applied: no command, fact or snapshot is written again.
    let second = fold(fold_config(
        &eos,
        "again-fold-2",
        n + first.derived,
        Some("again-fold-0"),
    ))
    .await;
    assert_eq!(second.records, n + first.derived, "{second:?}");
    assert_eq!(second.already_applied, second.records, "{second:?}");
    assert_eq!(
        (second.commands, second.derived, second.snapshots),
        (0, 0, 0),
        "{second:?}"
    );
    let t = eos.topics();
    assert_eq!(
        read_all(broker.bootstrap(), &t.commands).len() as u64,
        first.commands
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_batch_is_rewound_and_folded_again() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let broker = EmbeddedBroker::start(3).expect("mock cluster");
    let corpus = live2vod::bench::corpus::callbacks(6, 11);
    let n = corpus.len() as u64;
    let plain = kafka(&broker, "ref.");
    produce_corpus(&plain, &corpus).await;
    fold(fold_config(&plain, "ref-fold", n, None)).await;

    let eos = kafka(&broker, "abort.");
    produce_corpus(&eos, &corpus).await;
    // The first transaction cannot add its offsets (an abortable error): the fold aborts it,
    // rewinds its partitions, restores them and folds them again.
    broker
        .control(|c| {
            c.request_errors(
                RDKafkaApiKey::AddOffsetsToTxn,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
            )
        })
        .expect("error injected");
    let stats = fold(fold_config(&eos, "abort-fold", n, Some("abort-fold-0"))).await;
    assert!(
        stats.aborted >= 1,
        "the injected error aborted a batch: {stats:?}"
    );
    // Counters of the aborted batch were dropped with it: each record counts once.
    assert_eq!(stats.records, n + stats.derived, "{stats:?}");
    // The mock cluster shows aborted records to read_committed readers (and to the restore),
    // so only the newest state is compared here, not the count of commands.
    let views = latest_views(&read_all(broker.bootstrap(), &eos.topics().aggregates));
    let plain_views = latest_views(&read_all(broker.bootstrap(), &plain.topics().aggregates));
    assert_eq!(views, plain_views);
}
