//! `AgentActor<A>`: the actor that runs one [`Agent`] and turns its crashes into restarts.
//!
//! Messages in: [`GetStatus`], [`AdminRestart`], [`StopAgent`], [`InjectPanic`], and
//! [`Deliver`] (events from the bus). Events out: `agent-started`, `agent-stopped`,
//! `agent-error` (a crash that will be restarted), `agent-failed` (restart intensity exceeded).
//!
//! Why this shape: actix's `Supervisor` restarts an actor only when it *stops*; a panic in a
//! handler just kills the actor's task. So the agent's code never runs bare inside a handler:
//! each job (build, tick, event, stats) runs under `catch_unwind`, and a caught panic becomes
//! `ctx.stop()`. The `Supervisor` then calls `restarting()` on this same struct (the address
//! stays valid, queued messages survive), `started()` runs again and rebuilds the agent from
//! [`Agent::build`] after an exponential backoff, so its state is fresh. The restart history
//! lives in this struct, outside the agent, which is how it survives the restart.
//!
//! Restart policy (OTP-style intensity): more than `AGENT_MAX_RESTARTS` crashes within
//! `AGENT_RESTART_WINDOW_MS` and the agent is `failed`: it is not rebuilt, `agent-failed` is
//! published, and only [`AdminRestart`] brings it back. Backoff before the k-th restart in the
//! window: `AGENT_BACKOFF_INITIAL_MS × 2^(k-1)`, capped at `AGENT_BACKOFF_MAX_MS`.
//!
//! One job runs at a time: the agent is moved into the job's future and moved back when it
//! ends, so a slow tick never blocks status queries. Ticks that fall due while one runs are
//! coalesced; events wait in a bounded queue (overflow counted in `dropped_events`).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;

use crate::actors::agent::{Agent, AgentContext, AgentError};
use crate::actors::event_bus::Deliver;
use crate::config::SupervisorSettings;
use crate::domain::agent::{AgentState, AgentStatus};
use crate::domain::event::{Event, Payload};

/// Events queued while a job runs, at most.
const MAX_PENDING_EVENTS: usize = 256;
/// The first tick comes after this or the interval, whichever is shorter.
const FIRST_TICK_MAX: Duration = Duration::from_secs(1);

/// The agent's status.
#[derive(Message, Debug)]
#[rtype(result = "AgentStatus")]
pub struct GetStatus;

/// Rebuild the agent now, clearing `failed` and the restart history.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AdminRestart;

/// Stop the agent for good (shutdown).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopAgent;

/// Fault injection for tests and the demo: the agent's next `times` ticks panic inside the
/// same `catch_unwind` boundary as its own code. Returns false when the agent is not running.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct InjectPanic {
    pub times: u32,
}

/// What `started()` does when the actor (re)starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Build the agent now (first start, admin restart).
    BuildNow,
    /// Build after the backoff (crash).
    BuildAfterBackoff,
    /// Stay idle (stopped or failed).
    Idle,
}

enum Job {
    Tick,
    Event(Arc<Event>),
}

/// The harness actor for agent `A`.
pub struct AgentActor<A: Agent> {
    cx: AgentContext,
    policy: SupervisorSettings,
    agent: Option<A>,
    busy: bool,
    pending_tick: bool,
    pending_events: VecDeque<Arc<Event>>,
    next: Next,
    state: AgentState,
    crashes: VecDeque<Instant>,
    restarts: u32,
    last_error: Option<String>,
    started_at: Option<DateTime<Utc>>,
    last_tick: Option<DateTime<Utc>>,
    ticks: u64,
    tick_errors: u64,
    dropped_events: u64,
    stats: serde_json::Value,
    injected_panics: u32,
}

impl<A: Agent> AgentActor<A> {
    /// A harness for `A`; the agent is built when the actor starts.
    pub fn new(cx: AgentContext) -> Self {
        let policy = cx.settings.supervisor.clone();
        AgentActor {
            cx,
            policy,
            agent: None,
            busy: false,
            pending_tick: false,
            pending_events: VecDeque::new(),
            next: Next::BuildNow,
            state: AgentState::Starting,
            crashes: VecDeque::new(),
            restarts: 0,
            last_error: None,
            started_at: None,
            last_tick: None,
            ticks: 0,
            tick_errors: 0,
            dropped_events: 0,
            stats: serde_json::Value::Null,
            injected_panics: 0,
        }
    }

