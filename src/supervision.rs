//! Supervision shared by every actor: the agents (through their harness,
//! `actors::harness`) and the core actors (the event bus, the metrics store, the
//! alert manager, the query collector, the store writer and the system supervisor).
//!
//! Why this exists: actix's `Supervisor` restarts an actor only when it *stops*; a panic in a
//! handler, a timer or a spawned future kills the actor's task instead, its mailbox closes,
//! and it never comes back. So no core actor's code runs bare: every handler body, timer and
//! spawned future goes through [`guard`] (or [`guard_fut`]), which catches the unwind, records
//! the crash, and stops the actor, so that the `Supervisor` restarts it. The policy is the
//! agents' (OTP-style intensity):
//!
//! - a crash is restarted after an exponential backoff (`AGENT_BACKOFF_INITIAL_MS` doubling per
//!   crash inside the window, capped at `AGENT_BACKOFF_MAX_MS`); messages wait in the mailbox
//!   meanwhile (`ctx.wait`), none is lost but the one that crashed;
//! - more than `AGENT_MAX_RESTARTS` crashes within `AGENT_RESTART_WINDOW_MS` and the actor is
//!   `failed`: it answers nothing (callers get `MailboxError::Closed`, routes a 503) until
//!   an admin restart, and a critical `AGENT_FAILED` alert is raised.
//!
//! State across a restart: the `Supervisor` calls `restarting()` on the same struct, so each
//! actor decides what survives (the writer keeps its queue and journal, the bus its
//! subscribers, the metrics store its series; the alert manager its open alerts, and reads the
//! store again for what it does not hold).
//!
//! Reports ([`ActorReport`]) go to the alert manager directly, never through the event bus
//! (which may be the actor failing); the bus only carries the observers' copy. When the alert
//! manager itself fails, the report goes through the fallback the system installs (a
//! critical notice sent straight to the notification channels, and the alert stored).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;

use crate::config::SupervisorSettings;
use crate::domain::agent::{ActorKind, AgentState, AgentStatus};
use crate::domain::event::{Channel, Event, Payload};

/// How a burst of restarts of one actor is merged: after a restart is announced, the next ones
/// within this window are announced once, together, when it ends.
pub const RESTART_EVENT_WINDOW: Duration = Duration::from_secs(10);

/// What to do about an actor's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Publish `agent-started` now.
    Now,
    /// Merged into a later announcement: call [`Announcer::flush`] after this long.
    Later(Duration),
}

/// Merges a burst of restarts into one `agent-started` event, so a restart loop (or a script
/// restarting an actor in a loop) does not push every other event out of the history. The
/// first restart is announced at once; the ones that follow within [`RESTART_EVENT_WINDOW`]
/// are announced together when it ends (`merged_restarts`).
#[derive(Debug, Default)]
pub struct Announcer {
    last: Option<Instant>,
    merged: u32,
}

impl Announcer {
    /// A start after `restarts` restarts.
    pub fn on_start(&mut self, restarts: u32) -> Announce {
        let now = Instant::now();
        if restarts == 0 {
            return Announce::Now;
        }
        match self.last {
            Some(t) if now.duration_since(t) < RESTART_EVENT_WINDOW => {
                self.merged += 1;
                Announce::Later(RESTART_EVENT_WINDOW - now.duration_since(t))
            }
            _ => {
                self.last = Some(now);
                Announce::Now
            }
        }
    }

    /// At the end of the window: how many restarts the trailing event stands for (`None`:
    /// nothing was merged, or it was announced already).
    pub fn flush(&mut self) -> Option<u32> {
        if self.merged == 0 {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.merged))
    }
}

// ---- policy ----------------------------------------------------------------------------------

/// Restart intensity and backoff (`AGENT_MAX_RESTARTS`, `AGENT_RESTART_WINDOW_MS`,
/// `AGENT_BACKOFF_INITIAL_MS`, `AGENT_BACKOFF_MAX_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub max_restarts: u32,
    pub window: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl RestartPolicy {
    pub fn from_settings(s: &SupervisorSettings) -> Self {
        RestartPolicy {
            max_restarts: s.max_restarts,
            window: Duration::from_millis(s.restart_window_ms),
            backoff_initial: Duration::from_millis(s.backoff_initial_ms),
            backoff_max: Duration::from_millis(s.backoff_max_ms),
        }
    }
}

