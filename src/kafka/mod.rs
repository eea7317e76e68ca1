//! Shared Kafka plumbing: client configuration, topic names and admin, producers, the
//! embedded mock cluster.
pub mod admin;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod mock;
pub mod producer;
pub mod read;

pub use config::{KafkaArgs, Topics};
