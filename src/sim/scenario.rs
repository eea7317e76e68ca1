//! The scenario: what Alibaba Live + VOD did, generated from a seed. Pure: the RNG is seeded
//! here from the caller's seed and the base time comes in as a parameter, so the same inputs
//! always give the same streams, VideoIds and callback bodies.
//!
//! Conventions (the policy from [`crate::sim::policy_toml`] matches them): domain
//! `live.demo.example.com`, app `live`, one flow per stream, named after it:
//! `auto-<n>` (flow 1), `store-<n>` (flow 2), `compose-auto-<n>` (flow 3a),
//! `compose-only-<n>` (flow 3b).
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use super::time::fmt_utc;

pub const DOMAIN: &str = "live.demo.example.com";
pub const APP: &str = "live";
/// Recording transcode group of flow 1 (VOD transcodes each segment with it).
pub const TG_RECORD: &str = "tg-record";
/// Compose transcode group of flow 3a (VOD transcodes the composed video with it).
pub const TG_COMPOSE: &str = "tg-compose";
/// What the operator submits for flow-2 segments.
pub const TG_MANUAL: &str = "tg-manual";
/// What live2vod's policy submits for flow-3b composed videos.
pub const TG_COMPOSE_LATER: &str = "tg-compose-later";
/// Live's default interrupt timeout (`DelayTime`): a longer gap ends the session.
pub const INTERRUPT_TIMEOUT_SECS: i64 = 180;
/// VOD refuses to compose more segments than this.
pub const MAX_COMPOSE_SEGMENTS: usize = 40;
/// The CDN domain of play URLs.
pub const PLAY_DOMAIN: &str = "vod.demo.example.com";

/// Every stream's activity (and its compose and transcode tail) ends at least this long before
/// the base time, so compose deadlines of the policy have passed when the scenario is played.
pub const QUIET_BEFORE_BASE_MS: i64 = 3_600_000;
/// Room left after a stream's last push for compose and transcode callbacks.
const TAIL_MS: i64 = 45 * 60_000;

/// The four template-group kinds of the seed document, one per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flow {
    /// Flow 1: record + auto transcode with `tg-record`.
    RecordTranscode,
    /// Flow 2: store only; the operator submits `tg-manual`.
    StoreOnly,
    /// Flow 3a: auto compose + auto transcode with `tg-compose`; segments stored only.
    ComposeTranscode,
    /// Flow 3b: auto compose only; live2vod's policy submits `tg-compose-later`.
    ComposeOnly,
}

impl Flow {
    /// In the order sessions are dealt to flows.
    pub const ALL: [Flow; 4] = [
        Flow::RecordTranscode,
        Flow::ComposeTranscode,
        Flow::StoreOnly,
        Flow::ComposeOnly,
    ];

    /// Stream name prefix (`<prefix>-<n>`).
    pub fn prefix(self) -> &'static str {
        match self {
            Flow::RecordTranscode => "auto",
            Flow::StoreOnly => "store",
            Flow::ComposeTranscode => "compose-auto",
            Flow::ComposeOnly => "compose-only",
        }
    }

    pub fn auto_compose(self) -> bool {
        matches!(self, Flow::ComposeTranscode | Flow::ComposeOnly)
    }

    /// The group VOD itself transcodes segments with (recording transcode group).
    pub fn segment_auto_group(self) -> Option<&'static str> {
        matches!(self, Flow::RecordTranscode).then_some(TG_RECORD)
    }

    /// The group VOD itself transcodes the composed video with (compose transcode group).
    pub fn composed_auto_group(self) -> Option<&'static str> {
        matches!(self, Flow::ComposeTranscode).then_some(TG_COMPOSE)
    }
}

/// `domain/app/stream`, the key the policy globs and the api path use.
pub fn stream_key(domain: &str, app: &str, stream: &str) -> String {
    format!("{domain}/{app}/{stream}")
}

/// What a scenario is generated from.
#[derive(Debug, Clone)]
pub struct ScenarioConfig {
    pub seed: u64,
    /// Live sessions in all (dealt round-robin to the four flows, two per stream).
    pub sessions: usize,
    /// "Now" of the scenario in unix ms; everything happens well before it.
    pub base_time_ms: i64,
    /// Chance that one rendition of a transcode fails.
    pub rendition_failure_rate: f64,
    /// Chance that an auto-compose fails (besides the > 40 segment rule).
    pub compose_failure_rate: f64,
}