    fn backoff(&self) -> Duration {
        let k = self.crashes.len().max(1) as u32;
        let ms = self
            .policy
            .backoff_initial_ms
            .saturating_mul(1u64 << (k - 1).min(30))
            .min(self.policy.backoff_max_ms);
        Duration::from_millis(ms)
    }

    fn build(&mut self, ctx: &mut Context<Self>) {
        let cx = self.cx.clone();
        let built = std::panic::catch_unwind(AssertUnwindSafe(|| A::build(&cx)));
        let agent = match built {
            Ok(Ok(agent)) => agent,
            Ok(Err(e)) => return self.crashed(format!("build failed: {e}"), ctx),
            Err(panic) => {
                return self.crashed(format!("build panicked: {}", panic_message(&*panic)), ctx)
            }
        };
        self.snapshot_stats(&agent);
        self.agent = Some(agent);
        self.state = AgentState::Running;
        self.started_at = Some(Utc::now());
        log::info!("agent {} running (restarts: {})", A::NAME, self.restarts);
        self.cx.publish(
            A::NAME,
            Payload::AgentStarted {
                agent: A::NAME.to_owned(),
                restarts: self.restarts,
            },
        );
        if let Some(every) = A::interval(&self.cx.settings) {
            ctx.run_later(every.min(FIRST_TICK_MAX), |act, ctx| {
                act.enqueue(Job::Tick, ctx)
            });
            ctx.run_interval(every, |act, ctx| act.enqueue(Job::Tick, ctx));
        }
    }

    /// The agent's code panicked or failed to build: count it, then restart or give up.
    fn crashed(&mut self, error: String, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let window = Duration::from_millis(self.policy.restart_window_ms);
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.crashes.pop_front();
        }
        self.agent = None;
        self.busy = false;
        self.last_error = Some(error.clone());
        if self.crashes.len() as u32 > self.policy.max_restarts {
            self.state = AgentState::Failed;
            self.next = Next::Idle;
            log::error!(
                "agent {} failed: {} crashes within {} ms (last: {error}); not restarting until an admin restart",
                A::NAME,
                self.crashes.len(),
                self.policy.restart_window_ms
            );
            self.cx.publish(
                A::NAME,
                Payload::AgentFailed {
                    kind: "AGENT_FAILED",
                    agent: A::NAME.to_owned(),
                    error,
                    restarts: self.restarts,
                    window_ms: self.policy.restart_window_ms,
                },
            );
        } else {
            self.state = AgentState::Restarting;
            self.next = Next::BuildAfterBackoff;
            self.restarts += 1;
            log::error!(
                "agent {} crashed: {error}; restarting in {:?}",
                A::NAME,
                self.backoff()
            );
            self.cx.publish(
                A::NAME,
                Payload::AgentError {
                    agent: A::NAME.to_owned(),
                    error,
                    restarts: self.restarts,
                },
            );
        }
        // Stopping cancels the agent's timers and in-flight job; the Supervisor restarts us.
        ctx.stop();
    }

    fn enqueue(&mut self, job: Job, ctx: &mut Context<Self>) {
        if self.busy {
            match job {
                Job::Tick => self.pending_tick = true,
                Job::Event(e) if self.pending_events.len() < MAX_PENDING_EVENTS => {
                    self.pending_events.push_back(e)
                }
                Job::Event(_) => self.dropped_events += 1,
            }
            return;
        }
        let Some(agent) = self.agent.take() else {
            if matches!(job, Job::Event(_)) {
                self.dropped_events += 1;
            }
            return;
        };
        self.run(agent, job, ctx);
    }

    fn run(&mut self, mut agent: A, job: Job, ctx: &mut Context<Self>) {
        self.busy = true;
        let cx = self.cx.clone();
        let is_tick = matches!(job, Job::Tick);
        let inject = is_tick && self.injected_panics > 0;
        if inject {
            self.injected_panics -= 1;
        }
        let work = async move {
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
            };
            (agent, result)
        };
        let guarded = AssertUnwindSafe(work).catch_unwind();
        ctx.spawn(
            guarded
                .into_actor(self)
                .map(move |outcome, act, ctx| act.finished(outcome, is_tick, ctx)),
        );
    }

    fn finished(
        &mut self,
        outcome: Result<(A, Result<(), AgentError>), Box<dyn std::any::Any + Send>>,
        is_tick: bool,
        ctx: &mut Context<Self>,
    ) {
        self.busy = false;
        let (agent, result) = match outcome {
            Ok(done) => done,
            Err(panic) => return self.crashed(panic_message(&*panic), ctx),
        };
        if is_tick {
            self.ticks += 1;
            self.last_tick = Some(Utc::now());
        }
        if let Err(e) = result {
            self.tick_errors += 1;
            log::warn!("agent {} tick failed: {e}", A::NAME);
            self.last_error = Some(e.to_string());
        }
        if !self.snapshot_stats(&agent) {
            return self.crashed("stats() panicked".to_owned(), ctx);
        }
        // Queued work goes first; a due tick after the events that arrived before it.
        if let Some(event) = self.pending_events.pop_front() {
            self.run(agent, Job::Event(event), ctx);
        } else if std::mem::take(&mut self.pending_tick) {
            self.run(agent, Job::Tick, ctx);
        } else {
            self.agent = Some(agent);
        }
    }

    /// Copy the agent's stats; false if `stats()` panicked.
    fn snapshot_stats(&mut self, agent: &A) -> bool {
        match std::panic::catch_unwind(AssertUnwindSafe(|| agent.stats())) {
            Ok(stats) => {
                self.stats = stats;
                true
            }
            Err(_) => false,
        }
    }

    fn status(&self) -> AgentStatus {
        AgentStatus {
            name: A::NAME.to_owned(),
            state: self.state,
            running: self.state == AgentState::Running,
            enabled: true,
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            started_at: self.started_at,
            last_tick: self.last_tick,
            ticks: self.ticks,
            dropped_events: self.dropped_events,
            stats: serde_json::json!({
                "tick_errors": self.tick_errors,
                "agent": self.stats,
            }),
        }
    }
}

