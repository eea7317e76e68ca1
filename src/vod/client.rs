//! Alibaba Cloud ApsaraVideo VOD OpenAPI client (RPC style, signature v1, `Version=2017-03-21`).
//!
//! Every request is a signed `POST` form with `Format=JSON`, a fresh `SignatureNonce` and the
//! current UTC `Timestamp` (re-signed on each retry, since VOD rejects reused nonces). Errors are
//! classified retryable (throttling, 5xx, timeouts, connection failures) or permanent (bad
//! parameters, illegal video state, signature or clock problems); retryable ones are retried with
//! exponential backoff and full jitter within a bounded number of attempts and elapsed time.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::metrics::{VOD_API_CALLS, VOD_API_LATENCY};
use crate::vod::sign::{encode_query, sign_request, Common};

/// VOD's API version for every action this client calls.
pub const API_VERSION: &str = "2017-03-21";

/// A secret string (AccessKeySecret, STS token) that never shows in `Debug` or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// How failed calls are retried: exponential backoff with full jitter, bounded both by
/// attempts and by total elapsed time.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (>= 1).
    pub max_attempts: u32,
    /// Upper bound of the first backoff; doubles on each retry.
    pub initial_backoff: Duration,
    /// Cap of the backoff upper bound.
    pub max_backoff: Duration,
    /// No new attempt starts once this much time has passed since the first one.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Upper bound of the sleep before retry number `retry` (0-based): `initial * 2^retry`,
    /// capped at `max_backoff`. The actual sleep is uniform in `[0, bound]` (full jitter).
    pub fn backoff_bound(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Configuration of a [`VodClient`].
#[derive(Debug, Clone)]
pub struct VodConfig {
    /// Base URL; `None` means `https://vod.<region>.aliyuncs.com/`.
    pub endpoint: Option<String>,
    /// Region id, e.g. `cn-shanghai`.
    pub region: String,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// STS token when the key pair is temporary.
    pub security_token: Option<Secret>,
    /// Timeout of one HTTP attempt (connect + answer).
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl VodConfig {
    /// A config for `region` with its public endpoint, a 10 s timeout and default retries.
    pub fn new(
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
    ) -> Self {
        VodConfig {
            endpoint: None,
            region: region.into(),
            access_key_id: access_key_id.into(),
            access_key_secret: Secret::new(access_key_secret),
            security_token: None,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }

    /// The URL requests are posted to.
    pub fn endpoint_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://vod.{}.aliyuncs.com/", self.region),
        }
    }
}

/// A failed VOD call.
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    /// VOD answered with its error body.
    #[error("VOD {action}: {code}: {message} (HTTP {status}, RequestId {request_id})")]
    Api {
        action: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
        host_id: String,
    },
    /// An HTTP error status whose body is not VOD's error JSON (a proxy, a load balancer).
    #[error("VOD {action}: HTTP {status} without a VOD error body: {snippet}")]
    Http {
        action: String,
        status: u16,
        snippet: String,
    },
    /// No answer within the timeout.
    #[error("VOD {action}: no answer within {timeout:?}")]
    Timeout { action: String, timeout: Duration },
    /// Connecting or talking to the endpoint failed.
    #[error("VOD {action}: transport: {detail}")]
    Transport { action: String, detail: String },
    /// A 2xx answer that is not the expected JSON.
    #[error("VOD {action}: unexpected answer: {detail}")]
    Decode { action: String, detail: String },
    /// The client cannot be built from this configuration.
    #[error("VOD client configuration: {0}")]
    Config(String),
}

/// VOD error codes worth retrying whatever the HTTP status.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "ServiceUnAvailable",
    "ServiceUnavailable",
    "InternalError",
];

