//! The api's in-memory view of the aggregates topic: the latest value per key, decoded on read.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::metrics::API_AGGREGATES;

pub use super::decode::{default_decoder, json_decoder, SnapshotDecoder};

/// Latest raw value per aggregate key. Cloning shares the same map.
#[derive(Clone, Default)]
pub struct Store {
    values: Arc<RwLock<HashMap<String, Arc<[u8]>>>>,
    /// The console's listing index, kept in step by [`Store::apply`] (see `listing.rs`).
    index: Option<super::index::Index>,
}

/// A value could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("aggregate {key} cannot be decoded: {reason}")]
pub struct DecodeError {
    pub key: String,
    pub reason: String,
}

impl Store {
    /// A store that also keeps the listing index, reading snapshots with `decoder`.
    pub fn with_index(decoder: SnapshotDecoder) -> Self {
        Store {
            values: Arc::default(),
            index: Some(super::index::Index::new(decoder)),
        }
    }

    /// The listing index, when the store keeps one.
    pub fn index(&self) -> Option<&super::index::Index> {
        self.index.as_ref()
    }

    /// Applies one record of the aggregates topic: a value replaces, a tombstone (no or empty
    /// value) deletes.
    pub fn apply(&self, key: &str, value: Option<&[u8]>) {
        let len = {
            let mut map = match self.values.write() {
                Ok(m) => m,
                // A panic while holding the lock cannot leave the map half-updated (one
                // insert/remove), so the data is still good.
                Err(poisoned) => poisoned.into_inner(),
            };
            match value {
                Some(v) if !v.is_empty() => {
                    map.insert(key.to_string(), Arc::from(v));
                }
                _ => {
                    map.remove(key);
                }
            }
            map.len()
        };
        if let Some(index) = &self.index {
            index.apply(key, value);
        }
        metrics::gauge!(API_AGGREGATES).set(len as f64);
    }

    /// The raw value of `key`.
    pub fn raw(&self, key: &str) -> Option<Arc<[u8]>> {
        let map = match self.values.read() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(key).cloned()
    }

    /// The decoded value of `key`; `Ok(None)` when unknown.
    pub fn get(
        &self,
        key: &str,
        decoder: &SnapshotDecoder,
    ) -> Result<Option<serde_json::Value>, DecodeError> {
        match self.raw(key) {
            None => Ok(None),
            Some(bytes) => decoder(&bytes).map(Some).map_err(|reason| DecodeError {
                key: key.to_string(),
                reason,
            }),
        }
    }

    /// Number of aggregates held.
    pub fn len(&self) -> usize {
        match self.values.read() {
            Ok(m) => m.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_value_wins_and_tombstones_delete() {
        let s = Store::default();
        let d = json_decoder();
        s.apply("v1", Some(br#"{"status":"recorded"}"#));
        s.apply("v1", Some(br#"{"status":"ready"}"#));
        assert_eq!(
            s.get("v1", &d).expect("decodes"),
            Some(serde_json::json!({"status":"ready"}))
        );
        s.apply("v1", Some(b""));
        assert_eq!(s.get("v1", &d).expect("decodes"), None);
        s.apply("v2", Some(b"{}"));
        s.apply("v2", None);
        assert!(s.is_empty());
    }

    #[test]
    fn undecodable_values_are_reported_not_hidden() {
        let s = Store::default();
        s.apply("v1", Some(b"\x08\x01not json"));
        assert!(s.get("v1", &json_decoder()).is_err());
    }
}
