//! Dead-letter records: the original bytes, with headers naming where they came from and why.
use rdkafka::message::{Header, OwnedHeaders};

/// Where a dead-lettered record came from and why it could not be processed.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub role: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub reason: &'a str,
    pub error: String,
}

impl DeadLetter<'_> {
    /// Headers `live2vod-dlq-{role,topic,partition,offset,reason,error}`.
    pub fn headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        OwnedHeaders::new()
            .insert(Header {
                key: "live2vod-dlq-role",
                value: Some(self.role),
            })
            .insert(Header {
                key: "live2vod-dlq-topic",
                value: Some(self.topic),
            })
            .insert(Header {
                key: "live2vod-dlq-partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "live2vod-dlq-offset",
                value: Some(&offset),
            })
            .insert(Header {
                key: "live2vod-dlq-reason",
                value: Some(self.reason),
            })
            .insert(Header {
                key: "live2vod-dlq-error",
                value: Some(&self.error),
            })
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
    fn a_few_dead_records_alone_do_not_trip() {
        let mut b = Breaker::new(1000, 0.5, 100);
        for _ in 0..99 {
            assert!(!b.record(true));
        }
        assert!(b.record(true));
    }
}
