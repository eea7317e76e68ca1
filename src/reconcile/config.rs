//! What the user sets: `live2vod reconcile` flags (each with its `LIVE2VOD_*` env var) and the
//! [`ReconcileConfig`] that [`super::start`] takes.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::domain::Policy;
use crate::kafka::KafkaArgs;
use crate::vod::client::VodConfig;

const LONG_ABOUT: &str = "\
Ask VOD what it did, and write what no callback brought as live2vod.* observation events.

VOD sends each callback at most 3 times, about 1 s apart, then drops it; a failed upload
sends none at all. Reconcile closes that gap:
  sweeps   every stream the aggregates know, and every domain/app the policy lists under
           [reconcile] apps, with ListLiveRecordVideo over record time from the last
           sweep (minus --overlap-secs) to now (minus --settle-secs); SortBy=CreationTime:Asc,
           PageSize=100, paging to the end, windows halved while a query reaches VOD's
           5,000-result cap -> live2vod.RecordingObserved, and live2vod.ComposeObserved for
           a composed video (the entry whose record window holds its session's segments)
  probes   videos stuck past a deadline (composed without FileUploadComplete past the
           policy's compose deadline; transcoding without TranscodeComplete past
           --probe-after-secs; transcoded without SnapshotComplete past --probe-after-secs)
           with GetMezzanineInfo / GetVideoInfo / GetPlayInfo / GetTranscodeSummary (which
           renditions failed: GetPlayInfo lists only what plays), backing off up to
           --probe-max-backoff-secs until VOD's state is terminal -> live2vod.SourceObserved,
           live2vod.TranscodeObserved, live2vod.SnapshotObserved (GetVideoInfo's CoverURL)
Observation bodies are built from VOD's answer only (its times, never the sweep's), so the
same answer gives the same bytes and folds as a duplicate; they carry the source's time,
which never beats the callback reporting the same fact.

Every call waits for a rate limiter (--max-qps, evenly spaced, no burst) and is retried on
throttling like the worker's calls. Instances form one consumer group on
<prefix>reconcile-positions: the partitions a member owns are the streams it sweeps, so two
instances never do the same work; positions are kept in that compacted topic, and a restart
goes on from them.

Every flag also reads its LIVE2VOD_* environment variable; pass the AccessKey secret through
LIVE2VOD_ACCESS_KEY_SECRET rather than the command line.";

/// Options of `live2vod reconcile`.
#[derive(ClapArgs, Debug, Clone)]
#[command(after_long_help = LONG_ABOUT)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// How VOD is reached (the worker's flags: a RAM user allowed ListLiveRecordVideo,
    /// GetVideoInfo, GetMezzanineInfo, GetPlayInfo and GetTranscodeSummary is enough; reconcile
    /// only reads).
    #[command(flatten)]
    pub vod: crate::worker::VodArgs,

    /// The fold's policy file: `[reconcile] apps` and the compose deadlines.
    #[command(flatten)]
    pub policy: crate::fold::PolicyArgs,

    /// Seconds between the starts of two sweep cycles.
    #[arg(long, env = "LIVE2VOD_SWEEP_INTERVAL_SECS", default_value_t = DEFAULT_SWEEP_INTERVAL_SECS)]
    pub sweep_interval_secs: u64,

    /// VOD calls per second of this instance, spread evenly (VOD's per-account limits are far
    /// above; leave room for the worker).
    #[arg(long, env = "LIVE2VOD_MAX_QPS", default_value_t = DEFAULT_MAX_QPS)]
    pub max_qps: f64,

    /// How far back a sweep starts before where the last one ended, seconds. ListLiveRecordVideo
    /// selects on a recording's *start* but lists it only once it ended, so this must exceed
    /// the longest time from a recording's start to its listing: the record cycle (at most
    /// 21,600 s) for segments, the whole session plus the interrupt timeout for composed
    /// videos. The default (a day) costs one page per stream and sweep while a stream records
    /// fewer than 100 videos a day (15-minute cycles make 96).
    #[arg(long, env = "LIVE2VOD_OVERLAP_SECS", default_value_t = DEFAULT_OVERLAP_SECS)]
    pub overlap_secs: u64,

    /// How long before now a sweep ends, seconds (the callback's own chance to arrive).
    #[arg(long, env = "LIVE2VOD_SETTLE_SECS", default_value_t = DEFAULT_SETTLE_SECS)]
    pub settle_secs: u64,

    /// Where the first sweep of a unit starts, seconds before now.
    #[arg(long, env = "LIVE2VOD_INITIAL_LOOKBACK_SECS", default_value_t = DEFAULT_LOOKBACK_SECS)]
    pub initial_lookback_secs: u64,

    /// A transcode with no outcome this long after the video's last event is probed, seconds.
    #[arg(long, env = "LIVE2VOD_PROBE_AFTER_SECS", default_value_t = DEFAULT_PROBE_AFTER_SECS)]
    pub probe_after_secs: u64,

    /// Cap of the doubling pause between probes of one video, seconds.
    #[arg(long, env = "LIVE2VOD_PROBE_MAX_BACKOFF_SECS", default_value_t = DEFAULT_PROBE_MAX_BACKOFF_SECS)]
    pub probe_max_backoff_secs: u64,

    /// Consumer group of the reconcile instances.
    #[arg(long, env = "LIVE2VOD_RECONCILE_GROUP_ID", default_value = DEFAULT_GROUP)]
    pub group_id: String,

    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", default_value = "0.0.0.0:9466")]
    pub metrics_listen: SocketAddr,
}

