//! The local state store: one redb file per owned partition of the aggregates topic, a cache
//! of that compacted topic (its changelog) on the pod's disk.
//!
//! Why redb: pure Rust (no C++ toolchain, unlike RocksDB; it adds seconds to a 2-core build, not
//! minutes), one file per store, ACID commits with page checksums, crash-safe without a repair
//! step we would have to write, and a bounded page cache we size ourselves. An LSM (fjall,
//! RocksDB) writes faster, but the fold writes one batch of snapshots per Kafka batch, far
//! below either's limit, and reads dominate (a key missing from the in-memory cache).
//!
//! What a store holds:
//! - `aggregates`: aggregate key -> snapshot bytes (the same bytes as the topic's record) with
//!   the video's status in one byte (so that the per-status counts are kept without decoding
//!   the value being replaced), framed with a CRC-32 so that a value altered on disk is
//!   detected when read, never decoded;
//! - `meta`: the format version, the partition, the changelog offset the store reflects (every
//!   record of the topic's partition below it has been applied) and the number of video
//!   aggregates per status (for the videos-by-status gauge, which must not need a scan).
//!
//! The store is only a cache: deleting the file gives the same result, more slowly (the fold
//! restores the partition from the topic). A file that fails to open, fails redb's integrity
//! check on open, belongs to another partition or format, or is ahead of the topic, is deleted
//! and rebuilt from the topic ([`Opened::Discarded`] says why).
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::video::VideoStatus;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

const AGGREGATES: TableDefinition<&str, &[u8]> = TableDefinition::new("aggregates");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// Bumped when the layout of a store changes: an older file is rebuilt, not misread.
const FORMAT_VERSION: i64 = 1;
const META_FORMAT: &str = "format";
const META_PARTITION: &str = "partition";
const META_NEXT_OFFSET: &str = "changelog_next_offset";
const STATUS_PREFIX: &str = "status/";

/// How often a commit is made durable (fsync): the commits in between are consistent but may
/// be lost in a crash, which only lengthens the next restore's tail.
const DURABLE_EVERY: Duration = Duration::from_secs(5);

/// Why a store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {error}")]
    Db { path: PathBuf, error: String },
    #[error("state store {path}: the stored value of {key:?} fails its checksum (the file was altered on disk)")]
    Corrupt { path: PathBuf, key: String },
    #[error("state store {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What [`PartitionStore::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// No file: a new, empty store.
    Created,
    /// A usable store reflecting the changelog below `next_offset`.
    Kept { next_offset: i64, aggregates: u64 },
    /// A file was there and could not be trusted; it was deleted and a new one created.
    Discarded { reason: String },
}

/// One partition's store. Writes are committed by a thread of the store's own, one batch
/// after the other, so the caller goes on folding meanwhile; until its batch is committed a
/// value is served from memory (`pending`), so a read never sees an older value than the last
/// one written. A failed commit is reported by the next call.
#[derive(Debug)]
pub struct PartitionStore {
    db: Arc<Database>,
    path: PathBuf,
    /// The changelog offset of the newest batch handed to the writer.
    next_offset: Option<i64>,
    writer: Option<Writer>,
    /// Values handed to the writer and not committed yet.
    pending: Pending,
    /// The writer's first error.
    failed: Arc<Mutex<Option<String>>>,
}

type Pending = Arc<Mutex<HashMap<String, Arc<[u8]>>>>;

/// A put handed to the writer: key, video status, the value shared with `pending`.
type Put = (String, Option<VideoStatus>, Arc<[u8]>);

#[derive(Debug)]
struct Writer {
    tx: SyncSender<Msg>,
    handle: std::thread::JoinHandle<()>,
}

