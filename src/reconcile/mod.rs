//! `live2vod reconcile`: asks VOD what it did and writes what no callback brought to the
//! callbacks topic as deterministic `live2vod.*` observation events (`domain::observation`),
//! so callbacks VOD dropped, and failures VOD never reported, still reach the fold.
//!
//! - `config`: flags and [`ReconcileConfig`].
//! - `api`: the rate-limited, counted VOD client.
//! - `answers`: VOD's answers in Alibaba's documented shapes.
//! - `sweep`: ListLiveRecordVideo over a window (paging, the 5,000 cap).
//! - `probe`: GetMezzanineInfo / GetVideoInfo / GetPlayInfo of stuck videos.
//! - `positions`: ownership (a consumer group) and sweep positions, in Kafka.
//!
//! One cycle: read the aggregates topic (what the fold knows), sweep the owned units, probe
//! the owned stuck videos, write the observations (acknowledged) and then the positions.
pub mod answers;
pub mod api;
pub mod config;
pub mod positions;
pub mod probe;
pub mod sweep;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use tokio::sync::watch;

pub use config::{Args, ReconcileConfig};

use crate::domain::lattice::{OriginKind, StreamKey};
use crate::domain::observation;
use crate::domain::vocab::Fact;
use crate::domain::{decode_snapshot, Aggregate};
use crate::http::Health;
use crate::kafka::read::Tail;
use crate::metrics as m;
use crate::vod::client::VodClient;
use api::Api;
use positions::{partition_of, Positions};
use probe::Probed;
use sweep::Unit;

/// The positions topic of a prefix.
pub fn positions_topic(prefix: &str) -> String {
    crate::kafka::Topics::with_prefix(prefix).reconcile_positions
}

/// What the fold knows about one video, as far as reconcile cares.
#[derive(Debug, Clone, Default)]
pub struct VideoFacts {
    pub stream: Option<StreamKey>,
    pub composed: bool,
    pub origin_ms: i64,
    pub has_source: bool,
    pub has_transcode_outcome: bool,
    /// A transcode is under way (a submission succeeded, or VOD reported renditions).
    pub transcode_expected: bool,
    /// VOD transcoded it with no submission or request of live2vod's: the recording
    /// configuration of its stream transcodes (see [`Known::vod_transcodes`]).
    pub vod_transcoded: bool,
    /// A SnapshotComplete (or its observation) gave the video a cover.
    pub has_cover: bool,
    pub last_event_ms: i64,
}

/// What the aggregates topic says.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub streams: BTreeSet<StreamKey>,
    pub videos: HashMap<String, VideoFacts>,
}

impl Known {
    /// Builds the view from the latest snapshot of each aggregate key.
    pub fn from_snapshots<'a>(snapshots: impl IntoIterator<Item = &'a [u8]>) -> Known {
        let mut k = Known::default();
        for bytes in snapshots {
            k.apply_snapshot(bytes);
        }
        k
    }

    /// Folds in one aggregate snapshot, the latest of its key (it replaces what the key said
    /// before). Snapshots that do not decode are skipped: the fold wrote them, the api shows
    /// the same, and reconcile must not stop on one.
    pub fn apply_snapshot(&mut self, bytes: &[u8]) {
        match decode_snapshot(bytes) {
            Ok(Aggregate::Stream(s)) => {
                self.streams.insert(s.key.clone());
            }
            Ok(Aggregate::Video(v)) => {
                let origin = v.origin.as_ref();
                let submitted = v
                    .submissions
                    .iter()
                    .any(|s| s.reg.value.status.is_success());
                let transcoded = !v.renditions.is_empty() || !v.transcodes.is_empty();
                let facts = VideoFacts {
                    stream: origin.map(|o| o.value.stream.clone()),
                    composed: origin.is_some_and(|o| o.value.kind == OriginKind::Composed),
                    origin_ms: origin.map_or(0, |o| o.at_ms),
                    has_source: v.source.is_some(),
                    has_transcode_outcome: !v.transcodes.is_empty(),
                    transcode_expected: !v.renditions.is_empty() || submitted,
                    vod_transcoded: transcoded && !submitted && v.requests.is_empty(),
                    has_cover: v.cover.is_some(),
                    last_event_ms: v.last_event_ms.unwrap_or(0),
                };
                if let Some(s) = &facts.stream {
                    self.streams.insert(s.clone());
                }
                self.videos.insert(v.id.to_string(), facts);
            }
            Err(_) => {}
        }
    }

    /// The (stream, composed) classes whose videos VOD transcodes on its own: a video of that
    /// class was transcoded with no submission or request of live2vod's (flow 1's segments,
    /// flow 3a's composed videos). A transcode is expected of every video of such a class, so
    /// one all of whose transcode callbacks VOD lost does not look like one never transcoded.
    pub fn vod_transcodes(&self) -> BTreeSet<(&StreamKey, bool)> {
        self.videos
            .values()
            .filter(|v| v.vod_transcoded)
            .filter_map(|v| Some((v.stream.as_ref()?, v.composed)))
            .collect()
    }

    fn has_origin(&self, video_id: &str) -> bool {
        self.videos
            .get(video_id)
            .is_some_and(|v| v.stream.is_some())
    }
}

