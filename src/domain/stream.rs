//! The per-stream aggregate (`stream:<domain>/<app>/<stream>`): live sessions built from the
//! stream's segments, and the composed video of each session with its compose status.
//!
//! It is fed only by derived `live2vod.StreamFact`s: a video that knows its stream (from
//! AddLiveRecordVideoComplete or LiveRecordVideoComposeStart) emits a fact whenever its
//! stream-relevant registers change. The stream joins each fact's registers with the same rule the
//! video uses, so it converges to every video's final view whatever the order of facts.
//! Sessions are *derived* from the joined facts on demand, never stored, so they cannot depend on
//! arrival order either.
use super::event::{Event, EventBody};
use super::lattice::{join_reg, Origin, OriginKind, Reg, Status, StreamKey};
use super::video::Meta;

/// Default live interrupt timeout (VOD's `DelayTime` default): a gap longer than this between
/// segments starts a new session.
pub const DEFAULT_INTERRUPT_MS: i64 = 180_000;

/// What the stream knows about one of its videos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamVideo {
    /// The VideoId.
    pub video_id: Box<str>,
    /// The video's origin register.
    pub origin: Reg<Origin>,
    /// For composed videos: the source status register (the compose outcome).
    pub source: Option<Reg<Status>>,
}

/// The aggregate of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAggregate {
    /// Which stream.
    pub key: StreamKey,
    /// Session gap threshold in ms (default [`DEFAULT_INTERRUPT_MS`]).
    pub interrupt_ms: i64,
    /// Per video, sorted by id.
    pub videos: Vec<StreamVideo>,
    /// Greatest fact event time seen.
    pub last_event_ms: Option<i64>,
    /// Per-delivery bookkeeping (not part of the folded state).
    pub meta: Meta,
}

/// Compose status of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeStatus {
    /// No composed video attached.
    None,
    /// ComposeStart seen, source not ready.
    Composing,
    /// FileUploadComplete of the composed video succeeded.
    Success,
    /// ComposeStart or the composed upload failed.
    Fail,
}

impl ComposeStatus {
    /// API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ComposeStatus::None => "none",
            ComposeStatus::Composing => "composing",
            ComposeStatus::Success => "success",
            ComposeStatus::Fail => "fail",
        }
    }
}

/// A live session: consecutive segments with gaps no longer than the interrupt timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Start of the first segment (for a compose-only session: the compose start).
    pub start_ms: i64,
    /// End of the last segment (for a compose-only session: the compose start).
    pub end_ms: i64,
    /// Segment VideoIds in record order.
    pub segments: Vec<String>,
    /// The composed VideoId, if any.
    pub composed_video_id: Option<String>,
    /// Its status.
    pub compose_status: ComposeStatus,
}

impl StreamAggregate {
    /// An empty aggregate for `key`.
    pub fn new(key: StreamKey) -> Self {
        StreamAggregate {
            key,
            interrupt_ms: DEFAULT_INTERRUPT_MS,
            videos: Vec::new(),
            last_event_ms: None,
            meta: Meta::default(),
        }
    }

    /// Folds one event (only stream facts change anything). Returns whether the state changed;
    /// `false` means the fact was already known, i.e. a duplicate.
    ///
    /// Unlike a video, a stream keeps no set of fact dedup keys: *which* intermediate facts a
    /// video derives depends on the order its own events arrived in, so that set would differ
    /// between orders. The registers do not (each fact is <= the video's final one).
    pub fn fold(&mut self, ev: &Event<'_>) -> bool {
        let mut changed = false;
        if self.last_event_ms.is_none_or(|l| ev.event_time_ms > l) {
            self.last_event_ms = Some(ev.event_time_ms);
            changed = true;
        }
        let EventBody::StreamFact(f) = &ev.body else {
            return changed;
        };
        let id = f.video_id.as_str();
        match self.videos.binary_search_by(|v| (*v.video_id).cmp(id)) {
            Ok(i) => {
                let v = &mut self.videos[i];
                let mut o = Some(v.origin.clone());
                changed |= join_reg(&mut o, f.origin.clone());
                if let Some(o) = o {
                    v.origin = o;
                }
                if let Some(s) = &f.source {
                    changed |= join_reg(&mut v.source, s.clone());
                }
            }
            Err(i) => {
                self.videos.insert(
                    i,
                    StreamVideo {
                        video_id: id.into(),
                        origin: f.origin.clone(),
                        source: f.source.clone(),
                    },
                );
                changed = true;
            }
        }
        changed
    }

