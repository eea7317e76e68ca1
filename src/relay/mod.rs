//! The `relay` role: VOD's callback endpoint. Verifies the signature, keeps the raw body and
//! answers 200 only once the broker acknowledged the write (see DESIGN.md, HTTP contract).
//!
//! Library entry for the demo and tests: [`start`] with a [`Config`] and a bound listener,
//! then [`RelayHandle::shutdown`] (or [`RelayHandle::run_until`]).
mod handler;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::{Health, ServeLimits};
use crate::kafka::admin::{ensure_topics, AdminError};
use crate::kafka::producer::idempotent_producer;
use crate::kafka::KafkaArgs;
use crate::vod::callback_auth::CallbackVerifier;

pub use handler::{
    router, RelayError, RelayState, HEADER_EVENT_TYPE, HEADER_KEY_VERSION, HEADER_RECEIVED_AT_MS,
    HEADER_RELAY_ID,
};

/// Default of `--body-timeout-ms`: VOD gives up after 5 s, so a slower body is never counted.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 5000;

/// Options of `live2vod relay`.
#[derive(ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address the callback endpoint (`POST /callbacks/vod`) listens on.
    #[arg(long, env = "LIVE2VOD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub auth: AuthArgs,

    /// Largest callback body accepted, in bytes (larger: 413).
    #[arg(long, env = "LIVE2VOD_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// How long a callback waits for the broker's acknowledgement before the relay answers
    /// 503 (VOD gives up after 5 s and retries; keep this well below).
    #[arg(long, env = "LIVE2VOD_ACK_TIMEOUT_MS", default_value_t = 3000)]
    pub ack_timeout_ms: u64,

    /// Time a client has to send a request's line and headers (and how long an idle
    /// keep-alive connection stays open); slower clients are disconnected without an answer.
    #[arg(long, env = "LIVE2VOD_HEADER_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = ServeLimits::DEFAULT_HEADER_TIMEOUT_MS)]
    pub header_timeout_ms: u64,

    /// Time an authenticated callback has to deliver its body once its headers arrived
    /// (slower: 408 and the connection is closed). VOD itself gives up after 5 s.
    #[arg(long, env = "LIVE2VOD_BODY_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = DEFAULT_BODY_TIMEOUT_MS)]
    pub body_timeout_ms: u64,

    /// Connections served at once; beyond it the relay stops accepting until one closes.
    #[arg(long, env = "LIVE2VOD_MAX_CONNECTIONS", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), default_value_t = ServeLimits::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Identifies this relay instance in the `live2vod-relay-id` header of every record
    /// (default: the host name).
    #[arg(long, env = "LIVE2VOD_RELAY_ID")]
    pub relay_id: Option<String>,

    /// Serve `/healthz`, `/readyz` and `/metrics` on this address instead of on `--listen`.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

/// How VOD's callbacks are authenticated: shared by `relay` and `run`.
#[derive(ClapArgs, Clone)]
pub struct AuthArgs {
    /// The callback URL exactly as configured in VOD; it is part of what VOD signs
    /// (never rebuilt from the Host header).
    #[arg(
        long,
        env = "LIVE2VOD_CALLBACK_URL",
        required_unless_present = "no_auth"
    )]
    pub callback_url: Option<String>,

    /// VOD callback auth key (`X-VOD-SIGNATURE = md5(url|timestamp|key)`). Never logged.
    #[arg(
        long,
        env = "LIVE2VOD_AUTH_KEY",
        hide_env_values = true,
        required_unless_present = "no_auth"
    )]
    pub auth_key: Option<String>,

    /// The previous auth key, still accepted during a key rotation (its use is counted in
    /// `live2vod_relay_verified_total{key_version="previous"}`). Never logged.
    #[arg(long, env = "LIVE2VOD_AUTH_KEY_PREVIOUS", hide_env_values = true)]
    pub auth_key_previous: Option<String>,

    /// Accept callbacks without checking their signature. For local tests only: anyone who
    /// can reach the port can then inject events.
    #[arg(long, env = "LIVE2VOD_NO_AUTH", conflicts_with_all = ["auth_key", "auth_key_previous"])]
    pub no_auth: bool,

    /// Accepted distance between `X-VOD-TIMESTAMP` and now, in seconds (outside: 401).
    #[arg(long, env = "LIVE2VOD_TIMESTAMP_WINDOW_SECS", default_value_t = 300)]
    pub timestamp_window_secs: i64,
}

