//! `AgentActor<A>`: the actor that runs one [`Agent`], turns its crashes into restarts, and
//! its hung jobs into stalls.
//!
//! Messages in: [`GetStatus`], [`AdminRestart`], [`StopAgent`], [`InjectPanic`],
//! [`InjectHang`], [`Call`] (the agent's typed commands) and [`Deliver`] (events from the
//! bus). Events out: `agent-started` (a burst of restarts is one event), `agent-stopped`,
//! `agent-error` (a crash that will be restarted), `agent-stalled` and `agent-failed`; the
//! last two are also reported to the alert manager directly ([`ActorReport`]).
//!
//! Why this shape: actix's `Supervisor` restarts an actor only when it *stops*; a panic in a
//! handler just kills the actor's task. So the agent's code never runs bare inside a handler:
//! each job (build, tick, event, command, stats) runs under `catch_unwind`, and a caught panic
//! becomes `ctx.stop()`. The `Supervisor` then calls `restarting()` on this same struct (the
//! address stays valid, queued messages survive), `started()` runs again and rebuilds the
//! agent from [`Agent::build`] after an exponential backoff, so its state is fresh. The restart
//! history lives in this struct, outside the agent, which is how it survives the restart.
//!
//! Restart policy (OTP-style intensity, see [`crate::supervision`]): more than
//! `AGENT_MAX_RESTARTS` crashes or stalls within `AGENT_RESTART_WINDOW_MS` and the agent is
//! `failed`: it is not rebuilt, a critical `AGENT_FAILED` alert is raised, and only
//! [`AdminRestart`] brings it back.
//!
//! Watchdog: every job has a deadline (`AGENT_JOB_TIMEOUT_MS`, or `<NAME>_JOB_TIMEOUT_MS`). A
//! job past it makes the agent `stalled`: `AGENT_STALLED` is published and alerted, the job is
//! dropped with the agent, and the agent is rebuilt after the backoff (at least
//! [`STALL_MIN_BACKOFF`]: whatever it waited on is likely still hung). The stall counts toward
//! the restart intensity. The alert resolves when the rebuilt agent finishes a job in time.
//!
//! One job runs at a time: the agent is moved into the job's future and moved back when it
//! ends, so a slow job never blocks status queries. Ticks that fall due while one runs are
//! coalesced. Events of decision channels ([`Channel::reliable`]) wait in a queue that
//! survives restarts and `failed` (up to [`MAX_RELIABLE_EVENTS`]; beyond it they are counted
//! and an `EVENTS_LOST` alert is raised); other events wait in a small queue and are dropped
//! (counted) when it is full or the agent is down.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;

use crate::actors::agent::{Agent, AgentContext, AgentError};
use crate::actors::event_bus::Deliver;
use crate::domain::agent::{ActorKind, AgentState, AgentStatus};
use crate::domain::alert::types;
use crate::domain::event::{Event, Payload};
use crate::supervision::{
    panic_message, ActorReport, AdminRestart, Announce, Announcer, Crashes, GetStatus, InjectHang,
    InjectPanic, Recovery, Reporter, RestartPolicy, StatusCell,
};

/// Best-effort events queued while a job runs, at most.
pub const MAX_PENDING_EVENTS: usize = 256;
/// Decision events kept for the agent (while busy, restarting or failed), at most.
pub const MAX_RELIABLE_EVENTS: usize = 10_000;
/// Commands waiting for the agent, at most (more are refused).
pub const MAX_PENDING_COMMANDS: usize = 64;
/// The first tick comes after this or the interval, whichever is shorter.
const FIRST_TICK_MAX: Duration = Duration::from_secs(1);
/// Least wait before an agent that stalled is rebuilt.
pub const STALL_MIN_BACKOFF: Duration = Duration::from_secs(1);

/// Stop the agent for good (shutdown).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopAgent;

