//! The start-up load: open alerts, silences and maintenance windows, read from the store when
//! the manager starts (and again after a restart of the actor), merged with what was raised in
//! the meantime.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::silences::{Silence, Window};
use super::AlertManager;
use crate::domain::agent::AgentState;
use crate::domain::alert::{types, Alert, AlertId, AlertState, ChannelKind, NotifyAction};
use crate::store::{AlertRow, MaintenanceRow, Read, Record, SilenceRow};
use crate::supervision as sv;

/// First retry of the start-up load while Postgres is unreachable; it doubles up to
/// [`LOAD_RETRY_MAX`].
const LOAD_RETRY: Duration = Duration::from_secs(1);
const LOAD_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long notifications wait for the start-up load (so a restart neither re-pages an alert
/// already open nor ignores a silence). Past this, an unreachable Postgres must not keep
/// alerts about it from being sent. (With the default Monitor interval and pending ticks, no
/// rule can fire sooner than this anyway.)
pub(super) const LOAD_GRACE: Duration = Duration::from_secs(10);

type Loaded = (
    Read<Vec<AlertRow>>,
    Read<Vec<SilenceRow>>,
    Read<Vec<MaintenanceRow>>,
    HashMap<uuid::Uuid, Vec<String>>,
);

impl AlertManager {
    /// Whether notifications may go out: the start-up load is done, or has taken too long.
    pub(super) fn ready(&self) -> bool {
        self.loaded || self.started.elapsed() >= LOAD_GRACE
    }

    /// Read open alerts, silences and windows; again later while Postgres cannot be read.
    pub(super) fn load(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let wait = Duration::from_millis(self.settings.database.timeout_ms.saturating_mul(2));
        let read = async move {
            // Records journaled by the last process (an outage, then a crash), and those this
            // manager queued before it restarted, are written first, so the load does not
            // reopen what they resolved.
            store.flush(wait).await;
            let alerts = store.open_alerts().await;
            let silences = store.silences(None).await;
            let windows = store.maintenance_windows().await;
            // Triggers queued when the last process stopped may never have been attempted: per
            // firing alert, the channels whose trigger or repeat ended (sent, or failed for
            // good). The others are told again.
            let mut finished = HashMap::new();
            if !alerts.partial {
                for a in alerts
                    .data
                    .iter()
                    .filter(|a| a.state == "firing" && a.last_notified_at.is_some())
                {
                    let attempts = store.notifications(a.id).await;
                    if attempts.partial {
                        continue;
                    }
                    let done: Vec<String> = attempts
                        .data
                        .iter()
                        .filter(|n| matches!(n.status.as_str(), "sent" | "failed"))
                        .filter(|n| matches!(n.action.as_str(), "trigger" | "repeat"))
                        .map(|n| n.channel.clone())
                        .collect();
                    finished.insert(a.id, done);
                }
            }
            (alerts, silences, windows, finished)
        };
        sv::guard_fut(self, ctx, read, |act, ctx, loaded: Loaded| {
            let (alerts, silences, windows, finished) = loaded;
            if alerts.partial || silences.partial || windows.partial {
                let retry = LOAD_RETRY
                    .saturating_mul(1 << act.load_failures.min(5))
                    .min(LOAD_RETRY_MAX);
                act.load_failures += 1;
                let text = format!(
                    "alerts: the database cannot be read; open alerts, silences and maintenance \
                     windows are loaded once it answers (next try in {} s)",
                    retry.as_secs()
                );
                // Said once; the tries that follow are quiet.
                if act.load_failures == 1 {
                    log::warn!("{text}");
                } else {
                    log::debug!("{text}");
                }
                ctx.run_later(retry, |act, ctx| {
                    sv::guard(act, ctx, |a, c| a.load(c));
                });
                return;
            }
            let alerts = alerts
                .data
                .into_iter()
                .filter_map(|row| match Alert::try_from(row) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        log::warn!("alerts: a stored alert is skipped: {e}");
                        None
                    }
                })
                .collect();
            act.merge_loaded(alerts, silences.data, windows.data, &finished);
        });
    }

    /// Whether the actor an `AGENT_FAILED` or `AGENT_STALLED` alert is about is still in that
    /// state (a reloaded one is resolved otherwise: the actor was started afresh since).
    fn still_broken(&self, a: &Alert) -> bool {
        let Some(name) = a.labels.get("agent") else {
            return false;
        };
        let want = if a.alert_type == types::AGENT_FAILED {
            AgentState::Failed
        } else {
            AgentState::Stalled
        };
        self.actors
            .find(name)
            .is_some_and(|e| e.status.state() == want)
    }

    fn merge_loaded(
        &mut self,
        alerts: Vec<Alert>,
        silences: Vec<SilenceRow>,
        windows: Vec<MaintenanceRow>,
        finished: &HashMap<uuid::Uuid, Vec<String>>,
    ) {
        let now = Utc::now();
        let mut restored = 0;
        let resolved = |mut a: Alert, why: String| {
            a.resolve("selfheal", Some(why), true, now);
            a
        };
        for mut a in alerts {
            // Already held, or resolved here while its stored row still said open.
            if self.ids.contains_key(&a.id) || self.recent.iter().any(|r| r.id == a.id) {
                continue;
            }
            // A live alert of the same condition (raised since this start) owns the
            // fingerprint, and PagerDuty's incident: no resolve may be sent for the stored row.
            let live = self.open.contains_key(&a.fingerprint);
            let supervision =
                a.alert_type == types::AGENT_FAILED || a.alert_type == types::AGENT_STALLED;
            if supervision && !live && !self.still_broken(&a) {
                let why = format!(
                    "{} was started afresh since",
                    a.labels.get("agent").map_or("the actor", String::as_str)
                );
                let row = resolved(a, why);
                self.follow_up(&row, NotifyAction::Resolve);
                self.persist(&row, Some("resolved"));
                continue;
            }
            if !supervision && !self.monitored(&a) && !live && a.metadata.get("scope").is_some() {
                log::info!(
                    "alert {} {} on {}: its rule is no longer evaluated; resolved",
                    a.id,
                    a.alert_type,
                    a.component
                );
                let row = resolved(a, "its rule is no longer evaluated".into());
                self.follow_up(&row, NotifyAction::Resolve);
                self.persist(&row, Some("resolved"));
                continue;
            }
            if let Some(newer) = self.open.remove(&a.fingerprint) {
                // Raised again before the load finished. Not notified yet: fold it into the
                // stored alert (which keeps its id, and its PagerDuty incident). Notified (the
                // load took longer than the grace): the stored one is superseded.
                if newer.last_notified_at.is_none() {
                    self.ids.remove(&newer.id);
                    a.occurrences = a.occurrences.saturating_add(newer.occurrences);
                    a.last_seen = newer.last_seen;
                    a.value = newer.value;
                    a.message = newer.message.clone();
                    if newer.severity < a.severity {
                        a.severity = newer.severity;
                    }
                    if newer.state == AlertState::Acknowledged && a.state == AlertState::Firing {
                        a.state = AlertState::Acknowledged;
                        a.acknowledged_by = newer.acknowledged_by.clone();
                        a.acknowledged_at = newer.acknowledged_at;
                        a.ack_comment = newer.ack_comment.clone();
                    }
                    a.updated_at = now;
                    let merged = format!("merged into alert {}", a.id);
                    self.persist(&resolved(newer, merged), Some("resolved"));
                    if a.state == AlertState::Acknowledged {
                        // Acknowledged while it was the pre-load alert: tell the stored one's
                        // channels (PagerDuty stops escalating).
                        self.follow_up(&a, NotifyAction::Acknowledge);
                        self.persist(&a, Some("acknowledged"));
                    } else {
                        self.persist(&a, None);
                    }
                } else {
                    let superseded = format!("superseded by alert {}", newer.id);
                    self.open.insert(newer.fingerprint.clone(), newer);
                    self.store
                        .write(Record::Alert(AlertRow::from(&resolved(a, superseded))));
                    continue;
                }
            }
            if let Some(done) = finished.get(&a.id.0) {
                let (kept, lost): (Vec<ChannelKind>, Vec<ChannelKind>) = a
                    .notified_channels
                    .iter()
                    .partition(|c| done.iter().any(|d| d == c.as_str()));
                if !lost.is_empty() {
                    log::warn!(
                        "alert {} {}: its notification to {lost:?} was never attempted (the \
                         last process stopped first); sending it again",
                        a.id,
                        a.alert_type
                    );
                    if kept.is_empty() {
                        a.last_notified_at = None;
                    }
                    a.notified_channels = kept;
                }
            }
            if let Some(scope) = a.metadata.get("scope").and_then(serde_json::Value::as_str) {
                self.tracker.seed_firing(&a.fingerprint, scope);
            }
            self.ids.insert(a.id, a.fingerprint.clone());
            self.open.insert(a.fingerprint.clone(), a);
            restored += 1;
        }
        for s in silences {
            if !self.silences.iter().any(|x| x.row.id == s.id) {
                self.silences.push(Silence::new(s));
            }
        }
        for w in windows {
            if !self.windows.iter().any(|x| x.row.id == w.id) {
                self.windows.push(Window::new(w));
            }
        }
        self.loaded = true;
        self.load_failures = 0;
        log::info!(
            "alerts: {restored} open alert(s), {} silence(s), {} maintenance window(s) loaded",
            self.silences.len(),
            self.windows.len()
        );
    }

    /// Why `id` cannot be acknowledged or resolved here.
    pub(super) fn not_held(&self, id: AlertId, resolved: &str) -> super::AlertError {
        if self.recent.iter().any(|a| a.id == id) {
            super::AlertError::Conflict(format!("alert {id} {resolved}"))
        } else if !self.loaded {
            not_ready()
        } else {
            super::AlertError::NotFound(format!("no open alert {id}"))
        }
    }
}

pub(super) fn not_ready() -> super::AlertError {
    super::AlertError::NotReady(
        "open alerts are still being loaded from the database; try again shortly".into(),
    )
}