impl VodError {
    /// Whether the same request may succeed later (throttling, server trouble, timeouts,
    /// connection failures). Permanent errors (bad parameters, illegal video state, signature or
    /// clock problems, other 4xx) are not retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            VodError::Api { code, status, .. } => {
                RETRYABLE_CODES.contains(&code.as_str())
                    || code.starts_with("Throttling.")
                    || (*status >= 500 && !is_permanent_code(code))
            }
            VodError::Http { status, .. } => *status >= 500 || *status == 429,
            VodError::Timeout { .. } | VodError::Transport { .. } => true,
            VodError::Decode { .. } | VodError::Config(_) => false,
        }
    }

    /// VOD's error code, when VOD gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            VodError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// VOD's error message, or this error's description.
    pub fn message(&self) -> String {
        match self {
            VodError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Label for `VOD_API_CALLS{code}`: VOD's code, or `timeout` / `http` / `transport` /
    /// `decode` / `config`.
    pub fn metric_code(&self) -> String {
        match self {
            VodError::Api { code, .. } => code.clone(),
            VodError::Http { status, .. } => format!("http_{status}"),
            VodError::Timeout { .. } => "timeout".into(),
            VodError::Transport { .. } => "transport".into(),
            VodError::Decode { .. } => "decode".into(),
            VodError::Config(_) => "config".into(),
        }
    }
}

/// Codes that stay permanent even if some gateway reports them with a 5xx status.
fn is_permanent_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidParameter"
            | "MissingParameter"
            | "Forbidden.IllegalStatus"
            | "SignatureDoesNotMatch"
            | "InvalidTimeStamp.Expired"
    )
}

/// Answer of `SubmitTranscodeJobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitTranscodeResult {
    pub request_id: String,
    pub transcode_task_id: String,
    pub job_ids: Vec<String>,
}

/// The parts of `GetVideoInfo`'s `Video` the worker uses.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub request_id: String,
    /// Uploading, UploadFail, UploadSucc, Transcoding, TranscodeFail, Blocked, Normal, ...
    pub status: String,
    pub size: Option<i64>,
    pub duration: Option<f64>,
    pub title: Option<String>,
    pub cover_url: Option<String>,
    pub template_group_id: Option<String>,
}

/// One entry of `GetPlayInfo`'s `PlayInfoList.PlayInfo`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlayInfo {
    pub play_url: String,
    pub definition: Option<String>,
    pub format: Option<String>,
    /// kbps; VOD sends it as a string.
    pub bitrate: Option<String>,
    /// Seconds.
    pub duration: Option<f64>,
    pub size: Option<i64>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub job_id: Option<String>,
    pub status: Option<String>,
}

impl PlayInfo {
    /// The entry as the flat JSON object of `live2vod.PlayInfoResolved`'s `PlayInfos`.
    pub fn to_event_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("PlayURL".into(), Value::String(self.play_url.clone()));
        let mut put_s = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        };
        put_s("Definition", &self.definition);
        put_s("Format", &self.format);
        put_s("Bitrate", &self.bitrate);
        put_s("JobId", &self.job_id);
        put_s("Status", &self.status);
        if let Some(d) = self.duration.and_then(serde_json::Number::from_f64) {
            m.insert("Duration".into(), Value::Number(d));
        }
        for (k, v) in [
            ("Size", self.size),
            ("Width", self.width),
            ("Height", self.height),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::from(v));
            }
        }
        Value::Object(m)
    }
}

/// One recording of `ListLiveRecordVideo`.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRecordVideo {
    pub video_id: String,
    pub status: Option<String>,
    pub domain: Option<String>,
    pub app: Option<String>,
    pub stream: Option<String>,
    pub record_start: Option<String>,
    pub record_end: Option<String>,
    pub size: Option<i64>,
    pub duration: Option<f64>,
}

/// A VOD OpenAPI client; cheap to clone.
#[derive(Clone)]
pub struct VodClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: VodConfig,
    url: String,
    http: reqwest::Client,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for VodClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VodClient")
            .field("url", &self.inner.url)
            .field("access_key_id", &self.inner.cfg.access_key_id)
            .finish_non_exhaustive()
    }
}