/// Why a command got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The agent is restarting, stalled, failed, stopped or too busy.
    #[error("agent {agent} is not available ({why})")]
    Unavailable { agent: &'static str, why: String },
    /// The agent crashed or stalled while answering.
    #[error("agent {agent} crashed or stalled while answering")]
    Aborted { agent: &'static str },
}

/// A typed command for agent `A`, answered by its [`Agent::on_command`].
pub struct Call<A: Agent>(pub A::Command);

impl<A: Agent> Message for Call<A> {
    type Result = Result<A::Reply, CallError>;
}

/// What `started()` does when the actor (re)starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Build the agent now (first start, admin restart).
    BuildNow,
    /// Build after this backoff (crash or stall).
    BuildAfter(Duration),
    /// Stay idle (stopped or failed).
    Idle,
}

enum Job<A: Agent> {
    Tick,
    Event(Arc<Event>),
    Command(A::Command, tokio::sync::oneshot::Sender<A::Reply>),
}

impl<A: Agent> Job<A> {
    fn kind(&self) -> &'static str {
        match self {
            Job::Tick => "tick",
            Job::Event(_) => "event",
            Job::Command(..) => "command",
        }
    }
}

/// The job in flight.
struct Busy {
    seq: u64,
    kind: &'static str,
    since: Instant,
}

/// The harness actor for agent `A`.
pub struct AgentActor<A: Agent> {
    cx: AgentContext,
    own: A::Settings,
    policy: RestartPolicy,
    deadline: Duration,
    reporter: Reporter,
    status: StatusCell,
    agent: Option<A>,
    busy: Option<Busy>,
    jobs: u64,
    pending_tick: bool,
    events: VecDeque<Arc<Event>>,
    reliable: VecDeque<Arc<Event>>,
    commands: VecDeque<(A::Command, tokio::sync::oneshot::Sender<A::Reply>)>,
    next: Next,
    crashes: Crashes,
    tick_errors: u64,
    lost_reliable: u64,
    agent_stats: serde_json::Value,
    injected_panics: u32,
    injected_hang: Option<Duration>,
    /// A stall was reported and no job has finished in time since.
    stall_open: bool,
    /// `failed` was reported and the agent has not been built since.
    failed_open: bool,
    announcer: Announcer,
}

impl<A: Agent> AgentActor<A> {
    /// A harness for `A`; the agent is built when the actor starts.
    pub fn new(cx: AgentContext, own: A::Settings, status: StatusCell, reporter: Reporter) -> Self {
        let policy = RestartPolicy::from_settings(&cx.settings.supervisor);
        let deadline = Duration::from_millis(
            cx.settings
                .agent(A::NAME)
                .and_then(|a| a.job_timeout_ms)
                .unwrap_or(cx.settings.supervisor.job_timeout_ms)
                .max(1),
        );
        AgentActor {
            cx,
            own,
            policy,
            deadline,
            reporter,
            status,
            agent: None,
            busy: None,
            jobs: 0,
            pending_tick: false,
            events: VecDeque::new(),
            reliable: VecDeque::new(),
            commands: VecDeque::new(),
            next: Next::BuildNow,
            crashes: Crashes::default(),
            tick_errors: 0,
            lost_reliable: 0,
            agent_stats: serde_json::Value::Null,
            injected_panics: 0,
            injected_hang: None,
            stall_open: false,
            failed_open: false,
            announcer: Announcer::default(),
        }
    }

