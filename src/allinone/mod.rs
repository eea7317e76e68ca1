//! `live2vod run`: relay, fold, worker, reconcile and api in one process, for small installations.
//! Scale-out deployments run the roles separately (see docs/OPERATIONS.md).
//!
//! The options are the roles' own argument groups (flattened), so a flag shared with a role
//! is declared once, in that role's `config.rs`.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::http::Health;
use crate::kafka::KafkaArgs;
use crate::role::bind;

/// Options of `live2vod run`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address of the relay's `POST /callbacks/vod`.
    #[arg(long, env = "LIVE2VOD_LISTEN", default_value = crate::relay::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub auth: crate::relay::AuthArgs,

    /// Address of the api (`/v1/videos/{id}`, `/v1/streams/...`).
    #[arg(long, env = "LIVE2VOD_API_LISTEN", default_value = crate::api::DEFAULT_LISTEN)]
    pub api_listen: SocketAddr,

    #[command(flatten)]
    pub policy: crate::fold::PolicyArgs,

    #[command(flatten)]
    pub state: crate::fold::StateArgs,

    #[command(flatten)]
    pub vod: crate::worker::VodArgs,

    /// Seconds between reconcile sweep cycles (see `live2vod reconcile --help`).
    #[arg(long, env = "LIVE2VOD_SWEEP_INTERVAL_SECS", default_value_t = crate::reconcile::config::DEFAULT_SWEEP_INTERVAL_SECS)]
    pub sweep_interval_secs: u64,

    /// VOD calls per second of the reconcile role.
    #[arg(long, env = "LIVE2VOD_MAX_QPS", default_value_t = crate::reconcile::config::DEFAULT_MAX_QPS)]
    pub max_qps: f64,

    /// Address of `/healthz`, `/readyz` (ready when every role is) and `/metrics`.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", default_value = crate::http::DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
}

/// Runs the four roles until SIGTERM/SIGINT or until one of them stops on its own (an error:
/// a process with a role gone must exit so the orchestrator restarts it, not linger
/// half-alive), then stops them in order: relay first (no new callbacks), then fold and
/// worker finish their work in flight, then the api.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    let kafka = args.kafka.clone();
    crate::kafka::admin::ensure_topics(&kafka).await?;
    let policy = args.policy.load()?;

    let auth = args.auth.auth()?;
    let relay_listener = bind(args.listen, "relay").await?;
    let relay = crate::relay::start(
        crate::relay::Config::new(kafka.clone(), auth),
        relay_listener,
    )
    .await?;
    let api_listener = bind(args.api_listen, "api").await?;
    let mut api_cfg = crate::api::Config::new(kafka.clone());
    // The same policy as the fold's: the console greys the transcode button, and the POST
    // answers 409, where the policy refuses manual requests (as `api --policy` does).
    api_cfg.policy = Some(policy.clone());
    let api = crate::api::start(api_cfg, api_listener).await?;
    let mut rc =
        crate::reconcile::ReconcileConfig::new(kafka.clone(), args.vod.config(), policy.clone());
    rc.sweep_interval = Duration::from_secs(args.sweep_interval_secs.max(1));
    rc.max_qps = args.max_qps;
    let reconcile = crate::reconcile::start(rc, Health::default()).await?;
    let worker = crate::worker::start(
        crate::worker::WorkerConfig::new(kafka.clone(), args.vod.config()),
        Health::default(),
    )
    .await?;
    let mut fold_cfg = crate::fold::FoldConfig::new(kafka.clone(), policy);
    fold_cfg.state = args.state.config();
    let fold = crate::fold::start(fold_cfg, Health::default());

    // One readiness for the process: every role ready.
    let all = Health::default();
    let parts = [
        relay.health(),
        api.health(),
        worker.health(),
        fold.health(),
        reconcile.health(),
    ];
    let (ops_stop, mut ops_rx) = tokio::sync::watch::channel(false);
    let a = all.clone();
    let readiness = tokio::spawn(async move {
        loop {
            a.set_ready(parts.iter().all(Health::is_ready));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let ops = tokio::spawn(crate::http::serve(
        args.metrics_listen,
        crate::http::ops_router(all.clone()),
        async move {
            let _ = ops_rx.wait_for(|s| *s).await;
        },
    ));
    tracing::info!(relay = %args.listen, api = %args.api_listen, metrics = %args.metrics_listen, "live2vod run: all roles started");

    tokio::select! {
        _ = crate::http::shutdown_signal() => {}
        _ = relay.role().ended() => tracing::error!("the relay stopped on its own"),
        _ = api.role().ended() => tracing::error!("the api stopped on its own"),
        _ = worker.role().ended() => tracing::error!("the worker stopped on its own"),
        _ = fold.ended() => tracing::error!("the fold stopped on its own"),
        _ = reconcile.ended() => tracing::error!("reconcile stopped on its own"),
    }
    readiness.abort();
    all.set_ready(false);
    // Every role is stopped whatever the others report; the first error is the exit's.
    let results = [
        relay.shutdown().await,
        fold.shutdown().await.map(drop),
        reconcile.shutdown().await,
        worker.shutdown().await.map_err(anyhow::Error::from),
        api.shutdown().await,
    ];
    let _ = ops_stop.send(true);
    let _ = ops.await;
    results.into_iter().collect()
}
