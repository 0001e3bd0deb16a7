//! Circuit breakers: one per outbound target, so a dead dependency costs nothing per call.
//!
//! After resilience4j / Hystrix: **closed** (calls go through) until `failures` consecutive
//! failures, then **open** (calls are refused at once, [`Rejected`]) for `open_for`; then
//! **half-open**: exactly one probe goes through while the others are still refused. The
//! probe's success closes the breaker, its failure opens it again for another `open_for`.
//!
//! A breaker is `Send + Sync` and cheap to clone (every clone is the same breaker). Use
//! [`CircuitBreaker::call`] around a future, or [`CircuitBreaker::acquire`] and report the
//! outcome on the [`Permit`] when success is not simply `Ok` (an HTTP 4xx means the target is
//! up, say).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Most breakers one registry creates; more names share a detached breaker each (not listed).
const MAX_BREAKERS: usize = 1_000;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// A call the breaker refused: it is open (or half-open with its probe out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {name} is open after {failures} consecutive failures; next probe in {} ms", retry_in.as_millis())]
pub struct Rejected {
    pub name: String,
    pub failures: u32,
    /// When a probe may be let through.
    pub retry_in: Duration,
}

/// What [`CircuitBreaker::call`] answers when it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerError<E> {
    /// Not called: the breaker is open.
    #[error(transparent)]
    Open(Rejected),
    /// Called, and it failed (counted against the target).
    #[error("{0}")]
    Failed(E),
}

/// A breaker's figures, as `/health/detailed` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerSnapshot {
    pub name: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub failure_threshold: u32,
    pub open_ms: u64,
    /// When it last opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// Times it opened since start.
    pub trips: u64,
    pub successes: u64,
    pub failures: u64,
    /// Calls refused while open.
    pub rejected: u64,
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct State {
    mode: BreakerState,
    consecutive: u32,
    opened: Option<(Instant, DateTime<Utc>)>,
    probe_out: bool,
    trips: u64,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
    successes: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
}

/// A circuit breaker (see the module doc).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

/// Leave to make one call; say how it went. Dropped without a verdict (the call was
/// cancelled), it counts as a failure if it was the half-open probe, so the breaker cannot
/// stay half-open for ever.
#[derive(Debug)]
pub struct Permit {
    breaker: CircuitBreaker,
    probe: bool,
    done: bool,
}

impl Permit {
    /// The target answered as it should.
    pub fn success(mut self) {
        self.done = true;
        self.breaker.on_success();
    }

    /// The target failed (down, timed out, 5xx).
    pub fn failure(mut self, error: &str) {
        self.done = true;
        self.breaker.on_failure(self.probe, error);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.on_failure(true, "the probe was abandoned");
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker that opens after `failures` consecutive failures (at least 1) and
    /// refuses calls for `open_for` before a probe.
    pub fn new(name: impl Into<String>, failures: u32, open_for: Duration) -> Self {
        CircuitBreaker {
            inner: Arc::new(Inner {
                name: name.into(),
                threshold: failures.max(1),
                open_for,
                state: Mutex::new(State {
                    mode: BreakerState::Closed,
                    consecutive: 0,
                    opened: None,
                    probe_out: false,
                    trips: 0,
                    last_error: None,
                }),
                successes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        }
    }

    /// The breaker's name (its target).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Leave to call the target, or [`Rejected`] when the breaker is open (or half-open with
    /// its one probe out).
    pub fn acquire(&self) -> Result<Permit, Rejected> {
        let mut s = self.lock();
        let probe = match s.mode {
            BreakerState::Closed => false,
            BreakerState::Open => {
                let since = s.opened.map_or(self.inner.open_for, |(at, _)| at.elapsed());
                if since < self.inner.open_for {
                    let rejected = self.rejected(&s, self.inner.open_for - since);
                    drop(s);
                    return Err(rejected);
                }
                s.mode = BreakerState::HalfOpen;
                s.probe_out = true;
                log::info!(
                    "circuit breaker {}: half-open, letting one probe through",
                    self.inner.name
                );
                true
            }
            BreakerState::HalfOpen => {
                if s.probe_out {
                    let rejected = self.rejected(&s, Duration::from_millis(100));
                    drop(s);
                    return Err(rejected);
                }
                s.probe_out = true;
                true
            }
        };
        drop(s);
        Ok(Permit {
            breaker: self.clone(),
            probe,
            done: false,
        })
    }

    fn rejected(&self, s: &State, retry_in: Duration) -> Rejected {
        self.inner.rejected.fetch_add(1, Ordering::Relaxed);
        Rejected {
            name: self.inner.name.clone(),
            failures: s.consecutive,
            retry_in,
        }
    }

    /// Run `call` through the breaker: refused at once when open; its `Err` counts as a
    /// failure of the target, its `Ok` as a success.
    pub async fn call<T, E, F>(&self, call: F) -> Result<T, BreakerError<E>>
    where
        F: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let permit = self.acquire().map_err(BreakerError::Open)?;
        match call.await {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.failure(&e.to_string());
                Err(BreakerError::Failed(e))
            }
        }
    }

    fn on_success(&self) {
        self.inner.successes.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        s.consecutive = 0;
        s.probe_out = false;
        if s.mode != BreakerState::Closed {
            s.mode = BreakerState::Closed;
            s.opened = None;
            log::info!(
                "circuit breaker {}: closed (the probe succeeded)",
                self.inner.name
            );
        }
    }

    fn on_failure(&self, probe: bool, error: &str) {
        self.inner.failures.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        s.consecutive = s.consecutive.saturating_add(1);
        s.last_error = Some(error.chars().take(500).collect());
        let open = if probe {
            s.probe_out = false;
            true
        } else {
            s.mode == BreakerState::Closed && s.consecutive >= self.inner.threshold
        };
        if open {
            if s.mode == BreakerState::Closed {
                s.trips += 1;
                log::warn!(
                    "circuit breaker {}: open after {} consecutive failures (last: {error}); \
                     calls are refused for {} ms",
                    self.inner.name,
                    s.consecutive,
                    self.inner.open_for.as_millis()
                );
            }
            s.mode = BreakerState::Open;
            s.opened = Some((Instant::now(), Utc::now()));
        }
    }

    /// Open the breaker now (an operator, or a repair that takes a target out of service).
    pub fn trip(&self, why: &str) {
        let mut s = self.lock();
        if s.mode == BreakerState::Closed {
            s.trips += 1;
        }
        s.mode = BreakerState::Open;
        s.opened = Some((Instant::now(), Utc::now()));
        s.probe_out = false;
        s.last_error = Some(why.to_owned());
        log::warn!("circuit breaker {}: opened ({why})", self.inner.name);
    }

    /// Close the breaker now, forgetting its failures.
    pub fn reset(&self) {
        let mut s = self.lock();
        s.mode = BreakerState::Closed;
        s.consecutive = 0;
        s.opened = None;
        s.probe_out = false;
    }

    /// Where it stands now (an open breaker whose time is up reports half-open only once a
    /// call asks).
    pub fn state(&self) -> BreakerState {
        self.lock().mode
    }

    /// Its figures.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let s = self.lock();
        BreakerSnapshot {
            name: self.inner.name.clone(),
            state: s.mode,
            consecutive_failures: s.consecutive,
            failure_threshold: self.inner.threshold,
            open_ms: self.inner.open_for.as_millis() as u64,
            opened_at: s.opened.map(|(_, at)| at),
            trips: s.trips,
            successes: self.inner.successes.load(Ordering::Relaxed),
            failures: self.inner.failures.load(Ordering::Relaxed),
            rejected: self.inner.rejected.load(Ordering::Relaxed),
            last_error: s.last_error.clone(),
        }
    }
}

