//! Lenient, faithful parsing of callback bodies: VOD's own events and live2vod's `live2vod.*`.
//!
//! Lenient: numbers may arrive as strings (and strings as numbers), field names are matched
//! exactly first and then case-insensitively (`FileUrl`/`FileURL`), `EventTime` may carry
//! milliseconds in either VOD spelling. Faithful: unknown event types are kept as
//! [`EventBody::Unknown`] and unknown fields are kept in [`Event::extra`] (and in the nested
//! `extra` of list items), so nothing VOD sends is silently lost; the raw body stays on Kafka too.
use std::borrow::Cow;

use serde_json::{Map, Value};
use thiserror::Error;

use super::compact::json::{Num, Obj, J};
use super::lattice::{Origin, OriginKind, Reg, Status, StreamKey, STREAM_KEY_PREFIX};
use super::time::{format_rfc3339, parse_event_time, TimeError};

/// Why a body cannot be folded. The relay answers 400 for these; the fold dead-letters them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    /// Not parseable as JSON at all.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object.
    #[error("body is JSON {0}, not an object")]
    NotObject(&'static str),
    /// None of `VideoId`, `MediaId`, `ImageId` is a non-empty string (or, for
    /// `live2vod.StreamFact`, the stream is incomplete).
    #[error("no routing id: none of VideoId, MediaId, ImageId, AttachedMediaId, JobId is a non-empty string")]
    NoRoutingId,
    /// A field the event type cannot do without.
    #[error("{event_type}: missing or empty field {field}")]
    MissingField {
        /// Event type being parsed.
        event_type: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field is present but unusable.
    #[error("field {field}: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `EventTime` is present but not a time.
    #[error("bad EventTime: {0}")]
    BadTime(#[from] TimeError),
    /// The Kafka record key disagrees with the body; folding it would split an aggregate over
    /// two keys (and partitions), so it is refused.
    #[error("record key {record_key:?} does not match the body's routing key {routing_key:?}")]
    KeyMismatch {
        /// Key on the Kafka record.
        record_key: String,
        /// Key derived from the body.
        routing_key: String,
    },
}

/// Which field supplied the routing id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdField {
    /// `VideoId`.
    VideoId,
    /// `MediaId`.
    MediaId,
    /// `ImageId`.
    ImageId,
    /// `AttachedMediaId` (AttachedMediaUploadComplete carries no other id).
    AttachedMediaId,
    /// `JobId` (a failed UploadByURLComplete has no VideoId yet).
    JobId,
}

impl IdField {
    /// The field's name in a callback body.
    pub fn name(self) -> &'static str {
        match self {
            IdField::VideoId => "VideoId",
            IdField::MediaId => "MediaId",
            IdField::ImageId => "ImageId",
            IdField::AttachedMediaId => "AttachedMediaId",
            IdField::JobId => "JobId",
        }
    }
}

/// One rendition as reported by `StreamTranscodeComplete` or inside `TranscodeComplete`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamInfo<'a> {
    /// `Status` (absent -> `Other("")`).
    pub status: Option<Status>,
    /// `Definition` (FD LD SD HD OD 2K 4K AUTO, sometimes suffixed like `HD-MP4`).
    pub definition: Option<Cow<'a, str>>,
    /// `Format` (mp4, m3u8, ...).
    pub format: Option<Cow<'a, str>>,
    /// `Bitrate` in kbps, kept as text as VOD sends it.
    pub bitrate: Option<Cow<'a, str>>,
    /// `Duration` in seconds.
    pub duration: Option<f64>,
    /// `Fps`, as text.
    pub fps: Option<Cow<'a, str>>,
    /// `Width`.
    pub width: Option<i64>,
    /// `Height`.
    pub height: Option<i64>,
    /// `Size` in bytes.
    pub size: Option<i64>,
    /// `Encrypt`.
    pub encrypt: Option<bool>,
    /// `FileUrl` / `FileURL`.
    pub file_url: Option<Cow<'a, str>>,
    /// `JobId`.
    pub job_id: Option<Cow<'a, str>>,
    /// `ErrorCode`.
    pub error_code: Option<Cow<'a, str>>,
    /// `ErrorMessage`.
    pub error_message: Option<Cow<'a, str>>,
    /// Every other field (`Codec`, `EncryptType`, `WatermarkId`, ...).
    pub extra: Map<String, Value>,
}

/// One entry of `SnapshotComplete.SnapshotInfos[]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnapshotInfo<'a> {
    /// `Status`.
    pub status: Option<Status>,
    /// `SnapshotType` (CoverSnapshot / NormalSnapshot / SpriteSnapshot).
    pub snapshot_type: Option<Cow<'a, str>>,
    /// `SnapshotCount`.
    pub count: Option<i64>,
    /// `SnapshotFormat`.
    pub format: Option<Cow<'a, str>>,
    /// `SnapshotRegular`.
    pub regular: Option<Cow<'a, str>>,
    /// `JobId`.
    pub job_id: Option<Cow<'a, str>>,
    /// Every other field.
    pub extra: Map<String, Value>,
}

/// One entry of `live2vod.PlayInfoResolved.PlayInfos[]` (GetPlayInfo's `PlayInfo`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlayInfo<'a> {
    /// `PlayURL`.
    pub play_url: Option<Cow<'a, str>>,
    /// `Definition`.
    pub definition: Option<Cow<'a, str>>,
    /// `Format`.
    pub format: Option<Cow<'a, str>>,
    /// `Bitrate`.
    pub bitrate: Option<Cow<'a, str>>,
    /// `Duration` in seconds.
    pub duration: Option<f64>,
    /// `Size`.
    pub size: Option<i64>,
    /// `Width`.
    pub width: Option<i64>,
    /// `Height`.
    pub height: Option<i64>,
    /// `JobId`.
    pub job_id: Option<Cow<'a, str>>,
    /// `Status` (GetPlayInfo says `Normal` for playable streams).
    pub status: Option<Cow<'a, str>>,
    /// Every other field.
    pub extra: Map<String, Value>,
}

/// What a video contributes to its stream aggregate (`live2vod.StreamFact`, derived by the fold).
///
/// It carries the video's registers *with their ordering keys*, and the stream aggregate joins
/// them with the same rule as the video does, so the stream ends up with exactly the video's final
/// view whatever order the facts arrive in (facts are monotone: each one is <= the final one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFact {
    /// The video.
    pub video_id: String,
    /// The video's origin register (its `value.stream` is the fact's stream).
    pub origin: Reg<Origin>,
    /// For composed videos: the source (`FileUploadComplete`) status register.
    pub source: Option<Reg<Status>>,
}

impl StreamFact {
    /// The stream the fact belongs to.
    pub fn stream(&self) -> &StreamKey {
        &self.origin.value.stream
    }

