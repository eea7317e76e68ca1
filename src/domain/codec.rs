//! Aggregates <-> protobuf snapshots (`AggregateSnapshot` on the aggregates topic).
//!
//! Lossless both ways: `decode(encode(a)) == a`, and because every collection is kept sorted and
//! prost writes fields in number order, `encode(decode(bytes)) == bytes` for snapshots we wrote.
//! Decoding re-sorts collections defensively, so a hand-made snapshot cannot break the sorted-set
//! invariants the joins rely on.
use prost::Message;
use thiserror::Error;

use super::aggregate::Aggregate;
pub use super::aggregate::SNAPSHOT_VERSION;
use super::compact::packed::{PackedInfo, RenditionInfo};
pub use super::compact::proto_writer::encode_snapshot;
use super::compact::text::Text;
use super::lattice::{Origin, OriginKind, Reg, Status, StreamKey, F64};
use super::stream::{StreamAggregate, StreamVideo};
use super::video::{
    CommandKey, InputPos, Meta, Observed, PlayUrl, Rendition, SnapshotEntry, Source, Submission,
    SubmissionInfo, TranscodeRequest, VideoAggregate,
};
use crate::proto as pb;

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
pub(crate) fn origin_from(o: pb::OriginReg) -> Result<Reg<Origin>, CodecError> {
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

pub(crate) fn meta_to(m: &Meta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        deliveries: m.deliveries,
        duplicates: m.duplicates,
        last_applied: m.last_applied.map(|p| pb::InputPosition {
            partition: p.partition,
            offset: p.offset,
        }),
    }
}
pub(crate) fn meta_from(m: Option<pb::SnapshotMeta>) -> Meta {
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

pub(crate) fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// The remembered command keys (each must be 17 bytes), sorted.
pub(crate) fn emitted_from(e: Vec<Vec<u8>>) -> Result<Vec<CommandKey>, CodecError> {
    let mut emitted = Vec::with_capacity(e.len());
    for k in e {
        emitted
            .push(<[u8; 17]>::try_from(k.as_slice()).map_err(|_| CodecError::Invalid("emitted"))?);
    }
    Ok(sorted(emitted))
}

/// Worker submission outcomes, sorted by command id.
pub(crate) fn submissions_from(s: Vec<pb::SubmissionReg>) -> Vec<Submission> {
    let mut submissions: Vec<Submission> = s
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
    submissions
}

/// TranscodeComplete outcomes seen, sorted.
pub(crate) fn transcodes_from(t: Vec<pb::TranscodeCompleteSeen>) -> Vec<Reg<u64>> {
    sorted(
        t.into_iter()
            .map(|t| Reg::new(t.at_ms, rank(t.rank), t.dedup_key))
            .collect(),
    )
}

/// Manual requests seen, sorted.
pub(crate) fn requests_from(r: Vec<pb::TranscodeRequestSeen>) -> Vec<TranscodeRequest> {
    sorted(
        r.into_iter()
            .map(|r| TranscodeRequest {
                template_group: r.template_group.into(),
                at_ms: r.at_ms,
                request_id: bs(r.request_id),
                priority: bs(r.priority),
            })
            .collect(),
    )
}

/// A video aggregate from its protobuf state (meta default).
pub fn video_from_proto(p: pb::VideoState) -> Result<VideoAggregate, CodecError> {
    let emitted = emitted_from(p.emitted)?;
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
    let submissions = submissions_from(p.submissions);
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
        transcodes: transcodes_from(p.transcodes),
        requests: requests_from(p.requests),
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
        emitted,
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

/// The checks every reader of a snapshot makes (decodes, version not newer than ours, a state
/// present): the state and its metadata. [`decode_snapshot`] and the api's view share it.
pub(crate) fn decode_envelope(
    bytes: &[u8],
) -> Result<(pb::aggregate_snapshot::State, Meta), CodecError> {
    let snap =
        pb::AggregateSnapshot::decode(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    if snap.version > SNAPSHOT_VERSION {
        return Err(CodecError::Version(snap.version));
    }
    let meta = meta_from(snap.meta);
    Ok((snap.state.ok_or(CodecError::Empty)?, meta))
}

/// Decodes a snapshot written by [`encode_snapshot`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<Aggregate, CodecError> {
    let (state, meta) = decode_envelope(bytes)?;
    match state {
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
