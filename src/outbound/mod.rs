//! Outbound calls: the one HTTP client ([`HttpClient`], used by the Slack and PagerDuty
//! notifiers and the external checks), the error every outbound call reports
//! ([`OutboundError`], which says whether a retry can help), retry with jittered backoff
//! ([`RetryPolicy`]), and circuit breakers per target ([`CircuitBreaker`], [`Breakers`]).
//!
//! A breaker is a public type: a host app wraps its own calls in one
//! (`selfheal.breaker("payments").call(fut)`), and `/api/v1/system/health/detailed` shows
//! every breaker's state.

mod breaker;
mod http;

use std::future::Future;
use std::time::Duration;

pub use breaker::{
    BreakerError, BreakerSnapshot, BreakerState, Breakers, CircuitBreaker, Permit, Rejected,
};
pub use http::{Answer, HttpClient};

/// Longest `Retry-After` honoured: a receiver asking for more gets asked again sooner rather
/// than freezing the caller for hours.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// A failed attempt, and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundError {
    /// Connection errors, timeouts, 5xx, 429 (and SMTP 4xx): yes. Other 4xx, SMTP 5xx and bad
    /// configuration: no.
    pub retryable: bool,
    pub http_status: Option<u16>,
    /// What the receiver asked for (`Retry-After`), or how long an open breaker still refuses:
    /// a retry waits at least this long.
    pub retry_after: Option<Duration>,
    /// For logs and records; never contains a secret (webhook URL, key).
    pub message: String,
}

impl OutboundError {
    /// Worth another attempt.
    pub fn transient(message: impl Into<String>) -> Self {
        OutboundError {
            retryable: true,
            http_status: None,
            retry_after: None,
            message: message.into(),
        }
    }

    /// Another attempt would fail the same way.
    pub fn permanent(message: impl Into<String>) -> Self {
        OutboundError {
            retryable: false,
            ..OutboundError::transient(message)
        }
    }

    /// The target's breaker is open: not called.
    pub fn breaker_open(r: &Rejected) -> Self {
        OutboundError {
            retry_after: Some(r.retry_in),
            ..OutboundError::transient(r.to_string())
        }
    }
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OutboundError {}

/// How attempts are retried: up to `max_attempts`, waiting `initial · 2^(n-1)` (capped, with
/// equal jitter) between them, or longer when the target asked (`Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub backoff_initial: Duration,
    /// Longest delay between attempts (before `Retry-After`).
    pub backoff_max: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

/// One attempt's outcome, as [`RetryPolicy::run`] reports it.
#[derive(Debug)]
pub enum Attempt<'a, T> {
    Succeeded(&'a T),
    /// Failed; the next attempt comes after `wait`.
    WillRetry {
        error: &'a OutboundError,
        wait: Duration,
    },
    /// Failed for good (not retryable, or out of attempts).
    GaveUp(&'a OutboundError),
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): `initial · 2^(attempt-1)`
    /// capped at `max`, with equal jitter (half fixed, half random) so that retries of many
    /// callers spread out but never come sooner than half the nominal delay.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let nominal = self
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        let ms = u64::try_from(nominal.as_millis()).unwrap_or(u64::MAX);
        let half = ms / 2;
        Duration::from_millis(half + fastrand::u64(0..=ms - half))
    }

    /// The wait after a failed attempt: the backoff, or longer when the target asked.
    pub fn delay(&self, attempt: u32, err: &OutboundError) -> Duration {
        let backoff = self.backoff(attempt);
        match err.retry_after {
            Some(asked) => backoff.max(asked.min(RETRY_AFTER_CAP)),
            None => backoff,
        }
    }

    /// `fut` bounded by the per-attempt timeout: running out of time is a transient error.
    pub async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, OutboundError>>,
    ) -> Result<T, OutboundError> {
        match actix_web::rt::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(OutboundError::transient(format!(
                "timed out after {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Run `op(attempt)` until it succeeds, fails for good, or runs out of attempts, waiting
    /// [`RetryPolicy::delay`] between attempts; `observe` hears every outcome (to record it).
    /// `op` bounds each attempt itself ([`RetryPolicy::timed`]), so that what it does before
    /// the call (pacing) is not counted against the call.
    pub async fn run<T, F, Fut>(
        &self,
        mut op: F,
        mut observe: impl FnMut(u32, Attempt<'_, T>),
    ) -> Result<T, OutboundError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, OutboundError>>,
    {
        let mut attempt: u32 = 1;
        loop {
            match op(attempt).await {
                Ok(value) => {
                    observe(attempt, Attempt::Succeeded(&value));
                    return Ok(value);
                }
                Err(error) if error.retryable && attempt < self.max_attempts.max(1) => {
                    let wait = self.delay(attempt, &error);
                    observe(
                        attempt,
                        Attempt::WillRetry {
                            error: &error,
                            wait,
                        },
                    );
                    actix_web::rt::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => {
                    observe(attempt, Attempt::GaveUp(&error));
                    return Err(error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn policy(initial: u64, max: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff_initial: Duration::from_millis(initial),
            backoff_max: Duration::from_millis(max),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let p = policy(100, 1000);
        for _ in 0..200 {
            let b1 = p.backoff(1).as_millis();
            assert!((50..=100).contains(&b1), "{b1}");
            let b3 = p.backoff(3).as_millis();
            assert!((200..=400).contains(&b3), "{b3}");
            let b10 = p.backoff(10).as_millis();
            assert!((500..=1000).contains(&b10), "{b10}");
        }
        assert!(p.backoff(u32::MAX) <= Duration::from_millis(1000));
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_capped() {
        let p = policy(10, 20);
        let mut e = OutboundError::transient("429");
        e.retry_after = Some(Duration::from_secs(2));
        assert!(p.delay(1, &e) >= Duration::from_secs(2));
        e.retry_after = Some(Duration::from_secs(86_400));
        assert_eq!(p.delay(1, &e), RETRY_AFTER_CAP);
    }

    #[actix_web::test]
    async fn run_retries_what_can_help_and_stops_at_what_cannot() {
        let p = policy(1, 2);
        let seen = RefCell::new(Vec::new());
        // Two transient failures, then success.
        let out = p
            .run(
                |n| async move {
                    if n < 3 {
                        Err(OutboundError::transient(format!("boom {n}")))
                    } else {
                        Ok(n)
                    }
                },
                |n, a| {
                    seen.borrow_mut().push(format!(
                        "{n}:{}",
                        match a {
                            Attempt::Succeeded(_) => "ok",
                            Attempt::WillRetry { .. } => "retry",
                            Attempt::GaveUp(_) => "gave up",
                        }
                    ))
                },
            )
            .await;
        assert_eq!(out, Ok(3));
        assert_eq!(*seen.borrow(), ["1:retry", "2:retry", "3:ok"]);
        // A permanent failure is not retried.
        let calls = RefCell::new(0);
        let out: Result<(), _> = p
            .run(
                |_| {
                    *calls.borrow_mut() += 1;
                    async { Err(OutboundError::permanent("400")) }
                },
                |_, _| {},
            )
            .await;
        assert!(out.is_err());
        assert_eq!(*calls.borrow(), 1);
        // Out of attempts.
        let calls = RefCell::new(0);
        let out: Result<(), _> = p
            .run(
                |_| {
                    *calls.borrow_mut() += 1;
                    async { Err(OutboundError::transient("503")) }
                },
                |_, _| {},
            )
            .await;
        assert!(out.is_err());
        assert_eq!(*calls.borrow(), 5);
    }
}
