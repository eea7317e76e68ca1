//! Producers: idempotent, acks=all, Java-compatible partitioning.
use rdkafka::producer::FutureProducer;

use super::config::KafkaArgs;

/// An idempotent producer (acks=all) that partitions keys like Java clients (murmur2), so
/// every live2vod producer agrees on where a key lives. Pass-through `--kafka` settings win.
pub fn idempotent_producer(args: &KafkaArgs) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    let mut cfg = args.client_config();
    for (k, v) in [
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("partitioner", "murmur2_random"),
        ("linger.ms", "2"),
        ("message.timeout.ms", "30000"),
    ] {
        // Pass-through `--kafka` settings were applied first and win.
        if cfg.get(k).is_none() {
            cfg.set(k, v);
        }
    }
    cfg.create()
}
