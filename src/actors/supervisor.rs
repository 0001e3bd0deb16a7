//! `SystemSupervisor`: owns the agent registry, starts agents in dependency order, stops them
//! in reverse, and answers status and restart requests.
//!
//! Messages in: [`ListAgents`], [`RestartAgent`], [`InjectAgentPanic`], [`StopAll`].
//! Each enabled agent runs in an [`AgentActor`] under actix's `Supervisor`, on an arbiter of
//! its own, so a slow or CPU-heavy agent never holds up the HTTP workers or another agent.
//! Registration ([`Registry::add`]) is the only wiring an agent needs.

use actix::prelude::*;
use futures_util::future::join_all;

use crate::actors::agent::{Agent, AgentContext};
use crate::actors::event_bus::Subscribe;
use crate::actors::harness::{AdminRestart, AgentActor, GetStatus, InjectPanic, StopAgent};
use crate::domain::agent::{AgentState, AgentStatus};

/// Why a request about one agent could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentLookupError {
    #[error("no agent named {0}")]
    NotFound(String),
    #[error("agent {0} is disabled by configuration")]
    Disabled(String),
    #[error("agent {0} has been stopped: the system is shutting down")]
    Stopped(String),
    #[error("agent {0} is not answering")]
    Unavailable(String),
}

/// The typed handles to one running agent.
#[derive(Clone)]
struct Running {
    status: Recipient<GetStatus>,
    restart: Recipient<AdminRestart>,
    stop: Recipient<StopAgent>,
    inject: Recipient<InjectPanic>,
    arbiter: ArbiterHandle,
}

struct Entry {
    name: &'static str,
    running: Option<Running>,
    /// The agent's last status, kept once it has been stopped for good.
    stopped: Option<AgentStatus>,
}

type Starter = Box<dyn FnOnce(&AgentContext) -> Entry>;

/// The agents to start, in start order.
#[derive(Default)]
pub struct Registry {
    starters: Vec<(&'static str, Starter)>,
}

impl Registry {
    /// Register agent `A`; it will be started after every agent registered before it.
    pub fn add<A: Agent>(&mut self) -> &mut Self {
        self.starters.push((A::NAME, Box::new(start_agent::<A>)));
        self
    }

    /// The registered names, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.starters.iter().map(|(n, _)| *n).collect()
    }
}

fn start_agent<A: Agent>(cx: &AgentContext) -> Entry {
    if !(cx.settings.enable_self_healing && A::enabled(&cx.settings)) {
        return Entry {
            name: A::NAME,
            running: None,
            stopped: None,
        };
    }
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
    let harness_cx = cx.clone();
    let addr = Supervisor::start_in_arbiter(&arbiter, move |_| AgentActor::<A>::new(harness_cx));
    let channels = A::subscriptions().to_vec();
    if !channels.is_empty() {
        cx.bus.do_send(Subscribe {
            channels,
            recipient: addr.clone().recipient(),
            subscriber: A::NAME.to_owned(),
        });
    }
    Entry {
        name: A::NAME,
        running: Some(Running {
            status: addr.clone().recipient(),
            restart: addr.clone().recipient(),
            stop: addr.clone().recipient(),
            inject: addr.recipient(),
            arbiter,
        }),
        stopped: None,
    }
}

/// Every agent's status, in start order.
#[derive(Message)]
#[rtype(result = "Vec<AgentStatus>")]
pub struct ListAgents;

/// Admin restart of one agent (name case-insensitive); answers its status afterwards.
#[derive(Message)]
#[rtype(result = "Result<AgentStatus, AgentLookupError>")]
pub struct RestartAgent(pub String);

/// Make the named agent's next `times` ticks panic (tests and the demo's fault route).
#[derive(Message)]
#[rtype(result = "Result<bool, AgentLookupError>")]
pub struct InjectAgentPanic {
    pub name: String,
    pub times: u32,
}

/// Stop every agent, last started first, and their arbiters.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

/// The supervisor actor.
pub struct SystemSupervisor {
    entries: Vec<Entry>,
}

