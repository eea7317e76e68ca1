//! Options every role shares for reaching Kafka, and the topic names they imply.
use clap::Args;
use rdkafka::ClientConfig;

/// Kafka connection options common to every role (flags and `LIVE2VOD_*` env vars).
#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Bootstrap servers, comma-separated (`host:port,...`).
    #[arg(long, env = "LIVE2VOD_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// Prefix of every topic name: `<prefix>callbacks`, `<prefix>commands`,
    /// `<prefix>aggregates`, `<prefix>dlq`, `<prefix>worker-ledger`.
    #[arg(long, env = "LIVE2VOD_TOPIC_PREFIX", default_value = "live2vod.")]
    pub topic_prefix: String,

    /// Extra librdkafka setting passed through to every client, `KEY=VALUE` (repeatable;
    /// in the env var, comma-separated). Use for TLS and SASL, e.g.
    /// `security.protocol=SASL_SSL`, `sasl.mechanism=SCRAM-SHA-512`, `sasl.username=...`.
    #[arg(long = "kafka", env = "LIVE2VOD_KAFKA", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = parse_key_value)]
    pub kafka: Vec<(String, String)>,

    /// Partitions of topics this role creates when they are missing.
    #[arg(long, env = "LIVE2VOD_TOPIC_PARTITIONS", default_value_t = 12)]
    pub topic_partitions: i32,

    /// Replication factor of topics this role creates when they are missing.
    #[arg(long, env = "LIVE2VOD_TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,

    /// Do not create missing topics at start (fail instead).
    #[arg(long, env = "LIVE2VOD_NO_CREATE_TOPICS")]
    pub no_create_topics: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl KafkaArgs {
    /// Arguments pointing at `brokers` with every other option at its default.
    pub fn for_brokers(brokers: impl Into<String>) -> Self {
        KafkaArgs {
            brokers: brokers.into(),
            topic_prefix: "live2vod.".into(),
            kafka: Vec::new(),
            topic_partitions: 12,
            topic_replication: 1,
            no_create_topics: false,
        }
    }

    /// A client config with the bootstrap servers and every pass-through setting applied.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.kafka {
            cfg.set(k, v);
        }
        cfg
    }

    /// Topic names under the configured prefix.
    pub fn topics(&self) -> Topics {
        Topics::with_prefix(&self.topic_prefix)
    }
}

/// The topic names live2vod uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Raw VOD callbacks and live2vod's own events (key: aggregate id).
    pub callbacks: String,
    /// Protobuf `Command`s for the worker (key: VideoId).
    pub commands: String,
    /// Compacted aggregate snapshots (key: aggregate id).
    pub aggregates: String,
    /// Records that could not be processed, with the reason in headers.
    pub dlq: String,
    /// Compacted ledger of command ids the worker has finished (key: command id).
    pub ledger: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Self {
        Topics {
            callbacks: format!("{prefix}callbacks"),
            commands: format!("{prefix}commands"),
            aggregates: format!("{prefix}aggregates"),
            dlq: format!("{prefix}dlq"),
            ledger: format!("{prefix}worker-ledger"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    #[test]
    fn kafka_value_without_equals_is_refused() {
        let err = Cli::try_parse_from(["x", "--kafka", "security.protocol"])
            .expect_err("a --kafka value without '=' must be refused");
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        assert!(Cli::try_parse_from(["x", "--kafka", "=SASL_SSL"]).is_err());
    }

    #[test]
    fn security_settings_reach_the_client_config() {
        let cli = Cli::try_parse_from([
            "x",
            "--brokers",
            "k1:9093",
            "--kafka",
            "security.protocol=SASL_SSL",
            "--kafka",
            "sasl.mechanism=SCRAM-SHA-256",
            "--kafka",
            "sasl.password=a=b",
        ])
        .expect("valid flags");
        let cfg = cli.kafka.client_config();
        assert_eq!(cfg.get("bootstrap.servers"), Some("k1:9093"));
        assert_eq!(cfg.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(cfg.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        // Only the first '=' separates key and value.
        assert_eq!(cfg.get("sasl.password"), Some("a=b"));
    }
}
