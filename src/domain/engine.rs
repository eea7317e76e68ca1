//! The pure engine the fold and replay drive: parse, fold, project, derive, snapshot.
//!
//! ```text
//! let mut engine = Engine::new(policy);
//! engine.restore(key, snapshot_bytes)?;                 // from the aggregates topic
//! let out = engine.apply(key, body, InputPos { partition, offset })?;
//! // out.commands -> commands topic, out.derived -> callbacks topic (durable first),
//! // then out.snapshot -> aggregates topic (same partition number), then commit the offset.
//! engine.evict_partition(p);                            // on revoke
//! ```
use std::collections::BTreeMap;

use super::codec::{decode_snapshot, encode_snapshot, CodecError};
use super::event::{parse_event, EventBody, EventError};
use super::lattice::{set_insert, StreamKey, STREAM_KEY_PREFIX};
use super::policy::Policy;
use super::projector::project;
use super::stream::StreamAggregate;
use super::video::{InputPos, Meta, VideoAggregate};
use crate::proto::Command;

/// An aggregate: a video (VideoId/MediaId/ImageId) or a stream (`stream:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
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

    fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Aggregate::Video(v) => &mut v.meta,
            Aggregate::Stream(s) => &mut s.meta,
        }
    }

    fn has_event(&self, dedup_key: u64) -> bool {
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

/// What applying one record did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// The aggregate the event folded into.
    pub aggregate_key: String,
    /// `EventType` of the body.
    pub event_type: String,
    /// The event had been folded before (same dedup key): only counters moved.
    pub duplicate: bool,
    /// This input position had been applied before (re-delivery after a crash): nothing moved.
    pub already_applied: bool,
    /// The folded state changed (not just counters).
    pub changed: bool,
    /// New commands, never emitted before by this aggregate.
    pub commands: Vec<Command>,
    /// Stream facts to produce to the callbacks topic: (key, JSON body).
    pub derived: Vec<(String, Vec<u8>)>,
    /// The encoded `AggregateSnapshot`, whenever anything in it changed (state, counters or the
    /// input position), i.e. for every record that was not `already_applied`.
    pub snapshot: Option<Vec<u8>>,
}

/// Holds the aggregates of the partitions a fold instance owns, and the policy.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    policy: Policy,
    // BTreeMap: deterministic iteration (no random hasher), boxed values keep nodes small.
    aggregates: BTreeMap<String, Box<Aggregate>>,
}

