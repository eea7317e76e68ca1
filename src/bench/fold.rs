//! `live2vod bench fold`: how fast the pure engine parses and folds realistic callbacks on one
//! thread, and how many heap bytes a video aggregate with 4 renditions costs.
//!
//! Workload: live sessions of `--segments` recorded segments plus one composed video, each video
//! with every callback of the flow (AddLiveRecordVideoComplete or ComposeStart + FileUploadComplete,
//! SnapshotComplete, 4 StreamTranscodeComplete, TranscodeComplete with 4 StreamInfos) and the
//! worker's outcomes (VideoInfoObserved, PlayInfoResolved with 4 play infos), shuffled within a
//! session, 10% delivered twice. Bodies are generated before timing; the timed loop is exactly
//! what the fold does per record: `Engine::apply` (parse, dedup, fold, project, derive facts),
//! with derived facts applied back like the fold's own records; and, like the fold at the end of
//! each batch of `--batch` records (the fold's default `batch_max`), the snapshot of every
//! aggregate the batch changed is encoded once. Every pass runs twice, once with the fold's
//! direct snapshot writer and once with prost, so the hand writer's worth is a figure of the
//! same run (`callbacks_per_s_prost_snapshots`).
//!
//! Memory is measured, not estimated: a counting global allocator (enabled only around the
//! measurement, one relaxed load per allocation otherwise) records the live heap bytes an engine
//! holds after folding N videos, divided by N. That includes the engine's map, keys and boxes.
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Instant;

use clap::Args as ClapArgs;
use rand::rngs::SmallRng;
use rand::{Rng as _, RngCore, SeedableRng};
use serde_json::json;

use crate::domain::codec::encode_snapshot_prost;
use crate::domain::time::format_rfc3339;
use crate::domain::{Aggregate, Engine, InputPos, Policy};

/// Options of `live2vod bench fold`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Live sessions to generate.
    #[arg(long, env = "LIVE2VOD_BENCH_SESSIONS", default_value_t = 4000)]
    pub sessions: usize,
    /// Recorded segments per session (each session also gets one composed video).
    #[arg(long, env = "LIVE2VOD_BENCH_SEGMENTS", default_value_t = 4)]
    pub segments: usize,
    /// Seed of the workload generator.
    #[arg(long, env = "LIVE2VOD_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Timed passes over the workload (each on a fresh engine); the best one is reported.
    #[arg(long, env = "LIVE2VOD_BENCH_PASSES", default_value_t = 3)]
    pub passes: usize,
    /// Records per fold batch: the snapshots of the aggregates a batch changed are encoded once
    /// at its end, as the fold does (default: the fold's default `--batch-max`).
    #[arg(long, env = "LIVE2VOD_BENCH_BATCH", default_value_t = 5000)]
    pub batch: usize,
}

/// How the end of a batch encodes snapshots: the fold's direct protobuf writer
/// (`compact::proto_writer`), or the same message through prost (`codec::encode_snapshot_prost`),
/// so one run says whether the hand writer still pays for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoder {
    Direct,
    Prost,
}

/// The end of a fold batch: every changed aggregate's snapshot encoded once. Returns the bytes.
fn flush(engine: &Engine, dirty: &mut HashMap<String, i32>, encoder: Encoder) -> usize {
    dirty
        .drain()
        .map(|(k, _)| match encoder {
            Encoder::Direct => engine.snapshot_bytes(&k).map_or(0, |b| b.len()),
            Encoder::Prost => engine.get(&k).map_or(0, |a| encode_snapshot_prost(a).len()),
        })
        .sum()
}

/// What one timed pass did.
struct Pass {
    cpu_secs: f64,
    wall_secs: f64,
    commands: usize,
    facts: usize,
    duplicates: usize,
    written: usize,
}

