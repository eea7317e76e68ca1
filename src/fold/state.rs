//! The fold's local state (`--state-dir`): one [`PartitionStore`] per owned partition,
//! restored from the aggregates topic (its changelog) only for what the store does not
//! reflect yet, with the engine as a bounded in-memory cache in front (`--state-cache-mb`).
//!
//! - **Restore** ([`restore_partition`]): open the partition's store (a file that cannot be
//!   trusted is deleted, see `crate::store`), then read the topic's partition from the offset
//!   the store reflects (a kept disk: the tail; a wiped disk: everything) and write what comes
//!   into the store, a chunk per commit, with a progress line and the restore metrics. A store
//!   ahead of the topic (the topic was re-created) is rebuilt.
//! - **Folding**: an aggregate missing from the cache is loaded from the store
//!   (`Engine::apply_loading`); a value that fails its checksum makes the partition's store
//!   untrusted: it is deleted and the partition is rewound and restored from the topic.
//! - **Write-back**: once a batch's snapshots are durable in the topic, the same bytes go to
//!   the store with the offset the broker gave the last of them, so the next restore starts
//!   after them; then the cache drops its least recently used aggregates to fit the budget.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::domain::codec::decode_snapshot;
use crate::kafka::read::{stream_partition, watermarks, ReadTo};
use crate::kafka::KafkaArgs;
use crate::metrics as m;
use crate::store::{Opened, PartitionStore, StoreBatch};

/// Default of `--state-cache-mb`.
pub const DEFAULT_CACHE_MB: usize = 128;

/// Records per store commit while restoring.
const RESTORE_CHUNK: usize = 2000;
/// How often a restore logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// `--state-dir` and `--state-cache-mb`.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// Where the partition stores live (one file per partition).
    pub dir: PathBuf,
    /// Memory budget of the state, in bytes: half for decoded aggregates (the engine's cache),
    /// half for the stores' page caches (shared among the owned
    /// partitions).
    pub cache_bytes: usize,
}

impl StateConfig {
    /// The engine cache's share of the budget.
    pub fn engine_bytes(&self) -> usize {
        self.cache_bytes / 2
    }

    /// The page cache of one store when `partitions` are owned (at least 1 MiB).
    pub fn page_cache_bytes(&self, partitions: usize) -> usize {
        (self.cache_bytes / 2 / partitions.max(1)).max(1 << 20)
    }
}

/// What a restore did.
pub struct Restored {
    pub store: PartitionStore,
    /// How the store was found (created, kept at an offset, discarded and why).
    pub opened: Opened,
    /// The offset it started reading from, and the high watermark when it started.
    pub from: i64,
    pub high: i64,
    pub records: u64,
    pub elapsed: Duration,
}

