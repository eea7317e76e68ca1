//! The join-semilattice building blocks every aggregate is made of.
//!
//! An aggregate is a product of *registers* (keep the maximum under a total order) and
//! *grow-only sets* (sorted, de-duplicated vectors). Joins are commutative, associative and
//! idempotent, so any permutation of a set of events, with any of them repeated, folds to the same
//! value; and because everything is kept in a canonical order the encoded bytes are identical too.
//!
//! Conflict rule used everywhere: a register keeps the value with the greatest
//! `(at_ms, rank, value)`, i.e. the latest event time wins; at equal times the better outcome wins
//! (`success` > anything else > `fail`); at equal time and outcome the greater value in its derived
//! total order wins. That last step is arbitrary but deterministic, which is all a join needs.
use std::cmp::Ordering;

/// Outcome reported by VOD or a worker. Ordered `Fail < Other < Success` (the "rank").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// `"fail"` (also `failed`, `failure`, any case).
    Fail,
    /// Anything else, verbatim (empty when the field was absent and no default applies).
    Other(Box<str>),
    /// `"success"` (any case).
    Success,
}

impl Status {
    /// Reads a status string leniently.
    pub fn parse(s: &str) -> Status {
        // VOD's own spellings first: no case folding for them.
        match s {
            "success" => return Status::Success,
            "fail" => return Status::Fail,
            _ => {}
        }
        if s.eq_ignore_ascii_case("success") || s.eq_ignore_ascii_case("succeed") {
            Status::Success
        } else if s.eq_ignore_ascii_case("fail")
            || s.eq_ignore_ascii_case("failed")
            || s.eq_ignore_ascii_case("failure")
        {
            Status::Fail
        } else {
            Status::Other(s.into())
        }
    }

    /// The canonical text (`success`, `fail`, or the original text).
    pub fn as_str(&self) -> &str {
        match self {
            Status::Success => "success",
            Status::Fail => "fail",
            Status::Other(s) => s,
        }
    }

    /// Rank used by the conflict rule: fail 0, other 1, success 2.
    pub fn rank(&self) -> u8 {
        match self {
            Status::Fail => 0,
            Status::Other(_) => 1,
            Status::Success => 2,
        }
    }

    /// Whether this is `Success`.
    pub fn is_success(&self) -> bool {
        matches!(self, Status::Success)
    }
}

/// An `f64` with a total order (`f64::total_cmp`) so it can live inside ordered values.
#[derive(Debug, Clone, Copy)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A max-register: the value reported by the event with the greatest `(at_ms, rank, value)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reg<T> {
    /// Event time (ms since the epoch) of the event that reported the value.
    pub at_ms: i64,
    /// Outcome rank of that event (see [`Status::rank`]).
    pub rank: u8,
    /// The value.
    pub value: T,
}

impl<T: Ord> Reg<T> {
    /// A register value.
    pub fn new(at_ms: i64, rank: u8, value: T) -> Self {
        Reg { at_ms, rank, value }
    }
}

/// Joins `new` into `slot`; returns whether `slot` changed.
pub fn join_reg<T: Ord>(slot: &mut Option<Reg<T>>, new: Reg<T>) -> bool {
    match slot {
        Some(cur) if *cur >= new => false,
        _ => {
            *slot = Some(new);
            true
        }
    }
}

/// Inserts into a sorted, de-duplicated vector (a grow-only set); returns whether it was new.
/// Capacity grows by exactly one: aggregates hold many short vectors for a long time, and the
/// default doubling (minimum 4) wasted more memory than the elements used.
pub fn set_insert<T: Ord>(set: &mut Vec<T>, item: T) -> bool {
    match set.binary_search(&item) {
        Ok(_) => false,
        Err(i) => {
            set.reserve_exact(1);
            set.insert(i, item);
            true
        }
    }
}

/// Joins a keyed register into a vector sorted by key (a map of registers, stored compactly).
/// `key` extracts the key of an entry; `make` builds a new entry from the register.
pub fn join_keyed<E, K: Ord, T: Ord>(
    entries: &mut Vec<E>,
    key: &K,
    reg: Reg<T>,
    key_of: impl Fn(&E) -> &K,
    reg_of: impl Fn(&mut E) -> &mut Reg<T>,
    make: impl FnOnce(Reg<T>) -> E,
) -> bool {
    match entries.binary_search_by(|e| key_of(e).cmp(key)) {
        Ok(i) => {
            let cur = reg_of(&mut entries[i]);
            if *cur >= reg {
                false
            } else {
                *cur = reg;
                true
            }
        }
        Err(i) => {
            entries.reserve_exact(1);
            entries.insert(i, make(reg));
            true
        }
    }
}