impl VodClient {
    /// Builds a client; fails on an unusable configuration (empty key, bad retry policy).
    pub fn new(cfg: VodConfig) -> Result<Self, VodError> {
        if cfg.access_key_id.is_empty() || cfg.access_key_secret.expose().is_empty() {
            return Err(VodError::Config(
                "AccessKeyId and AccessKeySecret are required".into(),
            ));
        }
        if cfg.retry.max_attempts == 0 {
            return Err(VodError::Config("retry max_attempts must be >= 1".into()));
        }
        let url = cfg.endpoint_url();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(VodError::Config(format!(
                "endpoint {url:?} is not an http(s) URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(|e| VodError::Config(format!("http client: {e}")))?;
        Ok(VodClient {
            inner: Arc::new(Inner {
                url,
                cfg,
                http,
                rng: Mutex::new(StdRng::from_os_rng()),
            }),
        })
    }

    /// The endpoint URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.inner.url
    }

    /// Calls `action` with `params`, retrying retryable failures per the policy; returns the
    /// parsed JSON answer of the first success.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<Value, VodError> {
        let policy = &self.inner.cfg.retry;
        let started = Instant::now();
        let mut retry = 0u32;
        loop {
            let err = match self.call_once(action, params).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let attempts = retry + 1;
            if !err.is_retryable() || attempts >= policy.max_attempts {
                return Err(err);
            }
            let sleep = self.jitter(policy.backoff_bound(retry));
            if started.elapsed() + sleep >= policy.max_elapsed {
                return Err(err);
            }
            // Expected under throttling: counted in metrics; only giving up is a warning.
            tracing::info!(action, attempt = attempts, error = %err, backoff_ms = sleep.as_millis() as u64, "VOD call failed, retrying");
            tokio::time::sleep(sleep).await;
            retry += 1;
        }
    }

    fn jitter(&self, bound: Duration) -> Duration {
        let max = bound.as_millis() as u64;
        let ms = match self.inner.rng.lock() {
            Ok(mut rng) => rng.random_range(0..=max),
            // A panicked holder cannot leave an RNG in a harmful state; back off fully.
            Err(_) => max,
        };
        Duration::from_millis(ms)
    }

    fn nonce(&self) -> String {
        let bytes: [u8; 16] = match self.inner.rng.lock() {
            Ok(mut rng) => rng.random(),
            Err(p) => p.into_inner().random(),
        };
        uuid_v4(bytes)
    }

    /// One signed attempt, no retries; records the per-attempt metrics.
    async fn call_once(&self, action: &str, params: &[(&str, &str)]) -> Result<Value, VodError> {
        let cfg = &self.inner.cfg;
        let nonce = self.nonce();
        let timestamp = utc_timestamp(SystemTime::now());
        let common = Common {
            access_key_id: &cfg.access_key_id,
            security_token: cfg.security_token.as_ref().map(Secret::expose),
            timestamp: &timestamp,
            nonce: &nonce,
            version: API_VERSION,
        };
        let signed = sign_request(
            cfg.access_key_secret.expose(),
            "POST",
            action,
            &common,
            params,
        );
        let body = encode_query(&signed);
        let started = Instant::now();
        let result = self.send(action, body).await;
        metrics::histogram!(VOD_API_LATENCY, "action" => action.to_string())
            .record(started.elapsed().as_secs_f64());
        let code = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.metric_code(),
        };
        metrics::counter!(VOD_API_CALLS, "action" => action.to_string(), "code" => code)
            .increment(1);
        result
    }

