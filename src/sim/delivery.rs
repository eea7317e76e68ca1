//! Posts callbacks to the relay the way VOD does: one POST per event, signed with
//! `X-VOD-TIMESTAMP`/`X-VOD-SIGNATURE`, only 200 counts, 3 attempts about 1 s apart (each with
//! a 5 s timeout), then the event is dropped ("lost by VOD"). Concurrency is bounded; the
//! order and the duplicates come from the caller.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::scenario::ScenarioEvent;
use crate::vod::callback_auth;

#[derive(Clone)]
pub struct DeliveryConfig {
    pub relay_url: String,
    /// The callback URL as configured in VOD: it is what the signature covers.
    pub callback_url: String,
    pub auth_key: String,
    pub attempts: u32,
    pub retry_interval: Duration,
    pub attempt_timeout: Duration,
    pub concurrency: usize,
    /// Deliveries started per second by [`Deliverer::deliver_ordered`] (`None`: unpaced).
    pub rate: Option<f64>,
}

impl std::fmt::Debug for DeliveryConfig {
    // The callback auth key never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("relay_url", &self.relay_url)
            .field("callback_url", &self.callback_url)
            .field("auth_key", &"<redacted>")
            .field("attempts", &self.attempts)
            .field("retry_interval", &self.retry_interval)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl DeliveryConfig {
    pub fn new(relay_url: &str, callback_url: &str, auth_key: &str) -> Self {
        DeliveryConfig {
            relay_url: relay_url.to_string(),
            callback_url: callback_url.to_string(),
            auth_key: auth_key.to_string(),
            attempts: 3,
            retry_interval: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(5),
            concurrency: 16,
            rate: None,
        }
    }
}

/// Delivery counters (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Deliveries queued (events plus duplicate copies), scenario and transcode callbacks.
    pub scheduled: u64,
    /// Deliveries whose first attempt started.
    pub sent: u64,
    /// Deliveries answered 200.
    pub acknowledged: u64,
    /// Extra attempts after a non-200 or a timeout.
    pub retried: u64,
    /// Deliveries dropped after the last attempt failed.
    pub lost: u64,
    /// Duplicate copies answered 200.
    pub duplicates_acknowledged: u64,
}

impl Progress {
    /// Deliveries not finished yet.
    pub fn pending(&self) -> u64 {
        self.scheduled.saturating_sub(self.acknowledged + self.lost)
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "callbacks: {} scheduled, {} sent, {} acknowledged ({} duplicates), {} retries, {} lost by VOD, {} pending",
            self.scheduled,
            self.sent,
            self.acknowledged,
            self.duplicates_acknowledged,
            self.retried,
            self.lost,
            self.pending()
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    scheduled: AtomicU64,
    sent: AtomicU64,
    acknowledged: AtomicU64,
    retried: AtomicU64,
    lost: AtomicU64,
    duplicates_acknowledged: AtomicU64,
}

/// A delivery VOD gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEvent {
    pub event_id: u64,
    pub event_type: String,
    pub video_id: String,
    pub stream: String,
    pub duplicate: bool,
    pub last_error: String,
}

/// What the rest of the simulator learns from delivery.
pub trait DeliveryHooks: Send + Sync + 'static {
    /// VOD starts sending the event: from now on VOD's state includes what it says.
    fn emitted(&self, ev: &ScenarioEvent);
    /// The relay answered 200.
    fn acknowledged(&self, ev: &ScenarioEvent, duplicate: bool);
}

/// Outcome of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acknowledged,
    Lost,
}

