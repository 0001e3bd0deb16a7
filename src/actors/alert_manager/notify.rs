//! Which channels hear what: triggers, repeats, escalations, acknowledge and resolve
//! follow-ups, the retry of refused notices, and the housekeeping round that applies silences
//! and windows as they start and end. Also the fallback that tells the channels when the
//! manager itself has failed.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::lifecycle::silence;
use super::silences::{Silence, Suppression, Window};
use super::AlertManager;
use crate::config::Settings;
use crate::domain::alert::{
    types, Alert, AlertSignal, AlertState, ChannelKind, NotifyAction, Severity,
};
use crate::notify::{Notice, Notifiers};
use crate::store::{AlertRow, NotificationRow, Record, Store};
use crate::supervision::ActorReport;

/// Least time between two attempts to send the trigger of an alert no channel accepted.
const TRIGGER_RETRY_SECS: i64 = 30;

impl AlertManager {
    /// Send a follow-up (acknowledge, resolve) to the channels told of the alert.
    pub(super) fn follow_up(&mut self, a: &Alert, action: NotifyAction) {
        let notice = Notice {
            alert: a.clone(),
            action,
            link: self.link(a.id),
        };
        for c in self.told(a) {
            if self.notifiers.dispatch(c, notice.clone()) {
                self.counters.dispatched += 1;
            } else {
                self.counters.refused += 1;
            }
        }
    }

    /// Record a trigger suppressed by a silence or window: a `silenced` row per channel.
    pub(super) fn record_suppressed(&mut self, fp: &str, s: &Suppression, now: DateTime<Utc>) {
        let Some(a) = self.open.get(fp) else { return };
        for c in self.channels(a.severity) {
            self.store.write(Record::Notification(NotificationRow {
                id: Uuid::new_v4(),
                alert_id: a.id.0,
                channel: c.as_str().to_owned(),
                action: NotifyAction::Trigger.as_str().to_owned(),
                status: "silenced".into(),
                attempt: 0,
                http_status: None,
                error: None,
                detail: json!({ "suppressed_by": s }),
                created_at: now,
            }));
        }
        self.counters.suppressed += 1;
        log::info!("alert {} {} silenced: {s:?}", a.id, a.alert_type);
    }

    /// Notify: queue `action` on `channels`. Those that accept a trigger or repeat are recorded
    /// as told. Answers the channels that refused.
    fn notify(
        &mut self,
        fp: &str,
        action: NotifyAction,
        channels: Vec<ChannelKind>,
        now: DateTime<Utc>,
    ) -> Vec<ChannelKind> {
        let Some(a) = self.open.get(fp) else {
            return channels;
        };
        let notice = Notice {
            alert: a.clone(),
            action,
            link: self.link(a.id),
        };
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for c in channels {
            if self.notifiers.dispatch(c, notice.clone()) {
                accepted.push(c);
                self.counters.dispatched += 1;
            } else {
                refused.push(c);
                self.counters.refused += 1;
            }
        }
        if accepted.is_empty() {
            return refused;
        }
        if let Some(a) = self.open.get_mut(fp) {
            a.last_notified_at = Some(now);
            for c in accepted {
                if !a.notified_channels.contains(&c) {
                    a.notified_channels.push(c);
                }
            }
        }
        refused
    }

    /// Tell what a firing, unsilenced alert is owed: the trigger to channels not told yet (it
    /// fired under a silence or before the start-up load, a channel refused it, or an
    /// escalation routes it further); the repeat to every channel told when
    /// `ALERT_REPEAT_INTERVAL_MS` has passed, or to the channels still owed one (an escalation,
    /// or a repeat a channel refused). A refusal is tried again after [`TRIGGER_RETRY_SECS`].
    /// Whether anything was sent.
    pub(super) fn catch_up(&mut self, fp: &str, now: DateTime<Utc>) -> bool {
        if !self.ready() || self.trigger_retry.get(fp).is_some_and(|at| now < *at) {
            return false;
        }
        let Some(a) = self.open.get(fp) else {
            return false;
        };
        if a.state != AlertState::Firing || a.silenced {
            return false;
        }
        let untold = self.untold(a);
        let told = self.told(a);
        let repeat = self.settings.alerting.repeat_interval_ms;
        let repeat_due = repeat > 0
            && a.last_notified_at.is_some_and(|at| {
                now.signed_duration_since(at).num_milliseconds() >= repeat as i64
            });
        let repeat_to: Vec<ChannelKind> = if repeat_due {
            told
        } else {
            let owed = self.repeat_owed.get(fp);
            told.into_iter()
                .filter(|c| owed.is_some_and(|o| o.contains(c)))
                .collect()
        };
        let mut sent = false;
        let mut refused_repeat = Vec::new();
        let mut refused_any = false;
        if !repeat_to.is_empty() {
            let n = repeat_to.len();
            refused_repeat = self.notify(fp, NotifyAction::Repeat, repeat_to, now);
            sent |= refused_repeat.len() < n;
            refused_any |= !refused_repeat.is_empty();
        }
        if !untold.is_empty() {
            let n = untold.len();
            let refused = self.notify(fp, NotifyAction::Trigger, untold, now);
            sent |= refused.len() < n;
            refused_any |= !refused.is_empty();
        }
        if refused_repeat.is_empty() {
            self.repeat_owed.remove(fp);
        } else {
            self.repeat_owed.insert(fp.to_owned(), refused_repeat);
        }
        if refused_any {
            self.trigger_retry.insert(
                fp.to_owned(),
                now + chrono::Duration::seconds(TRIGGER_RETRY_SECS),
            );
        } else {
            self.trigger_retry.remove(fp);
        }
        sent
    }

