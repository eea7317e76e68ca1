//! Options every role shares for reaching Kafka, and the topic names they imply.
use clap::Args;
use rdkafka::ClientConfig;

/// Kafka connection options common to every role (flags and `LIVE2VOD_*` env vars).
#[derive(Args, Clone)]
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
    /// Values containing a comma (passwords): use `--kafka-file`.
    #[arg(long = "kafka", env = "LIVE2VOD_KAFKA", hide_env_values = true, value_name = "KEY=VALUE", value_delimiter = ',', value_parser = parse_key_value)]
    pub kafka: Vec<(String, String)>,

    /// A file of librdkafka settings, one `KEY=VALUE` per line (`#` comments), applied to
    /// every client before `--kafka`; meant for secrets mounted as files (any character
    /// allowed in values, nothing echoed in errors).
    #[arg(long = "kafka-file", env = "LIVE2VOD_KAFKA_FILE", value_name = "FILE", value_parser = parse_properties_file)]
    pub kafka_file: Option<KafkaProperties>,

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
        // The argument is not repeated: it may be a password given without its key.
        _ => Err("expected KEY=VALUE".to_string()),
    }
}

impl std::fmt::Debug for KafkaArgs {
    // Pass-through values may be secrets (sasl.password, ssl.key.password, ...).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kafka: Vec<String> = self
            .kafka
            .iter()
            .map(|(k, v)| {
                if is_secret_key(k) {
                    format!("{k}=<redacted>")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        f.debug_struct("KafkaArgs")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("kafka", &kafka)
            .field("kafka_file", &self.kafka_file)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication", &self.topic_replication)
            .field("no_create_topics", &self.no_create_topics)
            .finish()
    }
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        ".pem",
        "key",
        "oauthbearer.config",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Settings read from a `--kafka-file`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(pub Vec<(String, String)>);

impl std::fmt::Debug for KafkaProperties {
    // Values are often secrets: only keys reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

fn parse_properties_file(path: &str) -> Result<KafkaProperties, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_properties(&text).map_err(|line| format!("{path}:{line}: expected KEY=VALUE"))
}

/// `KEY=VALUE` lines; blank lines and `#` comments skipped. Err: the bad line number.
fn parse_properties(text: &str) -> Result<KafkaProperties, usize> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => out.push((k.trim().to_string(), v.to_string())),
            _ => return Err(i + 1),
        }
    }
    Ok(KafkaProperties(out))
}

impl KafkaArgs {
    /// Arguments pointing at `brokers` with every other option at its default.
    pub fn for_brokers(brokers: impl Into<String>) -> Self {
        KafkaArgs {
            brokers: brokers.into(),
            topic_prefix: "live2vod.".into(),
            kafka: Vec::new(),
            kafka_file: None,
            topic_partitions: 12,
            topic_replication: 1,
            no_create_topics: false,
        }
    }

    /// A client config with the bootstrap servers and every pass-through setting applied:
    /// steps 1 and 2 of the rule in [`super::client`]; roles build their clients with
    /// [`super::client::config`], which adds the protected settings and the defaults.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        let from_file = self.kafka_file.iter().flat_map(|p| p.0.iter());
        for (k, v) in from_file.chain(&self.kafka) {
            cfg.set(k, v);
        }
        cfg
    }

    /// Checks every pass-through setting (`--kafka-file`, then `--kafka`) with librdkafka,
    /// so that a misspelt key or a bad value is refused at start with a message naming the
    /// key. librdkafka's own error (and rdkafka's, which appends the value) would print the
    /// value, and a misspelt `sasl.pasword` is still a password: values of secret-looking
    /// keys, and of keys librdkafka does not know, are never shown. A setting of a key
    /// live2vod sets itself ([`super::protected::PROTECTED`]) is refused first, by its key alone.
    pub fn check(&self) -> Result<(), String> {
        let from_file = self.kafka_file.iter().flat_map(|p| p.0.iter());
        super::protected::refuse_protected(
            from_file
                .clone()
                .chain(&self.kafka)
                .map(|(k, _)| k.as_str()),
        )?;
        for (k, v) in from_file.chain(&self.kafka) {
            let mut one = ClientConfig::new();
            one.set(k, v);
            if let Err(e) = one.create_native_config() {
                let rdkafka::error::KafkaError::ClientConfig(code, desc, _, _) = &e else {
                    return Err(format!("Kafka setting {k}: not accepted"));
                };
                let unknown = matches!(code, rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN);
                return Err(if is_secret_key(k) || unknown {
                    let desc = if v.is_empty() {
                        desc.clone()
                    } else {
                        desc.replace(v.as_str(), "<redacted>")
                    };
                    format!("Kafka setting {k}: {desc}")
                } else {
                    // An ordinary setting's value is what needs fixing: show it.
                    format!("Kafka setting {k}={v}: {desc}")
                });
            }
        }
        Ok(())
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
    /// Compacted sweep positions of the reconcile instances (their consumer group's topic).
    pub reconcile_positions: String,
}

