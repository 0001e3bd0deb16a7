//! `AlertManager`: turns rule readings and raised signals into alerts, as a pipeline of small
//! stages (after Prometheus's Alertmanager):
//!
//! 1. **rules** ([`rules::Tracker`]): the Monitor's readings fire after `ALERT_PENDING_TICKS`
//!    breaching ticks and resolve after `ALERT_RESOLVE_TICKS` clear ones;
//! 2. **dedup**: one open alert per fingerprint (type + component + identifying labels); a
//!    repeat raises its occurrence count and last-seen time;
//! 3. **silence** ([`silences`]): silences and maintenance windows suppress notifications,
//!    not the alert;
//! 4. **notify**: the severity's channels (`ALERT_ROUTES`) through [`Notifiers`]; a firing,
//!    unacknowledged, unsilenced alert is notified again every `ALERT_REPEAT_INTERVAL_MS`;
//!    acknowledge and resolve are sent to the channels that were told it fired;
//! 5. **persist**: every change of an alert, silence or window goes to the store (write-behind)
//!    and the change of state to the `alert` channel; a mere repeat (occurrences, last seen,
//!    value) at most every [`REPEAT_PERSIST_EVERY`], so a firing alert does not queue a write
//!    per Monitor tick (reads overlay the manager's fresher copy).
//!
//! States: `firing` → `acknowledged` → `resolved`. Open alerts, silences and windows are
//! loaded from the store at start (retried while Postgres is unreachable), so a restart keeps
//! them and finds the open alert of a condition that is still there.

pub mod rules;
pub mod silences;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::actors::event_bus::{Deliver, EventBus, Publish, Subscribe};
use crate::config::Settings;
use crate::domain::alert::{
    fingerprint, types, AlertSignal, ChannelKind, NotifyAction, Observation, Severity,
};
use crate::domain::event::{Channel, Event, Payload};
use crate::notify::{Notice, Notifiers};
use crate::store::{
    AlertRow, MaintenanceRow, NotificationRow, Record, SilenceRow, Store, MAINTENANCE_WINDOWS_MAX,
    SILENCES_MAX,
};
use rules::{Tracker, Transition};
use silences::{suppression, Silence, Suppression, Window};

/// Resolved alerts kept in memory for reads that must not lag the write-behind queue.
const RECENT_RESOLVED: usize = 200;
/// How often silences, maintenance windows and repeat intervals are re-checked.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// Retry of the start-up load while Postgres is unreachable.
const LOAD_RETRY: Duration = Duration::from_secs(1);
/// How long notifications wait for the start-up load (so a restart neither re-pages an alert
/// already open nor ignores a silence). Past this, an unreachable Postgres must not keep
/// alerts about it from being sent. (With the default Monitor interval and pending ticks, no
/// rule can fire sooner than this anyway.)
const LOAD_GRACE: Duration = Duration::from_secs(10);
/// Least time between two attempts to send the trigger of an alert no channel accepted.
const TRIGGER_RETRY_SECS: i64 = 30;
/// Metadata key of the channels an alert's trigger went to (acknowledge and resolve go there).
const NOTIFIED_CHANNELS: &str = "notified_channels";
/// How often a repeat of an open alert, and nothing else, is written to the store. A write per
/// Monitor tick would fill the write-behind queue (and its journal) during a Postgres outage,
/// while the outage's own alert repeats.
pub const REPEAT_PERSIST_EVERY: Duration = Duration::from_secs(60);

// ---- messages ------------------------------------------------------------------------------

/// One Monitor tick's rule readings (`scopes`: the probes that ran on this tick).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ObserveRules {
    pub scopes: Vec<&'static str>,
    pub observations: Vec<Observation>,
}

/// Why an acknowledge or resolve was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The open alerts are not loaded from the store yet.
    #[error("{0}")]
    NotReady(String),
}

/// Acknowledge a firing alert (`by`, with an optional comment).
#[derive(Message, Debug)]
#[rtype(result = "Result<AlertRow, AlertError>")]
pub struct AcknowledgeAlert {
    pub id: Uuid,
    pub by: String,
    pub comment: Option<String>,
}