/// The named breakers of one system, created on first use with the configured policy
/// (`CIRCUIT_BREAKER_FAILURES`, `CIRCUIT_BREAKER_OPEN_MS`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Breakers {
    all: Arc<Mutex<Vec<CircuitBreaker>>>,
    failures: u32,
    open_for: Duration,
}

impl Breakers {
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Breakers {
            all: Arc::default(),
            failures,
            open_for,
        }
    }

    /// The breaker of `name`, created closed on first use.
    pub fn get(&self, name: &str) -> CircuitBreaker {
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = all.iter().find(|b| b.name() == name) {
            return b.clone();
        }
        let b = CircuitBreaker::new(name, self.failures, self.open_for);
        if all.len() < MAX_BREAKERS {
            all.push(b.clone());
        } else {
            log::warn!("circuit breakers: {MAX_BREAKERS} exist; {name} is not listed");
        }
        b
    }

    /// Every breaker's figures, by name.
    pub fn snapshots(&self) -> Vec<BreakerSnapshot> {
        let all = self
            .all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out: Vec<_> = all.iter().map(CircuitBreaker::snapshot).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_opens_after_n_failures_refuses_then_lets_one_probe_through() {
        let b = CircuitBreaker::new("t", 3, Duration::from_millis(50));
        for _ in 0..2 {
            b.acquire().unwrap().failure("down");
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire().unwrap().success();
        // A success resets the count: three more are needed.
        for _ in 0..3 {
            b.acquire().unwrap().failure("down");
        }
        assert_eq!(b.state(), BreakerState::Open);
        let r = b.acquire().unwrap_err();
        assert_eq!(r.failures, 3);
        assert!(r.retry_in <= Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.acquire().expect("the probe goes through");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.acquire().is_err(), "only one probe at a time");
        probe.failure("still down");
        assert_eq!(b.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(60));
        b.acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        let s = b.snapshot();
        assert_eq!((s.trips, s.failures, s.successes), (1, 6, 2));
        assert_eq!(s.rejected, 2);
    }

    #[test]
    fn an_abandoned_probe_counts_as_a_failure() {
        let b = CircuitBreaker::new("t", 1, Duration::ZERO);
        b.acquire().unwrap().failure("down");
        drop(b.acquire().unwrap());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[actix_web::test]
    async fn call_counts_errors_and_refuses_when_open() {
        let b = CircuitBreaker::new("t", 1, Duration::from_secs(60));
        let r: Result<(), _> = b.call(async { Err::<(), _>("boom") }).await;
        assert_eq!(r, Err(BreakerError::Failed("boom")));
        let r: Result<u8, BreakerError<&str>> = b.call(async { Ok(1) }).await;
        assert!(matches!(r, Err(BreakerError::Open(_))));
    }

    #[test]
    fn the_registry_hands_out_one_breaker_per_name() {
        let r = Breakers::new(2, Duration::from_secs(1));
        r.get("a").acquire().unwrap().failure("x");
        r.get("a").acquire().unwrap().failure("x");
        assert_eq!(r.get("a").state(), BreakerState::Open);
        assert_eq!(r.get("b").state(), BreakerState::Closed);
        let names: Vec<_> = r.snapshots().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