/// The sweep units: the policy's apps, and every known stream outside them.
pub fn units(policy_apps: &[String], known: &Known) -> Vec<Unit> {
    let mut out: BTreeSet<Unit> = BTreeSet::new();
    for a in policy_apps {
        if let Some((d, app)) = a.split_once('/') {
            out.insert(Unit {
                domain: d.into(),
                app: app.into(),
                stream: None,
            });
        }
    }
    for s in &known.streams {
        let covered = policy_apps
            .iter()
            .any(|a| a.split_once('/') == Some((&*s.domain, &*s.app)));
        if !covered {
            out.insert(Unit {
                domain: s.domain.to_string(),
                app: s.app.to_string(),
                stream: Some(s.stream.to_string()),
            });
        }
    }
    out.into_iter().collect()
}

/// Counters of one instance, for tests and the bench.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleStats {
    pub units_swept: u64,
    pub sweep_errors: u64,
    pub recordings_seen: u64,
    pub probes: u64,
    /// Observation events written: for facts the aggregates lacked when reconcile last read
    /// them (whether they were still missing when the fold got them, the fold counts in
    /// `live2vod_reconcile_recovered_total`).
    pub events_written: u64,
}

#[derive(Debug, Clone, Copy)]
struct ProbeSlot {
    due_ms: i64,
    backoff_ms: i64,
    tries: u32,
    done: bool,
}

/// Tries of a cover probe before it gives up (a template group without a snapshot step never
/// makes a cover, and GetVideoInfo cannot tell that apart from one still being taken).
const COVER_TRIES: u32 = 5;

/// What one probe of a video asks VOD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// A composed video without FileUploadComplete past the compose deadline.
    Source,
    /// A transcode under way without TranscodeComplete past `--probe-after-secs`.
    Transcode,
    /// A transcode's outcome is known but no SnapshotComplete came, past `--probe-after-secs`.
    Cover,
}

impl ProbeKind {
    /// The fact the probe looks for: its name labels the metrics and keys the probe's slot.
    fn fact(self) -> Fact {
        match self {
            ProbeKind::Source => Fact::Source,
            ProbeKind::Transcode => Fact::Transcode,
            ProbeKind::Cover => Fact::Cover,
        }
    }

    fn name(self) -> &'static str {
        self.fact().name()
    }
}

/// One reconcile instance.
pub struct Reconciler {
    cfg: ReconcileConfig,
    api: Api,
    producer: FutureProducer,
    positions: Positions,
    callbacks_topic: String,
    aggregates_topic: String,
    probes: HashMap<String, ProbeSlot>,
    /// Recordings written by this process that the aggregates may not show yet: not written
    /// again.
    written: std::collections::HashSet<String>,
    /// What the aggregates topic says, kept up to date by `tail` (None until the first cycle,
    /// or after a read failed: then the next cycle reads the topic from the start again).
    /// Shared with the cycle that reads it (an `Arc`, so a refresh after the cycle dropped its
    /// handle updates it in place instead of copying every video's facts).
    view: Option<(Tail, std::sync::Arc<Known>)>,
}