/// Resolve a firing or acknowledged alert by hand.
#[derive(Message, Debug)]
#[rtype(result = "Result<AlertRow, AlertError>")]
pub struct ResolveAlert {
    pub id: Uuid,
    pub by: String,
    pub comment: Option<String>,
}

/// The freshest copy of an alert this process holds (open, or resolved recently); `None`
/// when only the store may know it.
#[derive(Message, Debug)]
#[rtype(result = "Option<AlertRow>")]
pub struct GetAlert(pub Uuid);

/// Open alerts and the recently resolved ones, fresher than the store.
#[derive(Message, Debug)]
#[rtype(result = "Vec<AlertRow>")]
pub struct GetRecentAlerts;

/// Counts for `/alerts` and `/health/detailed`.
#[derive(Message, Debug)]
#[rtype(result = "AlertStats")]
pub struct GetAlertStats;

/// Silences that are active or pending, newest first.
#[derive(Message, Debug)]
#[rtype(result = "Vec<SilenceView>")]
pub struct ListSilences;

/// Add a validated silence (refused beyond [`SILENCES_MAX`] in force or pending: no more are
/// loaded at start).
#[derive(Message, Debug)]
#[rtype(result = "Result<SilenceView, AlertError>")]
pub struct CreateSilence(pub SilenceRow);

/// Expire a silence now.
#[derive(Message, Debug)]
#[rtype(result = "Result<SilenceView, AlertError>")]
pub struct DeleteSilence {
    pub id: Uuid,
    pub by: String,
}

/// Every maintenance window, with whether it is open now.
#[derive(Message, Debug)]
#[rtype(result = "Vec<WindowView>")]
pub struct ListMaintenance;

/// Add a validated maintenance window (refused beyond [`MAINTENANCE_WINDOWS_MAX`]).
#[derive(Message, Debug)]
#[rtype(result = "Result<WindowView, AlertError>")]
pub struct CreateMaintenance(pub MaintenanceRow);

/// Remove a maintenance window.
#[derive(Message, Debug)]
#[rtype(result = "Result<WindowView, AlertError>")]
pub struct DeleteMaintenance {
    pub id: Uuid,
    pub by: String,
}

/// Whether an open maintenance window covers an alert of this type and component (and
/// labels): for agents that must not act during maintenance (repairs).
#[derive(Message, Debug)]
#[rtype(result = "Option<Suppression>")]
pub struct InMaintenance {
    pub alert_type: String,
    pub component: String,
    pub severity: Severity,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A silence and whether it is in force now.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct SilenceView {
    #[serde(flatten)]
    pub row: SilenceRow,
    pub active: bool,
}

/// A maintenance window and whether it is open now.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct WindowView {
    #[serde(flatten)]
    pub row: MaintenanceRow,
    pub active: bool,
}

/// The manager's counters.
#[derive(Debug, Clone, Default, Serialize, MessageResponse)]
pub struct AlertStats {
    pub open: usize,
    pub firing: usize,
    pub acknowledged: usize,
    pub silenced: usize,
    pub by_severity: HashMap<&'static str, usize>,
    pub pending_rules: usize,
    pub raised_total: u64,
    pub repeats_total: u64,
    pub resolved_total: u64,
    pub auto_resolved_total: u64,
    pub notifications_dispatched_total: u64,
    pub notifications_suppressed_total: u64,
    pub notifications_refused_total: u64,
    /// Whether the open alerts, silences and windows were read from the store.
    pub loaded: bool,
    pub channels: Value,
}

// ---- the actor -----------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Counters {
    raised: u64,
    repeats: u64,
    resolved: u64,
    auto_resolved: u64,
    dispatched: u64,
    suppressed: u64,
    refused: u64,
}