impl Engine {
    /// An engine with no aggregates.
    pub fn new(policy: Policy) -> Self {
        Engine {
            policy,
            aggregates: BTreeMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Loads an aggregate from its snapshot (replacing any in memory).
    pub fn restore(&mut self, key: &str, bytes: &[u8]) -> Result<(), CodecError> {
        let agg = decode_snapshot(bytes)?;
        let snapshot_key = agg.key();
        if snapshot_key != key {
            return Err(CodecError::KeyMismatch {
                snapshot_key,
                record_key: key.to_string(),
            });
        }
        self.aggregates.insert(snapshot_key, Box::new(agg));
        Ok(())
    }

    /// Applies one record of the callbacks topic. `key` is the record key (empty: take the
    /// body's); it must match the body's routing key, since the snapshot goes to the record's
    /// partition and a mismatch would split the aggregate.
    pub fn apply(&mut self, key: &str, body: &[u8], pos: InputPos) -> Result<Applied, EventError> {
        let ev = parse_event(body)?;
        let is_fact = matches!(ev.body, EventBody::StreamFact(_));
        if !is_fact && ev.id.starts_with(STREAM_KEY_PREFIX) {
            return Err(EventError::BadField {
                field: "VideoId",
                reason: format!("ids starting with {STREAM_KEY_PREFIX:?} are reserved for streams"),
            });
        }
        let agg_key = ev.aggregate_key();
        if !key.is_empty() && key != agg_key {
            return Err(EventError::KeyMismatch {
                record_key: key.to_string(),
                routing_key: agg_key,
            });
        }
        let entry = self.aggregates.entry(agg_key).or_insert_with_key(|k| {
            Box::new(match &ev.body {
                EventBody::StreamFact(f) => {
                    Aggregate::Stream(StreamAggregate::new(f.stream().clone()))
                }
                _ => Aggregate::Video(VideoAggregate::new(k)),
            })
        });
        let mut out = Applied {
            aggregate_key: entry.key(),
            event_type: ev.event_type.clone(),
            ..Applied::default()
        };
        out.duplicate = entry.has_event(ev.dedup_key);
        if entry.meta().already_applied(pos) {
            out.already_applied = true;
            return Ok(out);
        }
        let meta = entry.meta_mut();
        meta.deliveries += 1;
        meta.last_applied = Some(pos);
        if out.duplicate {
            meta.duplicates += 1;
        } else {
            match entry.as_mut() {
                Aggregate::Video(v) => {
                    let before = v.stream_fact();
                    out.changed = v.fold(&ev);
                    if out.changed {
                        let projection = project(v, &self.policy);
                        for w in projection.commands {
                            if let Some(g) = w.auto_group {
                                set_insert(&mut v.auto_groups, g.into_boxed_str());
                            }
                            if set_insert(&mut v.emitted, w.key) {
                                out.commands.push(w.command);
                            }
                        }
                        v.policy_refused |= projection.refused;
                        let after = v.stream_fact();
                        if after != before {
                            if let Some(f) = after {
                                out.derived.push((f.stream().aggregate_key(), f.to_body()));
                            }
                        }
                    }
                }
                Aggregate::Stream(s) => {
                    if !is_fact {
                        // Cannot happen: non-fact keys never start with "stream:" (checked above).
                        return Err(EventError::NoRoutingId);
                    }
                    out.changed = s.fold(&ev);
                    if !out.changed {
                        out.duplicate = true;
                        s.meta.duplicates += 1;
                    }
                }
            }
        }
        out.snapshot = Some(encode_snapshot(entry));
        Ok(out)
    }

    /// Drops the aggregates last fed from `partition` (after a revoke); returns how many.
    pub fn evict_partition(&mut self, partition: i32) -> usize {
        let before = self.aggregates.len();
        self.aggregates.retain(|_, a| {
            a.meta()
                .last_applied
                .is_none_or(|p| p.partition != partition)
        });
        before - self.aggregates.len()
    }

    /// An aggregate by key.
    pub fn get(&self, key: &str) -> Option<&Aggregate> {
        self.aggregates.get(key).map(|b| &**b)
    }

    /// A video aggregate by id.
    pub fn video(&self, id: &str) -> Option<&VideoAggregate> {
        self.get(id).and_then(Aggregate::as_video)
    }

    /// A stream aggregate by key (`stream:d/a/s`) or by path (`d/a/s`).
    pub fn stream(&self, key: &str) -> Option<&StreamAggregate> {
        if key.starts_with(STREAM_KEY_PREFIX) {
            self.get(key).and_then(Aggregate::as_stream)
        } else {
            let mut it = key.splitn(3, '/');
            let k = StreamKey::new(it.next()?, it.next()?, it.next()?);
            self.get(&k.aggregate_key()).and_then(Aggregate::as_stream)
        }
    }

    /// The encoded snapshot of an aggregate.
    pub fn snapshot_bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.get(key).map(encode_snapshot)
    }

    /// Every aggregate, in key order.
    pub fn aggregates(&self) -> impl Iterator<Item = (&str, &Aggregate)> {
        self.aggregates.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// Number of aggregates held.
    pub fn len(&self) -> usize {
        self.aggregates.len()
    }

    /// Whether no aggregate is held.
    pub fn is_empty(&self) -> bool {
        self.aggregates.is_empty()
    }
}
