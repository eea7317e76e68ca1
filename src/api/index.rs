//! The listing index behind `GET /v1/streams` and `GET /v1/videos` (their routes are in
//! `listing.rs`).
//!
//! The store holds raw snapshots by key; listing them by a full scan and a decode per aggregate
//! would cost O(aggregates) per page. [`Index`] keeps, per video, a few fields taken from its
//! JSON view when its snapshot arrives (status, stream, last event time, whether it waits on
//! VOD or has a problem), in ordered sets, so that a page is a range read: O(log n + page) set
//! steps plus one decode per item returned. Filters that have no set of their own (`status`
//! together with `stuck_for_secs`, say) are applied while walking the narrower set.
//!
//! Order is stable: streams by `domain/app/stream`; videos by id; the stuck view by (last
//! event time, id), oldest first. Cursors are opaque (base64url of the last position returned);
//! a page continues after that position, so an aggregate that changes between two pages is
//! never returned twice in one walk of an unchanged set, and one that moved (its last event
//! time changed) shows up where it now sorts.
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use serde_json::{json, Value};

use super::decode::SnapshotDecoder;
use crate::domain::lattice::STREAM_KEY_PREFIX;

/// Video statuses in API spelling, in the order of the per-status sets.
pub const STATUSES: [&str; 6] = [
    "recorded",
    "composing",
    "source_ready",
    "transcoding",
    "ready",
    "failed",
];

/// Largest page a client may ask for.
pub const MAX_LIMIT: usize = 500;
/// Page size when none is given.
pub const DEFAULT_LIMIT: usize = 50;

pub(super) fn status_index(s: &str) -> Option<usize> {
    STATUSES.iter().position(|x| *x == s)
}

/// What the index keeps of one video.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    status: u8,
    stream: Option<Arc<str>>,
    last_ms: i64,
    /// Waiting on VOD: composing, transcoding, or a transcode requested and not yet submitted.
    waiting: bool,
    /// Failed, or its transcode was rejected.
    problem: bool,
}

impl Entry {
    /// From the video's JSON view (the api's contract shape).
    fn of(view: &Value, streams: &HashMap<Arc<str>, PerStream>) -> Entry {
        let status = view["status"].as_str().and_then(status_index).unwrap_or(0);
        let tc = view["transcode"]["status"].as_str().unwrap_or("none");
        let origin = &view["origin"];
        let stream = match (
            origin["domain"].as_str(),
            origin["app"].as_str(),
            origin["stream"].as_str(),
        ) {
            (Some(d), Some(a), Some(s)) if !d.is_empty() && !a.is_empty() && !s.is_empty() => {
                let path = format!("{d}/{a}/{s}");
                // Share the stream's name with the other videos of the stream.
                Some(
                    streams
                        .get_key_value(path.as_str())
                        .map_or_else(|| Arc::from(path.as_str()), |(k, _)| k.clone()),
                )
            }
            _ => None,
        };
        let last_ms = view["last_event_time"]
            .as_str()
            .and_then(|t| crate::domain::time::parse_event_time(t).ok())
            .unwrap_or(0);
        let name = STATUSES[status];
        Entry {
            status: status as u8,
            stream,
            last_ms,
            waiting: matches!(name, "composing" | "transcoding")
                || (matches!(name, "recorded" | "source_ready") && tc == "requested"),
            problem: name == "failed" || tc == "rejected",
        }
    }
}

/// Per-stream video ids and counters.
#[derive(Debug, Default)]
struct PerStream {
    videos: BTreeSet<Arc<str>>,
    by_status: [u32; 6],
    waiting: u32,
    problems: u32,
}

#[derive(Default)]
struct Inner {
    videos: HashMap<Arc<str>, Entry>,
    all: BTreeSet<Arc<str>>,
    by_status: [BTreeSet<Arc<str>>; 6],
    /// Stream names (`domain/app/stream`) of stream aggregates.
    streams: BTreeSet<Arc<str>>,
    /// Videos of each stream named by a video's origin (the stream aggregate may lag).
    per_stream: HashMap<Arc<str>, PerStream>,
    waiting: BTreeSet<(i64, Arc<str>)>,
    problems: BTreeSet<(i64, Arc<str>)>,
    undecodable: u64,
}

impl Inner {
    fn remove_video(&mut self, id: &str) {
        let Some((id, e)) = self.videos.remove_entry(id) else {
            return;
        };
        self.all.remove(&id);
        self.by_status[e.status as usize].remove(&id);
        if e.waiting {
            self.waiting.remove(&(e.last_ms, id.clone()));
        }
        if e.problem {
            self.problems.remove(&(e.last_ms, id.clone()));
        }
        if let Some(name) = &e.stream {
            if let Some(ps) = self.per_stream.get_mut(name) {
                ps.videos.remove(&id);
                ps.by_status[e.status as usize] -= 1;
                ps.waiting -= u32::from(e.waiting);
                ps.problems -= u32::from(e.problem);
                if ps.videos.is_empty() {
                    self.per_stream.remove(name);
                }
            }
        }
    }

