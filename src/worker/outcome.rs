//! What the worker writes: outcome events (bodies built by [`crate::domain::outcome`], the one
//! builder of `live2vod.*` bodies) and ledger records. No I/O, no clock: the event time comes in
//! as a parameter (ms since the epoch; the worker passes whole seconds).
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::outcome as body;
pub use crate::domain::outcome::{source_ready, StreamRef, SOURCE_READY_STATUSES};
use crate::domain::vocab::event_type::{
    PLAY_INFO_RESOLVED, TRANSCODE_REJECTED, TRANSCODE_SUBMITTED, VIDEO_INFO_OBSERVED,
};
/// The command kind as used in metric labels and ledger records.
pub use crate::domain::vocab::CommandKind as Kind;
use crate::vod::client::{SubmitTranscodeResult, VideoInfo};

/// An outcome event ready to produce: its type and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub event_type: &'static str,
    pub body: Value,
    /// `ok` or `rejected` (the `COMMANDS_EXECUTED` outcome label and the ledger's outcome).
    pub result: &'static str,
}

impl Outcome {
    /// The serialized body (a flat JSON object).
    pub fn to_bytes(&self) -> Vec<u8> {
        body::to_bytes(&self.body)
    }
}

/// `SubmitTranscodeJobs` accepted the job (or recognised the SessionId as already submitted).
pub fn transcode_submitted(
    video_id: &str,
    command_id: &str,
    template_group_id: &str,
    r: &SubmitTranscodeResult,
    at_ms: i64,
) -> Outcome {
    let submitted = body::Submitted {
        task_id: &r.transcode_task_id,
        job_ids: &r.job_ids,
        request_id: &r.request_id,
    };
    Outcome {
        event_type: TRANSCODE_SUBMITTED,
        body: body::transcode_submitted(video_id, command_id, template_group_id, submitted, at_ms),
        result: "ok",
    }
}

/// `SubmitTranscodeJobs` refused the job for good (e.g. `Forbidden.IllegalStatus`).
pub fn transcode_rejected(
    video_id: &str,
    command_id: &str,
    template_group_id: &str,
    error_code: &str,
    error_message: &str,
    at_ms: i64,
) -> Outcome {
    Outcome {
        event_type: TRANSCODE_REJECTED,
        body: body::transcode_rejected(
            video_id,
            command_id,
            template_group_id,
            error_code,
            error_message,
            at_ms,
        ),
        result: "rejected",
    }
}

/// What `GetVideoInfo` showed at the compose deadline. `Status` is `success` when the source is
/// there ([`source_ready`]), else `fail` with `DeadlineMissed: true`.
pub fn video_info_observed(
    video_id: &str,
    command_id: &str,
    info: &VideoInfo,
    stream: &StreamRef<'_>,
    at_ms: i64,
) -> Outcome {
    Outcome {
        event_type: VIDEO_INFO_OBSERVED,
        body: body::video_info_observed(
            video_id,
            command_id,
            &info.status,
            info.size,
            info.duration,
            stream,
            at_ms,
        ),
        result: "ok",
    }
}

/// `GetVideoInfo` refused for good at the compose deadline (e.g. the video does not exist):
/// no `VideoStatus`, `Status: fail`, the error, `DeadlineMissed: true`.
pub fn video_info_failed(
    video_id: &str,
    command_id: &str,
    error_code: &str,
    error_message: &str,
    stream: &StreamRef<'_>,
    at_ms: i64,
) -> Outcome {
    Outcome {
        event_type: VIDEO_INFO_OBSERVED,
        body: body::video_info_failed(
            video_id,
            command_id,
            error_code,
            error_message,
            stream,
            at_ms,
        ),
        result: "rejected",
    }
}

/// The play infos `GetPlayInfo` returned, as VOD wrote them.
pub fn play_info_resolved(
    video_id: &str,
    command_id: &str,
    infos: &[Value],
    at_ms: i64,
) -> Outcome {
    Outcome {
        event_type: PLAY_INFO_RESOLVED,
        body: body::play_info_resolved(video_id, command_id, infos, at_ms),
        result: "ok",
    }
}

/// `GetPlayInfo` refused for good: empty `PlayInfos`, `Status: fail`, the error.
pub fn play_info_failed(
    video_id: &str,
    command_id: &str,
    error_code: &str,
    error_message: &str,
    at_ms: i64,
) -> Outcome {
    Outcome {
        event_type: PLAY_INFO_RESOLVED,
        body: body::play_info_failed(video_id, command_id, error_code, error_message, at_ms),
        result: "rejected",
    }
}

/// Value of a ledger record (key = command id) on `<prefix>worker-ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LedgerRecord {
    pub command_id: String,
    pub video_id: String,
    /// `submit_transcode` | `track_compose` | `refresh_play_info`.
    pub kind: String,
    /// `ok` | `rejected`.
    pub outcome: String,
    /// The outcome event's type.
    pub event_type: String,
    /// UTC `YYYY-MM-DDThh:mm:ssZ`.
    pub finished_at: String,
}

