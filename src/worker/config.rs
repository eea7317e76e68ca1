//! What the user sets: `live2vod worker` flags (each with its `LIVE2VOD_*` env var), their
//! defaults (declared once, here, for clap and for [`WorkerConfig::new`]) and the
//! [`WorkerConfig`] that [`super::start`] takes. A new worker flag is a field of [`Args`] and
//! of [`WorkerConfig`], both here.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;

use super::WorkerError;
use crate::kafka::KafkaArgs;
use crate::vod::client::{RetryPolicy, Secret, VodConfig};

/// Secrets parse into [`Secret`] so that `Debug` of the options never shows them.
fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

const LONG_ABOUT: &str = "\
Execute commands against the Alibaba Cloud VOD OpenAPI and feed the outcomes back as events.

Consumes <prefix>commands in a consumer group (--group-id) and runs each command:
  SubmitTranscode  -> SubmitTranscodeJobs with SessionId = command id
                      -> live2vod.TranscodeSubmitted, or live2vod.TranscodeRejected on a
                         permanent VOD error (e.g. Forbidden.IllegalStatus)
  TrackCompose     -> at its deadline, GetVideoInfo -> live2vod.VideoInfoObserved
  RefreshPlayInfo  -> GetPlayInfo -> live2vod.PlayInfoResolved
Outcomes go to <prefix>callbacks keyed by VideoId; undecodable commands go to <prefix>dlq.

Once in effect: finished command ids are appended to the compacted <prefix>worker-ledger
after the outcome is acknowledged, and the ledger is read fully before any command runs, so
restarts, rebalances and duplicate commands skip finished work. Offsets are committed only
after the ledger write, per partition up to the lowest unfinished command. A crash between
the VOD call and the ledger write re-runs the command; VOD drops the repeated submission
because of its SessionId (7-day de-duplication), and the other commands only read.

Throttling, 5xx and timeouts are retried with jittered exponential backoff; a command that
still fails stays uncommitted and is retried later, never dropped.

SIGTERM: stop reading, finish running commands (--shutdown-timeout-secs), commit, exit.
/readyz turns ready once the ledger is loaded.

Every flag also reads its LIVE2VOD_* environment variable; pass the AccessKey secret through
LIVE2VOD_ACCESS_KEY_SECRET rather than the command line.";

/// How the VOD OpenAPI is reached: shared by `worker` and `run`.
#[derive(ClapArgs, Debug, Clone)]
pub struct VodArgs {
    /// VOD OpenAPI endpoint (RPC style). Default: `https://vod.<region>.aliyuncs.com/`.
    /// Point it at `live2vod sim` for tests and the demo.
    #[arg(long, env = "LIVE2VOD_VOD_ENDPOINT", value_name = "URL")]
    pub vod_endpoint: Option<String>,

    /// Region of the VOD service.
    #[arg(long, env = "LIVE2VOD_REGION", default_value = "cn-shanghai")]
    pub region: String,

    /// AccessKey id the requests are signed with (a RAM user allowed SubmitTranscodeJobs,
    /// GetVideoInfo and GetPlayInfo).
    #[arg(long, env = "LIVE2VOD_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: String,

    /// AccessKey secret. Prefer the env var over the flag (flags show in `ps`).
    #[arg(long, env = "LIVE2VOD_ACCESS_KEY_SECRET", hide_env_values = true, value_parser = secret)]
    pub access_key_secret: Secret,

    /// STS security token, when the AccessKey pair is temporary.
    #[arg(long, env = "LIVE2VOD_SECURITY_TOKEN", hide_env_values = true, value_parser = secret)]
    pub security_token: Option<Secret>,
}

impl VodArgs {
    /// The client configuration these flags describe (timeout and retries at their defaults).
    pub fn config(&self) -> VodConfig {
        let mut vod = VodConfig::new(
            &self.region,
            &self.access_key_id,
            self.access_key_secret.expose(),
        );
        vod.endpoint = self.vod_endpoint.clone();
        vod.security_token = self.security_token.clone();
        vod
    }
}

/// Default of `--group-id`.
pub const DEFAULT_GROUP: &str = "live2vod-worker";
/// Default of `--concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Default of `--max-pending`.
pub const DEFAULT_MAX_PENDING: usize = 10_000;
/// Default of `--shutdown-timeout-secs`.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// Default of `--vod-timeout-secs`.
pub const DEFAULT_VOD_TIMEOUT_SECS: u64 = crate::vod::client::DEFAULT_TIMEOUT_SECS;
/// Default of `--vod-max-attempts`.
pub const DEFAULT_VOD_MAX_ATTEMPTS: u32 = RetryPolicy::DEFAULT_MAX_ATTEMPTS;

