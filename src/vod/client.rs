//! Alibaba Cloud ApsaraVideo VOD OpenAPI client (RPC style, signature v1, `Version=2017-03-21`).
//!
//! Every request is a signed `POST` form with `Format=JSON`, a fresh `SignatureNonce` and the
//! current UTC `Timestamp` (re-signed on each retry, since VOD rejects reused nonces). Errors are
//! classified retryable (throttling, 5xx, timeouts, connection failures) or permanent (bad
//! parameters, illegal video state, signature or clock problems); retryable ones are retried with
//! exponential backoff and full jitter within a bounded number of attempts and elapsed time.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::Value;

use crate::metrics::{VOD_API_CALLS, VOD_API_LATENCY};
use crate::retry::{GaveUp, Jitter};
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

/// How failed calls are retried (the crate's one retry policy; jittered here).
pub use crate::retry::RetryPolicy;

/// Default timeout of one HTTP attempt, seconds (also of `worker --vod-timeout-secs`).
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

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
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
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
        crate::retry::retry(
            &self.inner.cfg.retry,
            Jitter::Full,
            None,
            || self.call_once(action, params),
            VodError::is_retryable,
            |err, failure| {
                if let Some(sleep) = failure.backoff {
                    // Expected under throttling: counted in metrics; only giving up is a warning.
                    tracing::info!(action, attempt = failure.attempt, error = %err, backoff_ms = sleep.as_millis() as u64, "VOD call failed, retrying");
                }
            },
        )
        .await
        .map_err(|gave_up| match gave_up {
            GaveUp::Failed(e) => e,
            // No stop signal was given, so this cannot happen; say so rather than panic.
            GaveUp::Stopped => VodError::Transport {
                action: action.into(),
                detail: "retries stopped".into(),
            },
        })
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
        let timestamp = crate::clock::utc_now();
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
        let body = parsed.and_then(|v| serde_json::from_value::<ErrorBody>(v).ok());
        match body {
            Some(ErrorBody {
                code: Some(code),
                message,
                request_id,
                host_id,
            }) => Err(VodError::Api {
                action: action.into(),
                status,
                code,
                message: message.unwrap_or_default(),
                request_id: request_id.unwrap_or_default(),
                host_id: host_id.unwrap_or_default(),
            }),
            _ => Err(VodError::Http {
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
        let a: SubmitAnswer = decode(ACTION, self.call(ACTION, &params).await?)?;
        Ok(SubmitTranscodeResult {
            request_id: a.request_id.unwrap_or_default(),
            transcode_task_id: a.transcode_task_id.unwrap_or_default(),
            job_ids: a
                .transcode_jobs
                .map(|j| {
                    j.transcode_job
                        .into_iter()
                        .filter_map(|j| j.job_id)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// `GetVideoInfo`: the video's status (and size, duration, ...).
    pub async fn get_video_info(&self, video_id: &str) -> Result<VideoInfo, VodError> {
        const ACTION: &str = "GetVideoInfo";
        let a: VideoInfoAnswer =
            decode(ACTION, self.call(ACTION, &[("VideoId", video_id)]).await?)?;
        let video = a.video.ok_or_else(|| VodError::Decode {
            action: ACTION.into(),
            detail: "no Video in the answer".into(),
        })?;
        let status = video.status.ok_or_else(|| VodError::Decode {
            action: ACTION.into(),
            detail: "no Video.Status in the answer".into(),
        })?;
        Ok(VideoInfo {
            request_id: a.request_id.unwrap_or_default(),
            status,
            size: video.size,
            duration: video.duration,
            title: video.title,
            cover_url: video.cover_url.or(video.cover_url_camel),
            template_group_id: video.template_group_id,
        })
    }

    /// `GetPlayInfo`: the playable renditions (CDN URLs), each `PlayInfoList.PlayInfo[]` object
    /// exactly as VOD returned it (the fold's lenient parser reads them; nothing is reshaped).
    /// Entries that are not objects are left out.
    pub async fn get_play_info(&self, video_id: &str) -> Result<Vec<Value>, VodError> {
        const ACTION: &str = "GetPlayInfo";
        let mut v = self.call(ACTION, &[("VideoId", video_id)]).await?;
        Ok(
            match v.pointer_mut("/PlayInfoList/PlayInfo").map(Value::take) {
                Some(Value::Array(list)) => list.into_iter().filter(Value::is_object).collect(),
                // One entry may come unwrapped from the list.
                Some(one @ Value::Object(_)) => vec![one],
                _ => Vec::new(),
            },
        )
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
            let a: ListAnswer = decode(ACTION, v)?;
            let items = a
                .live_record_video_list
                .map(|l| l.live_record_video)
                .unwrap_or_default();
            let n = items.len();
            out.extend(items.into_iter().filter_map(|r| {
                let video = r.video.unwrap_or_default();
                Some(LiveRecordVideo {
                    video_id: video.video_id.or(r.video_id)?,
                    status: video.status,
                    domain: r.domain_name,
                    app: r.app_name,
                    stream: r.stream_name,
                    record_start: r.record_start_time,
                    record_end: r.record_end_time,
                    size: video.size,
                    duration: video.duration,
                })
            }));
            let total = a.total.and_then(|t| usize::try_from(t).ok());
            if n < PAGE_SIZE || total.is_some_and(|t| out.len() >= t) {
                break;
            }
        }
        Ok(out)
    }
}

/// VOD's error body (`{"RequestId","HostId","Code","Message"}`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    #[serde(default, deserialize_with = "lenient::text")]
    code: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    request_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    host_id: Option<String>,
}

/// `SubmitTranscodeJobs`: `{"RequestId","TranscodeTaskId","TranscodeJobs":{"TranscodeJob":[{"JobId"}]}}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubmitAnswer {
    #[serde(default, deserialize_with = "lenient::text")]
    request_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    transcode_task_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    transcode_jobs: Option<TranscodeJobs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TranscodeJobs {
    #[serde(default, deserialize_with = "lenient::list")]
    transcode_job: Vec<TranscodeJob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TranscodeJob {
    #[serde(default, deserialize_with = "lenient::text")]
    job_id: Option<String>,
}

/// `GetVideoInfo`: `{"RequestId","Video":{...}}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VideoInfoAnswer {
    #[serde(default, deserialize_with = "lenient::text")]
    request_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    video: Option<VideoFields>,
}

/// The `Video` object of `GetVideoInfo` and of `ListLiveRecordVideo`'s entries. Numbers may
/// arrive as strings; `CoverURL` is sometimes spelled `CoverUrl`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct VideoFields {
    #[serde(default, deserialize_with = "lenient::text")]
    video_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    size: Option<i64>,
    #[serde(default, deserialize_with = "lenient::float")]
    duration: Option<f64>,
    #[serde(default, deserialize_with = "lenient::text")]
    title: Option<String>,
    #[serde(default, rename = "CoverURL", deserialize_with = "lenient::text")]
    cover_url: Option<String>,
    #[serde(default, rename = "CoverUrl", deserialize_with = "lenient::text")]
    cover_url_camel: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    template_group_id: Option<String>,
}

/// `ListLiveRecordVideo`: `Total` (a string in VOD's sample) and the page's recordings.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAnswer {
    #[serde(default, deserialize_with = "lenient::int")]
    total: Option<i64>,
    #[serde(default, deserialize_with = "lenient::object")]
    live_record_video_list: Option<LiveRecordVideoList>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LiveRecordVideoList {
    #[serde(default, deserialize_with = "lenient::list")]
    live_record_video: Vec<LiveRecordEntry>,
}

/// One recording; some entries carry no `Video` (then the entry's own `VideoId`, if any).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LiveRecordEntry {
    #[serde(default, deserialize_with = "lenient::object")]
    video: Option<VideoFields>,
    #[serde(default, deserialize_with = "lenient::text")]
    video_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    domain_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    app_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    stream_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    record_start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    record_end_time: Option<String>,
}

/// A 2xx answer as `T`; a shape VOD does not send is a [`VodError::Decode`].
fn decode<T: serde::de::DeserializeOwned>(action: &str, v: Value) -> Result<T, VodError> {
    serde_json::from_value(v).map_err(|e| VodError::Decode {
        action: action.into(),
        detail: e.to_string(),
    })
}

/// Field deserializers for VOD's loose typing: numbers that arrive as strings and the other
/// way round, and a field of an unexpected type read as absent rather than failing the call.
mod lenient {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// A string; numbers and booleans are accepted and rendered as text.
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    }

    /// An integer that may arrive as a number or a string (`"1234"`, `"1234.0"`).
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(match Value::deserialize(d)? {
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
        })
    }

    /// A float that may arrive as a number or a string.
    pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        })
    }

    /// An object as `T`; anything else (null, a string) is absent.
    pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Ok(match Value::deserialize(d)? {
            v @ Value::Object(_) => serde_json::from_value(v).ok(),
            _ => None,
        })
    }

    /// An array of `T`, skipping entries of another shape; not an array: empty.
    pub fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
            _ => Vec::new(),
        })
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

/// UTC `YYYY-MM-DDThh:mm:ssZ` of seconds since the Unix epoch (Alibaba's `Timestamp`).
pub use crate::clock::format_utc_secs;

#[cfg(test)]
mod tests {
    use super::*;

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
}
