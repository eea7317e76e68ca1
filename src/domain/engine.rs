//! The pure engine the fold and replay drive: parse, fold, project, derive, snapshot.
//!
//! ```text
//! let mut engine = Engine::new(policy);
//! engine.restore(key, snapshot_bytes)?;                 // from the aggregates topic
//! let out = engine.apply(key, body, InputPos { partition, offset })?;
//! // out.commands -> commands topic, out.derived -> callbacks topic (durable first),
//! // then, once per batch, engine.snapshot_bytes(key) of every key with out.dirty -> aggregates
//! // topic (same partition number), then commit the offsets.
//! engine.evict_partition(p);                            // on revoke
//! ```
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::aggregate::Aggregate;
use super::codec::{decode_snapshot, encode_snapshot, CodecError};
use super::compact::key_hasher::KeyHasher;
use super::event::{parse_event, Event, EventBody, EventError, StreamFact};
use super::lattice::{set_insert, StreamKey, STREAM_KEY_PREFIX};
use super::policy::Policy;
use super::projector::project;
use super::stream::StreamAggregate;
use super::video::{InputPos, VideoAggregate};
use super::vocab::{event_type, Fact};
use crate::proto::Command;

/// What applying one record did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    /// The aggregate the event folded into.
    pub aggregate_key: String,
    /// `EventType` of the body (static for the types live2vod knows: no allocation per record).
    pub event_type: Cow<'static, str>,
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
    /// An observation event (`live2vod reconcile`) brought a fact no event had brought before,
    /// with the observation's event time (the source's time): a callback VOD lost, recovered.
    pub recovered: Option<(Fact, i64)>,
    /// The aggregate's `AggregateSnapshot` changed (state, counters or the input position), i.e.
    /// true for every record that was not `already_applied`. The bytes are not encoded here:
    /// callers that write snapshots encode them with [`Engine::snapshot_bytes`] when they write
    /// them (the fold once per aggregate and batch, not once per record).
    pub dirty: bool,
    /// The video's status before the record, when the aggregate existed and is a video; only
    /// from [`Engine::apply_loading`] (the fold's status metrics: an engine that holds only a
    /// cache cannot be asked before).
    pub status_before: Option<super::video::VideoStatus>,
}

fn static_event_type(ty: &str) -> Cow<'static, str> {
    match event_type::KNOWN.iter().find(|k| **k == ty) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(ty.to_string()),
    }
}

type AggregateMap = HashMap<Box<str>, Cached, BuildHasherDefault<KeyHasher>>;

/// An aggregate held in memory, with what the bounded cache needs to choose what to drop.
#[derive(Debug, Clone)]
struct Cached {
    agg: Box<Aggregate>,
    /// The engine's use counter when it was last applied to or loaded (least recently used
    /// goes first).
    used: u64,
    /// Estimated bytes it holds in memory (see [`memory_cost`]).
    cost: usize,
}

/// Estimated memory of an aggregate whose snapshot is `snapshot_len` bytes. Measured, the
/// decoded form is about as big as the encoded one (`bench fold`: 1,999 heap bytes per video
/// with 4 renditions, whose snapshot is about 2,000 bytes); half again as much covers spare
/// capacity and the allocator, plus the map entry and the key. `live2vod bench state` checks
/// the estimate against the process's real peak memory.
pub fn memory_cost(snapshot_len: usize) -> usize {
    snapshot_len * 3 / 2 + 256
}

/// The cost of an aggregate not encoded yet (new in this batch): about a video's.
const UNSIZED_COST: usize = 2048;

/// Why [`Engine::apply_loading`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The record: dead-letter it.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The aggregate could not be loaded from where the caller keeps it (not the record's
    /// fault: the record must be folded again once the state is sound).
    #[error("loading aggregate {key}: {error}")]
    Load {
        /// The aggregate.
        key: String,
        /// What the loader said.
        error: String,
    },
}

/// Holds the aggregates of the partitions a fold instance owns, and the policy. With a backing
/// store (the fold's `--state-dir`) it holds only a bounded cache of them: the caller loads
/// missing ones through [`Engine::apply_loading`] and drops the least recently used with
/// [`Engine::evict_lru`] once their snapshots are stored.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    policy: Policy,
    // A hash map with a fixed hash function (no per-process random seed, so nothing here depends
    // on randomness); `aggregates()` sorts by key for a deterministic order.
    aggregates: AggregateMap,
    /// Use counter (a logical clock: no time is read here).
    tick: u64,
    /// Sum of the held aggregates' costs.
    cached_bytes: usize,
}