/// See the module doc.
pub struct AlertManager {
    settings: Arc<Settings>,
    store: Store,
    bus: Addr<EventBus>,
    notifiers: Notifiers,
    /// Firing and acknowledged alerts, by fingerprint.
    open: HashMap<String, AlertRow>,
    /// Open alert ids to their fingerprint.
    ids: HashMap<Uuid, String>,
    recent: VecDeque<AlertRow>,
    /// When the repeats of each open alert (by fingerprint) were last written.
    repeat_persisted: HashMap<String, DateTime<Utc>>,
    tracker: Tracker,
    silences: Vec<Silence>,
    windows: Vec<Window>,
    loaded: bool,
    started: std::time::Instant,
    /// Alerts a channel refused a notice of, and when to try again.
    trigger_retry: HashMap<String, DateTime<Utc>>,
    /// Channels still owed a repeat of an alert (an escalation, or a repeat they refused).
    repeat_owed: HashMap<String, Vec<ChannelKind>>,
    /// Alerts raised silenced before the start-up load, whose `silenced` rows are not written.
    unrecorded: std::collections::HashSet<String>,
    counters: Counters,
}

impl AlertManager {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        bus: Addr<EventBus>,
        notifiers: Notifiers,
    ) -> Self {
        AlertManager {
            settings,
            store,
            bus,
            notifiers,
            open: HashMap::new(),
            ids: HashMap::new(),
            recent: VecDeque::new(),
            repeat_persisted: HashMap::new(),
            tracker: Tracker::default(),
            silences: Vec::new(),
            windows: Vec::new(),
            loaded: false,
            started: std::time::Instant::now(),
            trigger_retry: HashMap::new(),
            repeat_owed: HashMap::new(),
            unrecorded: Default::default(),
            counters: Counters::default(),
        }
    }

    /// Whether notifications may go out: the start-up load is done, or has taken too long.
    fn ready(&self) -> bool {
        self.loaded || self.started.elapsed() >= LOAD_GRACE
    }

    /// Whether the Monitor still evaluates the rule of a reloaded alert (its scope is kept in
    /// the metadata): a rule no longer evaluated would never clear.
    fn monitored(&self, a: &AlertRow) -> bool {
        let s = &self.settings;
        if !s.agents.monitor || s.intervals.monitor_ms == 0 {
            return false;
        }
        match a.metadata.get("scope").and_then(Value::as_str) {
            Some("database") => s.database_url.is_some(),
            Some("redis") => s.redis_url.is_some(),
            Some("external") => a
                .labels
                .get("check")
                .and_then(Value::as_str)
                .is_some_and(|name| s.alerting.external_checks.iter().any(|c| c.name == name)),
            _ => true,
        }
    }

    /// The channels an alert's trigger went to (`notified_channels`), configured now.
    fn told(&self, a: &AlertRow) -> Vec<ChannelKind> {
        let enabled = self.notifiers.enabled();
        told_names(&a.metadata)
            .iter()
            .filter_map(|c| ChannelKind::parse(c))
            .filter(|c| enabled.contains(c))
            .collect()
    }

    /// Send a follow-up (acknowledge, resolve) to the channels told of the alert.
    fn follow_up(&mut self, a: &AlertRow, action: NotifyAction) {
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

    /// Read open alerts, silences and windows; again later while Postgres cannot be read.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let wait = Duration::from_millis(self.settings.database.timeout_ms.saturating_mul(2));
        let read = async move {
            // Records journaled by the last process (an outage, then a crash) are written
            // first, so the load does not reopen what they resolved.
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
        ctx.spawn(
            read.into_actor(self)
                .map(|(alerts, silences, windows, finished), act, ctx| {
                    if alerts.partial || silences.partial || windows.partial {
                        log::warn!(
                    "alerts: the database cannot be read; open alerts, silences and maintenance \
                     windows will be loaded when it answers (retry in {LOAD_RETRY:?})"
                );
                        ctx.run_later(LOAD_RETRY, |act, ctx| act.load(ctx));
                        return;
                    }
                    act.merge_loaded(alerts.data, silences.data, windows.data, &finished);
                }),
        );
    }

    fn merge_loaded(
        &mut self,
        alerts: Vec<AlertRow>,
        silences: Vec<SilenceRow>,
        windows: Vec<MaintenanceRow>,
        finished: &HashMap<Uuid, Vec<String>>,
    ) {
        let now = Utc::now();
        let mut restored = 0;
        let resolved_row = |mut a: AlertRow, why: String| {
            a.state = "resolved".into();
            a.resolved = true;
            a.auto_resolved = true;
            a.resolved_by = Some("selfheal".into());
            a.resolved_at = Some(now);
            a.resolution = Some(why);
            a.updated_at = now;
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
            if a.alert_type == types::AGENT_FAILED && !live {
                // This process started its agents afresh.
                let row = resolved_row(a, "the process restarted, and its agents with it".into());
                self.follow_up(&row, NotifyAction::Resolve);
                self.persist(&row, Some("resolved"));
                continue;
            }
            if !self.monitored(&a) && !live {
                log::info!(
                    "alert {} {} on {}: its rule is no longer evaluated; resolved",
                    a.id,
                    a.alert_type,
                    a.component
                );
                let row = resolved_row(a, "its rule is no longer evaluated".into());
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
                    a.actual_value = newer.actual_value;
                    a.message = newer.message.clone();
                    if Severity::parse(&newer.severity) < Severity::parse(&a.severity) {
                        a.severity = newer.severity.clone();
                    }
                    if newer.state == "acknowledged" && a.state == "firing" {
                        a.state = newer.state.clone();
                        a.acknowledged = true;
                        a.acknowledged_by = newer.acknowledged_by.clone();
                        a.acknowledged_at = newer.acknowledged_at;
                        a.ack_comment = newer.ack_comment.clone();
                    }
                    a.updated_at = now;
                    let merged = format!("merged into alert {}", a.id);
                    self.persist(&resolved_row(newer, merged), Some("resolved"));
                    if a.state == "acknowledged" {
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
                    self.store.write(Record::Alert(resolved_row(a, superseded)));
                    continue;
                }
            }
            if let Some(done) = finished.get(&a.id) {
                let told = told_names(&a.metadata);
                let (kept, lost): (Vec<String>, Vec<String>) =
                    told.into_iter().partition(|c| done.contains(c));
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
                    if let Some(m) = a.metadata.as_object_mut() {
                        m.insert(NOTIFIED_CHANNELS.into(), json!(kept));
                    }
                }
            }
            if let Some(scope) = a.metadata.get("scope").and_then(Value::as_str) {
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
        log::info!(
            "alerts: {restored} open alert(s), {} silence(s), {} maintenance window(s) loaded",
            self.silences.len(),
            self.windows.len()
        );
    }

    fn link(&self, id: Uuid) -> String {
        format!(
            "{}/api/v1/system/alerts/{id}",
            self.settings.notify.link_base_url.trim_end_matches('/')
        )
    }

    /// The severity's channels that are configured.
    fn channels(&self, severity: &str) -> Vec<ChannelKind> {
        let Some(sev) = Severity::parse(severity) else {
            return Vec::new();
        };
        let enabled = self.notifiers.enabled();
        self.settings
            .notify
            .routes
            .channels(sev)
            .iter()
            .copied()
            .filter(|c| enabled.contains(c))
            .collect()
    }

    // ---- stages ----------------------------------------------------------------------------

    /// Dedup: the open alert of this fingerprint, updated; or a new one.
    fn dedup(&mut self, signal: AlertSignal, now: DateTime<Utc>) -> (String, Arrival) {
        let fp = signal.fingerprint();
        if let Some(a) = self.open.get_mut(&fp) {
            a.occurrences = a.occurrences.saturating_add(1);
            a.last_seen = now;
            a.updated_at = now;
            a.actual_value = signal.value;
            a.threshold_value = signal.threshold.or(a.threshold_value);
            a.message = signal.message;
            let told = a
                .metadata
                .as_object_mut()
                .and_then(|m| m.remove(NOTIFIED_CHANNELS));
            a.metadata = signal.metadata;
            if let (Some(told), Some(m)) = (told, a.metadata.as_object_mut()) {
                m.insert(NOTIFIED_CHANNELS.into(), told);
            }
            self.counters.repeats += 1;
            let escalated = Severity::parse(&a.severity).is_none_or(|s| signal.severity < s);
            if escalated {
                a.severity = signal.severity.as_str().to_owned();
                return (fp, Arrival::Escalated);
            }
            return (fp, Arrival::Repeat);
        }
        let row = AlertRow::firing(signal, now);
        log::warn!(
            "alert {} {} [{}] on {}: {}",
            row.id,
            row.alert_type,
            row.severity,
            row.component,
            row.message
        );
        self.counters.raised += 1;
        self.ids.insert(row.id, fp.clone());
        self.open.insert(fp.clone(), row);
        (fp, Arrival::New)
    }

    /// Record a trigger suppressed by a silence or window: a `silenced` row per channel.
    fn record_suppressed(&mut self, fp: &str, s: &Suppression, now: DateTime<Utc>) {
        let Some(a) = self.open.get(fp) else { return };
        for c in self.channels(&a.severity) {
            self.store.write(Record::Notification(NotificationRow {
                id: Uuid::new_v4(),
                alert_id: a.id,
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

    /// The severity's channels that have not been told the alert fired.
    fn untold(&self, a: &AlertRow) -> Vec<ChannelKind> {
        let told = told_names(&a.metadata);
        self.channels(&a.severity)
            .into_iter()
            .filter(|c| !told.iter().any(|t| t == c.as_str()))
            .collect()
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
            let mut told = told_names(&a.metadata);
            for c in accepted {
                if !told.iter().any(|t| t == c.as_str()) {
                    told.push(c.as_str().to_owned());
                }
            }
            match a.metadata.as_object_mut() {
                Some(m) => {
                    m.insert(NOTIFIED_CHANNELS.into(), json!(told));
                }
                None => a.metadata = json!({ NOTIFIED_CHANNELS: told }),
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
    fn catch_up(&mut self, fp: &str, now: DateTime<Utc>) -> bool {
        if !self.ready() || self.trigger_retry.get(fp).is_some_and(|at| now < *at) {
            return false;
        }
        let Some(a) = self.open.get(fp) else {
            return false;
        };
        if a.state != "firing" || a.silenced {
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

    /// Persist: the alert row to the store; a change of state to the `alert` channel.
    fn persist(&self, row: &AlertRow, change: Option<&'static str>) {
        self.store.write(Record::Alert(row.clone()));
        if let Some(action) = change {
            self.bus.do_send(Publish(Event::new(
                "AlertManager",
                Payload::AlertChanged {
                    action,
                    alert: Box::new(row.clone()),
                },
            )));
        }
    }

    /// The whole pipeline for one raised signal.
    fn raise(&mut self, signal: AlertSignal) -> Option<AlertRow> {
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
        let row = self.open.get(&fp)?.clone();
        let change = match arrival {
            Arrival::New => Some("raised"),
            Arrival::Escalated => Some("escalated"),
            Arrival::Repeat => None,
        };
        let repeat_due = self.repeat_persisted.get(&fp).is_none_or(|at| {
            now.signed_duration_since(*at).num_milliseconds()
                >= REPEAT_PERSIST_EVERY.as_millis() as i64
        });
        if change.is_some() || was_silenced != Some(row.silenced) || repeat_due {
            self.persist(&row, change);
            self.repeat_persisted.insert(fp, now);
        }
        Some(row)
    }

    /// Resolve the open alert `fp` (auto: the condition cleared).
    fn resolve(
        &mut self,
        fp: &str,
        by: &str,
        comment: Option<String>,
        auto: bool,
    ) -> Option<AlertRow> {
        let now = Utc::now();
        let mut a = self.open.remove(fp)?;
        self.ids.remove(&a.id);
        self.repeat_persisted.remove(fp);
        self.trigger_retry.remove(fp);
        self.repeat_owed.remove(fp);
        self.unrecorded.remove(fp);
        self.tracker.forget(fp);
        a.state = "resolved".into();
        a.resolved = true;
        a.auto_resolved = auto;
        a.resolved_by = Some(by.to_owned());
        a.resolved_at = Some(now);
        a.resolution = comment.or_else(|| auto.then(|| "condition cleared".to_owned()));
        a.updated_at = now;
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

    /// Silences that ended, windows' opening and closing, triggers owed, repeats.
    fn housekeeping(&mut self) {
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
            .filter(|(_, a)| a.state == "firing")
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

    /// Why `id` cannot be acknowledged or resolved here.
    fn not_held(&self, id: Uuid, resolved: &str) -> AlertError {
        if self.recent.iter().any(|a| a.id == id) {
            AlertError::Conflict(format!("alert {id} {resolved}"))
        } else if !self.loaded {
            not_ready()
        } else {
            AlertError::NotFound(format!("no open alert {id}"))
        }
    }

    fn find_open(&self, id: Uuid) -> Option<&AlertRow> {
        self.ids.get(&id).and_then(|fp| self.open.get(fp))
    }

    fn find_any(&self, id: Uuid) -> Option<&AlertRow> {
        self.find_open(id)
            .or_else(|| self.recent.iter().rev().find(|a| a.id == id))
    }
}

fn not_ready() -> AlertError {
    AlertError::NotReady(
        "open alerts are still being loaded from the database; try again shortly".into(),
    )
}

/// Silence stage: set the open alert's `silenced` flag; the suppression when there is one.
fn silence(
    open: &mut HashMap<String, AlertRow>,
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

/// The channel names in an alert's `notified_channels` metadata.
fn told_names(metadata: &Value) -> Vec<String> {
    metadata
        .get(NOTIFIED_CHANNELS)
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arrival {
    New,
    Repeat,
    Escalated,
}

impl Actor for AlertManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.bus.do_send(Subscribe {
            channels: vec![Channel::AgentFailed, Channel::AgentStarted],
            recipient: ctx.address().recipient(),
            subscriber: "AlertManager".to_owned(),
        });
        self.load(ctx);
        ctx.run_interval(HOUSEKEEPING_EVERY, |act, _| act.housekeeping());
    }
}

impl Supervised for AlertManager {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Reload from the store: what was persisted survives, the rest starts over.
        self.open.clear();
        self.ids.clear();
        self.repeat_persisted.clear();
        self.tracker = Tracker::default();
        self.silences.clear();
        self.windows.clear();
        self.loaded = false;
        self.started = std::time::Instant::now();
        self.trigger_retry.clear();
        self.repeat_owed.clear();
        self.unrecorded.clear();
    }
}

// ---- handlers, in message order ------------------------------------------------------------

impl Handler<ObserveRules> for AlertManager {
    type Result = ();

    fn handle(&mut self, msg: ObserveRules, _: &mut Self::Context) {
        let a = &self.settings.alerting;
        let transitions = self.tracker.observe(
            &msg.scopes,
            msg.observations,
            a.pending_ticks,
            a.resolve_ticks,
        );
        for t in transitions {
            match t {
                Transition::Fire(signal) | Transition::Repeat(signal) => {
                    self.raise(signal);
                }
                Transition::Clear { fingerprint } => {
                    self.resolve(&fingerprint, "selfheal", None, true);
                }
            }
        }
    }
}

impl Handler<Deliver> for AlertManager {
    type Result = ();

    /// An agent that exceeded its restart intensity is a critical `AGENT_FAILED` alert until
    /// it starts again (an admin restart).
    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        match &msg.0.data {
            Payload::AgentFailed {
                agent,
                error,
                restarts,
                window_ms,
                ..
            } => {
                let signal = AlertSignal::new(
                    types::AGENT_FAILED,
                    "agent",
                    Severity::Critical,
                    format!(
                        "agent {agent} failed: it crashed more than the restart limit allows \
                         within {window_ms} ms (last error: {error}); restart it with \
                         POST /api/v1/system/agents/{agent}/restart"
                    ),
                )
                .label("agent", agent.clone())
                .with_metadata(json!({ "error": error, "restarts": restarts }));
                self.raise(signal);
            }
            Payload::AgentStarted { agent, .. } => {
                let labels = [("agent".to_owned(), agent.clone())].into();
                let fp = fingerprint(types::AGENT_FAILED, "agent", &labels);
                self.resolve(
                    &fp,
                    "selfheal",
                    Some(format!("agent {agent} started again")),
                    true,
                );
            }
            _ => {}
        }
    }
}

impl Handler<AcknowledgeAlert> for AlertManager {
    type Result = Result<AlertRow, AlertError>;

    fn handle(&mut self, msg: AcknowledgeAlert, _: &mut Self::Context) -> Self::Result {
        if !self.ready() {
            // The alert may be a stored one not loaded yet, or its twin raised since the start.
            return Err(not_ready());
        }
        let Some(fp) = self.ids.get(&msg.id).cloned() else {
            return Err(self.not_held(msg.id, "is resolved"));
        };
        let now = Utc::now();
        let Some(a) = self.open.get_mut(&fp) else {
            return Err(AlertError::NotFound(format!("no open alert {}", msg.id)));
        };
        if a.state == "acknowledged" {
            return Err(AlertError::Conflict(format!(
                "alert {} was already acknowledged by {}",
                msg.id,
                a.acknowledged_by.as_deref().unwrap_or("someone")
            )));
        }
        a.state = "acknowledged".into();
        a.acknowledged = true;
        a.acknowledged_by = Some(msg.by.clone());
        a.acknowledged_at = Some(now);
        a.ack_comment = msg.comment;
        a.updated_at = now;
        let row = a.clone();
        log::info!(
            "alert {} {} acknowledged by {}",
            row.id,
            row.alert_type,
            msg.by
        );
        self.follow_up(&row, NotifyAction::Acknowledge);
        self.persist(&row, Some("acknowledged"));
        Ok(row)
    }
}

impl Handler<ResolveAlert> for AlertManager {
    type Result = Result<AlertRow, AlertError>;

    fn handle(&mut self, msg: ResolveAlert, _: &mut Self::Context) -> Self::Result {
        if !self.ready() {
            // The alert may be a stored one not loaded yet, or its twin raised since the start.
            return Err(not_ready());
        }
        let Some(fp) = self.ids.get(&msg.id).cloned() else {
            return Err(self.not_held(msg.id, "is already resolved"));
        };
        self.resolve(&fp, &msg.by, msg.comment, false)
            .ok_or_else(|| AlertError::NotFound(format!("no open alert {}", msg.id)))
    }
}

impl Handler<GetAlert> for AlertManager {
    type Result = Option<AlertRow>;

    fn handle(&mut self, msg: GetAlert, _: &mut Self::Context) -> Self::Result {
        self.find_any(msg.0).cloned()
    }
}

impl Handler<GetRecentAlerts> for AlertManager {
    type Result = MessageResult<GetRecentAlerts>;

    fn handle(&mut self, _: GetRecentAlerts, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.open
                .values()
                .chain(self.recent.iter())
                .cloned()
                .collect(),
        )
    }
}

impl Handler<GetAlertStats> for AlertManager {
    type Result = AlertStats;

    fn handle(&mut self, _: GetAlertStats, _: &mut Self::Context) -> Self::Result {
        let mut by_severity: HashMap<&'static str, usize> =
            Severity::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for a in self.open.values() {
            if let Some(s) = Severity::parse(&a.severity) {
                *by_severity.entry(s.as_str()).or_default() += 1;
            }
        }
        let c = &self.counters;
        AlertStats {
            open: self.open.len(),
            firing: self.open.values().filter(|a| a.state == "firing").count(),
            acknowledged: self
                .open
                .values()
                .filter(|a| a.state == "acknowledged")
                .count(),
            silenced: self.open.values().filter(|a| a.silenced).count(),
            by_severity,
            pending_rules: self.tracker.pending(),
            raised_total: c.raised,
            repeats_total: c.repeats,
            resolved_total: c.resolved,
            auto_resolved_total: c.auto_resolved,
            notifications_dispatched_total: c.dispatched,
            notifications_suppressed_total: c.suppressed,
            notifications_refused_total: c.refused,
            loaded: self.loaded,
            channels: self.notifiers.status(),
        }
    }
}

impl Handler<ListSilences> for AlertManager {
    type Result = MessageResult<ListSilences>;

    fn handle(&mut self, _: ListSilences, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let mut out: Vec<SilenceView> = self
            .silences
            .iter()
            .map(|s| SilenceView {
                row: s.row.clone(),
                active: s.active(now),
            })
            .collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.row.created_at));
        MessageResult(out)
    }
}

impl Handler<CreateSilence> for AlertManager {
    type Result = Result<SilenceView, AlertError>;

    fn handle(&mut self, msg: CreateSilence, _: &mut Self::Context) -> Self::Result {
        if self.silences.len() >= SILENCES_MAX {
            return Err(AlertError::Conflict(format!(
                "{SILENCES_MAX} silences are in force or pending: delete one first"
            )));
        }
        let row = msg.0;
        log::info!("silence {} created by {}", row.id, row.created_by);
        self.store.write(Record::Silence(row.clone()));
        let s = Silence::new(row.clone());
        let active = s.active(Utc::now());
        self.silences.push(s);
        // Apply it to open alerts now rather than at the next housekeeping.
        self.housekeeping();
        Ok(SilenceView { row, active })
    }
}

impl Handler<DeleteSilence> for AlertManager {
    type Result = Result<SilenceView, AlertError>;

    fn handle(&mut self, msg: DeleteSilence, _: &mut Self::Context) -> Self::Result {
        let pos = self
            .silences
            .iter()
            .position(|s| s.row.id == msg.id)
            .ok_or_else(|| {
                AlertError::NotFound(format!("no active or pending silence {}", msg.id))
            })?;
        let now = Utc::now();
        let mut row = self.silences.remove(pos).row;
        row.deleted_at = Some(now);
        row.deleted_by = Some(msg.by.clone());
        row.updated_at = now;
        log::info!("silence {} expired by {}", row.id, msg.by);
        self.store.write(Record::Silence(row.clone()));
        self.housekeeping();
        Ok(SilenceView { row, active: false })
    }
}

impl Handler<ListMaintenance> for AlertManager {
    type Result = MessageResult<ListMaintenance>;

    fn handle(&mut self, _: ListMaintenance, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        MessageResult(
            self.windows
                .iter()
                .map(|w| WindowView {
                    row: w.row.clone(),
                    active: w.active(now),
                })
                .collect(),
        )
    }
}

impl Handler<CreateMaintenance> for AlertManager {
    type Result = Result<WindowView, AlertError>;

    fn handle(&mut self, msg: CreateMaintenance, _: &mut Self::Context) -> Self::Result {
        if self.windows.len() >= MAINTENANCE_WINDOWS_MAX {
            return Err(AlertError::Conflict(format!(
                "{MAINTENANCE_WINDOWS_MAX} maintenance windows exist: delete one first"
            )));
        }
        let row = msg.0;
        log::info!(
            "maintenance window {} ({}) created by {}",
            row.id,
            row.name,
            row.created_by
        );
        self.store.write(Record::Maintenance(row.clone()));
        let w = Window::new(row.clone());
        let active = w.active(Utc::now());
        self.windows.push(w);
        self.housekeeping();
        Ok(WindowView { row, active })
    }
}

impl Handler<DeleteMaintenance> for AlertManager {
    type Result = Result<WindowView, AlertError>;

    fn handle(&mut self, msg: DeleteMaintenance, _: &mut Self::Context) -> Self::Result {
        let pos = self
            .windows
            .iter()
            .position(|w| w.row.id == msg.id)
            .ok_or_else(|| AlertError::NotFound(format!("no maintenance window {}", msg.id)))?;
        let now = Utc::now();
        let mut row = self.windows.remove(pos).row;
        row.deleted_at = Some(now);
        row.deleted_by = Some(msg.by.clone());
        row.updated_at = now;
        log::info!(
            "maintenance window {} ({}) removed by {}",
            row.id,
            row.name,
            msg.by
        );
        self.store.write(Record::Maintenance(row.clone()));
        self.housekeeping();
        Ok(WindowView { row, active: false })
    }
}

impl Handler<InMaintenance> for AlertManager {
    type Result = Option<Suppression>;

    fn handle(&mut self, msg: InMaintenance, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        self.windows
            .iter()
            .find(|w| {
                w.active(now)
                    && w.covers(
                        &msg.alert_type,
                        &msg.component,
                        msg.severity.as_str(),
                        &msg.labels,
                    )
            })
            .map(|w| Suppression::Maintenance {
                id: w.row.id,
                name: w.row.name.clone(),
            })
    }
}