    fn build(&mut self, ctx: &mut Context<Self>) {
        let (cx, own) = (self.cx.clone(), self.own.clone());
        let built = std::panic::catch_unwind(AssertUnwindSafe(|| A::build(&cx, &own)));
        let agent = match built {
            Ok(Ok(agent)) => agent,
            Ok(Err(e)) => return self.crashed(format!("build failed: {e}"), ctx),
            Err(panic) => {
                return self.crashed(format!("build panicked: {}", panic_message(&*panic)), ctx)
            }
        };
        if !self.snapshot_stats(&agent) {
            return self.crashed("stats() panicked".to_owned(), ctx);
        }
        self.agent = Some(agent);
        self.status.update(|s| {
            s.set_state(AgentState::Running);
            s.started_at = Some(Utc::now());
        });
        log::info!(
            "agent {} running (restarts: {})",
            A::NAME,
            self.status.get().restarts
        );
        let restarts = self.status.get().restarts;
        match self.announcer.on_start(restarts) {
            Announce::Now => self.announce(restarts, 0),
            Announce::Later(after) => {
                ctx.run_later(after, |act, _| {
                    if let Some(merged) = act.announcer.flush() {
                        let restarts = act.status.get().restarts;
                        act.announce(restarts, merged.saturating_sub(1));
                    }
                });
            }
        }
        if std::mem::take(&mut self.failed_open) {
            self.reporter.report(ActorReport::Recovered {
                name: A::NAME.to_owned(),
                from: Recovery::Failed,
            });
        }
        // The watchdog. (Not a timer per job: cancelling actix timers is unreliable across a
        // restart, which keeps the cancelled handles while it reuses their numbers.)
        let check = (self.deadline / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
        ctx.run_interval(check, |act, ctx| act.watch(ctx));
        if let Some(every) = A::interval(&self.own) {
            ctx.run_later(every.min(FIRST_TICK_MAX), |act, ctx| {
                act.enqueue(Job::Tick, ctx)
            });
            ctx.run_interval(every, |act, ctx| act.enqueue(Job::Tick, ctx));
        }
        // Decision events that waited through the restart go first.
        self.run_next(ctx);
    }

    /// Publish `agent-started` (standing for `merged` restarts beyond the one it names).
    fn announce(&self, restarts: u32, merged: u32) {
        self.reporter.publish(
            A::NAME,
            Payload::AgentStarted {
                agent: A::NAME.to_owned(),
                restarts,
                merged_restarts: merged,
            },
        );
    }

    /// Count a crash or a stall; rebuild after the backoff (at least `at_least`), or give up.
    /// Answers whether the agent is failed now.
    fn count_crash(&mut self, error: &str, at_least: Duration) -> bool {
        match self.crashes.record(&self.policy) {
            Ok(backoff) => {
                let wait = backoff.max(at_least);
                self.next = Next::BuildAfter(wait);
                self.status.update(|s| s.restarts += 1);
                log::error!("agent {} {error}; restarting in {wait:?}", A::NAME);
                false
            }
            Err(crashes) => {
                self.next = Next::Idle;
                self.failed_open = true;
                self.status.update(|s| s.set_state(AgentState::Failed));
                let restarts = self.status.get().restarts;
                let window_ms = self.policy.window.as_millis() as u64;
                log::error!(
                    "agent {} failed: {crashes} crashes or stalls within {window_ms} ms (last: \
                     {error}); not restarting until an admin restart",
                    A::NAME
                );
                self.reporter.publish(
                    A::NAME,
                    Payload::AgentFailed {
                        kind: types::AGENT_FAILED,
                        agent: A::NAME.to_owned(),
                        error: error.to_owned(),
                        restarts,
                        window_ms,
                    },
                );
                self.reporter.report(ActorReport::Failed {
                    name: A::NAME.to_owned(),
                    kind: ActorKind::Agent,
                    error: error.to_owned(),
                    restarts,
                    window_ms,
                });
                true
            }
        }
    }

    /// The agent's code panicked or failed to build: count it, then restart or give up.
    fn crashed(&mut self, error: String, ctx: &mut Context<Self>) {
        self.agent = None;
        self.busy = None;
        self.status.update(|s| s.last_error = Some(error.clone()));
        if !self.count_crash(&format!("crashed: {error}"), Duration::ZERO) {
            self.status.update(|s| s.set_state(AgentState::Restarting));
            let restarts = self.status.get().restarts;
            self.reporter.publish(
                A::NAME,
                Payload::AgentError {
                    agent: A::NAME.to_owned(),
                    error,
                    restarts,
                },
            );
        }
        // Stopping cancels the agent's timers and in-flight job; the Supervisor restarts us.
        ctx.stop();
    }

    /// The job in flight ran past its deadline.
    fn stalled(&mut self, kind: &'static str, ctx: &mut Context<Self>) {
        let deadline_ms = self.deadline.as_millis() as u64;
        let error = format!("stalled: a {kind} job ran past its {deadline_ms} ms deadline");
        self.busy = None;
        self.agent = None;
        self.stall_open = true;
        self.status.update(|s| {
            s.set_state(AgentState::Stalled);
            s.stalls += 1;
            s.last_error = Some(error.clone());
        });
        let failed = self.count_crash(&error, STALL_MIN_BACKOFF);
        if failed {
            self.status.update(|s| s.set_state(AgentState::Failed));
        }
        let restarts = self.status.get().restarts;
        self.reporter.publish(
            A::NAME,
            Payload::AgentStalled {
                kind: types::AGENT_STALLED,
                agent: A::NAME.to_owned(),
                job: kind,
                deadline_ms,
                restarts,
            },
        );
        self.reporter.report(ActorReport::Stalled {
            name: A::NAME.to_owned(),
            job: kind,
            deadline_ms,
            restarts,
        });
        // Stopping drops the hung job (and the agent inside it).
        ctx.stop();
    }

    /// The watchdog's round: the job in flight past its deadline is a stall.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        if let Some(b) = &self.busy {
            if b.since.elapsed() >= self.deadline {
                let kind = b.kind;
                self.stalled(kind, ctx);
            }
        }
    }

    /// Built: idle, or running a job.
    fn alive(&self) -> bool {
        self.agent.is_some() || self.busy.is_some()
    }

    fn enqueue(&mut self, job: Job<A>, ctx: &mut Context<Self>) {
        let running = self.agent.is_some() && self.busy.is_none();
        match job {
            Job::Tick if running => self.run_next_with(Job::Tick, ctx),
            Job::Tick => {
                if self.alive() {
                    self.pending_tick = true;
                }
            }
            Job::Event(e) if e.channel.reliable() => {
                if self.reliable.len() >= MAX_RELIABLE_EVENTS {
                    self.lost_reliable += 1;
                    self.status.update(|s| s.dropped_events += 1);
                    self.reporter.report(ActorReport::EventsLost {
                        subscriber: A::NAME.to_owned(),
                        channel: e.channel,
                        count: self.lost_reliable,
                        why: format!(
                            "{MAX_RELIABLE_EVENTS} decision events were already waiting for \
                             the agent ({:?})",
                            self.status.state()
                        ),
                    });
                    return;
                }
                self.reliable.push_back(e);
                if running {
                    self.run_next(ctx);
                }
            }
            Job::Event(e) => {
                if !self.alive() || self.events.len() >= MAX_PENDING_EVENTS {
                    self.status.update(|s| s.dropped_events += 1);
                    return;
                }
                self.events.push_back(e);
                if running {
                    self.run_next(ctx);
                }
            }
            Job::Command(command, tx) => {
                if !self.alive() || self.commands.len() >= MAX_PENDING_COMMANDS {
                    // Dropping `tx` answers the caller: unavailable.
                    drop((command, tx));
                    return;
                }
                self.commands.push_back((command, tx));
                if running {
                    self.run_next(ctx);
                }
            }
        }
    }

    /// Start the next queued job, if the agent is idle: commands, then decision events, then
    /// other events, then a due tick.
    fn run_next(&mut self, ctx: &mut Context<Self>) {
        if self.agent.is_none() || self.busy.is_some() {
            return;
        }
        let job = if let Some((c, tx)) = self.commands.pop_front() {
            Job::Command(c, tx)
        } else if let Some(e) = self.reliable.pop_front() {
            Job::Event(e)
        } else if let Some(e) = self.events.pop_front() {
            Job::Event(e)
        } else if std::mem::take(&mut self.pending_tick) {
            Job::Tick
        } else {
            return;
        };
        self.run_next_with(job, ctx);
    }

    fn run_next_with(&mut self, job: Job<A>, ctx: &mut Context<Self>) {
        let Some(mut agent) = self.agent.take() else {
            return;
        };
        self.jobs += 1;
        let seq = self.jobs;
        let kind = job.kind();
        let cx = self.cx.clone();
        let inject = matches!(job, Job::Tick) && self.injected_panics > 0;
        if inject {
            self.injected_panics -= 1;
        }
        let hang = self.injected_hang.take();
        let work = async move {
            if let Some(hang) = hang {
                actix_web::rt::time::sleep(hang).await;
            }
            let result = match job {
                Job::Tick => {
                    if inject {
                        // Deliberate: this is the fault injection hook, and it must fail the
                        // same way the agent's own code would.
                        panic!("injected fault in {}", A::NAME);
                    }
                    agent.tick(&cx).await
                }
                Job::Event(event) => {
                    agent.on_event(&cx, event).await;
                    Ok(())
                }
                Job::Command(command, tx) => {
                    let reply = agent.on_command(&cx, command).await;
                    let _ = tx.send(reply);
                    Ok(())
                }
            };
            (agent, result)
        };
        self.busy = Some(Busy {
            seq,
            kind,
            since: Instant::now(),
        });
        let guarded = AssertUnwindSafe(work).catch_unwind();
        ctx.spawn(
            guarded
                .into_actor(self)
                .map(move |outcome, act, ctx| act.finished(seq, outcome, ctx)),
        );
    }

    fn finished(
        &mut self,
        seq: u64,
        outcome: Result<(A, Result<(), AgentError>), Box<dyn std::any::Any + Send>>,
        ctx: &mut Context<Self>,
    ) {
        if self.busy.as_ref().is_none_or(|b| b.seq != seq) {
            return; // a job the watchdog already gave up on
        }
        let kind = self.busy.take().map_or("tick", |b| b.kind);
        let (agent, result) = match outcome {
            Ok(done) => done,
            Err(panic) => return self.crashed(panic_message(&*panic), ctx),
        };
        if let Err(e) = &result {
            self.tick_errors += 1;
            log::warn!("agent {} {kind} failed: {e}", A::NAME);
        }
        if !self.snapshot_stats(&agent) {
            return self.crashed("stats() panicked".to_owned(), ctx);
        }
        let (stats, tick_errors) = (self.agent_stats.clone(), self.tick_errors);
        self.status.update(|s| {
            match kind {
                "tick" => {
                    s.ticks += 1;
                    s.last_tick = Some(Utc::now());
                }
                "event" => s.events_handled += 1,
                _ => {}
            }
            if let Err(e) = &result {
                s.last_error = Some(e.to_string());
            }
            s.stats = serde_json::json!({ "tick_errors": tick_errors, "agent": stats });
        });
        if std::mem::take(&mut self.stall_open) {
            log::info!("agent {} finished a job in time again", A::NAME);
            self.reporter.report(ActorReport::Recovered {
                name: A::NAME.to_owned(),
                from: Recovery::Stalled,
            });
        }
        self.agent = Some(agent);
        self.run_next(ctx);
    }

    /// Copy the agent's stats; false if `stats()` panicked.
    fn snapshot_stats(&mut self, agent: &A) -> bool {
        match std::panic::catch_unwind(AssertUnwindSafe(|| agent.stats())) {
            Ok(stats) => {
                self.agent_stats = stats;
                let tick_errors = self.tick_errors;
                let stats = self.agent_stats.clone();
                self.status.update(|s| {
                    s.stats = serde_json::json!({ "tick_errors": tick_errors, "agent": stats })
                });
                true
            }
            Err(_) => false,
        }
    }
}

