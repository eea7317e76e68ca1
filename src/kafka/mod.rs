//! Shared Kafka plumbing: client configuration, topic names and admin, the mock cluster.
pub mod config;

pub use config::{KafkaArgs, Topics};
