//! `live2vod bench state`: the fold's state store under a history far larger than its cache.
//!
//! 1. **Fill** (fixed cost, reported apart): `--videos` video aggregates are generated directly
//!    (clones of realistic templates folded from `bench fold`'s sessions, each with its own
//!    VideoId) and written to `--partitions` stores, as a restore would.
//! 2. **Fold through the store** (timed): a realistic callback mix, `--callbacks` records: new
//!    live sessions (every callback of their flows, 10% duplicates) with `--old-share` of the
//!    records touching a random old video (a play-info refresh or a re-transcode, what old
//!    videos get), folded exactly as the fold does with `--state-dir`: an aggregate missing from
//!    the cache is loaded from its store; at the end of each `--batch` the changed aggregates'
//!    snapshots are encoded, written to the stores, and the cache drops its least recently used
//!    to fit `--cache-mb` (split between decoded aggregates and the stores' page caches as
//!    `fold --state-cache-mb` splits it: `StateConfig`).
//! 3. **Reads**: `--gets` random old videos read the way a GET of one is answered from a store:
//!    store lookup, checksum, decode, JSON view rendered; latency percentiles.
//! 4. The process's peak resident memory (`VmHWM`) is read here, before the baseline.
//! 5. **Baseline** (same run, same workload): the same aggregates generated into an in-memory
//!    engine (all of them in memory, as the fold without `--state-dir`), the same records
//!    folded, snapshots encoded per batch.
//!
//! The last stdout line is one JSON object.
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args as ClapArgs;
use serde_json::json;

use super::fold::{session, Rng};
use crate::domain::codec::encode_snapshot;
use crate::domain::time::format_rfc3339;
use crate::domain::{Aggregate, Engine, InputPos, Policy};
use crate::store::{PartitionStore, StoreBatch};

/// Options of `live2vod bench state`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Video aggregates in the stores before the timed fold.
    #[arg(long, default_value_t = 5_000_000)]
    pub videos: usize,
    /// Memory budget of the state (MiB), as `fold --state-cache-mb`.
    #[arg(long, default_value_t = 256)]
    pub cache_mb: usize,
    /// Partition stores (a fold instance owning this many partitions).
    #[arg(long, default_value_t = 4)]
    pub partitions: usize,
    /// Callback records folded in the timed phase (and in the baseline).
    #[arg(long, default_value_t = 1_000_000)]
    pub callbacks: usize,
    /// Share of the records that touch a random old video.
    #[arg(long, default_value_t = 0.1)]
    pub old_share: f64,
    /// Records per batch (the fold's default `--batch-max`).
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Random old videos read in the GET phase.
    #[arg(long, default_value_t = 100_000)]
    pub gets: usize,
    /// Directory of the stores (emptied first; default: a directory under the system's
    /// temporary directory, deleted at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Skip the in-memory baseline (it holds every aggregate in memory: about 2 KB each).
    #[arg(long)]
    pub no_baseline: bool,
    /// Seed of the generators.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The video templates: every video of a few `bench fold` sessions, folded.
fn templates(policy: &Policy, seed: u64) -> anyhow::Result<Vec<crate::domain::VideoAggregate>> {
    let mut rng = Rng::seeded(seed ^ 0x7e11);
    let mut engine = Engine::new(policy.clone());
    let mut offset = 0i64;
    for n in 0..16 {
        for (k, body) in session(&mut rng, n, 4).0 {
            let out = engine.apply(
                &k,
                &body,
                InputPos {
                    partition: 0,
                    offset,
                },
            )?;
            offset += 1;
            for (fk, fb) in out.derived {
                engine.apply(
                    &fk,
                    &fb,
                    InputPos {
                        partition: 1,
                        offset,
                    },
                )?;
                offset += 1;
            }
        }
    }
    let t: Vec<_> = engine
        .aggregates()
        .filter_map(|(_, a)| a.as_video().cloned())
        .collect();
    anyhow::ensure!(!t.is_empty(), "no template videos");
    Ok(t)
}

/// The VideoId of old video `i` (32 hex digits, like VOD's).
fn old_id(i: usize) -> String {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut mix = || {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    format!("{:016x}{:016x}", mix(), mix())
}

/// Old video `i`: a template with its own id, encoded.
fn old_video(templates: &[crate::domain::VideoAggregate], i: usize) -> (String, Aggregate) {
    let mut v = templates[i % templates.len()].clone();
    let id = old_id(i);
    v.id = id.as_str().into();
    (id, Aggregate::Video(v))
}

/// Which partition (store) a key belongs to.
fn partition_of(key: &str, partitions: usize) -> usize {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % partitions as u64) as usize
}