impl<A: Agent> Actor for AgentActor<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.next {
            Next::BuildNow => self.build(ctx),
            Next::BuildAfter(wait) => {
                ctx.run_later(wait, |act, ctx| act.build(ctx));
            }
            Next::Idle => {}
        }
    }
}

impl<A: Agent> Supervised for AgentActor<A> {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The crashed agent is gone with its job. Best-effort events and commands go with it
        // (a command's caller is answered: unavailable); decision events wait for the rebuilt
        // agent.
        self.agent = None;
        self.busy = None;
        self.pending_tick = false;
        let dropped = self.events.len() as u64;
        self.events.clear();
        self.commands.clear();
        self.status.update(|s| s.dropped_events += dropped);
    }
}

impl<A: Agent> Handler<GetStatus> for AgentActor<A> {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status.get())
    }
}

impl<A: Agent> Handler<AdminRestart> for AgentActor<A> {
    type Result = ();

    fn handle(&mut self, _: AdminRestart, ctx: &mut Self::Context) {
        let state = self.status.state();
        log::info!("agent {} restarted by an admin (was {state:?})", A::NAME);
        self.crashes.clear();
        self.injected_panics = 0;
        self.injected_hang = None;
        self.status.update(|s| {
            s.restarts += 1;
            s.set_state(AgentState::Starting);
        });
        self.next = Next::BuildNow;
        ctx.stop();
    }
}