/// The crashes inside the policy's window.
#[derive(Debug, Default)]
pub struct Crashes {
    at: VecDeque<Instant>,
}

impl Crashes {
    /// Count a crash now. `Ok(backoff)` before the restart, or `Err(crashes)` when the
    /// intensity is exceeded and the actor must be `failed`.
    pub fn record(&mut self, policy: &RestartPolicy) -> Result<Duration, usize> {
        let now = Instant::now();
        self.at.push_back(now);
        while self
            .at
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.at.pop_front();
        }
        if self.at.len() as u32 > policy.max_restarts {
            return Err(self.at.len());
        }
        Ok(self.backoff(policy))
    }

    /// `initial × 2^(k−1)` for the k-th crash inside the window, capped.
    pub fn backoff(&self, policy: &RestartPolicy) -> Duration {
        let k = self.at.len().max(1) as u32;
        policy
            .backoff_initial
            .saturating_mul(1u32 << (k - 1).min(30))
            .min(policy.backoff_max)
    }

    /// Forget the history (admin restart).
    pub fn clear(&mut self) {
        self.at.clear();
    }
}

// ---- status ----------------------------------------------------------------------------------

/// An actor's status, shared: the actor writes it, `/agents` reads it without a message (so a
/// busy, restarting or failed actor is still reported).
#[derive(Clone)]
pub struct StatusCell(Arc<Mutex<AgentStatus>>);

impl StatusCell {
    pub fn new(name: &str, kind: ActorKind) -> Self {
        StatusCell(Arc::new(Mutex::new(AgentStatus::new(
            name,
            kind,
            AgentState::Starting,
        ))))
    }

    /// A copy of the status.
    pub fn get(&self) -> AgentStatus {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Change the status.
    pub fn update(&self, f: impl FnOnce(&mut AgentStatus)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The state only.
    pub fn state(&self) -> AgentState {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).state
    }
}

// ---- reports ---------------------------------------------------------------------------------

/// What supervision tells the alert manager. Sent directly (an unbounded mailbox): never
/// dropped because someone is busy.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ActorReport {
    /// Restart intensity exceeded: critical `AGENT_FAILED` until an admin restart.
    Failed {
        name: String,
        kind: ActorKind,
        error: String,
        restarts: u32,
        window_ms: u64,
    },
    /// A job ran past its deadline: `AGENT_STALLED` until the restarted agent finishes a job.
    Stalled {
        name: String,
        job: &'static str,
        deadline_ms: u64,
        restarts: u32,
    },
    /// Running again after `Failed` (an admin restart) or `Stalled` (a job finished in time).
    Recovered { name: String, from: Recovery },
    /// Events of a decision channel could not be delivered to `subscriber`.
    EventsLost {
        subscriber: String,
        channel: Channel,
        count: u64,
        why: String,
    },
}

/// What an actor recovered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Failed,
    Stalled,
}

type Fallback = Box<dyn Fn(&ActorReport) + Send + Sync>;

/// Where reports go: the alert manager, the bus (observers), and the fallback used when the
/// alert manager is the one failing. Cheap to clone; the targets are set once at start.
#[derive(Clone, Default)]
pub struct Reporter {
    inner: Arc<ReporterInner>,
}

type Publisher = Box<dyn Fn(Event) + Send + Sync>;

#[derive(Default)]
struct ReporterInner {
    alerts: OnceLock<(String, Recipient<ActorReport>)>,
    publish: OnceLock<Publisher>,
    fallback: OnceLock<Fallback>,
    /// Reports that could not be delivered (the alert manager's mailbox was closed).
    lost: AtomicU64,
}

impl Reporter {
    /// Send reports to `alerts` (the actor named `name`).
    pub fn set_alerts(&self, name: &str, alerts: Recipient<ActorReport>) {
        let _ = self.inner.alerts.set((name.to_owned(), alerts));
    }

    /// Publish observers' copies with `publish` (onto the event bus).
    pub fn set_publisher(&self, publish: impl Fn(Event) + Send + Sync + 'static) {
        let _ = self.inner.publish.set(Box::new(publish));
    }

