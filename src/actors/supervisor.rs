//! `SystemSupervisor`: owns the agent registry, starts agents in dependency order and stops
//! them in reverse.
//!
//! Messages in: [`ListAgents`], [`StopAll`], and the core actors' status, admin restart and
//! panic injection. Each enabled agent runs in an [`AgentActor`] under actix's `Supervisor`,
//! on an arbiter of its own, so a slow or CPU-heavy agent never holds up the HTTP workers or
//! another agent. Registration ([`Registry::add`]) is the only wiring an agent needs: its
//! settings section, its switch, its status, its restart and its typed handle come with it.
//!
//! Status and admin restarts do not go through this actor: every supervised actor's status
//! and handles are in the shared [`ActorRegistry`], so `/agents` answers even while this actor
//! restarts.
//!
//! Restart policy: a core actor (see [`crate::supervision`]); a restart keeps the list
//! of running agents.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix::prelude::*;

use crate::actors::agent::{Agent, AgentContext};
use crate::actors::event_bus::Subscribe;
use crate::actors::harness::{AgentActor, StopAgent};
use crate::config::{knobs, Section, SectionSpec, SupervisorSettings};
use crate::domain::agent::{ActorKind, AgentState, AgentStatus};
use crate::supervision::{
    self as sv, ActorRegistry, Control, Core, CoreSupervision, Entry, GetStatus, Guarded, Reporter,
    StatusCell,
};

/// The supervisor's name among the supervised actors.
pub const NAME: &str = "system_supervisor";

/// The typed handles of the running agents: `SelfHeal::agent::<A>()` reaches an agent's
/// commands through them.
#[derive(Clone, Default)]
pub struct AgentHandles {
    map: Arc<RwLock<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl AgentHandles {
    fn insert<A: Agent>(&self, addr: Addr<AgentActor<A>>) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(TypeId::of::<A>(), Box::new(addr));
    }

    /// The running agent `A`'s address (`None` when it is not registered or disabled).
    pub fn get<A: Agent>(&self) -> Option<Addr<AgentActor<A>>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<A>())
            .and_then(|b| b.downcast_ref::<Addr<AgentActor<A>>>())
            .cloned()
    }
}

/// What a registered agent needs to start.
pub struct StartContext<'a> {
    pub cx: &'a AgentContext,
    pub reporter: &'a Reporter,
    pub actors: &'a ActorRegistry,
    pub handles: &'a AgentHandles,
}

/// A running agent's handles, kept for shutdown.
#[derive(Clone)]
struct Running {
    name: &'static str,
    status: Recipient<GetStatus>,
    stop: Recipient<StopAgent>,
    arbiter: ArbiterHandle,
}

