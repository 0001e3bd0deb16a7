//! An alert's life: dedup (a new alert, or a repeat or escalation of the open one), the
//! silence stage, raise (the whole pipeline for one signal), acknowledge and resolve; and the
//! alerts supervision reports raise.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::silences::{suppression, Silence, Suppression, Window};
use super::{AlertError, AlertManager, RECENT_RESOLVED, REPEAT_PERSIST_EVERY};
use crate::domain::agent::ActorKind;
use crate::domain::alert::{
    fingerprint, types, Alert, AlertId, AlertSignal, AlertState, NotifyAction, Severity,
};
use crate::supervision::{ActorReport, Recovery};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Arrival {
    New,
    Repeat,
    Escalated,
}

impl AlertManager {
    /// Dedup: the open alert of this fingerprint, updated; or a new one.
    fn dedup(&mut self, signal: AlertSignal, now: DateTime<Utc>) -> (String, Arrival) {
        let fp = signal.fingerprint();
        if let Some(a) = self.open.get_mut(&fp) {
            a.occurrences = a.occurrences.saturating_add(1);
            a.last_seen = now;
            a.updated_at = now;
            a.value = signal.value;
            a.threshold = signal.threshold.or(a.threshold);
            a.message = signal.message;
            a.metadata = signal.metadata;
            self.counters.repeats += 1;
            if signal.severity < a.severity {
                a.severity = signal.severity;
                return (fp, Arrival::Escalated);
            }
            return (fp, Arrival::Repeat);
        }
        let a = Alert::firing(signal, now);
        log::warn!(
            "alert {} {} [{}] on {}: {}",
            a.id,
            a.alert_type,
            a.severity,
            a.component,
            a.message
        );
        self.counters.raised += 1;
        self.ids.insert(a.id, fp.clone());
        self.open.insert(fp.clone(), a);
        (fp, Arrival::New)
    }

    /// The whole pipeline for one raised signal.
    pub(super) fn raise(&mut self, signal: AlertSignal) -> Option<Alert> {
        let now = Utc::now();
        let (fp, arrival) = self.dedup(signal, now);
        let was_silenced = self.open.get(&fp).map(|a| a.silenced);
        let suppressed = silence(&mut self.open, &fp, &self.silences, &self.windows, now);
        match (arrival, &suppressed) {
            (Arrival::New, Some(s)) if self.ready() => self.record_suppressed(&fp, s, now),
            (Arrival::New, Some(_)) => {
                // Recorded by housekeeping once the load confirms the suppression.
                self.unrecorded.insert(fp.clone());
            }
            (Arrival::New, None) => {
                self.catch_up(&fp, now);
            }
            // A worse severity: tell the channels told so far again, and any it now routes to.
            (Arrival::Escalated, None) => {
                if let Some(a) = self.open.get(&fp) {
                    let told = self.told(a);
                    self.repeat_owed.insert(fp.clone(), told);
                }
                self.catch_up(&fp, now);
            }
            _ => {}
        }
        let a = self.open.get(&fp)?.clone();
        let change = match arrival {
            Arrival::New => Some("raised"),
            Arrival::Escalated => Some("escalated"),
            Arrival::Repeat => None,
        };
        let repeat_due = self.repeat_persisted.get(&fp).is_none_or(|at| {
            now.signed_duration_since(*at).num_milliseconds()
                >= REPEAT_PERSIST_EVERY.as_millis() as i64
        });
        if change.is_some() || was_silenced != Some(a.silenced) || repeat_due {
            self.persist(&a, change);
            self.repeat_persisted.insert(fp, now);
        }
        Some(a)
    }

    /// Resolve the open alert `fp` (auto: the condition cleared).
    pub(super) fn resolve(
        &mut self,
        fp: &str,
        by: &str,
        comment: Option<String>,
        auto: bool,
    ) -> Option<Alert> {
        let now = Utc::now();
        let mut a = self.open.remove(fp)?;
        self.ids.remove(&a.id);
        self.repeat_persisted.remove(fp);
        self.trigger_retry.remove(fp);
        self.repeat_owed.remove(fp);
        self.unrecorded.remove(fp);
        self.tracker.forget(fp);
        let why = comment.or_else(|| auto.then(|| "condition cleared".to_owned()));
        a.resolve(by, why, auto, now);
        self.counters.resolved += 1;
        if auto {
            self.counters.auto_resolved += 1;
        }
        log::info!(
            "alert {} {} on {} resolved by {by}{}",
            a.id,
            a.alert_type,
            a.component,
            if auto { " (condition cleared)" } else { "" }
        );
        self.follow_up(&a, NotifyAction::Resolve);
        self.persist(&a, Some("resolved"));
        self.recent.push_back(a.clone());
        while self.recent.len() > RECENT_RESOLVED {
            self.recent.pop_front();
        }
        Some(a)
    }