impl Topics {
    pub fn with_prefix(prefix: &str) -> Self {
        Topics {
            callbacks: format!("{prefix}callbacks"),
            commands: format!("{prefix}commands"),
            aggregates: format!("{prefix}aggregates"),
            dlq: format!("{prefix}dlq"),
            ledger: format!("{prefix}worker-ledger"),
            reconcile_positions: format!("{prefix}reconcile-positions"),
        }
    }

    /// Every topic name, in a fixed order (for checks that must cover all of them).
    pub fn names(&self) -> [&str; 6] {
        [
            &self.callbacks,
            &self.commands,
            &self.aggregates,
            &self.dlq,
            &self.ledger,
            &self.reconcile_positions,
        ]
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

    #[test]
    fn check_refuses_bad_settings_by_key_without_their_secret_values() {
        let ok = Cli::try_parse_from(["x", "--kafka", "sasl.password=hunter2"]).expect("ok");
        assert_eq!(ok.kafka.check(), Ok(()));
        // A misspelt key: named, its value (a password all the same) not shown.
        let typo = Cli::try_parse_from(["x", "--kafka", "sasl.pasword=hunter2"]).expect("ok");
        let e = typo.kafka.check().expect_err("unknown key");
        assert!(e.contains("sasl.pasword") && !e.contains("hunter2"), "{e}");
        // rdkafka's own error for the same setting carries the value: what check() prevents.
        let Err(raw) = typo.kafka.client_config().create_native_config() else {
            panic!("librdkafka accepted an unknown key");
        };
        let raw = raw.to_string();
        assert!(raw.contains("hunter2"), "{raw}");
        // A bad value of an ordinary key stays visible: it is what needs fixing.
        let bad = Cli::try_parse_from(["x", "--kafka", "linger.ms=lots"]).expect("ok");
        let e = bad.kafka.check().expect_err("bad value");
        assert!(e.contains("linger.ms") && e.contains("lots"), "{e}");
        // A key live2vod sets itself is refused by name, its value never shown.
        let ours = Cli::try_parse_from(["x", "--kafka", "group.id=hunter2"]).expect("ok");
        let e = ours.kafka.check().expect_err("protected key");
        assert!(e.contains("group.id") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn kafka_file_carries_values_with_commas_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("live2vod-kafka-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("client.properties");
        std::fs::write(
            &path,
            "# secrets\nsasl.username=svc\nsasl.password=p,a=s s\n\nsecurity.protocol=SASL_SSL\n",
        )
        .expect("write");
        let path_str = path.to_str().expect("utf-8 path");
        let cli = Cli::try_parse_from([
            "x",
            "--kafka-file",
            path_str,
            "--kafka",
            "security.protocol=SSL",
        ])
        .expect("valid flags");
        let cfg = cli.kafka.client_config();
        assert_eq!(cfg.get("sasl.password"), Some("p,a=s s"));
        assert_eq!(cfg.get("sasl.username"), Some("svc"));
        assert_eq!(cfg.get("security.protocol"), Some("SSL"));
        assert!(
            !format!("{:?}", cli.kafka).contains("p,a=s s"),
            "secret in Debug"
        );
        let flagged = Cli::try_parse_from(["x", "--kafka", "sasl.password=hunter2"]).expect("ok");
        assert!(!format!("{:?}", flagged.kafka).contains("hunter2"));

        std::fs::write(&path, "ok=1\nnot a setting\n").expect("write");
        let err = Cli::try_parse_from(["x", "--kafka-file", path_str]).expect_err("bad line");
        assert!(err.to_string().contains(":2:"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
