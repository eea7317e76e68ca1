//! librdkafka's embedded mock cluster, hosted on a thread of its own.
//!
//! It speaks the real Kafka protocol (idempotent producers, consumer groups, error injection)
//! and other processes can reach it over TCP. Caveats that users can hit: it does not filter
//! aborted transactions, does not compact, and keeps only the newest ~5 MiB (or 100k batches)
//! per partition, silently dropping older records — size scenarios to fit (more partitions,
//! consume while producing). It does not implement the CreateTopics request either (so
//! `admin::ensure_topics` cannot create topics there): call [`EmbeddedBroker::create_topics`]
//! before starting roles against it. It is for the demo, tests and local development, not
//! production.
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use super::admin::specs;
use super::config::Topics;

type Op = Box<dyn FnOnce(&MockCluster<'static, DefaultProducerContext>) + Send>;

/// A running embedded mock cluster. Dropping it stops the cluster.
pub struct EmbeddedBroker {
    bootstrap: String,
    ops: Option<mpsc::Sender<Op>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The embedded cluster could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the embedded mock Kafka cluster: {0}")]
pub struct MockStartError(String);

impl EmbeddedBroker {
    /// Starts a mock cluster of `brokers` brokers (the `MockCluster` is not `Send`, so one
    /// thread owns it and runs control operations sent to it).
    pub fn start(brokers: i32) -> Result<Self, MockStartError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (ops_tx, ops_rx) = mpsc::channel::<Op>();
        let thread = thread::Builder::new()
            .name("mock-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Runs until every sender is dropped.
                for op in ops_rx {
                    op(&cluster);
                }
            })
            .map_err(|e| MockStartError(e.to_string()))?;
        let bootstrap = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| MockStartError(e.to_string()))?
            .map_err(MockStartError)?;
        Ok(EmbeddedBroker {
            bootstrap,
            ops: Some(ops_tx),
            thread: Some(thread),
        })
    }

    /// The `host:port,...` bootstrap list clients (in any process on this host) connect to.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Runs `f` on the cluster (error injection, broker down/up, RTT) and returns its result.
    pub fn control<R: Send + 'static>(
        &self,
        f: impl FnOnce(&MockCluster<'static, DefaultProducerContext>) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = mpsc::channel();
        let op: Op = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.ops.as_ref()?.send(op).ok()?;
        rx.recv().ok()
    }
}

impl EmbeddedBroker {
    /// Creates live2vod's topics under `topics` with `partitions` partitions each. The mock
    /// cluster does not implement the CreateTopics request (so `ensure_topics` cannot create
    /// them there); this uses its control API instead. Topics that exist are left alone.
    /// Compaction is not available on the mock cluster.
    pub fn create_topics(&self, topics: &Topics, partitions: i32) -> Result<(), MockStartError> {
        for spec in specs(topics) {
            let name = spec.name.to_string();
            let created = self
                .control(move |c| c.create_topic(&name, partitions, 1))
                .ok_or_else(|| MockStartError("the mock cluster thread has stopped".into()))?;
            match created {
                Ok(()) => tracing::info!(topic = spec.name, partitions, "created topic"),
                Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAlreadyExists) => {}
                Err(e) => return Err(MockStartError(format!("creating topic {}: {e}", spec.name))),
            }
        }
        Ok(())
    }

    /// Creates one more topic (e.g. a `replay --to-topic` target); an existing one is kept.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), MockStartError> {
        let owned = name.to_string();
        let created = self
            .control(move |c| c.create_topic(&owned, partitions, 1))
            .ok_or_else(|| MockStartError("the mock cluster thread has stopped".into()))?;
        match created {
            Ok(()) => tracing::info!(topic = name, partitions, "created topic"),
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAlreadyExists) => {}
            Err(e) => return Err(MockStartError(format!("creating topic {name}: {e}"))),
        }
        Ok(())
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.ops.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
