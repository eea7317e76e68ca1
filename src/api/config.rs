//! What the user sets: `live2vod api` flags (each with its `LIVE2VOD_*` env var), their
//! defaults (declared once, here, for clap and for [`Config::new`]) and the [`Config`] that
//! [`super::start`] takes. A new api flag is a field of [`Args`] and of [`Config`], both here.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::http::Health;
use crate::kafka::KafkaArgs;
use crate::vod::client::Secret;

/// Default of `--listen` (also of `run --api-listen`).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8081";
/// Default of `--ack-timeout-ms`.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 3000;

/// Options of `live2vod api`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address the HTTP API listens on.
    #[arg(long, env = "LIVE2VOD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Read aggregates from this topic instead of `<prefix>aggregates` (e.g. a topic rebuilt
    /// by `live2vod replay --to-topic`).
    #[arg(long, env = "LIVE2VOD_AGGREGATES_TOPIC")]
    pub aggregates_topic: Option<String>,

    /// How long a transcode request waits for the broker's acknowledgement before 503.
    #[arg(long, env = "LIVE2VOD_ACK_TIMEOUT_MS", default_value_t = DEFAULT_ACK_TIMEOUT_MS)]
    pub ack_timeout_ms: u64,

    /// Serve `/healthz`, `/readyz` and `/metrics` on this address instead of on `--listen`.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Policy file (the fold's): `POST .../transcode` answers 409 with the reason when it
    /// refuses the request, and the console greys the button. Without it the api accepts
    /// every request and the fold decides (by its own policy; without one, it honours them).
    #[command(flatten)]
    pub policy: crate::fold::PolicyArgs,

    /// Operator token: when set, the console at `/`, `/v1/console/*` and `POST .../transcode`
    /// need it (Bearer header, or the console's login). The JSON GETs stay open.
    #[arg(long, env = "LIVE2VOD_OPERATOR_TOKEN", hide_env_values = true, value_parser = secret)]
    pub operator_token: Option<Secret>,
}

/// Secrets parse into [`Secret`] so that `Debug` never shows them.
fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// Everything an api needs, independent of the command line.
#[derive(Clone)]
pub struct Config {
    pub kafka: KafkaArgs,
    /// Topic to read aggregates from (default `<prefix>aggregates`).
    pub aggregates_topic: Option<String>,
    /// Snapshot bytes -> API JSON.
    pub decoder: super::SnapshotDecoder,
    pub ack_timeout: Duration,
    /// Readiness: flipped once the aggregates topic was read up to its end at start.
    pub health: Health,
    /// Mount `/healthz`, `/readyz`, `/metrics` on the API listener too.
    pub serve_ops: bool,
    /// Operator token of the console and the POST (`None`: open).
    pub operator_token: Option<Secret>,
    /// Policy manual requests are checked against (`None`: all accepted; the fold decides).
    pub policy: Option<crate::domain::Policy>,
}

impl Config {
    /// Defaults of the command line, with the temporary JSON decoder (see
    /// [`super::store::default_decoder`]).
    pub fn new(kafka: KafkaArgs) -> Self {
        Config {
            kafka,
            aggregates_topic: None,
            decoder: super::store::default_decoder(),
            ack_timeout: Duration::from_millis(DEFAULT_ACK_TIMEOUT_MS),
            health: Health::default(),
            serve_ops: true,
            operator_token: None,
            policy: None,
        }
    }

    /// The config `live2vod api` runs with.
    pub(super) fn from_args(a: &Args) -> anyhow::Result<Self> {
        let policy = match a.policy.policy {
            Some(_) => Some(a.policy.load()?),
            None => None,
        };
        Ok(Config {
            aggregates_topic: a.aggregates_topic.clone(),
            ack_timeout: Duration::from_millis(a.ack_timeout_ms),
            serve_ops: a.metrics_listen.is_none(),
            operator_token: a.operator_token.clone(),
            policy,
            ..Config::new(a.kafka.clone())
        })
    }
}