/// The timed workload: new sessions with `old_share` of records touching old videos, made a
/// chunk at a time (the whole input held at once would be most of the process's memory, and
/// the figure is the state's), the same records for the same seed.
struct Workload {
    rng: Rng,
    pick: Rng,
    session: usize,
    threshold: u64,
    videos: usize,
    left: usize,
    made: usize,
    pending: std::vec::IntoIter<(String, Vec<u8>)>,
}

impl Workload {
    fn new(args: &Args) -> Self {
        Workload {
            rng: Rng::seeded(args.seed),
            pick: Rng::seeded(args.seed ^ 0x01d),
            session: 100_000,
            threshold: (args.old_share.clamp(0.0, 1.0) * 1_000_000.0) as u64,
            videos: args.videos,
            left: args.callbacks,
            made: 0,
            pending: Vec::new().into_iter(),
        }
    }

    /// The next `max` records (fewer at the end; none once all were made).
    fn chunk(&mut self, max: usize) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(max.min(self.left));
        while out.len() < max && self.left > 0 {
            if self.pick.below(1_000_000) < self.threshold {
                out.push(old_touch(&mut self.pick, self.videos, self.made));
            } else {
                let rec = match self.pending.next() {
                    Some(r) => r,
                    None => {
                        self.pending = session(&mut self.rng, self.session, 4).0.into_iter();
                        self.session += 1;
                        continue;
                    }
                };
                out.push(rec);
            }
            self.left -= 1;
            self.made += 1;
        }
        out
    }
}

/// Records per generated chunk (a multiple of any sensible `--batch`).
const CHUNK: usize = 50_000;

/// A callback an old video gets: a play-info refresh (its URLs expired) or a re-transcode.
fn old_touch(rng: &mut Rng, videos: usize, seq: usize) -> (String, Vec<u8>) {
    let vid = old_id(rng.below(videos as u64) as usize);
    let at = 1_800_000_000_000i64 + seq as i64 * 1000;
    let body = if rng.below(2) == 0 {
        json!({"EventType":"live2vod.PlayInfoResolved","EventTime":format_rfc3339(at),"VideoId":vid,
            "CommandId":format!("pi-{}", rng.hex32()),"Status":"success","PlayInfos":[
            {"PlayURL":format!("https://vod.cdn.example.com/{vid}/{}-HD.m3u8", rng.hex32()),"Definition":"HD","Format":"m3u8",
             "Bitrate":"1500","Duration":"3600.042","Size":675_000_000u64,"Width":1280,"Height":720,"Status":"Normal","JobId":rng.hex32()}]})
    } else {
        json!({"EventType":"TranscodeComplete","EventTime":format_rfc3339(at),"VideoId":vid,"Status":"success",
            "Extend":"{\"biz\":\"live\"}","StreamInfos":[{"Status":"success","Bitrate":"1500","Definition":"HD","Duration":"3600.042",
            "Encrypt":false,"Format":"m3u8","Fps":"25","Height":720,"Width":1280,"Size":675_000_000u64,
            "FileUrl":format!("http://outin.oss-cn-shanghai.aliyuncs.com/{vid}/{}-HD.m3u8", rng.hex32()),"JobId":rng.hex32()}]})
    };
    (vid, serde_json::to_vec(&body).unwrap_or_default())
}

/// Peak and current resident memory of this process (MiB), from `/proc/self/status`.
fn memory_mib() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Counters of a fold over the records.
struct Folding {
    offsets: Vec<i64>,
    loads: u64,
    dirty: HashMap<String, usize>,
    /// Seconds in store reads (cache misses), store writes and cache eviction.
    load_secs: f64,
    write_secs: f64,
    evict_secs: f64,
}

