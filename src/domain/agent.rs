//! What supervision reports about an agent or a core actor.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Whether a supervised actor is one of the agents or part of selfheal's own machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A registered agent (Monitor, …), run by the agent harness.
    Agent,
    /// An infrastructure actor: the event bus, the metrics store, the alert manager, the query
    /// collector, the store writer, the system supervisor.
    Core,
}

/// Lifecycle state of a supervised actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Being built for the first time (or after an admin restart).
    Starting,
    /// Built and serving.
    Running,
    /// Crashed; waiting out the backoff before it is built again.
    Restarting,
    /// A job ran past its deadline (`AGENT_JOB_TIMEOUT_MS`); the agent is being restarted.
    Stalled,
    /// Crashed (or stalled) more often than the restart intensity allows; needs an admin
    /// restart.
    Failed,
    /// Stopped on shutdown.
    Stopped,
    /// Switched off by configuration.
    Disabled,
}

/// One actor's status as served by `/api/v1/system/agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub kind: ActorKind,
    pub state: AgentState,
    /// `state == running`, kept for clients of the original.
    pub running: bool,
    pub enabled: bool,
    /// Restarts since start (crashes, stalls and admin restarts).
    pub restarts: u32,
    /// Jobs that ran past their deadline since start.
    pub stalls: u32,
    pub last_error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub last_tick: Option<DateTime<Utc>>,
    pub ticks: u64,
    /// Events handed to the agent's `on_event`.
    pub events_handled: u64,
    /// Events dropped because the agent was busy, restarting or down (events that drive
    /// decisions are kept instead, up to a bound; their loss is alerted).
    pub dropped_events: u64,
    /// The agent's own figures (agents), or the actor's (core).
    pub stats: serde_json::Value,
}

impl AgentStatus {
    /// A status in `state` with nothing happened yet.
    pub fn new(name: &str, kind: ActorKind, state: AgentState) -> Self {
        AgentStatus {
            name: name.to_owned(),
            kind,
            state,
            running: state == AgentState::Running,
            enabled: state != AgentState::Disabled,
            restarts: 0,
            stalls: 0,
            last_error: None,
            started_at: None,
            last_tick: None,
            ticks: 0,
            events_handled: 0,
            dropped_events: 0,
            stats: serde_json::Value::Null,
        }
    }

    /// The status of an agent that configuration switched off.
    pub fn disabled(name: &str) -> Self {
        Self::new(name, ActorKind::Agent, AgentState::Disabled)
    }

    /// Set the state (and `running` with it).
    pub fn set_state(&mut self, state: AgentState) {
        self.state = state;
        self.running = state == AgentState::Running;
    }
}