    /// What to do with a report the alert manager cannot take (it is the one failing).
    pub fn set_fallback(&self, f: impl Fn(&ActorReport) + Send + Sync + 'static) {
        let _ = self.inner.fallback.set(Box::new(f));
    }

    /// Publish `data` on the bus (best effort: an observers' copy).
    pub fn publish(&self, source: &str, data: Payload) {
        if let Some(publish) = self.inner.publish.get() {
            publish(Event::new(source, data));
        }
    }

    /// Reports that never reached the alert manager.
    pub fn lost(&self) -> u64 {
        self.inner.lost.load(Ordering::Relaxed)
    }

    /// Tell the alert manager (or, when it is the subject of a failure, the fallback).
    pub fn report(&self, report: ActorReport) {
        let Some((alerts_name, alerts)) = self.inner.alerts.get() else {
            log::error!("supervision: no alert manager yet; report not delivered: {report:?}");
            self.inner.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let about_alerts =
            matches!(&report, ActorReport::Failed { name, .. } if name == alerts_name);
        if about_alerts {
            match self.inner.fallback.get() {
                Some(f) => f(&report),
                None => log::error!("supervision: the alert manager failed and no fallback is set"),
            }
            return;
        }
        // `do_send` ignores the mailbox's capacity: a report is never dropped because the
        // alert manager is busy; only a closed mailbox (the system stopping) loses it.
        if !alerts.connected() {
            self.inner.lost.fetch_add(1, Ordering::Relaxed);
            log::error!("supervision: the alert manager is gone; report lost: {report:?}");
            return;
        }
        alerts.do_send(report);
    }
}

// ---- the registry ----------------------------------------------------------------------------

/// Ask an actor for its status (answered after any restart that was queued before it).
#[derive(Message, Debug)]
#[rtype(result = "AgentStatus")]
pub struct GetStatus;

/// Restart now, clearing `failed` and the crash history.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AdminRestart;

/// Fault injection for tests and the demo: panic inside the actor's own guarded code `times`
/// times in a row (agents: their next ticks; core actors: now, and again after each restart).
/// Answers false when the actor is not running.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct InjectPanic {
    pub times: u32,
}

/// Fault injection: the agent's next job hangs for `ms` before it runs (a tick awaiting a dead
/// dependency). Answers false when the agent is not running.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct InjectHang {
    pub ms: u64,
}

/// The handles of one supervised actor.
#[derive(Clone)]
pub struct Control {
    pub status: Recipient<GetStatus>,
    pub restart: Recipient<AdminRestart>,
    pub inject: Recipient<InjectPanic>,
    /// Agents only.
    pub hang: Option<Recipient<InjectHang>>,
}

/// One supervised actor: its name, kind, status and handles (`None` when disabled).
#[derive(Clone)]
pub struct Entry {
    pub name: String,
    pub kind: ActorKind,
    pub status: StatusCell,
    pub control: Option<Control>,
    /// The bus channels it takes events from (agents).
    pub subscriptions: &'static [Channel],
}

/// Every supervised actor, agents first in start order, then the core actors. Shared by the
/// handles; `/agents` and admin restarts go through it without a round trip to the system
/// supervisor (which is itself supervised and may be restarting).
#[derive(Clone, Default)]
pub struct ActorRegistry {
    entries: Arc<RwLock<Vec<Entry>>>,
}

impl ActorRegistry {
    /// Add (or replace, by name) an entry.
    pub fn add(&self, entry: Entry) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| !e.name.eq_ignore_ascii_case(&entry.name));
        entries.push(entry);
    }

    /// Register a running core actor.
    pub fn add_core<A>(&self, name: &str, status: StatusCell, addr: &Addr<A>)
    where
        A: Actor<Context = Context<A>>
            + Handler<GetStatus>
            + Handler<AdminRestart>
            + Handler<InjectPanic>,
    {
        self.add(Entry {
            name: name.to_owned(),
            kind: ActorKind::Core,
            status,
            control: Some(Control {
                status: addr.clone().recipient(),
                restart: addr.clone().recipient(),
                inject: addr.clone().recipient(),
                hang: None,
            }),
            subscriptions: &[],
        });
    }

    /// Every entry, in order.
    pub fn entries(&self) -> Vec<Entry> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The entry named `name` (case-insensitive).
    pub fn find(&self, name: &str) -> Option<Entry> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Every actor's status.
    pub fn statuses(&self) -> Vec<AgentStatus> {
        self.entries().iter().map(|e| e.status.get()).collect()
    }

    /// Whether the actor named `name` is `failed` now.
    pub fn is_failed(&self, name: &str) -> bool {
        self.find(name)
            .is_some_and(|e| e.status.state() == AgentState::Failed)
    }
}

