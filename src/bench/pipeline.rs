//! `live2vod bench pipeline`: end-to-end fold throughput (callbacks topic -> snapshots and
//! commands durable, offsets committed) next to a plain rdkafka consumer reading the same
//! topic in the same run, on the embedded mock cluster.
//!
//! The mock cluster keeps only the newest ~5 MiB per partition: the corpus is spread over
//! enough partitions to fit (checked before measuring).
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use serde_json::json;

use crate::domain::policy::Policy;
use crate::fold::{run_fold, FoldConfig};
use crate::http::Health;
use crate::kafka::mock::EmbeddedBroker;
use crate::kafka::KafkaArgs;

/// Options of `live2vod bench pipeline`.
#[derive(ClapArgs, Debug, Clone)]
pub struct PipelineArgs {
    /// Live sessions in the generated corpus (about 46 callbacks, ~33 KB, each).
    #[arg(long, default_value_t = 1500)]
    pub sessions: usize,
    /// Partitions of the topics (more partitions keep each under the mock cluster's limit).
    #[arg(long, default_value_t = 32)]
    pub partitions: i32,
    /// Seed of the corpus.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

const MOCK_PARTITION_LIMIT: usize = 5 * 1024 * 1024;

/// Refuses corpora that would come close to the mock cluster's per-partition retention (it
/// would silently drop the oldest records and the figures would lie).
pub fn check_fits(records: usize, bytes: usize, partitions: i32) -> anyhow::Result<()> {
    let per_partition = bytes / partitions.max(1) as usize;
    if per_partition * 2 > MOCK_PARTITION_LIMIT {
        anyhow::bail!(
            "{records} callbacks ({bytes} bytes) over {partitions} partitions is ~{per_partition} bytes a partition, too close to the mock cluster's ~5 MiB retention: raise --partitions or lower --sessions"
        );
    }
    Ok(())
}

pub async fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let corpus = super::corpus::callbacks(args.sessions, args.seed);
    let bytes: usize = corpus.iter().map(|(k, v)| k.len() + v.len()).sum();
    check_fits(corpus.len(), bytes, args.partitions)?;
    let broker = EmbeddedBroker::start(1)?;
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = args.partitions;
    broker.create_topics(&kafka.topics(), args.partitions)?;
    let topics = kafka.topics();
    println!(
        "corpus: {} callbacks, {} bytes, {} partitions (mock cluster, in process)",
        corpus.len(),
        bytes,
        args.partitions
    );

    super::corpus::produce(&kafka, &topics.callbacks, &corpus).await?;
    let n = corpus.len() as u64;

    // Plain consumer: subscribe, read every record, touch the payload.
    let mut cc = kafka.client_config();
    cc.set("group.id", "bench-plain")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let plain: StreamConsumer = cc.create()?;
    plain.subscribe(&[&topics.callbacks])?;
    let started = Instant::now();
    let mut seen = 0u64;
    let mut checksum = 0usize;
    while seen < n {
        let m = tokio::time::timeout(Duration::from_secs(30), plain.recv())
            .await
            .map_err(|_| anyhow::anyhow!("plain consumer stalled at {seen}/{n}"))??;
        checksum = checksum.wrapping_add(m.payload().map_or(0, <[u8]>::len));
        seen += 1;
    }
    let plain_s = started.elapsed().as_secs_f64();
    drop(plain);
    let plain_rate = n as f64 / plain_s;
    println!(
        "plain consumer: {n} records in {plain_s:.2}s = {plain_rate:.0}/s (checksum {checksum})"
    );

    // The fold, on the same topic, from the beginning, until every record is committed.
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let policy =
        Policy::parse(super::corpus::POLICY).map_err(|e| anyhow::anyhow!("bench policy: {e}"))?;
    let cfg = FoldConfig {
        group_id: "bench-fold".into(),
        stop_after_records: Some(n),
        ..FoldConfig::new(kafka.clone(), policy)
    };
    let started = Instant::now();
    let stats = run_fold(cfg, Health::default(), stop_rx).await?;
    let fold_s = started.elapsed().as_secs_f64();
    // Conservative: only the corpus counts, not the stream facts the fold derived and re-read.
    let fold_rate = n as f64 / fold_s;
    println!(
        "fold: {n} callbacks (+{} derived stream facts re-read: {} records) in {fold_s:.2}s = {fold_rate:.0} callbacks/s ({} commands, {} derived stream facts, {} snapshots, {} batches, {} dead-lettered)",
        stats.derived, stats.records, stats.commands, stats.derived, stats.snapshots, stats.batches, stats.dead_lettered
    );
    let ratio = fold_rate / plain_rate;
    println!(
        "{}",
        json!({"fold_events_per_s": fold_rate.round(), "plain_consumer_events_per_s": plain_rate.round(), "ratio": (ratio * 1000.0).round() / 1000.0})
    );
    Ok(())
}