impl ScenarioConfig {
    pub fn new(seed: u64, sessions: usize, base_time_ms: i64) -> Self {
        ScenarioConfig {
            seed,
            sessions,
            base_time_ms,
            rendition_failure_rate: 0.1,
            compose_failure_rate: 0.15,
        }
    }
}

/// One output of a transcode as planned (the outcome is decided by the scenario, even for a
/// transcode that is only submitted later, so the ground truth is known up front).
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionPlan {
    pub definition: &'static str,
    pub format: &'static str,
    pub success: bool,
    pub bitrate_kbps: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub duration_s: f64,
    pub size: u64,
}

/// All renditions of one transcode of one video.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodePlan {
    pub renditions: Vec<RenditionPlan>,
}

impl TranscodePlan {
    /// VOD's TranscodeComplete is `success` when at least one rendition succeeded.
    pub fn success(&self) -> bool {
        self.renditions.iter().any(|r| r.success)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentPlan {
    pub video_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Time of AddLiveRecordVideoComplete.
    pub recorded_ms: i64,
    /// What a transcode of this segment yields (auto for flow 1, manual for flow 2).
    pub transcode: TranscodePlan,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComposePlan {
    /// The NEW VideoId of the composed video.
    pub video_id: String,
    pub success: bool,
    pub start_event_ms: i64,
    pub upload_event_ms: i64,
    pub size: u64,
    /// What a transcode of the composed video yields (auto for 3a, by policy for 3b).
    pub transcode: TranscodePlan,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionPlan {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The pushes that make up the session (gaps between them shorter than the interrupt timeout).
    pub pushes: Vec<(i64, i64)>,
    pub segments: Vec<SegmentPlan>,
    pub compose: Option<ComposePlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamPlan {
    pub domain: String,
    pub app: String,
    pub stream: String,
    pub flow: Flow,
    pub cycle_secs: i64,
    pub sessions: Vec<SessionPlan>,
}

impl StreamPlan {
    pub fn key(&self) -> String {
        stream_key(&self.domain, &self.app, &self.stream)
    }
}

/// A rendition as VOD reports it (callbacks, GetPlayInfo).
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionOut {
    pub plan: RenditionPlan,
    pub job_id: String,
    pub file_url: String,
}

/// What an event means to VOD's own state (the OpenAPI answers from it).
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Recorded {
        start_ms: i64,
        end_ms: i64,
        /// VOD starts a transcode with this group as it records (flow 1).
        auto_group: Option<&'static str>,
    },
    /// VOD starts composing the session `[start_ms, end_ms)` into a new video.
    ComposeStarted {
        start_ms: i64,
        end_ms: i64,
    },
    Uploaded {
        ok: bool,
        size: u64,
        file_url: String,
        /// VOD starts a transcode with this group once the composed file is there (flow 3a).
        auto_group: Option<&'static str>,
    },
    Snapshot {
        cover_url: String,
    },
    Rendition(RenditionOut),
    TranscodeDone {
        ok: bool,
    },
}

/// One callback VOD sends, with the meaning the simulator's VOD state takes from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioEvent {
    /// Unique within a simulator run (scenario events are numbered first).
    pub id: u64,
    pub time_ms: i64,
    pub video_id: String,
    pub event_type: &'static str,
    /// `domain/app/stream` of the video.
    pub stream: String,
    pub flow: Flow,
    /// The JSON body exactly as posted.
    pub body: String,
    pub effect: Effect,
}

/// The generated world: streams, sessions, videos and every callback VOD sent about them.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub config: ScenarioConfig,
    pub streams: Vec<StreamPlan>,
    /// Sorted by event time; ids are the indices.
    pub events: Vec<ScenarioEvent>,
}

const DEFINITIONS: [&str; 6] = ["FD", "LD", "SD", "HD", "OD", "2K"];
const CYCLES: [i64; 4] = [300, 600, 1200, 1800];

/// Cuts a recording `[start, end)` into recording cycles: one video per full cycle plus one for
/// the final partial cycle.
pub fn cycle_segments(start_ms: i64, end_ms: i64, cycle_secs: i64) -> Vec<(i64, i64)> {
    let cycle = cycle_secs.max(1) * 1000;
    let mut out = Vec::new();
    let mut t = start_ms;
    while t < end_ms {
        let e = (t + cycle).min(end_ms);
        out.push((t, e));
        t = e;
    }
    out
}

/// Groups pushes (sorted, non-overlapping) into live sessions: a gap longer than the interrupt
/// timeout ends a session; reconnecting within it continues the same one.
pub fn split_sessions(pushes: &[(i64, i64)], timeout_secs: i64) -> Vec<Vec<(i64, i64)>> {
    let mut sessions: Vec<Vec<(i64, i64)>> = Vec::new();
    for &p in pushes {
        match sessions.last_mut() {
            Some(cur) if cur.last().is_some_and(|l| p.0 - l.1 <= timeout_secs * 1000) => {
                cur.push(p)
            }
            _ => sessions.push(vec![p]),
        }
    }
    sessions
}

/// 32 lowercase hex characters, like VOD's VideoId and JobId.
pub fn hex_id(rng: &mut impl Rng) -> String {
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

fn rendition_shape(def: &str) -> (u32, u32, u32) {
    match def {
        "FD" => (400, 640, 360),
        "LD" => (700, 854, 480),
        "SD" => (1200, 1280, 720),
        "HD" => (2500, 1920, 1080),
        "OD" => (4000, 1920, 1080),
        _ => (6000, 2560, 1440),
    }
}

/// Plans a transcode: the stream's renditions, each failing with `failure_rate`.
pub fn plan_transcode(
    rng: &mut impl Rng,
    definitions: &[&'static str],
    format: &'static str,
    duration_s: f64,
    failure_rate: f64,
) -> TranscodePlan {
    let renditions = definitions
        .iter()
        .map(|&definition| {
            let (bitrate_kbps, width, height) = rendition_shape(definition);
            RenditionPlan {
                definition,
                format,
                success: !rng.random_bool(failure_rate.clamp(0.0, 1.0)),
                bitrate_kbps,
                width,
                height,
                fps: 25,
                duration_s,
                size: (bitrate_kbps as f64 * 125.0 * duration_s) as u64,
            }
        })
        .collect();
    TranscodePlan { renditions }
}

fn body(fields: Vec<(&str, Value)>) -> String {
    let map: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Value::Object(map).to_string()
}

fn status_str(ok: bool) -> &'static str {
    if ok {
        "success"
    } else {
        "fail"
    }
}

/// The per-rendition fields shared by StreamTranscodeComplete and TranscodeComplete's
/// `StreamInfos`, in VOD's shape (Bitrate and Fps as strings).
fn stream_info(r: &RenditionOut) -> Vec<(&'static str, Value)> {
    let p = &r.plan;
    let mut f = vec![
        ("Status", json!(status_str(p.success))),
        ("Bitrate", json!(p.bitrate_kbps.to_string())),
        ("Definition", json!(p.definition)),
        ("Duration", json!(p.duration_s)),
        ("Encrypt", json!(false)),
        ("Format", json!(p.format)),
        ("Fps", json!(p.fps.to_string())),
        ("Height", json!(p.height)),
        ("Width", json!(p.width)),
        ("Size", json!(if p.success { p.size } else { 0 })),
        ("JobId", json!(r.job_id)),
    ];
    if p.success {
        f.push(("FileUrl", json!(r.file_url)));
    } else {
        f.push(("ErrorCode", json!("InvalidParameter.ResourceContentBad")));
        f.push((
            "ErrorMessage",
            json!("The resource operated cannot be processed."),
        ));
    }
    f
}

/// Context shared by the events of one video.
#[derive(Debug, Clone)]
pub struct VideoCtx<'a> {
    pub video_id: &'a str,
    pub stream: &'a str,
    pub flow: Flow,
}

/// The callbacks of one transcode as VOD sends them: SnapshotComplete, one
/// StreamTranscodeComplete per rendition, TranscodeComplete. `start_ms` is when the job
/// started; `extend` echoes `UserData.Extend`. Ids are left 0 for the caller to number.
pub fn transcode_events(
    rng: &mut impl Rng,
    ctx: &VideoCtx<'_>,
    plan: &TranscodePlan,
    start_ms: i64,
    max_step_ms: i64,
    extend: Option<&Value>,
) -> Vec<ScenarioEvent> {
    let vid = ctx.video_id;
    let max_step = max_step_ms.max(1);
    let mut out = Vec::new();
    let mk =
        |time_ms: i64, event_type: &'static str, fields: Vec<(&str, Value)>, effect: Effect| {
            let mut all = vec![
                ("EventTime", json!(fmt_utc(time_ms))),
                ("EventType", json!(event_type)),
                ("VideoId", json!(vid)),
            ];
            all.extend(fields);
            if let Some(x) = extend {
                all.push(("Extend", x.clone()));
            }
            ScenarioEvent {
                id: 0,
                time_ms,
                video_id: vid.to_string(),
                event_type,
                stream: ctx.stream.to_string(),
                flow: ctx.flow,
                body: body(all),
                effect,
            }
        };
    let snap_ms = start_ms + rng.random_range(0..=max_step);
    let snap_job = hex_id(rng);
    let cover_url = format!("https://{PLAY_DOMAIN}/{vid}/snapshots/{snap_job}-00001.jpg");
    out.push(mk(
        snap_ms,
        "SnapshotComplete",
        vec![
            ("Status", json!("success")),
            ("SubType", json!("SpecifiedTime")),
            ("CoverUrl", json!(cover_url)),
            (
                "SnapshotInfos",
                json!([{
                    "Status": "success",
                    "SnapshotType": "CoverSnapshot",
                    "SnapshotCount": 1,
                    "SnapshotFormat": "jpg",
                    "SnapshotRegular": format!("https://{PLAY_DOMAIN}/{vid}/snapshots/{snap_job}-{{SnapshotCount}}.jpg"),
                    "JobId": snap_job,
                }]),
            ),
        ],
        Effect::Snapshot { cover_url },
    ));
    let mut last = start_ms;
    let mut infos = Vec::new();
    for p in &plan.renditions {
        let job_id = hex_id(rng);
        let ext = p.format;
        let r = RenditionOut {
            plan: p.clone(),
            file_url: format!(
                "https://{PLAY_DOMAIN}/{vid}/{}-{job_id}.{ext}",
                p.definition.to_ascii_lowercase()
            ),
            job_id,
        };
        let t = start_ms + rng.random_range(0..=max_step);
        last = last.max(t);
        let info = stream_info(&r);
        infos.push(Value::Object(
            info.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ));
        out.push(mk(t, "StreamTranscodeComplete", info, Effect::Rendition(r)));
    }
    let ok = plan.success();
    out.push(mk(
        last + rng.random_range(1000..=5000),
        "TranscodeComplete",
        vec![
            ("Status", json!(status_str(ok))),
            ("StreamInfos", Value::Array(infos)),
        ],
        Effect::TranscodeDone { ok },
    ));
    out
}

impl Scenario {
    /// The default knobs with this seed, session count and base time.
    pub fn generate(seed: u64, sessions: usize, base_time_ms: i64) -> Scenario {
        Scenario::generate_with(&ScenarioConfig::new(seed, sessions, base_time_ms))
    }