type Starter = Box<dyn FnOnce(&StartContext<'_>) -> Option<Running>>;

/// The agents to start, in start order, with their settings sections.
#[derive(Default)]
pub struct Registry {
    starters: Vec<(&'static str, Starter)>,
    sections: Vec<SectionSpec>,
}

fn read_section<A: Agent>(k: &mut knobs::Knobs<'_>) -> Arc<dyn Any + Send + Sync> {
    Arc::new(A::Settings::read(k))
}

fn interval_of<A: Agent>(section: &(dyn Any + Send + Sync)) -> Option<Duration> {
    section.downcast_ref::<A::Settings>().and_then(A::interval)
}

impl Registry {
    /// Register agent `A`; it will be started after every agent registered before it.
    pub fn add<A: Agent>(&mut self) -> &mut Self {
        self.starters.push((A::NAME, Box::new(start_agent::<A>)));
        self.sections.push(SectionSpec {
            agent: A::NAME,
            read: read_section::<A>,
            interval: interval_of::<A>,
        });
        self
    }

    /// The registered names, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.starters.iter().map(|(n, _)| *n).collect()
    }

    /// The registered agents' settings sections, for the configuration.
    pub fn sections(&self) -> Vec<SectionSpec> {
        self.sections.clone()
    }
}

fn start_agent<A: Agent>(sc: &StartContext<'_>) -> Option<Running> {
    let cx = sc.cx;
    let status = StatusCell::new(A::NAME, ActorKind::Agent);
    if !cx.settings.agent_enabled(A::NAME) {
        status.update(|s| *s = AgentStatus::disabled(A::NAME));
        sc.actors.add(Entry {
            name: A::NAME.to_owned(),
            kind: ActorKind::Agent,
            status,
            control: None,
            subscriptions: A::subscriptions(),
        });
        return None;
    }
    // The agent's own section, as parsed with the rest of the configuration (or its
    // defaults, when the settings were read without this agent registered).
    let own: A::Settings = cx
        .settings
        .agent(A::NAME)
        .and_then(|a| a.section::<A::Settings>())
        .cloned()
        .unwrap_or_else(knobs::defaults);
    let arbiter = match Arbiter::try_new() {
        Ok(a) => a.handle(),
        Err(e) => {
            // No thread to spare: run it beside the supervisor rather than not at all.
            log::error!(
                "agent {}: no arbiter thread ({e}); running on the current one",
                A::NAME
            );
            Arbiter::current()
        }
    };
    let (harness_cx, cell, reporter) = (cx.clone(), status.clone(), sc.reporter.clone());
    let addr = Supervisor::start_in_arbiter(&arbiter, move |_| {
        AgentActor::<A>::new(harness_cx, own, cell, reporter)
    });
    let channels = A::subscriptions().to_vec();
    if !channels.is_empty() {
        cx.bus.do_send(Subscribe {
            channels,
            recipient: addr.clone().recipient(),
            subscriber: A::NAME.to_owned(),
        });
    }
    sc.actors.add(Entry {
        name: A::NAME.to_owned(),
        kind: ActorKind::Agent,
        status,
        control: Some(Control {
            status: addr.clone().recipient(),
            restart: addr.clone().recipient(),
            inject: addr.clone().recipient(),
            hang: Some(addr.clone().recipient()),
        }),
        subscriptions: A::subscriptions(),
    });
    sc.handles.insert::<A>(addr.clone());
    Some(Running {
        name: A::NAME,
        status: addr.clone().recipient(),
        stop: addr.recipient(),
        arbiter,
    })
}

/// Every agent's and core actor's status, agents first in start order.
#[derive(Message)]
#[rtype(result = "Vec<AgentStatus>")]
pub struct ListAgents;

/// Stop every agent, last started first, and their arbiters.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

/// The supervisor actor.
pub struct SystemSupervisor {
    running: Vec<Running>,
    actors: ActorRegistry,
    stopped: bool,
    sup: CoreSupervision,
}

impl SystemSupervisor {
    /// Start every registered agent in order, waiting for each to answer before the next.
    pub async fn start(
        registry: Registry,
        cx: AgentContext,
        actors: ActorRegistry,
        handles: AgentHandles,
        reporter: Reporter,
        policy: &SupervisorSettings,
    ) -> Self {
        let mut running = Vec::new();
        let sc = StartContext {
            cx: &cx,
            reporter: &reporter,
            actors: &actors,
            handles: &handles,
        };
        for (name, starter) in registry.starters {
            if let Some(r) = starter(&sc) {
                // Readiness is the first answer: it comes after the agent's `started()`.
                if r.status.send(GetStatus).await.is_err() {
                    log::error!("agent {name} did not answer after start");
                }
                running.push(r);
            }
        }
        SystemSupervisor {
            running,
            actors,
            stopped: false,
            sup: CoreSupervision::new(NAME, policy, reporter),
        }
    }

    /// Names of the agents that were started.
    pub fn started_names(&self) -> Vec<String> {
        self.running.iter().map(|r| r.name.to_owned()).collect()
    }
}

impl Actor for SystemSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        sv::started(self, ctx);
    }
}

impl Supervised for SystemSupervisor {}

impl Core for SystemSupervisor {
    fn supervision(&mut self) -> &mut CoreSupervision {
        &mut self.sup
    }

    fn start(&mut self, _: &mut Context<Self>) {}

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({ "agents_running": self.running.len(), "stopped": self.stopped })
    }
}

crate::core_handlers!(SystemSupervisor);

impl Handler<ListAgents> for SystemSupervisor {
    type Result = Guarded<MessageResult<ListAgents>>;

    fn handle(&mut self, _: ListAgents, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| MessageResult(act.actors.statuses()))
    }
}

impl Handler<StopAll> for SystemSupervisor {
    type Result = Guarded<ResponseActFuture<Self, ()>>;

    fn handle(&mut self, _: StopAll, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| -> ResponseActFuture<Self, ()> {
            act.stopped = true;
            let running: Vec<Running> = act.running.iter().rev().cloned().collect();
            let stop = async move {
                for r in running {
                    if r.stop.send(StopAgent).await.is_err() {
                        log::warn!("agent {} was already gone at shutdown", r.name);
                    }
                    // Its status cell keeps `stopped` once the arbiter is gone.
                    r.arbiter.stop();
                }
            };
            Box::pin(stop.into_actor(act))
        })
    }
}

/// Whether every agent in `statuses` is stopped (tests, shutdown checks).
pub fn all_stopped(statuses: &[AgentStatus]) -> bool {
    statuses
        .iter()
        .filter(|s| s.kind == ActorKind::Agent && s.state != AgentState::Disabled)
        .all(|s| s.state == AgentState::Stopped)
}
