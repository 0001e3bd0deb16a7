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
use std::time::Instant;

use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ChannelStats, Delivered, Notice, Notifier, NotifyError};
use crate::outbound::{Attempt, CircuitBreaker, RetryPolicy};
use crate::store::{NotificationRow, Record, Store};

/// Queue a notice (its place is already reserved in the channel's `queued` count).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Notice);

/// What one delivery needs; shared (`Rc`) between the actor and its in-flight delivery.
struct Shared<N> {
    notifier: N,
    policy: RetryPolicy,
    store: Store,
    stats: Arc<ChannelStats>,
    /// The channel's circuit breaker: an open one refuses at once, and the notice waits.
    breaker: CircuitBreaker,
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
        breaker: CircuitBreaker,
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
                breaker,
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
    let what = |attempt: u32| {
        format!(
            "{channel} {} of {} (alert {}, attempt {attempt}/{})",
            notice.action.as_str(),
            notice.alert.alert_type,
            notice.alert.id,
            policy.max_attempts
        )
    };
    let outcome = policy
        .run(
            |_| async {
                pace(&shared).await;
                let result = policy.timed(attempt_once(&shared, &notice)).await;
                shared.last_attempt.set(Some(Instant::now()));
                result
            },
            |attempt, outcome| {
                let mut detail = shared.notifier.row_detail(&notice);
                match outcome {
                    Attempt::Succeeded(delivered) => {
                        detail.extend(delivered.detail.clone());
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
                        log::info!("sent {}", what(attempt));
                    }
                    Attempt::WillRetry { error, wait } => {
                        detail.insert("retry_in_ms".into(), json!(wait.as_millis() as u64));
                        if let Some(asked) = error.retry_after {
                            detail.insert("retry_after_ms".into(), json!(asked.as_millis() as u64));
                        }
                        record(
                            &shared,
                            &notice,
                            "retrying",
                            attempt,
                            error.http_status,
                            Some(error),
                            detail,
                        );
                        shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                        shared.stats.set_last_error(&error.message);
                        log::warn!("{} failed, retrying in {wait:?}: {error}", what(attempt));
                    }
                    Attempt::GaveUp(error) => {
                        record(
                            &shared,
                            &notice,
                            "failed",
                            attempt,
                            error.http_status,
                            Some(error),
                            detail,
                        );
                        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                        shared.stats.set_last_error(&error.message);
                        let why = if error.retryable {
                            "out of attempts"
                        } else {
                            "not retryable"
                        };
                        log::error!("{} failed, given up ({why}): {error}", what(attempt));
                    }
                }
            },
        )
        .await;
    drop(outcome);
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

/// One attempt through the channel's breaker (the policy bounds it by the timeout); a panic in
/// the channel is a permanent failure. A retryable failure counts against the target; an
/// answer that says our notice is wrong (a 4xx) means the target is up.
async fn attempt_once<N: Notifier>(
    shared: &Shared<N>,
    notice: &Notice,
) -> Result<Delivered, NotifyError> {
    let permit = shared
        .breaker
        .acquire()
        .map_err(|r| NotifyError::breaker_open(&r))?;
    let send = AssertUnwindSafe(shared.notifier.send(notice)).catch_unwind();
    let result = match send.await {
        Ok(result) => result,
        Err(_panic) => Err(NotifyError::permanent(
            "internal error (the channel panicked)",
        )),
    };
    match &result {
        Err(e) if e.retryable => permit.failure(&e.message),
        _ => permit.success(),
    }
    result
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
        alert_id: notice.alert.id.0,
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