impl<A: Agent> Handler<StopAgent> for AgentActor<A> {
    type Result = ();

    fn handle(&mut self, _: StopAgent, ctx: &mut Self::Context) {
        if self.status.state() == AgentState::Stopped {
            return;
        }
        self.status.update(|s| s.set_state(AgentState::Stopped));
        self.next = Next::Idle;
        self.agent = None;
        log::info!("agent {} stopped", A::NAME);
        self.reporter.publish(
            A::NAME,
            Payload::AgentStopped {
                agent: A::NAME.to_owned(),
            },
        );
        ctx.stop();
    }
}

impl<A: Agent> Handler<InjectPanic> for AgentActor<A> {
    type Result = bool;

    fn handle(&mut self, msg: InjectPanic, ctx: &mut Self::Context) -> bool {
        if self.status.state() != AgentState::Running {
            return false;
        }
        log::warn!("agent {}: {} panic(s) injected", A::NAME, msg.times);
        self.injected_panics = self.injected_panics.saturating_add(msg.times);
        self.enqueue(Job::Tick, ctx);
        true
    }
}

impl<A: Agent> Handler<InjectHang> for AgentActor<A> {
    type Result = bool;

    fn handle(&mut self, msg: InjectHang, _: &mut Self::Context) -> bool {
        if self.status.state() != AgentState::Running {
            return false;
        }
        log::warn!(
            "agent {}: its next job will hang for {} ms",
            A::NAME,
            msg.ms
        );
        self.injected_hang = Some(Duration::from_millis(msg.ms));
        true
    }
}

impl<A: Agent> Handler<Call<A>> for AgentActor<A> {
    type Result = ResponseFuture<Result<A::Reply, CallError>>;

    fn handle(&mut self, msg: Call<A>, ctx: &mut Self::Context) -> Self::Result {
        let state = self.status.state();
        if !self.alive() {
            let why = format!("{state:?}").to_lowercase();
            return Box::pin(async move {
                Err(CallError::Unavailable {
                    agent: A::NAME,
                    why,
                })
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.enqueue(Job::Command(msg.0, tx), ctx);
        Box::pin(async move { rx.await.map_err(|_| CallError::Aborted { agent: A::NAME }) })
    }
}

impl<A: Agent> Handler<Deliver> for AgentActor<A> {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.enqueue(Job::Event(msg.0), ctx);
    }
}

/// A status for `name` while its harness does not answer.
pub fn unanswered(name: &str) -> AgentStatus {
    let mut s = AgentStatus::new(name, ActorKind::Agent, AgentState::Failed);
    s.last_error = Some("agent is not answering".to_owned());
    s
}
