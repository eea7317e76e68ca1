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
use crate::fold::{run_fold, FoldConfig, FoldStats};
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

    let mut pcfg = PipelineConfig::new(kafka.clone(), Policy::parse(&crate::sim::policy_toml())?);
    pcfg.relay_listen = args.relay_listen;
    pcfg.api_listen = args.api_listen;
    pcfg.sim.sessions = args.sessions;
    pcfg.sim.seed = args.seed;
    pcfg.sim.duplicate_rate = args.duplicate_rate;
    pcfg.sim.throttle_rate = args.throttle_rate;
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
        "playing {} callbacks of {} streams (shuffled, {:.0}% delivered twice, {:.0}% of API calls throttled)...",
        scenario.events.len(),
        scenario.streams.len(),
        args.duplicate_rate * 100.0,
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
        "  delivered: {} acknowledged, {} retried, {} lost by VOD\n",
        progress.acknowledged, progress.retried, progress.lost
    );

    println!(
        "verifying the api against the simulator's ground truth (up to {} s)...",
        args.timeout
    );
    let report = sim
        .verify(&api_url, Duration::from_secs(args.timeout))
        .await;
    let stats = sim.stats();
    let truth = sim.truth();

    // Stop the fold to read its counters.
    let fold_stats = match pipeline.stop_fold().await {
        Ok(s) => Some(s),
        Err(e) => {
            println!("{e}");
            None
        }
    };

    print_summary(&truth, &stats, fold_stats.as_ref());
    println!("\n{report}");
    println!("demo took {:.1}s", started.elapsed().as_secs_f64());

    if args.serve {
        println!("\nserving until Ctrl-C:\n  console  {api_url}/\n  {api_url}/v1/videos/<id>\n  {api_url}/metrics\n  {callback_url}");
        crate::http::shutdown_signal().await;
    }
    pipeline.shutdown().await?;
    drop(embedded);
    if report.ok {
        Ok(())
    } else {
        anyhow::bail!(
            "verification failed: the api did not converge to the simulator's ground truth"
        )
    }
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
            relay_ack_timeout: crate::relay::Config::new(
                KafkaArgs::for_brokers(""),
                crate::relay::Auth::Disabled,
            )
            .ack_timeout,
            sim,
        }
    }
}

/// Relay, api, the simulated Live+VOD, worker and fold, wired in one process on a Kafka whose
/// topics exist (the demo's and the in-process integration tests' common setup).
pub struct Pipeline {
    pub relay: crate::relay::RelayHandle,
    pub api: crate::api::ApiHandle,
    pub sim: SimHandle,
    worker: Option<crate::worker::WorkerHandle>,
    /// The relay's `POST /callbacks/vod` URL (also the URL VOD signs).
    pub callback_url: String,
    /// The api's base URL.
    pub api_url: String,
    /// The fold, which tests may stop or crash.
    pub fold: FoldRunner,
}

struct FoldTask {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<FoldStats, crate::fold::FoldError>>,
}

/// The pipeline's fold task and the configuration to start another one with.
pub struct FoldRunner {
    task: Option<FoldTask>,
    cfg: FoldConfig,
}

impl FoldRunner {
    fn start(cfg: FoldConfig) -> Self {
        let mut f = FoldRunner { task: None, cfg };
        f.spawn();
        f
    }

    fn spawn(&mut self) {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_fold(self.cfg.clone(), Health::default(), stop_rx));
        self.task = Some(FoldTask { stop, task });
    }

    /// Stops the fold (the batch in flight is finished and committed) and returns its
    /// counters; an error says why it had stopped or that it was stopped already.
    pub async fn stop(&mut self) -> Result<FoldStats, String> {
        let Some(f) = self.task.take() else {
            return Err("the fold was stopped already".into());
        };
        let _ = f.stop.send(true);
        match f.task.await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(format!("fold stopped with an error: {e}")),
            Err(e) => Err(format!("fold task failed: {e}")),
        }
    }

    /// Kills the fold abruptly (its task is aborted wherever it is: mid-batch, between the
    /// produce and the commit, ...) and starts a new one in the same consumer group, which
    /// restores from the aggregates topic and resumes from the last committed offsets.
    pub async fn crash_and_restart(&mut self) {
        if let Some(f) = self.task.take() {
            f.task.abort();
            let _ = f.task.await;
        }
        self.spawn();
    }

    /// Whether the fold task has ended (by itself, on an error, or stopped).
    pub fn finished(&self) -> bool {
        self.task.as_ref().is_none_or(|f| f.task.is_finished())
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
        let relay = crate::relay::start(relay_cfg, relay_listener).await?;
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
            crate::worker::WorkerConfig::new(kafka.clone(), vod),
            Health::default(),
        )
        .await?;
        let fold_cfg = FoldConfig::new(kafka, cfg.policy);
        let fold = FoldRunner::start(fold_cfg);
        Ok(Pipeline {
            relay,
            api,
            sim,
            worker: Some(worker),
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
    if stats.lost_by_vod.is_empty() {
        println!("  callbacks lost by VOD (3 failed attempts): 0 — every callback was acknowledged durably");
    } else {
        println!(
            "  callbacks lost by VOD (3 failed attempts): {} — NOT recovered: catch-up through ListLiveRecordVideo is not implemented yet; verify skips the videos concerned",
            stats.lost_by_vod.len()
        );
    }
}
