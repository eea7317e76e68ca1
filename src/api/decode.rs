//! How the api turns a snapshot (a value of the aggregates topic) into its JSON: one decoder
//! type shared by the store and the listing index.
use std::sync::Arc;

/// Turns an aggregate snapshot (a value of the aggregates topic) into its API JSON.
pub type SnapshotDecoder =
    Arc<dyn Fn(&[u8]) -> Result<serde_json::Value, String> + Send + Sync + 'static>;

/// The decoder the command line uses: protobuf snapshots to the API's JSON views.
pub fn default_decoder() -> SnapshotDecoder {
    Arc::new(|bytes: &[u8]| {
        crate::domain::view::snapshot_json(bytes)
            .map(|(_, v)| v)
            .map_err(|e| e.to_string())
    })
}

/// Reads values that are JSON documents (tests; the temporary default).
pub fn json_decoder() -> SnapshotDecoder {
    Arc::new(|bytes: &[u8]| serde_json::from_slice(bytes).map_err(|e| e.to_string()))
}