impl LedgerRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600_000;

    #[test]
    fn submitted_event_carries_the_fields_the_fold_reads() {
        let r = SubmitTranscodeResult {
            request_id: "req".into(),
            transcode_task_id: "task".into(),
            job_ids: vec!["j1".into()],
        };
        let o = transcode_submitted("v1", "tc-1", "tg", &r, T0);
        let v: Value = serde_json::from_slice(&o.to_bytes()).unwrap();
        assert_eq!(v["EventType"], "live2vod.TranscodeSubmitted");
        assert_eq!(v["VideoId"], "v1");
        assert_eq!(v["CommandId"], "tc-1");
        assert_eq!(v["TemplateGroupId"], "tg");
        assert_eq!(v["TranscodeTaskId"], "task");
        assert_eq!(v["Status"], "success");
        assert_eq!(v["EventTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn rejected_event_names_the_vod_error() {
        let o = transcode_rejected("v1", "tc-1", "tg", "Forbidden.IllegalStatus", "no", T0);
        assert_eq!(o.body["ErrorCode"], "Forbidden.IllegalStatus");
        assert_eq!(o.body["ErrorMessage"], "no");
        assert_eq!(o.body["Status"], "fail");
        assert_eq!(o.result, "rejected");
    }

    #[test]
    fn video_info_marks_a_missed_deadline() {
        let mut info = VideoInfo {
            request_id: "r".into(),
            status: "Uploading".into(),
            size: None,
            duration: None,
            title: None,
            cover_url: None,
            template_group_id: None,
        };
        let s = StreamRef {
            domain: "d",
            app: "a",
            stream: "s",
        };
        let o = video_info_observed("v", "ct-1", &info, &s, T0);
        assert_eq!(o.body["VideoStatus"], "Uploading");
        assert_eq!(o.body["DeadlineMissed"], true);
        assert_eq!(o.body["Status"], "fail");
        assert_eq!(o.body["StreamName"], "s");
        info.status = "UploadSucc".into();
        info.size = Some(7);
        let o = video_info_observed("v", "ct-1", &info, &s, T0);
        assert_eq!(o.body["DeadlineMissed"], false);
        assert_eq!(o.body["Status"], "success");
        assert_eq!(o.body["Size"], 7);
    }

    /// The fold reads these events with the domain's parser: each must land in its variant
    /// with the fields the fold uses.
    #[test]
    fn every_outcome_parses_with_the_domain_parser() {
        use crate::domain::event::{parse_event, EventBody};
        let t = T0;
        let r = SubmitTranscodeResult {
            request_id: "req".into(),
            transcode_task_id: "task".into(),
            job_ids: vec![],
        };
        let info = VideoInfo {
            request_id: "r".into(),
            status: "UploadSucc".into(),
            size: Some(9),
            duration: None,
            title: None,
            cover_url: None,
            template_group_id: None,
        };
        let play = serde_json::json!({
            "PlayURL": "https://cdn/x.m3u8",
            "Definition": "HD",
            "Bitrate": "1200",
            "Duration": 1.5,
            "Width": 1280,
        });
        let s = StreamRef::default();
        let cases = [
            transcode_submitted("v", "tc-1", "tg", &r, t),
            transcode_rejected("v", "tc-1", "tg", "Forbidden.IllegalStatus", "m", t),
            video_info_observed("v", "ct-1", &info, &s, t),
            video_info_failed("v", "ct-1", "InvalidVideo.NotFound", "m", &s, t),
            play_info_resolved("v", "pi-1", std::slice::from_ref(&play), t),
            play_info_failed("v", "pi-1", "InvalidVideo.NotFound", "m", t),
        ];
        for o in cases {
            let bytes = o.to_bytes();
            let e = parse_event(&bytes).unwrap_or_else(|err| panic!("{}: {err:?}", o.event_type));
            assert_eq!(e.event_type, o.event_type);
            assert_eq!(e.id, "v");
            assert!(e.event_time_ms > 0, "EventTime parsed");
            match (o.event_type, &e.body) {
                (
                    TRANSCODE_SUBMITTED,
                    EventBody::TranscodeSubmitted {
                        command_id,
                        template_group_id,
                        task_id,
                    },
                ) => {
                    assert_eq!((&**command_id, &**template_group_id), ("tc-1", "tg"));
                    assert_eq!(task_id.as_deref(), Some("task"));
                }
                (TRANSCODE_REJECTED, EventBody::TranscodeRejected { error_code, .. }) => {
                    assert_eq!(error_code.as_deref(), Some("Forbidden.IllegalStatus"));
                }
                (
                    VIDEO_INFO_OBSERVED,
                    EventBody::VideoInfoObserved {
                        command_id,
                        video_status,
                        size,
                    },
                ) => {
                    assert_eq!(command_id, "ct-1");
                    if o.result == "ok" {
                        assert_eq!(video_status.as_deref(), Some("UploadSucc"));
                        assert_eq!(*size, Some(9));
                    }
                }
                (
                    PLAY_INFO_RESOLVED,
                    EventBody::PlayInfoResolved {
                        command_id,
                        play_infos,
                    },
                ) => {
                    assert_eq!(command_id, "pi-1");
                    if o.result == "ok" {
                        assert_eq!(play_infos.len(), 1);
                        assert_eq!(
                            play_infos[0].play_url.as_deref(),
                            Some("https://cdn/x.m3u8")
                        );
                        assert_eq!(play_infos[0].bitrate.as_deref(), Some("1200"));
                        assert_eq!(play_infos[0].width, Some(1280));
                    }
                }
                (ty, body) => panic!("{ty} parsed as {body:?}"),
            }
        }
    }

    #[test]
    fn ledger_record_round_trips() {
        let r = LedgerRecord {
            command_id: "tc-1".into(),
            video_id: "v".into(),
            kind: "submit_transcode".into(),
            outcome: "ok".into(),
            event_type: TRANSCODE_SUBMITTED.into(),
            finished_at: "t".into(),
        };
        let back: LedgerRecord = serde_json::from_slice(&r.to_bytes()).unwrap();
        assert_eq!(back, r);
        assert!(String::from_utf8(r.to_bytes())
            .unwrap()
            .contains("\"CommandId\":\"tc-1\""));
    }
}
