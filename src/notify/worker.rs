//! `Worker<N>`: one channel's delivery queue, an actor on the notifier arbiter.
//!
//! Messages in: [`Enqueue`] (from [`super::Notifiers::dispatch`], which has already reserved
//! the notice's place in the bounded queue). Out: one `notification_log` row per attempt,
//! through the store, and the channel's counters.
//!
//! It delivers one notice at a time, oldest first. A notice that fails with a retryable error
//! waits for its retry *at the head of the queue*: later notices wait behind it, so a resolve
//! never overtakes its trigger and a rate-limited receiver is not hammered by the next notice.
//! The price is head-of-line delay within this channel only; other channels have their own
//! workers. A notice is given up after `NOTIFY_MAX_ATTEMPTS` attempts.
//!
//! Not supervised: nothing in it panics by design, and a panic inside a channel's `send` is
//! caught at the attempt boundary and counted as a permanent failure of that notice.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ChannelStats, Delivered, Notice, Notifier, NotifyError};
use crate::config::NotifySettings;
use crate::store::{NotificationRow, Record, Store};

/// Longest `Retry-After` honoured: a receiver asking for more gets asked again sooner rather
/// than freezing the channel for hours.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// Queue a notice (its place is already reserved in the channel's `queued` count).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Notice);

/// How a worker times and retries attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per notice, at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub backoff_initial: Duration,
    /// Longest delay between attempts (before `Retry-After`).
    pub backoff_max: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl RetryPolicy {
    pub fn from_settings(s: &NotifySettings) -> Self {
        RetryPolicy {
            max_attempts: s.max_attempts.max(1),
            backoff_initial: Duration::from_millis(s.backoff_initial_ms.max(1)),
            backoff_max: Duration::from_millis(s.backoff_max_ms.max(s.backoff_initial_ms).max(1)),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based): `initial · 2^(attempt-1)`
    /// capped at `max`, with equal jitter (half fixed, half random) so that retries of many
    /// instances spread out but never come sooner than half the nominal delay.
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

    /// The wait after a failed attempt: the backoff, or longer when the receiver asked.
    fn delay(&self, attempt: u32, err: &NotifyError) -> Duration {
        let backoff = self.backoff(attempt);
        match err.retry_after {
            Some(asked) => backoff.max(asked.min(RETRY_AFTER_CAP)),
            None => backoff,
        }
    }
}

/// What one delivery needs; shared (`Rc`) between the actor and its in-flight delivery.
struct Shared<N> {
    notifier: N,
    policy: RetryPolicy,
    store: Store,
    stats: Arc<ChannelStats>,
    /// When the last attempt ended, for the channel's minimum interval.
    last_attempt: std::cell::Cell<Option<Instant>>,
}

/// One channel's worker.
pub struct Worker<N: Notifier> {
    shared: Rc<Shared<N>>,
    queue: VecDeque<Notice>,
    busy: bool,
}

impl<N: Notifier> Worker<N> {
    /// Start a worker on `arbiter`; `build` makes the channel there (its client is `!Send`).
    pub fn start<F>(
        arbiter: &ArbiterHandle,
        build: F,
        policy: RetryPolicy,
        store: Store,
        stats: Arc<ChannelStats>,
    ) -> Recipient<Enqueue>
    where
        F: FnOnce() -> N + Send + 'static,
    {
        Worker::start_in_arbiter(arbiter, move |_| Worker {
            shared: Rc::new(Shared {
                notifier: build(),
                policy,
                store,
                stats,
                last_attempt: std::cell::Cell::new(None),
            }),
            queue: VecDeque::new(),
            busy: false,
        })
        .recipient()
    }

    /// Start delivering the head of the queue, unless a delivery is in flight.
    fn next(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some(notice) = self.queue.pop_front() else {
            return;
        };
        self.busy = true;
        let delivery = deliver(self.shared.clone(), notice);
        ctx.spawn(delivery.into_actor(self).map(|(), act, ctx| {
            act.busy = false;
            act.next(ctx);
        }));
    }
}

impl<N: Notifier> Actor for Worker<N> {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        log::debug!("{} notifier started", self.shared.notifier.kind().as_str());
    }
}

impl<N: Notifier> Handler<Enqueue> for Worker<N> {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        self.queue.push_back(msg.0);
        self.next(ctx);
    }
}

