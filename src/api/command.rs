//! The operator's manual transcode request: its body validated, then shaped into a
//! `live2vod.TranscodeRequested` event by the domain's one outcome builder (pure apart from
//! the time and id passed in).
use serde::Deserialize;

/// Body of `POST /v1/videos/{video_id}/transcode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscodeBody {
    pub template_group_id: String,
    /// VOD's job priority, "1".."10" (a number is accepted too).
    #[serde(default)]
    pub priority: Option<serde_json::Value>,
}

/// Why a transcode body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body must be a JSON object like {{\"template_group_id\": \"...\"}}: {0}")]
    Json(String),
    #[error("template_group_id must be a non-empty string of at most 64 characters")]
    TemplateGroup,
    #[error("priority must be an integer from 1 to 10")]
    Priority,
}

/// A validated transcode request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeRequest {
    pub template_group_id: String,
    pub priority: Option<String>,
}

/// Parses and validates the request body.
pub fn parse_body(bytes: &[u8]) -> Result<TranscodeRequest, BodyError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| BodyError::Json(e.to_string()))?;
    // serde would also read a struct from an array (`["tg"]`); only objects are requests.
    if !value.is_object() {
        return Err(BodyError::Json("not a JSON object".into()));
    }
    let body: TranscodeBody =
        serde_json::from_value(value).map_err(|e| BodyError::Json(e.to_string()))?;
    let group = body.template_group_id.trim();
    if group.is_empty() || group.chars().count() > 64 {
        return Err(BodyError::TemplateGroup);
    }
    let priority = match body.priority {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(n.as_u64().ok_or(BodyError::Priority)?),
        Some(serde_json::Value::String(s)) => {
            Some(s.trim().parse::<u64>().map_err(|_| BodyError::Priority)?)
        }
        Some(_) => return Err(BodyError::Priority),
    };
    if priority.is_some_and(|p| !(1..=10).contains(&p)) {
        return Err(BodyError::Priority);
    }
    Ok(TranscodeRequest {
        template_group_id: group.to_string(),
        priority: priority.map(|p| p.to_string()),
    })
}

/// The command id the fold gives the transcode of (video, group), whatever its cause.
pub use crate::domain::projector::transcode_command_id;

/// The `live2vod.TranscodeRequested` event body produced to the callbacks topic (built by
/// [`crate::domain::outcome`]; `at_ms` in whole seconds, as the api has always written it).
pub fn transcode_requested(
    video_id: &str,
    req: &TranscodeRequest,
    request_id: &str,
    at_ms: i64,
) -> serde_json::Value {
    crate::domain::outcome::transcode_requested(
        video_id,
        &req.template_group_id,
        request_id,
        req.priority.as_deref(),
        at_ms,
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a unix time in seconds (UTC, proleptic Gregorian).
pub fn rfc3339_utc(unix_secs: i64) -> String {
    crate::domain::time::format_rfc3339(unix_secs.saturating_mul(1000))
}

/// A random request id (32 hex digits).
pub fn new_request_id() -> String {
    let n: u128 = rand::random();
    format!("{n:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_id_is_the_domain_formula() {
        // Computed independently: `printf 'v1|tg' | sha1sum`.
        let id = transcode_command_id("v1", "tg");
        assert_eq!(id, "tc-e410200621467f30dea7f0e25547a68a");
        assert_ne!(id, transcode_command_id("v1", "tg2"));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_519_375_990), "2018-02-23T08:53:10Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn bodies_are_validated() {
        assert_eq!(
            parse_body(br#"{"template_group_id":" tg-1 ","priority":"5"}"#),
            Ok(TranscodeRequest {
                template_group_id: "tg-1".into(),
                priority: Some("5".into())
            })
        );
        assert_eq!(
            parse_body(br#"{"template_group_id":"tg","priority":7}"#).map(|r| r.priority),
            Ok(Some("7".into()))
        );
        assert_eq!(
            parse_body(br#"{"template_group_id":""}"#),
            Err(BodyError::TemplateGroup)
        );
        assert_eq!(
            parse_body(br#"{"template_group_id":"tg","priority":11}"#),
            Err(BodyError::Priority)
        );
        assert!(matches!(parse_body(b"[]"), Err(BodyError::Json(_))));
        assert!(matches!(parse_body(br#"["tg"]"#), Err(BodyError::Json(_))));
        assert!(matches!(
            parse_body(br#"{"template_group":"tg"}"#),
            Err(BodyError::Json(_))
        ));
    }
}
