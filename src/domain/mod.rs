//! The pure core: callback parsing, aggregates, projectors, policy.
//! Nothing in here imports tokio, rdkafka, axum or metrics, reads the clock or draws randomness.