    pub fn generate_with(config: &ScenarioConfig) -> Scenario {
        let mut rng = StdRng::seed_from_u64(config.seed);
        // Session i goes to flow ALL[i % 4]; each stream takes two sessions.
        let mut by_stream: Vec<(Flow, usize, Vec<usize>)> = Vec::new();
        for i in 0..config.sessions {
            let flow = Flow::ALL[i % 4];
            let n = i / 8 + 1;
            match by_stream.iter_mut().find(|(f, m, _)| *f == flow && *m == n) {
                Some(s) => s.2.push(i),
                None => by_stream.push((flow, n, vec![i])),
            }
        }
        let mut streams = Vec::new();
        for (flow, n, sessions) in by_stream {
            streams.push(gen_stream(&mut rng, config, flow, n, &sessions));
        }
        let mut events = Vec::new();
        for s in &streams {
            stream_events(&mut rng, s, &mut events);
        }
        events.sort_by(|a, b| a.time_ms.cmp(&b.time_ms).then(a.video_id.cmp(&b.video_id)));
        for (i, e) in events.iter_mut().enumerate() {
            e.id = i as u64;
        }
        Scenario {
            config: config.clone(),
            streams,
            events,
        }
    }

    /// The planned outcome of a transcode of `video_id` (segment or composed video).
    pub fn transcode_plan(&self, video_id: &str) -> Option<&TranscodePlan> {
        self.streams
            .iter()
            .flat_map(|s| &s.sessions)
            .find_map(|sess| {
                sess.segments
                    .iter()
                    .find(|g| g.video_id == video_id)
                    .map(|g| &g.transcode)
                    .or_else(|| {
                        sess.compose
                            .as_ref()
                            .filter(|c| c.video_id == video_id)
                            .map(|c| &c.transcode)
                    })
            })
    }