enum Msg {
    /// Commit these puts (the values are the ones in `pending`) and this offset.
    Write {
        puts: Vec<Put>,
        next_offset: Option<i64>,
    },
    /// Answer once everything before is committed; `durable`: with an fsync.
    Barrier { durable: bool, done: SyncSender<()> },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a map or an option, never half an update.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The writer thread: commits batches in order, made durable at most [`DURABLE_EVERY`] apart.
fn writer_loop(
    db: Arc<Database>,
    rx: Receiver<Msg>,
    pending: Pending,
    failed: Arc<Mutex<Option<String>>>,
) {
    let mut last_durable = Instant::now();
    for msg in rx {
        if lock(&failed).is_some() {
            // After a failure nothing more is written (the caller sees the error and stops).
            if let Msg::Barrier { done, .. } = msg {
                let _ = done.send(());
            }
            continue;
        }
        match msg {
            Msg::Write { puts, next_offset } => {
                let durable = last_durable.elapsed() >= DURABLE_EVERY;
                match commit(&db, &puts, next_offset, durable) {
                    Ok(()) => {
                        if durable {
                            last_durable = Instant::now();
                        }
                        let mut p = lock(&pending);
                        for (k, _, v) in &puts {
                            // Unless a later batch put the key again.
                            if p.get(k).is_some_and(|x| Arc::ptr_eq(x, v)) {
                                p.remove(k);
                            }
                        }
                    }
                    Err(e) => *lock(&failed) = Some(e.to_string()),
                }
            }
            Msg::Barrier { durable, done } => {
                if durable {
                    let run = || -> Result<(), redb::Error> {
                        let tx = db.begin_write()?;
                        tx.commit()?;
                        Ok(())
                    };
                    match run() {
                        Ok(()) => last_durable = Instant::now(),
                        Err(e) => *lock(&failed) = Some(e.to_string()),
                    }
                }
                let _ = done.send(());
            }
        }
    }
}

/// One batch in one commit, with the per-status counts kept.
fn commit(
    db: &Database,
    puts: &[Put],
    next_offset: Option<i64>,
    durable: bool,
) -> Result<(), redb::Error> {
    let mut tx = db.begin_write()?;
    if !durable {
        tx.set_durability(Durability::None)?;
    }
    {
        let mut t = tx.open_table(AGGREGATES)?;
        // Per status tag: videos in minus videos out.
        let mut delta = [0i64; VideoStatus::ALL.len() + 1];
        for (k, status, v) in puts {
            let new = frame(*status, v);
            delta[usize::from(new[4])] += 1;
            if let Some(old) = t.insert(k.as_str(), new.as_slice())? {
                // An altered old value counts as no video (the checksum of what is read
                // later still catches it).
                let tag = unframe(old.value()).map_or(0, |(tag, _)| tag);
                delta[usize::from(tag)] -= 1;
            }
        }
        let mut m = tx.open_table(META)?;
        for (tag, d) in delta.iter().enumerate().skip(1) {
            let Some(status) = tag_status(tag as u8).filter(|_| *d != 0) else {
                continue;
            };
            let key = format!("{STATUS_PREFIX}{}", status.as_str());
            let now = m.get(key.as_str())?.map_or(0, |v| v.value());
            m.insert(key.as_str(), now + d)?;
        }
        if let Some(o) = next_offset {
            m.insert(META_NEXT_OFFSET, o)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The writes of one batch, applied in one commit.
#[derive(Debug, Default)]
pub struct StoreBatch {
    /// Aggregate key, its status when it is a video, snapshot bytes. A key may come more than
    /// once: the last one wins.
    pub puts: Vec<(String, Option<VideoStatus>, Vec<u8>)>,
    /// The changelog offset the store reflects after this batch (`None`: unchanged).
    pub next_offset: Option<i64>,
}

impl StoreBatch {
    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.next_offset.is_none()
    }
}

/// The file of `partition` of `topic` under `dir`.
pub fn path_of(dir: &Path, topic: &str, partition: i32) -> PathBuf {
    dir.join(format!("{topic}-{partition}.redb"))
}

/// One byte for a status: 0 for an aggregate that is not a video.
fn status_tag(s: Option<VideoStatus>) -> u8 {
    s.and_then(|s| VideoStatus::ALL.iter().position(|x| *x == s))
        .map_or(0, |i| i as u8 + 1)
}

fn tag_status(tag: u8) -> Option<VideoStatus> {
    VideoStatus::ALL
        .get(usize::from(tag).checked_sub(1)?)
        .copied()
}

/// `crc32(tag, snapshot) | tag | snapshot`.
fn frame(status: Option<VideoStatus>, bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 5);
    v.extend_from_slice(&[0, 0, 0, 0, status_tag(status)]);
    v.extend_from_slice(bytes);
    let crc = crc32fast::hash(&v[4..]);
    v[..4].copy_from_slice(&crc.to_le_bytes());
    v
}

/// The status tag and the snapshot of a framed value, or `None` when it fails its checksum.
fn unframe(v: &[u8]) -> Option<(u8, &[u8])> {
    let (crc, rest) = v.split_at_checked(4)?;
    let (&tag, body) = rest.split_first()?;
    (crc32fast::hash(rest).to_le_bytes() == crc).then_some((tag, body))
}

impl PartitionStore {
    /// Opens (or creates) the store of `partition` of `topic` in `dir`, with a page cache of
    /// `cache_bytes`. A file that cannot be trusted is deleted and replaced by an empty store.
    pub fn open(
        dir: &Path,
        topic: &str,
        partition: i32,
        cache_bytes: usize,
    ) -> Result<(PartitionStore, Opened), StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        let path = path_of(dir, topic, partition);
        let existed = path.exists();
        let opened = if existed {
            match Self::open_file(&path, partition, cache_bytes) {
                Ok(store) => {
                    let next_offset = store.next_offset.unwrap_or(0);
                    let aggregates = store.len()?;
                    return Ok((
                        store,
                        Opened::Kept {
                            next_offset,
                            aggregates,
                        },
                    ));
                }
                Err(reason) => {
                    std::fs::remove_file(&path).map_err(|error| StoreError::Io {
                        path: path.clone(),
                        error,
                    })?;
                    Opened::Discarded { reason }
                }
            }
        } else {
            Opened::Created
        };
        let store = Self::create(&path, partition, cache_bytes)?;
        Ok((store, opened))
    }

    /// An existing file, checked (integrity of every page, format, partition); `Err` says why
    /// it cannot be used.
    fn open_file(path: &Path, partition: i32, cache_bytes: usize) -> Result<Self, String> {
        // redb may panic on a file that is not what it wrote; the integrity check on open is
        // meant to turn that into an error, and the catch is the belt to its braces.
        let db = std::panic::catch_unwind(AssertUnwindSafe(|| {
            Database::builder()
                .set_cache_size(cache_bytes)
                .set_check_integrity_on_open(true)
                .open(path)
        }))
        .map_err(|_| "redb panicked opening it".to_string())?
        .map_err(|e| format!("it does not open: {e}"))?;
        let read = || -> Result<BTreeMap<String, i64>, redb::Error> {
            let tx = db.begin_read()?;
            let t = tx.open_table(META)?;
            let mut m = BTreeMap::new();
            for e in t.iter()? {
                let (k, v) = e?;
                m.insert(k.value().to_string(), v.value());
            }
            // Opening the table checks that it is there with the expected types.
            tx.open_table(AGGREGATES)?;
            Ok(m)
        };
        let meta = read().map_err(|e| format!("its tables do not read: {e}"))?;
        match meta.get(META_FORMAT) {
            Some(&FORMAT_VERSION) => {}
            other => {
                return Err(format!(
                    "format {other:?}, this version writes {FORMAT_VERSION}"
                ))
            }
        }
        if meta.get(META_PARTITION) != Some(&i64::from(partition)) {
            return Err(format!(
                "it is the store of partition {:?}, not {partition}",
                meta.get(META_PARTITION)
            ));
        }
        Ok(PartitionStore::with_writer(
            db,
            path,
            meta.get(META_NEXT_OFFSET).copied(),
        ))
    }

    fn create(path: &Path, partition: i32, cache_bytes: usize) -> Result<Self, StoreError> {
        let err = |e: redb::Error| StoreError::Db {
            path: path.to_path_buf(),
            error: e.to_string(),
        };
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| err(e.into()))?;
        let init = || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut m = tx.open_table(META)?;
                m.insert(META_FORMAT, FORMAT_VERSION)?;
                m.insert(META_PARTITION, i64::from(partition))?;
                tx.open_table(AGGREGATES)?;
            }
            tx.commit()?;
            Ok(())
        };
        init().map_err(err)?;
        Ok(PartitionStore::with_writer(db, path, None))
    }

    fn with_writer(db: Database, path: &Path, next_offset: Option<i64>) -> Self {
        let db = Arc::new(db);
        let pending: Pending = Arc::default();
        let failed: Arc<Mutex<Option<String>>> = Arc::default();
        // Two batches in flight at most: the caller waits when the writer falls behind.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let handle = {
            let (db, pending, failed) = (db.clone(), pending.clone(), failed.clone());
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || writer_loop(db, rx, pending, failed))
                .expect("spawning the state store's writer thread")
        };
        PartitionStore {
            db,
            path: path.to_path_buf(),
            next_offset,
            writer: Some(Writer { tx, handle }),
            pending,
            failed,
        }
    }

    /// The writer's error, if it failed.
    fn check(&self) -> Result<(), StoreError> {
        match lock(&self.failed).as_ref() {
            Some(e) => Err(StoreError::Db {
                path: self.path.clone(),
                error: e.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Waits until every batch handed over so far is committed (`durable`: and fsynced).
    fn barrier(&self, durable: bool) -> Result<(), StoreError> {
        if let Some(w) = &self.writer {
            let (done, wait) = std::sync::mpsc::sync_channel(1);
            if w.tx.send(Msg::Barrier { durable, done }).is_ok() {
                let _ = wait.recv();
            }
        }
        self.check()
    }

    fn db_error(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            error: e.into().to_string(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The changelog offset the store reflects: every record below it was applied (`None`:
    /// nothing was restored into it yet).
    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// The snapshot of `key` (the newest written, committed or not), checked against its
    /// checksum when read from the file.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        if let Some(v) = lock(&self.pending).get(key) {
            return Ok(Some(v.to_vec()));
        }
        let run = || -> Result<Option<Vec<u8>>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(AGGREGATES)?;
            let v = t.get(key)?.map(|v| v.value().to_vec());
            Ok(v)
        };
        match run().map_err(|e| self.db_error(e))? {
            None => Ok(None),
            Some(v) => match unframe(&v) {
                Some((_, body)) => Ok(Some(body.to_vec())),
                None => Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    key: key.to_string(),
                }),
            },
        }
    }

    /// Every stored aggregate, in key order, each checked against its checksum (a whole-store
    /// read: for checks and tools, not the fold's path).
    pub fn entries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.barrier(false)?;
        let run = || -> Result<Vec<(String, Vec<u8>)>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(AGGREGATES)?;
            let mut out = Vec::new();
            for e in t.iter()? {
                let (k, v) = e?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        };
        run()
            .map_err(|e| self.db_error(e))?
            .into_iter()
            .map(|(k, v)| match unframe(&v) {
                Some((_, body)) => Ok((k, body.to_vec())),
                None => Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    key: k,
                }),
            })
            .collect()
    }

    /// Number of aggregates stored.
    pub fn len(&self) -> Result<u64, StoreError> {
        self.barrier(false)?;
        let run = || -> Result<u64, redb::Error> {
            let tx = self.db.begin_read()?;
            Ok(tx.open_table(AGGREGATES)?.len()?)
        };
        run().map_err(|e| self.db_error(e))
    }

    /// Whether no aggregate is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// The number of video aggregates per status, as of the last committed batch (the batch
    /// being written may not be counted yet).
    pub fn status_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        self.check()?;
        let run = || -> Result<BTreeMap<String, i64>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(META)?;
            let mut out = BTreeMap::new();
            for e in t.range(STATUS_PREFIX..)? {
                let (k, v) = e?;
                let Some(status) = k.value().strip_prefix(STATUS_PREFIX) else {
                    break;
                };
                out.insert(status.to_string(), v.value());
            }
            Ok(out)
        };
        run().map_err(|e| self.db_error(e))
    }

    /// Hands `batch` to the writer, which applies it in one commit (made durable at most
    /// [`DURABLE_EVERY`] apart); waits only when the writer is two batches behind. Its values
    /// are readable at once.
    pub fn write(&mut self, batch: StoreBatch) -> Result<(), StoreError> {
        self.check()?;
        if batch.is_empty() {
            return Ok(());
        }
        let puts: Vec<Put> = batch
            .puts
            .into_iter()
            .map(|(k, s, v)| (k, s, Arc::from(v)))
            .collect();
        {
            let mut p = lock(&self.pending);
            for (k, _, v) in &puts {
                p.insert(k.clone(), v.clone());
            }
        }
        if let Some(o) = batch.next_offset {
            self.next_offset = Some(o);
        }
        let msg = Msg::Write {
            puts,
            next_offset: batch.next_offset,
        };
        let sent = self.writer.as_ref().is_some_and(|w| w.tx.send(msg).is_ok());
        if !sent {
            return Err(StoreError::Db {
                path: self.path.clone(),
                error: "the store's writer thread is gone".into(),
            });
        }
        Ok(())
    }

    /// Waits until every write so far is committed and durable (before the store is closed on
    /// a revoke or a stop, and at the end of a restore).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.barrier(true)
    }

    /// Closes the store and deletes its file (it cannot be trusted, or the caller rebuilds).
    pub fn wipe(mut self) -> Result<(), StoreError> {
        self.stop_writer();
        let path = self.path.clone();
        std::fs::remove_file(&path).map_err(|error| StoreError::Io { path, error })
    }

    /// Lets the writer finish what it was handed, and waits for it to end.
    fn stop_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            drop(w.tx);
            let _ = w.handle.join();
        }
    }
}