// ---- core actors -----------------------------------------------------------------------------

/// What `started()` does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Start now (first start, admin restart).
    Now,
    /// Start after the backoff (a crash).
    AfterBackoff(Duration),
    /// Stay idle (failed).
    Idle,
}

/// A core actor's supervision bookkeeping, kept in the actor's struct across restarts.
pub struct CoreSupervision {
    name: &'static str,
    policy: RestartPolicy,
    crashes: Crashes,
    status: StatusCell,
    reporter: Reporter,
    next: Next,
    /// Injected panics still to come (tests, the demo).
    injected: u32,
    announcer: Announcer,
}

impl CoreSupervision {
    pub fn new(name: &'static str, settings: &SupervisorSettings, reporter: Reporter) -> Self {
        CoreSupervision {
            name,
            policy: RestartPolicy::from_settings(settings),
            crashes: Crashes::default(),
            status: StatusCell::new(name, ActorKind::Core),
            reporter,
            next: Next::Now,
            injected: 0,
            announcer: Announcer::default(),
        }
    }

    /// The shared status (for the registry).
    pub fn status(&self) -> StatusCell {
        self.status.clone()
    }

    /// Where failures and losses are reported.
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// The actor's name in `/agents`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the actor is failed (it answers nothing until an admin restart).
    pub fn is_failed(&self) -> bool {
        self.next == Next::Idle
    }

    /// The actor's own figures, shown as `stats` in `/agents`.
    pub fn set_stats(&self, stats: serde_json::Value) {
        self.status.update(|s| s.stats = stats);
    }
}

/// A core actor: an actix actor whose code runs under [`guard`].
pub trait Core: Actor<Context = Context<Self>> + Supervised {
    /// The bookkeeping (kept across restarts).
    fn supervision(&mut self) -> &mut CoreSupervision;

    /// Set up timers and subscriptions; called by [`started`] when the actor starts running
    /// (at once, or after the backoff that follows a crash).
    fn start(&mut self, ctx: &mut Context<Self>);

    /// The actor's own figures for `/agents` (cheap; called after start and on request).
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The shared status (for the registry; take it before starting the actor).
    fn status_cell(&mut self) -> StatusCell {
        self.supervision().status()
    }
}

/// A handler's answer when its body may have crashed: `None` drops the reply, so the caller
/// sees `MailboxError::Closed`, as if the actor had gone (it is restarting).
pub struct Guarded<R>(pub Option<R>);

impl<A, M, R> MessageResponse<A, M> for Guarded<R>
where
    A: Actor,
    M: Message,
    R: MessageResponse<A, M>,
{
    fn handle(self, ctx: &mut A::Context, tx: Option<OneshotSender<M::Result>>) {
        if let Some(r) = self.0 {
            r.handle(ctx, tx);
        }
    }
}

/// Run `f` (a handler body, a timer's work, the continuation of a spawned future) with panics
/// caught. A panic is a crash: the actor stops and its `Supervisor` restarts it under the
/// policy. A failed actor runs nothing (`None`).
pub fn guard<A: Core, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    f: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Guarded<R> {
    if act.supervision().is_failed() {
        return Guarded(None);
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(act, ctx))) {
        Ok(r) => Guarded(Some(r)),
        Err(panic) => {
            crashed(act, ctx, panic_message(&*panic));
            Guarded(None)
        }
    }
}

/// `fut` spawned in the actor's context with panics caught, then `then` run under [`guard`].
/// A panic in either is a crash.
pub fn guard_fut<A, F, T>(
    act: &mut A,
    ctx: &mut Context<A>,
    fut: F,
    then: impl FnOnce(&mut A, &mut Context<A>, T) + 'static,
) where
    A: Core,
    F: std::future::Future<Output = T> + 'static,
    T: 'static,
{
    let caught = AssertUnwindSafe(fut).catch_unwind();
    ctx.spawn(
        caught
            .into_actor(act)
            .map(move |outcome, act, ctx| match outcome {
                Ok(value) => {
                    guard(act, ctx, move |a, c| then(a, c, value));
                }
                Err(panic) => crashed(act, ctx, panic_message(&*panic)),
            }),
    );
}

