//! The one retry/backoff of the crate: exponential backoff (optionally with full jitter),
//! bounded by attempts and by elapsed time, optionally interrupted by a stop signal.
//!
//! Used by the VOD client (each OpenAPI call: `--vod-max-attempts`, jittered) and by the
//! worker (a command whose call still failed retryably, and the writes of its outcome: no
//! attempt cap, 1 s doubling, stops at shutdown). A blocking variant ([`retry_blocking`])
//! serves synchronous callers such as librdkafka's transaction calls.
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

/// How failed attempts are retried: exponential backoff, bounded both by attempts and by
/// total elapsed time.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The VOD client's default: 5 attempts, 200 ms doubling up to 5 s, at most 60 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Attempts of the default policy (also the default of `worker --vod-max-attempts`).
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

    /// Retries for as long as the caller lets it (no attempt or time cap): `initial`
    /// doubling up to `max`. Pair it with a stop signal.
    pub fn forever(initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: initial,
            max_backoff: max,
            max_elapsed: Duration::MAX,
        }
    }

    /// `attempts` attempts in all, one right after the other.
    pub fn immediate(attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: attempts,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_elapsed: Duration::MAX,
        }
    }

    /// Upper bound of the sleep before retry number `retry` (0-based): `initial * 2^retry`,
    /// capped at `max_backoff`.
    pub fn backoff_bound(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether the sleep is the bound itself or uniform in `[0, bound]` (full jitter, which
/// spreads clients that failed together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    None,
    Full,
}

impl Jitter {
    fn apply(self, bound: Duration) -> Duration {
        match self {
            Jitter::None => bound,
            Jitter::Full => {
                let max = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
                static RNG: OnceLock<Mutex<SmallRng>> = OnceLock::new();
                let rng = RNG.get_or_init(|| Mutex::new(SmallRng::from_os_rng()));
                let ms = match rng.lock() {
                    Ok(mut r) => r.random_range(0..=max),
                    // A panicked holder cannot leave an RNG in a harmful state; back off fully.
                    Err(_) => max,
                };
                Duration::from_millis(ms)
            }
        }
    }
}

/// One failed attempt, as the caller's `on_error` sees it.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    /// 1-based number of the attempt that failed.
    pub attempt: u32,
    /// The sleep before the next attempt, if there is one.
    pub backoff: Option<Duration>,
}

/// Why [`retry`] returned without a success.
#[derive(Debug)]
pub enum GaveUp<E> {
    /// The last error: permanent (`retryable` said no), or the attempt or time cap was reached.
    Failed(E),
    /// The stop signal was set when a backoff was due, or fired during one.
    Stopped,
}

impl<E> GaveUp<E> {
    /// The error, `None` when stopped.
    pub fn error(self) -> Option<E> {
        match self {
            GaveUp::Failed(e) => Some(e),
            GaveUp::Stopped => None,
        }
    }
}

/// Runs `op` until it succeeds, `retryable` refuses its error, the policy's attempt or time
/// cap is reached, or `stop` turns true. The first attempt always runs (work that finishes
/// during a shutdown still gets to write its result); `stop` ends only the waits. `on_error` sees every failure before the decision is
/// acted on (for logs and metrics).
pub async fn retry<T, E, Op, Fut>(
    policy: &RetryPolicy,
    jitter: Jitter,
    stop: Option<&watch::Receiver<bool>>,
    mut op: Op,
    retryable: impl Fn(&E) -> bool,
    mut on_error: impl FnMut(&E, Failure),
) -> Result<T, GaveUp<E>>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut retry = 0u32;
    loop {
        let err = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let attempt = retry.saturating_add(1);
        let backoff = next_backoff(policy, jitter, started, retry, retryable(&err));
        on_error(&err, Failure { attempt, backoff });
        let Some(sleep) = backoff else {
            return Err(GaveUp::Failed(err));
        };
        match stop {
            None => tokio::time::sleep(sleep).await,
            Some(stop) => {
                if *stop.borrow() {
                    return Err(GaveUp::Stopped);
                }
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = stop.wait_for(|s| *s) => return Err(GaveUp::Stopped),
                }
            }
        }
        retry = retry.saturating_add(1);
    }
}

