//! `live2vod run`: relay, fold, worker, reconcile and api in one process, for small installations.
//! Scale-out deployments run the roles separately (see docs/OPERATIONS.md).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::fold::{run_fold, FoldConfig};
use crate::http::Health;
use crate::kafka::KafkaArgs;
use crate::vod::client::{Secret, VodConfig};

/// Secrets parse into [`Secret`] so that `Debug` of the options never shows them.
fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// Options of `live2vod run`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address of the relay's `POST /callbacks/vod`.
    #[arg(long, env = "LIVE2VOD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub auth: crate::relay::AuthArgs,

    /// Address of the api (`/v1/videos/{id}`, `/v1/streams/...`).
    #[arg(long, env = "LIVE2VOD_API_LISTEN", default_value = "0.0.0.0:8081")]
    pub api_listen: SocketAddr,

    /// Policy file (TOML), as for `fold`.
    #[arg(long, env = "LIVE2VOD_POLICY")]
    pub policy: Option<PathBuf>,

    /// VOD OpenAPI endpoint; default `https://vod.<region>.aliyuncs.com/`.
    #[arg(long, env = "LIVE2VOD_VOD_ENDPOINT", value_name = "URL")]
    pub vod_endpoint: Option<String>,

    /// VOD region.
    #[arg(long, env = "LIVE2VOD_REGION", default_value = "cn-shanghai")]
    pub region: String,

    /// AccessKey id for the VOD OpenAPI.
    #[arg(long, env = "LIVE2VOD_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: String,

    /// AccessKey secret for the VOD OpenAPI. Never logged.
    #[arg(long, env = "LIVE2VOD_ACCESS_KEY_SECRET", hide_env_values = true, value_parser = secret)]
    pub access_key_secret: Secret,

    /// STS security token, when the key pair is temporary. Never logged.
    #[arg(long, env = "LIVE2VOD_SECURITY_TOKEN", hide_env_values = true, value_parser = secret)]
    pub security_token: Option<Secret>,

    /// Seconds between reconcile sweep cycles (see `live2vod reconcile --help`).
    #[arg(long, env = "LIVE2VOD_SWEEP_INTERVAL_SECS", default_value_t = crate::reconcile::config::DEFAULT_SWEEP_INTERVAL_SECS)]
    pub sweep_interval_secs: u64,

    /// VOD calls per second of the reconcile role.
    #[arg(long, env = "LIVE2VOD_MAX_QPS", default_value_t = crate::reconcile::config::DEFAULT_MAX_QPS)]
    pub max_qps: f64,

    /// Address of `/healthz`, `/readyz` (ready when every role is) and `/metrics`.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    pub metrics_listen: SocketAddr,
}

/// Runs the four roles until SIGTERM/SIGINT, then stops them in order: relay first (no new
/// callbacks), then fold and worker finish their work in flight, then the api.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    let kafka = args.kafka.clone();
    crate::kafka::admin::ensure_topics(&kafka).await?;
    let policy = crate::fold::load_policy(args.policy.as_deref())?;

    let auth = args.auth.auth()?;
    if matches!(auth, crate::relay::Auth::Disabled) {
        tracing::warn!("callback authentication is DISABLED (--no-auth): anyone who can reach the relay can inject callbacks");
    }
    let relay_listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (relay): {e}", args.listen))?;
    let relay = crate::relay::start(
        crate::relay::Config::new(kafka.clone(), auth),
        relay_listener,
    )
    .await?;
    let api_listener = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (api): {e}", args.api_listen))?;
    let api = crate::api::start(crate::api::Config::new(kafka.clone()), api_listener).await?;

    let mut vod = VodConfig::new(
        &args.region,
        &args.access_key_id,
        args.access_key_secret.expose(),
    );
    vod.endpoint = args.vod_endpoint.clone();
    vod.security_token = args.security_token.clone();
    let mut rc = crate::reconcile::ReconcileConfig::new(kafka.clone(), vod.clone(), policy.clone());
    rc.sweep_interval = Duration::from_secs(args.sweep_interval_secs.max(1));
    rc.max_qps = args.max_qps;
    let reconcile_health = Health::default();
    let reconcile = crate::reconcile::start(rc, reconcile_health.clone()).await?;
    let worker_health = Health::default();
    let worker = crate::worker::start(
        crate::worker::WorkerConfig::new(kafka.clone(), vod),
        worker_health.clone(),
    )
    .await?;

    let fold_health = Health::default();
    let (stop_fold, stop_rx) = tokio::sync::watch::channel(false);
    let fold = tokio::spawn(run_fold(
        FoldConfig::new(kafka.clone(), policy),
        fold_health.clone(),
        stop_rx,
    ));

    // One readiness for the process: every role ready.
    let all = Health::default();
    let parts = [
        relay.health(),
        api.health(),
        worker_health,
        fold_health,
        reconcile_health,
    ];
    let (ops_stop, mut ops_rx) = tokio::sync::watch::channel(false);
    let a = all.clone();
    tokio::spawn(async move {
        loop {
            a.set_ready(parts.iter().all(Health::is_ready));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let ops = tokio::spawn(crate::http::serve(
        args.metrics_listen,
        crate::http::ops_router(all),
        async move {
            let _ = ops_rx.wait_for(|s| *s).await;
        },
    ));
    tracing::info!(relay = %args.listen, api = %args.api_listen, metrics = %args.metrics_listen, "live2vod run: all roles started");

    // Stop on SIGTERM/SIGINT, or when the fold stops on its own (an error): a process whose
    // fold is gone must exit so the orchestrator restarts it, not linger half-alive.
    let mut fold = fold;
    let fold_result = tokio::select! {
        _ = crate::http::shutdown_signal() => None,
        r = &mut fold => Some(r),
    };
    relay.shutdown().await?;
    let fold_error = match fold_result {
        Some(Ok(Ok(stats))) => {
            tracing::info!(?stats, "fold stopped");
            None
        }
        Some(Ok(Err(e))) => Some(anyhow::anyhow!("the fold stopped: {e}")),
        Some(Err(e)) => Some(anyhow::anyhow!("the fold task failed: {e}")),
        None => {
            let _ = stop_fold.send(true);
            match fold.await {
                Ok(Ok(stats)) => {
                    tracing::info!(?stats, "fold stopped");
                    None
                }
                Ok(Err(e)) => Some(anyhow::anyhow!("the fold stopped: {e}")),
                Err(e) => Some(anyhow::anyhow!("the fold task failed: {e}")),
            }
        }
    };
    reconcile.shutdown().await?;
    worker.shutdown().await?;
    api.shutdown().await?;
    let _ = ops_stop.send(true);
    let _ = ops.await;
    match fold_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
