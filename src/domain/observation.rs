//! Observation events: what `live2vod reconcile` learned by asking VOD, written to the callbacks
//! topic as `live2vod.*` bodies that fold exactly like the callbacks they stand in for.
//!
//! | EventType | from | folds as | `EventTime` |
//! |---|---|---|---|
//! | `live2vod.RecordingObserved` | ListLiveRecordVideo entry with a `Video` | AddLiveRecordVideoComplete (success) | `RecordEndTime` |
//! | `live2vod.SourceObserved` | GetMezzanineInfo / GetVideoInfo | FileUploadComplete (success or fail) | the source's `CreationTime` |
//! | `live2vod.TranscodeObserved` | GetVideoInfo + GetPlayInfo + GetTranscodeSummary | TranscodeComplete with the play infos as `StreamInfos` (`success`) and the summary's failed jobs (`fail`) | latest `CreationTime` of the play infos (else the video's) |
//! | `live2vod.ComposeObserved` | ListLiveRecordVideo entry of a composed video (see [`composed_ids`]) | LiveRecordVideoComposeStart | `Video.CreationTime` (VOD creates the composed video when the compose starts), else `RecordEndTime` |
//! | `live2vod.SnapshotObserved` | GetVideoInfo `CoverURL` | SnapshotComplete with that `CoverUrl` | the video's `CreationTime` |
//!
//! Two rules make them safe to mix with callbacks:
//! - **Deterministic bodies**: built only from VOD's answer (never the clock of the sweep), with
//!   fields in a fixed order, so the same answer gives byte-identical bodies and a repeated
//!   sweep folds as a duplicate.
//! - **A recovered fact never beats a richer callback**: the time an observation carries is the
//!   time VOD created the thing it reports, which is never later than the callback that reports
//!   it (a recording's AddLiveRecordVideoComplete is sent after `RecordEndTime`; an upload or a
//!   transcode completes after its file was created). The registers prefer the greater time, so
//!   when the callback arrives too (before or after) it wins, and where the values agree the
//!   view is the same as from the callback alone.
use serde_json::{Map, Value};

use super::time::format_rfc3339;

pub use super::vocab::event_type::{
    COMPOSE_OBSERVED, RECORDING_OBSERVED, SNAPSHOT_OBSERVED, SOURCE_OBSERVED, TRANSCODE_OBSERVED,
};

/// Every observation event type.
pub const ALL: [&str; 5] = [
    RECORDING_OBSERVED,
    SOURCE_OBSERVED,
    TRANSCODE_OBSERVED,
    COMPOSE_OBSERVED,
    SNAPSHOT_OBSERVED,
];

/// One ListLiveRecordVideo entry that carries a `Video`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// `Video.VideoId`.
    pub video_id: String,
    /// `DomainName`.
    pub domain: String,
    /// `AppName`.
    pub app: String,
    /// `StreamName`.
    pub stream: String,
    /// `RecordStartTime` (ms).
    pub record_start_ms: i64,
    /// `RecordEndTime` (ms).
    pub record_end_ms: i64,
    /// `Video.Status` as VOD reported it (informational).
    pub video_status: Option<String>,
    /// `Video.CreationTime` (ms).
    pub created_ms: Option<i64>,
}

/// The VideoIds of `recordings` (ListLiveRecordVideo entries, any streams) that are composed
/// videos rather than recorded segments. ListLiveRecordVideo lists both and marks neither; a
/// composed video's record window is its session's (from the first segment's start to the
/// last one's end), so it is told apart by that: an entry is composed when another entry of
/// the same stream lies within its window, and either the windows differ or the other was
/// created first (a one-segment session: VOD creates the composed video only after the
/// interrupt timeout, later than the segment). Segments of one stream never overlap. The
/// first segment of a session starts when its composed video does, so a sweep (which selects
/// on record start) always lists the two together.
pub fn composed_ids(recordings: &[Recording]) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut by_stream: std::collections::BTreeMap<(&str, &str, &str), Vec<&Recording>> =
        Default::default();
    for r in recordings {
        by_stream
            .entry((&r.domain, &r.app, &r.stream))
            .or_default()
            .push(r);
    }
    for recs in by_stream.values() {
        for e in recs {
            let contains = recs.iter().any(|f| {
                f.video_id != e.video_id
                    && f.record_start_ms >= e.record_start_ms
                    && f.record_end_ms <= e.record_end_ms
                    && ((f.record_start_ms, f.record_end_ms)
                        != (e.record_start_ms, e.record_end_ms)
                        || matches!((f.created_ms, e.created_ms), (Some(a), Some(b)) if a < b))
            });
            if contains {
                out.insert(e.video_id.clone());
            }
        }
    }
    out
}

