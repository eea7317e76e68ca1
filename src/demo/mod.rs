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
use crate::fold::{run_fold, FoldConfig};
use crate::http::Health;
use crate::kafka::mock::EmbeddedBroker;
use crate::kafka::KafkaArgs;
use crate::sim::{Flow, SimConfig, Simulator};
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

    // Relay, api.
    let relay_listener = bind(args.relay_listen, "relay").await?;
    let relay_addr = relay_listener.local_addr()?;
    let callback_url = format!("http://{relay_addr}/callbacks/vod");
    let verifier = CallbackVerifier::new(&callback_url, AUTH_KEY, None, 300);
    let relay = crate::relay::start(
        crate::relay::Config::new(kafka.clone(), crate::relay::Auth::Verify(verifier)),
        relay_listener,
    )
    .await?;
    println!("  relay    {callback_url}");
    let api_listener = bind(args.api_listen, "api").await?;
    let api = crate::api::start(crate::api::Config::new(kafka.clone()), api_listener).await?;
    let api_url = api.base_url();
    println!(
        "  api      {api_url}/v1/videos/{{id}}  {api_url}/v1/streams/{{domain}}/{{app}}/{{stream}}"
    );

    // The simulated Alibaba Live + VOD.
    let mut sim_cfg = SimConfig::new(&callback_url, &callback_url, AUTH_KEY);
    sim_cfg.listen = "127.0.0.1:0".parse()?;
    sim_cfg.access_key_id = ACCESS_KEY_ID.into();
    sim_cfg.access_key_secret = ACCESS_KEY_SECRET.into();
    sim_cfg.sessions = args.sessions;
    sim_cfg.seed = args.seed;
    sim_cfg.api_url = Some(api_url.clone());
    sim_cfg.duplicate_rate = args.duplicate_rate;
    sim_cfg.throttle_rate = args.throttle_rate;
    let sim = Simulator::start(sim_cfg).await?;
    println!("  sim      OpenAPI at {}", sim.vod_endpoint());

    // Worker and fold.
    let mut vod = VodConfig::new("cn-shanghai", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    vod.endpoint = Some(sim.vod_endpoint());
    let worker = crate::worker::start(
        crate::worker::WorkerConfig::new(kafka.clone(), vod),
        Health::default(),
    )
    .await?;
    let policy_text = crate::sim::policy_toml();
    let policy = Policy::parse(&policy_text)?;
    let (stop_fold, stop_rx) = tokio::sync::watch::channel(false);
    let fold_cfg = FoldConfig {
        kafka: kafka.clone(),
        policy,
        group_id: "live2vod-fold".into(),
        batch_max: 5000,
        batch_wait: Duration::from_millis(20),
        dlq_max_ratio: 0.5,
        dlq_window: 1000,
        dlq_min: 100,
        stop_after_records: None,
        transactional_id: None,
    };
    let fold = tokio::spawn(run_fold(fold_cfg, Health::default(), stop_rx));
    println!("  policy   store-* segments: manual; compose-only-* composed: transcode tg-compose-later; else none\n");

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
    let _ = stop_fold.send(true);
    let fold_stats = match fold.await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            println!("fold stopped with an error: {e}");
            None
        }
        Err(e) => {
            println!("fold task failed: {e}");
            None
        }
    };

    print_summary(&truth, &stats, fold_stats.as_ref());
    println!("\n{report}");
    println!("demo took {:.1}s", started.elapsed().as_secs_f64());

    if args.serve {
        println!("\nserving until Ctrl-C:\n  {api_url}/v1/videos/<id>\n  {api_url}/metrics\n  {callback_url}");
        crate::http::shutdown_signal().await;
    }
    worker.shutdown().await?;
    relay.shutdown().await?;
    api.shutdown().await?;
    sim.shutdown().await;
    drop(embedded);
    if report.ok {
        Ok(())
    } else {
        anyhow::bail!(
            "verification failed: the api did not converge to the simulator's ground truth"
        )
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
