//! The one builder of the `live2vod.*` event bodies the api and the worker produce, so the field
//! names always match what [`super::event::parse_event`] reads. Times come in as data (ms since
//! the epoch): the callers own the clock.
//!
//! Bodies are flat JSON objects written with their keys in sorted order (serde_json's map), so a
//! body is a function of its inputs: the test `every_body_is_pinned_byte_for_byte` fixes the
//! bytes, since replay equality and de-duplication (the dedup key hashes the body) rest on them.
use serde_json::{Map, Value};

use super::time::format_rfc3339;
use super::vocab::event_type::{
    PLAY_INFO_RESOLVED, TRANSCODE_REJECTED, TRANSCODE_REQUESTED, TRANSCODE_SUBMITTED,
    VIDEO_INFO_OBSERVED,
};

/// GetVideoInfo `Video.Status` values that show the (composed) source file exists: the compose
/// finished in time. `Uploading`, `UploadFail` and anything unknown mean it did not.
pub const SOURCE_READY_STATUSES: &[&str] = &[
    "UploadSucc",
    "Transcoding",
    "TranscodeFail",
    "Normal",
    "Checking",
    "Blocked",
];

/// Whether GetVideoInfo's `Video.Status` means the source is there.
pub fn source_ready(video_status: &str) -> bool {
    SOURCE_READY_STATUSES.contains(&video_status)
}

/// Serializes a body (a flat JSON object) to the bytes produced to the callbacks topic.
pub fn to_bytes(body: &Value) -> Vec<u8> {
    // Serializing a Value cannot fail.
    serde_json::to_vec(body).unwrap_or_default()
}

/// Where a TrackCompose command's stream lives (echoed into the event for operators; empty
/// names are left out).
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamRef<'a> {
    /// `DomainName`.
    pub domain: &'a str,
    /// `AppName`.
    pub app: &'a str,
    /// `StreamName`.
    pub stream: &'a str,
}

/// The fields every worker outcome has.
fn base(event_type: &str, video_id: &str, command_id: &str, at_ms: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("EventType".into(), event_type.into());
    m.insert("EventTime".into(), format_rfc3339(at_ms).into());
    m.insert("VideoId".into(), video_id.into());
    m.insert("CommandId".into(), command_id.into());
    m
}

fn put_stream(m: &mut Map<String, Value>, s: &StreamRef<'_>) {
    for (k, v) in [
        ("DomainName", s.domain),
        ("AppName", s.app),
        ("StreamName", s.stream),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), v.into());
        }
    }
}

fn put_error(m: &mut Map<String, Value>, error_code: &str, error_message: &str) {
    m.insert("ErrorCode".into(), error_code.into());
    m.insert("ErrorMessage".into(), error_message.into());
}

/// `live2vod.TranscodeRequested` (api, `POST /v1/videos/{id}/transcode`).
pub fn transcode_requested(
    video_id: &str,
    template_group_id: &str,
    request_id: &str,
    priority: Option<&str>,
    at_ms: i64,
) -> Value {
    let mut m = Map::new();
    m.insert("EventType".into(), TRANSCODE_REQUESTED.into());
    m.insert("EventTime".into(), format_rfc3339(at_ms).into());
    m.insert("VideoId".into(), video_id.into());
    m.insert("TemplateGroupId".into(), template_group_id.into());
    m.insert("RequestId".into(), request_id.into());
    if let Some(p) = priority {
        m.insert("Priority".into(), p.into());
    }
    Value::Object(m)
}

/// What `SubmitTranscodeJobs` answered.
#[derive(Debug, Clone, Copy)]
pub struct Submitted<'a> {
    /// `TranscodeTaskId`.
    pub task_id: &'a str,
    /// `TranscodeJobs[].JobId`.
    pub job_ids: &'a [String],
    /// VOD's `RequestId` of the call.
    pub request_id: &'a str,
}

/// `live2vod.TranscodeSubmitted` (worker: VOD accepted the job, or recognised the SessionId as
/// already submitted).
pub fn transcode_submitted(
    video_id: &str,
    command_id: &str,
    template_group_id: &str,
    r: Submitted<'_>,
    at_ms: i64,
) -> Value {
    let mut m = base(TRANSCODE_SUBMITTED, video_id, command_id, at_ms);
    m.insert("TemplateGroupId".into(), template_group_id.into());
    m.insert("TranscodeTaskId".into(), r.task_id.into());
    m.insert("JobIds".into(), r.job_ids.into());
    m.insert("RequestId".into(), r.request_id.into());
    m.insert("Status".into(), "success".into());
    Value::Object(m)
}

/// `live2vod.TranscodeRejected` (worker: VOD refused the submission for good).
pub fn transcode_rejected(
    video_id: &str,
    command_id: &str,
    template_group_id: &str,
    error_code: &str,
    error_message: &str,
    at_ms: i64,
) -> Value {
    let mut m = base(TRANSCODE_REJECTED, video_id, command_id, at_ms);
    m.insert("TemplateGroupId".into(), template_group_id.into());
    put_error(&mut m, error_code, error_message);
    m.insert("Status".into(), "fail".into());
    Value::Object(m)
}

