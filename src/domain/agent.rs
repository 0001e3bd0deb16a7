//! What the supervisor reports about an agent.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Lifecycle state of a supervised agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Being built for the first time.
    Starting,
    /// Built and ticking.
    Running,
    /// Crashed; waiting out the backoff before it is built again.
    Restarting,
    /// Crashed more often than the restart intensity allows; needs an admin restart.
    Failed,
    /// Stopped on shutdown.
    Stopped,
    /// Switched off by configuration.
    Disabled,
}

/// One agent's status as served by `/api/v1/system/agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub state: AgentState,
    /// `state == running`, kept for clients of the original.
    pub running: bool,
    pub enabled: bool,
    /// Restarts since start (panics and admin restarts).
    pub restarts: u32,
    pub last_error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub last_tick: Option<DateTime<Utc>>,
    pub ticks: u64,
    /// Events dropped because the agent was busy, restarting or down.
    pub dropped_events: u64,
    /// The agent's own figures.
    pub stats: serde_json::Value,
}

impl AgentStatus {
    /// The status of an agent that configuration switched off.
    pub fn disabled(name: &str) -> Self {
        AgentStatus {
            name: name.to_owned(),
            state: AgentState::Disabled,
            running: false,
            enabled: false,
            restarts: 0,
            last_error: None,
            started_at: None,
            last_tick: None,
            ticks: 0,
            dropped_events: 0,
            stats: serde_json::Value::Null,
        }
    }
}