    /// Silences that ended, windows' opening and closing, triggers owed, repeats.
    pub(super) fn housekeeping(&mut self) {
        let now = Utc::now();
        self.silences
            .retain(|s| s.row.deleted_at.is_none() && s.row.ends_at > now);
        // Only what is in force now is matched against the open alerts (usually nothing).
        let silences: Vec<Silence> = self
            .silences
            .iter()
            .filter(|s| s.active(now))
            .cloned()
            .collect();
        let windows: Vec<Window> = self
            .windows
            .iter()
            .filter(|w| w.active(now))
            .cloned()
            .collect();
        let fps: Vec<String> = self
            .open
            .iter()
            .filter(|(_, a)| a.state == AlertState::Firing)
            .map(|(fp, _)| fp.clone())
            .collect();
        for fp in fps {
            let was_silenced = self.open.get(&fp).is_some_and(|a| a.silenced);
            let suppressed = silence(&mut self.open, &fp, &silences, &windows, now);
            let silenced = suppressed.is_some();
            if self.ready() && self.unrecorded.remove(&fp) {
                if let Some(s) = &suppressed {
                    self.record_suppressed(&fp, s, now);
                }
            }
            let sent = self.catch_up(&fp, now);
            if sent || was_silenced != silenced {
                if let Some(a) = self.open.get_mut(&fp) {
                    a.updated_at = now;
                }
                if let Some(a) = self.open.get(&fp) {
                    self.persist(a, None);
                }
            }
        }
    }
}

/// When the AlertManager itself has failed, nobody can raise its `AGENT_FAILED`: this sends
/// it straight to the channels critical alerts go to, and stores it, so that the manager
/// reloads it (and resolves it, telling the same channels) once an admin restarts it.
pub fn fallback(settings: &Settings, notifiers: &Notifiers, store: &Store, report: &ActorReport) {
    let ActorReport::Failed {
        name,
        error,
        restarts,
        window_ms,
        ..
    } = report
    else {
        return;
    };
    log::error!(
        "the alert manager failed: alerts are not raised until an admin restart; telling the \
         critical channels directly"
    );
    let signal = AlertSignal::new(
        types::AGENT_FAILED,
        "agent",
        Severity::Critical,
        format!(
            "core actor {name} failed: it crashed more than the restart limit allows within \
             {window_ms} ms (last error: {error}); no alert is raised until it is restarted with \
             POST /api/v1/system/agents/{name}/restart"
        ),
    )
    .label("agent", name.clone())
    .with_metadata(json!({ "error": error, "restarts": restarts, "kind": "core" }));
    let now = Utc::now();
    let mut alert = Alert::firing(signal, now);
    let enabled = notifiers.enabled();
    let link = format!(
        "{}/api/v1/system/alerts/{}",
        settings.notify.link_base_url.trim_end_matches('/'),
        alert.id
    );
    for c in settings.notify.routes.channels(Severity::Critical) {
        if enabled.contains(c)
            && notifiers.dispatch(
                *c,
                Notice {
                    alert: alert.clone(),
                    action: NotifyAction::Trigger,
                    link: link.clone(),
                },
            )
        {
            alert.notified_channels.push(*c);
            alert.last_notified_at = Some(now);
        }
    }
    store.write(Record::Alert(AlertRow::from(&alert)));
}
