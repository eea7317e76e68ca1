//! The `sim` role (see DESIGN.md): Alibaba Live + VOD for tests and the demo.
//!
//! - [`scenario`]: live streams through the four flows of the seed document, from a seed (pure).
//! - [`truth`]: the final api view the system must reach (pure).
//! - [`delivery`]: posts the callbacks to the relay like VOD (signed, unordered, duplicated,
//!   3 attempts then dropped).
//! - [`openapi`]: the VOD OpenAPI the worker and reconcile call (signature v1, SessionId
//!   de-duplication, throttling), which plays submitted transcodes back as callbacks;
//!   [`listing`]: its ListLiveRecordVideo.
//! - [`operator`]: submits flow 2's manual transcodes through live2vod's api.
//! - [`verify`]: polls the api until it matches the truth.
//!
//! Library use (the demo, tests):
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use live2vod::sim::{SimConfig, Simulator};
//! let mut cfg = SimConfig::new("http://127.0.0.1:8080/callbacks/vod", "http://relay/callbacks/vod", "key");
//! cfg.api_url = Some("http://127.0.0.1:8081".into());
//! let sim = Simulator::start(cfg).await?;          // OpenAPI on sim.vod_endpoint()
//! sim.deliver_all().await;                           // the scenario's callbacks
//! let report = sim.verify("http://127.0.0.1:8081", std::time::Duration::from_secs(120)).await;
//! println!("{report}\n{}", sim.stats());
//! # Ok(()) }
//! ```
pub mod delivery;
pub mod listing;
pub mod openapi;
pub mod operator;
pub mod scenario;
pub mod time;
pub mod truth;
pub mod verify;
pub mod vod_model;

use crate::domain::vocab::Fact;
use crate::vod::client::Secret;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args as ClapArgs;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub use delivery::{LostEvent, Progress};
pub use operator::OperatorStats;
pub use scenario::{Flow, Scenario, ScenarioConfig, ScenarioEvent};
pub use truth::Truth;
pub use verify::{verify, JobCounts, VerifyReport};

use delivery::{Deliverer, DeliveryConfig, DeliveryHooks};
use operator::Operator;
use scenario::Effect;
use vod_model::VodModel;

/// The fold policy matching the scenario's naming conventions: `store-*` segments are
/// transcoded only on an operator's request, `compose-only-*` composed videos are transcoded
/// by live2vod with `tg-compose-later`, and live2vod submits nothing else (VOD transcodes
/// `auto-*` segments and `compose-auto-*` composed videos itself).
pub fn policy_toml() -> String {
    format!(
        r#"# Policy for the simulator's streams (`live2vod sim --print-policy`).
[defaults]
segments = {{ action = "none" }}
composed = {{ action = "none" }}
compose_deadline_secs = 600

[[rules]]
streams = "{d}/{a}/store-*"
segments = {{ action = "manual" }}
composed = {{ action = "none" }}

[[rules]]
streams = "{d}/{a}/compose-only-*"
segments = {{ action = "none" }}
composed = {{ action = "transcode", template_group = "{g}" }}

# The reconcile role sweeps this domain/app with ListLiveRecordVideo, so a stream whose very
# first callback VOD never delivered is found too.
[reconcile]
apps = ["{d}/{a}"]
"#,
        d = scenario::DOMAIN,
        a = scenario::APP,
        g = scenario::TG_COMPOSE_LATER
    )
}