/// `ctx.run_interval` with the work under [`guard`].
pub fn guard_interval<A: Core>(
    ctx: &mut Context<A>,
    every: Duration,
    f: impl Fn(&mut A, &mut Context<A>) + 'static,
) {
    ctx.run_interval(every, move |act, ctx| {
        guard(act, ctx, |a, c| f(a, c));
    });
}

/// The crash path: record it, then restart (after the backoff) or give up (`failed`).
fn crashed<A: Core>(act: &mut A, ctx: &mut Context<A>, error: String) {
    let sup = act.supervision();
    let name = sup.name;
    let policy = sup.policy;
    match sup.crashes.record(&policy) {
        Ok(backoff) => {
            sup.next = Next::AfterBackoff(backoff);
            sup.status.update(|s| {
                s.set_state(AgentState::Restarting);
                s.restarts += 1;
                s.last_error = Some(error.clone());
            });
            log::error!("core actor {name} crashed: {error}; restarting in {backoff:?}");
            let restarts = sup.status.get().restarts;
            sup.reporter.publish(
                name,
                Payload::AgentError {
                    agent: name.to_owned(),
                    error,
                    restarts,
                },
            );
        }
        Err(crashes) => {
            sup.next = Next::Idle;
            sup.status.update(|s| {
                s.set_state(AgentState::Failed);
                s.last_error = Some(error.clone());
            });
            let restarts = sup.status.get().restarts;
            log::error!(
                "core actor {name} failed: {crashes} crashes within {} ms (last: {error}); \
                 it answers nothing until an admin restart (POST /api/v1/system/agents/{name}/restart)",
                policy.window.as_millis()
            );
            sup.reporter.publish(
                name,
                Payload::AgentFailed {
                    kind: crate::domain::alert::types::AGENT_FAILED,
                    agent: name.to_owned(),
                    error: error.clone(),
                    restarts,
                    window_ms: policy.window.as_millis() as u64,
                },
            );
            sup.reporter.report(ActorReport::Failed {
                name: name.to_owned(),
                kind: ActorKind::Core,
                error,
                restarts,
                window_ms: policy.window.as_millis() as u64,
            });
        }
    }
    ctx.stop();
}

/// The body of a core actor's `Actor::started`: wait out the backoff (messages queue
/// meanwhile), then [`Core::start`] under [`guard`]; nothing when failed.
pub fn started<A: Core>(act: &mut A, ctx: &mut Context<A>) {
    match act.supervision().next {
        Next::Idle => {}
        Next::Now => run(act, ctx),
        Next::AfterBackoff(wait) => {
            ctx.wait(
                actix_web::rt::time::sleep(wait)
                    .into_actor(act)
                    .map(|(), act, ctx| run(act, ctx)),
            );
        }
    }
}

fn run<A: Core>(act: &mut A, ctx: &mut Context<A>) {
    let sup = act.supervision();
    let was_failed = sup.status.state() == AgentState::Failed;
    sup.next = Next::Now;
    sup.status.update(|s| {
        s.set_state(AgentState::Running);
        s.started_at = Some(Utc::now());
    });
    let restarts = sup.status.get().restarts;
    // A core actor's first start is not news (it always starts); its restarts are.
    if restarts > 0 {
        match sup.announcer.on_start(restarts) {
            Announce::Now => announce(sup, restarts, 0),
            Announce::Later(after) => {
                ctx.run_later(after, |act, _| {
                    let sup = act.supervision();
                    if let Some(merged) = sup.announcer.flush() {
                        let restarts = sup.status.get().restarts;
                        announce(sup, restarts, merged.saturating_sub(1));
                    }
                });
            }
        }
    }
    if was_failed {
        sup.reporter.report(ActorReport::Recovered {
            name: sup.name.to_owned(),
            from: Recovery::Failed,
        });
    }
    guard(act, ctx, |a, c| {
        a.start(c);
        let stats = a.stats();
        a.supervision().set_stats(stats);
        // Injected faults that are still due panic again after each restart (a crash loop).
        let sup = a.supervision();
        if sup.injected > 0 {
            sup.injected -= 1;
            // Deliberate: the fault-injection hook must fail the way the actor's code would.
            panic!("injected fault in {}", sup.name);
        }
    });
}