/// Deliver one notice: attempt, retry while it makes sense, record every attempt.
async fn deliver<N: Notifier>(shared: Rc<Shared<N>>, notice: Notice) {
    let channel = shared.notifier.kind().as_str();
    let policy = shared.policy;
    let mut attempt: u32 = 1;
    loop {
        pace(&shared).await;
        let result = attempt_once(&shared, &notice).await;
        shared.last_attempt.set(Some(Instant::now()));
        let mut detail = shared.notifier.row_detail(&notice);
        let what = format!(
            "{channel} {} of {} (alert {}, attempt {attempt}/{})",
            notice.action.as_str(),
            notice.alert.alert_type,
            notice.alert.id,
            policy.max_attempts
        );
        match result {
            Ok(delivered) => {
                detail.extend(delivered.detail);
                record(
                    &shared,
                    &notice,
                    "sent",
                    attempt,
                    delivered.http_status,
                    None,
                    detail,
                );
                shared.stats.sent.fetch_add(1, Ordering::Relaxed);
                log::info!("sent {what}");
                break;
            }
            Err(err) if err.retryable && attempt < policy.max_attempts => {
                let wait = policy.delay(attempt, &err);
                detail.insert("retry_in_ms".into(), json!(wait.as_millis() as u64));
                if let Some(asked) = err.retry_after {
                    detail.insert("retry_after_ms".into(), json!(asked.as_millis() as u64));
                }
                record(
                    &shared,
                    &notice,
                    "retrying",
                    attempt,
                    err.http_status,
                    Some(&err),
                    detail,
                );
                shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                shared.stats.set_last_error(&err.message);
                log::warn!("{what} failed, retrying in {wait:?}: {err}");
                actix_rt::time::sleep(wait).await;
                attempt += 1;
            }
            Err(err) => {
                record(
                    &shared,
                    &notice,
                    "failed",
                    attempt,
                    err.http_status,
                    Some(&err),
                    detail,
                );
                shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                shared.stats.set_last_error(&err.message);
                let why = if err.retryable {
                    "out of attempts"
                } else {
                    "not retryable"
                };
                log::error!("{what} failed, given up ({why}): {err}");
                break;
            }
        }
    }
    shared.stats.queued.fetch_sub(1, Ordering::AcqRel);
}

/// Wait out the channel's minimum interval since the last attempt.
async fn pace<N: Notifier>(shared: &Shared<N>) {
    let min = shared.notifier.min_interval();
    if let Some(last) = shared.last_attempt.get() {
        let since = last.elapsed();
        if since < min {
            actix_rt::time::sleep(min - since).await;
        }
    }
}

/// One attempt, bounded by the timeout; a panic in the channel is a permanent failure.
async fn attempt_once<N: Notifier>(
    shared: &Shared<N>,
    notice: &Notice,
) -> Result<Delivered, NotifyError> {
    let timeout = shared.policy.timeout;
    let send = AssertUnwindSafe(shared.notifier.send(notice)).catch_unwind();
    match actix_rt::time::timeout(timeout, send).await {
        Ok(Ok(result)) => result,
        Ok(Err(_panic)) => Err(NotifyError::permanent(
            "internal error (the channel panicked)",
        )),
        Err(_elapsed) => Err(NotifyError::transient(format!(
            "timed out after {} ms",
            timeout.as_millis()
        ))),
    }
}

fn record<N: Notifier>(
    shared: &Shared<N>,
    notice: &Notice,
    status: &str,
    attempt: u32,
    http_status: Option<u16>,
    err: Option<&NotifyError>,
    detail: serde_json::Map<String, Value>,
) {
    shared.store.write(Record::Notification(NotificationRow {
        id: Uuid::new_v4(),
        alert_id: notice.alert.id,
        channel: shared.notifier.kind().as_str().to_owned(),
        action: notice.action.as_str().to_owned(),
        status: status.to_owned(),
        attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
        http_status: http_status.map(i32::from),
        error: err.map(|e| e.message.clone()),
        detail: Value::Object(detail),
        created_at: Utc::now(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut e = NotifyError::transient("429");
        e.retry_after = Some(Duration::from_secs(2));
        assert!(p.delay(1, &e) >= Duration::from_secs(2));
        e.retry_after = Some(Duration::from_secs(86_400));
        assert_eq!(p.delay(1, &e), RETRY_AFTER_CAP);
    }
}