/// Everything the simulator is started with.
#[derive(Clone)]
pub struct SimConfig {
    /// Where callbacks are posted (the relay's `POST /callbacks/vod`).
    pub relay_url: String,
    /// The callback URL as configured in VOD (signed over; may differ from `relay_url`
    /// behind a proxy).
    pub callback_url: String,
    pub auth_key: String,
    /// OpenAPI listen address (port 0: any free port).
    pub listen: SocketAddr,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub sessions: usize,
    pub seed: u64,
    /// Base time of the scenario in unix ms; `None`: now.
    pub base_time_ms: Option<i64>,
    /// live2vod's api, for the operator of flow 2; `None`: no operator.
    pub api_url: Option<String>,
    /// Fraction of callbacks delivered twice.
    pub duplicate_rate: f64,
    /// Fraction of OpenAPI calls answered `Throttling.User`.
    pub throttle_rate: f64,
    /// Chance that one rendition fails.
    pub transcode_failure_rate: f64,
    /// Chance that an auto-compose fails (besides the > 40 segment rule).
    pub compose_failure_rate: f64,
    /// Scenario callbacks are delivered by event time plus a random lag up to this.
    pub shuffle_window_ms: i64,
    /// Transcode callbacks played at runtime get a random lag up to this.
    pub runtime_shuffle_ms: i64,
    /// Between SubmitTranscodeJobs and its callbacks.
    pub transcode_delay: Duration,
    /// VOD's delivery: pause between attempts, timeout of one attempt, attempts, in flight.
    pub retry_interval: Duration,
    pub attempt_timeout: Duration,
    pub attempts: u32,
    pub concurrency: usize,
    /// Scenario callbacks started per second (`None`: as fast as `concurrency` allows). A
    /// paced run keeps load on the pipeline for a while, e.g. while the crash tests kill it.
    pub rate: Option<f64>,
    /// OpenAPI `Timestamp` tolerance.
    pub timestamp_window_secs: i64,
    /// Fraction of callbacks VOD never posts (chosen per event by the seed; both copies of a
    /// duplicated event share the fate). Counted apart from the "lost after 3 attempts" ones.
    pub drop_rate: f64,
    /// Fraction of failed compose uploads that send no FileUploadComplete at all (VOD's
    /// state says UploadFail all the same).
    pub silent_failure_rate: f64,
    /// Event types VOD never posts (every callback of these types, scenario or job).
    pub drop_types: Vec<String>,
    /// Results one ListLiveRecordVideo filter can reach ([`listing::MAX_RESULTS`] like VOD).
    pub list_cap: usize,
}

impl std::fmt::Debug for SimConfig {
    // The callback auth key and the AccessKey secret never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("relay_url", &self.relay_url)
            .field("callback_url", &self.callback_url)
            .field("auth_key", &"<redacted>")
            .field("listen", &self.listen)
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("sessions", &self.sessions)
            .field("seed", &self.seed)
            .field("api_url", &self.api_url)
            .field("duplicate_rate", &self.duplicate_rate)
            .field("throttle_rate", &self.throttle_rate)
            .field("drop_rate", &self.drop_rate)
            .field("silent_failure_rate", &self.silent_failure_rate)
            .finish_non_exhaustive()
    }
}

