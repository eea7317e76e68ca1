//! What the user sets: `live2vod relay` flags (each with its `LIVE2VOD_*` env var), their
//! defaults (declared once, here, for clap and for [`Config::new`]) and the [`Config`] that
//! [`super::start`] takes. A new relay flag is a field of [`Args`] and of [`Config`], both here.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::http::{Health, ServeLimits};
use crate::kafka::KafkaArgs;
use crate::vod::callback_auth::CallbackVerifier;

/// Default of `--listen` (also of `run --listen`).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default of `--max-body-bytes`: VOD's callbacks are a few KiB at most.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default of `--ack-timeout-ms`: well below VOD's 5 s.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 3000;
/// Default of `--body-timeout-ms`: VOD gives up after 5 s, so a slower body is never counted.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 5000;
/// Default of `--timestamp-window-secs` (the 5 minutes VOD's docs suggest).
pub const DEFAULT_TIMESTAMP_WINDOW_SECS: i64 = 300;

/// Options of `live2vod relay`.
#[derive(ClapArgs, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address the callback endpoint (`POST /callbacks/vod`) listens on.
    #[arg(long, env = "LIVE2VOD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub auth: AuthArgs,

    /// Largest callback body accepted, in bytes (larger: 413).
    #[arg(long, env = "LIVE2VOD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// How long a callback waits for the broker's acknowledgement before the relay answers
    /// 503 (VOD gives up after 5 s and retries; keep this well below).
    #[arg(long, env = "LIVE2VOD_ACK_TIMEOUT_MS", default_value_t = DEFAULT_ACK_TIMEOUT_MS)]
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
    #[arg(long, env = "LIVE2VOD_TIMESTAMP_WINDOW_SECS", default_value_t = DEFAULT_TIMESTAMP_WINDOW_SECS)]
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
    /// The command line's defaults (the `DEFAULT_*` constants above, which the flags use too).
    pub fn new(kafka: KafkaArgs, auth: Auth) -> Self {
        Config {
            kafka,
            auth,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ack_timeout: Duration::from_millis(DEFAULT_ACK_TIMEOUT_MS),
            body_timeout: Duration::from_millis(DEFAULT_BODY_TIMEOUT_MS),
            limits: ServeLimits::default(),
            relay_id: default_relay_id(),
            health: Health::default(),
            serve_ops: true,
        }
    }

    pub(super) fn from_args(a: &Args, health: Health, serve_ops: bool) -> anyhow::Result<Self> {
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
            relay_id: a.relay_id.clone().unwrap_or_else(default_relay_id),
            health,
            serve_ops,
        })
    }
}

/// The relay id when `--relay-id` is not given: the host name, or `relay`.
fn default_relay_id() -> String {
    crate::clock::hostname().unwrap_or_else(|| "relay".to_string())
}