    /// The order VOD delivers the callbacks in: by event time plus a random lag of up to
    /// `window_ms` (so close events overtake each other), each repeated with `duplicate_rate`
    /// (the copy a little later). Returns (event index, is the duplicate copy).
    pub fn delivery_order(
        &self,
        rng: &mut impl Rng,
        window_ms: i64,
        duplicate_rate: f64,
    ) -> Vec<(usize, bool)> {
        let w = window_ms.max(0);
        let mut keyed: Vec<(i64, usize, bool)> = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let k = e.time_ms + rng.random_range(0..=w);
            keyed.push((k, i, false));
            if rng.random_bool(duplicate_rate.clamp(0.0, 1.0)) {
                keyed.push((k + rng.random_range(0..=w), i, true));
            }
        }
        keyed.sort();
        keyed.into_iter().map(|(_, i, d)| (i, d)).collect()
    }
}

fn gen_stream(
    rng: &mut StdRng,
    cfg: &ScenarioConfig,
    flow: Flow,
    n: usize,
    session_indices: &[usize],
) -> StreamPlan {
    // Session 1 (the first compose-auto one) is a marathon of > 40 segments: VOD cannot
    // compose it. It needs the shortest cycle to stay a few hours long.
    let marathon = session_indices.contains(&1);
    let cycle_secs = if marathon {
        300
    } else {
        CYCLES[rng.random_range(0..CYCLES.len())]
    };
    let format = if rng.random_bool(0.5) { "m3u8" } else { "mp4" };
    let count = rng.random_range(1..=DEFINITIONS.len());
    let mut defs: Vec<&'static str> = DEFINITIONS.to_vec();
    while defs.len() > count {
        let k = rng.random_range(0..defs.len());
        defs.remove(k);
    }
    // Flow 1's first stream gets >= 2 renditions so a partly failed transcode can be forced.
    if session_indices.contains(&0) && defs.len() < 2 {
        defs = vec!["LD", "HD"];
    }

    // Pushes relative to 0 (seconds): per planned session 1..3 pushes separated by short
    // interruptions, then a gap far longer than the interrupt timeout.
    let mut pushes: Vec<(i64, i64)> = Vec::new();
    let mut t: i64 = 0;
    for &i in session_indices {
        let dur = if i == 1 {
            (MAX_COMPOSE_SEGMENTS as i64 + 1) * 300 + rng.random_range(30..290)
        } else if i == 0 {
            cycle_secs + rng.random_range(60..240)
        } else {
            rng.random_range(5 * 60..=75 * 60)
        };
        let parts = rng.random_range(1..=3usize);
        let end = t + dur;
        let mut cuts: Vec<i64> = (1..parts)
            .map(|_| rng.random_range(t + 60..end - 60))
            .collect();
        cuts.sort();
        let mut s = t;
        for c in cuts {
            let gap = rng.random_range(10..=150).min(INTERRUPT_TIMEOUT_SECS - 1);
            if c - s > 1 && c + gap < end {
                pushes.push((s, c));
                s = c + gap;
            }
        }
        pushes.push((s, end));
        t = end + rng.random_range(20 * 60..=60 * 60);
    }
    let span_ms = pushes.last().map_or(0, |p| p.1) * 1000;
    let origin = cfg.base_time_ms
        - QUIET_BEFORE_BASE_MS
        - TAIL_MS
        - span_ms
        - rng.random_range(0..=20 * 60) * 1000;
    // Whole seconds: VOD's times have second resolution.
    let origin = origin - origin.rem_euclid(1000);
    let pushes_ms: Vec<(i64, i64)> = pushes
        .iter()
        .map(|(a, b)| (origin + a * 1000, origin + b * 1000))
        .collect();

    let stream = format!("{}-{n}", flow.prefix());
    let mut sessions = Vec::new();
    for (k, sess_pushes) in split_sessions(&pushes_ms, INTERRUPT_TIMEOUT_SECS)
        .into_iter()
        .enumerate()
    {
        let idx = session_indices.get(k).copied().unwrap_or(usize::MAX);
        let start_ms = sess_pushes.first().map_or(0, |p| p.0);
        let end_ms = sess_pushes.last().map_or(0, |p| p.1);
        let cuts = cycle_segments(start_ms, end_ms, cycle_secs);
        let last = cuts.len().saturating_sub(1);
        let mut segments = Vec::new();
        for (j, (s, e)) in cuts.iter().copied().enumerate() {
            let video_id = hex_id(rng);
            let mut transcode = plan_transcode(
                rng,
                &defs,
                format,
                (e - s) as f64 / 1000.0,
                cfg.rendition_failure_rate,
            );
            // Forced coverage in flow 1's first session: a partly failed transcode, and a
            // fully failed one (video `failed`).
            if idx == 0 && j == 0 && last > 0 {
                for (x, r) in transcode.renditions.iter_mut().enumerate() {
                    r.success = x != 0;
                }
            }
            if idx == 0 && j == last {
                for r in &mut transcode.renditions {
                    r.success = false;
                }
            }
            segments.push(SegmentPlan {
                video_id,
                start_ms: s,
                end_ms: e,
                recorded_ms: e + rng.random_range(5..=30) * 1000,
                transcode,
            });
        }
        let compose = flow.auto_compose().then(|| {
            let video_id = hex_id(rng);
            let random_fail = rng.random_bool(cfg.compose_failure_rate.clamp(0.0, 1.0));
            // Forced coverage: compose-auto's second and compose-only's first session
            // succeed, compose-only's second fails.
            let success = segments.len() <= MAX_COMPOSE_SEGMENTS
                && match idx {
                    3 | 5 => true,
                    7 => false,
                    _ => !random_fail,
                };
            let start_event_ms =
                end_ms + INTERRUPT_TIMEOUT_SECS * 1000 + rng.random_range(5..=60) * 1000;
            let upload_event_ms =
                start_event_ms + (30 + 3 * segments.len() as i64 + rng.random_range(0..=60)) * 1000;
            let duration_s = (end_ms - start_ms) as f64 / 1000.0;
            ComposePlan {
                video_id,
                success,
                start_event_ms,
                upload_event_ms,
                size: (duration_s * 2500.0 * 125.0) as u64,
                transcode: plan_transcode(
                    rng,
                    &defs,
                    format,
                    duration_s,
                    cfg.rendition_failure_rate,
                ),
            }
        });
        sessions.push(SessionPlan {
            start_ms,
            end_ms,
            pushes: sess_pushes,
            segments,
            compose,
        });
    }
    StreamPlan {
        domain: DOMAIN.to_string(),
        app: APP.to_string(),
        stream,
        flow,
        cycle_secs,
        sessions,
    }
}

