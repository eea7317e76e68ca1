//! `live2vod demo`: the whole system in one process — librdkafka's embedded mock cluster, the
//! relay, fold, worker and api, and the Alibaba Live+VOD simulator driving all four seed flows —
//! then a readable summary and a verification against the simulator's ground truth.
//!
//! The embedded mock cluster keeps only the newest ~5 MiB (or 100k batches) per partition and
//! silently drops older records; the default scenario stays far below that. Use `--brokers` to
//! run the same scenario against a real Kafka.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;

use crate::domain::Policy;
use crate::fold::{FoldConfig, FoldStats};
use crate::http::Health;
use crate::kafka::mock::EmbeddedBroker;
use crate::kafka::KafkaArgs;
use crate::sim::{Flow, SimConfig, SimHandle, Simulator};
use crate::vod::callback_auth::CallbackVerifier;
use crate::vod::client::VodConfig;

const AUTH_KEY: &str = "demo-callback-key";
const ACCESS_KEY_ID: &str = "demo-access-key-id";
const ACCESS_KEY_SECRET: &str = "demo-access-key-secret";

/// Options of `live2vod demo`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Live sessions the simulator plays, spread over the four flows.
    #[arg(long, env = "LIVE2VOD_DEMO_SESSIONS", default_value_t = 16)]
    pub sessions: usize,

    /// Seed of the scenario (same seed, same streams, segments, failures).
    #[arg(long, env = "LIVE2VOD_DEMO_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Keep serving the api and /metrics after the summary, until Ctrl-C.
    #[arg(long)]
    pub serve: bool,

    /// Use this Kafka instead of the embedded mock cluster (topics are created when missing).
    #[arg(long, env = "LIVE2VOD_BROKERS")]
    pub brokers: Option<String>,

    /// Address of the api (GET /v1/videos/{id}, /v1/streams/..., /metrics).
    #[arg(
        long,
        env = "LIVE2VOD_DEMO_API_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub api_listen: SocketAddr,

    /// Address of the relay (POST /callbacks/vod).
    #[arg(
        long,
        env = "LIVE2VOD_DEMO_RELAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub relay_listen: SocketAddr,

    /// Partitions of the demo's topics.
    #[arg(long, env = "LIVE2VOD_DEMO_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,

    /// Fraction of callbacks the simulated VOD delivers twice.
    #[arg(long, default_value_t = 0.15)]
    pub duplicate_rate: f64,

    /// Fraction of OpenAPI calls the simulated VOD answers with Throttling.User.
    #[arg(long, default_value_t = 0.1)]
    pub throttle_rate: f64,

    /// How long verification may wait for the api to converge (seconds).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,

    /// Fraction of callbacks the simulated VOD never posts (chosen by the seed). Above 0,
    /// verification requires everything VOD did in the api, including what it never
    /// delivered (recovered by reconciliation); `--drop-rate 0 --silent-failure-rate 0` is the
    /// demo without losses.
    #[arg(long, default_value_t = 0.05)]
    pub drop_rate: f64,

    /// Fraction of failed compose uploads that send no FileUploadComplete at all.
    #[arg(long, default_value_t = 0.5)]
    pub silent_failure_rate: f64,

    /// Also write the summary as one JSON object to this file: videos_matched, videos_total,
    /// streams_matched, streams_total, lost_by_vod (facts only undelivered callbacks carried)
    /// and lost_by_fact, recovered (facts reconciliation brought first) and
    /// recovered_by_fact, callbacks_undelivered, lost_after_attempts, dropped, never_sent,
    /// duplicate_jobs, converged, ok, elapsed_secs.
    #[arg(long)]
    pub summary_json: Option<std::path::PathBuf>,
}

/// The counter the fold increments for every fact an observation event brought first
/// (label `what`: a [`crate::domain::vocab::Fact`] name).
const RECOVERED_METRIC: &str = crate::metrics::RECONCILE_RECOVERED;