/// A video's cover as a probe saw it (GetVideoInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cover {
    /// The video probed.
    pub video_id: String,
    /// `CoverURL`.
    pub cover_url: String,
    /// The video's `CreationTime` (ms): the observation's time.
    pub created_ms: i64,
}

/// The source of a video as a probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// The video probed.
    pub video_id: String,
    /// Whether the source is there (`Normal`, `UploadSucc`, ...) or failed (`UploadFail`).
    pub success: bool,
    /// VOD's word (`Mezzanine.Status` or `Video.Status`).
    pub vod_status: String,
    /// `Size` in bytes.
    pub size: Option<i64>,
    /// `FileURL` (GetMezzanineInfo only).
    pub file_url: Option<String>,
    /// `CreationTime` of the source (ms): the observation's time.
    pub created_ms: i64,
}

/// One playable rendition (a GetPlayInfo `PlayInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlayStream {
    /// `Definition`.
    pub definition: String,
    /// `Format`.
    pub format: String,
    /// `PlayURL`.
    pub play_url: Option<String>,
    /// `Bitrate` (kbps, text).
    pub bitrate: Option<String>,
    /// `Duration` (s).
    pub duration: Option<f64>,
    /// `Size` in bytes.
    pub size: Option<i64>,
    /// `Width`.
    pub width: Option<i64>,
    /// `Height`.
    pub height: Option<i64>,
    /// `JobId`.
    pub job_id: Option<String>,
}

/// A transcode outcome as a probe saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeState {
    /// The video probed.
    pub video_id: String,
    /// `Normal` with play infos: success; `TranscodeFail`: fail.
    pub success: bool,
    /// `Video.Status` (`Normal`, `TranscodeFail`).
    pub vod_status: String,
    /// The playable renditions (empty on failure).
    pub streams: Vec<PlayStream>,
    /// The renditions whose job failed (GetTranscodeSummary `TranscodeFail`), as
    /// (`Definition`, `Format`), sorted: GetPlayInfo lists only what plays.
    pub failed: Vec<(String, String)>,
    /// Source time of the outcome (see the module doc).
    pub at_ms: i64,
}

fn obj(pairs: Vec<(&str, Value)>) -> Vec<u8> {
    // serde_json's Map keeps insertion order only with `preserve_order`; write by hand so the
    // field order (and so the bytes) is fixed whatever the features.
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if v.is_null() {
            continue;
        }
        if i > 0 && out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(Value::String((*k).to_string()).to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(v.to_string().as_bytes());
    }
    out.push(b'}');
    out
}