use crate::clock::now_ms;

impl Reconciler {
    /// Connects to Kafka (creating the positions topic when missing) and VOD.
    pub async fn new(cfg: ReconcileConfig) -> anyhow::Result<Reconciler> {
        let topics = cfg.kafka.topics();
        let ptopic = positions_topic(&cfg.kafka.topic_prefix);
        if let Err(e) =
            crate::kafka::admin::ensure_topic_like(&cfg.kafka, &topics.callbacks, &ptopic, true)
                .await
        {
            tracing::warn!(topic = %ptopic, error = %e, "reconcile: cannot create the positions topic (it must exist)");
        }
        let positions = Positions::start(&cfg.kafka, &ptopic, &cfg.group_id)
            .map_err(|e| anyhow::anyhow!("positions topic {ptopic}: {e}"))?;
        let client = VodClient::new(cfg.vod.clone())?;
        let producer = crate::kafka::producer::idempotent_producer(&cfg.kafka)?;
        Ok(Reconciler {
            api: Api::new(client, cfg.max_qps),
            producer,
            positions,
            callbacks_topic: topics.callbacks,
            aggregates_topic: topics.aggregates,
            probes: HashMap::new(),
            written: Default::default(),
            view: None,
            cfg,
        })
    }

    /// VOD calls made so far.
    pub fn api_calls(&self) -> u64 {
        self.api.calls()
    }

    /// Partitions owned and fully read (empty until the group assigned some).
    pub fn owned(&self) -> Vec<i32> {
        self.positions.owned()
    }

    /// Brings what the fold knows up to date: the aggregates topic to its high watermark,
    /// read from the start once and then only what was written since the last cycle (reading
    /// it all every cycle made the broker's load grow with the topic's history). Returns the
    /// view, with how many records this call read.
    pub async fn refresh_known(&mut self) -> anyhow::Result<(std::sync::Arc<Known>, u64)> {
        let kafka = self.cfg.kafka.clone();
        let topic = self.aggregates_topic.clone();
        let view = self.view.take();
        let (tail, known, n) = tokio::task::spawn_blocking(move || {
            let counts = crate::kafka::admin::partition_counts(&kafka, Duration::from_secs(10))?;
            let parts = counts.get(&topic).copied().unwrap_or(0);
            let (mut tail, mut known) = match view {
                // Partitions added: read everything again with the new count.
                Some((t, k)) if t.partitions() == parts => (t, k),
                _ => {
                    let parts: Vec<i32> = (0..parts as i32).collect();
                    (Tail::open(&kafka, &topic, &parts)?, Default::default())
                }
            };
            let view = std::sync::Arc::make_mut(&mut known);
            let n = tail.catch_up(|r| match (r.key, r.value) {
                (_, Some(v)) => view.apply_snapshot(&v),
                (Some(k), None) => {
                    // A tombstone: the key's aggregate is gone.
                    if let Ok(k) = std::str::from_utf8(&k) {
                        view.videos.remove(k);
                    }
                }
                (None, None) => {}
            })?;
            Ok::<_, anyhow::Error>((tail, known, n))
        })
        .await??;
        self.view = Some((tail, known.clone()));
        Ok((known, n))
    }