/// Per value of `label`, the sum of the counter `name` in this exposition; `None` when
/// nothing registered it yet.
fn counter_by_label(exposition: &str, name: &str, label: &str) -> Option<BTreeMap<String, u64>> {
    let mut found: Option<BTreeMap<String, u64>> = None;
    let want = format!("{label}=\"");
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let value = rest
            .find(&want)
            .map(|i| &rest[i + want.len()..])
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        *found
            .get_or_insert_with(BTreeMap::new)
            .entry(value.to_string())
            .or_insert(0) += v.max(0.0) as u64;
    }
    found
}

fn by_fact_line<N: std::fmt::Display>(m: &BTreeMap<String, N>) -> String {
    if m.is_empty() {
        return "none".to_string();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the demo shows at the end (also `--summary-json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub seed: u64,
    pub sessions: usize,
    pub videos_matched: usize,
    pub videos_total: usize,
    pub streams_matched: usize,
    pub streams_total: usize,
    /// Facts about videos (a recording, a composed video, its source upload, a transcode
    /// outcome, a cover: [`crate::domain::vocab::Fact`]) that only callbacks VOD never delivered carried: what the
    /// api can only have learned from reconciliation. Must equal `recovered`.
    pub lost_by_vod: usize,
    /// `lost_by_vod` per fact.
    pub lost_by_fact: BTreeMap<String, usize>,
    /// Events VOD did whose callback never reached the relay (the next three together,
    /// each event once); more than `lost_by_vod` when another delivered callback carried
    /// the same fact.
    pub callbacks_undelivered: usize,
    /// ... of them: given up after 3 failed attempts.
    pub lost_after_attempts: usize,
    /// ... never posted (`--drop-rate`).
    pub dropped: usize,
    /// ... failures VOD sends no callback for (`--silent-failure-rate`).
    pub never_sent: usize,
    /// `live2vod_reconcile_recovered_total` summed over labels (facts an observation event
    /// brought before any callback did); `None`: not registered.
    pub recovered: Option<u64>,
    /// `recovered` per fact.
    pub recovered_by_fact: BTreeMap<String, u64>,
    /// (VideoId, template group) pairs with more than one transcode job.
    pub duplicate_jobs: usize,
    /// Whether verification required what VOD never delivered.
    pub require_recovered: bool,
    pub converged: bool,
    pub ok: bool,
    pub elapsed_secs: f64,
}

impl DemoSummary {
    /// Why the demo fails, if it does.
    pub fn failure(&self) -> Option<String> {
        if !self.converged {
            return Some("the api did not converge to the simulator's ground truth".to_string());
        }
        if self.duplicate_jobs > 0 {
            return Some(format!("{} duplicate transcode jobs", self.duplicate_jobs));
        }
        let recovered = self.recovered.unwrap_or(0);
        if self.lost_by_vod as u64 != recovered
            || self
                .lost_by_fact
                .iter()
                .any(|(k, v)| self.recovered_by_fact.get(k).copied().unwrap_or(0) != *v as u64)
        {
            if self.recovered.is_none() {
                return Some(format!(
                    "{} facts lost by VOD but no reconciliation ran ({RECOVERED_METRIC} is missing)",
                    self.lost_by_vod
                ));
            }
            return Some(format!(
                "lost by VOD {} ({}) but recovered by reconciliation {} ({})",
                self.lost_by_vod,
                by_fact_line(&self.lost_by_fact),
                recovered,
                by_fact_line(&self.recovered_by_fact)
            ));
        }
        None
    }
}

/// Runs the demo; fails when verification does not pass.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    let started = Instant::now();
    println!(
        "live2vod demo: {} live sessions, seed {}",
        args.sessions, args.seed
    );

    // Kafka: embedded mock cluster unless --brokers.
    let mut embedded = None;
    let mut kafka = match &args.brokers {
        Some(b) => KafkaArgs::for_brokers(b.clone()),
        None => {
            let broker = EmbeddedBroker::start(1)?;
            let k = KafkaArgs::for_brokers(broker.bootstrap());
            embedded = Some(broker);
            k
        }
    };
    kafka.topic_partitions = args.partitions;
    match &embedded {
        Some(b) => {
            b.create_topics(&kafka.topics(), args.partitions)?;
            b.create_topic(
                &crate::reconcile::positions_topic(&kafka.topic_prefix),
                args.partitions,
            )?;
            println!(
                "  kafka    embedded mock cluster at {} ({} partitions a topic)",
                b.bootstrap(),
                args.partitions
            );
        }
        None => {
            crate::kafka::admin::ensure_topics(&kafka).await?;
            println!("  kafka    {}", kafka.brokers);
        }
    }

    let policy = Policy::parse(&crate::sim::policy_toml())?;
    let mut pcfg = PipelineConfig::new(kafka.clone(), policy.clone());
    pcfg.reconcile = Some(demo_reconcile_config(&kafka, policy));
    pcfg.relay_listen = args.relay_listen;
    pcfg.api_listen = args.api_listen;
    pcfg.sim.sessions = args.sessions;
    pcfg.sim.seed = args.seed;
    pcfg.sim.duplicate_rate = args.duplicate_rate;
    pcfg.sim.throttle_rate = args.throttle_rate;
    pcfg.sim.drop_rate = args.drop_rate;
    pcfg.sim.silent_failure_rate = args.silent_failure_rate;
    let require_recovered = args.drop_rate > 0.0 || args.silent_failure_rate > 0.0;
    let mut pipeline = Pipeline::start(pcfg).await?;
    let callback_url = pipeline.callback_url.clone();
    let api_url = pipeline.api_url.clone();
    println!("  relay    {callback_url}");
    println!(
        "  api      {api_url}/v1/videos/{{id}}  {api_url}/v1/streams/{{domain}}/{{app}}/{{stream}}"
    );
    println!("  console  {api_url}/");
    println!("  sim      OpenAPI at {}", pipeline.sim.vod_endpoint());
    println!("  policy   store-* segments: manual; compose-only-* composed: transcode tg-compose-later; else none\n");
    let sim = &pipeline.sim;

    // Deliver every callback, showing progress.
    let scenario = sim.scenario();
    println!(
        "playing {} callbacks of {} streams (shuffled, {:.0}% delivered twice, {:.0}% never posted, {:.0}% of failed compose uploads silent, {:.0}% of API calls throttled)...",
        scenario.events.len(),
        scenario.streams.len(),
        args.duplicate_rate * 100.0,
        args.drop_rate * 100.0,
        args.silent_failure_rate * 100.0,
        args.throttle_rate * 100.0
    );
    let progress = {
        let deliver = sim.deliver_all();
        tokio::pin!(deliver);
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                p = &mut deliver => break p,
                _ = tick.tick() => {
                    let p = sim.progress();
                    println!("  {:>5.1}s  sent {:>5}  acknowledged {:>5}  retried {:>3}  lost {:>2}", started.elapsed().as_secs_f64(), p.sent, p.acknowledged, p.retried, p.lost);
                }
            }
        }
    };
    println!(
        "  delivered: {} acknowledged, {} retried, {} lost by VOD after 3 attempts, {} never posted, {} never sent\n",
        progress.acknowledged, progress.retried, progress.lost, progress.dropped, progress.never_sent
    );

    println!(
        "verifying the api against the simulator's ground truth{} (up to {} s)...",
        if require_recovered {
            ", including what VOD never delivered"
        } else {
            ""
        },
        args.timeout
    );
    let timeout = Duration::from_secs(args.timeout);
    let report = if require_recovered {
        sim.verify_recovered(&api_url, timeout).await
    } else {
        sim.verify(&api_url, timeout).await
    };
    let stats = sim.stats();
    let truth = sim.truth();
    let lost_by_fact: BTreeMap<String, usize> = sim
        .lost_facts()
        .into_iter()
        .map(|(f, n)| (f.name().to_string(), n))
        .collect();
    let lost: usize = lost_by_fact.values().sum();
    // The api converged; the fold's counter may trail its last observation by a moment.
    let read_recovered = || counter_by_label(&crate::metrics::render(), RECOVERED_METRIC, "what");
    let mut recovered = read_recovered();
    let wait_until = Instant::now() + Duration::from_secs(10);
    let total = |r: &Option<BTreeMap<String, u64>>| r.as_ref().map(|m| m.values().sum::<u64>());
    while report.ok
        && lost > 0
        && total(&recovered) != Some(lost as u64)
        && Instant::now() < wait_until
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        recovered = read_recovered();
    }
    let distinct = |l: &[crate::sim::LostEvent]| {
        let ids: std::collections::BTreeSet<u64> = l
            .iter()
            .filter(|e| stats.undelivered.iter().any(|u| u.event_id == e.event_id))
            .map(|e| e.event_id)
            .collect();
        ids.len()
    };
    let mut summary = DemoSummary {
        seed: args.seed,
        sessions: args.sessions,
        videos_matched: report.videos_matching,
        videos_total: truth.videos.len(),
        streams_matched: report.streams_matching,
        streams_total: truth.streams.len(),
        lost_by_vod: lost,
        lost_by_fact,
        callbacks_undelivered: stats.undelivered.len(),
        lost_after_attempts: distinct(&stats.lost_by_vod),
        dropped: distinct(&stats.dropped_by_vod),
        never_sent: distinct(&stats.never_sent),
        recovered: total(&recovered),
        recovered_by_fact: recovered.unwrap_or_default(),
        duplicate_jobs: stats.jobs_started.values().filter(|n| **n > 1).count(),
        require_recovered,
        converged: report.ok,
        ok: false,
        elapsed_secs: 0.0,
    };

    // Stop the fold to read its counters.
    let fold_stats = match pipeline.stop_fold().await {
        Ok(s) => Some(s),
        Err(e) => {
            println!("{e}");
            None
        }
    };

    print_summary(&truth, &stats, fold_stats.as_ref());
    let failure = summary.failure();
    summary.ok = failure.is_none();
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    println!(
        "  lost by VOD {} (facts only undelivered callbacks carried: {}); callbacks undelivered {} ({} after 3 failed attempts, {} never posted, {} never sent)",
        summary.lost_by_vod,
        by_fact_line(&summary.lost_by_fact),
        summary.callbacks_undelivered,
        summary.lost_after_attempts,
        summary.dropped,
        summary.never_sent
    );
    match summary.recovered {
        Some(r) => println!(
            "  recovered by reconciliation {r} ({})",
            by_fact_line(&summary.recovered_by_fact)
        ),
        None => println!("  recovered by reconciliation 0 (no reconcile metric: {RECOVERED_METRIC} is not registered)"),
    }
    println!("\n{report}");
    if let Some(why) = &failure {
        println!("verification: FAILED: {why}");
    } else {
        println!("verification: OK");
    }
    println!("demo took {:.1}s", summary.elapsed_secs);
    if let Some(path) = &args.summary_json {
        let text = serde_json::to_string(&summary)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }

    if args.serve {
        println!("\nserving until Ctrl-C:\n  console  {api_url}/\n  {api_url}/v1/videos/<id>\n  {api_url}/metrics\n  {callback_url}");
        crate::http::shutdown_signal().await;
    }
    pipeline.shutdown().await?;
    drop(embedded);
    match failure {
        None => Ok(()),
        Some(why) => anyhow::bail!("verification failed: {why}"),
    }
}

/// Reconcile tuned for a scenario that lasts seconds: a sweep every 2 s up to 1 s before
/// now, probes after 5 s; VOD's own limits are far from the simulator's.
pub fn demo_reconcile_config(
    kafka: &KafkaArgs,
    policy: Policy,
) -> crate::reconcile::ReconcileConfig {
    let vod = VodConfig::new("cn-shanghai", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    let mut rc = crate::reconcile::ReconcileConfig::new(kafka.clone(), vod, policy);
    rc.sweep_interval = Duration::from_secs(2);
    rc.settle = Duration::from_secs(1);
    // The simulator's recordings all started an hour or more before VOD emits them (as a
    // long real recording does): every sweep reaches back over the whole lookback.
    rc.initial_lookback = Duration::from_secs(86_400 * 30);
    rc.overlap = rc.initial_lookback;
    rc.probe_after = Duration::from_secs(5);
    rc.probe_max_backoff = Duration::from_secs(4);
    rc.max_qps = 200.0;
    rc
}

/// What a [`Pipeline`] is started with. The simulator's URLs, keys and api address are filled
/// in by [`Pipeline::start`]; everything else in `sim` (sessions, seed, rates, retries) is used
/// as given.
pub struct PipelineConfig {
    pub kafka: KafkaArgs,
    pub policy: Policy,
    /// Relay address (port 0: any free port; a busy port falls back to a free one).
    pub relay_listen: SocketAddr,
    /// Api address (same rules).
    pub api_listen: SocketAddr,
    /// How long the relay waits for the broker's acknowledgement before answering 503.
    pub relay_ack_timeout: Duration,
    pub sim: SimConfig,
    /// Run a reconcile instance too: this config with the pipeline's Kafka and the
    /// simulator's OpenAPI filled in (None: no reconcile).
    pub reconcile: Option<crate::reconcile::ReconcileConfig>,
}

impl PipelineConfig {
    /// Free local ports, the relay's default ack timeout and the simulator's defaults.
    pub fn new(kafka: KafkaArgs, policy: Policy) -> Self {
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut sim = SimConfig::new("", "", AUTH_KEY);
        sim.listen = any;
        PipelineConfig {
            kafka,
            policy,
            relay_listen: any,
            api_listen: any,
            relay_ack_timeout: Duration::from_millis(crate::relay::DEFAULT_ACK_TIMEOUT_MS),
            sim,
            reconcile: None,
        }
    }
}

/// Relay, api, the simulated Live+VOD, worker and fold, wired in one process on a Kafka whose
/// topics exist (the demo's and the in-process integration tests' common setup).
pub struct Pipeline {
    pub relay: crate::relay::RelayHandle,
    relay_cfg: crate::relay::Config,
    relay_down: Option<SocketAddr>,
    pub api: crate::api::ApiHandle,
    pub sim: SimHandle,
    worker: Option<crate::worker::WorkerHandle>,
    /// The reconcile instance, when the config asked for one.
    pub reconcile: Option<crate::reconcile::ReconcileHandle>,
    /// The relay's `POST /callbacks/vod` URL (also the URL VOD signs).
    pub callback_url: String,
    /// The api's base URL.
    pub api_url: String,
    /// The fold, which tests may stop or crash.
    pub fold: FoldRunner,
}

/// The pipeline's fold task and the configuration to start another one with.
pub struct FoldRunner {
    task: Option<crate::role::RoleHandle<FoldStats>>,
    cfg: FoldConfig,
}

impl FoldRunner {
    fn start(cfg: FoldConfig) -> Self {
        let mut f = FoldRunner { task: None, cfg };
        f.spawn();
        f
    }

    fn spawn(&mut self) {
        self.task = Some(crate::fold::start(self.cfg.clone(), Health::default()));
    }

    /// Stops the fold (the batch in flight is finished and committed) and returns its
    /// counters; an error says why it had stopped or that it was stopped already.
    pub async fn stop(&mut self) -> Result<FoldStats, String> {
        let Some(f) = self.task.take() else {
            return Err("the fold was stopped already".into());
        };
        f.shutdown()
            .await
            .map_err(|e| format!("fold stopped with an error: {e:#}"))
    }

    /// Kills the fold abruptly (its task is aborted wherever it is: mid-batch, between the
    /// produce and the commit, ...) and starts a new one in the same consumer group, which
    /// restores from the aggregates topic and resumes from the last committed offsets.
    pub async fn crash_and_restart(&mut self) {
        if let Some(f) = self.task.take() {
            f.abort();
            let _ = f.wait().await;
        }
        self.spawn();
    }

    /// Whether the fold task has ended (by itself, on an error, or stopped).
    pub fn finished(&self) -> bool {
        self.task.as_ref().is_none_or(|f| f.is_finished())
    }

    fn running(&self) -> bool {
        self.task.is_some()
    }
}

impl Pipeline {
    /// Starts relay, api, simulator (OpenAPI only: nothing is delivered yet), worker and fold.
    pub async fn start(cfg: PipelineConfig) -> anyhow::Result<Pipeline> {
        let kafka = cfg.kafka;
        let relay_listener = bind(cfg.relay_listen, "relay").await?;
        let relay_addr = relay_listener.local_addr()?;
        let callback_url = format!("http://{relay_addr}/callbacks/vod");
        let verifier = CallbackVerifier::new(&callback_url, AUTH_KEY, None, 300);
        let mut relay_cfg =
            crate::relay::Config::new(kafka.clone(), crate::relay::Auth::Verify(verifier));
        relay_cfg.ack_timeout = cfg.relay_ack_timeout;
        let relay = crate::relay::start(relay_cfg.clone(), relay_listener).await?;
        let api_listener = bind(cfg.api_listen, "api").await?;
        let mut api_cfg = crate::api::Config::new(kafka.clone());
        // The console greys the transcode button, and the POST answers 409, where the fold's
        // policy refuses manual requests.
        api_cfg.policy = Some(cfg.policy.clone());
        let api = crate::api::start(api_cfg, api_listener).await?;
        let api_url = api.base_url();

        let mut sim_cfg = cfg.sim;
        sim_cfg.relay_url = callback_url.clone();
        sim_cfg.callback_url = callback_url.clone();
        sim_cfg.auth_key = AUTH_KEY.into();
        sim_cfg.access_key_id = ACCESS_KEY_ID.into();
        sim_cfg.access_key_secret = ACCESS_KEY_SECRET.into();
        sim_cfg.api_url = Some(api_url.clone());
        let sim = Simulator::start(sim_cfg).await?;

        let mut vod = VodConfig::new("cn-shanghai", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
        vod.endpoint = Some(sim.vod_endpoint());
        let worker = crate::worker::start(
            crate::worker::WorkerConfig::new(kafka.clone(), vod.clone()),
            Health::default(),
        )
        .await?;
        let reconcile = match cfg.reconcile {
            None => None,
            Some(mut rc) => {
                rc.kafka = kafka.clone();
                rc.vod = vod.clone();
                Some(crate::reconcile::start(rc, Health::default()).await?)
            }
        };
        let fold_cfg = FoldConfig::new(kafka, cfg.policy);
        let fold = FoldRunner::start(fold_cfg);
        Ok(Pipeline {
            relay,
            relay_cfg,
            relay_down: None,
            api,
            sim,
            worker: Some(worker),
            reconcile,
            callback_url,
            api_url,
            fold,
        })
    }

    /// Stops the fold (the batch in flight is finished and committed) and returns its
    /// counters; an error says why it had stopped or that it was stopped already.
    pub async fn stop_fold(&mut self) -> Result<FoldStats, String> {
        self.fold.stop().await
    }

    /// Takes the relay down (its port closed: VOD's deliveries fail, and after three attempts
    /// VOD drops them) until [`Pipeline::start_relay`]. A stand-in relay on a free port nobody
    /// posts to keeps the handle filled meanwhile.
    pub async fn stop_relay(&mut self) -> anyhow::Result<()> {
        let spare = bind(SocketAddr::from(([127, 0, 0, 1], 0)), "relay").await?;
        let stand_in = crate::relay::start(self.relay_cfg.clone(), spare).await?;
        let old = std::mem::replace(&mut self.relay, stand_in);
        self.relay_down = Some(old.local_addr());
        old.shutdown().await
    }

    /// Starts the relay again on its address after [`Pipeline::stop_relay`].
    pub async fn start_relay(&mut self) -> anyhow::Result<()> {
        let Some(addr) = self.relay_down.take() else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} again (relay): {e}"))?;
        let back = crate::relay::start(self.relay_cfg.clone(), listener).await?;
        std::mem::replace(&mut self.relay, back).shutdown().await
    }

    /// The worker, until [`Pipeline::stop_worker`].
    pub fn worker(&self) -> Option<&crate::worker::WorkerHandle> {
        self.worker.as_ref()
    }

    /// Stops the worker (commands in flight finish, offsets are committed): from then on
    /// nothing but VOD's callbacks reaches the callbacks topic.
    pub async fn stop_worker(&mut self) -> Result<(), crate::worker::WorkerError> {
        match self.worker.take() {
            Some(w) => w.shutdown().await,
            None => Ok(()),
        }
    }

    /// Whether the fold task has ended (by itself, on an error, or stopped).
    pub fn fold_finished(&self) -> bool {
        self.fold.finished()
    }

    /// Stops everything: fold (if still running), worker, relay, api, simulator.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if self.fold.running() {
            self.stop_fold().await.map_err(anyhow::Error::msg)?;
        }
        if let Some(r) = self.reconcile.take() {
            r.shutdown().await?;
        }
        self.stop_worker().await?;
        self.relay.shutdown().await?;
        self.api.shutdown().await?;
        self.sim.shutdown().await;
        Ok(())
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // The fixed default ports are for --serve convenience; any free port will do.
            eprintln!("note: {addr} is in use, the {what} takes a free port instead");
            Ok(tokio::net::TcpListener::bind((addr.ip(), 0)).await?)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot listen on {addr} for the {what}: {e}"
        )),
    }
}

fn flow_name(f: Flow) -> &'static str {
    match f {
        Flow::RecordTranscode => "1  record + auto transcode",
        Flow::StoreOnly => "2  record, store only + manual transcode",
        Flow::ComposeTranscode => "3a record + compose + auto transcode",
        Flow::ComposeOnly => "3b record + compose only + transcode by policy",
    }
}

#[derive(Default)]
struct FlowRow {
    sessions: usize,
    segments: usize,
    composed: usize,
    ready: usize,
    failed: usize,
    by_policy: u32,
    by_hand: u32,
    by_vod: u32,
}

fn print_summary(
    truth: &crate::sim::Truth,
    stats: &crate::sim::Stats,
    fold: Option<&crate::fold::FoldStats>,
) {
    let mut rows: BTreeMap<&'static str, FlowRow> = BTreeMap::new();
    let mut flow_of_video = BTreeMap::new();
    for v in truth.videos.values() {
        flow_of_video.insert(v.video_id.as_str(), v.flow);
        let row = rows.entry(flow_name(v.flow)).or_default();
        if v.origin_kind == "composed" {
            row.composed += 1;
        } else {
            row.segments += 1;
        }
        match v.status.as_str() {
            "ready" => row.ready += 1,
            "failed" => row.failed += 1,
            _ => {}
        }
    }
    for s in truth.streams.values() {
        let flow = s
            .sessions
            .iter()
            .flat_map(|x| x.segments.first())
            .find_map(|v| flow_of_video.get(v.as_str()).copied());
        if let Some(f) = flow {
            rows.entry(flow_name(f)).or_default().sessions += s.sessions.len();
        }
    }
    for ((video, group), n) in &stats.jobs_started {
        let Some(f) = flow_of_video.get(video.as_str()) else {
            continue;
        };
        let row = rows.entry(flow_name(*f)).or_default();
        match group.as_str() {
            "tg-manual" => row.by_hand += n,
            "tg-compose-later" => row.by_policy += n,
            _ => row.by_vod += n,
        }
    }
    println!("\nsummary per flow (videos ready/failed as the api shows them once verified):");
    println!(
        "  {:<48} {:>8} {:>8} {:>8} {:>6} {:>6} {:>10} {:>8} {:>7}",
        "flow",
        "sessions",
        "segments",
        "composed",
        "ready",
        "failed",
        "by policy",
        "by hand",
        "by VOD"
    );
    for (name, r) in &rows {
        println!(
            "  {:<48} {:>8} {:>8} {:>8} {:>6} {:>6} {:>10} {:>8} {:>7}",
            name,
            r.sessions,
            r.segments,
            r.composed,
            r.ready,
            r.failed,
            r.by_policy,
            r.by_hand,
            r.by_vod
        );
    }
    let dup_jobs = stats.jobs_started.values().filter(|n| **n > 1).count();
    println!("\n  transcode jobs started twice for one (video, template group): {dup_jobs}");
    println!(
        "  duplicates absorbed: {} duplicate callbacks acknowledged by the relay{}; {} resubmissions answered by VOD's SessionId memory",
        stats.delivery.duplicates_acknowledged,
        fold.map(|f| format!(", {} duplicate events recognised by the fold", f.duplicates))
            .unwrap_or_default(),
        stats.session_dedup_hits
    );
    let throttled: u64 = stats
        .calls
        .iter()
        .filter(|((_, code), _)| code.starts_with("Throttling"))
        .map(|(_, n)| n)
        .sum();
    println!("  VOD API calls throttled and retried by the worker: {throttled}");
    if stats.undelivered.is_empty() {
        println!("  callbacks lost by VOD: 0 — every callback was acknowledged durably");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovered_counter_is_summed_per_label_and_missing_is_none() {
        let text = "# TYPE live2vod_reconcile_recovered_total counter\n\
live2vod_reconcile_recovered_total{what=\"recording\"} 3\n\
live2vod_reconcile_recovered_total{job=\"x\",what=\"transcode\"} 2\n\
live2vod_reconcile_recovered_total{what=\"recording\",job=\"y\"} 1\n\
live2vod_reconcile_recovered_total_other 9\n\
live2vod_fold_events_total{event_type=\"x\"} 7\n";
        let m = counter_by_label(text, RECOVERED_METRIC, "what").unwrap();
        assert_eq!(m.get("recording"), Some(&4));
        assert_eq!(m.get("transcode"), Some(&2));
        assert_eq!(m.len(), 2);
        assert_eq!(
            counter_by_label("live2vod_fold_events_total 1\n", RECOVERED_METRIC, "what"),
            None
        );
    }

    fn summary(lost: usize, recovered: Option<u64>) -> DemoSummary {
        let per = |n: u64| -> BTreeMap<String, u64> {
            if n == 0 {
                BTreeMap::new()
            } else {
                BTreeMap::from([("recording".to_string(), n)])
            }
        };
        DemoSummary {
            seed: 1,
            sessions: 16,
            videos_matched: 10,
            videos_total: 10,
            streams_matched: 4,
            streams_total: 4,
            lost_by_vod: lost,
            lost_by_fact: per(lost as u64)
                .into_iter()
                .map(|(k, v)| (k, v as usize))
                .collect(),
            callbacks_undelivered: lost + 1,
            lost_after_attempts: 0,
            dropped: lost + 1,
            never_sent: 0,
            recovered,
            recovered_by_fact: per(recovered.unwrap_or(0)),
            duplicate_jobs: 0,
            require_recovered: true,
            converged: true,
            ok: true,
            elapsed_secs: 1.0,
        }
    }

    #[test]
    fn verification_needs_what_vod_never_delivered_and_reconciliation_at_work() {
        assert_eq!(
            summary(0, None).failure(),
            None,
            "nothing lost, no reconcile needed"
        );
        assert_eq!(summary(3, Some(3)).failure(), None);
        let missing = summary(3, None).failure().unwrap_or_default();
        assert!(missing.contains("missing"), "{missing}");
        // Every fact only an undelivered callback carried is recovered once: no fewer, and no
        // more (an observation that beat a callback VOD did deliver is not a recovery).
        let short = summary(3, Some(2)).failure().unwrap_or_default();
        assert!(short.contains("lost by VOD 3"), "{short}");
        assert!(summary(3, Some(0)).failure().is_some());
        assert!(summary(3, Some(4)).failure().is_some());
        assert!(summary(0, Some(1)).failure().is_some());
        let mut s = summary(2, Some(2));
        s.recovered_by_fact = BTreeMap::from([("cover".to_string(), 2)]);
        let wrong_kind = s.failure().unwrap_or_default();
        assert!(
            wrong_kind.contains("recording 2") && wrong_kind.contains("cover 2"),
            "{wrong_kind}"
        );
        let mut s = summary(3, Some(3));
        s.converged = false;
        assert!(s.failure().is_some());
        let mut s = summary(0, None);
        s.duplicate_jobs = 1;
        assert!(s.failure().is_some());
        s.duplicate_jobs = 0;
        s.converged = false;
        assert!(s.failure().is_some());
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&summary(2, Some(2))).unwrap()).unwrap();
        for k in [
            "videos_matched",
            "videos_total",
            "lost_by_vod",
            "recovered",
            "duplicate_jobs",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
    }
}