impl Engine {
    /// An engine with no aggregates.
    pub fn new(policy: Policy) -> Self {
        Engine {
            policy,
            ..Engine::default()
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
        self.tick += 1;
        let cached = Cached {
            agg: Box::new(agg),
            used: self.tick,
            cost: memory_cost(bytes.len()),
        };
        self.cached_bytes += cached.cost;
        if let Some(old) = self
            .aggregates
            .insert(snapshot_key.into_boxed_str(), cached)
        {
            self.cached_bytes -= old.cost;
        }
        Ok(())
    }

    /// Applies one record of the callbacks topic. `key` is the record key (empty: take the
    /// body's); it must match the body's routing key, since the snapshot goes to the record's
    /// partition and a mismatch would split the aggregate.
    ///
    /// Three steps: `route` (which aggregate, refusing keys that would split one), dedup
    /// (re-delivered positions change nothing; repeated events only move counters), then
    /// `evolve` the state and, for videos whose projector inputs changed, `react`.
    pub fn apply(&mut self, key: &str, body: &[u8], pos: InputPos) -> Result<Applied, EventError> {
        self.apply_inner(key, body, pos, |_| Ok(None), false)
            .map_err(|e| match e {
                ApplyError::Event(e) => e,
                ApplyError::Load { .. } => unreachable!("a loader that finds nothing cannot fail"),
            })
    }

    /// [`Engine::apply`] for the fold: an aggregate not held (an engine that holds only a
    /// cache) is asked of `load` (its snapshot, or `None` when it does not exist yet) before
    /// the record is folded into it, and [`Applied::status_before`] is filled in (its status
    /// metrics; [`Engine::apply`] leaves it `None` and skips that work).
    pub fn apply_loading(
        &mut self,
        key: &str,
        body: &[u8],
        pos: InputPos,
        load: impl FnOnce(&str) -> Result<Option<Vec<u8>>, String>,
    ) -> Result<Applied, ApplyError> {
        self.apply_inner(key, body, pos, load, true)
    }

    fn apply_inner(
        &mut self,
        key: &str,
        body: &[u8],
        pos: InputPos,
        load: impl FnOnce(&str) -> Result<Option<Vec<u8>>, String>,
        want_status: bool,
    ) -> Result<Applied, ApplyError> {
        let ev = parse_event(body)?;
        let aggregate_key = route(key, &ev)?;
        let mut out = Applied {
            event_type: static_event_type(&ev.event_type),
            ..Applied::default()
        };
        // Whether the aggregate existed before the record: held, or loaded now.
        let mut existed = self.aggregates.contains_key(aggregate_key.as_str());
        if !existed {
            let fail = |error: String| ApplyError::Load {
                key: aggregate_key.clone(),
                error,
            };
            if let Some(bytes) = load(&aggregate_key).map_err(fail)? {
                self.restore(&aggregate_key, &bytes)
                    .map_err(|e| fail(e.to_string()))?;
                existed = true;
            }
        }
        self.tick += 1;
        let tick = self.tick;
        // Looked up by `&str` first: a known key (the common case) allocates no boxed key.
        let entry = match self.aggregates.get_mut(aggregate_key.as_str()) {
            Some(a) => a,
            None => {
                self.cached_bytes += UNSIZED_COST;
                self.aggregates
                    .entry(aggregate_key.as_str().into())
                    .or_insert_with(|| Cached {
                        agg: new_aggregate(&aggregate_key, &ev),
                        used: tick,
                        cost: UNSIZED_COST,
                    })
            }
        };
        entry.used = tick;
        let agg: &mut Aggregate = &mut entry.agg;
        if want_status && existed {
            out.status_before = agg.as_video().map(VideoAggregate::status);
        }
        out.duplicate = agg.has_event(ev.dedup_key);
        if agg.meta().already_applied(pos) {
            out.already_applied = true;
            out.aggregate_key = aggregate_key;
            return Ok(out);
        }
        let meta = agg.meta_mut();
        meta.deliveries += 1;
        meta.last_applied = Some(pos);
        if out.duplicate {
            meta.duplicates += 1;
        } else {
            evolve(agg, ev, &self.policy, &mut out)?;
        }
        out.dirty = true;
        out.aggregate_key = aggregate_key;
        Ok(out)
    }

    /// Records the size of an aggregate's newest snapshot (the fold knows it when it writes
    /// the snapshot), so the cache's estimate follows the aggregate's growth.
    pub fn note_snapshot_len(&mut self, key: &str, len: usize) {
        if let Some(c) = self.aggregates.get_mut(key) {
            let cost = memory_cost(len);
            self.cached_bytes = self.cached_bytes - c.cost + cost;
            c.cost = cost;
        }
    }

    /// Estimated bytes of the aggregates held.
    pub fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }

