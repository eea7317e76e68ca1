//! Aggregates <-> protobuf snapshots (`AggregateSnapshot` on the aggregates topic).
//!
//! Lossless both ways: `decode(encode(a)) == a`, and because every collection is kept sorted and
//! prost writes fields in number order, `encode(decode(bytes)) == bytes` for snapshots we wrote.
//! Decoding re-sorts collections defensively, so a hand-made snapshot cannot break the sorted-set
//! invariants the joins rely on.
use prost::Message;
use thiserror::Error;

use super::engine::Aggregate;
use super::lattice::{Origin, OriginKind, Reg, Status, StreamKey, F64};
use super::stream::{StreamAggregate, StreamVideo};
use super::text::{Text, TextRef};
use super::video::{
    InputPos, Meta, Observed, PackedInfo, PlayUrl, Rendition, RenditionInfo, SnapshotEntry, Source,
    Submission, SubmissionInfo, TranscodeRequest, VideoAggregate,
};
use crate::proto as pb;

/// Snapshot schema version written by this code.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Why a snapshot cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// Not a protobuf `AggregateSnapshot`.
    #[error("snapshot is not valid protobuf: {0}")]
    Decode(String),
    /// Neither video nor stream state.
    #[error("snapshot has no state")]
    Empty,
    /// Written by a newer schema.
    #[error("snapshot version {0} is newer than this build understands ({SNAPSHOT_VERSION})")]
    Version(u32),
    /// A field that must be present is not.
    #[error("snapshot field {0} is missing or invalid")]
    Invalid(&'static str),
    /// The record key and the snapshot's own key differ.
    #[error("snapshot key {snapshot_key:?} does not match record key {record_key:?}")]
    KeyMismatch {
        /// Key inside the snapshot.
        snapshot_key: String,
        /// Kafka record key.
        record_key: String,
    },
}

fn bs(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}
fn os(s: &Option<Box<str>>) -> Option<String> {
    s.as_deref().map(str::to_string)
}
fn rank(r: u32) -> u8 {
    r.min(255) as u8
}

fn stream_to(k: &StreamKey) -> pb::StreamId {
    pb::StreamId {
        domain: k.domain.to_string(),
        app: k.app.to_string(),
        stream: k.stream.to_string(),
    }
}
fn stream_from(k: Option<pb::StreamId>) -> StreamKey {
    k.map(|k| StreamKey::new(&k.domain, &k.app, &k.stream))
        .unwrap_or_default()
}

fn origin_to(o: &Reg<Origin>) -> pb::OriginReg {
    pb::OriginReg {
        at_ms: o.at_ms,
        rank: u32::from(o.rank),
        kind: o.value.kind.as_str().to_string(),
        status: o.value.status.as_str().to_string(),
        stream: Some(stream_to(&o.value.stream)),
        record_start_ms: o.value.record_start_ms,
        record_end_ms: o.value.record_end_ms,
    }
}
fn origin_from(o: pb::OriginReg) -> Result<Reg<Origin>, CodecError> {
    let kind = match o.kind.as_str() {
        "live_segment" => OriginKind::LiveSegment,
        "composed" => OriginKind::Composed,
        _ => return Err(CodecError::Invalid("origin.kind")),
    };
    Ok(Reg::new(
        o.at_ms,
        rank(o.rank),
        Origin {
            kind,
            status: Status::parse(&o.status),
            stream: stream_from(o.stream),
            record_start_ms: o.record_start_ms,
            record_end_ms: o.record_end_ms,
        },
    ))
}

fn meta_to(m: &Meta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        deliveries: m.deliveries,
        duplicates: m.duplicates,
        last_applied: m.last_applied.map(|p| pb::InputPosition {
            partition: p.partition,
            offset: p.offset,
        }),
    }
}
fn meta_from(m: Option<pb::SnapshotMeta>) -> Meta {
    let m = m.unwrap_or_default();
    Meta {
        deliveries: m.deliveries,
        duplicates: m.duplicates,
        last_applied: m.last_applied.map(|p| InputPos {
            partition: p.partition,
            offset: p.offset,
        }),
    }
}

