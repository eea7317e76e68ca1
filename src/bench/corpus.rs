//! The realistic callback corpus shared by the Kafka benchmarks: the same live sessions as
//! `bench fold` (4 segments and one composed video a session, every callback of their flows,
//! worker outcomes, 10% duplicates, shuffled within a session).
use super::fold::{session, Rng};

/// Composed videos are transcoded by policy, so the projector emits commands too.
pub const POLICY: &str =
    "[defaults]\ncomposed = { action = \"transcode\", template_group = \"tg-compose\" }\n";

/// `(key, body)` records of `sessions` live sessions.
pub fn callbacks(sessions: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::seeded(seed);
    let mut out = Vec::new();
    for n in 0..sessions {
        out.extend(session(&mut rng, n, 4).0);
    }
    out
}

/// Produces `records` to `topic` (idempotent producer, acks=all), 10,000 in flight at most.
pub async fn produce(
    kafka: &crate::kafka::KafkaArgs,
    topic: &str,
    records: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    let producer = crate::kafka::producer::idempotent_producer(kafka)?;
    for chunk in records.chunks(10_000) {
        let sends = chunk.iter().map(|(k, v)| {
            producer.send(
                rdkafka::producer::FutureRecord::to(topic)
                    .key(k.as_str())
                    .payload(v.as_slice()),
                std::time::Duration::from_secs(30),
            )
        });
        futures::future::try_join_all(sends)
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing the corpus: {e}"))?;
    }
    Ok(())
}