impl AuthArgs {
    /// The verifier these flags describe (an empty key counts as none).
    pub fn auth(&self) -> anyhow::Result<Auth> {
        if self.no_auth {
            return Ok(Auth::Disabled);
        }
        match (&self.callback_url, &self.auth_key) {
            (Some(url), Some(key)) if !key.is_empty() => Ok(Auth::Verify(CallbackVerifier::new(
                url.clone(),
                key.clone(),
                self.auth_key_previous.clone().filter(|k| !k.is_empty()),
                self.timestamp_window_secs,
            ))),
            _ => anyhow::bail!(
                "--callback-url and a non-empty --auth-key are required (or --no-auth for local tests)"
            ),
        }
    }
}

impl std::fmt::Debug for AuthArgs {
    // Auth keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |k: &Option<String>| k.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthArgs")
            .field("callback_url", &self.callback_url)
            .field("auth_key", &redact(&self.auth_key))
            .field("auth_key_previous", &redact(&self.auth_key_previous))
            .field("no_auth", &self.no_auth)
            .field("timestamp_window_secs", &self.timestamp_window_secs)
            .finish()
    }
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("kafka", &self.kafka)
            .field("listen", &self.listen)
            .field("auth", &self.auth)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("ack_timeout_ms", &self.ack_timeout_ms)
            .field("header_timeout_ms", &self.header_timeout_ms)
            .field("body_timeout_ms", &self.body_timeout_ms)
            .field("max_connections", &self.max_connections)
            .field("relay_id", &self.relay_id)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

/// How callbacks are authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Check `X-VOD-SIGNATURE` / `X-VOD-TIMESTAMP`.
    Verify(CallbackVerifier),
    /// Accept everything (`--no-auth`).
    Disabled,
}

/// Everything a relay needs, independent of the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub kafka: KafkaArgs,
    pub auth: Auth,
    pub max_body_bytes: usize,
    pub ack_timeout: Duration,
    /// How long an authenticated callback may take to deliver its body (then 408).
    pub body_timeout: Duration,
    /// Header-read timeout and connection cap of the callback listener.
    pub limits: ServeLimits,
    pub relay_id: String,
    /// Readiness flag flipped once topics are checked and the producer reached the cluster.
    pub health: Health,
    /// Mount `/healthz`, `/readyz`, `/metrics` on the callback listener too.
    pub serve_ops: bool,
}

impl Config {
    /// Defaults of the command line (64 KiB bodies, 3 s ack timeout, 10 s for headers, 5 s for
    /// the body, 1024 connections, host name as relay id).
    pub fn new(kafka: KafkaArgs, auth: Auth) -> Self {
        Config {
            kafka,
            auth,
            max_body_bytes: 64 * 1024,
            ack_timeout: Duration::from_millis(3000),
            body_timeout: Duration::from_millis(DEFAULT_BODY_TIMEOUT_MS),
            limits: ServeLimits::default(),
            relay_id: hostname(),
            health: Health::default(),
            serve_ops: true,
        }
    }

    fn from_args(a: &Args, health: Health, serve_ops: bool) -> anyhow::Result<Self> {
        let auth = a.auth.auth()?;
        Ok(Config {
            kafka: a.kafka.clone(),
            auth,
            max_body_bytes: a.max_body_bytes,
            ack_timeout: Duration::from_millis(a.ack_timeout_ms),
            body_timeout: Duration::from_millis(a.body_timeout_ms),
            limits: ServeLimits {
                header_timeout: Duration::from_millis(a.header_timeout_ms),
                max_connections: a.max_connections,
            },
            relay_id: a.relay_id.clone().unwrap_or_else(hostname),
            health,
            serve_ops,
        })
    }
}

/// The relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("topics: {0}")]
    Topics(#[from] AdminError),
    #[error("the producer cannot reach the cluster at {brokers}: {error}")]
    Unreachable { brokers: String, error: String },
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
}