/// The video state as a protobuf message (no meta).
pub fn video_to_proto(v: &VideoAggregate) -> pb::VideoState {
    pb::VideoState {
        id: v.id.to_string(),
        origin: v.origin.as_ref().map(origin_to),
        source: v.source.as_ref().map(|s| pb::SourceReg {
            at_ms: s.at_ms,
            rank: u32::from(s.rank),
            status: s.value.status.as_str().to_string(),
            size: s.value.size,
            file_url: s.value.file_url.as_ref().map(Text::to_string),
        }),
        source_success_ms: v.source_success_ms,
        cover: v.cover.as_ref().map(|c| pb::TextReg {
            at_ms: c.at_ms,
            rank: u32::from(c.rank),
            value: c.value.to_string(),
        }),
        snapshots: v
            .snapshots
            .iter()
            .map(|s| pb::SnapshotTypeReg {
                snapshot_type: s.snapshot_type.to_string(),
                at_ms: s.reg.at_ms,
                rank: u32::from(s.reg.rank),
                status: s.reg.value.0.as_str().to_string(),
                count: s.reg.value.1,
            })
            .collect(),
        renditions: v
            .renditions
            .iter()
            .map(|r| {
                let i = &r.reg.value.unpack();
                pb::RenditionReg {
                    definition: r.definition.to_string(),
                    format: r.format.to_string(),
                    at_ms: r.reg.at_ms,
                    rank: u32::from(r.reg.rank),
                    status: i.status.as_str().to_string(),
                    file_url: i.file_url.as_ref().map(Text::to_string),
                    bitrate: os(&i.bitrate),
                    width: i.width,
                    height: i.height,
                    duration: i.duration.map(|d| d.0),
                    size: i.size,
                    job_id: i.job_id.as_ref().map(Text::to_string),
                    error_code: os(&i.error_code),
                }
            })
            .collect(),
        transcodes: v
            .transcodes
            .iter()
            .map(|t| pb::TranscodeCompleteSeen {
                at_ms: t.at_ms,
                rank: u32::from(t.rank),
                dedup_key: t.value,
            })
            .collect(),
        requests: v
            .requests
            .iter()
            .map(|r| pb::TranscodeRequestSeen {
                template_group: r.template_group.to_string(),
                at_ms: r.at_ms,
                request_id: os(&r.request_id),
                priority: os(&r.priority),
            })
            .collect(),
        submissions: v
            .submissions
            .iter()
            .map(|s| pb::SubmissionReg {
                command_id: s.command_id.to_string(),
                at_ms: s.reg.at_ms,
                rank: u32::from(s.reg.rank),
                template_group: s.reg.value.template_group.to_string(),
                status: s.reg.value.status.as_str().to_string(),
                task_id: os(&s.reg.value.task_id),
                error_code: os(&s.reg.value.error_code),
            })
            .collect(),
        observed: v.observed.as_ref().map(|o| pb::ObservedReg {
            at_ms: o.at_ms,
            rank: u32::from(o.rank),
            video_status: o.value.video_status.to_string(),
            size: o.value.size,
        }),
        play_urls: v
            .play_urls
            .iter()
            .map(|p| pb::PlayUrlReg {
                definition: p.definition.to_string(),
                format: p.format.to_string(),
                at_ms: p.reg.at_ms,
                rank: u32::from(p.reg.rank),
                url: p.reg.value.to_string(),
            })
            .collect(),
        emitted: v.emitted.iter().map(|k| k.to_vec()).collect(),
        auto_groups: v.auto_groups.iter().map(|g| g.to_string()).collect(),
        policy_refused: v.policy_refused,
        dedup_keys: v.dedup.clone(),
        last_event_ms: v.last_event_ms,
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// A video aggregate from its protobuf state (meta default).
pub fn video_from_proto(p: pb::VideoState) -> Result<VideoAggregate, CodecError> {
    let mut emitted = Vec::with_capacity(p.emitted.len());
    for e in p.emitted {
        emitted
            .push(<[u8; 17]>::try_from(e.as_slice()).map_err(|_| CodecError::Invalid("emitted"))?);
    }
    let mut renditions: Vec<Rendition> = p
        .renditions
        .into_iter()
        .map(|r| Rendition {
            definition: r.definition.into(),
            format: r.format.into(),
            reg: Reg::new(
                r.at_ms,
                rank(r.rank),
                PackedInfo::pack(&RenditionInfo {
                    status: Status::parse(&r.status),
                    file_url: r.file_url.as_deref().map(Text::new),
                    bitrate: bs(r.bitrate),
                    width: r.width,
                    height: r.height,
                    duration: r.duration.map(F64),
                    size: r.size,
                    job_id: r.job_id.as_deref().map(Text::new),
                    error_code: bs(r.error_code),
                }),
            ),
        })
        .collect();
    renditions.sort_by(|a, b| (&a.definition, &a.format).cmp(&(&b.definition, &b.format)));
    let mut snapshots: Vec<SnapshotEntry> = p
        .snapshots
        .into_iter()
        .map(|s| SnapshotEntry {
            snapshot_type: s.snapshot_type.into(),
            reg: Reg::new(s.at_ms, rank(s.rank), (Status::parse(&s.status), s.count)),
        })
        .collect();
    snapshots.sort_by(|a, b| a.snapshot_type.cmp(&b.snapshot_type));
    let mut submissions: Vec<Submission> = p
        .submissions
        .into_iter()
        .map(|s| Submission {
            command_id: s.command_id.into(),
            reg: Reg::new(
                s.at_ms,
                rank(s.rank),
                SubmissionInfo {
                    template_group: s.template_group.into(),
                    status: Status::parse(&s.status),
                    task_id: bs(s.task_id),
                    error_code: bs(s.error_code),
                },
            ),
        })
        .collect();
    submissions.sort_by(|a, b| a.command_id.cmp(&b.command_id));
    let mut play_urls: Vec<PlayUrl> = p
        .play_urls
        .into_iter()
        .map(|u| PlayUrl {
            definition: u.definition.into(),
            format: u.format.into(),
            reg: Reg::new(u.at_ms, rank(u.rank), Text::new(&u.url)),
        })
        .collect();
    play_urls.sort_by(|a, b| (&a.definition, &a.format).cmp(&(&b.definition, &b.format)));
    Ok(VideoAggregate {
        id: p.id.into(),
        origin: p.origin.map(origin_from).transpose()?,
        source: p.source.map(|s| {
            Box::new(Reg::new(
                s.at_ms,
                rank(s.rank),
                Source {
                    status: Status::parse(&s.status),
                    size: s.size,
                    file_url: s.file_url.as_deref().map(Text::new),
                },
            ))
        }),
        source_success_ms: p.source_success_ms,
        cover: p
            .cover
            .map(|c| Reg::new(c.at_ms, rank(c.rank), Text::new(&c.value))),
        snapshots,
        renditions,
        transcodes: sorted(
            p.transcodes
                .into_iter()
                .map(|t| Reg::new(t.at_ms, rank(t.rank), t.dedup_key))
                .collect(),
        ),
        requests: sorted(
            p.requests
                .into_iter()
                .map(|r| TranscodeRequest {
                    template_group: r.template_group.into(),
                    at_ms: r.at_ms,
                    request_id: bs(r.request_id),
                    priority: bs(r.priority),
                })
                .collect(),
        ),
        submissions,
        observed: p.observed.map(|o| {
            Box::new(Reg::new(
                o.at_ms,
                rank(o.rank),
                Observed {
                    video_status: o.video_status.into(),
                    size: o.size,
                },
            ))
        }),
        play_urls,
        emitted: sorted(emitted),
        auto_groups: sorted(p.auto_groups.into_iter().map(Into::into).collect()),
        policy_refused: p.policy_refused,
        dedup: sorted(p.dedup_keys),
        last_event_ms: p.last_event_ms,
        meta: Meta::default(),
    })
}

/// The stream state as a protobuf message (no meta).
pub fn stream_to_proto(s: &StreamAggregate) -> pb::StreamState {
    pb::StreamState {
        stream: Some(stream_to(&s.key)),
        interrupt_ms: s.interrupt_ms,
        videos: s
            .videos
            .iter()
            .map(|v| pb::StreamVideoState {
                video_id: v.video_id.to_string(),
                origin: Some(origin_to(&v.origin)),
                source: v.source.as_ref().map(|r| pb::TextReg {
                    at_ms: r.at_ms,
                    rank: u32::from(r.rank),
                    value: r.value.as_str().to_string(),
                }),
            })
            .collect(),
        last_event_ms: s.last_event_ms,
    }
}

/// A stream aggregate from its protobuf state (meta default).
pub fn stream_from_proto(p: pb::StreamState) -> Result<StreamAggregate, CodecError> {
    let mut videos = Vec::with_capacity(p.videos.len());
    for v in p.videos {
        videos.push(StreamVideo {
            video_id: v.video_id.into(),
            origin: origin_from(
                v.origin
                    .ok_or(CodecError::Invalid("stream.videos.origin"))?,
            )?,
            source: v
                .source
                .map(|r| Reg::new(r.at_ms, rank(r.rank), Status::parse(&r.value))),
        });
    }
    videos.sort_by(|a, b| a.video_id.cmp(&b.video_id));
    Ok(StreamAggregate {
        key: stream_from(p.stream),
        interrupt_ms: p.interrupt_ms,
        videos,
        last_event_ms: p.last_event_ms,
        meta: Meta::default(),
    })
}

/// The full snapshot through the prost structs: the reference the direct encoder
/// ([`encode_snapshot`]) is tested against.
pub fn encode_snapshot_prost(agg: &Aggregate) -> Vec<u8> {
    let (key, meta, state) = match agg {
        Aggregate::Video(v) => (
            v.id.to_string(),
            meta_to(&v.meta),
            pb::aggregate_snapshot::State::Video(video_to_proto(v)),
        ),
        Aggregate::Stream(s) => (
            s.key.aggregate_key(),
            meta_to(&s.meta),
            pb::aggregate_snapshot::State::Stream(stream_to_proto(s)),
        ),
    };
    pb::AggregateSnapshot {
        key,
        version: SNAPSHOT_VERSION,
        meta: Some(meta),
        state: Some(state),
    }
    .encode_to_vec()
}

/// Only the folded state (no meta, no key): the bytes that are identical for every order.
pub fn encode_state(agg: &Aggregate) -> Vec<u8> {
    match agg {
        Aggregate::Video(v) => video_to_proto(v).encode_to_vec(),
        Aggregate::Stream(s) => stream_to_proto(s).encode_to_vec(),
    }
}

/// Decodes a snapshot written by [`encode_snapshot`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<Aggregate, CodecError> {
    let snap =
        pb::AggregateSnapshot::decode(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    if snap.version > SNAPSHOT_VERSION {
        return Err(CodecError::Version(snap.version));
    }
    let meta = meta_from(snap.meta);
    match snap.state.ok_or(CodecError::Empty)? {
        pb::aggregate_snapshot::State::Video(v) => {
            let mut v = video_from_proto(v)?;
            v.meta = meta;
            Ok(Aggregate::Video(v))
        }
        pb::aggregate_snapshot::State::Stream(s) => {
            let mut s = stream_from_proto(s)?;
            s.meta = meta;
            Ok(Aggregate::Stream(s))
        }
    }
}

/// The key stored inside a snapshot.
pub fn snapshot_key(bytes: &[u8]) -> Result<String, CodecError> {
    let snap =
        pb::AggregateSnapshot::decode(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    Ok(snap.key)
}

// ----- direct encoder ------------------------------------------------------------------------
//
// The fold writes a snapshot after every record, so encoding is on the hot path. Building the
// prost structs first copies every string; this writer emits the same bytes straight from the
// domain types. `encode_snapshot_prost` is the reference it is tested against (byte equality).

struct W(Vec<u8>);

impl W {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field << 3 | u32::from(wire)));
    }
    fn int64(&mut self, f: u32, v: i64) {
        if v != 0 {
            self.key(f, 0);
            self.varint(v as u64);
        }
    }
    fn opt_int64(&mut self, f: u32, v: Option<i64>) {
        if let Some(v) = v {
            self.key(f, 0);
            self.varint(v as u64);
        }
    }
    fn uint(&mut self, f: u32, v: u64) {
        if v != 0 {
            self.key(f, 0);
            self.varint(v);
        }
    }
    fn bytes_always(&mut self, f: u32, b: &[u8]) {
        self.key(f, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, f: u32, s: &str) {
        if !s.is_empty() {
            self.bytes_always(f, s.as_bytes());
        }
    }
    fn text(&mut self, f: u32, t: &Text) {
        if !t.is_empty() {
            self.opt_text(f, Some(t));
        }
    }
    fn opt_text(&mut self, f: u32, t: Option<&Text>) {
        if let Some(t) = t {
            self.key(f, 2);
            self.varint(t.len() as u64);
            t.write_to(&mut self.0);
        }
    }
    fn opt_text_ref(&mut self, f: u32, t: Option<TextRef<'_>>) {
        if let Some(t) = t {
            self.key(f, 2);
            self.varint(t.len() as u64);
            t.write_to(&mut self.0);
        }
    }
    fn opt_str(&mut self, f: u32, s: Option<&str>) {
        if let Some(s) = s {
            self.bytes_always(f, s.as_bytes());
        }
    }
    /// A length-delimited sub-message: one length byte is reserved and widened if needed.
    fn msg(&mut self, f: u32, body: impl FnOnce(&mut W)) {
        self.key(f, 2);
        let at = self.0.len();
        self.0.push(0);
        body(self);
        let end = self.0.len();
        let len = end - at - 1;
        if len < 0x80 {
            self.0[at] = len as u8;
        } else {
            // Widen the reserved byte in place: shift the body right, then write the varint.
            let mut tmp = [0u8; 10];
            let (mut v, mut n) = (len as u64, 0);
            while v >= 0x80 {
                tmp[n] = (v as u8) | 0x80;
                v >>= 7;
                n += 1;
            }
            tmp[n] = v as u8;
            n += 1;
            self.0.resize(end + n - 1, 0);
            self.0.copy_within(at + 1..end, at + n);
            self.0[at..at + n].copy_from_slice(&tmp[..n]);
        }
    }
}

fn w_stream(w: &mut W, f: u32, k: &StreamKey) {
    w.msg(f, |w| {
        w.str(1, &k.domain);
        w.str(2, &k.app);
        w.str(3, &k.stream);
    });
}

fn w_origin(w: &mut W, f: u32, o: &Reg<Origin>) {
    w.msg(f, |w| {
        w.int64(1, o.at_ms);
        w.uint(2, u64::from(o.rank));
        w.str(3, o.value.kind.as_str());
        w.str(4, o.value.status.as_str());
        w_stream(w, 5, &o.value.stream);
        w.opt_int64(6, o.value.record_start_ms);
        w.opt_int64(7, o.value.record_end_ms);
    });
}

fn w_text_reg(w: &mut W, f: u32, at_ms: i64, rank: u8, value: &str) {
    w.msg(f, |w| {
        w.int64(1, at_ms);
        w.uint(2, u64::from(rank));
        w.str(3, value);
    });
}

fn w_video(w: &mut W, v: &VideoAggregate) {
    w.str(1, &v.id);
    if let Some(o) = &v.origin {
        w_origin(w, 2, o);
    }
    if let Some(s) = &v.source {
        w.msg(3, |w| {
            w.int64(1, s.at_ms);
            w.uint(2, u64::from(s.rank));
            w.str(3, s.value.status.as_str());
            w.opt_int64(4, s.value.size);
            w.opt_text(5, s.value.file_url.as_ref());
        });
    }
    w.opt_int64(4, v.source_success_ms);
    if let Some(c) = &v.cover {
        w.msg(5, |w| {
            w.int64(1, c.at_ms);
            w.uint(2, u64::from(c.rank));
            w.text(3, &c.value);
        });
    }
    for s in &v.snapshots {
        w.msg(6, |w| {
            w.str(1, &s.snapshot_type);
            w.int64(2, s.reg.at_ms);
            w.uint(3, u64::from(s.reg.rank));
            w.str(4, s.reg.value.0.as_str());
            w.opt_int64(5, s.reg.value.1);
        });
    }
    for r in &v.renditions {
        let i = r.reg.value.view();
        w.msg(7, |w| {
            w.str(1, &r.definition);
            w.str(2, &r.format);
            w.int64(3, r.reg.at_ms);
            w.uint(4, u64::from(r.reg.rank));
            w.str(5, i.status);
            w.opt_text_ref(6, i.file_url);
            w.opt_str(7, i.bitrate);
            w.opt_int64(8, i.width);
            w.opt_int64(9, i.height);
            if let Some(d) = i.duration {
                w.key(10, 1);
                w.0.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            w.opt_int64(11, i.size);
            w.opt_text_ref(12, i.job_id);
            w.opt_str(13, i.error_code);
        });
    }
    for t in &v.transcodes {
        w.msg(8, |w| {
            w.int64(1, t.at_ms);
            w.uint(2, u64::from(t.rank));
            if t.value != 0 {
                w.key(3, 1);
                w.0.extend_from_slice(&t.value.to_le_bytes());
            }
        });
    }
    for r in &v.requests {
        w.msg(9, |w| {
            w.str(1, &r.template_group);
            w.int64(2, r.at_ms);
            w.opt_str(3, r.request_id.as_deref());
            w.opt_str(4, r.priority.as_deref());
        });
    }
    for s in &v.submissions {
        let i = &s.reg.value;
        w.msg(10, |w| {
            w.str(1, &s.command_id);
            w.int64(2, s.reg.at_ms);
            w.uint(3, u64::from(s.reg.rank));
            w.str(4, &i.template_group);
            w.str(5, i.status.as_str());
            w.opt_str(6, i.task_id.as_deref());
            w.opt_str(7, i.error_code.as_deref());
        });
    }
    if let Some(o) = &v.observed {
        w.msg(11, |w| {
            w.int64(1, o.at_ms);
            w.uint(2, u64::from(o.rank));
            w.str(3, &o.value.video_status);
            w.opt_int64(4, o.value.size);
        });
    }
    for p in &v.play_urls {
        w.msg(12, |w| {
            w.str(1, &p.definition);
            w.str(2, &p.format);
            w.int64(3, p.reg.at_ms);
            w.uint(4, u64::from(p.reg.rank));
            w.text(5, &p.reg.value);
        });
    }
    for e in &v.emitted {
        w.bytes_always(13, e);
    }
    for g in &v.auto_groups {
        w.bytes_always(14, g.as_bytes());
    }
    if v.policy_refused {
        w.key(15, 0);
        w.0.push(1);
    }
    if !v.dedup.is_empty() {
        w.key(16, 2);
        w.varint(8 * v.dedup.len() as u64);
        for d in &v.dedup {
            w.0.extend_from_slice(&d.to_le_bytes());
        }
    }
    w.opt_int64(17, v.last_event_ms);
}

fn w_stream_state(w: &mut W, s: &StreamAggregate) {
    w_stream(w, 1, &s.key);
    w.int64(2, s.interrupt_ms);
    for v in &s.videos {
        w.msg(3, |w| {
            w.str(1, &v.video_id);
            w_origin(w, 2, &v.origin);
            if let Some(r) = &v.source {
                w_text_reg(w, 3, r.at_ms, r.rank, r.value.as_str());
            }
        });
    }
    w.opt_int64(5, s.last_event_ms);
}

/// The full snapshot (state + meta) of an aggregate: the `AggregateSnapshot` protobuf bytes,
/// written directly (byte-identical to prost's encoding, see [`encode_snapshot_prost`]).
pub fn encode_snapshot(agg: &Aggregate) -> Vec<u8> {
    // Most snapshots fit (a video with four renditions is ~2 KB): no regrowth while writing.
    let mut w = W(Vec::with_capacity(4096));
    let meta = agg.meta();
    match agg {
        Aggregate::Video(v) => w.str(1, &v.id),
        Aggregate::Stream(s) => w.str(1, &s.key.aggregate_key()),
    }
    w.uint(2, u64::from(SNAPSHOT_VERSION));
    w.msg(3, |w| {
        w.uint(1, meta.deliveries);
        w.uint(2, meta.duplicates);
        if let Some(p) = meta.last_applied {
            w.msg(3, |w| {
                w.int64(1, i64::from(p.partition));
                w.int64(2, p.offset);
            });
        }
    });
    match agg {
        Aggregate::Video(v) => w.msg(10, |w| w_video(w, v)),
        Aggregate::Stream(s) => w.msg(11, |w| w_stream_state(w, s)),
    }
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Engine, InputPos, Policy};

    #[test]
    fn direct_encoder_matches_prost_and_round_trips() {
        let mut e = Engine::new(
            Policy::parse(
                "[defaults]\ncomposed = { action = \"transcode\", template_group = \"g\" }\n",
            )
            .unwrap(),
        );
        let long_url = format!("http://x/{}", "u".repeat(300));
        let bodies = [
            r#"{"EventTime":"2018-01-01T10:00:00Z","EventType":"LiveRecordVideoComposeStart","VideoId":"c1","Status":"success","DomainName":"d","AppName":"a","StreamName":"s"}"#.to_string(),
            format!(r#"{{"EventTime":"2018-01-01T10:05:00Z","EventType":"FileUploadComplete","VideoId":"c1","Size":5,"FileUrl":"{long_url}"}}"#),
            r#"{"EventTime":"2018-01-01T10:06:00.5Z","EventType":"StreamTranscodeComplete","VideoId":"c1","Status":"fail","Definition":"HD","Format":"mp4","Duration":-0.0,"Width":-3,"ErrorCode":"E"}"#.to_string(),
            r#"{"EventTime":"2018-01-01T10:07:00Z","EventType":"TranscodeComplete","VideoId":"c1","Status":"success","StreamInfos":[{"Status":"success","Definition":"SD","Format":"m3u8","Duration":12.5,"FileUrl":""}]}"#.to_string(),
            r#"{"EventTime":"2018-01-01T10:08:00Z","EventType":"SnapshotComplete","VideoId":"c1","Status":"success","CoverUrl":"c","SnapshotInfos":[{"SnapshotType":"CoverSnapshot","SnapshotCount":0}]}"#.to_string(),
            r#"{"EventTime":"2018-01-01T10:09:00Z","EventType":"live2vod.TranscodeRequested","VideoId":"c1","TemplateGroupId":"g2","RequestId":""}"#.to_string(),
            r#"{"EventTime":"2018-01-01T10:10:00Z","EventType":"live2vod.TranscodeRejected","VideoId":"c1","CommandId":"tc-x","TemplateGroupId":"g2","ErrorCode":"Forbidden"}"#.to_string(),
            r#"{"EventTime":"2018-01-01T10:11:00Z","EventType":"live2vod.VideoInfoObserved","VideoId":"c1","CommandId":"ct-x","VideoStatus":"Normal"}"#.to_string(),
            r#"{"EventTime":"2018-01-01T10:12:00Z","EventType":"live2vod.PlayInfoResolved","VideoId":"c1","CommandId":"pi-x","Status":"success","PlayInfos":[{"PlayURL":"https://cdn/x","Definition":"SD","Format":"m3u8"}]}"#.to_string(),
            r#"{"EventTime":"1969-12-31T23:59:59Z","EventType":"Old","VideoId":"c1"}"#.to_string(),
        ];
        let mut facts = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let out = e
                .apply(
                    "",
                    b.as_bytes(),
                    InputPos {
                        partition: -1,
                        offset: i as i64 - 3,
                    },
                )
                .unwrap();
            facts.extend(out.derived);
        }
        for (i, (k, b)) in facts.iter().enumerate() {
            e.apply(
                k,
                b,
                InputPos {
                    partition: 3,
                    offset: i as i64,
                },
            )
            .unwrap();
        }
        assert_eq!(e.len(), 2);
        for (_, a) in e.aggregates() {
            let direct = encode_snapshot(a);
            assert_eq!(direct, encode_snapshot_prost(a));
            let back = decode_snapshot(&direct).unwrap();
            assert_eq!(&back, a);
            assert_eq!(encode_snapshot(&back), direct);
        }
        assert!(matches!(
            decode_snapshot(&[0x0a, 0x05, b'x']),
            Err(CodecError::Decode(_))
        ));
        assert_eq!(decode_snapshot(&[]), Err(CodecError::Empty));
    }
}