    async fn write(&self, what: &'static str, video_id: &str, body: &[u8]) -> anyhow::Result<()> {
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: crate::domain::vocab::header::EVENT_TYPE,
            value: Some(what),
        });
        let mut round = 0u32;
        loop {
            match crate::kafka::producer::produce_acked(
                &self.producer,
                &self.callbacks_topic,
                video_id,
                body,
                headers.clone(),
                Duration::from_secs(30),
            )
            .await
            {
                Ok(_) => {
                    metrics::counter!(m::RECONCILE_OBSERVATIONS, "what" => what).increment(1);
                    return Ok(());
                }
                Err(e) if round < 5 => {
                    tracing::warn!(error = %e, "reconcile: observation not acknowledged, retrying");
                    tokio::time::sleep(Duration::from_millis(200 << round)).await;
                    round += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One cycle over the partitions in `owned`.
    pub async fn cycle(&mut self, owned: &[i32]) -> anyhow::Result<CycleStats> {
        let mut st = CycleStats::default();
        let (known, _) = self.refresh_known().await?;
        let n = self.positions.partitions();
        let now = now_ms();
        let to = now - self.cfg.settle.as_millis() as i64;
        for unit in units(&self.cfg.policy.reconcile_apps, &known) {
            let key = unit.key();
            if !owned.contains(&partition_of(&key, n)) {
                continue;
            }
            let from = match self.positions.get(&key) {
                Some(p) => p - self.cfg.overlap.as_millis() as i64,
                None => now - self.cfg.initial_lookback.as_millis() as i64,
            };
            if from >= to {
                continue;
            }
            match sweep::sweep(&self.api, &unit, from, to).await {
                Ok(recs) => {
                    st.units_swept += 1;
                    metrics::counter!(m::RECONCILE_SWEEPS, "kind" => unit.kind(), "outcome" => "ok")
                        .increment(1);
                    // ListLiveRecordVideo lists segments and composed videos alike.
                    let composed = observation::composed_ids(&recs);
                    for r in recs {
                        st.recordings_seen += 1;
                        // What the fold already knows needs no event (it would fold as a
                        // duplicate anyway); the rest is a callback VOD lost.
                        if known.has_origin(&r.video_id) {
                            self.written.remove(&r.video_id);
                            continue;
                        }
                        if self.written.contains(&r.video_id) {
                            continue;
                        }
                        let (what, body) = if composed.contains(&r.video_id) {
                            (Fact::Compose.name(), observation::compose_observed(&r))
                        } else {
                            (Fact::Recording.name(), observation::recording_observed(&r))
                        };
                        self.write(what, &r.video_id, &body).await?;
                        st.events_written += 1;
                        self.written.insert(r.video_id.clone());
                    }
                    self.positions.put(&key, to).await?;
                }
                Err(e) => {
                    st.sweep_errors += 1;
                    metrics::counter!(m::RECONCILE_SWEEPS, "kind" => unit.kind(), "outcome" => "error")
                        .increment(1);
                    tracing::warn!(unit = %key, error = %e, "reconcile: sweep failed; its window is retried next cycle");
                }
            }
        }
        self.probe_stuck(&known, owned, n, &mut st).await?;
        Ok(st)
    }

    async fn probe_stuck(
        &mut self,
        known: &Known,
        owned: &[i32],
        n: i32,
        st: &mut CycleStats,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        let mut ids: Vec<&String> = known.videos.keys().collect();
        ids.sort();
        let probe_after = self.cfg.probe_after.as_millis() as i64;
        let vod_transcodes = known.vod_transcodes();
        for id in ids {
            let v = &known.videos[id];
            let Some(stream) = &v.stream else { continue };
            let transcode_expected =
                v.transcode_expected || vod_transcodes.contains(&(stream, v.composed));
            if !owned.contains(&partition_of(&stream.path(), n)) {
                continue;
            }
            let compose_secs = self.cfg.policy.for_stream(stream).compose_deadline_secs as i64;
            // Each kind keeps its own schedule: a finished source probe must not stop the
            // transcode probe that follows it, nor that one the cover probe.
            let due = [
                (
                    ProbeKind::Source,
                    (v.composed && !v.has_source).then(|| v.origin_ms + compose_secs * 1000),
                ),
                (
                    ProbeKind::Transcode,
                    // Not while a composed video still waits for its source (that is the
                    // source probe's case).
                    (v.has_source_or_segment() && transcode_expected && !v.has_transcode_outcome)
                        .then_some(v.last_event_ms + probe_after),
                ),
                (
                    ProbeKind::Cover,
                    (v.has_transcode_outcome && !v.has_cover)
                        .then_some(v.last_event_ms + probe_after),
                ),
            ];
            for (kind, deadline) in due {
                let slot_key = format!("{}:{id}", kind.name());
                let Some(deadline_ms) = deadline else {
                    self.probes.remove(&slot_key);
                    continue;
                };
                let slot = self.probes.entry(slot_key.clone()).or_insert(ProbeSlot {
                    due_ms: deadline_ms,
                    backoff_ms: 1_000,
                    tries: 0,
                    done: false,
                });
                if slot.done || now < slot.due_ms {
                    continue;
                }
                st.probes += 1;
                let terminal = self.probe(kind, id, st).await?;
                if let Some(slot) = self.probes.get_mut(&slot_key) {
                    slot.tries += 1;
                    if terminal || (kind == ProbeKind::Cover && slot.tries >= COVER_TRIES) {
                        slot.done = true;
                    } else {
                        slot.due_ms = now + slot.backoff_ms;
                        slot.backoff_ms = (slot.backoff_ms * 2)
                            .min(self.cfg.probe_max_backoff.as_millis() as i64);
                    }
                }
            }
        }
        Ok(())
    }

    /// One probe; true when VOD's answer was terminal (written, or nothing to recover).
    async fn probe(
        &mut self,
        kind: ProbeKind,
        id: &str,
        st: &mut CycleStats,
    ) -> anyhow::Result<bool> {
        let body = match kind {
            ProbeKind::Source => match probe::source(&self.api, id).await {
                Probed::Terminal(s) => observation::source_observed(&s),
                Probed::Nothing => return Ok(true),
                Probed::Pending => return Ok(false),
            },
            ProbeKind::Transcode => match probe::transcode(&self.api, id).await {
                Probed::Terminal(t) => observation::transcode_observed(&t),
                Probed::Nothing => return Ok(true),
                Probed::Pending => return Ok(false),
            },
            ProbeKind::Cover => match probe::cover(&self.api, id).await {
                Probed::Terminal(c) => observation::snapshot_observed(&c),
                Probed::Nothing => return Ok(true),
                Probed::Pending => return Ok(false),
            },
        };
        self.write(kind.name(), id, &body).await?;
        st.events_written += 1;
        Ok(true)
    }
}

impl VideoFacts {
    fn has_source_or_segment(&self) -> bool {
        self.has_source || (self.stream.is_some() && !self.composed)
    }
}

/// A running reconcile instance (the shared role handle).
pub type ReconcileHandle = crate::role::RoleHandle<()>;

/// Starts the cycle loop; `health` turns ready once the instance owns partitions.
pub async fn start(cfg: ReconcileConfig, health: Health) -> anyhow::Result<ReconcileHandle> {
    let mut r = Reconciler::new(cfg).await?;
    let (stop, mut stop_rx) = watch::channel(false);
    let ready = health.clone();
    Ok(crate::role::RoleHandle::spawn(
        "reconcile",
        health,
        stop,
        async move {
            loop {
                if *stop_rx.borrow() {
                    return Ok(());
                }
                let owned = r.owned();
                ready.set_ready(true);
                let started = tokio::time::Instant::now();
                if !owned.is_empty() {
                    let cycle = r.cycle(&owned);
                    tokio::select! {
                        res = cycle => match res {
                            Ok(st) => tracing::info!(?st, "reconcile: cycle done"),
                            Err(e) => tracing::warn!(error = %e, "reconcile: cycle failed; retried next interval"),
                        },
                        _ = stop_rx.changed() => return Ok(()),
                    }
                }
                let wait = if owned.is_empty() {
                    Duration::from_millis(500)
                } else {
                    r.cfg.sweep_interval.saturating_sub(started.elapsed())
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop_rx.changed() => return Ok(()),
                }
            }
        },
    ))
}

/// `live2vod reconcile`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = ReconcileConfig::from_args(&args)?;
    let health = Health::default();
    crate::role::run_with_ops(args.metrics_listen, health.clone(), start(cfg, health))
        .await
        .map(drop)
}
