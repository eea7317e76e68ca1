//! [`Aggregate`]: what the engine holds per key and a snapshot encodes, a video or a stream.
use super::stream::StreamAggregate;
use super::video::{Meta, VideoAggregate};

/// Snapshot schema version written by this code (`AggregateSnapshot.version`).
pub const SNAPSHOT_VERSION: u32 = 1;

/// An aggregate: a video (VideoId/MediaId/ImageId) or a stream (`stream:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
// The engine already boxes every aggregate; boxing the variant too would add a second hop.
#[allow(clippy::large_enum_variant)]
pub enum Aggregate {
    /// Per VideoId.
    Video(VideoAggregate),
    /// Per stream.
    Stream(StreamAggregate),
}

impl Aggregate {
    /// The aggregate key (Kafka key on the callbacks and aggregates topics).
    pub fn key(&self) -> String {
        match self {
            Aggregate::Video(v) => v.id.to_string(),
            Aggregate::Stream(s) => s.key.aggregate_key(),
        }
    }

    /// Per-delivery bookkeeping.
    pub fn meta(&self) -> &Meta {
        match self {
            Aggregate::Video(v) => &v.meta,
            Aggregate::Stream(s) => &s.meta,
        }
    }

    pub(crate) fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Aggregate::Video(v) => &mut v.meta,
            Aggregate::Stream(s) => &mut s.meta,
        }
    }

    pub(crate) fn has_event(&self, dedup_key: u64) -> bool {
        match self {
            Aggregate::Video(v) => v.has_event(dedup_key),
            // Streams recognise duplicate facts by their fold changing nothing (see there).
            Aggregate::Stream(_) => false,
        }
    }

    /// The video, if this is one.
    pub fn as_video(&self) -> Option<&VideoAggregate> {
        match self {
            Aggregate::Video(v) => Some(v),
            Aggregate::Stream(_) => None,
        }
    }

    /// The stream, if this is one.
    pub fn as_stream(&self) -> Option<&StreamAggregate> {
        match self {
            Aggregate::Stream(s) => Some(s),
            Aggregate::Video(_) => None,
        }
    }
}
