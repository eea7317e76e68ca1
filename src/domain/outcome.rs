//! Builders for the `live2vod.*` event bodies the api and the worker produce, so the field names
//! always match what [`super::event::parse_event`] reads. Times come in as data (ms since the
//! epoch): the callers own the clock.
use serde_json::{json, Map, Value};

use super::event::{
    PLAY_INFO_RESOLVED, TRANSCODE_REJECTED, TRANSCODE_REQUESTED, TRANSCODE_SUBMITTED,
    VIDEO_INFO_OBSERVED,
};
use super::time::format_rfc3339;

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}

/// `live2vod.TranscodeRequested` (api, `POST /v1/videos/{id}/transcode`).
pub fn transcode_requested(
    video_id: &str,
    template_group_id: &str,
    request_id: &str,
    priority: Option<&str>,
    at_ms: i64,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("EventType".into(), TRANSCODE_REQUESTED.into());
    m.insert("EventTime".into(), format_rfc3339(at_ms).into());
    m.insert("VideoId".into(), video_id.into());
    m.insert("TemplateGroupId".into(), template_group_id.into());
    m.insert("RequestId".into(), request_id.into());
    if let Some(p) = priority {
        m.insert("Priority".into(), p.into());
    }
    body(Value::Object(m))
}

/// `live2vod.TranscodeSubmitted` (worker, SubmitTranscodeJobs answered).
pub fn transcode_submitted(
    video_id: &str,
    command_id: &str,
    template_group_id: &str,
    task_id: &str,
    at_ms: i64,
) -> Vec<u8> {
    body(
        json!({"EventType": TRANSCODE_SUBMITTED, "EventTime": format_rfc3339(at_ms), "VideoId": video_id,
        "CommandId": command_id, "TemplateGroupId": template_group_id, "TranscodeTaskId": task_id, "Status": "success"}),
    )
}

/// `live2vod.TranscodeRejected` (worker, VOD refused the submission for good).
pub fn transcode_rejected(
    video_id: &str,
    command_id: &str,
    template_group_id: &str,
    error_code: &str,
    error_message: &str,
    at_ms: i64,
) -> Vec<u8> {
    body(
        json!({"EventType": TRANSCODE_REJECTED, "EventTime": format_rfc3339(at_ms), "VideoId": video_id,
        "CommandId": command_id, "TemplateGroupId": template_group_id, "ErrorCode": error_code,
        "ErrorMessage": error_message, "Status": "fail"}),
    )
}

/// `live2vod.VideoInfoObserved` (worker, TrackCompose: GetVideoInfo's `Video.Status`).
pub fn video_info_observed(
    video_id: &str,
    command_id: &str,
    video_status: &str,
    size: Option<i64>,
    at_ms: i64,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("EventType".into(), VIDEO_INFO_OBSERVED.into());
    m.insert("EventTime".into(), format_rfc3339(at_ms).into());
    m.insert("VideoId".into(), video_id.into());
    m.insert("CommandId".into(), command_id.into());
    m.insert("VideoStatus".into(), video_status.into());
    if let Some(s) = size {
        m.insert("Size".into(), s.into());
    }
    m.insert("Status".into(), "success".into());
    body(Value::Object(m))
}

/// `live2vod.PlayInfoResolved` (worker, RefreshPlayInfo). `play_infos` are GetPlayInfo's
/// `PlayInfoList.PlayInfo[]` objects as VOD returned them (PlayURL, Definition, Format, ...).
pub fn play_info_resolved(
    video_id: &str,
    command_id: &str,
    play_infos: &[Value],
    at_ms: i64,
) -> Vec<u8> {
    body(
        json!({"EventType": PLAY_INFO_RESOLVED, "EventTime": format_rfc3339(at_ms), "VideoId": video_id,
        "CommandId": command_id, "Status": "success", "PlayInfos": play_infos}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{parse_event, routing_key, EventBody};

    const T: i64 = 1_512_725_177_250;

    #[test]
    fn built_bodies_parse_back_to_what_was_meant() {
        let b = transcode_requested("v1", "g", "r1", Some("5"), T);
        let e = parse_event(&b).unwrap();
        assert_eq!(e.event_time_ms, T);
        assert_eq!(
            e.body,
            EventBody::TranscodeRequested {
                template_group_id: "g".into(),
                request_id: Some("r1".into()),
                priority: Some("5".into())
            }
        );
        let b = transcode_submitted("v1", "tc-1", "g", "task", T);
        let e = parse_event(&b).unwrap();
        assert_eq!(
            e.body,
            EventBody::TranscodeSubmitted {
                command_id: "tc-1".into(),
                template_group_id: "g".into(),
                task_id: Some("task".into())
            }
        );
        let b = transcode_rejected("v1", "tc-1", "g", "Forbidden.IllegalStatus", "m", T);
        let e = parse_event(&b).unwrap();
        assert!(
            matches!(e.body, EventBody::TranscodeRejected { ref error_code, .. } if error_code.as_deref() == Some("Forbidden.IllegalStatus"))
        );
        let b = video_info_observed("v1", "ct-1", "UploadSucc", Some(9), T);
        let e = parse_event(&b).unwrap();
        assert!(
            matches!(e.body, EventBody::VideoInfoObserved { size: Some(9), ref video_status, .. } if video_status.as_deref() == Some("UploadSucc"))
        );
        let infos =
            [json!({"PlayURL": "https://cdn/x.m3u8", "Definition": "HD", "Format": "m3u8"})];
        let b = play_info_resolved("v1", "pi-1", &infos, T);
        assert_eq!(routing_key(&b).unwrap(), "v1");
        let EventBody::PlayInfoResolved { play_infos, .. } = parse_event(&b).unwrap().body else {
            panic!("wrong body")
        };
        assert_eq!(
            play_infos[0].play_url.as_deref(),
            Some("https://cdn/x.m3u8")
        );
    }
}
