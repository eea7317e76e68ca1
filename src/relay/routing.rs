//! Routing id of a callback body: `VideoId`, else `MediaId`, else `ImageId`.
//!
//! TODO(integration): replace with domain::event::routing_key (same semantics; map its
//! `EventError` in `RelayError::from`). This copy exists only until the domain is merged.
use serde_json::Value;

/// Why a body has no routing id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotObject,
    #[error("body has no VideoId, MediaId or ImageId")]
    NoId,
}

/// The aggregate id a callback is keyed by on the callbacks topic.
pub fn routing_key(body: &[u8]) -> Result<String, RoutingError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RoutingError::NotJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(RoutingError::NotObject);
    };
    ["VideoId", "MediaId", "ImageId"]
        .iter()
        .find_map(|f| match map.get(*f) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        })
        .ok_or(RoutingError::NoId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_id_wins_then_media_then_image() {
        assert_eq!(
            routing_key(br#"{"VideoId":"v1","MediaId":"m1"}"#),
            Ok("v1".into())
        );
        assert_eq!(
            routing_key(br#"{"MediaId":"m1","ImageId":"i1"}"#),
            Ok("m1".into())
        );
        assert_eq!(routing_key(br#"{"ImageId":"i1"}"#), Ok("i1".into()));
        assert_eq!(
            routing_key(br#"{"VideoId":"","MediaId":"m1"}"#),
            Ok("m1".into())
        );
    }

    #[test]
    fn bodies_without_an_id_are_refused() {
        assert_eq!(routing_key(b"[1]"), Err(RoutingError::NotObject));
        assert_eq!(
            routing_key(br#"{"EventType":"SnapshotComplete"}"#),
            Err(RoutingError::NoId)
        );
        assert_eq!(routing_key(br#"{"VideoId":42}"#), Err(RoutingError::NoId));
        assert!(matches!(routing_key(b"{"), Err(RoutingError::NotJson(_))));
    }
}
