//! Posts callbacks to the relay the way VOD does: one POST per event, signed with
//! `X-VOD-TIMESTAMP`/`X-VOD-SIGNATURE`, only 200 counts, 3 attempts about 1 s apart (each with
//! a 5 s timeout), then the event is dropped ("lost by VOD"). Concurrency is bounded; the
//! order and the duplicates come from the caller.
//!
//! Besides those losses, two more ways VOD's truth can miss the relay, each counted on its own:
//! - **dropped** (`drop_rate`): the callback is never posted at all (an outage on VOD's side,
//!   a misrouted notification). Chosen per event by the seed, so both copies of a duplicated
//!   event share the fate and a run is reproducible.
//! - **never sent** (`silent_failure_rate`): a composed video whose upload fails may produce
//!   no FileUploadComplete at all; VOD's state still says UploadFail.
//!
//! In all three cases VOD's own state (the OpenAPI's answers) includes what the event says:
//! [`DeliveryHooks::emitted`] is called before anything is posted or skipped.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::scenario::{Effect, ScenarioEvent};
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
    /// Fraction of events never posted (chosen per event id by `seed`).
    pub drop_rate: f64,
    /// Fraction of failed compose uploads that send no FileUploadComplete (by `seed` too).
    pub silent_failure_rate: f64,
    /// Event types VOD never posts at all (every one of them, the callbacks of jobs the
    /// OpenAPI started included): how the tests lose one kind of callback in every flow.
    pub drop_types: Vec<String>,
    pub seed: u64,
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
            .field("drop_rate", &self.drop_rate)
            .field("silent_failure_rate", &self.silent_failure_rate)
            .field("drop_types", &self.drop_types)
            .finish_non_exhaustive()
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
            drop_rate: 0.0,
            silent_failure_rate: 0.0,
            drop_types: Vec::new(),
            seed: 0,
        }
    }

    /// What VOD does with `ev`: a pure function of the seed and the event (id, type, effect).
    pub fn fate(&self, ev: &ScenarioEvent) -> Fate {
        let failed_upload = matches!(ev.effect, Effect::Uploaded { ok: false, .. });
        if failed_upload && chance(self.seed ^ 0x51_1e_47, ev.id) < self.silent_failure_rate {
            return Fate::NeverSent;
        }
        if chance(self.seed, ev.id) < self.drop_rate
            || self.drop_types.iter().any(|t| t == ev.event_type)
        {
            return Fate::Dropped;
        }
        Fate::Post
    }
}

/// What VOD does with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Posted (up to `attempts` times).
    Post,
    /// Never posted (`drop_rate`).
    Dropped,
    /// A failure that sends no callback (`silent_failure_rate`).
    NeverSent,
}

/// A uniform number in [0, 1) from (seed, id) (splitmix64), so the choice of an event does not
/// depend on delivery order or on how many other events were chosen.
fn chance(seed: u64, id: u64) -> f64 {
    let mut z = seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
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
    /// Deliveries never posted (`drop_rate`), duplicate copies included.
    pub dropped: u64,
    /// Deliveries of failures VOD sends no callback for, duplicate copies included.
    pub never_sent: u64,
    /// Duplicate copies answered 200.
    pub duplicates_acknowledged: u64,
}