impl SystemSupervisor {
    /// Start every registered agent in order, waiting for each to answer before the next.
    pub async fn start(registry: Registry, cx: AgentContext) -> Self {
        let mut entries = Vec::new();
        for (_, starter) in registry.starters {
            let entry = starter(&cx);
            if let Some(running) = &entry.running {
                // Readiness is the first answer: it comes after the agent's `started()`.
                if running.status.send(GetStatus).await.is_err() {
                    log::error!("agent {} did not answer after start", entry.name);
                }
            }
            entries.push(entry);
        }
        SystemSupervisor { entries }
    }

    fn find(&self, name: &str) -> Result<&Running, AgentLookupError> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| AgentLookupError::NotFound(name.to_owned()))?;
        if entry.stopped.is_some() {
            return Err(AgentLookupError::Stopped(entry.name.to_owned()));
        }
        entry
            .running
            .as_ref()
            .ok_or_else(|| AgentLookupError::Disabled(entry.name.to_owned()))
    }

    /// Names of the agents that were started.
    pub fn started_names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.running.is_some())
            .map(|e| e.name.to_owned())
            .collect()
    }
}

impl Actor for SystemSupervisor {
    type Context = Context<Self>;
}

impl Handler<ListAgents> for SystemSupervisor {
    type Result = ResponseFuture<Vec<AgentStatus>>;

    fn handle(&mut self, _: ListAgents, _: &mut Self::Context) -> Self::Result {
        let asks: Vec<_> = self
            .entries
            .iter()
            .map(|e| {
                (
                    e.name,
                    e.stopped.clone(),
                    e.running.as_ref().map(|r| r.status.clone()),
                )
            })
            .collect();
        Box::pin(async move {
            join_all(asks.into_iter().map(|(name, stopped, status)| async move {
                match (stopped, status) {
                    (Some(last), _) => last,
                    (None, None) => AgentStatus::disabled(name),
                    (None, Some(rec)) => rec.send(GetStatus).await.unwrap_or_else(|_| {
                        let mut s = AgentStatus::disabled(name);
                        s.enabled = true;
                        s.state = AgentState::Failed;
                        s.last_error = Some("agent is not answering".to_owned());
                        s
                    }),
                }
            }))
            .await
        })
    }
}

impl Handler<RestartAgent> for SystemSupervisor {
    type Result = ResponseFuture<Result<AgentStatus, AgentLookupError>>;

    fn handle(&mut self, msg: RestartAgent, _: &mut Self::Context) -> Self::Result {
        let found = self.find(&msg.0).cloned();
        Box::pin(async move {
            let running = found?;
            let unavailable = || AgentLookupError::Unavailable(msg.0.clone());
            running
                .restart
                .send(AdminRestart)
                .await
                .map_err(|_| unavailable())?;
            // Answered after the restart's `started()`: the fresh agent's status.
            running
                .status
                .send(GetStatus)
                .await
                .map_err(|_| unavailable())
        })
    }
}

impl Handler<InjectAgentPanic> for SystemSupervisor {
    type Result = ResponseFuture<Result<bool, AgentLookupError>>;

    fn handle(&mut self, msg: InjectAgentPanic, _: &mut Self::Context) -> Self::Result {
        let found = self.find(&msg.name).cloned();
        Box::pin(async move {
            let running = found?;
            running
                .inject
                .send(InjectPanic { times: msg.times })
                .await
                .map_err(|_| AgentLookupError::Unavailable(msg.name.clone()))
        })
    }
}

impl Handler<StopAll> for SystemSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopAll, _: &mut Self::Context) -> Self::Result {
        let running: Vec<(usize, Running)> = self
            .entries
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, e)| e.stopped.is_none())
            .filter_map(|(i, e)| e.running.clone().map(|r| (i, r)))
            .collect();
        let stop = async move {
            let mut last = Vec::new();
            for (i, r) in running {
                if r.stop.send(StopAgent).await.is_err() {
                    log::warn!("an agent was already gone at shutdown");
                }
                // Kept so that `/agents` still answers `stopped` once the arbiter is gone.
                if let Ok(status) = r.status.send(GetStatus).await {
                    last.push((i, status));
                }
                r.arbiter.stop();
            }
            last
        };
        Box::pin(stop.into_actor(self).map(|last, act, _| {
            for (i, status) in last {
                if let Some(entry) = act.entries.get_mut(i) {
                    entry.stopped = Some(status);
                }
            }
        }))
    }
}
