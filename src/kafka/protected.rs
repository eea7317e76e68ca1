//! The Kafka settings live2vod sets itself, and the check that refuses a user's setting of
//! one (the third step of the settings rule in `client.rs`). Apart from `client.rs` so that
//! `config.rs` (which runs the check at start) and `client.rs` (which sets the keys) both use
//! it without importing each other.

/// Keys whose value the roles' guarantees depend on: never taken from `--kafka`/`--kafka-file`.
/// Each entry names the key and why (or which flag sets it instead).
pub const PROTECTED: &[(&str, &str)] = &[
    ("group.id", "set per role by its --group-id flag"),
    (
        "transactional.id",
        "set by the fold's --transactional-id flag",
    ),
    (
        "enable.auto.commit",
        "offsets are committed only once what they caused is durable",
    ),
    (
        "enable.auto.offset.store",
        "offsets are stored only once what they caused is durable",
    ),
    (
        "auto.offset.reset",
        "a new group must start from the first record",
    ),
    (
        "isolation.level",
        "records of aborted transactions must never be read",
    ),
    (
        "enable.partition.eof",
        "readers depend on knowing where a partition ends",
    ),
    (
        "enable.idempotence",
        "producers must not duplicate or reorder records",
    ),
    (
        "acks",
        "a write counts only once every in-sync replica has it",
    ),
    (
        "partitioner",
        "every producer must put a key in the same partition",
    ),
];

/// Refuses a user setting (`--kafka`, `--kafka-file`) of a [`PROTECTED`] key, naming the key
/// and why, never the value.
pub fn refuse_protected<'a>(mut keys: impl Iterator<Item = &'a str>) -> Result<(), String> {
    match keys.find_map(|k| {
        PROTECTED
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(k.trim()))
    }) {
        None => Ok(()),
        Some((key, why)) => Err(format!(
            "Kafka setting {key} cannot be changed with --kafka or --kafka-file: live2vod sets it ({why})"
        )),
    }
}