fn opt_s(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn opt_i(i: Option<i64>) -> Value {
    i.map_or(Value::Null, Value::from)
}

/// The body of an observation of the ListLiveRecordVideo entry `r`, of type `event_type`
/// at `time_ms`.
fn listed(event_type: &str, time_ms: i64, r: &Recording) -> Vec<u8> {
    obj(vec![
        ("EventType", event_type.into()),
        ("EventTime", format_rfc3339(time_ms).into()),
        ("VideoId", r.video_id.as_str().into()),
        ("Status", "success".into()),
        ("DomainName", r.domain.as_str().into()),
        ("AppName", r.app.as_str().into()),
        ("StreamName", r.stream.as_str().into()),
        ("RecordStartTime", format_rfc3339(r.record_start_ms).into()),
        ("RecordEndTime", format_rfc3339(r.record_end_ms).into()),
        ("VideoStatus", opt_s(&r.video_status)),
    ])
}

/// Body of `live2vod.RecordingObserved` (key: the VideoId).
pub fn recording_observed(r: &Recording) -> Vec<u8> {
    listed(RECORDING_OBSERVED, r.record_end_ms, r)
}

/// Body of `live2vod.ComposeObserved` (key: the VideoId): the composed video `r` whose
/// LiveRecordVideoComposeStart never arrived.
pub fn compose_observed(r: &Recording) -> Vec<u8> {
    listed(COMPOSE_OBSERVED, r.created_ms.unwrap_or(r.record_end_ms), r)
}

/// Body of `live2vod.SnapshotObserved` (key: the VideoId).
pub fn snapshot_observed(c: &Cover) -> Vec<u8> {
    obj(vec![
        ("EventType", SNAPSHOT_OBSERVED.into()),
        ("EventTime", format_rfc3339(c.created_ms).into()),
        ("VideoId", c.video_id.as_str().into()),
        ("Status", "success".into()),
        ("CoverUrl", c.cover_url.as_str().into()),
    ])
}

/// Body of `live2vod.SourceObserved` (key: the VideoId).
pub fn source_observed(s: &SourceState) -> Vec<u8> {
    obj(vec![
        ("EventType", SOURCE_OBSERVED.into()),
        ("EventTime", format_rfc3339(s.created_ms).into()),
        ("VideoId", s.video_id.as_str().into()),
        ("Status", if s.success { "success" } else { "fail" }.into()),
        ("VideoStatus", s.vod_status.as_str().into()),
        ("Size", opt_i(s.size)),
        ("FileUrl", opt_s(&s.file_url)),
    ])
}

/// Body of `live2vod.TranscodeObserved` (key: the VideoId).
pub fn transcode_observed(t: &TranscodeState) -> Vec<u8> {
    let streams: Vec<Value> = t
        .streams
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("Status".into(), "success".into());
            m.insert("Definition".into(), p.definition.as_str().into());
            m.insert("Format".into(), p.format.as_str().into());
            for (k, v) in [
                ("FileUrl", opt_s(&p.play_url)),
                ("Bitrate", opt_s(&p.bitrate)),
                (
                    "Duration",
                    p.duration
                        .and_then(serde_json::Number::from_f64)
                        .map_or(Value::Null, Value::Number),
                ),
                ("Size", opt_i(p.size)),
                ("Width", opt_i(p.width)),
                ("Height", opt_i(p.height)),
                ("JobId", opt_s(&p.job_id)),
            ] {
                if !v.is_null() {
                    m.insert(k.into(), v);
                }
            }
            // serde_json's default Map is a BTreeMap: the key order is fixed.
            Value::Object(m)
        })
        .chain(t.failed.iter().map(|(definition, format)| {
            let mut m = Map::new();
            m.insert("Status".into(), "fail".into());
            m.insert("Definition".into(), definition.as_str().into());
            m.insert("Format".into(), format.as_str().into());
            Value::Object(m)
        }))
        .collect();
    obj(vec![
        ("EventType", TRANSCODE_OBSERVED.into()),
        ("EventTime", format_rfc3339(t.at_ms).into()),
        ("VideoId", t.video_id.as_str().into()),
        ("Status", if t.success { "success" } else { "fail" }.into()),
        ("VideoStatus", t.vod_status.as_str().into()),
        ("StreamInfos", Value::Array(streams)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{parse_event, EventBody};

    fn rec() -> Recording {
        Recording {
            video_id: "v1".into(),
            domain: "d".into(),
            app: "a".into(),
            stream: "s".into(),
            record_start_ms: 1_000,
            record_end_ms: 61_000,
            video_status: Some("UploadSucc".into()),
            created_ms: Some(61_500),
        }
    }

    fn at(id: &str, stream: &str, start: i64, end: i64, created: i64) -> Recording {
        Recording {
            video_id: id.into(),
            stream: stream.into(),
            record_start_ms: start,
            record_end_ms: end,
            created_ms: Some(created),
            ..rec()
        }
    }

    #[test]
    fn a_composed_video_is_the_entry_whose_window_holds_its_segments() {
        let recs = vec![
            at("seg1", "s", 0, 100, 100),
            at("seg2", "s", 100, 200, 200),
            at("comp", "s", 0, 200, 400),
            // Another stream's entries never make one of this stream's composed.
            at("other", "t", 0, 1_000, 1_000),
            // A one-segment session: same window, the composed video created later.
            at("lone", "s", 500, 600, 600),
            at("lone-c", "s", 500, 600, 900),
        ];
        let c = composed_ids(&recs);
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            vec!["comp".to_string(), "lone-c".to_string()]
        );
        // Segments alone: nothing is composed.
        assert!(composed_ids(&recs[..2]).is_empty());
    }

    #[test]
    fn compose_and_snapshot_observations_fold_as_their_callbacks() {
        let r = at("comp", "s", 0, 200, 400);
        let body = compose_observed(&r);
        assert_eq!(body, compose_observed(&r), "deterministic bytes");
        let ev = parse_event(&body).unwrap();
        assert_eq!(ev.event_time_ms, 400, "the composed video's creation time");
        match ev.body {
            EventBody::LiveRecordVideoComposeStart { stream } => assert_eq!(stream.path(), "d/a/s"),
            other => panic!("{other:?}"),
        }
        let c = Cover {
            video_id: "v".into(),
            cover_url: "https://cdn/c.jpg".into(),
            created_ms: 7,
        };
        let body = snapshot_observed(&c);
        let ev = parse_event(&body).unwrap();
        assert_eq!(ev.event_time_ms, 7);
        match ev.body {
            EventBody::SnapshotComplete { cover_url, .. } => {
                assert_eq!(cover_url.as_deref(), Some("https://cdn/c.jpg"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recording_observed_folds_as_a_recording_with_the_record_end_as_time() {
        let body = recording_observed(&rec());
        assert_eq!(body, recording_observed(&rec()), "deterministic bytes");
        let ev = parse_event(&body).unwrap();
        assert_eq!(ev.event_time_ms, 61_000);
        match ev.body {
            EventBody::AddLiveRecordVideoComplete {
                stream,
                record_start_ms,
                record_end_ms,
            } => {
                assert_eq!(stream.path(), "d/a/s");
                assert_eq!(
                    (record_start_ms, record_end_ms),
                    (Some(1_000), Some(61_000))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn source_and_transcode_observations_fold_as_their_callbacks() {
        let s = SourceState {
            video_id: "c1".into(),
            success: false,
            vod_status: "UploadFail".into(),
            size: None,
            file_url: None,
            created_ms: 5_000,
        };
        let body = source_observed(&s);
        let ev = parse_event(&body).unwrap();
        assert!(matches!(ev.body, EventBody::FileUploadComplete { .. }));
        assert_eq!(ev.status, Some(crate::domain::lattice::Status::Fail));
        let t = TranscodeState {
            video_id: "c1".into(),
            success: true,
            vod_status: "Normal".into(),
            streams: vec![PlayStream {
                definition: "HD".into(),
                format: "m3u8".into(),
                play_url: Some("https://cdn/x.m3u8".into()),
                bitrate: Some("1200".into()),
                duration: Some(12.5),
                size: Some(9),
                width: Some(1280),
                height: Some(720),
                job_id: Some("j".into()),
            }],
            failed: vec![("OD".into(), "m3u8".into())],
            at_ms: 9_000,
        };
        let body = transcode_observed(&t);
        assert_eq!(body, transcode_observed(&t));
        let ev = parse_event(&body).unwrap();
        match ev.body {
            EventBody::TranscodeComplete { stream_infos } => {
                assert_eq!(stream_infos.len(), 2);
                assert_eq!(stream_infos[0].definition.as_deref(), Some("HD"));
                assert_eq!(stream_infos[0].width, Some(1280));
                // A failed job folds as a failed rendition, as TranscodeComplete reports it.
                assert_eq!(stream_infos[1].definition.as_deref(), Some("OD"));
                assert_eq!(
                    stream_infos[1].status,
                    Some(crate::domain::lattice::Status::Fail)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
