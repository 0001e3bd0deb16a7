//! `AlertManager`: turns rule readings, supervision reports and raised signals into alerts, as
//! a pipeline of small stages (after Prometheus's Alertmanager):
//!
//! 1. **rules** ([`rules::Tracker`]): the Monitor's readings fire after `ALERT_PENDING_TICKS`
//!    breaching ticks (more for host CPU) and resolve after `ALERT_RESOLVE_TICKS` clear ones;
//! 2. **dedup** ([`lifecycle`]): one open alert per fingerprint (type + component +
//!    identifying labels); a repeat raises its occurrence count and last-seen time;
//! 3. **silence** ([`silences`]): silences and maintenance windows suppress notifications,
//!    not the alert;
//! 4. **notify** ([`notify`]): the severity's channels (`ALERT_ROUTES`) through [`Notifiers`];
//!    a firing, unacknowledged, unsilenced alert is notified again every
//!    `ALERT_REPEAT_INTERVAL_MS`; acknowledge and resolve are sent to the channels that were
//!    told it fired;
//! 5. **persist**: every change of an alert, silence or window goes to the store (write-behind)
//!    and the change of state to the `alert` channel; a mere repeat (occurrences, last seen,
//!    value) at most every [`REPEAT_PERSIST_EVERY`], so a firing alert does not queue a write
//!    per Monitor tick (reads overlay the manager's fresher copy).
//!
//! Supervision reports ([`ActorReport`], sent directly by the supervision of every actor)
//! raise `AGENT_FAILED` (critical), `AGENT_STALLED` and `EVENTS_LOST`, and resolve the first
//! two when the actor recovers.
//!
//! States: `firing` → `acknowledged` → `resolved`. Open alerts, silences and windows are
//! loaded from the store at start ([`load`]; retried while Postgres is unreachable), so a
//! restart keeps them and finds the open alert of a condition that is still there.
//!
//! Restart policy: a core actor (see [`crate::supervision`]). A restart reloads the
//! open alerts, silences and windows from the store (after the write-behind queue has
//! drained), so it goes on deduplicating against the alerts it had.
//!
//! Files: [`messages`] (what it is asked), [`load`] (the start-up load), [`lifecycle`]
//! (dedup, raise, resolve), [`notify`] (which channels hear what, repeats, housekeeping, and
//! the fallback used when the manager itself fails), [`handlers`].

mod handlers;
mod lifecycle;
mod load;
pub mod messages;
mod notify;
pub mod rules;
pub mod silences;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::actors::event_bus::{EventBus, Publish};
use crate::config::Settings;
use crate::domain::alert::{Alert, AlertId, ChannelKind, Severity};
use crate::domain::event::{Event, Payload};
use crate::notify::Notifiers;
use crate::store::{AlertRow, Record, Store};
use crate::supervision::{self as sv, ActorRegistry, Core, CoreSupervision, Reporter};
pub use messages::*;
pub use notify::fallback;
use rules::Tracker;
use silences::{Silence, Window};

/// The manager's name among the supervised actors.
pub const NAME: &str = "alert_manager";

/// Resolved alerts kept in memory for reads that must not lag the write-behind queue.
const RECENT_RESOLVED: usize = 200;
/// How often silences, maintenance windows and repeat intervals are re-checked.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);
/// How often a repeat of an open alert, and nothing else, is written to the store. A write per
/// Monitor tick would fill the write-behind queue (and its journal) during a Postgres outage,
/// while the outage's own alert repeats.
pub const REPEAT_PERSIST_EVERY: Duration = Duration::from_secs(60);

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
    /// Every supervised actor (is an actor whose `AGENT_FAILED` was reloaded still failed?).
    actors: ActorRegistry,
    /// Firing and acknowledged alerts, by fingerprint.
    open: HashMap<String, Alert>,
    /// Open alert ids to their fingerprint.
    ids: HashMap<AlertId, String>,
    recent: VecDeque<Alert>,
    /// When the repeats of each open alert (by fingerprint) were last written.
    repeat_persisted: HashMap<String, DateTime<Utc>>,
    tracker: Tracker,
    silences: Vec<Silence>,
    windows: Vec<Window>,
    loaded: bool,
    /// Failed tries of the start-up load in a row (its retry backs off).
    load_failures: u32,
    started: std::time::Instant,
    /// Alerts a channel refused a notice of, and when to try again.
    trigger_retry: HashMap<String, DateTime<Utc>>,
    /// Channels still owed a repeat of an alert (an escalation, or a repeat they refused).
    repeat_owed: HashMap<String, Vec<ChannelKind>>,
    /// Alerts raised silenced before the start-up load, whose `silenced` rows are not written.
    unrecorded: HashSet<String>,
    counters: Counters,
    sup: CoreSupervision,
}

