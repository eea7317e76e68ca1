//! live2vod: Alibaba Cloud VOD live-recording callbacks, folded on Kafka into queryable
//! aggregates, with follow-up work executed exactly once in effect.
//!
//! `domain` is the pure core (no I/O, no clock, no randomness); everything else is an adapter.

pub mod domain;
pub mod proto;

pub mod allinone;
pub mod api;
pub mod bench;
pub mod broker;
pub mod clock;
pub mod demo;
pub mod fold;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod reconcile;
pub mod relay;
pub mod replay;
pub mod retry;
pub mod role;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod vod;
pub mod worker;