/// `live2vod.VideoInfoObserved` (worker, TrackCompose: what GetVideoInfo showed at the compose
/// deadline). `Status` is `success` when the source is there ([`source_ready`]), else `fail`,
/// and `DeadlineMissed` says the same.
pub fn video_info_observed(
    video_id: &str,
    command_id: &str,
    video_status: &str,
    size: Option<i64>,
    duration: Option<f64>,
    stream: &StreamRef<'_>,
    at_ms: i64,
) -> Value {
    let mut m = base(VIDEO_INFO_OBSERVED, video_id, command_id, at_ms);
    m.insert("VideoStatus".into(), video_status.into());
    if let Some(size) = size {
        m.insert("Size".into(), size.into());
    }
    if let Some(d) = duration.and_then(serde_json::Number::from_f64) {
        m.insert("Duration".into(), Value::Number(d));
    }
    put_stream(&mut m, stream);
    let ready = source_ready(video_status);
    m.insert("DeadlineMissed".into(), (!ready).into());
    m.insert(
        "Status".into(),
        (if ready { "success" } else { "fail" }).into(),
    );
    Value::Object(m)
}

/// `live2vod.VideoInfoObserved` when GetVideoInfo refused for good at the compose deadline (e.g.
/// the video does not exist): no `VideoStatus`, `Status: fail`, the error, `DeadlineMissed`.
pub fn video_info_failed(
    video_id: &str,
    command_id: &str,
    error_code: &str,
    error_message: &str,
    stream: &StreamRef<'_>,
    at_ms: i64,
) -> Value {
    let mut m = base(VIDEO_INFO_OBSERVED, video_id, command_id, at_ms);
    put_stream(&mut m, stream);
    put_error(&mut m, error_code, error_message);
    m.insert("DeadlineMissed".into(), true.into());
    m.insert("Status".into(), "fail".into());
    Value::Object(m)
}

/// `live2vod.PlayInfoResolved` (worker, RefreshPlayInfo). `play_infos` are GetPlayInfo's
/// `PlayInfoList.PlayInfo[]` objects exactly as VOD returned them (PlayURL, Definition, Format,
/// ...): the fold's lenient parser reads them, and nothing VOD said is reshaped or dropped.
pub fn play_info_resolved(
    video_id: &str,
    command_id: &str,
    play_infos: &[Value],
    at_ms: i64,
) -> Value {
    let mut m = base(PLAY_INFO_RESOLVED, video_id, command_id, at_ms);
    m.insert("PlayInfos".into(), Value::Array(play_infos.to_vec()));
    m.insert("Status".into(), "success".into());
    Value::Object(m)
}