/// One timed pass over the workload on a fresh engine, exactly as the fold does per record.
fn fold_pass(
    records: &[(String, Vec<u8>)],
    policy: &Policy,
    batch: usize,
    encoder: Encoder,
) -> anyhow::Result<Pass> {
    let mut engine = Engine::new(policy.clone());
    let (mut c, mut f, mut d) = (0usize, 0usize, 0usize);
    let batch = batch.max(1);
    let mut dirty: HashMap<String, i32> = HashMap::new();
    let mut written = 0usize;
    let cpu0 = thread_cpu_ns();
    let started = Instant::now();
    for (offset, (key, body)) in records.iter().enumerate() {
        let out = engine.apply(
            key,
            body,
            InputPos {
                partition: 0,
                offset: offset as i64,
            },
        )?;
        c += out.commands.len();
        d += usize::from(out.duplicate);
        if out.dirty {
            dirty.insert(out.aggregate_key, 0);
        }
        for (fk, fb) in out.derived {
            let fact = engine.apply(
                &fk,
                &fb,
                InputPos {
                    partition: 1,
                    offset: (offset * 4 + f) as i64,
                },
            )?;
            if fact.dirty {
                dirty.insert(fact.aggregate_key, 1);
            }
            f += 1;
        }
        if (offset + 1) % batch == 0 {
            written += flush(&engine, &mut dirty, encoder);
        }
    }
    written += flush(&engine, &mut dirty, encoder);
    let wall_secs = started.elapsed().as_secs_f64();
    let cpu_secs = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => wall_secs,
    };
    Ok(Pass {
        cpu_secs,
        wall_secs,
        commands: c,
        facts: f,
        duplicates: d,
        written,
    })
}

struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// The workload's random source: `rand`'s `SmallRng`, seeded, so one seed always gives the
/// same corpus (for a given `rand` version).
pub(crate) struct Rng(SmallRng);
impl Rng {
    pub(crate) fn seeded(seed: u64) -> Self {
        Rng(SmallRng::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n.max(1))
    }
    pub(crate) fn hex32(&mut self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }
}

const RENDITIONS: [(&str, &str, u32, u32, u32); 4] = [
    ("LD", "m3u8", 640, 360, 400),
    ("SD", "m3u8", 854, 480, 800),
    ("HD", "m3u8", 1280, 720, 1500),
    ("FD", "mp4", 1920, 1080, 3000),
];

fn body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The callbacks of one video's transcode, snapshots and play-info refresh.
fn media_events(out: &mut Vec<(String, Vec<u8>)>, rng: &mut Rng, vid: &str, at: i64) {
    let mut infos = Vec::new();
    for (i, (def, fmt, w, h, kbps)) in RENDITIONS.iter().enumerate() {
        let url = format!("http://outin-3f2a9b8c7d6e11eeb0a500163e1c7426.oss-cn-shanghai.aliyuncs.com/{vid}/{}-{def}.{fmt}", rng.hex32());
        let info = json!({"Status":"success","Bitrate":kbps.to_string(),"Definition":def,"Duration":"3600.042","Encrypt":false,
            "Format":fmt,"Fps":"25","Height":h,"Width":w,"Size":(*kbps as u64) * 450_000,"FileUrl":url,"JobId":rng.hex32()});
        let mut flat = info.clone();
        flat["EventType"] = json!("StreamTranscodeComplete");
        flat["EventTime"] = json!(format_rfc3339(at + 1000 * i as i64));
        flat["VideoId"] = json!(vid);
        out.push((vid.to_string(), body(flat)));
        infos.push(info);
    }
    out.push((vid.to_string(), body(json!({"EventType":"TranscodeComplete","EventTime":format_rfc3339(at + 10_000),"VideoId":vid,
        "Status":"success","Extend":"{\"biz\":\"live\"}","StreamInfos":infos}))));
    out.push((vid.to_string(), body(json!({"EventType":"SnapshotComplete","EventTime":format_rfc3339(at - 20_000),"VideoId":vid,
        "Status":"success","SubType":"SpecifiedTime",
        "CoverUrl":format!("http://outin-3f2a9b8c7d6e11eeb0a500163e1c7426.oss-cn-shanghai.aliyuncs.com/{vid}/snapshots/{}-00001.jpg", rng.hex32()),
        "SnapshotInfos":[{"Status":"success","SnapshotType":"CoverSnapshot","SnapshotCount":1,"SnapshotFormat":"jpg","JobId":rng.hex32()}]}))));
    let plays: Vec<_> = RENDITIONS
        .iter()
        .map(|(def, fmt, w, h, kbps)| {
            json!({"PlayURL":format!("https://vod.cdn.example.com/{vid}/{}-{def}.{fmt}", rng.hex32()),"Definition":def,"Format":fmt,
                   "Bitrate":kbps.to_string(),"Duration":"3600.042","Size":(*kbps as u64) * 450_000,"Width":w,"Height":h,"Status":"Normal","JobId":rng.hex32()})
        })
        .collect();
    out.push((vid.to_string(), body(json!({"EventType":"live2vod.PlayInfoResolved","EventTime":format_rfc3339(at + 15_000),"VideoId":vid,
        "CommandId":format!("pi-{}", rng.hex32()),"Status":"success","PlayInfos":plays}))));
}