/// One record, as the fold applies it (loading from `stores` what the cache lacks); returns
/// the stream facts it derived.
fn apply_one(
    engine: &mut Engine,
    stores: Option<&[PartitionStore]>,
    f: &mut Folding,
    key: &str,
    body: &[u8],
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let p = partition_of(key, f.offsets.len());
    f.offsets[p] += 1;
    let pos = InputPos {
        partition: p as i32,
        offset: f.offsets[p],
    };
    let out = match stores {
        Some(s) => {
            let (loads, load_secs) = (&mut f.loads, &mut f.load_secs);
            engine
                .apply_loading(key, body, pos, |k| {
                    let t = Instant::now();
                    let got = s[p].get(k).map_err(|e| e.to_string())?;
                    *load_secs += t.elapsed().as_secs_f64();
                    *loads += u64::from(got.is_some());
                    Ok(got)
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?
        }
        None => engine.apply(key, body, pos)?,
    };
    if out.dirty {
        f.dirty.insert(out.aggregate_key, p);
    }
    Ok(out.derived)
}

/// The end of a batch: every changed aggregate's snapshot encoded once (as the fold does for
/// the topic), and with stores written to them, then the cache trimmed to the budget.
fn end_batch(
    engine: &mut Engine,
    stores: Option<&mut Vec<PartitionStore>>,
    f: &mut Folding,
    engine_budget: usize,
) -> anyhow::Result<()> {
    let mut batches: Vec<StoreBatch> = (0..f.offsets.len())
        .map(|_| StoreBatch::default())
        .collect();
    for (k, p) in f.dirty.drain() {
        let Some(bytes) = engine.snapshot_bytes(&k) else {
            continue;
        };
        if stores.is_some() {
            engine.note_snapshot_len(&k, bytes.len());
            let status = engine.video(&k).map(|v| v.status());
            batches[p].puts.push((k, status, bytes));
        } else {
            std::hint::black_box(bytes);
        }
    }
    if let Some(s) = stores {
        let t = Instant::now();
        for (p, b) in batches.iter_mut().enumerate() {
            b.next_offset = Some(f.offsets[p]);
            s[p].write(std::mem::take(b))?;
        }
        let t2 = Instant::now();
        engine.evict_lru(engine_budget);
        f.write_secs += (t2 - t).as_secs_f64();
        f.evict_secs += t2.elapsed().as_secs_f64();
    }
    Ok(())
}

/// Folds the workload, with `stores` behind it (or all in memory when `None`);
/// returns the seconds of the timed loop and the aggregates loaded from the stores.
fn fold_records(
    engine: &mut Engine,
    mut stores: Option<&mut Vec<PartitionStore>>,
    args: &Args,
    engine_budget: usize,
) -> anyhow::Result<(f64, u64, usize)> {
    let parts = args.partitions.max(1);
    let mut f = Folding {
        offsets: vec![0; parts],
        loads: 0,
        dirty: HashMap::new(),
        load_secs: 0.0,
        write_secs: 0.0,
        evict_secs: 0.0,
    };
    let mut workload = Workload::new(args);
    let (mut secs, mut total) = (0f64, 0usize);
    loop {
        // Made outside the timed part.
        let records = workload.chunk(CHUNK);
        if records.is_empty() {
            break;
        }
        total += records.len();
        let started = Instant::now();
        for (i, (key, body)) in records.iter().enumerate() {
            let s = stores.as_deref().map(Vec::as_slice);
            for (fk, fb) in apply_one(engine, s, &mut f, key, body)? {
                apply_one(engine, s, &mut f, &fk, &fb)?;
            }
            if (i + 1) % args.batch.max(1) == 0 || i + 1 == records.len() {
                end_batch(engine, stores.as_deref_mut(), &mut f, engine_budget)?;
            }
        }
        secs += started.elapsed().as_secs_f64();
    }
    if stores.is_some() {
        println!(
            "  of which store reads {:.2} s, store writes {:.2} s, cache eviction {:.2} s",
            f.load_secs, f.write_secs, f.evict_secs
        );
    }
    Ok((secs, f.loads, total))
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> anyhow::Result<()> {
    let policy = Policy::parse(super::corpus::POLICY)?;
    let parts = args.partitions.max(1);
    let cache_bytes = args.cache_mb << 20;
    let split = crate::fold::state::StateConfig {
        dir: PathBuf::new(),
        cache_bytes,
    };
    let engine_budget = split.engine_bytes();
    let page_cache = split.page_cache_bytes(parts);
    let temp = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("live2vod-bench-state-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let templates = templates(&policy, args.seed)?;
    println!(
        "bench state: {} videos in {parts} stores under {}, cache {} MiB ({} MiB decoded + {} MiB pages), {} callbacks ({:.0}% on old videos), batch {}",
        args.videos,
        dir.display(),
        args.cache_mb,
        engine_budget >> 20,
        (page_cache * parts) >> 20,
        args.callbacks,
        args.old_share * 100.0,
        args.batch
    );

    // 1. Fill.
    let fill_started = Instant::now();
    let mut stores = Vec::with_capacity(parts);
    for p in 0..parts {
        stores.push(PartitionStore::open(&dir, "bench.aggregates", p as i32, page_cache)?.0);
    }
    let mut snapshot_bytes = 0usize;
    let mut batches: Vec<StoreBatch> = (0..parts).map(|_| StoreBatch::default()).collect();
    for i in 0..args.videos {
        let (id, agg) = old_video(&templates, i);
        let bytes = encode_snapshot(&agg);
        snapshot_bytes += bytes.len();
        let p = partition_of(&id, parts);
        let status = agg.as_video().map(|v| v.status());
        batches[p].puts.push((id, status, bytes));
        if batches[p].puts.len() >= 10_000 {
            stores[p].write(std::mem::take(&mut batches[p]))?;
        }
        if (i + 1) % 1_000_000 == 0 {
            println!(
                "  filled {} videos in {:.1} s",
                i + 1,
                fill_started.elapsed().as_secs_f64()
            );
        }
    }
    for (p, b) in batches.into_iter().enumerate() {
        stores[p].write(b)?;
    }
    for s in &mut stores {
        s.sync()?;
    }
    let fill_secs = fill_started.elapsed().as_secs_f64();
    let disk: u64 = stores
        .iter()
        .filter_map(|s| std::fs::metadata(s.path()).ok())
        .map(|m| m.len())
        .sum();
    let videos = args.videos.max(1) as f64;
    println!(
        "fill: {} videos in {fill_secs:.1} s ({:.0}/s); {:.0} bytes per aggregate on disk (snapshot {:.0} bytes), {:.2} GiB",
        args.videos,
        videos / fill_secs,
        disk as f64 / videos,
        snapshot_bytes as f64 / videos,
        disk as f64 / (1u64 << 30) as f64
    );

    // 2. Fold through the stores.
    let mut engine = Engine::new(policy.clone());
    let (store_secs, loads, folded) =
        fold_records(&mut engine, Some(&mut stores), &args, engine_budget)?;
    let store_rate = folded as f64 / store_secs;
    println!(
        "fold through the stores: {folded} callbacks in {store_secs:.2} s = {store_rate:.0} callbacks/s; {loads} aggregates loaded from the stores; cache holds {} aggregates, {:.0} MiB estimated",
        engine.len(),
        engine.cached_bytes() as f64 / (1u64 << 20) as f64
    );

    // 3. Reads of random old videos.
    let mut rng = Rng::seeded(args.seed ^ 0x6e7);
    let mut lat = Vec::with_capacity(args.gets);
    for _ in 0..args.gets {
        let id = old_id(rng.below(args.videos as u64) as usize);
        let t = Instant::now();
        let bytes = stores[partition_of(&id, parts)]
            .get(&id)?
            .ok_or_else(|| anyhow::anyhow!("old video {id} missing from its store"))?;
        let (_, view) = crate::domain::view::snapshot_json(&bytes)?;
        let body = serde_json::to_vec(&view)?;
        std::hint::black_box(body);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let (p50, p99, pmax) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "GET path (store lookup, checksum, decode, JSON view) of {} random old videos: p50 {p50:.3} ms, p99 {p99:.3} ms, max {pmax:.3} ms",
        args.gets
    );

    // 4. Peak memory of everything above.
    let (peak_mib, rss_mib) = memory_mib();
    println!(
        "memory with the stores: peak {peak_mib:.0} MiB resident (now {rss_mib:.0} MiB), budget {} MiB",
        args.cache_mb
    );
    drop(engine);
    drop(stores);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }

    // 5. Baseline: everything in memory.
    let (mem_rate, mem_peak) = if args.no_baseline {
        (f64::NAN, f64::NAN)
    } else {
        let load_started = Instant::now();
        let mut engine = Engine::new(policy);
        for i in 0..args.videos {
            let (id, agg) = old_video(&templates, i);
            engine.restore(&id, &encode_snapshot(&agg))?;
        }
        let load_secs = load_started.elapsed().as_secs_f64();
        let (secs, _, n) = fold_records(&mut engine, None, &args, usize::MAX)?;
        let rate = n as f64 / secs;
        let (peak, _) = memory_mib();
        println!(
            "baseline, all in memory: {} videos loaded in {load_secs:.1} s; {n} callbacks in {secs:.2} s = {rate:.0} callbacks/s; peak {peak:.0} MiB resident",
            args.videos
        );
        (rate, peak)
    };
    let ratio = store_rate / mem_rate;
    println!("fold rate with the stores / all in memory: {ratio:.2}");
    println!(
        "{}",
        json!({
            "videos": args.videos,
            "cache_mb": args.cache_mb,
            "callbacks": folded,
            "fill_secs": fill_secs,
            "disk_bytes_per_aggregate": disk as f64 / videos,
            "snapshot_bytes_per_aggregate": snapshot_bytes as f64 / videos,
            "callbacks_per_s_store": store_rate,
            "callbacks_per_s_memory": mem_rate,
            "store_to_memory_ratio": ratio,
            "store_loads": loads,
            "get_p50_ms": p50,
            "get_p99_ms": p99,
            "get_max_ms": pmax,
            "peak_rss_mib_store": peak_mib,
            "peak_rss_mib_with_baseline": mem_peak,
        })
    );
    Ok(())
}