/// Identity of a live stream: `DomainName/AppName/StreamName`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamKey {
    /// `DomainName` (the streaming domain).
    pub domain: Box<str>,
    /// `AppName`.
    pub app: Box<str>,
    /// `StreamName`.
    pub stream: Box<str>,
}

/// Prefix of stream aggregate keys on the callbacks and aggregates topics.
pub const STREAM_KEY_PREFIX: &str = "stream:";

impl StreamKey {
    /// A stream key from its three parts.
    pub fn new(domain: &str, app: &str, stream: &str) -> Self {
        StreamKey {
            domain: domain.into(),
            app: app.into(),
            stream: stream.into(),
        }
    }

    /// `domain/app/stream`, the text policy globs match against.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.domain, self.app, self.stream)
    }

    /// The aggregate / Kafka key: `stream:<domain>/<app>/<stream>`.
    pub fn aggregate_key(&self) -> String {
        let mut k = String::with_capacity(
            STREAM_KEY_PREFIX.len() + self.domain.len() + self.app.len() + self.stream.len() + 2,
        );
        for part in [
            STREAM_KEY_PREFIX,
            &self.domain,
            "/",
            &self.app,
            "/",
            &self.stream,
        ] {
            k.push_str(part);
        }
        k
    }

    /// Parses an aggregate key made by [`StreamKey::aggregate_key`]. App and stream names cannot
    /// contain `/` in ApsaraVideo Live, so splitting on the first two slashes is unambiguous.
    pub fn from_aggregate_key(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(STREAM_KEY_PREFIX)?;
        let mut it = rest.splitn(3, '/');
        let (d, a, s) = (it.next()?, it.next()?, it.next()?);
        Some(StreamKey::new(d, a, s))
    }

    /// True when all three parts are known (only then can facts be routed to the stream).
    pub fn is_complete(&self) -> bool {
        !self.domain.is_empty() && !self.app.is_empty() && !self.stream.is_empty()
    }
}

/// Whether a video is a recorded segment or the output of auto-compose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OriginKind {
    /// Reported by `AddLiveRecordVideoComplete`: one recording cycle.
    LiveSegment,
    /// Reported by `LiveRecordVideoComposeStart`: the new video composing a session.
    Composed,
}

impl OriginKind {
    /// `live_segment` or `composed` (the API spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            OriginKind::LiveSegment => "live_segment",
            OriginKind::Composed => "composed",
        }
    }
}

/// Where a video came from. Kept in a register whose `at_ms` is the reporting event's time, which
/// for a composed video is the compose start time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// Segment or composed.
    pub kind: OriginKind,
    /// Status of the reporting event (`AddLiveRecordVideoComplete` / `...ComposeStart`).
    pub status: Status,
    /// The stream it belongs to.
    pub stream: StreamKey,
    /// `RecordStartTime` (segments only).
    pub record_start_ms: Option<i64>,
    /// `RecordEndTime` (segments only).
    pub record_end_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_keeps_latest_then_best_outcome() {
        let mut r = None;
        assert!(join_reg(&mut r, Reg::new(10, Status::Fail.rank(), "a")));
        assert!(!join_reg(&mut r, Reg::new(9, Status::Success.rank(), "b")));
        assert!(join_reg(&mut r, Reg::new(10, Status::Success.rank(), "b")));
        assert!(!join_reg(&mut r, Reg::new(10, Status::Fail.rank(), "z")));
        assert_eq!(r.map(|r| r.value), Some("b"));
    }

    #[test]
    fn status_parsing_is_lenient() {
        assert_eq!(Status::parse("SUCCESS"), Status::Success);
        assert_eq!(Status::parse("failed"), Status::Fail);
        assert_eq!(Status::parse("Processing").as_str(), "Processing");
        assert!(Status::Success > Status::Other("x".into()));
        assert!(Status::Other("x".into()) > Status::Fail);
    }

    #[test]
    fn stream_key_round_trips() {
        let k = StreamKey::new("live.example.com", "app", "store-1");
        assert_eq!(k.aggregate_key(), "stream:live.example.com/app/store-1");
        assert_eq!(StreamKey::from_aggregate_key(&k.aggregate_key()), Some(k));
        assert_eq!(StreamKey::from_aggregate_key("v123"), None);
    }
}
