//! `live2vod bench replay`: replay throughput (read the callbacks topic, fold in memory, write
//! the aggregates to a new topic) next to a plain rdkafka consumer reading the same topic in
//! the same run, on the embedded mock cluster (corpus spread over partitions to stay under its
//! ~5 MiB per partition retention).
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use crate::domain::Policy;
use crate::kafka::mock::EmbeddedBroker;
use crate::kafka::KafkaArgs;
use crate::replay::{run_replay, ReplayConfig, Start};

/// Options of `live2vod bench replay`.
#[derive(ClapArgs, Debug, Clone)]
pub struct ReplayArgs {
    /// Live sessions in the generated corpus (about 46 callbacks, ~33 KB, each).
    #[arg(long, default_value_t = 1500)]
    pub sessions: usize,
    /// Partitions of the topics.
    #[arg(long, default_value_t = 32)]
    pub partitions: i32,
    /// Seed of the corpus.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let corpus = super::corpus::callbacks(args.sessions, args.seed);
    let bytes: usize = corpus.iter().map(|(k, v)| k.len() + v.len()).sum();
    super::pipeline::check_fits(corpus.len(), bytes, args.partitions)?;
    let broker = EmbeddedBroker::start(1)?;
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = args.partitions;
    broker.create_topics(&kafka.topics(), args.partitions)?;
    let to_topic = "bench.replayed.aggregates".to_string();
    let (t, n) = (to_topic.clone(), args.partitions);
    broker
        .control(move |c| c.create_topic(&t, n, 1))
        .ok_or_else(|| anyhow::anyhow!("mock cluster control channel closed"))??;
    let topics = kafka.topics();
    println!(
        "corpus: {} callbacks, {} bytes, {} partitions (mock cluster, in process)",
        corpus.len(),
        bytes,
        args.partitions
    );
    super::corpus::produce(&kafka, &topics.callbacks, &corpus).await?;
    let n = corpus.len() as u64;

    // Plain consumer, same style as replay (assign all partitions from the beginning).
    let (k2, topic) = (kafka.clone(), topics.callbacks.clone());
    let plain_s =
        tokio::task::spawn_blocking(move || plain_read(&k2, &topic, args.partitions, n)).await??;
    let plain_rate = n as f64 / plain_s;
    println!("plain consumer: {n} records in {plain_s:.2}s = {plain_rate:.0}/s");

    let cfg = ReplayConfig {
        kafka: kafka.clone(),
        policy: Policy::parse(super::corpus::POLICY)?,
        start: Start::Beginning,
        to_topic: Some(to_topic),
        diff: false,
    };
    let started = Instant::now();
    let report = run_replay(cfg, |_, _, _| {}).await?;
    let replay_s = started.elapsed().as_secs_f64();
    let replay_rate = report.events as f64 / replay_s;
    println!(
        "replay: {} events into {} aggregates ({} written to the new topic) in {replay_s:.2}s = {replay_rate:.0}/s; {} live stream facts skipped, {} re-derived",
        report.events, report.aggregates, report.written, report.skipped_live_facts, report.derived_facts
    );
    let ratio = replay_rate / plain_rate;
    println!(
        "{}",
        json!({"replay_events_per_s": replay_rate.round(), "plain_consumer_events_per_s": plain_rate.round(), "ratio": (ratio * 1000.0).round() / 1000.0})
    );
    Ok(())
}

fn plain_read(kafka: &KafkaArgs, topic: &str, partitions: i32, n: u64) -> anyhow::Result<f64> {
    let mut cc = kafka.client_config();
    cc.set("group.id", "bench-plain")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cc.create()?;
    let started = Instant::now();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let (mut seen, mut checksum) = (0u64, 0usize);
    while seen < n {
        match c.poll(Duration::from_secs(30)) {
            Some(Ok(m)) => {
                checksum = checksum.wrapping_add(m.payload().map_or(0, <[u8]>::len));
                seen += 1;
            }
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("plain consumer stalled at {seen}/{n}"),
        }
    }
    std::hint::black_box(checksum);
    Ok(started.elapsed().as_secs_f64())
}