impl AlertManager {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        bus: Addr<EventBus>,
        notifiers: Notifiers,
        actors: ActorRegistry,
        reporter: Reporter,
    ) -> Self {
        let sup = CoreSupervision::new(NAME, &settings.supervisor, reporter);
        AlertManager {
            settings,
            store,
            bus,
            notifiers,
            actors,
            open: HashMap::new(),
            ids: HashMap::new(),
            recent: VecDeque::new(),
            repeat_persisted: HashMap::new(),
            tracker: Tracker::default(),
            silences: Vec::new(),
            windows: Vec::new(),
            loaded: false,
            load_failures: 0,
            started: std::time::Instant::now(),
            trigger_retry: HashMap::new(),
            repeat_owed: HashMap::new(),
            unrecorded: HashSet::new(),
            counters: Counters::default(),
            sup,
        }
    }

    /// Whether the Monitor still evaluates the rule of a reloaded alert (its scope is kept in
    /// the metadata): a rule no longer evaluated would never clear.
    fn monitored(&self, a: &Alert) -> bool {
        let s = &self.settings;
        let ticking = s
            .agent("Monitor")
            .is_some_and(|m| s.agent_enabled("Monitor") && m.interval.is_some());
        if !ticking {
            return false;
        }
        match a.metadata.get("scope").and_then(Value::as_str) {
            Some("database") => s.database_url.is_some(),
            Some("redis") => s.redis_url.is_some(),
            Some("external") => a
                .labels
                .get("check")
                .is_some_and(|name| s.alerting.external_checks.iter().any(|c| &c.name == name)),
            _ => true,
        }
    }

    fn link(&self, id: AlertId) -> String {
        format!(
            "{}/api/v1/system/alerts/{id}",
            self.settings.notify.link_base_url.trim_end_matches('/')
        )
    }

    /// The severity's channels that are configured.
    fn channels(&self, severity: Severity) -> Vec<ChannelKind> {
        let enabled = self.notifiers.enabled();
        self.settings
            .notify
            .routes
            .channels(severity)
            .iter()
            .copied()
            .filter(|c| enabled.contains(c))
            .collect()
    }

    /// The channels an alert's trigger went to (`notified_channels`), configured now.
    fn told(&self, a: &Alert) -> Vec<ChannelKind> {
        let enabled = self.notifiers.enabled();
        a.notified_channels
            .iter()
            .copied()
            .filter(|c| enabled.contains(c))
            .collect()
    }

    /// The severity's channels that have not been told the alert fired.
    fn untold(&self, a: &Alert) -> Vec<ChannelKind> {
        self.channels(a.severity)
            .into_iter()
            .filter(|c| !a.notified_channels.contains(c))
            .collect()
    }

    /// Persist: the alert row to the store; a change of state to the `alert` channel.
    fn persist(&self, a: &Alert, change: Option<&'static str>) {
        self.store.write(Record::Alert(AlertRow::from(a)));
        if let Some(action) = change {
            self.bus.do_send(Publish(Event::new(
                "AlertManager",
                Payload::AlertChanged {
                    action,
                    alert: Box::new(a.clone()),
                },
            )));
        }
    }

    fn find_open(&self, id: AlertId) -> Option<&Alert> {
        self.ids.get(&id).and_then(|fp| self.open.get(fp))
    }

    fn find_any(&self, id: AlertId) -> Option<&Alert> {
        self.find_open(id)
            .or_else(|| self.recent.iter().rev().find(|a| a.id == id))
    }

    fn stats(&self) -> AlertStats {
        let mut by_severity: HashMap<&'static str, usize> =
            Severity::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for a in self.open.values() {
            *by_severity.entry(a.severity.as_str()).or_default() += 1;
        }
        let c = &self.counters;
        let firing = |a: &&Alert| a.state == crate::domain::alert::AlertState::Firing;
        AlertStats {
            open: self.open.len(),
            firing: self.open.values().filter(firing).count(),
            acknowledged: self.open.values().filter(|a| !firing(a)).count(),
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

impl Actor for AlertManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        sv::started(self, ctx);
    }
}

impl Supervised for AlertManager {
    fn restarting(&mut self, _: &mut Self::Context) {
        // What it holds is kept: the open alerts (so a condition still firing is the same
        // alert, not a new one), the rules' tracker, silences, windows and what is owed to the
        // channels. The store is read again at start (`load`), which adds what it does not
        // hold (an AGENT_FAILED alert stored by the fallback while it was failed) and skips
        // what it does.
    }
}

impl Core for AlertManager {
    fn supervision(&mut self) -> &mut CoreSupervision {
        &mut self.sup
    }

    fn start(&mut self, ctx: &mut Context<Self>) {
        self.load(ctx);
        sv::guard_interval(ctx, HOUSEKEEPING_EVERY, |act, _| act.housekeeping());
    }

    fn stats(&self) -> Value {
        serde_json::to_value(AlertManager::stats(self)).unwrap_or_default()
    }
}

crate::core_handlers!(AlertManager);