/// `live2vod.PlayInfoResolved` when GetPlayInfo refused for good: empty `PlayInfos`,
/// `Status: fail`, the error.
pub fn play_info_failed(
    video_id: &str,
    command_id: &str,
    error_code: &str,
    error_message: &str,
    at_ms: i64,
) -> Value {
    let mut m = base(PLAY_INFO_RESOLVED, video_id, command_id, at_ms);
    m.insert("PlayInfos".into(), Value::Array(Vec::new()));
    put_error(&mut m, error_code, error_message);
    m.insert("Status".into(), "fail".into());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{parse_event, routing_key, EventBody};
    use serde_json::json;

    const T: i64 = 1_512_725_177_250;

    #[test]
    fn built_bodies_parse_back_to_what_was_meant() {
        let b = to_bytes(&transcode_requested("v1", "g", "r1", Some("5"), T));
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
        let sub = Submitted {
            task_id: "task",
            job_ids: &[],
            request_id: "req",
        };
        let b = to_bytes(&transcode_submitted("v1", "tc-1", "g", sub, T));
        let e = parse_event(&b).unwrap();
        assert_eq!(
            e.body,
            EventBody::TranscodeSubmitted {
                command_id: "tc-1".into(),
                template_group_id: "g".into(),
                task_id: Some("task".into())
            }
        );
        let b = to_bytes(&transcode_rejected(
            "v1",
            "tc-1",
            "g",
            "Forbidden.IllegalStatus",
            "m",
            T,
        ));
        let e = parse_event(&b).unwrap();
        assert!(
            matches!(e.body, EventBody::TranscodeRejected { ref error_code, .. } if error_code.as_deref() == Some("Forbidden.IllegalStatus"))
        );
        let s = StreamRef::default();
        let b = to_bytes(&video_info_observed(
            "v1",
            "ct-1",
            "UploadSucc",
            Some(9),
            None,
            &s,
            T,
        ));
        let e = parse_event(&b).unwrap();
        assert!(
            matches!(e.body, EventBody::VideoInfoObserved { size: Some(9), ref video_status, .. } if video_status.as_deref() == Some("UploadSucc"))
        );
        let infos =
            [json!({"PlayURL": "https://cdn/x.m3u8", "Definition": "HD", "Format": "m3u8"})];
        let b = to_bytes(&play_info_resolved("v1", "pi-1", &infos, T));
        assert_eq!(routing_key(&b).unwrap(), "v1");
        let EventBody::PlayInfoResolved { play_infos, .. } = parse_event(&b).unwrap().body else {
            panic!("wrong body")
        };
        assert_eq!(
            play_infos[0].play_url.as_deref(),
            Some("https://cdn/x.m3u8")
        );
    }

    /// The exact bytes of every body, as the worker and the api wrote them before they shared
    /// this module (sorted keys, compact, whole seconds when the caller passes whole seconds).
    #[test]
    fn every_body_is_pinned_byte_for_byte() {
        let t = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let s = StreamRef {
            domain: "d",
            app: "a",
            stream: "s",
        };
        let jobs = ["j1".to_string(), "j2".to_string()];
        let sub = Submitted {
            task_id: "task",
            job_ids: &jobs,
            request_id: "req",
        };
        let play = [
            json!({"PlayURL":"https://cdn/v/hd.m3u8","Definition":"HD","Format":"m3u8","Bitrate":"1200.5","Duration":"12.50","Size":2048,"Width":1280,"Height":720,"StreamType":"video"}),
        ];
        let cases: [(Value, &str); 9] = [
            (
                transcode_requested("v1", "tg", "r1", Some("5"), t),
                r#"{"EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.TranscodeRequested","Priority":"5","RequestId":"r1","TemplateGroupId":"tg","VideoId":"v1"}"#,
            ),
            (
                transcode_requested("v1", "tg", "r1", None, t),
                r#"{"EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.TranscodeRequested","RequestId":"r1","TemplateGroupId":"tg","VideoId":"v1"}"#,
            ),
            (
                transcode_submitted("v1", "tc-1", "tg", sub, t),
                r#"{"CommandId":"tc-1","EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.TranscodeSubmitted","JobIds":["j1","j2"],"RequestId":"req","Status":"success","TemplateGroupId":"tg","TranscodeTaskId":"task","VideoId":"v1"}"#,
            ),
            (
                transcode_rejected(
                    "v1",
                    "tc-1",
                    "tg",
                    "Forbidden.IllegalStatus",
                    "no \"way\"",
                    t,
                ),
                r#"{"CommandId":"tc-1","ErrorCode":"Forbidden.IllegalStatus","ErrorMessage":"no \"way\"","EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.TranscodeRejected","Status":"fail","TemplateGroupId":"tg","VideoId":"v1"}"#,
            ),
            (
                video_info_observed("v1", "ct-1", "UploadSucc", Some(7), Some(12.5), &s, t),
                r#"{"AppName":"a","CommandId":"ct-1","DeadlineMissed":false,"DomainName":"d","Duration":12.5,"EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.VideoInfoObserved","Size":7,"Status":"success","StreamName":"s","VideoId":"v1","VideoStatus":"UploadSucc"}"#,
            ),
            (
                video_info_observed(
                    "v1",
                    "ct-1",
                    "Uploading",
                    None,
                    None,
                    &StreamRef::default(),
                    t,
                ),
                r#"{"CommandId":"ct-1","DeadlineMissed":true,"EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.VideoInfoObserved","Status":"fail","VideoId":"v1","VideoStatus":"Uploading"}"#,
            ),
            (
                video_info_failed("v1", "ct-1", "InvalidVideo.NotFound", "m", &s, t),
                r#"{"AppName":"a","CommandId":"ct-1","DeadlineMissed":true,"DomainName":"d","ErrorCode":"InvalidVideo.NotFound","ErrorMessage":"m","EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.VideoInfoObserved","Status":"fail","StreamName":"s","VideoId":"v1"}"#,
            ),
            (
                play_info_resolved("v1", "pi-1", &play, t),
                r#"{"CommandId":"pi-1","EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.PlayInfoResolved","PlayInfos":[{"Bitrate":"1200.5","Definition":"HD","Duration":"12.50","Format":"m3u8","Height":720,"PlayURL":"https://cdn/v/hd.m3u8","Size":2048,"StreamType":"video","Width":1280}],"Status":"success","VideoId":"v1"}"#,
            ),
            (
                play_info_failed("v1", "pi-1", "InvalidVideo.NoneStream", "m", t),
                r#"{"CommandId":"pi-1","ErrorCode":"InvalidVideo.NoneStream","ErrorMessage":"m","EventTime":"2026-01-01T00:00:00Z","EventType":"live2vod.PlayInfoResolved","PlayInfos":[],"Status":"fail","VideoId":"v1"}"#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(String::from_utf8(to_bytes(&body)).unwrap(), want);
            // The api writes `Value`'s Display: the same bytes.
            assert_eq!(body.to_string(), want);
        }
    }

    #[test]
    fn source_ready_statuses() {
        for s in SOURCE_READY_STATUSES {
            assert!(source_ready(s));
        }
        assert!(!source_ready("Uploading") && !source_ready("UploadFail") && !source_ready(""));
    }
}
