//! The human operator of flow 2: once a `store-*` segment's AddLiveRecordVideoComplete was
//! acknowledged by the relay, ask live2vod's api for a manual transcode with `tg-manual`.
//! The fold may not have folded the segment yet, so 404 (and 5xx, connection errors) are
//! retried until 202 or a deadline.
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::scenario::TG_MANUAL;

/// Operator counters (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorStats {
    /// Videos the operator decided to transcode.
    pub requested: u64,
    /// Requests the api accepted (2xx).
    pub accepted: u64,
    /// Requests given up (refused with a 4xx other than 404, or deadline passed).
    pub failed: u64,
    /// HTTP attempts in all (retries included).
    pub attempts: u64,
}

pub struct Operator {
    api_url: String,
    client: reqwest::Client,
    seen: Mutex<HashSet<String>>,
    requested: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    attempts: AtomicU64,
    retry_interval: Duration,
    deadline: Duration,
}

impl Operator {
    pub fn new(api_url: &str) -> Result<Self, reqwest::Error> {
        Ok(Operator {
            api_url: api_url.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            seen: Mutex::new(HashSet::new()),
            requested: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            retry_interval: Duration::from_millis(500),
            deadline: Duration::from_secs(600),
        })
    }

    pub fn stats(&self) -> OperatorStats {
        OperatorStats {
            requested: self.requested.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
        }
    }

    /// Requests outstanding.
    pub fn pending(&self) -> u64 {
        let s = self.stats();
        s.requested.saturating_sub(s.accepted + s.failed)
    }

    /// Called when a flow-2 segment became known to live2vod; acts once per video.
    pub fn segment_recorded(self: &Arc<Self>, video_id: &str) {
        let first = self
            .seen
            .lock()
            .map(|mut s| s.insert(video_id.to_string()))
            .unwrap_or(false);
        if !first {
            return;
        }
        self.requested.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        let vid = video_id.to_string();
        tokio::spawn(async move { me.request_transcode(&vid).await });
    }

    async fn request_transcode(&self, video_id: &str) {
        let url = format!("{}/v1/videos/{video_id}/transcode", self.api_url);
        let body = serde_json::json!({ "template_group_id": TG_MANUAL }).to_string();
        let start = tokio::time::Instant::now();
        loop {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let res = self
                .client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let retry_reason = match res {
                Ok(r) if r.status().is_success() => {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(video_id, "operator: manual transcode accepted");
                    return;
                }
                Ok(r) if r.status().as_u16() == 404 || r.status().is_server_error() => {
                    format!("HTTP {}", r.status().as_u16())
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    tracing::warn!(video_id, status, body = %text, "operator: manual transcode refused");
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => format!("connection: {e}"),
            };
            if start.elapsed() > self.deadline {
                tracing::warn!(video_id, last = %retry_reason, "operator: gave up on a manual transcode");
                self.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            tokio::time::sleep(self.retry_interval).await;
        }
    }
}
