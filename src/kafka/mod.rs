//! Shared Kafka plumbing, as small stages every role composes:
//! - [`client`]: the one rule for a client's settings (the user's `--kafka`, the protected
//!   keys, the defaults) and the kinds of client; [`protected`]: the keys it sets itself;
//! - [`consumer`]: the group-consumer and reader factories, the one consumer context (lag
//!   gauge, rebalance events, commit of stored offsets on revoke);
//! - [`producer`]: the producer factories (acked idempotent, transactional) and the acked
//!   single write;
//! - [`sink`]: a batch's output records ([`sink::OutRecord`]) and the acked-sequential sink
//!   and offset-commit stage (the transactional sink is the fold's `txn.rs`);
//! - [`read`]: bounded reads of partitions; [`dlq`]: dead letters and the breaker;
//! - [`config`]: `--brokers`/`--kafka` flags and topic names; [`admin`], [`cli`]: topics;
//!   [`mock`]: the embedded mock cluster.
pub mod admin;
pub mod cli;
pub mod client;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod mock;
pub mod producer;
pub mod protected;
pub mod read;
pub mod sink;

pub use config::{KafkaArgs, Topics};