impl Progress {
    /// Deliveries not finished yet.
    pub fn pending(&self) -> u64 {
        self.scheduled
            .saturating_sub(self.acknowledged + self.lost + self.dropped + self.never_sent)
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
        )?;
        if self.dropped + self.never_sent > 0 {
            write!(
                f,
                ", {} dropped by VOD (never posted), {} never sent (silent failures)",
                self.dropped, self.never_sent
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Counters {
    scheduled: AtomicU64,
    sent: AtomicU64,
    acknowledged: AtomicU64,
    retried: AtomicU64,
    lost: AtomicU64,
    dropped: AtomicU64,
    never_sent: AtomicU64,
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
    /// The last attempt's error; `dropped` / `never sent` for events that were not posted.
    pub last_error: String,
}

/// What the rest of the simulator learns from delivery.
pub trait DeliveryHooks: Send + Sync + 'static {
    /// VOD starts sending the event: from now on VOD's state includes what it says.
    fn emitted(&self, ev: &ScenarioEvent);
    /// The relay answered 200.
    fn acknowledged(&self, ev: &ScenarioEvent, duplicate: bool);
    /// VOD did not post the event ([`Fate::Dropped`] or [`Fate::NeverSent`]); called after
    /// [`DeliveryHooks::emitted`].
    fn not_posted(&self, _ev: &ScenarioEvent, _fate: Fate) {}
}

/// Outcome of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acknowledged,
    Lost,
    /// Not posted: [`Fate::Dropped`] or [`Fate::NeverSent`].
    NotPosted,
}

pub struct Deliverer {
    cfg: DeliveryConfig,
    client: reqwest::Client,
    sem: Arc<Semaphore>,
    counters: Counters,
    lost: Mutex<Vec<LostEvent>>,
    /// Events not posted ([`Fate::Dropped`], [`Fate::NeverSent`]), one entry per copy.
    not_posted: Mutex<Vec<(Fate, LostEvent)>>,
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
            not_posted: Mutex::new(Vec::new()),
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
            dropped: c.dropped.load(Ordering::Relaxed),
            never_sent: c.never_sent.load(Ordering::Relaxed),
            duplicates_acknowledged: c.duplicates_acknowledged.load(Ordering::Relaxed),
        }
    }

    pub fn lost_events(&self) -> Vec<LostEvent> {
        self.lost.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Events VOD did not post, by why (one entry per copy).
    pub fn not_posted(&self, fate: Fate) -> Vec<LostEvent> {
        self.not_posted
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(f, _)| *f == fate)
                    .map(|(_, e)| e.clone())
                    .collect()
            })
            .unwrap_or_default()
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
        let fate = self.cfg.fate(ev);
        if fate != Fate::Post {
            // VOD did it all the same: its state changes, only the callback is missing.
            self.hooks.emitted(ev);
            let (counter, why) = match fate {
                Fate::Dropped => (&self.counters.dropped, "dropped"),
                _ => (&self.counters.never_sent, "never sent"),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(event_type = ev.event_type, video_id = %ev.video_id, why, "sim: callback not posted");
            if let Ok(mut l) = self.not_posted.lock() {
                l.push((
                    fate,
                    LostEvent {
                        event_id: ev.id,
                        event_type: ev.event_type.to_string(),
                        video_id: ev.video_id.clone(),
                        stream: ev.stream.clone(),
                        duplicate,
                        last_error: why.to_string(),
                    },
                ));
            }
            self.hooks.not_posted(ev, fate);
            return Outcome::NotPosted;
        }
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

    fn event(id: u64, effect: Effect) -> ScenarioEvent {
        ScenarioEvent {
            id,
            time_ms: 0,
            video_id: format!("v{id}"),
            event_type: "FileUploadComplete",
            stream: "d/a/s".into(),
            flow: crate::sim::Flow::ComposeOnly,
            body: "{}".into(),
            effect,
        }
    }

    #[test]
    fn fates_follow_the_seed_and_the_rates() {
        let failed = |id| {
            event(
                id,
                Effect::Uploaded {
                    ok: false,
                    size: 0,
                    file_url: String::new(),
                    auto_group: None,
                },
            )
        };
        let mut cfg = DeliveryConfig::new("http://r/cb", "http://r/cb", "k");
        let evs: Vec<ScenarioEvent> = (0..2000)
            .map(|i| {
                event(
                    i,
                    Effect::ComposeStarted {
                        start_ms: 0,
                        end_ms: 1,
                    },
                )
            })
            .collect();
        assert!(
            evs.iter().all(|e| cfg.fate(e) == Fate::Post),
            "rates 0: all posted"
        );
        cfg.drop_rate = 0.05;
        cfg.seed = 7;
        let dropped: Vec<u64> = evs
            .iter()
            .filter(|e| cfg.fate(e) == Fate::Dropped)
            .map(|e| e.id)
            .collect();
        assert!(
            (60..140).contains(&dropped.len()),
            "{} of 2000",
            dropped.len()
        );
        let again: Vec<u64> = evs
            .iter()
            .filter(|e| cfg.fate(e) == Fate::Dropped)
            .map(|e| e.id)
            .collect();
        assert_eq!(dropped, again, "same seed, same choice");
        cfg.seed = 8;
        assert_ne!(
            dropped,
            evs.iter()
                .filter(|e| cfg.fate(e) == Fate::Dropped)
                .map(|e| e.id)
                .collect::<Vec<_>>()
        );
        // Only failed uploads can be silent.
        cfg.drop_rate = 0.0;
        cfg.silent_failure_rate = 1.0;
        assert_eq!(cfg.fate(&failed(3)), Fate::NeverSent);
        assert_eq!(cfg.fate(&evs[3]), Fate::Post);
        let ok_upload = event(
            4,
            Effect::Uploaded {
                ok: true,
                size: 1,
                file_url: "u".into(),
                auto_group: None,
            },
        );
        assert_eq!(cfg.fate(&ok_upload), Fate::Post);
    }
}