    fn insert_video(&mut self, id: Arc<str>, e: Entry) {
        self.all.insert(id.clone());
        self.by_status[e.status as usize].insert(id.clone());
        if e.waiting {
            self.waiting.insert((e.last_ms, id.clone()));
        }
        if e.problem {
            self.problems.insert((e.last_ms, id.clone()));
        }
        if let Some(name) = &e.stream {
            let ps = self.per_stream.entry(name.clone()).or_default();
            ps.videos.insert(id.clone());
            ps.by_status[e.status as usize] += 1;
            ps.waiting += u32::from(e.waiting);
            ps.problems += u32::from(e.problem);
        }
        self.videos.insert(id, e);
    }
}

/// The listing index over the store (see the module doc). Cloning shares it.
#[derive(Clone)]
pub struct Index {
    inner: Arc<RwLock<Inner>>,
    decoder: SnapshotDecoder,
}

/// Counters of the whole index, for the console's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub streams: usize,
    pub videos: usize,
    pub by_status: [usize; 6],
    pub waiting: usize,
    pub problems: usize,
    /// Snapshots whose view could not be decoded (not listed).
    pub undecodable: u64,
}

impl Index {
    /// An empty index that reads snapshots with `decoder`.
    pub fn new(decoder: SnapshotDecoder) -> Self {
        Index {
            inner: Arc::default(),
            decoder,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // Updates are a few set operations that cannot leave the sets inconsistent mid-way in
        // a way a reader would notice worse than a missing entry.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows one record of the aggregates topic (same rules as [`super::Store::apply`]).
    pub fn apply(&self, key: &str, value: Option<&[u8]>) {
        let value = value.filter(|v| !v.is_empty());
        if let Some(name) = key.strip_prefix(STREAM_KEY_PREFIX) {
            let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
            match value {
                Some(_) => {
                    if !inner.streams.contains(name) {
                        let shared = inner
                            .per_stream
                            .get_key_value(name)
                            .map_or_else(|| Arc::from(name), |(k, _)| k.clone());
                        inner.streams.insert(shared);
                    }
                }
                None => {
                    inner.streams.remove(name);
                }
            }
            return;
        }
        // Decode outside the lock: the api's GETs keep being served meanwhile.
        let view = value.map(|v| (self.decoder)(v));
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        inner.remove_video(key);
        match view {
            None => {}
            Some(Err(_)) => inner.undecodable += 1,
            Some(Ok(view)) => {
                let e = Entry::of(&view, &inner.per_stream);
                inner.insert_video(Arc::from(key), e);
            }
        }
    }

    /// Counters over everything indexed.
    pub fn totals(&self) -> Totals {
        let inner = self.read();
        let mut t = Totals {
            streams: inner.streams.len(),
            videos: inner.videos.len(),
            waiting: inner.waiting.len(),
            problems: inner.problems.len(),
            undecodable: inner.undecodable,
            ..Totals::default()
        };
        for (i, s) in inner.by_status.iter().enumerate() {
            t.by_status[i] = s.len();
        }
        t
    }

    /// One page of stream names (`domain/app/stream`) starting with `prefix`, after `after`,
    /// each with its video counters (JSON); and whether more follow.
    pub fn streams_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<(String, Value)>, bool) {
        let inner = self.read();
        let lower: std::ops::Bound<&str> = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a),
            _ => std::ops::Bound::Included(prefix),
        };
        let mut it = inner
            .streams
            .range::<str, _>((lower, std::ops::Bound::Unbounded))
            .take_while(|s| s.starts_with(prefix));
        let page: Vec<(String, Value)> = it
            .by_ref()
            .take(limit)
            .map(|name| {
                let counts = inner.per_stream.get(name).map_or_else(
                    || json!({"videos": 0, "by_status": {}, "waiting": 0, "problems": 0}),
                    |ps| {
                        let by: serde_json::Map<String, Value> = STATUSES
                            .iter()
                            .zip(ps.by_status)
                            .filter(|(_, n)| *n > 0)
                            .map(|(s, n)| (s.to_string(), json!(n)))
                            .collect();
                        json!({"videos": ps.videos.len(), "by_status": by,
                               "waiting": ps.waiting, "problems": ps.problems})
                    },
                );
                (name.to_string(), counts)
            })
            .collect();
        let more = it.next().is_some();
        (page, more)
    }

    /// One page of video ids matching `q`, after the cursor position `after`; the position to
    /// continue from when more follow.
    pub fn videos_page(
        &self,
        q: &VideoQuery,
        after: Option<&Pos>,
        limit: usize,
        now_ms: i64,
    ) -> (Vec<String>, Option<Pos>) {
        let inner = self.read();
        let keep = |id: &str| -> bool {
            let Some(e) = inner.videos.get(id) else {
                return false;
            };
            q.status.is_none_or(|s| e.status as usize == s)
                && q.stream
                    .as_deref()
                    .is_none_or(|s| e.stream.as_deref() == Some(s))
        };
        let mut out = Vec::new();
        let mut last = None;
        let mut more = false;
        if let Some(secs) = q.stuck_for_secs {
            let cutoff = now_ms.saturating_sub((secs as i64).saturating_mul(1000));
            let start = match after {
                Some(Pos::Stuck(ms, id)) => (*ms, id.as_str()),
                _ => (i64::MIN, ""),
            };
            // Both sets are walked from the cursor; the waiting one only up to the cutoff.
            let waiting = inner
                .waiting
                .range((start.0, Arc::<str>::from(""))..)
                .filter(|(ms, id)| (*ms, &**id) > start)
                .take_while(|(ms, _)| *ms < cutoff);
            let problems = inner
                .problems
                .range((start.0, Arc::<str>::from(""))..)
                .filter(|(ms, id)| (*ms, &**id) > start);
            let mut merged = merge(waiting, problems).filter(|(_, id)| keep(id));
            for (ms, id) in merged.by_ref() {
                if out.len() == limit {
                    more = true;
                    break;
                }
                last = Some(Pos::Stuck(ms, id.to_string()));
                out.push(id.to_string());
            }
        } else {
            let start = match after {
                Some(Pos::Id(id)) => std::ops::Bound::Excluded(id.as_str()),
                _ => std::ops::Bound::Unbounded,
            };
            let range = (start, std::ops::Bound::Unbounded);
            let set: Box<dyn Iterator<Item = &Arc<str>>> = match (&q.stream, q.status) {
                (Some(s), _) => match inner.per_stream.get(s.as_str()) {
                    Some(ps) => Box::new(ps.videos.range::<str, _>(range)),
                    None => Box::new(std::iter::empty()),
                },
                (None, Some(st)) => Box::new(inner.by_status[st].range::<str, _>(range)),
                (None, None) => Box::new(inner.all.range::<str, _>(range)),
            };
            for id in set.filter(|id| keep(id)) {
                if out.len() == limit {
                    more = true;
                    break;
                }
                last = Some(Pos::Id(id.to_string()));
                out.push(id.to_string());
            }
        }
        (out, if more { last } else { None })
    }
}