    /// The JSON body produced to the callbacks topic (key: the stream's aggregate key).
    /// Deterministic for a given fact, so re-derived facts are recognised as duplicates.
    pub fn to_body(&self) -> Vec<u8> {
        // Written directly, keys in the order serde_json's (sorted) map writes them; the test
        // `fact_body_is_what_serde_json_writes` pins the bytes to the `Value` rendering.
        fn field(out: &mut Vec<u8>, key: &str, value: &str) {
            if out.len() > 1 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            // Writing a string into a vector cannot fail.
            let _ = serde_json::to_writer(&mut *out, value);
        }
        let o = &self.origin;
        let event_time = self
            .source
            .as_ref()
            .map_or(o.at_ms, |s| s.at_ms.max(o.at_ms));
        let k = &o.value.stream;
        let mut out = Vec::with_capacity(320 + self.video_id.len());
        out.push(b'{');
        field(&mut out, "AppName", &k.app);
        field(&mut out, "DomainName", &k.domain);
        field(&mut out, "EventTime", &format_rfc3339(event_time));
        field(&mut out, "EventType", STREAM_FACT);
        field(&mut out, "OriginStatus", o.value.status.as_str());
        field(&mut out, "OriginTime", &format_rfc3339(o.at_ms));
        if let Some(t) = o.value.record_end_ms {
            field(&mut out, "RecordEndTime", &format_rfc3339(t));
        }
        if let Some(t) = o.value.record_start_ms {
            field(&mut out, "RecordStartTime", &format_rfc3339(t));
        }
        field(&mut out, "Role", o.value.kind.as_str());
        if let Some(s) = &self.source {
            field(&mut out, "SourceStatus", s.value.as_str());
            field(&mut out, "SourceTime", &format_rfc3339(s.at_ms));
        }
        field(&mut out, "StreamName", &k.stream);
        field(&mut out, "VideoId", &self.video_id);
        out.push(b'}');
        out
    }

    /// The body as a `serde_json::Value` rendering (the reference [`Self::to_body`] matches).
    #[cfg(test)]
    fn to_body_value(&self) -> Vec<u8> {
        let o = &self.origin;
        let mut m = Map::new();
        let event_time = self
            .source
            .as_ref()
            .map_or(o.at_ms, |s| s.at_ms.max(o.at_ms));
        m.insert("EventType".into(), STREAM_FACT.into());
        m.insert("EventTime".into(), format_rfc3339(event_time).into());
        m.insert("VideoId".into(), self.video_id.clone().into());
        m.insert("DomainName".into(), (*o.value.stream.domain).into());
        m.insert("AppName".into(), (*o.value.stream.app).into());
        m.insert("StreamName".into(), (*o.value.stream.stream).into());
        m.insert("Role".into(), o.value.kind.as_str().into());
        m.insert("OriginStatus".into(), o.value.status.as_str().into());
        m.insert("OriginTime".into(), format_rfc3339(o.at_ms).into());
        if let Some(t) = o.value.record_start_ms {
            m.insert("RecordStartTime".into(), format_rfc3339(t).into());
        }
        if let Some(t) = o.value.record_end_ms {
            m.insert("RecordEndTime".into(), format_rfc3339(t).into());
        }
        if let Some(s) = &self.source {
            m.insert("SourceStatus".into(), s.value.as_str().into());
            m.insert("SourceTime".into(), format_rfc3339(s.at_ms).into());
        }
        serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
    }
}

/// The typed content of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody<'a> {
    /// One recording cycle was added to VOD.
    AddLiveRecordVideoComplete {
        /// The stream recorded.
        stream: StreamKey,
        /// `RecordStartTime`.
        record_start_ms: Option<i64>,
        /// `RecordEndTime`.
        record_end_ms: Option<i64>,
    },
    /// Auto-compose started; the event's id is the NEW composed video.
    LiveRecordVideoComposeStart {
        /// The stream whose session is being composed.
        stream: StreamKey,
    },
    /// The source file is ready (for a composed video: composing finished).
    FileUploadComplete {
        /// `Size` in bytes.
        size: Option<i64>,
        /// `FileUrl`.
        file_url: Option<Cow<'a, str>>,
    },
    /// Snapshots (cover, normal, sprite) done.
    SnapshotComplete {
        /// `SubType`.
        sub_type: Option<Cow<'a, str>>,
        /// `CoverUrl`.
        cover_url: Option<Cow<'a, str>>,
        /// `ErrorCode`.
        error_code: Option<Cow<'a, str>>,
        /// `ErrorMessage`.
        error_message: Option<Cow<'a, str>>,
        /// `SnapshotInfos[]`.
        snapshots: Vec<SnapshotInfo<'a>>,
    },
    /// One rendition done.
    StreamTranscodeComplete(StreamInfo<'a>),
    /// All renditions done.
    TranscodeComplete {
        /// `StreamInfos[]`.
        stream_infos: Vec<StreamInfo<'a>>,
    },
    /// Video analysis done (no state beyond the event itself).
    VideoAnalysisComplete,
    /// AI audit done; `Data` kept as is.
    AiMediaAuditComplete {
        /// The nested `Data` object.
        data: Option<Value>,
    },
    /// Online editing produced a media.
    ProduceMediaComplete {
        /// `ProjectId`.
        project_id: Option<Cow<'a, str>>,
    },
    /// A media was deleted.
    DeleteMediaComplete {
        /// `MediaType`.
        media_type: Option<Cow<'a, str>>,
        /// `DeleteType`.
        delete_type: Option<Cow<'a, str>>,
    },
    /// An image was uploaded.
    ImageUploadComplete {
        /// `FileURL`.
        file_url: Option<Cow<'a, str>>,
    },
    /// `live2vod.TranscodeRequested`: an operator asked for a transcode.
    TranscodeRequested {
        /// `TemplateGroupId`.
        template_group_id: Cow<'a, str>,
        /// `RequestId`.
        request_id: Option<Cow<'a, str>>,
        /// `Priority` ("1".."10").
        priority: Option<Cow<'a, str>>,
    },
    /// `live2vod.TranscodeSubmitted`: the worker submitted a transcode.
    TranscodeSubmitted {
        /// `CommandId`.
        command_id: Cow<'a, str>,
        /// `TemplateGroupId`.
        template_group_id: Cow<'a, str>,
        /// `TranscodeTaskId`.
        task_id: Option<Cow<'a, str>>,
    },
    /// `live2vod.TranscodeRejected`: VOD refused the submission for good.
    TranscodeRejected {
        /// `CommandId`.
        command_id: Cow<'a, str>,
        /// `TemplateGroupId`.
        template_group_id: Cow<'a, str>,
        /// `ErrorCode`.
        error_code: Option<Cow<'a, str>>,
        /// `ErrorMessage`.
        error_message: Option<Cow<'a, str>>,
    },
    /// `live2vod.VideoInfoObserved`: GetVideoInfo after a compose deadline.
    VideoInfoObserved {
        /// `CommandId`.
        command_id: Cow<'a, str>,
        /// `VideoStatus` (Uploading, UploadFail, UploadSucc, Transcoding, TranscodeFail, Blocked, Normal).
        video_status: Option<Cow<'a, str>>,
        /// `Size`.
        size: Option<i64>,
    },
    /// `live2vod.PlayInfoResolved`: GetPlayInfo after a successful transcode.
    PlayInfoResolved {
        /// `CommandId`.
        command_id: Cow<'a, str>,
        /// `PlayInfos[]`.
        play_infos: Vec<PlayInfo<'a>>,
    },
    /// `live2vod.StreamFact` (derived by the fold).
    StreamFact(StreamFact),
    /// Any other event type, kept (its fields are in [`Event::extra`]).
    Unknown,
}