    async fn send(&self, action: &str, body: String) -> Result<Value, VodError> {
        let cfg = &self.inner.cfg;
        let resp = self
            .inner
            .http
            .post(&self.inner.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(action, cfg.timeout, &e))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| transport_error(action, cfg.timeout, &e))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return match parsed {
                Some(v @ Value::Object(_)) => Ok(v),
                _ => Err(VodError::Decode {
                    action: action.into(),
                    detail: format!("not a JSON object: {}", snippet(&text)),
                }),
            };
        }
        match parsed.as_ref().and_then(|v| str_field(v, "Code")) {
            Some(code) => {
                let v = parsed.as_ref().unwrap_or(&Value::Null);
                Err(VodError::Api {
                    action: action.into(),
                    status,
                    code,
                    message: str_field(v, "Message").unwrap_or_default(),
                    request_id: str_field(v, "RequestId").unwrap_or_default(),
                    host_id: str_field(v, "HostId").unwrap_or_default(),
                })
            }
            None => Err(VodError::Http {
                action: action.into(),
                status,
                snippet: snippet(&text),
            }),
        }
    }

    /// `SubmitTranscodeJobs`. `session_id` (<= 50 chars) makes VOD ignore a repeated submission
    /// within 7 days: pass the command id so a re-executed command never starts a second job.
    pub async fn submit_transcode_jobs(
        &self,
        video_id: &str,
        template_group_id: &str,
        session_id: &str,
        priority: Option<&str>,
        user_data: Option<&str>,
    ) -> Result<SubmitTranscodeResult, VodError> {
        const ACTION: &str = "SubmitTranscodeJobs";
        let mut params = vec![
            ("VideoId", video_id),
            ("TemplateGroupId", template_group_id),
            ("SessionId", session_id),
        ];
        if let Some(p) = priority.filter(|p| !p.is_empty()) {
            params.push(("Priority", p));
        }
        if let Some(u) = user_data.filter(|u| !u.is_empty()) {
            params.push(("UserData", u));
        }
        let v = self.call(ACTION, &params).await?;
        let job_ids = v
            .pointer("/TranscodeJobs/TranscodeJob")
            .and_then(Value::as_array)
            .map(|jobs| jobs.iter().filter_map(|j| str_field(j, "JobId")).collect())
            .unwrap_or_default();
        Ok(SubmitTranscodeResult {
            request_id: str_field(&v, "RequestId").unwrap_or_default(),
            transcode_task_id: str_field(&v, "TranscodeTaskId").unwrap_or_default(),
            job_ids,
        })
    }

    /// `GetVideoInfo`: the video's status (and size, duration, ...).
    pub async fn get_video_info(&self, video_id: &str) -> Result<VideoInfo, VodError> {
        const ACTION: &str = "GetVideoInfo";
        let v = self.call(ACTION, &[("VideoId", video_id)]).await?;
        let video = v.get("Video").ok_or_else(|| VodError::Decode {
            action: ACTION.into(),
            detail: "no Video in the answer".into(),
        })?;
        let status = str_field(video, "Status").ok_or_else(|| VodError::Decode {
            action: ACTION.into(),
            detail: "no Video.Status in the answer".into(),
        })?;
        Ok(VideoInfo {
            request_id: str_field(&v, "RequestId").unwrap_or_default(),
            status,
            size: int_field(video, "Size"),
            duration: float_field(video, "Duration"),
            title: str_field(video, "Title"),
            cover_url: str_field(video, "CoverURL").or_else(|| str_field(video, "CoverUrl")),
            template_group_id: str_field(video, "TemplateGroupId"),
        })
    }

    /// `GetPlayInfo`: the playable renditions (CDN URLs).
    pub async fn get_play_info(&self, video_id: &str) -> Result<Vec<PlayInfo>, VodError> {
        const ACTION: &str = "GetPlayInfo";
        let v = self.call(ACTION, &[("VideoId", video_id)]).await?;
        let list = v
            .pointer("/PlayInfoList/PlayInfo")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(list
            .iter()
            .filter_map(|p| {
                Some(PlayInfo {
                    play_url: str_field(p, "PlayURL").or_else(|| str_field(p, "PlayUrl"))?,
                    definition: str_field(p, "Definition"),
                    format: str_field(p, "Format"),
                    bitrate: str_field(p, "Bitrate"),
                    duration: float_field(p, "Duration"),
                    size: int_field(p, "Size"),
                    width: int_field(p, "Width"),
                    height: int_field(p, "Height"),
                    job_id: str_field(p, "JobId"),
                    status: str_field(p, "Status"),
                })
            })
            .collect())
    }

    /// GetMezzanineInfo: the source file's state (`Mezzanine` {`FileURL`, `Size`, `Status`,
    /// `CreationTime`, ...}), answered as VOD sent it; `reconcile` parses it.
    pub async fn get_mezzanine_info(&self, video_id: &str) -> Result<Value, VodError> {
        self.call("GetMezzanineInfo", &[("VideoId", video_id)])
            .await
    }

    /// `ListLiveRecordVideo` for one stream between `start` and `end` (UTC
    /// `YYYY-MM-DDThh:mm:ssZ`), all pages: the way to catch up after lost callbacks.
    pub async fn list_live_record_video(
        &self,
        domain: &str,
        app: &str,
        stream: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<LiveRecordVideo>, VodError> {
        const ACTION: &str = "ListLiveRecordVideo";
        const PAGE_SIZE: usize = 100;
        // VOD caps paging; this bound keeps a misbehaving endpoint from looping us forever.
        const MAX_PAGES: usize = 100;
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let page_no = page.to_string();
            let page_size = PAGE_SIZE.to_string();
            let v = self
                .call(
                    ACTION,
                    &[
                        ("DomainName", domain),
                        ("AppName", app),
                        ("StreamName", stream),
                        ("StartTime", start),
                        ("EndTime", end),
                        ("PageNo", &page_no),
                        ("PageSize", &page_size),
                    ],
                )
                .await?;
            let items = v
                .pointer("/LiveRecordVideoList/LiveRecordVideo")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let n = items.len();
            out.extend(items.iter().filter_map(|r| {
                let video = r.get("Video").unwrap_or(&Value::Null);
                Some(LiveRecordVideo {
                    video_id: str_field(video, "VideoId").or_else(|| str_field(r, "VideoId"))?,
                    status: str_field(video, "Status"),
                    domain: str_field(r, "DomainName"),
                    app: str_field(r, "AppName"),
                    stream: str_field(r, "StreamName"),
                    record_start: str_field(r, "RecordStartTime"),
                    record_end: str_field(r, "RecordEndTime"),
                    size: int_field(video, "Size"),
                    duration: float_field(video, "Duration"),
                })
            }));
            let total = int_field(&v, "Total").and_then(|t| usize::try_from(t).ok());
            if n < PAGE_SIZE || total.is_some_and(|t| out.len() >= t) {
                break;
            }
        }
        Ok(out)
    }
}