/// One session: its segments, its composed video, shuffled, with 10% duplicates.
pub(crate) fn session(rng: &mut Rng, n: usize, segments: usize) -> (Vec<(String, Vec<u8>)>, usize) {
    let mut out = Vec::new();
    let stream = format!("room-{n}");
    let mut t: i64 = 1_764_000_000_000 + (n as i64) * 7_200_000;
    let mut videos = 0;
    for _ in 0..segments {
        let vid = rng.hex32();
        let start = t;
        t += 1_800_000;
        out.push((vid.clone(), body(json!({"EventTime":format_rfc3339(t + 2000),"EventType":"AddLiveRecordVideoComplete","VideoId":vid,
            "Status":"success","StreamName":stream,"DomainName":"live.example.com","AppName":"live",
            "RecordStartTime":format_rfc3339(start),"RecordEndTime":format_rfc3339(t)}))));
        media_events(&mut out, rng, &vid, t + 60_000);
        videos += 1;
    }
    let cid = rng.hex32();
    let cs = t + 200_000;
    out.push((cid.clone(), body(json!({"EventTime":format_rfc3339(cs),"EventType":"LiveRecordVideoComposeStart","VideoId":cid,
        "Status":"success","StreamName":stream,"DomainName":"live.example.com","AppName":"live"}))));
    out.push((cid.clone(), body(json!({"EventTime":format_rfc3339(cs + 300_000),"EventType":"FileUploadComplete","VideoId":cid,
        "Status":"success","Size":3_240_000_000u64,
        "FileUrl":format!("http://outin-3f2a9b8c7d6e11eeb0a500163e1c7426.oss-cn-shanghai.aliyuncs.com/sv/{}/{}.mp4", rng.hex32(), rng.hex32())}))));
    out.push((cid.clone(), body(json!({"EventTime":format_rfc3339(cs + 600_000),"EventType":"live2vod.VideoInfoObserved","VideoId":cid,
        "CommandId":format!("ct-{}", rng.hex32()),"VideoStatus":"UploadSucc","Size":3_240_000_000u64,"Status":"success"}))));
    media_events(&mut out, rng, &cid, cs + 400_000);
    videos += 1;
    let originals = out.len();
    for i in 0..originals {
        if rng.below(10) == 0 {
            let dup = out[i].clone();
            out.push(dup);
        }
    }
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    (out, videos)
}