fn source_url(rng: &mut impl Rng, vid: &str) -> String {
    format!(
        "https://outin-{:08x}.oss-cn-shanghai.aliyuncs.com/sv/{vid}/{vid}.mp4",
        rng.random::<u32>()
    )
}

/// Every callback VOD sends about one stream, in VOD's bodies.
fn stream_events(rng: &mut StdRng, s: &StreamPlan, out: &mut Vec<ScenarioEvent>) {
    let key = s.key();
    for sess in &s.sessions {
        for seg in &sess.segments {
            let ctx = VideoCtx {
                video_id: &seg.video_id,
                stream: &key,
                flow: s.flow,
            };
            out.push(ScenarioEvent {
                id: 0,
                time_ms: seg.recorded_ms,
                video_id: seg.video_id.clone(),
                event_type: "AddLiveRecordVideoComplete",
                stream: key.clone(),
                flow: s.flow,
                body: body(vec![
                    ("EventTime", json!(fmt_utc(seg.recorded_ms))),
                    ("EventType", json!("AddLiveRecordVideoComplete")),
                    ("VideoId", json!(seg.video_id)),
                    ("Status", json!("success")),
                    ("StreamName", json!(s.stream)),
                    ("DomainName", json!(s.domain)),
                    ("AppName", json!(s.app)),
                    ("RecordStartTime", json!(fmt_utc(seg.start_ms))),
                    ("RecordEndTime", json!(fmt_utc(seg.end_ms))),
                ]),
                effect: Effect::Recorded {
                    start_ms: seg.start_ms,
                    end_ms: seg.end_ms,
                    auto_group: s.flow.segment_auto_group(),
                },
            });
            if s.flow.segment_auto_group().is_some() {
                let start = seg.recorded_ms + rng.random_range(1..=10) * 1000;
                out.extend(transcode_events(
                    rng,
                    &ctx,
                    &seg.transcode,
                    start,
                    10 * 60_000,
                    None,
                ));
            }
        }
        if let Some(c) = &sess.compose {
            out.push(ScenarioEvent {
                id: 0,
                time_ms: c.start_event_ms,
                video_id: c.video_id.clone(),
                event_type: "LiveRecordVideoComposeStart",
                stream: key.clone(),
                flow: s.flow,
                body: body(vec![
                    ("EventTime", json!(fmt_utc(c.start_event_ms))),
                    ("EventType", json!("LiveRecordVideoComposeStart")),
                    ("VideoId", json!(c.video_id)),
                    ("Status", json!("success")),
                    ("DomainName", json!(s.domain)),
                    ("AppName", json!(s.app)),
                    ("StreamName", json!(s.stream)),
                ]),
                effect: Effect::ComposeStarted {
                    start_ms: sess.start_ms,
                    end_ms: sess.end_ms,
                },
            });
            let file_url = if c.success {
                source_url(rng, &c.video_id)
            } else {
                String::new()
            };
            let mut fields = vec![
                ("EventTime", json!(fmt_utc(c.upload_event_ms))),
                ("EventType", json!("FileUploadComplete")),
                ("VideoId", json!(c.video_id)),
                ("Size", json!(if c.success { c.size } else { 0 })),
            ];
            if c.success {
                fields.push(("FileUrl", json!(file_url)));
            }
            fields.push(("Status", json!(status_str(c.success))));
            out.push(ScenarioEvent {
                id: 0,
                time_ms: c.upload_event_ms,
                video_id: c.video_id.clone(),
                event_type: "FileUploadComplete",
                stream: key.clone(),
                flow: s.flow,
                body: body(fields),
                effect: Effect::Uploaded {
                    ok: c.success,
                    size: c.size,
                    file_url,
                    auto_group: if c.success {
                        s.flow.composed_auto_group()
                    } else {
                        None
                    },
                },
            });
            if c.success && s.flow.composed_auto_group().is_some() {
                let ctx = VideoCtx {
                    video_id: &c.video_id,
                    stream: &key,
                    flow: s.flow,
                };
                let start = c.upload_event_ms + rng.random_range(1..=10) * 1000;
                out.extend(transcode_events(
                    rng,
                    &ctx,
                    &c.transcode,
                    start,
                    10 * 60_000,
                    None,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_790_000_000_000;

    #[test]
    fn same_seed_same_bodies_other_seed_other_bodies() {
        let a = Scenario::generate(7, 8, BASE);
        let b = Scenario::generate(7, 8, BASE);
        let c = Scenario::generate(8, 8, BASE);
        let bodies = |s: &Scenario| s.events.iter().map(|e| e.body.clone()).collect::<Vec<_>>();
        assert_eq!(bodies(&a), bodies(&b));
        assert_ne!(bodies(&a), bodies(&c));
        let mut r1 = StdRng::seed_from_u64(1);
        let mut r2 = StdRng::seed_from_u64(1);
        assert_eq!(
            a.delivery_order(&mut r1, 600_000, 0.2),
            a.delivery_order(&mut r2, 600_000, 0.2)
        );
    }

    #[test]
    fn a_38_minute_stream_with_30_minute_cycles_gives_2_videos() {
        let segs = cycle_segments(0, 38 * 60_000, 1800);
        assert_eq!(segs, vec![(0, 1_800_000), (1_800_000, 2_280_000)]);
        assert_eq!(cycle_segments(0, 60 * 60_000, 1800).len(), 2);
        assert_eq!(cycle_segments(0, 60 * 60_000 + 1000, 1800).len(), 3);
        assert!(cycle_segments(5, 5, 300).is_empty());
    }

    #[test]
    fn gaps_longer_than_the_interrupt_timeout_start_a_new_session() {
        let t = INTERRUPT_TIMEOUT_SECS * 1000;
        let pushes = [
            (0, 1000),
            (1000 + t, 5000 + t),
            (5000 + 2 * t + 1, 9000 + 2 * t),
        ];
        let s = split_sessions(&pushes, INTERRUPT_TIMEOUT_SECS);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(
            s[0].len(),
            2,
            "a gap of exactly the timeout continues the session"
        );
        assert_eq!(s[1], vec![pushes[2]]);
    }

    #[test]
    fn more_than_40_segments_fail_to_compose() {
        let sc = Scenario::generate(3, 8, BASE);
        let mut saw_marathon = false;
        for s in &sc.streams {
            for sess in &s.sessions {
                if let Some(c) = &sess.compose {
                    if sess.segments.len() > MAX_COMPOSE_SEGMENTS {
                        saw_marathon = true;
                        assert!(
                            !c.success,
                            "{} composed {} segments",
                            s.stream,
                            sess.segments.len()
                        );
                        let upload = sc
                            .events
                            .iter()
                            .find(|e| {
                                e.video_id == c.video_id && e.event_type == "FileUploadComplete"
                            })
                            .expect("FileUploadComplete of the composed video");
                        assert!(
                            upload.body.contains(r#""Status":"fail""#),
                            "{}",
                            upload.body
                        );
                    }
                }
            }
        }
        assert!(
            saw_marathon,
            "the default scenario has a > 40 segment session"
        );
    }

    #[test]
    fn default_scenario_has_every_flow_and_every_outcome() {
        let sc = Scenario::generate(11, 8, BASE);
        for f in Flow::ALL {
            let s = sc
                .streams
                .iter()
                .find(|s| s.flow == f)
                .expect("flow present");
            assert_eq!(s.sessions.len(), 2, "{} has two sessions", s.stream);
            assert_eq!(
                s.flow.auto_compose(),
                s.sessions.iter().all(|x| x.compose.is_some())
            );
        }
        let composes: Vec<&ComposePlan> = sc
            .streams
            .iter()
            .flat_map(|s| &s.sessions)
            .filter_map(|x| x.compose.as_ref())
            .collect();
        assert!(composes.iter().any(|c| c.success));
        assert!(composes.iter().any(|c| !c.success));
        let auto_segments: Vec<&SegmentPlan> = sc
            .streams
            .iter()
            .filter(|s| s.flow == Flow::RecordTranscode)
            .flat_map(|s| &s.sessions)
            .flat_map(|x| &x.segments)
            .collect();
        assert!(auto_segments.iter().any(|g| !g.transcode.success()));
        assert!(auto_segments
            .iter()
            .any(|g| g.transcode.success() && g.transcode.renditions.iter().any(|r| !r.success)));
        for t in [
            "AddLiveRecordVideoComplete",
            "LiveRecordVideoComposeStart",
            "FileUploadComplete",
            "SnapshotComplete",
            "StreamTranscodeComplete",
            "TranscodeComplete",
        ] {
            assert!(sc.events.iter().any(|e| e.event_type == t), "{t} missing");
        }
    }

    #[test]
    fn everything_ends_an_hour_before_the_base_time_and_bodies_look_like_vod() {
        let sc = Scenario::generate(5, 12, BASE);
        let last = sc.events.iter().map(|e| e.time_ms).max().expect("events");
        assert!(last <= BASE - QUIET_BEFORE_BASE_MS, "last event {last}");
        for e in &sc.events {
            let v: Value = serde_json::from_str(&e.body).expect("JSON object");
            assert_eq!(v["EventType"], e.event_type);
            assert_eq!(v["VideoId"], e.video_id.as_str());
            let t = v["EventTime"].as_str().expect("EventTime");
            assert_eq!(t.len(), 20, "{t}");
            assert!(t.ends_with('Z'));
            if e.event_type == "StreamTranscodeComplete" {
                assert!(
                    v["Bitrate"].is_string() && v["Fps"].is_string(),
                    "{}",
                    e.body
                );
            }
            if e.event_type == "TranscodeComplete" {
                assert!(v["StreamInfos"].is_array());
            }
            if e.event_type == "SnapshotComplete" {
                assert!(v["SnapshotInfos"].is_array());
            }
        }
        // Sessions of a stream are separated by more than the interrupt timeout; pushes within
        // one session by less.
        for s in &sc.streams {
            for w in s.sessions.windows(2) {
                assert!(w[1].start_ms - w[0].end_ms > INTERRUPT_TIMEOUT_SECS * 1000);
            }
            for sess in &s.sessions {
                for w in sess.pushes.windows(2) {
                    assert!(w[1].0 - w[0].1 <= INTERRUPT_TIMEOUT_SECS * 1000);
                }
            }
        }
    }
}