pub const DEFAULT_SWEEP_INTERVAL_SECS: u64 = 300;
pub const DEFAULT_MAX_QPS: f64 = 5.0;
pub const DEFAULT_OVERLAP_SECS: u64 = 86_400;
pub const DEFAULT_SETTLE_SECS: u64 = 60;
pub const DEFAULT_LOOKBACK_SECS: u64 = 86_400;
pub const DEFAULT_PROBE_AFTER_SECS: u64 = 900;
pub const DEFAULT_PROBE_MAX_BACKOFF_SECS: u64 = 3_600;
pub const DEFAULT_GROUP: &str = "live2vod-reconcile";

/// Everything [`super::start`] needs.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub kafka: KafkaArgs,
    pub vod: VodConfig,
    pub policy: Policy,
    pub sweep_interval: Duration,
    pub max_qps: f64,
    pub overlap: Duration,
    pub settle: Duration,
    pub initial_lookback: Duration,
    pub probe_after: Duration,
    pub probe_max_backoff: Duration,
    pub group_id: String,
}

impl ReconcileConfig {
    /// A config with the defaults of the CLI.
    pub fn new(kafka: KafkaArgs, vod: VodConfig, policy: Policy) -> Self {
        ReconcileConfig {
            kafka,
            vod,
            policy,
            sweep_interval: Duration::from_secs(DEFAULT_SWEEP_INTERVAL_SECS),
            max_qps: DEFAULT_MAX_QPS,
            overlap: Duration::from_secs(DEFAULT_OVERLAP_SECS),
            settle: Duration::from_secs(DEFAULT_SETTLE_SECS),
            initial_lookback: Duration::from_secs(DEFAULT_LOOKBACK_SECS),
            probe_after: Duration::from_secs(DEFAULT_PROBE_AFTER_SECS),
            probe_max_backoff: Duration::from_secs(DEFAULT_PROBE_MAX_BACKOFF_SECS),
            group_id: DEFAULT_GROUP.into(),
        }
    }

    /// From the command line (reads the policy file).
    pub fn from_args(a: &Args) -> anyhow::Result<Self> {
        if !(a.max_qps.is_finite() && a.max_qps > 0.0) {
            anyhow::bail!("--max-qps must be a positive number");
        }
        let policy = a.policy.load()?;
        let vod = a.vod.config();
        Ok(ReconcileConfig {
            sweep_interval: Duration::from_secs(a.sweep_interval_secs.max(1)),
            max_qps: a.max_qps,
            overlap: Duration::from_secs(a.overlap_secs),
            settle: Duration::from_secs(a.settle_secs),
            initial_lookback: Duration::from_secs(a.initial_lookback_secs),
            probe_after: Duration::from_secs(a.probe_after_secs),
            probe_max_backoff: Duration::from_secs(a.probe_max_backoff_secs.max(1)),
            group_id: a.group_id.clone(),
            ..ReconcileConfig::new(a.kafka.clone(), vod, policy)
        })
    }
}