impl SimConfig {
    /// Laptop defaults: OpenAPI on a free local port, 8 sessions, seed 1, 10 % duplicates,
    /// no throttling, nothing dropped or silent.
    pub fn new(relay_url: &str, callback_url: &str, auth_key: &str) -> Self {
        SimConfig {
            relay_url: relay_url.to_string(),
            callback_url: callback_url.to_string(),
            auth_key: auth_key.to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key_id: "sim-access-key-id".to_string(),
            access_key_secret: "sim-access-key-secret".to_string(),
            sessions: 8,
            seed: 1,
            base_time_ms: None,
            api_url: None,
            duplicate_rate: 0.1,
            throttle_rate: 0.0,
            transcode_failure_rate: 0.1,
            compose_failure_rate: 0.15,
            shuffle_window_ms: 10 * 60_000,
            runtime_shuffle_ms: 1500,
            transcode_delay: Duration::from_millis(500),
            retry_interval: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(5),
            attempts: 3,
            concurrency: 16,
            rate: None,
            timestamp_window_secs: 900,
            drop_rate: 0.0,
            silent_failure_rate: 0.0,
            drop_types: Vec::new(),
            list_cap: listing::MAX_RESULTS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Delivery(#[from] delivery::DeliveryError),
    #[error("cannot build the operator's HTTP client: {0}")]
    Operator(reqwest::Error),
}

/// A started transcode task (kept per SessionId).
#[derive(Debug, Clone)]
pub(crate) struct TaskRecord {
    pub task_id: String,
    pub job_ids: Vec<String>,
}

/// State shared by the OpenAPI handlers, delivery and the handle.
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub scenario: Scenario,
    pub model: Arc<Mutex<VodModel>>,
    pub deliverer: Arc<Deliverer>,
    pub rng: Mutex<StdRng>,
    pub next_event_id: AtomicU64,
    pub calls: Mutex<BTreeMap<(String, String), u64>>,
    pub nonces: Mutex<HashMap<String, i64>>,
    pub sessions: Mutex<HashMap<String, TaskRecord>>,
    pub session_dedup_hits: AtomicU64,
    acked: Arc<Mutex<Acked>>,
    operator: Option<Arc<Operator>>,
}

/// What the relay acknowledged: events (any copy) and the video facts they brought.
#[derive(Debug, Default)]
struct Acked {
    events: HashSet<u64>,
    facts: HashSet<(String, Fact)>,
}

/// Delivery feeds VOD's state (on emit), the acknowledged set and the operator (on 200).
struct Hooks {
    model: Arc<Mutex<VodModel>>,
    acked: Arc<Mutex<Acked>>,
    operator: Option<Arc<Operator>>,
}

impl DeliveryHooks for Hooks {
    fn emitted(&self, ev: &ScenarioEvent) {
        if let Ok(mut m) = self.model.lock() {
            m.apply(ev);
        }
    }

    fn acknowledged(&self, ev: &ScenarioEvent, _duplicate: bool) {
        if let Ok(mut a) = self.acked.lock() {
            a.events.insert(ev.id);
            if let Some(f) = Fact::of_callback(ev.event_type) {
                a.facts.insert((ev.video_id.clone(), f));
            }
        }
        if let (Some(op), Flow::StoreOnly, Effect::Recorded { .. }) =
            (&self.operator, ev.flow, &ev.effect)
        {
            op.segment_recorded(&ev.video_id);
        }
    }

    /// The operator watches VOD's console, not the callbacks: a store-only recording whose
    /// callback VOD never posted is still asked for (the api answers 404 until live2vod has
    /// recovered the segment, and the operator retries).
    fn not_posted(&self, ev: &ScenarioEvent, _fate: delivery::Fate) {
        if let (Some(op), Flow::StoreOnly, Effect::Recorded { .. }) =
            (&self.operator, ev.flow, &ev.effect)
        {
            op.segment_recorded(&ev.video_id);
        }
    }
}

/// What the simulator observed (for reports and assertions).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// OpenAPI calls per (Action, Code); `OK` for successes.
    pub calls: BTreeMap<(String, String), u64>,
    /// Transcode jobs started per (VideoId, template group), by VOD itself or on submission.
    pub jobs_started: JobCounts,
    /// SubmitTranscodeJobs answered from the SessionId memory (no new job).
    pub session_dedup_hits: u64,
    pub delivery: Progress,
    /// Deliveries VOD gave up on (a copy whose event was acknowledged otherwise is still listed).
    pub lost_by_vod: Vec<LostEvent>,
    /// Deliveries VOD never posted (`drop_rate`), one per copy.
    pub dropped_by_vod: Vec<LostEvent>,
    /// Failures VOD sent no callback for (`silent_failure_rate`), one per copy.
    pub never_sent: Vec<LostEvent>,
    /// The events none of whose copies reached the relay (lost after 3 attempts, dropped or
    /// never sent), once each: what live2vod can only learn from VOD's OpenAPI.
    pub undelivered: Vec<LostEvent>,
    pub operator: OperatorStats,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.delivery)?;
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|((a, c), n)| format!("{a}/{c}={n}"))
            .collect();
        writeln!(f, "openapi calls: {}", calls.join(" "))?;
        let dup = self.jobs_started.values().filter(|n| **n > 1).count();
        writeln!(
            f,
            "transcode jobs: {} started for {} (video, group) pairs, {} pairs with more than one, {} SessionId re-submissions absorbed",
            self.jobs_started.values().sum::<u32>(),
            self.jobs_started.len(),
            dup,
            self.session_dedup_hits
        )?;
        write!(
            f,
            "operator: {} requested, {} accepted, {} failed ({} attempts); lost by VOD: {}",
            self.operator.requested,
            self.operator.accepted,
            self.operator.failed,
            self.operator.attempts,
            self.lost_by_vod.len()
        )?;
        if !self.dropped_by_vod.is_empty() || !self.never_sent.is_empty() {
            write!(
                f,
                "; dropped by VOD: {}; never sent: {}; events undelivered: {}",
                self.dropped_by_vod.len(),
                self.never_sent.len(),
                self.undelivered.len()
            )?;
        }
        Ok(())
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Generates the scenario, binds the OpenAPI listener and serves it; nothing is delivered
    /// until [`SimHandle::deliver_all`].
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let base = cfg.base_time_ms.unwrap_or_else(time::now_ms);
        let scenario = Scenario::generate_with(&ScenarioConfig {
            seed: cfg.seed,
            sessions: cfg.sessions,
            base_time_ms: base,
            rendition_failure_rate: cfg.transcode_failure_rate,
            compose_failure_rate: cfg.compose_failure_rate,
        });
        let operator = match &cfg.api_url {
            Some(u) => Some(Arc::new(Operator::new(u).map_err(SimError::Operator)?)),
            None => None,
        };
        let model = Arc::new(Mutex::new(VodModel::default()));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let hooks = Arc::new(Hooks {
            model: model.clone(),
            acked: acked.clone(),
            operator: operator.clone(),
        });
        let mut dcfg = DeliveryConfig::new(&cfg.relay_url, &cfg.callback_url, &cfg.auth_key);
        dcfg.attempts = cfg.attempts;
        dcfg.retry_interval = cfg.retry_interval;
        dcfg.attempt_timeout = cfg.attempt_timeout;
        dcfg.concurrency = cfg.concurrency;
        dcfg.rate = cfg.rate;
        dcfg.drop_rate = cfg.drop_rate;
        dcfg.silent_failure_rate = cfg.silent_failure_rate;
        dcfg.drop_types = cfg.drop_types.clone();
        dcfg.seed = cfg.seed;
        let deliverer = Arc::new(Deliverer::new(dcfg, hooks)?);
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            next_event_id: AtomicU64::new(scenario.events.len() as u64),
            // The runtime RNG (throttling, job ids, shuffles) is seeded too, so a run is as
            // reproducible as the network lets it be.
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed ^ 0x5eed_5eed_5eed_5eed)),
            cfg,
            scenario,
            model,
            deliverer,
            calls: Mutex::new(BTreeMap::new()),
            nonces: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            session_dedup_hits: AtomicU64::new(0),
            acked,
            operator,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = openapi::router(shared.clone());
        let server = tokio::spawn(async move {
            let res = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "sim OpenAPI server failed");
            }
        });
        tracing::info!(%addr, "sim: VOD OpenAPI listening");
        Ok(SimHandle {
            shared,
            addr,
            shutdown: Some(tx),
            server: Some(server),
        })
    }
}

