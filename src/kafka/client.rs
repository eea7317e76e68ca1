//! The one rule for a Kafka client's settings, and the kinds of client live2vod builds.
//!
//! Every client's configuration is, in this order:
//! 1. `bootstrap.servers` from `--brokers`;
//! 2. the user's settings: `--kafka-file`, then `--kafka` (later ones win);
//! 3. the settings of its [`ClientKind`] that correctness depends on, set over the user's:
//!    their keys are [`PROTECTED`], and a user setting of one is refused at start
//!    ([`refuse_protected`], called by `KafkaArgs::check`) with an error naming the key (never
//!    its value, which may be a secret);
//! 4. defaults: [`COMMON_DEFAULTS`] for every client, then those of its kind, each only where
//!    the user left the key unset (the user's setting wins).
//!
//! Adding a default for every client of every role is one line in [`COMMON_DEFAULTS`]; a
//! default for one kind of client goes in [`ClientKind::defaults`].
use rdkafka::ClientConfig;

use super::config::KafkaArgs;

pub use super::protected::{refuse_protected, PROTECTED};

/// Defaults for every client of every role (the user's settings win). Empty today: the one
/// place to add one.
pub const COMMON_DEFAULTS: &[(&str, &str)] = &[];

/// What a client is for; decides its protected settings and its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind<'a> {
    /// A group member that commits the offsets it chose itself, after the batch they end is
    /// durable (the fold).
    GroupExplicitCommits { group_id: &'a str },
    /// A group member that stores offsets by hand when a record is done and lets librdkafka
    /// commit the stored ones (every second, on revoke, at shutdown): the worker.
    GroupStoredOffsets { group_id: &'a str },
    /// Assign-and-read, outside any group (restores, replay, the api's view, the ledger):
    /// never commits. `name` only labels the client; `eof`: report each partition's end.
    Reader { name: &'a str, eof: bool },
    /// Idempotent producer whose writes are awaited one acknowledgement each.
    AckedProducer,
    /// Transactional producer (the fold's `--exactly-once`).
    TransactionalProducer { transactional_id: &'a str },
    /// Metadata and topic administration only.
    Admin,
}

impl ClientKind<'_> {
    /// Settings correctness depends on; every key is in [`PROTECTED`].
    fn required(&self) -> Vec<(&str, &str)> {
        const CONSUMER: [(&str, &str); 3] = [
            ("auto.offset.reset", "earliest"),
            // librdkafka's default, stated: never read records of aborted transactions (the
            // stream facts an `--exactly-once` fold derives come back through its input).
            ("isolation.level", "read_committed"),
            ("enable.auto.offset.store", "false"),
        ];
        const PRODUCER: [(&str, &str); 3] = [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // Java-compatible (murmur2), so every live2vod producer agrees on where a key lives.
            ("partitioner", "murmur2_random"),
        ];
        let mut out = Vec::new();
        match *self {
            ClientKind::GroupExplicitCommits { group_id } => {
                out.extend(CONSUMER);
                out.extend([
                    ("group.id", group_id),
                    ("enable.auto.commit", "false"),
                    ("enable.partition.eof", "false"),
                ]);
            }
            ClientKind::GroupStoredOffsets { group_id } => {
                out.extend(CONSUMER);
                out.extend([
                    ("group.id", group_id),
                    ("enable.auto.commit", "true"),
                    ("enable.partition.eof", "false"),
                ]);
            }
            ClientKind::Reader { name, eof } => {
                out.extend(CONSUMER);
                out.extend([
                    // Never used for a group (readers assign), but librdkafka wants one.
                    ("group.id", name),
                    ("enable.auto.commit", "false"),
                    ("enable.partition.eof", if eof { "true" } else { "false" }),
                ]);
            }
            ClientKind::AckedProducer => out.extend(PRODUCER),
            ClientKind::TransactionalProducer { transactional_id } => {
                out.extend(PRODUCER);
                out.push(("transactional.id", transactional_id));
            }
            ClientKind::Admin => {}
        }
        out
    }

    /// Defaults of this kind (the user's settings win).
    fn defaults(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            ClientKind::GroupExplicitCommits { .. } => &[
                ("statistics.interval.ms", "5000"),
                ("partition.assignment.strategy", "roundrobin"),
            ],
            ClientKind::GroupStoredOffsets { .. } => &[
                ("statistics.interval.ms", "5000"),
                ("auto.commit.interval.ms", "1000"),
            ],
            ClientKind::Reader { .. } | ClientKind::Admin => &[],
            ClientKind::AckedProducer => &[("linger.ms", "2"), ("message.timeout.ms", "30000")],
            ClientKind::TransactionalProducer { .. } => &[
                ("linger.ms", "2"),
                ("message.timeout.ms", "30000"),
                ("transaction.timeout.ms", "60000"),
            ],
        }
    }
}

/// The configuration of a client of `kind`, by the rule in this module's documentation.
pub fn config(args: &KafkaArgs, kind: ClientKind<'_>) -> ClientConfig {
    let mut cfg = args.client_config();
    for (k, v) in kind.required() {
        debug_assert!(PROTECTED.iter().any(|(p, _)| *p == k), "{k} not protected");
        cfg.set(k, v);
    }
    for (k, v) in COMMON_DEFAULTS.iter().chain(kind.defaults()) {
        if cfg.get(k).is_none() {
            cfg.set(*k, *v);
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_with(kafka: &[(&str, &str)]) -> KafkaArgs {
        let mut a = KafkaArgs::for_brokers("k:9092");
        a.kafka = kafka
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a
    }

    #[test]
    fn user_settings_win_over_defaults_and_protected_ones_are_ours() {
        let a = args_with(&[("linger.ms", "50"), ("statistics.interval.ms", "1000")]);
        let p = config(&a, ClientKind::AckedProducer);
        assert_eq!(p.get("linger.ms"), Some("50"));
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("partitioner"), Some("murmur2_random"));
        let g = config(&a, ClientKind::GroupExplicitCommits { group_id: "g" });
        assert_eq!(g.get("statistics.interval.ms"), Some("1000"));
        assert_eq!(g.get("group.id"), Some("g"));
        assert_eq!(g.get("enable.auto.commit"), Some("false"));
        let w = config(&a, ClientKind::GroupStoredOffsets { group_id: "w" });
        assert_eq!(w.get("enable.auto.commit"), Some("true"));
        assert_eq!(w.get("enable.auto.offset.store"), Some("false"));
        let r = config(
            &a,
            ClientKind::Reader {
                name: "r",
                eof: true,
            },
        );
        assert_eq!(r.get("enable.partition.eof"), Some("true"));
        assert_eq!(r.get("bootstrap.servers"), Some("k:9092"));
    }

    #[test]
    fn every_kind_builds_a_valid_librdkafka_config() {
        let a = args_with(&[]);
        for kind in [
            ClientKind::GroupExplicitCommits { group_id: "g" },
            ClientKind::GroupStoredOffsets { group_id: "g" },
            ClientKind::Reader {
                name: "r",
                eof: false,
            },
            ClientKind::AckedProducer,
            ClientKind::TransactionalProducer {
                transactional_id: "t",
            },
            ClientKind::Admin,
        ] {
            let cfg = config(&a, kind);
            assert!(cfg.create_native_config().is_ok(), "{kind:?}");
            for (k, _) in kind.required() {
                assert!(PROTECTED.iter().any(|(p, _)| *p == k), "{k}");
            }
        }
    }

    #[test]
    fn a_protected_key_is_refused_by_name_without_its_value() {
        assert_eq!(
            refuse_protected(["linger.ms", "sasl.password"].into_iter()),
            Ok(())
        );
        let e = refuse_protected(["debug", " Group.Id"].into_iter()).expect_err("protected");
        assert!(e.contains("group.id") && e.contains("--group-id"), "{e}");
    }
}
