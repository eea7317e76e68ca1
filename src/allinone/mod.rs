//! `live2vod run`: relay, fold, worker and api in one process, for small installations.
//! Scale-out deployments run the roles separately (see docs/OPERATIONS.md).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::fold::{run_fold, FoldConfig};
use crate::http::Health;
use crate::kafka::KafkaArgs;
use crate::vod::callback_auth::CallbackVerifier;
use crate::vod::client::VodConfig;

/// Options of `live2vod run`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address of the relay's `POST /callbacks/vod`.
    #[arg(long, env = "LIVE2VOD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// The callback URL exactly as configured in VOD (signatures are computed over it).
    #[arg(
        long,
        env = "LIVE2VOD_CALLBACK_URL",
        required_unless_present = "no_auth"
    )]
    pub callback_url: Option<String>,

    /// VOD's callback auth key (at most 32 characters).
    #[arg(
        long,
        env = "LIVE2VOD_AUTH_KEY",
        hide_env_values = true,
        required_unless_present = "no_auth"
    )]
    pub auth_key: Option<String>,

    /// The previous auth key, accepted too while a rotation is under way.
    #[arg(long, env = "LIVE2VOD_AUTH_KEY_PREVIOUS", hide_env_values = true)]
    pub auth_key_previous: Option<String>,

    /// Accept unsigned callbacks (only behind another authenticating proxy).
    #[arg(long, env = "LIVE2VOD_NO_AUTH", conflicts_with_all = ["auth_key", "auth_key_previous"])]
    pub no_auth: bool,

    /// Seconds a callback's X-VOD-TIMESTAMP may differ from now.
    #[arg(long, env = "LIVE2VOD_TIMESTAMP_WINDOW_SECS", default_value_t = 300)]
    pub timestamp_window_secs: i64,

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

    /// AccessKey secret for the VOD OpenAPI.
    #[arg(long, env = "LIVE2VOD_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: String,

    /// STS security token, when the key pair is temporary.
    #[arg(long, env = "LIVE2VOD_SECURITY_TOKEN", hide_env_values = true)]
    pub security_token: Option<String>,

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

    let auth = if args.no_auth {
        tracing::warn!("callback authentication is DISABLED (--no-auth): anyone who can reach the relay can inject callbacks");
        crate::relay::Auth::Disabled
    } else {
        let (Some(url), Some(key)) = (&args.callback_url, &args.auth_key) else {
            anyhow::bail!("--callback-url and --auth-key are required unless --no-auth");
        };
        crate::relay::Auth::Verify(CallbackVerifier::new(
            url.clone(),
            key.clone(),
            args.auth_key_previous.clone(),
            args.timestamp_window_secs,
        ))
    };
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

    let mut vod = VodConfig::new(&args.region, &args.access_key_id, &args.access_key_secret);
    vod.endpoint = args.vod_endpoint.clone();
    vod.security_token = args.security_token.clone().map(Into::into);
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
    let parts = [relay.health(), api.health(), worker_health, fold_health];
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
    worker.shutdown().await?;
    api.shutdown().await?;
    let _ = ops_stop.send(true);
    let _ = ops.await;
    match fold_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
