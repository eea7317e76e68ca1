//! The `broker` role: librdkafka's embedded mock cluster as a process of its own, so several
//! live2vod processes (tests, local development) can share one Kafka without installing one.
use std::io::Write;
use std::path::PathBuf;

use clap::Args as ClapArgs;

use crate::kafka::mock::EmbeddedBroker;
use crate::kafka::Topics;

/// Options of `live2vod broker`.
///
/// LIMITS of the mock cluster (librdkafka's, for tests and local development only): it keeps
/// only the newest ~5 MiB or 100k batches per partition and SILENTLY DROPS older records; it
/// does not compact (compacted topics grow like any other); it does not filter aborted
/// transactions; everything is in memory and lost when the process stops.
#[derive(ClapArgs, Debug, Clone)]
#[command(
    after_help = "WARNING: this is librdkafka's mock cluster, not Kafka. It keeps only the newest ~5 MiB or 100k batches per partition and silently drops older records (size scenarios to fit: more partitions, consume while producing); it does not compact; it does not filter aborted transactions; it keeps everything in memory. Use it for tests, the demo and local development, never in production."
)]
pub struct Args {
    /// Also write the bootstrap address (one line) to this file, for scripts that start the
    /// broker in the background.
    #[arg(long, env = "LIVE2VOD_BOOTSTRAP_FILE")]
    pub bootstrap_file: Option<PathBuf>,

    /// Number of brokers in the mock cluster.
    #[arg(long, env = "LIVE2VOD_BROKERS_COUNT", default_value_t = 1)]
    pub brokers_count: i32,

    /// Partitions of each live2vod topic created at start.
    #[arg(long, env = "LIVE2VOD_PARTITIONS", default_value_t = 12)]
    pub partitions: i32,

    /// Prefix of the topics created at start (as the roles' `--topic-prefix`).
    #[arg(long, env = "LIVE2VOD_TOPIC_PREFIX", default_value = "live2vod.")]
    pub topic_prefix: String,

    /// One more topic to create at start, with `--partitions` partitions (repeatable), e.g.
    /// the `replay --to-topic` target: the mock cluster cannot create topics for clients.
    #[arg(
        long = "extra-topic",
        env = "LIVE2VOD_EXTRA_TOPICS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub extra_topics: Vec<String>,

    /// Serve `/healthz`, `/readyz` (ready once the topics exist) and `/metrics` here.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Runs the mock cluster until SIGTERM/SIGINT. The first stdout line is the bootstrap address.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    if args.brokers_count < 1 {
        anyhow::bail!("--brokers-count must be at least 1");
    }
    if args.partitions < 1 {
        anyhow::bail!("--partitions must be at least 1");
    }
    let health = crate::http::Health::default();
    if let Some(addr) = args.metrics_listen {
        crate::http::spawn_ops_listener(addr, health.clone()).await?;
    }
    let broker = EmbeddedBroker::start(args.brokers_count)?;
    // The mock cluster has no CreateTopics request; its control API creates the topics.
    broker.create_topics(&Topics::with_prefix(&args.topic_prefix), args.partitions)?;
    for name in &args.extra_topics {
        broker.create_topic(name, args.partitions)?;
    }
    let bootstrap = broker.bootstrap().to_string();
    // The file first, atomically (temp + rename): whoever sees the stdout line or the file
    // can rely on both being complete.
    if let Some(path) = &args.bootstrap_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{bootstrap}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{bootstrap}")?;
        out.flush()?;
    }
    health.set_ready(true);
    tracing::warn!(
        %bootstrap,
        "mock Kafka cluster up: it keeps only the newest ~5 MiB/100k batches per partition (older records are dropped silently), no compaction, no aborted-transaction filtering"
    );
    crate::http::shutdown_signal().await;
    drop(broker);
    Ok(())
}