    /// When the held aggregates' estimated memory is over `budget` bytes, drops the least
    /// recently used until it is at most 90% of it (so that the next batches do not evict
    /// again at once); returns how many were dropped. Only for aggregates whose newest state
    /// the caller has stored: a dropped aggregate is loaded again from there when needed.
    pub fn evict_lru(&mut self, budget: usize) -> usize {
        if self.cached_bytes <= budget {
            return 0;
        }
        let target = budget / 10 * 9;
        let mut by_use: Vec<(u64, usize)> =
            self.aggregates.values().map(|c| (c.used, c.cost)).collect();
        by_use.sort_unstable();
        // The use count below which everything goes.
        let mut freed = 0usize;
        let mut cut = 0u64;
        for (used, cost) in by_use {
            if self.cached_bytes - freed <= target {
                break;
            }
            freed += cost;
            cut = used;
        }
        let before = self.aggregates.len();
        self.aggregates.retain(|_, c| c.used > cut);
        self.cached_bytes -= freed;
        before - self.aggregates.len()
    }

    /// Drops the aggregates last fed from `partition` (after a revoke); returns how many.
    pub fn evict_partition(&mut self, partition: i32) -> usize {
        let before = self.aggregates.len();
        let mut freed = 0;
        self.aggregates.retain(|_, c| {
            let keep = c
                .agg
                .meta()
                .last_applied
                .is_none_or(|p| p.partition != partition);
            if !keep {
                freed += c.cost;
            }
            keep
        });
        self.cached_bytes -= freed;
        before - self.aggregates.len()
    }