/// Merges two iterators sorted by (time, id) into one, without duplicates (a video both
/// waiting and failed cannot happen, but the merge does not rely on it).
fn merge<'a>(
    a: impl Iterator<Item = &'a (i64, Arc<str>)>,
    b: impl Iterator<Item = &'a (i64, Arc<str>)>,
) -> impl Iterator<Item = (i64, Arc<str>)> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x < y => a.next(),
            (Some(x), Some(y)) if x == y => {
                b.next();
                a.next()
            }
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => None,
        };
        next.map(|(ms, id)| (*ms, id.clone()))
    })
}

/// Filters of `GET /v1/videos`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoQuery {
    /// Index into [`STATUSES`].
    pub status: Option<usize>,
    /// `domain/app/stream`.
    pub stream: Option<String>,
    /// Waiting on VOD for longer than this (by last event time), plus problems.
    pub stuck_for_secs: Option<u64>,
}

/// Where a page ended (decoded from / encoded into an opaque cursor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pos {
    Id(String),
    Stuck(i64, String),
    Stream(String),
}

impl Pos {
    /// The opaque cursor.
    pub fn encode(&self) -> String {
        let raw = match self {
            Pos::Id(id) => format!("v|{id}"),
            Pos::Stuck(ms, id) => format!("s|{ms}|{id}"),
            Pos::Stream(name) => format!("t|{name}"),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a cursor made by [`Pos::encode`]; `None` when it is not one.
    pub fn decode(cursor: &str) -> Option<Pos> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (tag, rest) = raw.split_once('|')?;
        match tag {
            "v" => Some(Pos::Id(rest.to_string())),
            "t" => Some(Pos::Stream(rest.to_string())),
            "s" => {
                let (ms, id) = rest.split_once('|')?;
                Some(Pos::Stuck(ms.parse().ok()?, id.to_string()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(status: &str, stream: &str, last: &str, tc: &str) -> Vec<u8> {
        let parts: Vec<&str> = stream.split('/').collect();
        json!({"status": status, "transcode": {"status": tc},
               "origin": {"domain": parts[0], "app": parts[1], "stream": parts[2]},
               "last_event_time": last})
        .to_string()
        .into_bytes()
    }

    fn index() -> Index {
        let ix = Index::new(super::super::decode::json_decoder());
        ix.apply("stream:d/a/s1", Some(b"{}"));
        ix.apply("stream:d/a/s2", Some(b"{}"));
        ix.apply("stream:e/a/s1", Some(b"{}"));
        ix.apply(
            "v1",
            Some(&video("ready", "d/a/s1", "2026-01-01T00:00:00Z", "success")),
        );
        ix.apply(
            "v2",
            Some(&video(
                "transcoding",
                "d/a/s1",
                "2026-01-01T00:00:00Z",
                "submitted",
            )),
        );
        ix.apply(
            "v3",
            Some(&video("failed", "d/a/s2", "2026-01-01T00:10:00Z", "fail")),
        );
        ix.apply(
            "v4",
            Some(&video(
                "recorded",
                "d/a/s2",
                "2026-01-01T00:20:00Z",
                "requested",
            )),
        );
        ix.apply(
            "v5",
            Some(&video("recorded", "d/a/s2", "2026-01-01T00:00:00Z", "none")),
        );
        ix
    }

    const T: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn streams_are_paged_by_prefix_in_name_order() {
        let ix = index();
        let (page, more) = ix.streams_page("d/", None, 1);
        assert_eq!(page[0].0, "d/a/s1");
        assert_eq!(page[0].1["videos"], 2);
        assert_eq!(page[0].1["waiting"], 1);
        assert!(more);
        let (page, more) = ix.streams_page("d/", Some("d/a/s1"), 5);
        assert_eq!(
            page.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["d/a/s2"]
        );
        assert_eq!(page[0].1["problems"], 1);
        assert!(!more);
        assert_eq!(ix.streams_page("", None, 10).0.len(), 3);
        ix.apply("stream:d/a/s1", None);
        assert_eq!(ix.streams_page("d/", None, 10).0.len(), 1);
    }

    #[test]
    fn videos_are_filtered_and_paged_with_a_cursor() {
        let ix = index();
        let q = VideoQuery::default();
        let (p1, next) = ix.videos_page(&q, None, 2, T);
        assert_eq!(p1, ["v1", "v2"]);
        let next = Pos::decode(&next.expect("more").encode()).expect("cursor round-trips");
        let (p2, next) = ix.videos_page(&q, Some(&next), 10, T);
        assert_eq!(p2, ["v3", "v4", "v5"]);
        assert_eq!(next, None);
        let by_status = VideoQuery {
            status: status_index("recorded"),
            ..VideoQuery::default()
        };
        assert_eq!(ix.videos_page(&by_status, None, 10, T).0, ["v4", "v5"]);
        let by_stream = VideoQuery {
            stream: Some("d/a/s1".into()),
            ..VideoQuery::default()
        };
        assert_eq!(ix.videos_page(&by_stream, None, 10, T).0, ["v1", "v2"]);
    }

    #[test]
    fn the_stuck_view_has_old_waiting_videos_and_problems_oldest_first() {
        let ix = index();
        let q = VideoQuery {
            stuck_for_secs: Some(15 * 60),
            ..VideoQuery::default()
        };
        // At 00:30, waiting for more than 15 min: v2 (since 00:00); v4 (00:20) is not yet.
        let now = T + 30 * 60_000;
        assert_eq!(ix.videos_page(&q, None, 10, now).0, ["v2", "v3"]);
        let (p1, next) = ix.videos_page(&q, None, 1, now);
        assert_eq!(p1, ["v2"]);
        assert_eq!(ix.videos_page(&q, next.as_ref(), 1, now).0, ["v3"]);
        // Later v4 is stuck too; v5 (stored only, nothing expected) never is.
        assert_eq!(
            ix.videos_page(&q, None, 10, T + 3_600_000).0,
            ["v2", "v3", "v4"]
        );
        // A video that became ready leaves the view; a tombstone removes it everywhere.
        ix.apply(
            "v2",
            Some(&video("ready", "d/a/s1", "2026-01-01T00:25:00Z", "success")),
        );
        assert_eq!(ix.videos_page(&q, None, 10, now).0, ["v3"]);
        ix.apply("v3", None);
        assert_eq!(ix.videos_page(&q, None, 10, now).0, Vec::<String>::new());
        let t = ix.totals();
        assert_eq!((t.videos, t.waiting, t.problems), (4, 1, 0));
    }
}