/// Options of `live2vod worker`.
///
/// Consumes `<prefix>commands` in a consumer group, calls the Alibaba Cloud VOD OpenAPI
/// (SubmitTranscodeJobs, GetVideoInfo, GetPlayInfo) and writes the outcomes as `live2vod.*`
/// events to `<prefix>callbacks`. Finished command ids are kept on `<prefix>worker-ledger`, so
/// restarts, rebalances and duplicate commands never execute a command twice in effect.
#[derive(ClapArgs, Debug, Clone)]
#[command(after_long_help = LONG_ABOUT)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub vod: VodArgs,

    /// Consumer group of the workers; instances in one group share the partitions.
    #[arg(long, env = "LIVE2VOD_GROUP_ID", default_value = DEFAULT_GROUP)]
    pub group_id: String,

    /// VOD calls running at once (commands waiting for a compose deadline do not count).
    #[arg(long, env = "LIVE2VOD_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,

    /// Commands held at once (running or waiting for their deadline) before reading pauses.
    #[arg(long, env = "LIVE2VOD_MAX_PENDING", default_value_t = DEFAULT_MAX_PENDING)]
    pub max_pending: usize,

    /// Timeout of one VOD HTTP attempt, seconds.
    #[arg(long, env = "LIVE2VOD_VOD_TIMEOUT_SECS", default_value_t = DEFAULT_VOD_TIMEOUT_SECS)]
    pub vod_timeout_secs: u64,

    /// Attempts per VOD call for retryable errors (throttling, 5xx, timeouts), the first
    /// included; a command whose call still fails is retried later (it is never dropped).
    #[arg(long, env = "LIVE2VOD_VOD_MAX_ATTEMPTS", default_value_t = DEFAULT_VOD_MAX_ATTEMPTS)]
    pub vod_max_attempts: u32,

    /// On SIGTERM, how long to wait for running commands before leaving them (uncommitted)
    /// to the next owner, seconds.
    #[arg(long, env = "LIVE2VOD_SHUTDOWN_TIMEOUT_SECS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_SECS)]
    pub shutdown_timeout_secs: u64,

    /// Where `/healthz`, `/readyz` (ready once the ledger is loaded) and `/metrics` listen.
    #[arg(long, env = "LIVE2VOD_METRICS_LISTEN", default_value = crate::http::DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
}

/// Everything [`start`] needs (built from [`Args`], or directly by the demo and tests).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub kafka: KafkaArgs,
    pub vod: VodConfig,
    pub group_id: String,
    pub concurrency: usize,
    pub max_pending: usize,
    pub shutdown_timeout: Duration,
    /// Cap of the pause between rounds of a command whose VOD call keeps failing retryably.
    pub retry_max_backoff: Duration,
    /// How long the ledger load may see no progress before start fails.
    pub ledger_idle_timeout: Duration,
}

impl WorkerConfig {
    /// A config with the defaults of the CLI (the `DEFAULT_*` constants, which the flags use
    /// too).
    pub fn new(kafka: KafkaArgs, vod: VodConfig) -> Self {
        WorkerConfig {
            kafka,
            vod,
            group_id: DEFAULT_GROUP.into(),
            concurrency: DEFAULT_CONCURRENCY,
            max_pending: DEFAULT_MAX_PENDING,
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            retry_max_backoff: Duration::from_secs(60),
            ledger_idle_timeout: Duration::from_secs(30),
        }
    }
}

impl TryFrom<&Args> for WorkerConfig {
    type Error = WorkerError;

    fn try_from(a: &Args) -> Result<Self, WorkerError> {
        if a.concurrency == 0 {
            return Err(WorkerError::Config(
                "--concurrency must be at least 1".into(),
            ));
        }
        let mut vod = a.vod.config();
        vod.timeout = Duration::from_secs(a.vod_timeout_secs.max(1));
        vod.retry = RetryPolicy {
            max_attempts: a.vod_max_attempts.max(1),
            ..RetryPolicy::default()
        };
        Ok(WorkerConfig {
            group_id: a.group_id.clone(),
            concurrency: a.concurrency,
            max_pending: a.max_pending.max(1),
            shutdown_timeout: Duration::from_secs(a.shutdown_timeout_secs),
            ..WorkerConfig::new(a.kafka.clone(), vod)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_build_a_config_and_secrets_stay_hidden() {
        let cli = Cli::try_parse_from([
            "worker",
            "--brokers",
            "b:9092",
            "--access-key-id",
            "AKID",
            "--access-key-secret",
            "top-secret",
            "--security-token",
            "sts-secret",
            "--vod-endpoint",
            "http://sim:9000",
            "--concurrency",
            "3",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("top-secret") && !shown.contains("sts-secret"),
            "{shown}"
        );
        let cfg = WorkerConfig::try_from(&cli.args).unwrap();
        assert_eq!(cfg.vod.endpoint_url(), "http://sim:9000");
        assert_eq!(cfg.vod.access_key_secret.expose(), "top-secret");
        assert_eq!(cfg.concurrency, 3);
        assert_eq!(cfg.kafka.brokers, "b:9092");
        assert!(!format!("{cfg:?}").contains("top-secret"));
    }

    #[test]
    fn zero_concurrency_is_refused() {
        let cli = Cli::try_parse_from([
            "worker",
            "--access-key-id",
            "a",
            "--access-key-secret",
            "s",
            "--concurrency",
            "0",
        ])
        .unwrap();
        assert!(WorkerConfig::try_from(&cli.args).is_err());
    }
}