/// A running relay.
pub struct RelayHandle {
    addr: SocketAddr,
    health: Health,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RelayHandle {
    /// The address the callback endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/callbacks/vod`.
    pub fn callback_endpoint(&self) -> String {
        format!("http://{}/callbacks/vod", self.addr)
    }

    /// The relay's readiness flag.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Stops accepting, finishes in-flight requests, flushes the producer.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .map_err(|e| anyhow::anyhow!("relay task: {e}"))?
    }

    /// Serves until `signal` resolves (then shuts down gracefully) or the server fails.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = signal => self.shutdown().await,
            r = &mut self.task => r.map_err(|e| anyhow::anyhow!("relay task: {e}"))?,
        }
    }
}

/// Creates the topics if needed, connects the producer, then serves callbacks on `listener`.
/// Returns once the relay is ready.
pub async fn start(cfg: Config, listener: TcpListener) -> Result<RelayHandle, StartError> {
    if matches!(cfg.auth, Auth::Disabled) {
        tracing::warn!("!!! callback signature checks are DISABLED (--no-auth): anyone who can reach this port can inject events; never run like this in production !!!");
    }
    ensure_topics(&cfg.kafka).await?;
    let producer = idempotent_producer(&cfg.kafka)?;
    let topic = cfg.kafka.topics().callbacks;
    wait_connected(&producer, &topic, &cfg.kafka.brokers).await?;
    let addr = listener.local_addr()?;
    let (fatal_tx, mut fatal_rx) = tokio::sync::watch::channel::<Option<String>>(None);
    let state = RelayState::new(&cfg, producer.clone(), topic, fatal_tx);
    let mut app = router(state);
    if cfg.serve_ops {
        app = app.merge(crate::http::ops_router(cfg.health.clone()));
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let health = cfg.health.clone();
    let task_health = health.clone();
    let limits = cfg.limits;
    let task = tokio::spawn(async move {
        let fatal_watch = fatal_rx.clone();
        let served = crate::http::serve_on_with(
            listener,
            app,
            async move {
                let mut fatal_rx = fatal_watch;
                tokio::select! {
                    _ = stop_rx => {}
                    _ = fatal_rx.wait_for(Option::is_some) => {}
                }
                task_health.set_ready(false);
            },
            limits,
        )
        .await;
        // Whatever is still queued (including records whose requests timed out) gets its
        // chance to reach the broker before the process ends.
        let flushed = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
            .await
            .map_err(|e| anyhow::anyhow!("flush task: {e}"))?;
        if let Err(e) = flushed {
            tracing::warn!(error = %e, "producer flush at shutdown did not complete");
        }
        tracing::info!("relay stopped");
        if let Some(reason) = fatal_rx.borrow_and_update().clone() {
            anyhow::bail!("the Kafka producer hit a fatal error ({reason}); restart the relay");
        }
        served
    });
    health.set_ready(true);
    tracing::info!(%addr, relay_id = %cfg.relay_id, "relay ready");
    Ok(RelayHandle {
        addr,
        health,
        stop: Some(stop_tx),
        task,
    })
}

async fn wait_connected(
    producer: &FutureProducer,
    topic: &str,
    brokers: &str,
) -> Result<(), StartError> {
    let producer = producer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map(|_| ())
    })
    .await
    .map_err(|e| StartError::Unreachable {
        brokers: brokers.to_string(),
        error: e.to_string(),
    })?
    .map_err(|e| StartError::Unreachable {
        brokers: brokers.to_string(),
        error: e.to_string(),
    })
}

/// Runs the role until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    crate::metrics::install();
    let health = Health::default();
    let cfg = Config::from_args(&args, health.clone(), args.metrics_listen.is_none())?;
    if let Some(addr) = args.metrics_listen {
        crate::http::spawn_ops_listener(addr, health).await?;
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let handle = start(cfg, listener).await?;
    handle.run_until(crate::http::shutdown_signal()).await
}

/// The host name (for `--relay-id`), or `relay` when it cannot be read.
pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "relay".to_string())
}