/// Bytes of text (ids, names, URLs, job ids) a video aggregate holds: the part of its size that
/// is VOD's data rather than structure.
fn text_bytes(a: &Aggregate) -> usize {
    let Some(v) = a.as_video() else { return 0 };
    let t =
        |s: &Option<crate::domain::compact::text::Text>| s.as_ref().map_or(0, |t| t.stored_len());
    let mut n = 2 * v.id.len(); // the aggregate's id and the engine's map key
    if let Some(or) = &v.origin {
        let k = &or.value.stream;
        n += k.domain.len() + k.app.len() + k.stream.len();
    }
    if let Some(s) = &v.source {
        n += t(&s.value.file_url);
    }
    n += v.cover.as_ref().map_or(0, |c| c.value.stored_len());
    n += v
        .snapshots
        .iter()
        .map(|s| s.snapshot_type.len())
        .sum::<usize>();
    for r in &v.renditions {
        // Packed: texts and numbers in one allocation.
        n += r.definition.len() + r.format.len() + r.reg.value.stored_len();
    }
    for p in &v.play_urls {
        n += p.definition.len() + p.format.len() + p.reg.value.stored_len();
    }
    n
}

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`), so the figure is per core even
/// when the machine is shared; `None` elsewhere (then wall time is used).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn policy() -> anyhow::Result<Policy> {
    // Composed videos are transcoded by policy, so the projector has work to do.
    Ok(Policy::parse(
        "[defaults]\ncomposed = { action = \"transcode\", template_group = \"tg-compose\" }\n",
    )?)
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut rng = Rng::seeded(args.seed);
    let mut records = Vec::new();
    let mut videos = 0usize;
    for n in 0..args.sessions {
        let (r, v) = session(&mut rng, n, args.segments.max(1));
        records.extend(r);
        videos += v;
    }
    let bytes: usize = records.iter().map(|(_, b)| b.len()).sum();
    println!(
        "workload: {} sessions, {videos} videos (4 renditions each), {} callbacks ({:.1} MiB, {} B average)",
        args.sessions,
        records.len(),
        bytes as f64 / 1_048_576.0,
        bytes / records.len().max(1)
    );

    let started = Instant::now();
    let mut parsed = 0usize;
    for (_, body) in &records {
        parsed += usize::from(crate::domain::parse_event(body).is_ok());
    }
    let parse_secs = started.elapsed().as_secs_f64();
    println!(
        "parse only: {:.0} callbacks/s ({:.2} us each, {parsed} parsed)",
        records.len() as f64 / parse_secs,
        parse_secs * 1e6 / records.len() as f64
    );

    let policy = policy()?;
    // Each pass folds the workload twice, once per snapshot encoder, in alternating order so
    // neither always runs on a warmer cache; the best pass of each is reported.
    let (mut best, mut best_prost) = (f64::MAX, f64::MAX);
    let (mut commands, mut facts, mut duplicates) = (0usize, 0usize, 0usize);
    for pass in 0..args.passes.max(1) {
        let order = if pass % 2 == 0 {
            [Encoder::Direct, Encoder::Prost]
        } else {
            [Encoder::Prost, Encoder::Direct]
        };
        for encoder in order {
            let p = fold_pass(&records, &policy, args.batch, encoder)?;
            println!(
                "pass {} ({} snapshots): {:.3} s on CPU ({:.3} s wall), {:.0} callbacks per CPU second ({:.2} us each; {} derived facts folded too), {} duplicates, {} commands, {:.1} MiB of snapshots written",
                pass + 1,
                if encoder == Encoder::Direct { "direct" } else { "prost" },
                p.cpu_secs,
                p.wall_secs,
                records.len() as f64 / p.cpu_secs,
                p.cpu_secs * 1e6 / records.len() as f64,
                p.facts,
                p.duplicates,
                p.commands,
                p.written as f64 / 1_048_576.0
            );
            match encoder {
                Encoder::Direct => best = best.min(p.cpu_secs),
                Encoder::Prost => best_prost = best_prost.min(p.cpu_secs),
            }
            (commands, facts, duplicates) = (p.commands, p.facts, p.duplicates);
        }
    }
    let callbacks_per_s = (records.len() as f64 / best).round() as u64;
    let callbacks_per_s_prost = (records.len() as f64 / best_prost).round() as u64;

    // Memory: only the video aggregates' callbacks (facts would build stream aggregates).
    let video_records: Vec<&(String, Vec<u8>)> = records
        .iter()
        .filter(|(k, _)| !k.starts_with("stream:"))
        .collect();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let mut engine = Engine::new(policy);
    for (offset, (key, body)) in video_records.iter().enumerate() {
        // `Applied` (snapshot bytes, commands) is dropped at once, as the fold does after producing.
        drop(engine.apply(
            key,
            body,
            InputPos {
                partition: 0,
                offset: offset as i64,
            },
        )?);
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    COUNTING.store(false, Ordering::SeqCst);
    let aggregates = engine.len();
    let bytes_per_video = (held.max(0) as usize) / aggregates.max(1);
    let text: usize = engine
        .aggregates()
        .map(|(_, a)| text_bytes(a))
        .sum::<usize>()
        / aggregates.max(1);
    let snapshot_bytes: usize = engine
        .aggregates()
        .map(|(k, _)| engine.snapshot_bytes(k).map_or(0, |s| s.len()))
        .sum::<usize>()
        / aggregates.max(1);
    drop(engine);
    println!(
        "best: {callbacks_per_s} callbacks per CPU second on one thread; {commands} commands, {facts} facts, {duplicates} duplicates per pass"
    );
    println!(
        "memory: {aggregates} video aggregates hold {held} heap bytes = {bytes_per_video} B per video (4 renditions; map, keys and boxes included), of which {text} B are VOD's strings (ids, URLs, job ids); snapshot {snapshot_bytes} B per video"
    );
    println!(
        "snapshot encoder: {callbacks_per_s} callbacks/s with the direct writer, {callbacks_per_s_prost} with prost ({:+.1} %)",
        (callbacks_per_s as f64 / callbacks_per_s_prost.max(1) as f64 - 1.0) * 100.0
    );
    println!(
        "{}",
        json!({"callbacks_per_s": callbacks_per_s, "callbacks_per_s_prost_snapshots": callbacks_per_s_prost, "bytes_per_video": bytes_per_video})
    );
    Ok(())
}

/// Runs `f` with the counting allocator on and returns its result with the bytes it left
/// allocated (every thread's allocations meanwhile count: run it while the process is quiet).
/// For tests that report memory per item.
pub fn bytes_left_by<R>(f: impl FnOnce() -> R) -> (R, isize) {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let r = f();
    COUNTING.store(false, Ordering::Relaxed);
    (r, LIVE_BYTES.load(Ordering::Relaxed) - before)
}
