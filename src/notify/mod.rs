//! Notification channels: Slack (incoming webhook, Block Kit), PagerDuty (Events API v2) and
//! email (SMTP via lettre), each behind the [`Notifier`] contract, each served by a
//! `Worker` actor of its own (`worker.rs`).
//!
//! The pipeline, after prometheus/alertmanager's `notify` package:
//! - the AlertManager decides *which* channels an alert goes to and calls
//!   [`Notifiers::dispatch`] once per channel;
//! - each configured channel has one worker with a bounded FIFO queue (`NOTIFY_QUEUE_MAX`); it
//!   delivers one notice at a time, retrying what [`NotifyError::retryable`] says is worth
//!   retrying with jittered exponential backoff (and a 429's `Retry-After`), up to
//!   `NOTIFY_MAX_ATTEMPTS` attempts, through the channel's circuit breaker (an open breaker
//!   refuses at once and the notice waits for the probe);
//! - every attempt is written to `notification_log`
//!   ([`NotificationRow`](crate::store::NotificationRow)) through the store.
//!
//! A slow or failing channel only delays its own queue: the workers run concurrently on one
//! arbiter of their own. Within a channel order is kept (a resolve never overtakes its
//! trigger), so a notice waiting for its retry holds back the notices behind it.
//!
//! Acknowledgements go to PagerDuty only (Slack and email skip them, see [`sends`]); notices
//! still queued when the system stops are lost.

mod email;
mod format;
mod pagerduty;
mod slack;
mod worker;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::NotifySettings;
use crate::domain::alert::Alert;
use crate::domain::alert::{ChannelKind, NotifyAction};
use crate::store::Store;

#[cfg(test)]
pub(crate) use format::test_support;
pub(crate) use format::{clip_chars, facts, is_web_link, redact, resolution_text, severity_label};

use crate::outbound::{Breakers, RetryPolicy};
use email::EmailNotifier;
use pagerduty::PagerDutyNotifier;
use slack::SlackNotifier;
use worker::{Enqueue, Worker};

/// What a channel is asked to deliver: the alert as it is now, why, and where to see it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub alert: Alert,
    pub action: NotifyAction,
    /// The alert's page (computed by the caller from `ALERT_LINK_BASE_URL`); shown as is, and
    /// made a link when it is an absolute http(s) URL.
    pub link: String,
}

/// A successful delivery.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// The HTTP status of the answer (`None` for email).
    pub http_status: Option<u16>,
    /// Kept in the row's `detail` (e.g. PagerDuty's `dedup_key`, the SMTP reply code).
    pub detail: serde_json::Map<String, Value>,
}

/// A failed attempt, and whether another attempt could succeed (the outbound calls' error).
pub use crate::outbound::OutboundError as NotifyError;

/// One channel's delivery contract.
///
/// Implementations hold their client (`awc::Client`, an SMTP transport), built once per worker
/// on the notifier arbiter; their futures need not be `Send`.
#[allow(async_fn_in_trait)] // the futures are !Send by design (awc), and run on one arbiter
pub trait Notifier: 'static {
    /// Which channel this is.
    fn kind(&self) -> ChannelKind;

    /// Least time between the end of one request and the start of the next (Slack: 1 s).
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }

    /// What every row of this notice carries in `detail` (e.g. PagerDuty's `dedup_key`).
    fn row_detail(&self, _notice: &Notice) -> serde_json::Map<String, Value> {
        serde_json::Map::new()
    }

    /// One attempt.
    async fn send(&self, notice: &Notice) -> Result<Delivered, NotifyError>;
}

/// The notifiers' retry policy (`NOTIFY_*`).
pub fn retry_policy(s: &NotifySettings) -> RetryPolicy {
    RetryPolicy {
        max_attempts: s.max_attempts.max(1),
        backoff_initial: Duration::from_millis(s.backoff_initial_ms.max(1)),
        backoff_max: Duration::from_millis(s.backoff_max_ms.max(s.backoff_initial_ms).max(1)),
        timeout: Duration::from_millis(s.timeout_ms.max(1)),
    }
}

/// Whether `channel` sends anything for `action`: acknowledgements only go to PagerDuty (a chat
/// message or a mail per ack is noise; PagerDuty needs it to stop paging).
pub fn sends(channel: ChannelKind, action: NotifyAction) -> bool {
    action != NotifyAction::Acknowledge || channel == ChannelKind::PagerDuty
}

/// Per-channel counters, shared by [`Notifiers`] (any thread) and the channel's worker.
#[derive(Debug, Default)]
pub(crate) struct ChannelStats {
    /// Accepted and not yet finished (waiting, or being delivered).
    queued: AtomicUsize,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    refused: AtomicU64,
    last_error: Mutex<Option<(DateTime<Utc>, String)>>,
}

impl ChannelStats {
    fn set_last_error(&self, message: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Utc::now(), message.to_owned()));
    }

    fn to_json(&self, enabled: bool) -> Value {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        json!({
            "enabled": enabled,
            "queued": self.queued.load(Ordering::Relaxed),
            "sent": self.sent.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
            "retries": self.retries.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "last_error": last.as_ref().map(|(_, m)| m),
            "last_error_at": last.map(|(at, _)| at),
        })
    }
}

/// The running channels. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Notifiers {
    inner: Arc<Inner>,
}