    /// Sessions, derived from the joined facts:
    /// - Segments are ordered by (record start, record end, VideoId); a missing record time falls
    ///   back to the other one, then to the report's event time. A segment whose start is more
    ///   than `interrupt_ms` after the running session's end starts a new session. Failed
    ///   recordings still count: the segment existed on the stream.
    /// - ComposeStart carries no segment list, so composes are attached by time: in order of
    ///   (compose start, VideoId), each compose goes to the **latest session that ended at or
    ///   before its compose start** (VOD composes after the interrupt timeout has passed). If that
    ///   session already has a compose, or no session ended before it (segments unknown or
    ///   lost), the compose gets a session of its own with no segments, start = end = compose
    ///   start. Sessions are returned in (start, end) order.
    pub fn sessions(&self) -> Vec<Session> {
        let mut segs: Vec<(i64, i64, &str)> = self
            .videos
            .iter()
            .filter(|v| v.origin.value.kind == OriginKind::LiveSegment)
            .map(|v| {
                let o = &v.origin.value;
                let start = o
                    .record_start_ms
                    .or(o.record_end_ms)
                    .unwrap_or(v.origin.at_ms);
                let end = o.record_end_ms.unwrap_or(start).max(start);
                (start, end, &*v.video_id)
            })
            .collect();
        segs.sort_unstable();
        let mut sessions: Vec<Session> = Vec::new();
        for (start, end, id) in segs {
            match sessions.last_mut() {
                Some(s) if start - s.end_ms <= self.interrupt_ms => {
                    s.end_ms = s.end_ms.max(end);
                    s.segments.push(id.to_string());
                }
                _ => sessions.push(Session {
                    start_ms: start,
                    end_ms: end,
                    segments: vec![id.to_string()],
                    composed_video_id: None,
                    compose_status: ComposeStatus::None,
                }),
            }
        }
        let mut composes: Vec<(i64, &StreamVideo)> = self
            .videos
            .iter()
            .filter(|v| v.origin.value.kind == OriginKind::Composed)
            .map(|v| (v.origin.at_ms, v))
            .collect();
        composes.sort_unstable_by(|a, b| (a.0, &a.1.video_id).cmp(&(b.0, &b.1.video_id)));
        let mut own: Vec<Session> = Vec::new();
        for (at, v) in composes {
            let status = compose_status(v);
            let target = sessions.iter().rposition(|s| s.end_ms <= at);
            match target {
                Some(i) if sessions[i].composed_video_id.is_none() => {
                    sessions[i].composed_video_id = Some(v.video_id.to_string());
                    sessions[i].compose_status = status;
                }
                _ => own.push(Session {
                    start_ms: at,
                    end_ms: at,
                    segments: Vec::new(),
                    composed_video_id: Some(v.video_id.to_string()),
                    compose_status: status,
                }),
            }
        }
        sessions.extend(own);
        sessions.sort_by(|a, b| {
            (a.start_ms, a.end_ms, &a.composed_video_id).cmp(&(
                b.start_ms,
                b.end_ms,
                &b.composed_video_id,
            ))
        });
        sessions
    }
}

fn compose_status(v: &StreamVideo) -> ComposeStatus {
    if v.origin.value.status == Status::Fail {
        return ComposeStatus::Fail;
    }
    match v.source.as_ref().map(|s| &s.value) {
        Some(Status::Success) => ComposeStatus::Success,
        Some(Status::Fail) => ComposeStatus::Fail,
        _ => ComposeStatus::Composing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{parse_event, StreamFact};

    fn seg(id: &str, start_s: i64, end_s: i64) -> StreamFact {
        let o = Origin {
            kind: OriginKind::LiveSegment,
            status: Status::Success,
            stream: StreamKey::new("d", "a", "s"),
            record_start_ms: Some(start_s * 1000),
            record_end_ms: Some(end_s * 1000),
        };
        StreamFact {
            video_id: id.into(),
            origin: Reg::new(end_s * 1000, 2, o),
            source: None,
        }
    }

    fn comp(id: &str, at_s: i64, source: Option<Status>) -> StreamFact {
        let o = Origin {
            kind: OriginKind::Composed,
            status: Status::Success,
            stream: StreamKey::new("d", "a", "s"),
            record_start_ms: None,
            record_end_ms: None,
        };
        StreamFact {
            video_id: id.into(),
            origin: Reg::new(at_s * 1000, 2, o),
            source: source.map(|s| Reg::new(at_s * 1000 + 60_000, s.rank(), s)),
        }
    }

    fn fold(facts: &[StreamFact]) -> StreamAggregate {
        let mut s = StreamAggregate::new(StreamKey::new("d", "a", "s"));
        for f in facts {
            let body = f.to_body();
            let e = parse_event(&body).unwrap();
            s.fold(&e);
        }
        s
    }

    #[test]
    fn gap_longer_than_interrupt_starts_a_new_session_and_composes_attach_by_time() {
        let facts = [
            seg("a2", 3600, 7200),
            seg("a1", 0, 3600),
            seg("b1", 7200 + 181, 8000), // 181 s gap: new session
            comp("c1", 7200 + 185, Some(Status::Success)),
            comp("c2", 8000 + 190, None),
        ];
        let s = fold(&facts);
        let sessions = s.sessions();
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].segments, vec!["a1", "a2"]);
        assert_eq!(sessions[0].composed_video_id.as_deref(), Some("c1"));
        assert_eq!(sessions[0].compose_status, ComposeStatus::Success);
        assert_eq!(sessions[1].segments, vec!["b1"]);
        assert_eq!(sessions[1].compose_status, ComposeStatus::Composing);
        let mut rev = facts.to_vec();
        rev.reverse();
        assert_eq!(fold(&rev), s);
    }

    #[test]
    fn gap_within_interrupt_continues_the_session() {
        let s = fold(&[seg("a1", 0, 100), seg("a2", 280, 400)]);
        assert_eq!(s.sessions().len(), 1);
    }

    #[test]
    fn compose_without_segments_gets_its_own_session() {
        let s = fold(&[comp("c1", 500, Some(Status::Fail))]);
        let sessions = s.sessions();
        assert_eq!(sessions.len(), 1);
        assert!(sessions[0].segments.is_empty());
        assert_eq!(sessions[0].compose_status, ComposeStatus::Fail);
    }

    #[test]
    fn later_fact_of_the_same_video_wins_in_any_order() {
        let early = comp("c1", 500, None);
        let late = comp("c1", 500, Some(Status::Success));
        assert_eq!(fold(&[early.clone(), late.clone()]), fold(&[late, early]));
    }
}