/// [`retry`] for synchronous operations (sleeps the thread; no stop signal).
pub fn retry_blocking<T, E>(
    policy: &RetryPolicy,
    jitter: Jitter,
    mut op: impl FnMut() -> Result<T, E>,
    retryable: impl Fn(&E) -> bool,
    mut on_error: impl FnMut(&E, Failure),
) -> Result<T, E> {
    let started = Instant::now();
    let mut retry = 0u32;
    loop {
        let err = match op() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let attempt = retry.saturating_add(1);
        let backoff = next_backoff(policy, jitter, started, retry, retryable(&err));
        on_error(&err, Failure { attempt, backoff });
        let Some(sleep) = backoff else {
            return Err(err);
        };
        if !sleep.is_zero() {
            std::thread::sleep(sleep);
        }
        retry = retry.saturating_add(1);
    }
}

/// The sleep before the next attempt after failure number `retry + 1`, or `None` to give up.
fn next_backoff(
    policy: &RetryPolicy,
    jitter: Jitter,
    started: Instant,
    retry: u32,
    retryable: bool,
) -> Option<Duration> {
    if !retryable || retry.saturating_add(1) >= policy.max_attempts {
        return None;
    }
    let sleep = jitter.apply(policy.backoff_bound(retry));
    (started.elapsed().saturating_add(sleep) < policy.max_elapsed).then_some(sleep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

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
        let f = RetryPolicy::forever(Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(f.backoff_bound(3), Duration::from_secs(8));
        assert_eq!(f.backoff_bound(30), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_stays_within_the_bound() {
        for _ in 0..100 {
            assert!(Jitter::Full.apply(Duration::from_millis(7)) <= Duration::from_millis(7));
        }
        assert_eq!(
            Jitter::None.apply(Duration::from_millis(7)),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn blocking_retries_retryable_errors_up_to_the_cap_and_permanent_ones_never() {
        let calls = Cell::new(0);
        let seen = Cell::new(0);
        let r: Result<(), &str> = retry_blocking(
            &RetryPolicy::immediate(3),
            Jitter::None,
            || {
                calls.set(calls.get() + 1);
                Err("busy")
            },
            |_| true,
            |_, f| seen.set(f.attempt),
        );
        assert_eq!((r, calls.get(), seen.get()), (Err("busy"), 3, 3));

        calls.set(0);
        let r: Result<(), &str> = retry_blocking(
            &RetryPolicy::immediate(3),
            Jitter::None,
            || {
                calls.set(calls.get() + 1);
                Err("bad")
            },
            |_| false,
            |_, f| assert!(f.backoff.is_none()),
        );
        assert_eq!((r, calls.get()), (Err("bad"), 1));
    }

    #[tokio::test]
    async fn async_retry_succeeds_after_failures_and_honours_stop() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let policy = RetryPolicy::forever(Duration::from_millis(1), Duration::from_millis(4));
        let r: Result<u32, GaveUp<&str>> = retry(
            &policy,
            Jitter::None,
            None,
            || async {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if n < 4 {
                    Err("busy")
                } else {
                    Ok(n)
                }
            },
            |_| true,
            |_, _| {},
        )
        .await;
        assert!(matches!(r, Ok(4)));

        let (tx, rx) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = tx.send(true);
        });
        let r: Result<(), GaveUp<&str>> = retry(
            &policy,
            Jitter::None,
            Some(&rx),
            || async { Err("busy") },
            |_| true,
            |_, _| {},
        )
        .await;
        assert!(matches!(r, Err(GaveUp::Stopped)));
        let _ = stopper.await;
    }

    #[tokio::test]
    async fn elapsed_cap_ends_the_retries() {
        let policy = RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(200),
            max_elapsed: Duration::from_millis(300),
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<(), GaveUp<&str>> = retry(
            &policy,
            Jitter::None,
            None,
            || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err("busy")
            },
            |_| true,
            |_, _| {},
        )
        .await;
        assert!(matches!(r, Err(GaveUp::Failed("busy"))));
        // Attempts at 0 and 200 ms; a second sleep would end past 300 ms.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