use super::vocab::event_type::{
    ADD_LIVE_RECORD_VIDEO_COMPLETE, AI_MEDIA_AUDIT_COMPLETE, DELETE_MEDIA_COMPLETE,
    FILE_UPLOAD_COMPLETE, IMAGE_UPLOAD_COMPLETE, LIVE_RECORD_VIDEO_COMPOSE_START,
    PRODUCE_MEDIA_COMPLETE, SNAPSHOT_COMPLETE, STREAM_TRANSCODE_COMPLETE, TRANSCODE_COMPLETE,
    VIDEO_ANALYSIS_COMPLETE,
};
pub use super::vocab::event_type::{
    COMPOSE_OBSERVED, RECORDING_OBSERVED, SNAPSHOT_OBSERVED, SOURCE_OBSERVED, TRANSCODE_OBSERVED,
};
pub use super::vocab::event_type::{
    PLAY_INFO_RESOLVED, STREAM_FACT, TRANSCODE_REJECTED, TRANSCODE_REQUESTED, TRANSCODE_SUBMITTED,
    VIDEO_INFO_OBSERVED,
};

/// A parsed callback or live2vod event. Its strings borrow from the body they were parsed from
/// (the fold keeps only a few of them, and copies those into its own compact forms).
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// `EventType` verbatim.
    pub event_type: Cow<'a, str>,
    /// `EventTime` in ms since the epoch; 0 when the body has none (such events lose every tie).
    pub event_time_ms: i64,
    /// The routing id (`VideoId`, else `MediaId`, else `ImageId`). For stream facts: the VideoId.
    pub id: Cow<'a, str>,
    /// Which field the id came from.
    pub id_field: IdField,
    /// Top-level `Status`, if any.
    pub status: Option<Status>,
    /// `Extend` (echo of `UserData.Extend`).
    pub extend: Option<Cow<'a, str>>,
    /// The typed content.
    pub body: EventBody<'a>,
    /// Every top-level field not consumed above, verbatim.
    pub extra: Map<String, Value>,
    /// Identity of the event for de-duplication: a stable 64-bit hash of the canonical body
    /// (key order, whitespace and escaping ignored, values tagged by type; see
    /// [`super::compact::json::canonical_hash`]). It covers EventType, id, JobId and
    /// EventTime because they are part of the body; VOD's retries resend the same body, so they
    /// hash alike. The function is fixed here and does not depend on the process or platform, so
    /// keys stored in snapshots stay valid across restarts and versions.
    pub dedup_key: u64,
}

impl Event<'_> {
    /// The aggregate this event folds into: the routing id, or `stream:...` for stream facts.
    pub fn aggregate_key(&self) -> String {
        match &self.body {
            EventBody::StreamFact(f) => f.stream().aggregate_key(),
            _ => self.id.to_string(),
        }
    }
}

// ----- lenient field access --------------------------------------------------------------------

type Fields<'a> = Obj<'a>;

/// Text field: strings as is, numbers and booleans as their JSON text; null -> None;
/// objects and arrays stay (kept as extra fields).
/// Borrowed from the body unless it had escapes or was not a string.
fn take_str<'a>(m: &mut Fields<'a>, name: &str) -> Option<Cow<'a, str>> {
    let (k, v) = m.take(name)?;
    match v {
        J::Str(s) => Some(s),
        J::Num(n) => Some(Cow::Owned(num_text(n))),
        J::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        J::Null => None,
        other => {
            m.put_back(k, other);
            None
        }
    }
}

fn num_text(n: Num) -> String {
    match n {
        Num::I(i) => i.to_string(),
        Num::U(u) => u.to_string(),
        Num::F(f) => {
            serde_json::Number::from_f64(f).map_or_else(|| f.to_string(), |n| n.to_string())
        }
    }
}

/// `str::trim`, answered without decoding characters when both ends are visible ASCII (which
/// is never whitespace): nearly every value VOD sends.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(f), Some(l)) if f.is_ascii_graphic() && l.is_ascii_graphic() => s,
        (None, _) => s,
        _ => s.trim(),
    }
}

/// `s.parse::<f64>()`, with a fast path for plain decimals such as VOD's `"3600.042"`: up to 15
/// significant digits and a fraction of up to 15 digits are exact as `f64`, and one correctly
/// rounded division gives the correctly rounded result, the same bits `parse` returns.
fn parse_f64(s: &str) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let b = s.as_bytes();
    let (mut mantissa, mut digits, mut frac, mut dot) = (0u64, 0usize, 0usize, false);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                digits += 1;
                frac += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => return s.parse().ok(),
        }
        if digits > 15 {
            return s.parse().ok();
        }
    }
    if digits == 0 || b.first() == Some(&b'.') || b.last() == Some(&b'.') {
        return s.parse().ok();
    }
    Some(mantissa as f64 / POW10[frac])
}

/// `s` without surrounding whitespace, still borrowed when it was.
fn trimmed(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(trim(b)),
        Cow::Owned(o) if trim(&o).len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(trim(&o).to_string()),
    }
}

/// Non-empty text field.
fn take_nonempty<'a>(m: &mut Fields<'a>, name: &str) -> Option<Cow<'a, str>> {
    take_str(m, name).filter(|s| !trim(s).is_empty())
}

