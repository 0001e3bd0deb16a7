//! The `Agent` trait: what an agent implements to be started, ticked, fed events, supervised
//! and reported on. See `docs/ADDING_AN_AGENT.md`.
//!
//! An agent is plain state plus async methods. It never sees actix: the harness
//! ([`crate::actors::harness::AgentActor`]) runs one of its jobs at a time (a tick or an event),
//! catches a panic in any of them, and rebuilds the agent from [`Agent::build`] after a backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::actors::alert_manager::AlertManager;
use crate::actors::event_bus::{EventBus, Publish};
use crate::actors::metrics_store::MetricsStore;
use crate::config::Settings;
use crate::db::PoolRegistry;
use crate::domain::event::{Channel, Event, Payload};
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
    /// This process, among instances sharing a database or Redis.
    pub instance_id: Uuid,
}

impl AgentContext {
    /// Publish `data` on its channel, with `source` as the sender.
    pub fn publish(&self, source: &str, data: Payload) {
        self.bus.do_send(Publish(Event::new(source, data)));
    }
}

/// A supervised agent.
pub trait Agent: Sized + Unpin + 'static {
    /// The registry name, e.g. `"Monitor"` (routes match it case-insensitively).
    const NAME: &'static str;

    /// Whether configuration switches the agent on (`<NAME>_AGENT_ENABLED` by default).
    fn enabled(settings: &Settings) -> bool {
        settings.agents.is_enabled(Self::NAME)
    }

    /// How often [`Agent::tick`] runs; `None` for an agent that only reacts to events.
    fn interval(settings: &Settings) -> Option<Duration>;

    /// The channels whose events reach [`Agent::on_event`].
    fn subscriptions() -> &'static [Channel] {
        &[]
    }

    /// Fresh state. Called at start, and again after every crash or admin restart.
    fn build(cx: &AgentContext) -> Result<Self, AgentError>;

    /// Periodic work. An `Err` is counted and shown in the agent's status; it does not restart
    /// the agent. A panic does.
    fn tick(&mut self, cx: &AgentContext) -> impl Future<Output = Result<(), AgentError>>;

    /// React to an event from a subscribed channel.
    fn on_event(&mut self, cx: &AgentContext, event: Arc<Event>) -> impl Future<Output = ()> {
        let _ = (cx, event);
        async {}
    }

    /// The agent's own figures for `/agents`.
    fn stats(&self) -> serde_json::Value;
}
