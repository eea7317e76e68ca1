//! The fold's local state store (`--state-dir`, issue 13) on librdkafka's mock cluster: a
//! store kept across runs restores only the tail of the aggregates topic, a deleted one
//! restores from the topic, a store from an older offset is caught up, a corrupted file is
//! detected and rebuilt. Each case ends in the same aggregates as a fold that keeps
//! everything in memory, on the topic and in the store, with a cache so small that almost
//! every aggregate is dropped from memory and loaded back from the store.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use live2vod::domain::Policy;
use live2vod::fold::state::StateConfig;
use live2vod::fold::{run_fold, FoldConfig, FoldStats};
use live2vod::http::Health;
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::read::{read_records, ReadTo};
use live2vod::kafka::KafkaArgs;
use live2vod::store::PartitionStore;

const PARTITIONS: i32 = 3;

fn kafka(broker: &EmbeddedBroker, prefix: &str) -> KafkaArgs {
    let mut k = KafkaArgs::for_brokers(broker.bootstrap());
    k.topic_prefix = prefix.to_string();
    k.topic_partitions = PARTITIONS;
    // Every run joins the group its predecessor left: the mock group coordinator waits about a
    // session timeout before it re-forms a group (45 s by default).
    k.kafka.push(("session.timeout.ms".into(), "6000".into()));
    k.kafka.push(("heartbeat.interval.ms".into(), "500".into()));
    broker
        .create_topics(&k.topics(), PARTITIONS)
        .expect("topics on the mock cluster");
    k
}

fn config(kafka: &KafkaArgs, records: u64, state: Option<&Path>) -> FoldConfig {
    FoldConfig {
        batch_max: 40,
        batch_wait: Duration::from_millis(5),
        stop_after_records: Some(records),
        // 64 KiB for decoded aggregates: a few dozen, so most are evicted after each batch and
        // loaded from the store again.
        state: state.map(|dir| StateConfig {
            dir: dir.to_path_buf(),
            cache_bytes: 96 << 10,
        }),
        ..FoldConfig::new(
            kafka.clone(),
            Policy::parse(live2vod::bench::corpus::POLICY).expect("policy"),
        )
    }
}

async fn fold(cfg: FoldConfig) -> FoldStats {
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::time::timeout(
        Duration::from_secs(120),
        run_fold(cfg, Health::default(), stop_rx),
    )
    .await
    .expect("hang guard: the fold did not reach the end of its records in 120 s")
    .expect("the fold runs to the end of its records")
}

/// Newest snapshot per aggregate key on the aggregates topic, as the API's JSON view.
fn topic_views(kafka: &KafkaArgs) -> BTreeMap<String, serde_json::Value> {
    let parts: Vec<i32> = (0..PARTITIONS).collect();
    let mut newest: BTreeMap<String, (i64, Vec<u8>)> = BTreeMap::new();
    for r in read_records(
        kafka,
        &kafka.topics().aggregates,
        &parts,
        ReadTo::HighWatermark,
    )
    .expect("aggregates readable")
    {
        let key = String::from_utf8(r.key.expect("keyed")).expect("utf-8 key");
        newest.insert(key, (r.offset, r.value.expect("a value")));
    }
    newest
        .into_iter()
        .map(|(k, (_, v))| (k, view(&v)))
        .collect()
}

fn view(snapshot: &[u8]) -> serde_json::Value {
    live2vod::domain::view::snapshot_json(snapshot)
        .expect("snapshot decodes")
        .1
}