/// Integer field: numbers, or strings holding a number (`"1024"`, `"1024.0"`); anything else
/// stays as an extra field.
fn take_i64(m: &mut Fields<'_>, name: &str) -> Option<i64> {
    let (k, v) = m.take(name)?;
    let parsed = match &v {
        J::Num(Num::I(i)) => Some(*i),
        J::Num(Num::U(u)) => i64::try_from(*u).ok(),
        J::Num(Num::F(f)) => Some(*f as i64),
        J::Str(s) => {
            let t = trim(s);
            t.parse::<i64>().ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        _ => None,
    };
    if parsed.is_none() && v != J::Null {
        m.put_back(k, v);
    }
    parsed
}

/// Float field: numbers or numeric strings; anything else stays as an extra field.
fn take_f64(m: &mut Fields<'_>, name: &str) -> Option<f64> {
    let (k, v) = m.take(name)?;
    let parsed = match &v {
        J::Num(Num::I(i)) => Some(*i as f64),
        J::Num(Num::U(u)) => Some(*u as f64),
        J::Num(Num::F(f)) => Some(*f),
        J::Str(s) => parse_f64(trim(s)).filter(|f| f.is_finite()),
        _ => None,
    };
    if parsed.is_none() && v != J::Null {
        m.put_back(k, v);
    }
    parsed
}

/// Boolean field: `true`/`false`, `"true"`/`"false"`, `0`/`1`.
fn take_bool(m: &mut Fields<'_>, name: &str) -> Option<bool> {
    let (k, v) = m.take(name)?;
    let parsed = match &v {
        J::Bool(b) => Some(*b),
        J::Str(s) if s.eq_ignore_ascii_case("true") || s == "1" => Some(true),
        J::Str(s) if s.eq_ignore_ascii_case("false") || s == "0" => Some(false),
        J::Num(Num::U(u)) => Some(*u != 0),
        _ => None,
    };
    if parsed.is_none() && v != J::Null {
        m.put_back(k, v);
    }
    parsed
}

fn take_time(m: &mut Fields<'_>, name: &'static str) -> Result<Option<i64>, EventError> {
    match take_nonempty(m, name) {
        None => Ok(None),
        Some(s) => parse_event_time(&s).map(Some).map_err(EventError::BadTime),
    }
}

/// A list of objects; VOD has been seen sending such lists JSON-encoded inside a string.
/// Items that are not objects are kept under `<name>.unparsed`.
fn take_list<'a>(m: &mut Fields<'a>, name: &str) -> Vec<Obj<'a>> {
    let Some((k, v)) = m.take(name) else {
        return Vec::new();
    };
    let v = match v {
        J::Str(s) => match serde_json::from_str::<Value>(&s) {
            Ok(parsed @ Value::Array(_)) => J::from_value(parsed),
            _ => {
                m.put_back(k, J::Str(s));
                return Vec::new();
            }
        },
        other => other,
    };
    match v {
        J::Arr(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut rest = Vec::new();
            for it in items {
                match it {
                    J::Obj(o) => out.push(o),
                    other => rest.push(other),
                }
            }
            if !rest.is_empty() {
                m.put_back(format!("{k}.unparsed").into(), J::Arr(rest));
            }
            out
        }
        J::Obj(o) => vec![o],
        other => {
            m.put_back(k, other);
            Vec::new()
        }
    }
}

fn take_status(m: &mut Fields<'_>) -> Option<Status> {
    let (k, v) = m.take("Status")?;
    match v {
        J::Str(s) => Some(Status::parse(&s)),
        J::Null => None,
        other => {
            m.put_back(k, other);
            None
        }
    }
}

fn take_stream(m: &mut Fields<'_>) -> StreamKey {
    let d = take_str(m, "DomainName").unwrap_or_default();
    let a = take_str(m, "AppName").unwrap_or_default();
    let s = take_str(m, "StreamName").unwrap_or_default();
    StreamKey::new(&d, &a, &s)
}

fn parse_stream_info(mut m: Obj<'_>) -> StreamInfo<'_> {
    StreamInfo {
        status: take_status(&mut m),
        definition: take_str(&mut m, "Definition"),
        format: take_str(&mut m, "Format"),
        bitrate: take_str(&mut m, "Bitrate"),
        duration: take_f64(&mut m, "Duration"),
        fps: take_str(&mut m, "Fps"),
        width: take_i64(&mut m, "Width"),
        height: take_i64(&mut m, "Height"),
        size: take_i64(&mut m, "Size"),
        encrypt: take_bool(&mut m, "Encrypt"),
        file_url: take_str(&mut m, "FileUrl"),
        job_id: take_str(&mut m, "JobId"),
        error_code: take_str(&mut m, "ErrorCode"),
        error_message: take_str(&mut m, "ErrorMessage"),
        extra: m.to_map(),
    }
}

fn parse_snapshot_info(mut m: Obj<'_>) -> SnapshotInfo<'_> {
    SnapshotInfo {
        status: take_status(&mut m),
        snapshot_type: take_str(&mut m, "SnapshotType"),
        count: take_i64(&mut m, "SnapshotCount"),
        format: take_str(&mut m, "SnapshotFormat"),
        regular: take_str(&mut m, "SnapshotRegular"),
        job_id: take_str(&mut m, "JobId"),
        extra: m.to_map(),
    }
}

fn parse_play_info(mut m: Obj<'_>) -> PlayInfo<'_> {
    PlayInfo {
        play_url: take_str(&mut m, "PlayURL"),
        definition: take_str(&mut m, "Definition"),
        format: take_str(&mut m, "Format"),
        bitrate: take_str(&mut m, "Bitrate"),
        duration: take_f64(&mut m, "Duration"),
        size: take_i64(&mut m, "Size"),
        width: take_i64(&mut m, "Width"),
        height: take_i64(&mut m, "Height"),
        job_id: take_str(&mut m, "JobId"),
        status: take_str(&mut m, "Status"),
        extra: m.to_map(),
    }
}

fn parse_object(body: &[u8]) -> Result<Obj<'_>, EventError> {
    let v = super::compact::json::parse(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    match v {
        J::Obj(m) => Ok(m),
        other => Err(EventError::NotObject(other.type_name())),
    }
}

fn take_routing_id<'a>(m: &mut Fields<'a>) -> Option<(Cow<'a, str>, IdField)> {
    for (name, f) in [
        ("VideoId", IdField::VideoId),
        ("MediaId", IdField::MediaId),
        ("ImageId", IdField::ImageId),
        ("AttachedMediaId", IdField::AttachedMediaId),
        ("JobId", IdField::JobId),
    ] {
        if let Some(id) = take_nonempty(m, name) {
            return Some((trimmed(id), f));
        }
    }
    None
}

/// What the relay reads from a callback body: the Kafka key and the event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The record key: the aggregate the fold will fold the body into.
    pub key: String,
    /// `EventType` as [`parse_event`] reads it (`None` when absent or empty).
    pub event_type: Option<String>,
}

/// The Kafka key for a callback body: `VideoId`, else `MediaId`, else `ImageId`, else
/// `AttachedMediaId`, else `JobId`; for
/// `live2vod.StreamFact` the stream key `stream:<domain>/<app>/<stream>`.
pub fn routing_key(body: &[u8]) -> Result<String, EventError> {
    route(body).map(|r| r.key)
}

/// The routing key and event type of a body, read by [`parse_event`]'s own rules (the same
/// field lookups in the same order), so the relay and the fold cannot disagree about a body:
/// a key that differs from the fold's aggregate key (a numeric `VideoId` beside a `MediaId`)
/// would be dead-lettered after the relay acknowledged it, and an `EventType` the relay reads
/// differently (`eventtype`, a duplicate key) would let an internal `live2vod.*` event in.
/// Ids in the reserved `stream:` namespace are refused here, as the fold would refuse them.
pub fn route(body: &[u8]) -> Result<Route, EventError> {
    let mut m = parse_object(body)?;
    let event_type = take_nonempty(&mut m, "EventType").map(|t| t.into_owned());
    if event_type.as_deref() == Some(STREAM_FACT) {
        let d = m.find_str("DomainName").ok_or(EventError::NoRoutingId)?;
        let a = m.find_str("AppName").ok_or(EventError::NoRoutingId)?;
        let s = m.find_str("StreamName").ok_or(EventError::NoRoutingId)?;
        return Ok(Route {
            key: StreamKey::new(d, a, s).aggregate_key(),
            event_type,
        });
    }
    let (key, field) = take_routing_id(&mut m).ok_or(EventError::NoRoutingId)?;
    if key.starts_with(STREAM_KEY_PREFIX) {
        return Err(EventError::BadField {
            field: field.name(),
            reason: format!("ids starting with {STREAM_KEY_PREFIX:?} are reserved for streams"),
        });
    }
    Ok(Route {
        key: key.into_owned(),
        event_type,
    })
}

/// `EventType` as [`parse_event`] reads it, for a body [`route`] could not key (what the relay
/// logs and checks against the internal namespace); `None` when the body is not a JSON object
/// or has none.
pub fn event_type_of(body: &[u8]) -> Option<String> {
    let mut m = parse_object(body).ok()?;
    take_nonempty(&mut m, "EventType").map(|t| t.into_owned())
}

fn required<'a>(
    m: &mut Fields<'a>,
    ty: &str,
    field: &'static str,
) -> Result<Cow<'a, str>, EventError> {
    take_nonempty(m, field).ok_or_else(|| EventError::MissingField {
        event_type: ty.to_string(),
        field,
    })
}