pub struct Deliverer {
    cfg: DeliveryConfig,
    client: reqwest::Client,
    sem: Arc<Semaphore>,
    counters: Counters,
    lost: Mutex<Vec<LostEvent>>,
    /// The body of every delivery answered 200 (the crash tests check each is on the topic).
    acknowledged: Mutex<Vec<String>>,
    hooks: Arc<dyn DeliveryHooks>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Deliverer {
    pub fn new(cfg: DeliveryConfig, hooks: Arc<dyn DeliveryHooks>) -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.attempt_timeout)
            .build()?;
        Ok(Deliverer {
            sem: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            cfg,
            client,
            counters: Counters::default(),
            lost: Mutex::new(Vec::new()),
            acknowledged: Mutex::new(Vec::new()),
            hooks,
        })
    }

    pub fn progress(&self) -> Progress {
        let c = &self.counters;
        Progress {
            scheduled: c.scheduled.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            acknowledged: c.acknowledged.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            duplicates_acknowledged: c.duplicates_acknowledged.load(Ordering::Relaxed),
        }
    }

    pub fn lost_events(&self) -> Vec<LostEvent> {
        self.lost.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The bodies of the deliveries answered 200 so far, duplicates included.
    pub fn acknowledged_bodies(&self) -> Vec<String> {
        self.acknowledged
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Counts deliveries that will be started later, so `pending()` covers them from now on.
    pub fn schedule(&self, n: u64) {
        self.counters.scheduled.fetch_add(n, Ordering::Relaxed);
    }

    /// Delivers the events in the given order (each a (event, duplicate copy) pair), keeping at
    /// most `concurrency` in flight and starting at most `rate` a second; starts are in order,
    /// completions in any order. Waits for
    /// all to be acknowledged or lost.
    pub async fn deliver_ordered(self: &Arc<Self>, items: Vec<(Arc<ScenarioEvent>, bool)>) {
        self.schedule(items.len() as u64);
        let mut tasks = Vec::with_capacity(items.len());
        let start = tokio::time::Instant::now();
        let pace = self.cfg.rate.map(|r| Duration::from_secs_f64(1.0 / r));
        for (i, (ev, dup)) in items.into_iter().enumerate() {
            if let Some(pace) = pace {
                tokio::time::sleep_until(start + pace.mul_f64(i as f64)).await;
            }
            let Ok(permit) = self.sem.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                me.deliver_one(&ev, dup).await
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// One scheduled delivery (the caller counted it with [`Deliverer::schedule`]) under the
    /// concurrency bound.
    pub async fn deliver_scheduled(
        self: &Arc<Self>,
        ev: &ScenarioEvent,
        duplicate: bool,
    ) -> Outcome {
        let Ok(_permit) = self.sem.clone().acquire_owned().await else {
            return Outcome::Lost;
        };
        self.deliver_one(ev, duplicate).await
    }

    async fn deliver_one(&self, ev: &ScenarioEvent, duplicate: bool) -> Outcome {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.hooks.emitted(ev);
        let mut last_error = String::new();
        for attempt in 0..self.cfg.attempts.max(1) {
            if attempt > 0 {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(self.cfg.retry_interval).await;
            }
            // A fresh timestamp per attempt, like VOD's retries.
            let ts = (super::time::now_ms() / 1000).to_string();
            let sig = callback_auth::sign(&self.cfg.callback_url, &ts, &self.cfg.auth_key);
            let res = self
                .client
                .post(&self.cfg.relay_url)
                .header("Content-Type", "application/json")
                .header("X-VOD-TIMESTAMP", &ts)
                .header("X-VOD-SIGNATURE", &sig)
                .body(ev.body.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status().as_u16() == 200 => {
                    self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                    if duplicate {
                        self.counters
                            .duplicates_acknowledged
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut a) = self.acknowledged.lock() {
                        a.push(ev.body.clone());
                    }
                    self.hooks.acknowledged(ev, duplicate);
                    return Outcome::Acknowledged;
                }
                Ok(r) => last_error = format!("HTTP {}", r.status().as_u16()),
                Err(e) if e.is_timeout() => last_error = "timeout".to_string(),
                Err(e) => last_error = format!("connection: {e}"),
            }
        }
        tracing::warn!(
            event_type = ev.event_type,
            video_id = %ev.video_id,
            error = %last_error,
            "VOD gives up on a callback after {} attempts",
            self.cfg.attempts
        );
        self.counters.lost.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = self.lost.lock() {
            l.push(LostEvent {
                event_id: ev.id,
                event_type: ev.event_type.to_string(),
                video_id: ev.video_id.clone(),
                stream: ev.stream.clone(),
                duplicate,
                last_error,
            });
        }
        Outcome::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_auth_key() {
        let cfg = DeliveryConfig::new("http://r/cb", "http://r/cb", "delivery-secret-key");
        assert_eq!(cfg.auth_key, "delivery-secret-key");
        assert!(!format!("{cfg:?}").contains("delivery-secret-key"));
        let sim = crate::sim::SimConfig::new("http://r/cb", "http://r/cb", "sim-secret-key");
        let shown = format!("{sim:?}");
        assert!(!shown.contains("sim-secret-key") && !shown.contains(&sim.access_key_secret));
    }
}
