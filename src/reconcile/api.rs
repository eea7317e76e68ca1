//! Reconcile's door to VOD: every call waits for the rate limiter first (so a restart or a
//! large sweep never storms VOD), goes through the client's retries (throttling, 5xx and
//! timeouts backed off like the worker's calls), and is counted by action and outcome.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::metrics as m;
use crate::vod::client::{VodClient, VodError};

/// Evenly spaced permits at `qps` per second, no burst: calls are spread over the interval
/// instead of leaving at once when a cycle starts.
#[derive(Debug)]
pub struct Limiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Limiter {
    /// A limiter of `qps` calls per second (at least one call per hour).
    pub fn new(qps: f64) -> Self {
        let qps = if qps.is_finite() && qps > 0.0 {
            qps.max(1.0 / 3600.0)
        } else {
            1.0
        };
        Limiter {
            interval: Duration::from_secs_f64(1.0 / qps),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next permit.
    pub async fn acquire(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The rate-limited, counted VOD client of one reconcile instance.
#[derive(Debug, Clone)]
pub struct Api {
    client: VodClient,
    limiter: Arc<Limiter>,
    calls: Arc<AtomicU64>,
}

impl Api {
    pub fn new(client: VodClient, qps: f64) -> Self {
        Api {
            client,
            limiter: Arc::new(Limiter::new(qps)),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Calls made so far (each logical call once, whatever the client's retries).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// One rate-limited call of `action`.
    pub async fn call(
        &self,
        action: &'static str,
        params: &[(&str, &str)],
    ) -> Result<Value, VodError> {
        self.limiter.acquire().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r = self.client.call(action, params).await;
        let outcome = match &r {
            Ok(_) => "ok".to_string(),
            Err(e) => e.metric_code(),
        };
        metrics::counter!(m::RECONCILE_API_CALLS, "action" => action, "outcome" => outcome)
            .increment(1);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_spread_evenly() {
        let l = Limiter::new(100.0);
        let start = Instant::now();
        for _ in 0..11 {
            l.acquire().await;
        }
        // The first permit is immediate, the next ten 10 ms apart: no burst.
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }
}
