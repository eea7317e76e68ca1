//! Per-partition commit positions when commands finish out of order.
//!
//! Commands of one partition run concurrently (and TrackCompose waits for its deadline), so they
//! finish in any order. The committable position of a partition is the lowest offset still in
//! flight, or one past the highest offset seen when nothing is: committing further would lose
//! an unfinished command on a crash. Pure: the consumer loop feeds it and stores what it says.
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
struct Partition {
    /// Bumped when the partition is revoked, so late completions of the previous ownership do
    /// not move the position of the next one.
    generation: u64,
    pending: BTreeSet<i64>,
    max_seen: Option<i64>,
    /// Last position handed out, so positions only move forward.
    stored: Option<i64>,
}

/// Tracks in-flight offsets per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: HashMap<i32, Partition>,
    generations: HashMap<i32, u64>,
}

/// Identifies one delivery of one record: partition, offset and the ownership generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub partition: i32,
    pub offset: i64,
    pub generation: u64,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A record was received and its work started.
    pub fn begin(&mut self, partition: i32, offset: i64) -> Ticket {
        let generation = *self.generations.entry(partition).or_default();
        let p = self.parts.entry(partition).or_insert_with(|| Partition {
            generation,
            ..Partition::default()
        });
        p.pending.insert(offset);
        // Before any of its records finished, a partition's position is its first record.
        p.stored.get_or_insert(offset);
        p.max_seen = Some(p.max_seen.map_or(offset, |m| m.max(offset)));
        Ticket {
            partition,
            offset,
            generation,
        }
    }

    /// The work of `t` is done; returns the new committable position (next offset to consume)
    /// of its partition when it moved forward.
    pub fn finish(&mut self, t: Ticket) -> Option<i64> {
        let p = self.parts.get_mut(&t.partition)?;
        if p.generation != t.generation || !p.pending.remove(&t.offset) {
            return None;
        }
        let position = match p.pending.first() {
            Some(&lowest) => lowest,
            None => p.max_seen? + 1,
        };
        if p.stored.is_some_and(|s| s >= position) {
            return None;
        }
        p.stored = Some(position);
        Some(position)
    }

    /// The work of `t` was abandoned (shutdown): it stays pending so nothing past it commits.
    pub fn abandon(&mut self, _t: Ticket) {}

    /// The partition was revoked: forget it; completions of its current work no longer count.
    pub fn revoke(&mut self, partition: i32) {
        self.parts.remove(&partition);
        *self.generations.entry(partition).or_default() += 1;
    }

    /// Records in flight over all partitions.
    pub fn in_flight(&self) -> usize {
        self.parts.values().map(|p| p.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_completion_commits_only_up_to_the_lowest_unfinished() {
        let mut t = OffsetTracker::new();
        let a = t.begin(0, 10);
        let b = t.begin(0, 11);
        let c = t.begin(0, 12);
        assert_eq!(t.finish(c), None, "10 and 11 are still running");
        assert_eq!(t.finish(b), None);
        assert_eq!(t.finish(a), Some(13));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn position_advances_to_the_next_pending_offset() {
        let mut t = OffsetTracker::new();
        let a = t.begin(3, 0);
        let _b = t.begin(3, 1);
        assert_eq!(t.finish(a), Some(1));
        let c = t.begin(3, 2);
        assert_eq!(t.finish(c), None, "1 still pending");
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::new();
        let _slow = t.begin(0, 5);
        let fast = t.begin(1, 7);
        assert_eq!(t.finish(fast), Some(8));
    }

    #[test]
    fn completions_from_before_a_revoke_are_ignored() {
        let mut t = OffsetTracker::new();
        let old = t.begin(0, 4);
        t.revoke(0);
        let new_first = t.begin(0, 4);
        let new_second = t.begin(0, 5);
        assert_eq!(t.finish(old), None);
        assert_eq!(t.in_flight(), 2);
        assert_eq!(t.finish(new_second), None);
        assert_eq!(t.finish(new_first), Some(6));
    }

    #[test]
    fn abandoned_work_holds_the_position() {
        let mut t = OffsetTracker::new();
        let a = t.begin(0, 1);
        let b = t.begin(0, 2);
        t.abandon(a);
        assert_eq!(t.finish(b), None);
    }
}
