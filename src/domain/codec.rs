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
use super::video::{
    InputPos, Meta, Observed, PlayUrl, Rendition, RenditionInfo, SnapshotEntry, Source, Submission,
    SubmissionInfo, TranscodeRequest, VideoAggregate,
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
            file_url: os(&s.value.file_url),
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
                let i = &r.reg.value;
                pb::RenditionReg {
                    definition: r.definition.to_string(),
                    format: r.format.to_string(),
                    at_ms: r.reg.at_ms,
                    rank: u32::from(r.reg.rank),
                    status: i.status.as_str().to_string(),
                    file_url: os(&i.file_url),
                    bitrate: os(&i.bitrate),
                    width: i.width,
                    height: i.height,
                    duration: i.duration.map(|d| d.0),
                    size: i.size,
                    job_id: os(&i.job_id),
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
                RenditionInfo {
                    status: Status::parse(&r.status),
                    file_url: bs(r.file_url),
                    bitrate: bs(r.bitrate),
                    width: r.width,
                    height: r.height,
                    duration: r.duration.map(F64),
                    size: r.size,
                    job_id: bs(r.job_id),
                    error_code: bs(r.error_code),
                },
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
            reg: Reg::new(u.at_ms, rank(u.rank), u.url.into()),
        })
        .collect();
    play_urls.sort_by(|a, b| (&a.definition, &a.format).cmp(&(&b.definition, &b.format)));
    Ok(VideoAggregate {
        id: p.id.into(),
        origin: p.origin.map(origin_from).transpose()?,
        source: p.source.map(|s| {
            Reg::new(
                s.at_ms,
                rank(s.rank),
                Source {
                    status: Status::parse(&s.status),
                    size: s.size,
                    file_url: bs(s.file_url),
                },
            )
        }),
        source_success_ms: p.source_success_ms,
        cover: p
            .cover
            .map(|c| Reg::new(c.at_ms, rank(c.rank), c.value.into())),
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
            Reg::new(
                o.at_ms,
                rank(o.rank),
                Observed {
                    video_status: o.video_status.into(),
                    size: o.size,
                },
            )
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

/// The full snapshot (state + meta) of an aggregate.
pub fn encode_snapshot(agg: &Aggregate) -> Vec<u8> {
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
