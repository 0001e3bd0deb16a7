//! The `Agent` trait: what an agent implements to be configured, started, ticked, fed events,
//! sent commands, supervised and reported on. See `docs/ADDING_AN_AGENT.md`.
//!
//! An agent is plain state plus async methods. It never sees actix: the harness
//! ([`crate::actors::harness::AgentActor`]) runs one of its jobs at a time (a tick, an event,
//! a command) under a deadline, catches a panic in any of them, and rebuilds the agent from
//! [`Agent::build`] after a backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::actors::alert_manager::AlertManager;
use crate::actors::event_bus::{EventBus, Publish};
use crate::actors::metrics_store::MetricsStore;
use crate::config::{Section, Settings};
use crate::supervision::ActorRegistry;

use crate::db::PoolRegistry;
use crate::domain::event::{Channel, Event, Payload};
use crate::domain::health::LatestHealth;
use crate::outbound::Breakers;
use crate::redis::RedisHandle;
use crate::store::Store;
use uuid::Uuid;

/// An error an agent reports from `build` or `tick`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(pub String);

impl AgentError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        AgentError(message.into())
    }
}

/// What every agent can reach: settings, the infrastructure actors and the data layer.
#[derive(Clone)]
pub struct AgentContext {
    pub settings: Arc<Settings>,
    pub bus: Addr<EventBus>,
    pub metrics: Addr<MetricsStore>,
    /// Alerts: rule readings, raised alerts, maintenance windows.
    pub alerts: Addr<AlertManager>,
    /// History (Postgres with write-behind, or memory).
    pub store: Store,
    /// Redis, when `REDIS_URL` is set.
    pub redis: Option<RedisHandle>,
    /// Postgres pools to watch (selfheal's own and the host's).
    pub pools: PoolRegistry,
    /// The circuit breakers of outbound calls (one per target).
    pub breakers: Breakers,
    /// Every supervised actor's status.
    pub actors: ActorRegistry,
    /// The latest health verdict (the Monitor writes it).
    pub health: LatestHealth,
    /// This process, among instances sharing a database or Redis.
    pub instance_id: Uuid,
}

impl AgentContext {
    /// Publish `data` on its channel, with `source` as the sender.
    pub fn publish(&self, source: &str, data: Payload) {
        self.bus.do_send(Publish(Event::new(source, data)));
    }
}

/// The command type of an agent that takes none: it has no value, so no command can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCommand {}

/// A supervised agent.
pub trait Agent: Sized + Unpin + 'static {
    /// The registry name, e.g. `"Monitor"` (routes match it case-insensitively). Its switch
    /// is `<NAME>_AGENT_ENABLED` and its job deadline `<NAME>_JOB_TIMEOUT_MS`.
    const NAME: &'static str;

    /// The agent's own settings section (`()` for none): parsed and validated with the rest
    /// of the configuration, listed in `.env.example` and the README table.
    type Settings: Section;

    /// What HTTP handlers (or other code) can ask of the agent through its handle
    /// ([`NoCommand`] for nothing).
    type Command: Send + Unpin + 'static;

    /// The answer to a command.
    type Reply: Send + Unpin + 'static;

    /// How often [`Agent::tick`] runs, from the agent's own settings; `None` for an agent that
    /// only reacts to events and commands.
    fn interval(own: &Self::Settings) -> Option<Duration>;

    /// The channels whose events reach [`Agent::on_event`].
    fn subscriptions() -> &'static [Channel] {
        &[]
    }

    /// Fresh state. Called at start, and again after every crash, stall or admin restart.
    fn build(cx: &AgentContext, own: &Self::Settings) -> Result<Self, AgentError>;

    /// Periodic work. An `Err` is counted and shown in the agent's status; it does not restart
    /// the agent. A panic, or running past the deadline, does.
    fn tick(&mut self, cx: &AgentContext) -> impl Future<Output = Result<(), AgentError>>;

    /// React to an event from a subscribed channel.
    fn on_event(&mut self, cx: &AgentContext, event: Arc<Event>) -> impl Future<Output = ()> {
        let _ = (cx, event);
        async {}
    }

    /// Answer a command (a job like a tick: one at a time, under the same deadline).
    fn on_command(
        &mut self,
        cx: &AgentContext,
        command: Self::Command,
    ) -> impl Future<Output = Self::Reply>;

    /// The agent's own figures for `/agents`.
    fn stats(&self) -> serde_json::Value;
}