/// Parses a callback body (see the module doc for what "lenient" and "faithful" mean).
/// Strings borrow from `body` unless they had escapes (or were numbers VOD sent for text).
pub fn parse_event(body: &[u8]) -> Result<Event<'_>, EventError> {
    let (root, dedup_key) =
        super::compact::json::parse_hashed(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    let mut m = match root {
        J::Obj(o) => o,
        other => return Err(EventError::NotObject(other.type_name())),
    };
    let event_type = take_nonempty(&mut m, "EventType").ok_or(EventError::MissingField {
        event_type: String::new(),
        field: "EventType",
    })?;
    let (id, id_field) = take_routing_id(&mut m).ok_or(EventError::NoRoutingId)?;
    let event_time_ms = take_time(&mut m, "EventTime")?.unwrap_or(0);
    let mut status = take_status(&mut m);
    let extend = take_str(&mut m, "Extend");
    let ty = &*event_type;
    let body = match ty {
        // Observation events (`domain::observation`) fold exactly like the callbacks they
        // stand in for; their own EventType keeps them apart in the dedup key and metrics.
        ADD_LIVE_RECORD_VIDEO_COMPLETE | RECORDING_OBSERVED => {
            EventBody::AddLiveRecordVideoComplete {
                stream: take_stream(&mut m),
                record_start_ms: take_time(&mut m, "RecordStartTime")?,
                record_end_ms: take_time(&mut m, "RecordEndTime")?,
            }
        }
        LIVE_RECORD_VIDEO_COMPOSE_START | COMPOSE_OBSERVED => {
            EventBody::LiveRecordVideoComposeStart {
                stream: take_stream(&mut m),
            }
        }
        FILE_UPLOAD_COMPLETE | SOURCE_OBSERVED => {
            // Older docs omit Status on this event: a file that was uploaded is a success.
            status.get_or_insert(Status::Success);
            EventBody::FileUploadComplete {
                size: take_i64(&mut m, "Size"),
                file_url: take_str(&mut m, "FileUrl"),
            }
        }
        SNAPSHOT_COMPLETE | SNAPSHOT_OBSERVED => EventBody::SnapshotComplete {
            sub_type: take_str(&mut m, "SubType"),
            cover_url: take_nonempty(&mut m, "CoverUrl"),
            error_code: take_str(&mut m, "ErrorCode"),
            error_message: take_str(&mut m, "ErrorMessage"),
            snapshots: take_list(&mut m, "SnapshotInfos")
                .into_iter()
                .map(parse_snapshot_info)
                .collect(),
        },
        STREAM_TRANSCODE_COMPLETE => {
            // Flat: the rendition's fields are the event's own. Status was taken above.
            let mut info = parse_stream_info(std::mem::take(&mut m));
            info.status = status.clone();
            let extra = std::mem::take(&mut info.extra);
            return Ok(Event {
                event_type,
                event_time_ms,
                id,
                id_field,
                status,
                extend,
                body: EventBody::StreamTranscodeComplete(info),
                extra,
                dedup_key,
            });
        }
        TRANSCODE_COMPLETE | TRANSCODE_OBSERVED => EventBody::TranscodeComplete {
            stream_infos: take_list(&mut m, "StreamInfos")
                .into_iter()
                .map(parse_stream_info)
                .collect(),
        },
        VIDEO_ANALYSIS_COMPLETE => EventBody::VideoAnalysisComplete,
        AI_MEDIA_AUDIT_COMPLETE => EventBody::AiMediaAuditComplete {
            data: m.take("Data").map(|(_, v)| v.to_value()),
        },
        PRODUCE_MEDIA_COMPLETE => EventBody::ProduceMediaComplete {
            project_id: take_str(&mut m, "ProjectId"),
        },
        DELETE_MEDIA_COMPLETE => EventBody::DeleteMediaComplete {
            media_type: take_str(&mut m, "MediaType"),
            delete_type: take_str(&mut m, "DeleteType"),
        },
        IMAGE_UPLOAD_COMPLETE => EventBody::ImageUploadComplete {
            file_url: take_str(&mut m, "FileURL"),
        },
        TRANSCODE_REQUESTED => EventBody::TranscodeRequested {
            template_group_id: required(&mut m, ty, "TemplateGroupId")?,
            request_id: take_str(&mut m, "RequestId"),
            priority: take_str(&mut m, "Priority"),
        },
        TRANSCODE_SUBMITTED => EventBody::TranscodeSubmitted {
            command_id: required(&mut m, ty, "CommandId")?,
            template_group_id: required(&mut m, ty, "TemplateGroupId")?,
            task_id: take_str(&mut m, "TranscodeTaskId"),
        },
        TRANSCODE_REJECTED => EventBody::TranscodeRejected {
            command_id: required(&mut m, ty, "CommandId")?,
            template_group_id: required(&mut m, ty, "TemplateGroupId")?,
            error_code: take_str(&mut m, "ErrorCode"),
            error_message: take_str(&mut m, "ErrorMessage"),
        },
        VIDEO_INFO_OBSERVED => EventBody::VideoInfoObserved {
            command_id: required(&mut m, ty, "CommandId")?,
            video_status: take_str(&mut m, "VideoStatus"),
            size: take_i64(&mut m, "Size"),
        },
        PLAY_INFO_RESOLVED => EventBody::PlayInfoResolved {
            command_id: required(&mut m, ty, "CommandId")?,
            play_infos: take_list(&mut m, "PlayInfos")
                .into_iter()
                .map(parse_play_info)
                .collect(),
        },
        STREAM_FACT => EventBody::StreamFact(parse_stream_fact(&mut m, &id, event_time_ms)?),
        _ => EventBody::Unknown,
    };
    Ok(Event {
        event_type,
        event_time_ms,
        id,
        id_field,
        status,
        extend,
        body,
        extra: m.to_map(),
        dedup_key,
    })
}