struct Inner {
    /// Indexed like [`ChannelKind::ALL`]; `None` when the channel is not configured.
    workers: [Option<Recipient<Enqueue>>; 3],
    stats: [Arc<ChannelStats>; 3],
    queue_max: usize,
}

fn slot(channel: ChannelKind) -> usize {
    channel as usize
}

impl Notifiers {
    /// Start one worker per configured channel (Slack when `slack_webhook_url` is set,
    /// PagerDuty when `pagerduty_api_key` is set, email when `smtp_url` and `alert_email_to`
    /// are), on an arbiter of their own. Must be called inside a running actix `System`.
    pub fn start(settings: &NotifySettings, store: Store, breakers: &Breakers) -> Notifiers {
        let stats: [Arc<ChannelStats>; 3] = Default::default();
        let mut workers: [Option<Recipient<Enqueue>>; 3] = Default::default();
        let slack = settings.slack_webhook_url.is_some();
        let pagerduty = settings.pagerduty_api_key.is_some();
        let email = settings.smtp_url.is_some() && settings.alert_email_to.is_some();
        if slack || pagerduty || email {
            // awc's rustls connector needs a process-wide crypto provider (it panics without
            // one); an `Err` means one is installed already.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let arbiter = Arbiter::new().handle();
            let policy = retry_policy(settings);
            if slack {
                let s = settings.clone();
                workers[slot(ChannelKind::Slack)] = Some(Worker::start(
                    &arbiter,
                    move || SlackNotifier::new(&s),
                    policy,
                    store.clone(),
                    stats[slot(ChannelKind::Slack)].clone(),
                    breakers.get("slack"),
                ));
            }
            if pagerduty {
                let s = settings.clone();
                workers[slot(ChannelKind::PagerDuty)] = Some(Worker::start(
                    &arbiter,
                    move || PagerDutyNotifier::new(&s),
                    policy,
                    store.clone(),
                    stats[slot(ChannelKind::PagerDuty)].clone(),
                    breakers.get("pagerduty"),
                ));
            }
            if email {
                let s = settings.clone();
                workers[slot(ChannelKind::Email)] = Some(Worker::start(
                    &arbiter,
                    move || EmailNotifier::new(&s),
                    policy,
                    store.clone(),
                    stats[slot(ChannelKind::Email)].clone(),
                    breakers.get("email"),
                ));
            }
        }
        let n = Notifiers {
            inner: Arc::new(Inner {
                workers,
                stats,
                queue_max: settings.queue_max.max(1),
            }),
        };
        log::info!(
            "notification channels: {}",
            match n.enabled().as_slice() {
                [] => "none".to_owned(),
                list => list
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        );
        n
    }

    /// Notices accepted and not yet finished, over every channel.
    pub fn queued(&self) -> usize {
        self.inner
            .stats
            .iter()
            .map(|s| s.queued.load(Ordering::Relaxed))
            .sum()
    }

    /// Channels that are configured.
    pub fn enabled(&self) -> Vec<ChannelKind> {
        ChannelKind::ALL
            .into_iter()
            .filter(|c| self.inner.workers[slot(*c)].is_some())
            .collect()
    }

    /// Queue `notice` on `channel`'s worker. `false` (with a warning and a counted refusal) when
    /// the channel is not configured, its worker is gone, or its queue is full. An action the
    /// channel does not send (see [`sends`]) is accepted and dropped.
    pub fn dispatch(&self, channel: ChannelKind, notice: Notice) -> bool {
        let stats = &self.inner.stats[slot(channel)];
        let what = || {
            format!(
                "{} {} of alert {}",
                notice.alert.alert_type,
                notice.action.as_str(),
                notice.alert.id
            )
        };
        let Some(worker) = self.inner.workers[slot(channel)]
            .as_ref()
            .filter(|w| w.connected())
        else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "{}: not configured (or stopped), {} dropped",
                channel.as_str(),
                what()
            );
            return false;
        };
        if !sends(channel, notice.action) {
            log::debug!("{}: does not send {}, skipped", channel.as_str(), what());
            return true;
        }
        // Reserve a place first: the worker (another thread) gives it back when it is done.
        let max = self.inner.queue_max;
        let reserved = stats
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < max).then_some(q + 1)
            });
        if reserved.is_err() {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "{}: queue full ({max} waiting), {} dropped",
                channel.as_str(),
                what()
            );
            return false;
        }
        // `do_send` ignores the mailbox capacity: the bound is the reservation above.
        worker.do_send(Enqueue(notice));
        true
    }

    /// Per channel: `enabled`, `queued`, `sent`, `failed`, `retries`, `refused`, `last_error`,
    /// `last_error_at` — for `/health/detailed`.
    pub fn status(&self) -> Value {
        let mut out = serde_json::Map::new();
        for c in ChannelKind::ALL {
            let enabled = self.inner.workers[slot(c)].is_some();
            out.insert(
                c.as_str().to_owned(),
                self.inner.stats[slot(c)].to_json(enabled),
            );
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pagerduty_sends_acknowledgements() {
        assert!(sends(ChannelKind::PagerDuty, NotifyAction::Acknowledge));
        assert!(!sends(ChannelKind::Slack, NotifyAction::Acknowledge));
        assert!(!sends(ChannelKind::Email, NotifyAction::Acknowledge));
        assert!(sends(ChannelKind::Email, NotifyAction::Resolve));
    }
}