impl Drop for PartitionStore {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("live2vod-store-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn batch(puts: &[(&str, Option<VideoStatus>, &[u8])], next: Option<i64>) -> StoreBatch {
        StoreBatch {
            puts: puts
                .iter()
                .map(|(k, s, v)| (k.to_string(), *s, v.to_vec()))
                .collect(),
            next_offset: next,
        }
    }

    #[test]
    fn kept_store_reopens_with_its_offset_and_values() {
        let d = dir("kept");
        let (mut s, o) = PartitionStore::open(&d, "t", 3, 1 << 20).unwrap();
        assert_eq!(o, Opened::Created);
        let ready = Some(VideoStatus::Ready);
        let b = batch(
            &[
                ("a", ready, b"one"),
                ("b", ready, b"two"),
                ("s", None, b"x"),
            ],
            Some(7),
        );
        s.write(b).unwrap();
        let b = batch(
            &[
                ("a", Some(VideoStatus::Transcoding), b"dos"),
                ("a", Some(VideoStatus::Failed), b"uno"),
            ],
            None,
        );
        s.write(b).unwrap();
        s.sync().unwrap();
        drop(s);
        let (s, o) = PartitionStore::open(&d, "t", 3, 1 << 20).unwrap();
        assert_eq!(
            o,
            Opened::Kept {
                next_offset: 7,
                aggregates: 3
            }
        );
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"uno"[..]));
        assert_eq!(s.get("b").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(s.get("c").unwrap(), None);
        let counts = s.status_counts().unwrap();
        assert_eq!(counts.get("ready"), Some(&1));
        assert_eq!(counts.get("failed"), Some(&1));
        assert_eq!(counts.get("transcoding").copied().unwrap_or(0), 0);
    }

    #[test]
    fn a_store_of_another_partition_or_a_garbage_file_is_discarded() {
        let d = dir("other");
        let (s, _) = PartitionStore::open(&d, "t", 1, 1 << 20).unwrap();
        drop(s);
        std::fs::rename(path_of(&d, "t", 1), path_of(&d, "t", 2)).unwrap();
        let (_, o) = PartitionStore::open(&d, "t", 2, 1 << 20).unwrap();
        assert!(matches!(o, Opened::Discarded { .. }), "{o:?}");
        std::fs::write(
            path_of(&d, "t", 5),
            b"not a database at all, not even close",
        )
        .unwrap();
        let (s, o) = PartitionStore::open(&d, "t", 5, 1 << 20).unwrap();
        assert!(matches!(o, Opened::Discarded { .. }), "{o:?}");
        assert!(s.is_empty().unwrap());
    }

    #[test]
    fn a_value_altered_on_disk_is_refused() {
        let ready = Some(VideoStatus::Ready);
        assert_eq!(unframe(&frame(ready, b"abc")), Some((5, &b"abc"[..])));
        assert_eq!(tag_status(5), ready);
        assert_eq!(tag_status(status_tag(None)), None);
        let mut f = frame(ready, b"abc");
        f[6] ^= 1;
        assert_eq!(unframe(&f), None);
        assert_eq!(unframe(b"ab"), None);
    }
}