    /// The fingerprint of the open alert `id`, once the start-up load allows an answer (the
    /// alert may be a stored one not loaded yet, or its twin raised since the start);
    /// `resolved` says what a recently resolved one is.
    fn held(&self, id: AlertId, resolved: &str) -> Result<String, AlertError> {
        if !self.ready() {
            return Err(super::load::not_ready());
        }
        self.ids
            .get(&id)
            .cloned()
            .ok_or_else(|| self.not_held(id, resolved))
    }

    /// Acknowledge the open alert `id` (it must be firing).
    pub(super) fn acknowledge(
        &mut self,
        id: AlertId,
        by: String,
        comment: Option<String>,
    ) -> Result<Alert, AlertError> {
        let fp = self.held(id, "is resolved")?;
        let Some(a) = self.open.get_mut(&fp) else {
            return Err(AlertError::NotFound(format!("no open alert {id}")));
        };
        if a.state == AlertState::Acknowledged {
            return Err(AlertError::Conflict(format!(
                "alert {id} was already acknowledged by {}",
                a.acknowledged_by.as_deref().unwrap_or("someone")
            )));
        }
        a.acknowledge(&by, comment, Utc::now());
        let a = a.clone();
        log::info!("alert {} {} acknowledged by {by}", a.id, a.alert_type);
        self.follow_up(&a, NotifyAction::Acknowledge);
        self.persist(&a, Some("acknowledged"));
        Ok(a)
    }

    /// Resolve the open alert `id` by hand.
    pub(super) fn resolve_by_hand(
        &mut self,
        id: AlertId,
        by: String,
        comment: Option<String>,
    ) -> Result<Alert, AlertError> {
        let fp = self.held(id, "is already resolved")?;
        self.resolve(&fp, &by, comment, false)
            .ok_or_else(|| AlertError::NotFound(format!("no open alert {id}")))
    }

    /// What supervision reports: `AGENT_FAILED` (critical) until an admin restart,
    /// `AGENT_STALLED` until the agent finishes a job in time, `EVENTS_LOST`.
    pub(super) fn on_report(&mut self, report: ActorReport) {
        match report {
            ActorReport::Failed {
                name,
                kind,
                error,
                restarts,
                window_ms,
            } => {
                let what = match kind {
                    ActorKind::Agent => "agent",
                    ActorKind::Core => "core actor",
                };
                let signal = AlertSignal::new(
                    types::AGENT_FAILED,
                    "agent",
                    Severity::Critical,
                    format!(
                        "{what} {name} failed: it crashed more than the restart limit allows \
                         within {window_ms} ms (last error: {error}); restart it with \
                         POST /api/v1/system/agents/{name}/restart"
                    ),
                )
                .label("agent", name)
                .with_metadata(json!({ "error": error, "restarts": restarts, "kind": kind }));
                self.raise(signal);
            }
            ActorReport::Stalled {
                name,
                job,
                deadline_ms,
                restarts,
            } => {
                let signal = AlertSignal::new(
                    types::AGENT_STALLED,
                    "agent",
                    Severity::High,
                    format!(
                        "agent {name}: a {job} job ran past its {deadline_ms} ms deadline; the \
                         agent was restarted"
                    ),
                )
                .label("agent", name)
                .with_metadata(
                    json!({ "job": job, "deadline_ms": deadline_ms, "restarts": restarts }),
                );
                self.raise(signal);
            }
            ActorReport::Recovered { name, from } => {
                let (alert_type, why) = match from {
                    Recovery::Failed => (types::AGENT_FAILED, format!("{name} started again")),
                    Recovery::Stalled => (
                        types::AGENT_STALLED,
                        format!("{name} finished a job within its deadline again"),
                    ),
                };
                let labels = [("agent".to_owned(), name)].into();
                let fp = fingerprint(alert_type, "agent", &labels);
                self.resolve(&fp, "selfheal", Some(why), true);
            }
            ActorReport::EventsLost {
                subscriber,
                channel,
                count,
                why,
            } => {
                let signal = AlertSignal::new(
                    types::EVENTS_LOST,
                    "events",
                    Severity::High,
                    format!(
                        "{count} decision event(s) could not be delivered to {subscriber} (last: \
                         a {} event; {why}); what they would have triggered did not happen",
                        channel.as_str()
                    ),
                )
                .label("subscriber", subscriber)
                .with_metadata(json!({ "lost": count, "channel": channel.as_str() }));
                self.raise(signal);
            }
        }
    }
}

/// Silence stage: set the open alert's `silenced` flag; the suppression when there is one.
pub(super) fn silence(
    open: &mut HashMap<String, Alert>,
    fp: &str,
    silences: &[Silence],
    windows: &[Window],
    now: DateTime<Utc>,
) -> Option<Suppression> {
    let a = open.get_mut(fp)?;
    let s = suppression(a, silences, windows, now);
    a.silenced = s.is_some();
    s
}