fn parse_stream_fact(
    m: &mut Fields<'_>,
    video_id: &str,
    event_time_ms: i64,
) -> Result<StreamFact, EventError> {
    let stream = take_stream(m);
    if !stream.is_complete() {
        return Err(EventError::NoRoutingId);
    }
    let kind = match &*required(m, STREAM_FACT, "Role")? {
        "live_segment" | "segment" => OriginKind::LiveSegment,
        "composed" => OriginKind::Composed,
        other => {
            return Err(EventError::BadField {
                field: "Role",
                reason: format!("unknown role {other:?}"),
            })
        }
    };
    let origin_status = Status::parse(&take_str(m, "OriginStatus").unwrap_or_default());
    let origin_at = take_time(m, "OriginTime")?.unwrap_or(event_time_ms);
    let origin = Origin {
        kind,
        status: origin_status,
        stream,
        record_start_ms: take_time(m, "RecordStartTime")?,
        record_end_ms: take_time(m, "RecordEndTime")?,
    };
    let source = match take_str(m, "SourceStatus") {
        None => None,
        Some(s) => {
            let st = Status::parse(&s);
            let at = take_time(m, "SourceTime")?.unwrap_or(event_time_ms);
            Some(Reg::new(at, st.rank(), st))
        }
    };
    Ok(StreamFact {
        video_id: video_id.to_string(),
        origin: Reg::new(origin_at, origin.status.rank(), origin),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Event<'_> {
        parse_event(s.as_bytes()).unwrap()
    }

    #[test]
    fn fact_body_is_what_serde_json_writes() {
        let stream = StreamKey::new("live.example.com", "a\"pp", "s/é\u{1}");
        let origin = |kind, start: Option<i64>| Origin {
            kind,
            status: Status::Other("Weird \\ one".into()),
            stream: stream.clone(),
            record_start_ms: start,
            record_end_ms: start.map(|t| t + 1000),
        };
        let facts = [
            StreamFact {
                video_id: "v1".into(),
                origin: Reg::new(5_000, 1, origin(OriginKind::LiveSegment, Some(1_000))),
                source: None,
            },
            StreamFact {
                video_id: "c\"1".into(),
                origin: Reg::new(5_000, 2, origin(OriginKind::Composed, None)),
                source: Some(Reg::new(9_000, 0, Status::Fail)),
            },
        ];
        for f in facts {
            assert_eq!(
                String::from_utf8(f.to_body()).unwrap(),
                String::from_utf8(f.to_body_value()).unwrap()
            );
        }
    }

    #[test]
    fn add_live_record_video_complete_doc_sample() {
        let e = parse(
            r#"{"EventTime":"2017-12-08T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"43q9fjdhef****",
            "Status":"success","StreamName":"xxx","DomainName":"xxx","AppName":"xxx",
            "RecordStartTime":"2017-12-08T07:40:56Z","RecordEndTime":"2017-12-08T09:26:17Z"}"#,
        );
        assert_eq!(e.id, "43q9fjdhef****");
        assert_eq!(e.event_time_ms, 1_512_725_177_000);
        assert_eq!(e.status, Some(Status::Success));
        match e.body {
            EventBody::AddLiveRecordVideoComplete {
                stream,
                record_start_ms,
                record_end_ms,
            } => {
                assert_eq!(stream, StreamKey::new("xxx", "xxx", "xxx"));
                assert_eq!(record_end_ms, Some(1_512_725_177_000));
                assert_eq!(
                    record_start_ms,
                    Some(1_512_725_177_000 - (105 * 60 + 21) * 1000)
                );
            }
            other => panic!("wrong body {other:?}"),
        }
        assert!(e.extra.is_empty());
    }

    #[test]
    fn compose_start_has_stream_but_no_times() {
        let e = parse(
            r#"{"EventTime":"2018-04-08T10:00:00Z","EventType":"LiveRecordVideoComposeStart","VideoId":"new1",
            "Status":"success","DomainName":"d","AppName":"a","StreamName":"s"}"#,
        );
        assert_eq!(
            e.body,
            EventBody::LiveRecordVideoComposeStart {
                stream: StreamKey::new("d", "a", "s")
            }
        );
    }

    #[test]
    fn file_upload_complete_with_string_size_and_missing_status() {
        let e = parse(
            r#"{"EventTime":"2017-03-20T07:49:17Z","EventType":"FileUploadComplete","VideoId":"v1",
            "Size":"10897890","FileUrl":"http://vod.test.com/sv/a.mp4"}"#,
        );
        assert_eq!(e.status, Some(Status::Success));
        assert_eq!(
            e.body,
            EventBody::FileUploadComplete {
                size: Some(10_897_890),
                file_url: Some("http://vod.test.com/sv/a.mp4".into())
            }
        );
    }

    #[test]
    fn snapshot_complete_with_infos_and_millis_time() {
        let e = parse(
            r#"{"EventTime":"2017-03-20T07:49:17:540Z","EventType":"SnapshotComplete","VideoId":"v1","Status":"success",
            "SubType":"SpecifiedTime","CoverUrl":"http://x/cover.jpg",
            "SnapshotInfos":[{"Status":"success","SnapshotType":"CoverSnapshot","SnapshotCount":"8","SnapshotFormat":"jpg",
            "SnapshotRegular":"http://x/{SnapshotCount}.jpg","JobId":"j1","Future":1}]}"#,
        );
        assert_eq!(e.event_time_ms % 1000, 540);
        let EventBody::SnapshotComplete {
            cover_url,
            snapshots,
            sub_type,
            ..
        } = e.body
        else {
            panic!("wrong body")
        };
        assert_eq!(cover_url.as_deref(), Some("http://x/cover.jpg"));
        assert_eq!(sub_type.as_deref(), Some("SpecifiedTime"));
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].count, Some(8));
        assert_eq!(snapshots[0].snapshot_type.as_deref(), Some("CoverSnapshot"));
        assert_eq!(snapshots[0].extra.get("Future"), Some(&Value::from(1)));
    }

    #[test]
    fn snapshot_doc_sample_without_video_id_is_refused() {
        let body = br#"{"EventTime":"2017-03-20T07:49:17Z","EventType":"SnapshotComplete","Status":"success",
            "SnapshotInfos":[{"Status":"success","SnapshotType":"CoverSnapshot","SnapshotCount":8}]}"#;
        assert_eq!(parse_event(body), Err(EventError::NoRoutingId));
        assert_eq!(routing_key(body), Err(EventError::NoRoutingId));
    }

    #[test]
    fn stream_transcode_complete_flat_with_file_url_variants() {
        let e = parse(
            r#"{"EventTime":"2017-03-20T07:49:17Z","EventType":"StreamTranscodeComplete","VideoId":"v1","Status":"success",
            "Bitrate":"450","Definition":"HD-MP4","Duration":"12.5","Format":"mp4","Fps":"25","Width":"1280","Height":720,
            "Size":"123","Encrypt":"false","FileURL":"http://x/hd.mp4","JobId":"j9","Codec":"H.264"}"#,
        );
        let EventBody::StreamTranscodeComplete(info) = &e.body else {
            panic!("wrong body")
        };
        assert_eq!(info.status, Some(Status::Success));
        assert_eq!(info.bitrate.as_deref(), Some("450"));
        assert_eq!(info.duration, Some(12.5));
        assert_eq!(
            (info.width, info.height, info.size),
            (Some(1280), Some(720), Some(123))
        );
        assert_eq!(info.encrypt, Some(false));
        assert_eq!(info.file_url.as_deref(), Some("http://x/hd.mp4"));
        assert_eq!(e.extra.get("Codec"), Some(&Value::from("H.264")));
    }

    #[test]
    fn transcode_complete_with_stream_infos_and_numeric_bitrate() {
        let e = parse(
            r#"{"EventTime":"2017-03-20T07:49:17Z","EventType":"TranscodeComplete","VideoId":"v1","Status":"success","Extend":"x",
            "StreamInfos":[{"Status":"success","Bitrate":450,"Definition":"HD","Duration":12.5,"Format":"m3u8","FileUrl":"http://x/hd.m3u8","JobId":"a"},
                           {"Status":"fail","Definition":"4K","Format":"mp4","ErrorCode":"InvalidParameter","ErrorMessage":"no"}]}"#,
        );
        assert_eq!(e.extend.as_deref(), Some("x"));
        let EventBody::TranscodeComplete { stream_infos } = &e.body else {
            panic!("wrong body")
        };
        assert_eq!(stream_infos.len(), 2);
        assert_eq!(stream_infos[0].bitrate.as_deref(), Some("450"));
        assert_eq!(stream_infos[1].status, Some(Status::Fail));
        assert_eq!(
            stream_infos[1].error_code.as_deref(),
            Some("InvalidParameter")
        );
    }

    #[test]
    fn media_and_image_ids_route() {
        let e = parse(
            r#"{"EventTime":"2019-01-01T00:00:00Z","EventType":"AIMediaAuditComplete","MediaId":"m1","Status":"success","Data":{"Suggestion":"pass"}}"#,
        );
        assert_eq!((&*e.id, e.id_field), ("m1", IdField::MediaId));
        assert!(matches!(
            e.body,
            EventBody::AiMediaAuditComplete { data: Some(_) }
        ));
        let e = parse(
            r#"{"EventTime":"2019-01-01T00:00:00Z","EventType":"ImageUploadComplete","ImageId":"i1","FileURL":"http://x/i.png","Status":"success"}"#,
        );
        assert_eq!((&*e.id, e.id_field), ("i1", IdField::ImageId));
        assert_eq!(
            e.body,
            EventBody::ImageUploadComplete {
                file_url: Some("http://x/i.png".into())
            }
        );
        let e = parse(
            r#"{"EventTime":"2019-01-01T00:00:00Z","EventType":"ProduceMediaComplete","MediaId":"m2","ProjectId":"p","Status":"success"}"#,
        );
        assert_eq!(
            e.body,
            EventBody::ProduceMediaComplete {
                project_id: Some("p".into())
            }
        );
        let e = parse(
            r#"{"EventTime":"2019-01-01T00:00:00Z","EventType":"DeleteMediaComplete","MediaId":"m3","MediaType":"video","DeleteType":"all","Status":"success"}"#,
        );
        assert_eq!(
            e.body,
            EventBody::DeleteMediaComplete {
                media_type: Some("video".into()),
                delete_type: Some("all".into())
            }
        );
        let e = parse(
            r#"{"EventTime":"2019-01-01T00:00:00Z","EventType":"VideoAnalysisComplete","VideoId":"v","Status":"success"}"#,
        );
        assert_eq!(e.body, EventBody::VideoAnalysisComplete);
        assert_eq!(routing_key(br#"{"ImageId":"i1"}"#).unwrap(), "i1");
        assert_eq!(
            routing_key(br#"{"MediaId":"m","ImageId":"i"}"#).unwrap(),
            "m"
        );
    }

    #[test]
    fn unknown_type_and_fields_are_kept() {
        let e = parse(
            r#"{"EventTime":"2019-01-01T00:00:00Z","EventType":"BrandNewEvent","VideoId":"v","Foo":{"a":[1,2]},"Bar":"b"}"#,
        );
        assert_eq!(e.event_type, "BrandNewEvent");
        assert_eq!(e.body, EventBody::Unknown);
        assert_eq!(e.extra.len(), 2);
        assert_eq!(e.extra["Bar"], Value::from("b"));
    }

    #[test]
    fn not_an_object_and_bad_json_are_typed_errors() {
        assert!(matches!(
            parse_event(b"[1,2]"),
            Err(EventError::NotObject("an array"))
        ));
        assert!(matches!(parse_event(b"{nope"), Err(EventError::NotJson(_))));
        assert!(matches!(
            routing_key(b"\"x\""),
            Err(EventError::NotObject("a string"))
        ));
        assert_eq!(
            parse_event(br#"{"EventType":"X","VideoId":""}"#),
            Err(EventError::NoRoutingId)
        );
        assert!(matches!(
            parse_event(br#"{"EventType":"X","VideoId":"v","EventTime":"yesterday"}"#),
            Err(EventError::BadTime(_))
        ));
        assert!(matches!(
            parse_event(br#"{"EventType":"live2vod.TranscodeRequested","VideoId":"v"}"#),
            Err(EventError::MissingField {
                field: "TemplateGroupId",
                ..
            })
        ));
    }

    #[test]
    fn dedup_key_ignores_key_order_and_whitespace_but_not_content() {
        let a = parse(r#"{"EventType":"X","VideoId":"v","EventTime":"2019-01-01T00:00:00Z"}"#);
        let b =
            parse(r#"{ "VideoId" : "v", "EventTime":"2019-01-01T00:00:00Z",  "EventType":"X" }"#);
        let c = parse(r#"{"EventType":"X","VideoId":"v","EventTime":"2019-01-01T00:00:01Z"}"#);
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_ne!(a.dedup_key, c.dedup_key);
    }

    #[test]
    fn live2vod_events_parse() {
        let e = parse(
            r#"{"EventType":"live2vod.TranscodeSubmitted","EventTime":"2019-01-01T00:00:00.250Z","VideoId":"v",
            "CommandId":"tc-1","TemplateGroupId":"g","TranscodeTaskId":"t","Status":"success"}"#,
        );
        assert_eq!(
            e.body,
            EventBody::TranscodeSubmitted {
                command_id: "tc-1".into(),
                template_group_id: "g".into(),
                task_id: Some("t".into())
            }
        );
        let e = parse(
            r#"{"EventType":"live2vod.PlayInfoResolved","EventTime":"2019-01-01T00:00:00Z","VideoId":"v","CommandId":"pi-1",
            "Status":"success","PlayInfos":[{"PlayURL":"https://cdn/x.m3u8","Definition":"HD","Format":"m3u8","Size":"5"}]}"#,
        );
        let EventBody::PlayInfoResolved { play_infos, .. } = e.body else {
            panic!("wrong body")
        };
        assert_eq!(play_infos[0].size, Some(5));
        let e = parse(
            r#"{"EventType":"live2vod.VideoInfoObserved","EventTime":"2019-01-01T00:00:00Z","VideoId":"v","CommandId":"ct-1",
            "VideoStatus":"Normal","Size":10,"Status":"success"}"#,
        );
        assert!(matches!(
            e.body,
            EventBody::VideoInfoObserved { size: Some(10), .. }
        ));
        let e = parse(
            r#"{"EventType":"live2vod.TranscodeRejected","EventTime":"2019-01-01T00:00:00Z","VideoId":"v","CommandId":"tc-1",
            "TemplateGroupId":"g","ErrorCode":"Forbidden.IllegalStatus","ErrorMessage":"m","Status":"fail"}"#,
        );
        assert!(matches!(e.body, EventBody::TranscodeRejected { .. }));
    }

    #[test]
    fn stream_fact_round_trips_through_its_body() {
        let origin = Origin {
            kind: OriginKind::Composed,
            status: Status::Success,
            stream: StreamKey::new("d.example.com", "app", "s1"),
            record_start_ms: None,
            record_end_ms: None,
        };
        let fact = StreamFact {
            video_id: "c1".into(),
            origin: Reg::new(1_000_500, 2, origin),
            source: Some(Reg::new(2_000_000, 0, Status::Fail)),
        };
        let body = fact.to_body();
        assert_eq!(routing_key(&body).unwrap(), "stream:d.example.com/app/s1");
        let e = parse_event(&body).unwrap();
        assert_eq!(e.aggregate_key(), "stream:d.example.com/app/s1");
        assert_eq!(e.body, EventBody::StreamFact(fact));
    }

    #[test]
    fn missing_event_time_reads_as_zero_and_missing_status_stays_absent() {
        let e = parse(
            r#"{"EventType":"StreamTranscodeComplete","VideoId":"v","Definition":"HD","Format":"mp4"}"#,
        );
        assert_eq!(e.event_time_ms, 0);
        assert_eq!(e.status, None);
        let EventBody::StreamTranscodeComplete(info) = &e.body else {
            panic!("wrong body")
        };
        assert_eq!(info.status, None);
        assert!(matches!(
            parse_event(br#"{"VideoId":"v"}"#),
            Err(EventError::MissingField {
                field: "EventType",
                ..
            })
        ));
    }

    #[test]
    fn wrongly_typed_fields_are_kept_not_dropped() {
        let e = parse(
            r#"{"EventType":"FileUploadComplete","VideoId":"v","EventTime":"2019-01-01T00:00:00Z","Size":"big","FileUrl":{"a":1}}"#,
        );
        assert_eq!(
            e.body,
            EventBody::FileUploadComplete {
                size: None,
                file_url: None
            }
        );
        assert_eq!(e.extra["Size"], Value::from("big"));
        assert_eq!(e.extra["FileUrl"]["a"], Value::from(1));
    }

    #[test]
    fn fast_float_and_trim_agree_with_std() {
        let cases = [
            "3600.042",
            "12.5",
            "0",
            "0.1",
            "1.",
            ".5",
            "",
            ".",
            "1.2.3",
            "-1.5",
            "+2",
            "1e3",
            "007.25",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "9.999999999999999",
            "0.3",
            "2.675",
            "nan",
            "inf",
            " 1",
            "1 ",
            "1_0",
        ];
        for c in cases {
            let fast = parse_f64(c).map(f64::to_bits);
            assert_eq!(fast, c.parse::<f64>().ok().map(f64::to_bits), "{c:?}");
        }
        let mut x = 1u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let digits = (x >> 20) % 10_u64.pow(1 + (x % 15) as u32);
            let text = digits.to_string();
            let at = (x >> 60) as usize % (text.len() + 1);
            let c = format!("{}.{}", &text[..at], &text[at..]);
            let fast = parse_f64(&c).map(f64::to_bits);
            assert_eq!(fast, c.parse::<f64>().ok().map(f64::to_bits), "{c:?}");
        }
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\u{a0}a",
            "a\u{3000}",
            "\tab\n",
            "é",
            "x é",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn stream_infos_sent_as_a_json_string_are_read() {
        let e = parse(
            r#"{"EventType":"TranscodeComplete","VideoId":"v","EventTime":"2019-01-01T00:00:00Z","Status":"success",
            "StreamInfos":"[{\"Status\":\"success\",\"Definition\":\"SD\",\"Format\":\"mp4\"}]"}"#,
        );
        let EventBody::TranscodeComplete { stream_infos } = &e.body else {
            panic!("wrong body")
        };
        assert_eq!(stream_infos[0].definition.as_deref(), Some("SD"));
    }

    #[test]
    fn the_relay_routes_a_body_as_the_fold_reads_it() {
        // Each once let the relay's reading differ from parse_event's (found by tests/relay_fuzz.rs).
        for body in [
            // A numeric VideoId beside a MediaId: the relay keyed by MediaId, the fold by VideoId.
            &br#"{"EventType":"X","VideoId":123,"MediaId":"m"}"#[..],
            br#"{"EventType":"X","VideoId":true}"#,
            br#"{"eventtype":"X","videoid":"v"}"#,
            br#"{"EventType":"A","EventType":"B","VideoId":"v","VideoId":"w"}"#,
        ] {
            let r = route(body).unwrap();
            let e = parse_event(body).unwrap();
            assert_eq!(
                r.key,
                e.aggregate_key(),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(r.event_type.as_deref(), Some(&*e.event_type));
        }
        // The internal namespace cannot hide behind the field's case or a duplicate key.
        for body in [
            &br#"{"eventtype":"live2vod.TranscodeRequested","VideoId":"v","TemplateGroupId":"g"}"#[..],
            br#"{"EventType":"live2vod.TranscodeRequested","EventType":"X","VideoId":"v","TemplateGroupId":"g"}"#,
        ] {
            assert_eq!(
                route(body).unwrap().event_type.as_deref(),
                Some(TRANSCODE_REQUESTED)
            );
        }
        assert!(matches!(
            route(br#"{"EventType":"X","VideoId":"stream:a/b/c"}"#),
            Err(EventError::BadField {
                field: "VideoId",
                ..
            })
        ));
        assert_eq!(route(br#"{"EventType":"X"}"#), Err(EventError::NoRoutingId));
    }
}