impl<A: Agent> Actor for AgentActor<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.next {
            Next::BuildNow => self.build(ctx),
            Next::BuildAfterBackoff => {
                ctx.run_later(self.backoff(), |act, ctx| act.build(ctx));
            }
            Next::Idle => {}
        }
    }
}

impl<A: Agent> Supervised for AgentActor<A> {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The crashed agent is gone with its job; drop whatever was queued for it.
        self.agent = None;
        self.busy = false;
        self.pending_tick = false;
        self.dropped_events += self.pending_events.len() as u64;
        self.pending_events.clear();
    }
}

impl<A: Agent> Handler<GetStatus> for AgentActor<A> {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

impl<A: Agent> Handler<AdminRestart> for AgentActor<A> {
    type Result = ();

    fn handle(&mut self, _: AdminRestart, ctx: &mut Self::Context) {
        log::info!(
            "agent {} restarted by an admin (was {:?})",
            A::NAME,
            self.state
        );
        self.crashes.clear();
        self.injected_panics = 0;
        self.restarts += 1;
        self.state = AgentState::Starting;
        self.next = Next::BuildNow;
        ctx.stop();
    }
}

impl<A: Agent> Handler<StopAgent> for AgentActor<A> {
    type Result = ();

    fn handle(&mut self, _: StopAgent, ctx: &mut Self::Context) {
        if self.state == AgentState::Stopped {
            return;
        }
        self.state = AgentState::Stopped;
        self.next = Next::Idle;
        self.agent = None;
        log::info!("agent {} stopped", A::NAME);
        self.cx.publish(
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
        if self.state != AgentState::Running {
            return false;
        }
        log::warn!("agent {}: {} panic(s) injected", A::NAME, msg.times);
        self.injected_panics = self.injected_panics.saturating_add(msg.times);
        self.enqueue(Job::Tick, ctx);
        true
    }
}

impl<A: Agent> Handler<Deliver> for AgentActor<A> {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.enqueue(Job::Event(msg.0), ctx);
    }
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