/// A running simulator.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// The OpenAPI's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/`, the worker's `--vod-endpoint`.
    pub fn vod_endpoint(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    pub fn scenario(&self) -> &Scenario {
        &self.shared.scenario
    }

    /// VOD did everything in the scenario and delivered none of it (its OpenAPI answers from
    /// that state): what `bench reconcile` sweeps.
    pub fn emit_all_undelivered(&self) {
        if let Ok(mut m) = self.shared.model.lock() {
            for e in &self.shared.scenario.events {
                m.apply(e);
            }
        }
    }

    /// Delivers every scenario callback to the relay (shuffled within the window, some twice)
    /// and waits until each was acknowledged or lost. Transcodes submitted meanwhile play
    /// their callbacks on their own; see [`SimHandle::progress`].
    pub async fn deliver_all(&self) -> Progress {
        self.deliver_matching(|_| true).await
    }

    /// Like [`SimHandle::deliver_all`], for the scenario events `pick` selects (tests use it
    /// to stop VOD half-way, e.g. a compose started but not uploaded).
    pub async fn deliver_matching(&self, pick: impl Fn(&ScenarioEvent) -> bool) -> Progress {
        let order = {
            let mut rng = match self.shared.rng.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            self.shared.scenario.delivery_order(
                &mut *rng,
                self.shared.cfg.shuffle_window_ms,
                self.shared.cfg.duplicate_rate,
            )
        };
        let events: Vec<Arc<ScenarioEvent>> = self
            .shared
            .scenario
            .events
            .iter()
            .cloned()
            .map(Arc::new)
            .collect();
        let items = order
            .into_iter()
            .filter(|(i, _)| pick(&events[*i]))
            .map(|(i, dup)| (events[i].clone(), dup))
            .collect();
        self.shared.deliverer.deliver_ordered(items).await;
        self.progress()
    }

    /// Delivery counters (scenario and runtime transcode callbacks).
    pub fn progress(&self) -> Progress {
        self.shared.deliverer.progress()
    }

    /// The bodies of the deliveries the relay answered 200 so far, duplicates included.
    pub fn acknowledged_bodies(&self) -> Vec<String> {
        self.shared.deliverer.acknowledged_bodies()
    }

    /// Waits until no delivery and no operator request is outstanding, or `timeout`.
    /// Returns whether it went idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let start = tokio::time::Instant::now();
        loop {
            let op_pending = self.shared.operator.as_ref().map_or(0, |o| o.pending());
            if self.progress().pending() == 0 && op_pending == 0 {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The events none of whose copies the relay acknowledged (lost after 3 attempts,
    /// dropped, never sent), once each, in the order VOD gave up on them.
    pub fn undelivered(&self) -> Vec<LostEvent> {
        let acked = self
            .shared
            .acked
            .lock()
            .map(|a| a.events.clone())
            .unwrap_or_default();
        let d = &self.shared.deliverer;
        let mut seen = HashSet::new();
        d.lost_events()
            .into_iter()
            .chain(d.not_posted(delivery::Fate::Dropped))
            .chain(d.not_posted(delivery::Fate::NeverSent))
            .filter(|l| !acked.contains(&l.event_id) && seen.insert(l.event_id))
            .collect()
    }

    /// The video facts ([`Fact`]) that only undelivered callbacks carried, per fact: what live2vod
    /// can learn only by asking VOD, and so what reconciliation must recover (one each). A lost
    /// callback whose fact a delivered one brought too (a StreamTranscodeComplete, whose
    /// rendition the TranscodeComplete lists) is not among them.
    pub fn lost_facts(&self) -> BTreeMap<Fact, usize> {
        let undelivered = self.undelivered();
        let Ok(acked) = self.shared.acked.lock() else {
            return BTreeMap::new();
        };
        let lost: HashSet<(&str, Fact)> = undelivered
            .iter()
            .filter_map(|l| Some((l.video_id.as_str(), Fact::of_callback(&l.event_type)?)))
            .filter(|(v, f)| !acked.facts.contains(&(v.to_string(), *f)))
            .collect();
        let mut by = BTreeMap::new();
        for (_, f) in lost {
            *by.entry(f).or_insert(0) += 1;
        }
        by
    }

    /// The ground truth, with the videos and streams affected by undelivered callbacks
    /// (lost, dropped or never sent; no copy acknowledged) marked, so verify skips them.
    pub fn truth(&self) -> Truth {
        let mut t = Truth::of(&self.shared.scenario);
        for l in self.undelivered() {
            let affects_stream = matches!(
                Fact::of_callback(&l.event_type),
                Some(Fact::Recording | Fact::Compose | Fact::Source)
            );
            t.mark_lost(&l.video_id, &l.stream, affects_stream);
        }
        t
    }

    pub fn stats(&self) -> Stats {
        let sh = &self.shared;
        Stats {
            calls: sh.calls.lock().map(|c| c.clone()).unwrap_or_default(),
            jobs_started: sh
                .model
                .lock()
                .map(|m| m.jobs().clone())
                .unwrap_or_default(),
            session_dedup_hits: sh.session_dedup_hits.load(Ordering::Relaxed),
            delivery: sh.deliverer.progress(),
            lost_by_vod: sh.deliverer.lost_events(),
            dropped_by_vod: sh.deliverer.not_posted(delivery::Fate::Dropped),
            never_sent: sh.deliverer.not_posted(delivery::Fate::NeverSent),
            undelivered: self.undelivered(),
            operator: sh.operator.as_ref().map(|o| o.stats()).unwrap_or_default(),
        }
    }

    /// Polls live2vod's api until it matches the truth, job counts included, or `timeout`.
    pub async fn verify(&self, api_url: &str, timeout: Duration) -> VerifyReport {
        verify::verify_with(api_url, timeout, || {
            (self.truth(), Some(self.stats().jobs_started))
        })
        .await
    }

    /// Like [`SimHandle::verify`], but nothing is skipped: the api must show everything VOD
    /// did, including what it never delivered (`sim --verify API --require-recovered`).
    pub async fn verify_recovered(&self, api_url: &str, timeout: Duration) -> VerifyReport {
        verify::verify_with(api_url, timeout, || {
            (
                self.truth().requiring_recovery(),
                Some(self.stats().jobs_started),
            )
        })
        .await
    }

    /// Stops the OpenAPI server (deliveries in flight are abandoned).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Secrets parse into [`Secret`] so that `Debug` of the options never shows them.
fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// Options of `live2vod sim` (boxed: the role enum stays small).
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub opts: Box<SimArgs>,
}

const SIM_HELP: &str = "\
Plays live streams through the four live-to-VOD flows on live.demo.example.com/live:
  auto-<n>          record + auto transcode (VOD transcodes with tg-record)
  store-<n>         store only; the simulated operator asks live2vod's api for tg-manual
  compose-auto-<n>  auto compose + auto transcode (tg-compose); segments stored only
  compose-only-<n>  auto compose only; live2vod's policy submits tg-compose-later
Posts VOD's callbacks to the relay (signed with X-VOD-SIGNATURE, shuffled, some twice,
3 attempts ~1 s apart, then dropped and counted as lost by VOD; with --drop-rate some are
never posted, with --silent-failure-rate some failed compose uploads send no callback),
serves the VOD OpenAPI the worker and reconcile call (SubmitTranscodeJobs, GetVideoInfo,
GetPlayInfo, GetMezzanineInfo, ListLiveRecordVideo; signature v1, SessionId
de-duplication, injected Throttling.User), and with --verify polls live2vod's api until it
matches the simulator's ground truth (--require-recovered: including what VOD never
delivered).
Give the fold the policy printed by `live2vod sim --print-policy`.";

/// The flags of `live2vod sim`.
#[derive(ClapArgs, Debug, Clone)]
#[command(after_long_help = SIM_HELP)]
pub struct SimArgs {
    /// The relay's callback endpoint, e.g. http://127.0.0.1:8080/callbacks/vod.
    #[arg(
        long,
        env = "LIVE2VOD_SIM_RELAY_URL",
        required_unless_present = "print_policy"
    )]
    pub relay_url: Option<String>,
    /// The callback URL as configured in VOD; the X-VOD-SIGNATURE covers it (the relay's
    /// --callback-url).
    #[arg(
        long,
        env = "LIVE2VOD_SIM_CALLBACK_URL",
        required_unless_present = "print_policy"
    )]
    pub callback_url: Option<String>,
    /// The callback auth key (the relay's --auth-key).
    #[arg(
        long,
        env = "LIVE2VOD_SIM_AUTH_KEY",
        required_unless_present = "print_policy",
        hide_env_values = true,
        value_parser = secret
    )]
    pub auth_key: Option<Secret>,
    /// Where the simulated VOD OpenAPI listens (the worker's --vod-endpoint).
    #[arg(long, env = "LIVE2VOD_SIM_LISTEN", default_value = "127.0.0.1:9300")]
    pub listen: SocketAddr,
    /// AccessKeyId the OpenAPI accepts (the worker's --access-key-id).
    #[arg(
        long,
        env = "LIVE2VOD_SIM_ACCESS_KEY_ID",
        default_value = "sim-access-key-id"
    )]
    pub access_key_id: String,
    /// AccessKeySecret the OpenAPI checks signatures with.
    #[arg(
        long,
        env = "LIVE2VOD_SIM_ACCESS_KEY_SECRET",
        default_value = "sim-access-key-secret",
        hide_env_values = true,
        value_parser = secret
    )]
    pub access_key_secret: Secret,
    /// Live sessions to play (dealt round-robin to the four flows, two per stream).
    #[arg(long, env = "LIVE2VOD_SIM_SESSIONS", default_value_t = 8)]
    pub sessions: usize,
    /// Seed of the scenario (same seed, same streams, VideoIds and bodies).
    #[arg(long, env = "LIVE2VOD_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// After delivering, poll this live2vod api until it matches the truth; exit non-zero on
    /// any difference. Also used by the operator when --api-url is not given.
    #[arg(long, env = "LIVE2VOD_SIM_VERIFY")]
    pub verify: Option<String>,
    /// How long --verify waits for convergence, in seconds.
    #[arg(long, env = "LIVE2VOD_SIM_TIMEOUT", default_value_t = 120)]
    pub timeout: u64,
    /// live2vod's api, for the operator's manual transcodes (flow 2).
    #[arg(long, env = "LIVE2VOD_SIM_API_URL")]
    pub api_url: Option<String>,
    /// Fraction of callbacks delivered twice.
    #[arg(long, env = "LIVE2VOD_SIM_DUPLICATE_RATE", default_value_t = 0.1)]
    pub duplicate_rate: f64,
    /// Fraction of OpenAPI calls answered Throttling.User.
    #[arg(long, env = "LIVE2VOD_SIM_THROTTLE_RATE", default_value_t = 0.05)]
    pub throttle_rate: f64,
    /// Chance that one rendition of a transcode fails.
    #[arg(
        long,
        env = "LIVE2VOD_SIM_TRANSCODE_FAILURE_RATE",
        default_value_t = 0.1
    )]
    pub transcode_failure_rate: f64,
    /// Chance that an auto-compose fails (sessions over 40 segments always fail).
    #[arg(
        long,
        env = "LIVE2VOD_SIM_COMPOSE_FAILURE_RATE",
        default_value_t = 0.15
    )]
    pub compose_failure_rate: f64,
    /// Callbacks are delivered by event time plus a random lag up to this many seconds.
    #[arg(long, env = "LIVE2VOD_SIM_SHUFFLE_WINDOW_SECS", default_value_t = 600)]
    pub shuffle_window_secs: u64,
    /// Pace the scenario's callbacks: start at most this many per second (default: as fast
    /// as 16 deliveries in flight allow). VOD's retries of a failed delivery are not paced.
    #[arg(long, env = "LIVE2VOD_SIM_RATE", value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// Print the fold policy matching the simulator's streams (with the [reconcile]
    /// entries its scenario needs) and exit.
    #[arg(long, env = "LIVE2VOD_SIM_PRINT_POLICY")]
    pub print_policy: bool,
    /// Fraction of callbacks VOD never posts (chosen per event by the seed), on top of the
    /// ones lost after 3 failed attempts.
    #[arg(long, env = "LIVE2VOD_SIM_DROP_RATE", default_value_t = 0.0, value_parser = fraction)]
    pub drop_rate: f64,
    /// An event type VOD never posts, every one of them (repeatable; e.g. SnapshotComplete):
    /// only reconciliation can bring those facts back.
    #[arg(long = "drop-type", value_name = "EVENT_TYPE")]
    pub drop_type: Vec<String>,
    /// Fraction of failed compose uploads that send no FileUploadComplete at all.
    #[arg(
        long,
        env = "LIVE2VOD_SIM_SILENT_FAILURE_RATE",
        default_value_t = 0.0,
        value_parser = fraction
    )]
    pub silent_failure_rate: f64,
    /// With --verify: also require what VOD never delivered (lost, dropped, never sent) to be
    /// in the api, i.e. recovered through the OpenAPI; without it those videos are skipped.
    #[arg(long, env = "LIVE2VOD_SIM_REQUIRE_RECOVERED", requires = "verify")]
    pub require_recovered: bool,
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a positive number of callbacks per second"
        )),
    }
}

