//! Dead-letter records: the original bytes, with headers naming where they came from and why.
use rdkafka::message::{Header, OwnedHeaders};

use super::KafkaArgs;

/// librdkafka's default `message.max.bytes`: the largest record a producer sends unless
/// `--kafka message.max.bytes=...` raises it (Kafka brokers refuse little more by default).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// Bytes of a dead letter kept for its headers and librdkafka's per-record overhead.
const HEADROOM: usize = 8 * 1024;

/// Longest `live2vod-dlq-error` header (errors can quote keys, which can be long).
const MAX_ERROR_CHARS: usize = 2048;

/// Where a dead-lettered record came from and why it could not be processed.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub role: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub reason: &'a str,
    pub error: String,
    /// The original value's length when the dead letter carries only its first bytes (see
    /// [`fit_value`]).
    pub truncated_from: Option<usize>,
}

/// The largest record the producers of `kafka` send (`message.max.bytes`).
pub fn max_message_bytes(kafka: &KafkaArgs) -> usize {
    super::client::config(kafka, super::client::ClientKind::AckedProducer)
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
}

/// The part of a dead record's value that fits one record of `max_message` bytes beside its
/// key and the dead-letter headers, and the original length when that is not all of it. A
/// record the input topic accepted can be too large to forward (the headers add to it, the
/// producer's limit may be lower than the broker's): refusing it would stop the partition on
/// it for good, so the dead letter keeps the first bytes and says how long the value was.
pub fn fit_value(value: &[u8], key_len: usize, max_message: usize) -> (&[u8], Option<usize>) {
    let room = max_message.saturating_sub(key_len.saturating_add(HEADROOM));
    if value.len() <= room {
        (value, None)
    } else {
        (&value[..room], Some(value.len()))
    }
}

impl DeadLetter<'_> {
    /// Headers `live2vod-dlq-{role,topic,partition,offset,reason,error}`, and
    /// `live2vod-dlq-truncated-from` (the original value's length) when the value is cut.
    pub fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let error: String = if self.error.chars().count() > MAX_ERROR_CHARS {
            let mut e: String = self.error.chars().take(MAX_ERROR_CHARS).collect();
            e.push('…');
            e
        } else {
            self.error.clone()
        };
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: crate::domain::vocab::header::DLQ_ROLE,
                value: Some(self.role),
            })
            .insert(Header {
                key: crate::domain::vocab::header::DLQ_TOPIC,
                value: Some(self.topic),
            })
            .insert(Header {
                key: crate::domain::vocab::header::DLQ_PARTITION,
                value: Some(&partition),
            })
            .insert(Header {
                key: crate::domain::vocab::header::DLQ_OFFSET,
                value: Some(&offset),
            })
            .insert(Header {
                key: crate::domain::vocab::header::DLQ_REASON,
                value: Some(self.reason),
            })
            .insert(Header {
                key: crate::domain::vocab::header::DLQ_ERROR,
                value: Some(&error),
            });
        match self.truncated_from {
            Some(len) => headers.insert(Header {
                key: crate::domain::vocab::header::DLQ_TRUNCATED_FROM,
                value: Some(&len.to_string()),
            }),
            None => headers,
        }
    }
}

/// Trips when dead-lettered records are too large a share of a recent window, so a flood of
/// poison (a wrong topic, a broken producer) stops processing with a clear error instead of
/// silently moving everything to the DLQ.
#[derive(Debug, Clone)]
pub struct Breaker {
    window: u64,
    max_ratio: f64,
    min_dead: u64,
    seen: u64,
    dead: u64,
}

impl Breaker {
    /// Trips when, within `window` records, more than `max_ratio` of them (and at least
    /// `min_dead`) were dead-lettered.
    pub fn new(window: u64, max_ratio: f64, min_dead: u64) -> Self {
        Breaker {
            window: window.max(1),
            max_ratio,
            min_dead,
            seen: 0,
            dead: 0,
        }
    }

    /// Records one record's fate; returns `true` when the breaker trips.
    pub fn record(&mut self, dead: bool) -> bool {
        if self.seen >= self.window {
            // Decay by halves: cheap, and old records weigh less.
            self.seen /= 2;
            self.dead /= 2;
        }
        self.seen += 1;
        self.dead += u64::from(dead);
        self.dead >= self.min_dead && (self.dead as f64) > self.max_ratio * (self.seen as f64)
    }

    /// The share of dead records above which it trips.
    pub fn max_ratio(&self) -> f64 {
        self.max_ratio
    }

    /// (dead, seen) in the current window.
    pub fn counts(&self) -> (u64, u64) {
        (self.dead, self.seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_poison_does_not_trip_but_a_flood_does() {
        let mut b = Breaker::new(1000, 0.5, 100);
        for i in 0..10_000 {
            assert!(!b.record(i % 10 == 0), "10% poison must not trip");
        }
        let mut tripped = false;
        for _ in 0..1000 {
            tripped |= b.record(true);
        }
        assert!(tripped, "a flood of poison must trip");
    }

    #[test]
    fn values_too_large_to_forward_are_cut_and_say_so() {
        let small = vec![1u8; 100];
        assert_eq!(
            fit_value(&small, 10, DEFAULT_MAX_MESSAGE_BYTES),
            (&small[..], None)
        );
        let big = vec![2u8; 1 << 20];
        let (kept, from) = fit_value(&big, 10, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(from, Some(1 << 20));
        assert!(kept.len() + 10 + HEADROOM <= DEFAULT_MAX_MESSAGE_BYTES);
        assert!(
            kept.len() > DEFAULT_MAX_MESSAGE_BYTES / 2,
            "most of it is kept"
        );
        let dl = DeadLetter {
            role: "fold",
            topic: "t",
            partition: 1,
            offset: 2,
            reason: "undecodable",
            error: "x".repeat(10_000),
            truncated_from: from,
        };
        let headers = dl.headers();
        use rdkafka::message::Headers;
        let size: usize = headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 16)
            .sum();
        assert!(size < HEADROOM, "headers fit the headroom: {size}");
        assert!(headers
            .iter()
            .any(|h| h.key == "live2vod-dlq-truncated-from" && h.value == Some(&b"1048576"[..])));
    }

    #[test]
    fn a_few_dead_records_alone_do_not_trip() {
        let mut b = Breaker::new(1000, 0.5, 100);
        for _ in 0..99 {
            assert!(!b.record(true));
        }
        assert!(b.record(true));
    }
}