/// Everything in the stores under `dir`, as views.
fn store_views(dir: &Path, kafka: &KafkaArgs) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for p in 0..PARTITIONS {
        let (store, _) =
            PartitionStore::open(dir, &kafka.topics().aggregates, p, 1 << 20).expect("store opens");
        for (k, v) in store.entries().expect("store readable") {
            out.insert(k, view(&v));
        }
    }
    out
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("live2vod-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The corpus in three parts (the runs of a case), and the in-memory fold's aggregates of all
/// of it.
struct Case {
    parts: [Vec<(String, Vec<u8>)>; 3],
    expected: BTreeMap<String, serde_json::Value>,
}

async fn case(broker: &EmbeddedBroker, name: &str) -> Case {
    let corpus = live2vod::bench::corpus::callbacks(18, 7);
    let third = corpus.len() / 3;
    let parts = [
        corpus[..third].to_vec(),
        corpus[third..2 * third].to_vec(),
        corpus[2 * third..].to_vec(),
    ];
    // The baseline: all of it, in memory, in three runs like the cases.
    let mem = kafka(broker, &format!("{name}-mem."));
    for part in &parts {
        produce(&mem, part).await;
        fold(config(&mem, part.len() as u64, None)).await;
    }
    let expected = topic_views(&mem);
    assert!(
        expected.len() > 50,
        "a corpus worth checking: {}",
        expected.len()
    );
    Case { parts, expected }
}

async fn produce(kafka: &KafkaArgs, records: &[(String, Vec<u8>)]) {
    live2vod::bench::corpus::produce(kafka, &kafka.topics().callbacks, records)
        .await
        .expect("corpus produced");
}

fn assert_same(case: &Case, kafka: &KafkaArgs, dir: &Path) {
    let on_topic = topic_views(kafka);
    assert_eq!(
        on_topic, case.expected,
        "the fold with a state store reached other aggregates than the in-memory fold"
    );
    assert_eq!(
        store_views(dir, kafka),
        on_topic,
        "the store does not hold the topic's newest snapshot of every aggregate"
    );
}

fn changelog_end(kafka: &KafkaArgs) -> i64 {
    (0..PARTITIONS)
        .map(|p| {
            live2vod::kafka::read::watermarks(kafka, &kafka.topics().aggregates, p)
                .expect("watermarks")
                .1
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_store_restores_only_what_it_does_not_reflect_and_folds_to_the_same_state() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let case = case(&broker, "kept").await;
    let k = kafka(&broker, "kept.");
    let dir = scratch("kept");

    produce(&k, &case.parts[0]).await;
    let first = fold(config(&k, case.parts[0].len() as u64, Some(&dir))).await;
    assert_eq!(first.restored_records, 0, "nothing to restore at first");
    assert!(first.snapshots > 0);

    // A copy of the store as the first run left it, for the third run.
    let old = scratch("kept-old");
    copy_dir(&dir, &old);
    let after_first = changelog_end(&k);

    // A second run with the store kept: it reflects everything the first wrote.
    produce(&k, &case.parts[1]).await;
    let second = fold(config(&k, case.parts[1].len() as u64, Some(&dir))).await;
    assert_eq!(
        second.restored_records, 0,
        "a kept store that reflects the whole topic reads nothing back"
    );
    assert_eq!(second.stores_rebuilt, 0);
    let after_second = changelog_end(&k);
    assert!(after_second > after_first);

    // The third run starts from the older copy, behind the topic by what the second run
    // wrote: its restore reads exactly that tail.
    produce(&k, &case.parts[2]).await;
    let third = fold(config(&k, case.parts[2].len() as u64, Some(&old))).await;
    assert_eq!(
        third.restored_records as i64,
        after_second - after_first,
        "a store from an older offset reads the records after it, no more"
    );
    assert_eq!(third.stores_rebuilt, 0);
    assert_same(&case, &k, &old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_store_restores_from_the_topic_and_folds_to_the_same_state() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let case = case(&broker, "deleted").await;
    let k = kafka(&broker, "deleted.");
    let dir = scratch("deleted");
    produce(&k, &case.parts[0]).await;
    fold(config(&k, case.parts[0].len() as u64, Some(&dir))).await;
    std::fs::remove_dir_all(&dir).expect("store deleted");
    let whole = changelog_end(&k);
    produce(&k, &case.parts[1]).await;
    let second = fold(config(&k, case.parts[1].len() as u64, Some(&dir))).await;
    assert_eq!(
        second.restored_records as i64, whole,
        "a deleted store is rebuilt from the whole topic"
    );
    produce(&k, &case.parts[2]).await;
    fold(config(&k, case.parts[2].len() as u64, Some(&dir))).await;
    assert_same(&case, &k, &dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_store_file_is_detected_rebuilt_and_never_trusted() {
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let case = case(&broker, "corrupt").await;
    let k = kafka(&broker, "corrupt.");
    let dir = scratch("corrupt");
    produce(&k, &case.parts[0]).await;
    fold(config(&k, case.parts[0].len() as u64, Some(&dir))).await;
    produce(&k, &case.parts[1]).await;
    fold(config(&k, case.parts[1].len() as u64, Some(&dir))).await;

    // Alter a stored key in every partition's file, wherever its bytes are (the live leaf
    // page and any older copy of it the file still has).
    let topic = k.topics().aggregates;
    let views = store_views(&dir, &k);
    for p in 0..PARTITIONS {
        let path = live2vod::store::path_of(&dir, &topic, p);
        let mut bytes = std::fs::read(&path).expect("store file");
        let key = views
            .keys()
            .find(|key| find(&bytes, key.as_bytes()).is_some())
            .expect("a stored key in the file");
        let mut altered = 0;
        while let Some(at) = find(&bytes, key.as_bytes()) {
            bytes[at + 2] ^= 0x5a;
            altered += 1;
        }
        assert!(altered > 0);
        std::fs::write(&path, &bytes).expect("store file written");
    }
    let whole = changelog_end(&k);
    produce(&k, &case.parts[2]).await;
    let third = fold(config(&k, case.parts[2].len() as u64, Some(&dir))).await;
    assert_eq!(
        third.stores_rebuilt, PARTITIONS as u64,
        "every altered store is detected and rebuilt"
    );
    assert!(
        third.restored_records as i64 >= whole,
        "a rebuilt store restores from the whole topic"
    );
    assert_same(&case, &k, &dir);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy target");
    for e in std::fs::read_dir(from).expect("store dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("store file copied");
    }
}