/// Runs the role: serve the OpenAPI, deliver, then verify (and exit) or keep serving until
/// SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let args = *args.opts;
    if args.print_policy {
        print!("{}", policy_toml());
        return Ok(());
    }
    let (Some(relay_url), Some(callback_url), Some(auth_key)) =
        (&args.relay_url, &args.callback_url, &args.auth_key)
    else {
        anyhow::bail!("--relay-url, --callback-url and --auth-key are required");
    };
    let mut cfg = SimConfig::new(relay_url, callback_url, auth_key.expose());
    cfg.listen = args.listen;
    cfg.access_key_id = args.access_key_id.clone();
    cfg.access_key_secret = args.access_key_secret.expose().to_string();
    cfg.sessions = args.sessions;
    cfg.seed = args.seed;
    cfg.api_url = args.api_url.clone().or_else(|| args.verify.clone());
    cfg.duplicate_rate = args.duplicate_rate;
    cfg.throttle_rate = args.throttle_rate;
    cfg.transcode_failure_rate = args.transcode_failure_rate;
    cfg.compose_failure_rate = args.compose_failure_rate;
    cfg.shuffle_window_ms = (args.shuffle_window_secs as i64).saturating_mul(1000);
    cfg.rate = args.rate;
    cfg.drop_rate = args.drop_rate;
    cfg.silent_failure_rate = args.silent_failure_rate;
    cfg.drop_types = args.drop_type.clone();
    let sim = Simulator::start(cfg).await?;
    let sc = sim.scenario();
    eprintln!(
        "sim: VOD OpenAPI on {} ; {} streams, {} sessions, {} videos, {} callbacks (seed {})",
        sim.vod_endpoint(),
        sc.streams.len(),
        sc.streams.iter().map(|s| s.sessions.len()).sum::<usize>(),
        Truth::of(sc).videos.len(),
        sc.events.len(),
        args.seed
    );
    let ticker = {
        let d = sim.shared.deliverer.clone();
        tokio::spawn(async move {
            let mut last = Progress::default();
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let now = d.progress();
                if now != last {
                    eprintln!("sim: {now}");
                    last = now;
                }
            }
        })
    };
    let progress = sim.deliver_all().await;
    eprintln!("sim: scenario delivered: {progress}");
    let result = match &args.verify {
        Some(api) => {
            let timeout = Duration::from_secs(args.timeout);
            let report = if args.require_recovered {
                sim.verify_recovered(api, timeout).await
            } else {
                sim.verify(api, timeout).await
            };
            println!("{report}");
            println!("{}", sim.stats());
            if report.ok {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "the api did not converge to the simulator's truth ({} differences)",
                    report.diffs.len()
                ))
            }
        }
        None => {
            eprintln!("sim: serving the OpenAPI until interrupted (Ctrl-C)");
            let _ = tokio::signal::ctrl_c().await;
            println!("{}", sim.stats());
            Ok(())
        }
    };
    ticker.abort();
    sim.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn the_handle_can_be_driven_from_spawned_tasks() {
        let sim = Simulator::start(SimConfig::new("http://127.0.0.1:9/cb", "http://x/cb", "k"))
            .await
            .expect("start");
        let d = sim.deliver_matching(|_| false);
        assert_send(&d);
        let v = sim.verify("http://127.0.0.1:9", Duration::from_millis(1));
        assert_send(&v);
        assert_eq!(d.await.scheduled, 0);
        drop(v);
        sim.shutdown().await;
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn loss_flags_parse_and_require_recovered_needs_verify() {
        use clap::Parser;
        let base = [
            "sim",
            "--relay-url",
            "http://r/cb",
            "--callback-url",
            "http://r/cb",
        ];
        let parse = |extra: &[&str]| {
            let mut argv: Vec<&str> = base.to_vec();
            argv.extend(["--auth-key", "k"]);
            argv.extend(extra);
            Cli::try_parse_from(argv)
        };
        let cli = parse(&[]).expect("defaults");
        assert_eq!(cli.args.opts.drop_rate, 0.0);
        assert_eq!(cli.args.opts.silent_failure_rate, 0.0);
        assert!(!cli.args.opts.require_recovered);
        let cli = parse(&[
            "--drop-rate",
            "0.05",
            "--silent-failure-rate",
            "1",
            "--verify",
            "http://api",
            "--require-recovered",
        ])
        .expect("all loss flags");
        assert_eq!(cli.args.opts.drop_rate, 0.05);
        assert!(cli.args.opts.require_recovered);
        assert!(parse(&["--require-recovered"]).is_err(), "needs --verify");
        assert!(parse(&["--drop-rate", "1.5"]).is_err());
        assert!(parse(&["--drop-rate", "-0.1"]).is_err());
        let cfg = SimConfig::new("r", "c", "k");
        assert_eq!((cfg.drop_rate, cfg.silent_failure_rate), (0.0, 0.0));
    }

    #[test]
    fn the_policy_matches_the_stream_naming_conventions() {
        let v: toml::Value = toml::from_str(&policy_toml()).expect("valid TOML");
        assert_eq!(v["defaults"]["segments"]["action"].as_str(), Some("none"));
        assert_eq!(v["defaults"]["composed"]["action"].as_str(), Some("none"));
        let rules = v["rules"].as_array().expect("rules");
        let rule = |glob: &str| {
            rules
                .iter()
                .find(|r| r["streams"].as_str() == Some(glob))
                .unwrap_or_else(|| panic!("no rule for {glob}"))
        };
        let apps = v["reconcile"]["apps"].as_array().expect("[reconcile] apps");
        let app = format!("{}/{}", scenario::DOMAIN, scenario::APP);
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].as_str(), Some(app.as_str()));
        let parsed = crate::domain::Policy::parse(&policy_toml()).expect("parses");
        assert_eq!(parsed.reconcile_apps, vec![app]);
        let store = rule("live.demo.example.com/live/store-*");
        assert_eq!(store["segments"]["action"].as_str(), Some("manual"));
        let later = rule("live.demo.example.com/live/compose-only-*");
        assert_eq!(later["composed"]["action"].as_str(), Some("transcode"));
        assert_eq!(
            later["composed"]["template_group"].as_str(),
            Some(scenario::TG_COMPOSE_LATER)
        );
        // The scenario's streams are named so that exactly these rules match them.
        let sc = Scenario::generate(1, 8, 1_790_000_000_000);
        for s in &sc.streams {
            let key = s.key();
            let is_store = key.starts_with("live.demo.example.com/live/store-");
            let is_later = key.starts_with("live.demo.example.com/live/compose-only-");
            assert_eq!(is_store, s.flow == Flow::StoreOnly, "{key}");
            assert_eq!(is_later, s.flow == Flow::ComposeOnly, "{key}");
        }
    }
}