fn announce(sup: &CoreSupervision, restarts: u32, merged_restarts: u32) {
    sup.reporter.publish(
        sup.name,
        Payload::AgentStarted {
            agent: sup.name.to_owned(),
            restarts,
            merged_restarts,
        },
    );
}

/// The body of a core actor's `Handler<AdminRestart>`: clear the history and restart now.
pub fn admin_restart<A: Core>(act: &mut A, ctx: &mut Context<A>) {
    let sup = act.supervision();
    log::info!(
        "core actor {} restarted by an admin (was {:?})",
        sup.name,
        sup.status.state()
    );
    sup.crashes.clear();
    sup.injected = 0;
    sup.status.update(|s| {
        s.restarts += 1;
        // Failed stays visible until `run` reports the recovery.
        if s.state != AgentState::Failed {
            s.set_state(AgentState::Starting);
        }
    });
    sup.next = Next::Now;
    ctx.stop();
}

/// The body of a core actor's `Handler<InjectPanic>`: panic now, and again after each of the
/// next `times - 1` restarts.
pub fn inject_panic<A: Core>(act: &mut A, ctx: &mut Context<A>, times: u32) -> bool {
    if act.supervision().is_failed() || times == 0 {
        return false;
    }
    log::warn!(
        "core actor {}: {times} panic(s) injected",
        act.supervision().name
    );
    act.supervision().injected = times - 1;
    let name = act.supervision().name;
    guard(act, ctx, |_, _| {
        // Deliberate: the fault-injection hook must fail the way the actor's code would.
        panic!("injected fault in {name}")
    });
    true
}

/// The body of a core actor's `Handler<GetStatus>`.
pub fn status<A: Core>(act: &mut A) -> AgentStatus {
    let stats = if act.supervision().is_failed() {
        None
    } else {
        std::panic::catch_unwind(AssertUnwindSafe(|| act.stats())).ok()
    };
    let sup = act.supervision();
    if let Some(stats) = stats {
        sup.set_stats(stats);
    }
    sup.status.get()
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

/// The handlers every core actor has (status, admin restart, panic injection), written once.
#[macro_export]
#[doc(hidden)]
macro_rules! core_handlers {
    ($actor:ty) => {
        impl ::actix::Handler<$crate::supervision::GetStatus> for $actor {
            type Result = ::actix::MessageResult<$crate::supervision::GetStatus>;

            fn handle(
                &mut self,
                _: $crate::supervision::GetStatus,
                _: &mut Self::Context,
            ) -> Self::Result {
                ::actix::MessageResult($crate::supervision::status(self))
            }
        }

        impl ::actix::Handler<$crate::supervision::AdminRestart> for $actor {
            type Result = ();

            fn handle(&mut self, _: $crate::supervision::AdminRestart, ctx: &mut Self::Context) {
                $crate::supervision::admin_restart(self, ctx)
            }
        }

        impl ::actix::Handler<$crate::supervision::InjectPanic> for $actor {
            type Result = bool;

            fn handle(
                &mut self,
                msg: $crate::supervision::InjectPanic,
                ctx: &mut Self::Context,
            ) -> bool {
                $crate::supervision::inject_panic(self, ctx, msg.times)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: u32) -> RestartPolicy {
        RestartPolicy {
            max_restarts: max,
            window: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(350),
        }
    }

    #[test]
    fn backoff_doubles_per_crash_up_to_the_cap_and_intensity_ends_in_failed() {
        let p = policy(3);
        let mut c = Crashes::default();
        assert_eq!(c.record(&p), Ok(Duration::from_millis(100)));
        assert_eq!(c.record(&p), Ok(Duration::from_millis(200)));
        assert_eq!(c.record(&p), Ok(Duration::from_millis(350)));
        assert_eq!(c.record(&p), Err(4));
        c.clear();
        assert_eq!(c.record(&p), Ok(Duration::from_millis(100)));
    }
}