    /// An aggregate by key.
    pub fn get(&self, key: &str) -> Option<&Aggregate> {
        self.aggregates.get(key).map(|c| &*c.agg)
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
        let mut all: Vec<(&str, &Aggregate)> = self
            .aggregates
            .iter()
            .map(|(k, c)| (&**k, &*c.agg))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
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

/// The aggregate an event folds into: its routing id, or `stream:...` for stream facts. The
/// record key must agree (empty: take the body's), and only facts may use the stream namespace.
fn route(key: &str, ev: &Event<'_>) -> Result<String, EventError> {
    let aggregate_key = match &ev.body {
        EventBody::StreamFact(f) => f.stream().aggregate_key(),
        _ if ev.id.starts_with(STREAM_KEY_PREFIX) => {
            return Err(EventError::BadField {
                field: "VideoId",
                reason: format!("ids starting with {STREAM_KEY_PREFIX:?} are reserved for streams"),
            })
        }
        _ => ev.id.to_string(),
    };
    if !key.is_empty() && key != aggregate_key {
        return Err(EventError::KeyMismatch {
            record_key: key.to_string(),
            routing_key: aggregate_key,
        });
    }
    Ok(aggregate_key)
}

/// A new, empty aggregate for `key`: a stream for facts, else a video.
fn new_aggregate(key: &str, ev: &Event<'_>) -> Box<Aggregate> {
    Box::new(match &ev.body {
        EventBody::StreamFact(f) => Aggregate::Stream(StreamAggregate::new(f.stream().clone())),
        _ => Aggregate::Video(VideoAggregate::new(key)),
    })
}

/// Which later steps an event can matter to.
struct Reach {
    /// It feeds the projector's inputs (origin, successful upload, manual requests,
    /// TranscodeComplete), so it can warrant a new command.
    projects: bool,
    /// It can change the origin or source registers: the video's stream fact.
    derives: bool,
}

impl Reach {
    fn of(body: &EventBody<'_>) -> Reach {
        let derives = matches!(
            body,
            EventBody::AddLiveRecordVideoComplete { .. }
                | EventBody::LiveRecordVideoComposeStart { .. }
                | EventBody::FileUploadComplete { .. }
        );
        let projects = derives
            || matches!(
                body,
                EventBody::TranscodeComplete { .. } | EventBody::TranscodeRequested { .. }
            );
        Reach { projects, derives }
    }
}

/// Folds a new (not duplicate) event into the state; a stream fact that changes nothing is a
/// duplicate of the stream's (see [`Applied::duplicate`]).
fn evolve(
    agg: &mut Aggregate,
    ev: Event<'_>,
    policy: &Policy,
    out: &mut Applied,
) -> Result<(), EventError> {
    match agg {
        Aggregate::Video(v) => {
            let reach = Reach::of(&ev.body);
            let before = if reach.derives { v.stream_fact() } else { None };
            let observed = Fact::of_observation(&ev.event_type)
                .filter(|f| !v.has_fact(*f))
                .map(|f| (f, ev.event_time_ms));
            out.changed = v.fold_owned(ev);
            out.recovered = observed.filter(|(f, _)| v.has_fact(*f));
            if out.changed && reach.projects {
                react(v, policy, reach.derives.then_some(before), out);
            }
        }
        Aggregate::Stream(s) => {
            if !matches!(ev.body, EventBody::StreamFact(_)) {
                // Cannot happen: non-fact keys never start with "stream:" (see `route`).
                return Err(EventError::NoRoutingId);
            }
            out.changed = s.fold(&ev);
            if !out.changed {
                out.duplicate = true;
                s.meta.duplicates += 1;
            }
        }
    }
    Ok(())
}

/// What a changed video warrants: commands it never emitted before (remembered in the
/// aggregate), and, when `fact_before` is given (the event could move the stream fact), the
/// new stream fact if it differs.
fn react(
    v: &mut VideoAggregate,
    policy: &Policy,
    fact_before: Option<Option<StreamFact>>,
    out: &mut Applied,
) {
    let projection = project(v, policy);
    for w in projection.commands {
        if let Some(g) = w.auto_group {
            set_insert(&mut v.auto_groups, g.into_boxed_str());
        }
        if set_insert(&mut v.emitted, w.key) {
            out.commands.push(w.command);
        }
    }
    v.policy_refused |= projection.refused;
    if let Some(before) = fact_before {
        let after = v.stream_fact();
        if after != before {
            if let Some(f) = after {
                out.derived.push((f.stream().aggregate_key(), f.to_body()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::projector::{track_compose_command_id, transcode_command_id};
    use crate::domain::video::VideoStatus;
    use crate::proto::command::Kind;

    const ACR: &str = r#"{"EventTime":"2017-12-08T09:26:17Z","EventType":"AddLiveRecordVideoComplete","VideoId":"v1","Status":"success",
        "StreamName":"store-1","DomainName":"live.example.com","AppName":"app","RecordStartTime":"2017-12-08T07:40:56Z","RecordEndTime":"2017-12-08T09:26:17Z"}"#;
    const CS: &str = r#"{"EventTime":"2017-12-08T10:00:00Z","EventType":"LiveRecordVideoComposeStart","VideoId":"c1","Status":"success",
        "StreamName":"store-1","DomainName":"live.example.com","AppName":"app"}"#;
    const FUC: &str = r#"{"EventTime":"2017-12-08T10:03:00Z","EventType":"FileUploadComplete","VideoId":"c1","Status":"success","Size":5,"FileUrl":"u"}"#;
    const TC: &str = r#"{"EventTime":"2017-12-08T10:10:00Z","EventType":"TranscodeComplete","VideoId":"v1","Status":"success",
        "StreamInfos":[{"Status":"success","Definition":"HD","Format":"m3u8","FileUrl":"http://x/hd.m3u8"}]}"#;
    const REQ: &str = r#"{"EventTime":"2017-12-08T11:00:00Z","EventType":"live2vod.TranscodeRequested","VideoId":"v1","TemplateGroupId":"tg-m","RequestId":"r1"}"#;

    fn pos(offset: i64) -> InputPos {
        InputPos {
            partition: 2,
            offset,
        }
    }

    fn observed_recording() -> Vec<u8> {
        crate::domain::observation::recording_observed(&crate::domain::observation::Recording {
            video_id: "v1".into(),
            domain: "live.example.com".into(),
            app: "app".into(),
            stream: "store-1".into(),
            record_start_ms: 1_512_718_856_000,
            record_end_ms: 1_512_724_777_000,
            video_status: Some("Normal".into()),
            created_ms: Some(1_512_724_777_000),
        })
    }

    #[test]
    fn an_observation_counts_as_recovered_only_when_no_event_brought_the_fact_first() {
        // Callback first: the observation confirms, recovers nothing.
        let mut e = Engine::new(Policy::default());
        assert_eq!(
            e.apply("v1", ACR.as_bytes(), pos(0)).unwrap().recovered,
            None
        );
        let obs = e.apply("v1", &observed_recording(), pos(1)).unwrap();
        assert!(!obs.duplicate);
        assert_eq!(obs.recovered, None);
        // Observation first: recovered once; the late callback and a repeat recover nothing.
        let mut e = Engine::new(Policy::default());
        let obs = e.apply("v1", &observed_recording(), pos(0)).unwrap();
        assert_eq!(obs.recovered, Some((Fact::Recording, 1_512_724_777_000)));
        assert_eq!(
            e.apply("v1", &observed_recording(), pos(1))
                .unwrap()
                .recovered,
            None
        );
        assert_eq!(
            e.apply("v1", ACR.as_bytes(), pos(2)).unwrap().recovered,
            None
        );
        // A re-delivered position (after a crash) is not counted again.
        let mut e = Engine::new(Policy::default());
        assert!(e
            .apply("v1", &observed_recording(), pos(0))
            .unwrap()
            .recovered
            .is_some());
        let again = e.apply("v1", &observed_recording(), pos(0)).unwrap();
        assert!(again.already_applied);
        assert_eq!(again.recovered, None);
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    #[test]
    fn duplicate_delivery_counts_but_does_not_change_state() {
        let mut e = Engine::new(Policy::default());
        let a = e.apply("v1", ACR.as_bytes(), pos(1)).unwrap();
        assert!(a.changed && !a.duplicate && a.dirty);
        let state = crate::domain::codec::encode_state(e.get("v1").unwrap());
        let b = e.apply("v1", ACR.as_bytes(), pos(2)).unwrap();
        assert!(b.duplicate && !b.changed && b.commands.is_empty() && b.derived.is_empty());
        assert!(b.dirty, "counters moved, so the snapshot is rewritten");
        assert_eq!(
            crate::domain::codec::encode_state(e.get("v1").unwrap()),
            state
        );
        let v = e.video("v1").unwrap();
        assert_eq!((v.meta.deliveries, v.meta.duplicates), (2, 1));
    }

    #[test]
    fn reapplying_an_applied_position_changes_nothing() {
        let mut e = Engine::new(Policy::default());
        e.apply("v1", ACR.as_bytes(), pos(7)).unwrap();
        let before = e.snapshot_bytes("v1");
        for offset in [7, 3] {
            let again = e.apply("v1", TC.as_bytes(), pos(offset)).unwrap();
            assert!(again.already_applied && !again.dirty && again.commands.is_empty());
        }
        assert_eq!(e.snapshot_bytes("v1"), before);
        assert!(
            !e.apply("v1", TC.as_bytes(), pos(8))
                .unwrap()
                .already_applied
        );
    }

    #[test]
    fn record_key_must_match_the_body() {
        let mut e = Engine::new(Policy::default());
        assert!(matches!(
            e.apply("other", ACR.as_bytes(), pos(1)),
            Err(EventError::KeyMismatch { .. })
        ));
        assert!(
            e.apply("", ACR.as_bytes(), pos(1)).is_ok(),
            "an empty key takes the body's"
        );
        let bad =
            br#"{"EventType":"X","VideoId":"stream:a/b/c","EventTime":"2017-12-08T10:00:00Z"}"#;
        assert!(matches!(
            e.apply("", bad, pos(2)),
            Err(EventError::BadField { .. })
        ));
    }

    #[test]
    fn transcode_policy_submits_once_per_video_and_group() {
        let p = policy("[[rules]]\nstreams = \"live.example.com/app/store-*\"\nsegments = { action = \"transcode\", template_group = \"tg-r\", priority = \"5\" }\n");
        let mut e = Engine::new(p);
        let out = e.apply("v1", ACR.as_bytes(), pos(1)).unwrap();
        assert_eq!(out.commands.len(), 1);
        let c = &out.commands[0];
        assert_eq!(c.command_id, transcode_command_id("v1", "tg-r"));
        assert_eq!(c.cause, "policy:segment");
        assert!(
            matches!(&c.kind, Some(Kind::SubmitTranscode(s)) if s.template_group_id == "tg-r" && s.priority == "5")
        );
        // A manual request for the same group is the same command: not emitted again.
        let req = REQ.replace("tg-m", "tg-r");
        assert!(e
            .apply("v1", req.as_bytes(), pos(2))
            .unwrap()
            .commands
            .is_empty());
        assert_eq!(
            crate::domain::view::video_json(e.video("v1").unwrap())["transcode"]["status"],
            "requested"
        );
    }

    #[test]
    fn manual_request_waits_for_the_origin_and_is_refused_under_none() {
        let mut e = Engine::new(policy("[defaults]\nsegments = { action = \"none\" }\n"));
        assert!(e
            .apply("v1", REQ.as_bytes(), pos(1))
            .unwrap()
            .commands
            .is_empty());
        assert!(e
            .apply("v1", ACR.as_bytes(), pos(2))
            .unwrap()
            .commands
            .is_empty());
        let v = e.video("v1").unwrap();
        assert_eq!(v.transcode_status(), "rejected");
        assert_eq!(v.transcode_rejection().as_deref(), Some("policy"));

        // No policy file: manual requests are honoured.
        let mut e = Engine::new(Policy::default());
        assert!(
            e.apply("v1", REQ.as_bytes(), pos(1))
                .unwrap()
                .commands
                .is_empty(),
            "origin unknown yet"
        );
        let out = e.apply("v1", ACR.as_bytes(), pos(2)).unwrap();
        assert_eq!(out.commands.len(), 1);
        assert_eq!(out.commands[0].cause, "manual:r1");
    }

    #[test]
    fn a_manual_request_for_a_composed_video_waits_for_its_source() {
        const REQ_C: &str = r#"{"EventTime":"2017-12-08T10:01:00Z","EventType":"live2vod.TranscodeRequested","VideoId":"c1","TemplateGroupId":"tg-m","RequestId":"r2"}"#;
        const FUC_FAIL: &str = r#"{"EventTime":"2017-12-08T10:02:00Z","EventType":"FileUploadComplete","VideoId":"c1","Status":"fail"}"#;
        let submits = |out: &Applied| {
            out.commands
                .iter()
                .filter(|c| matches!(c.kind, Some(Kind::SubmitTranscode(_))))
                .count()
        };
        let mut e = Engine::new(Policy::default());
        assert_eq!(submits(&e.apply("c1", CS.as_bytes(), pos(1)).unwrap()), 0);
        let req = e.apply("c1", REQ_C.as_bytes(), pos(2)).unwrap();
        assert_eq!(submits(&req), 0, "the source is still uploading");
        assert_eq!(e.video("c1").unwrap().transcode_status(), "requested");
        let failed = e.apply("c1", FUC_FAIL.as_bytes(), pos(3)).unwrap();
        assert_eq!(submits(&failed), 0, "a failed upload is no source");
        let out = e.apply("c1", FUC.as_bytes(), pos(4)).unwrap();
        assert_eq!(submits(&out), 1);
        assert_eq!(out.commands[0].cause, "manual:r2");
        // Any order: the upload first, then the request.
        let mut e = Engine::new(Policy::default());
        e.apply("c1", FUC.as_bytes(), pos(1)).unwrap();
        e.apply("c1", CS.as_bytes(), pos(2)).unwrap();
        assert_eq!(
            submits(&e.apply("c1", REQ_C.as_bytes(), pos(3)).unwrap()),
            1
        );
    }

    #[test]
    fn compose_start_tracks_the_compose_and_derives_stream_facts() {
        let mut e = Engine::new(policy("[defaults]\ncompose_deadline_secs = 900\n"));
        let out = e.apply("c1", CS.as_bytes(), pos(1)).unwrap();
        assert_eq!(out.commands.len(), 1);
        assert_eq!(out.commands[0].command_id, track_compose_command_id("c1"));
        let cs_ms = crate::domain::time::parse_event_time("2017-12-08T10:00:00Z").unwrap();
        assert!(
            matches!(&out.commands[0].kind, Some(Kind::TrackCompose(t)) if t.deadline_ms == cs_ms + 900_000 && t.stream == "store-1")
        );
        assert_eq!(out.derived.len(), 1);
        let (key, fact) = &out.derived[0];
        assert_eq!(key, "stream:live.example.com/app/store-1");
        // The composed video's upload carries no stream, but the video knows it: a new fact.
        let out2 = e.apply("c1", FUC.as_bytes(), pos(2)).unwrap();
        assert_eq!(out2.derived.len(), 1);
        // Facts come back through apply and build the stream; the older fact changes nothing.
        e.apply(key, &out2.derived[0].1, pos(3)).unwrap();
        let stale = e.apply(key, fact, pos(4)).unwrap();
        assert!(stale.duplicate && !stale.changed);
        let s = e.stream("live.example.com/app/store-1").unwrap();
        let sessions = s.sessions();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].composed_video_id.as_deref(), Some("c1"));
        assert_eq!(sessions[0].compose_status.as_str(), "success");
    }

    #[test]
    fn successful_transcode_complete_refreshes_play_info_once() {
        let mut e = Engine::new(Policy::default());
        let out = e.apply("v1", TC.as_bytes(), pos(1)).unwrap();
        assert_eq!(out.commands.len(), 1);
        assert!(out.commands[0].command_id.starts_with("pi-"));
        assert!(matches!(
            out.commands[0].kind,
            Some(Kind::RefreshPlayInfo(_))
        ));
        assert!(e
            .apply("v1", TC.as_bytes(), pos(2))
            .unwrap()
            .commands
            .is_empty());
        let failed = TC.replace("\"Status\":\"success\",\n", "\"Status\":\"fail\",\n");
        assert!(e
            .apply("v1", failed.as_bytes(), pos(3))
            .unwrap()
            .commands
            .is_empty());
    }

    #[test]
    fn a_cache_miss_is_loaded_and_counts_as_existing() {
        let mut full = Engine::new(Policy::default());
        full.apply("v1", ACR.as_bytes(), pos(1)).unwrap();
        let snap = full.snapshot_bytes("v1").unwrap();
        // A second callback for the same video, into an engine that holds nothing.
        let mut cache = Engine::new(Policy::default());
        let mut asked = Vec::new();
        let out = cache
            .apply_loading("v1", ACR.as_bytes(), pos(2), |k| {
                asked.push(k.to_string());
                Ok(Some(snap.clone()))
            })
            .unwrap();
        assert_eq!(
            asked,
            ["v1"],
            "the missing aggregate is asked of the loader once"
        );
        assert!(out.duplicate, "the loaded state knows the event");
        assert_eq!(out.status_before, Some(VideoStatus::Recorded));
        // Held now: the loader is not asked again, and a failing one is not reached.
        let out = cache
            .apply_loading("v1", ACR.as_bytes(), pos(3), |_| Err("not asked".into()))
            .unwrap();
        assert_eq!(out.status_before, Some(VideoStatus::Recorded));
        // A loader's failure is the caller's, not the record's.
        let other = ACR.replace("\"v1\"", "\"v2\"");
        assert!(matches!(
            cache.apply_loading("v2", other.as_bytes(), pos(4), |_| Err("disk".into())),
            Err(ApplyError::Load { .. })
        ));
        // `apply` skips the status work.
        assert_eq!(
            full.apply("v1", ACR.as_bytes(), pos(5))
                .unwrap()
                .status_before,
            None
        );
    }

    #[test]
    fn restore_and_evict() {
        let mut e = Engine::new(Policy::default());
        e.apply("v1", ACR.as_bytes(), pos(1)).unwrap();
        e.apply(
            "c1",
            CS.as_bytes(),
            InputPos {
                partition: 5,
                offset: 1,
            },
        )
        .unwrap();
        let snap = e.snapshot_bytes("v1").unwrap();
        let mut fresh = Engine::new(Policy::default());
        assert!(matches!(
            fresh.restore("v2", &snap),
            Err(CodecError::KeyMismatch { .. })
        ));
        fresh.restore("v1", &snap).unwrap();
        assert_eq!(fresh.video("v1"), e.video("v1"));
        assert!(
            fresh
                .apply("v1", ACR.as_bytes(), pos(1))
                .unwrap()
                .already_applied
        );
        assert!(fresh.restore("v1", b"\xff\xff").is_err());
        assert_eq!(e.evict_partition(2), 1);
        assert!(e.video("v1").is_none() && e.video("c1").is_some());
        assert_eq!(e.aggregates().count(), 1);
    }
}