/// Brings the store of `partition` up to the end of the aggregates topic's partition (blocking:
/// run it off the async threads). `existing` is the store when it is still open (a rewind).
pub fn restore_partition(
    kafka: &KafkaArgs,
    topic: &str,
    partition: i32,
    cfg: &StateConfig,
    page_cache: usize,
    existing: Option<PartitionStore>,
    to: ReadTo,
) -> Result<Restored, String> {
    let started = Instant::now();
    let (mut store, mut opened) = match existing {
        Some(s) => {
            let next_offset = s.next_offset().unwrap_or(0);
            let aggregates = s.len().map_err(|e| e.to_string())?;
            (
                s,
                Opened::Kept {
                    next_offset,
                    aggregates,
                },
            )
        }
        None => PartitionStore::open(&cfg.dir, topic, partition, page_cache)
            .map_err(|e| e.to_string())?,
    };
    if let Opened::Discarded { reason } = &opened {
        metrics::counter!(m::STATE_STORE_REBUILT, "reason" => "untrusted").increment(1);
        tracing::warn!(partition, path = %store.path().display(), %reason, "state store could not be trusted; deleted, restoring the partition from the topic");
    }
    let (low, high) = watermarks(kafka, topic, partition).map_err(|e| e.to_string())?;
    let mut from = store.next_offset().unwrap_or(low);
    if from > high {
        // The store reflects records the topic does not have: another topic of the same name
        // (re-created, another cluster). It cannot be a cache of this one.
        let reason = format!(
            "the store reflects offsets up to {from}, the topic's partition ends at {high} (re-created?)"
        );
        tracing::warn!(partition, %reason, "state store ahead of the topic; rebuilding it");
        metrics::counter!(m::STATE_STORE_REBUILT, "reason" => "ahead_of_topic").increment(1);
        let path = store.path().to_path_buf();
        store.wipe().map_err(|e| e.to_string())?;
        store = PartitionStore::open(&cfg.dir, topic, partition, page_cache)
            .map_err(|e| e.to_string())?
            .0;
        tracing::debug!(path = %path.display(), "state store re-created");
        opened = Opened::Discarded { reason };
        from = low;
    } else if from < low {
        // Records between were deleted from the topic (retention, DeleteRecords): what the
        // store has of them is kept, since the topic no longer has it to give.
        tracing::warn!(
            partition,
            store_offset = from,
            first_retained = low,
            "the topic no longer has the records between the store's offset and its first retained one"
        );
    }
    let partition_label = partition.to_string();
    let restored =
        metrics::counter!(m::STATE_RESTORE_RECORDS, "partition" => partition_label.clone());
    let lag = metrics::gauge!(m::STATE_RESTORE_LAG, "partition" => partition_label);
    lag.set((high - from).max(0) as f64);
    if from < high {
        tracing::info!(partition, from, to = high, records = high - from, state = ?opened, "restoring partition state from the aggregates topic");
    }
    let mut batch = StoreBatch::default();
    let mut records = 0u64;
    let mut failed: Option<String> = None;
    let mut last_progress = Instant::now();
    let flush = |batch: &mut StoreBatch, store: &mut PartitionStore| -> Result<(), String> {
        store
            .write(std::mem::take(batch))
            .map_err(|e| e.to_string())
    };
    let (_, _) = stream_partition(kafka, topic, partition, from, to, |r| {
        records += 1;
        restored.increment(1);
        let next = r.offset + 1;
        if let (Some(k), Some(v)) = (r.key, r.value) {
            match snapshot(k, v) {
                Ok(put) => batch.puts.push(put),
                Err(e) => {
                    failed = Some(format!("offset {}: {e}", r.offset));
                    return false;
                }
            }
        }
        batch.next_offset = Some(next);
        if batch.puts.len() >= RESTORE_CHUNK {
            if let Err(e) = flush(&mut batch, &mut store) {
                failed = Some(e);
                return false;
            }
            lag.set((high - next).max(0) as f64);
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                tracing::info!(
                    partition,
                    restored = records,
                    remaining = (high - next).max(0),
                    "restoring partition state"
                );
            }
        }
        true
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    flush(&mut batch, &mut store)?;
    store.sync().map_err(|e| e.to_string())?;
    lag.set(0.0);
    Ok(Restored {
        store,
        opened,
        from,
        high,
        records,
        elapsed: started.elapsed(),
    })
}

/// A changelog record as a store write: checked like a restore into memory (it decodes, and
/// it is the aggregate its key names), with its video status.
fn snapshot(
    key: Vec<u8>,
    value: Vec<u8>,
) -> Result<(String, Option<crate::domain::video::VideoStatus>, Vec<u8>), String> {
    let key = String::from_utf8(key).map_err(|_| "a snapshot key that is not UTF-8".to_string())?;
    let agg = decode_snapshot(&value).map_err(|e| format!("snapshot of {key}: {e}"))?;
    let snapshot_key = agg.key();
    if snapshot_key != key {
        return Err(format!(
            "snapshot of {snapshot_key} under the record key {key}"
        ));
    }
    let status = agg.as_video().map(|v| v.status());
    Ok((key, status, value))
}
