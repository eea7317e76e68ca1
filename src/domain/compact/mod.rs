//! The compact forms: how the model is kept small in memory and fast to fold, apart from what
//! it means. Nothing here knows about videos' rules; the model files use these types as plain
//! values (equality, order and round-trips are those of the strings and structs they stand for).
//!
//! Why they exist, with the figures they are held to (`live2vod bench fold` prints both):
//! - **memory per aggregate <= 2 KiB**: a fold instance keeps every aggregate of the partitions
//!   it owns in memory, and most of a video's bytes are VOD's text. [`text::Text`] stores URLs
//!   and ids with a shared host prefix and packed hex runs; [`packed::PackedInfo`] keeps a
//!   rendition's fields in one allocation instead of a struct of separate strings.
//! - **fold speed** (callbacks per second on one core): [`json`] parses callback bodies into a
//!   borrowed tree and computes the dedup hash in the same pass, several times faster than
//!   `serde_json::Value`; [`proto_writer`] writes snapshots from the domain types without
//!   building prost's owned structs first; [`key_hasher::KeyHasher`] is a fixed, unseeded hash
//!   for the engine's map (no randomness in the pure core, and cheaper than SipHash).
pub mod json;
pub mod key_hasher;
pub mod packed;
pub mod proto_writer;
pub mod text;