fn transport_error(action: &str, timeout: Duration, e: &reqwest::Error) -> VodError {
    if e.is_timeout() {
        VodError::Timeout {
            action: action.into(),
            timeout,
        }
    } else {
        // The URL is ours (no secrets in it: parameters travel in the body).
        VodError::Transport {
            action: action.into(),
            detail: error_chain(e),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(200).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// A string field; numbers and booleans are accepted and rendered as text.
fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer field that may arrive as a number or a string (`"1234"`, `"1234.0"`).
fn int_field(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

/// A float field that may arrive as a number or a string.
fn float_field(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Formats 16 random bytes as a version-4 UUID (the nonce shape Alibaba's SDKs send).
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// UTC `YYYY-MM-DDThh:mm:ssZ` of `t` (clamped to the epoch), as VOD's `Timestamp` and
/// `EventTime` use.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc_secs(secs as i64)
}

/// UTC `YYYY-MM-DDThh:mm:ssZ` of seconds since the Unix epoch (Alibaba's `Timestamp`).
pub fn format_utc_secs(secs: i64) -> String {
    // Whole seconds: the domain's formatter writes no fraction then.
    crate::domain::time::format_rfc3339(secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_instants() {
        assert_eq!(format_utc_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_secs(1_507_636_974), "2017-10-10T12:02:54Z");
        assert_eq!(format_utc_secs(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn nonce_is_a_v4_uuid_and_secrets_do_not_leak_in_debug() {
        let cfg = VodConfig::new("cn-shanghai", "id", "very-secret");
        assert!(!format!("{cfg:?}").contains("very-secret"));
        let c = VodClient::new(cfg).expect("config is valid");
        assert_eq!(c.endpoint(), "https://vod.cn-shanghai.aliyuncs.com/");
        let (a, b) = (c.nonce(), c.nonce());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn backoff_bound_doubles_then_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            max_elapsed: Duration::from_secs(5),
        };
        assert_eq!(p.backoff_bound(0), Duration::from_millis(100));
        assert_eq!(p.backoff_bound(1), Duration::from_millis(200));
        assert_eq!(p.backoff_bound(2), Duration::from_millis(350));
        assert_eq!(p.backoff_bound(40), Duration::from_millis(350));
    }
}
