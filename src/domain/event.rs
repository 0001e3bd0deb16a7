//! Events: a typed payload inside the original's envelope (`id`, `channel`, `timestamp`,
//! `source`, `data`). The channel is derived from the payload, so a payload cannot be
//! published on the wrong channel.
//!
//! Channels whose events drive decisions ([`Channel::reliable`]: alerts, failures, stalls,
//! and the diagnosis and repair channels) are delivered without loss, or their loss is counted
//! and alerted; the others (metrics, health, lifecycle notes) are best effort: a subscriber
//! that cannot keep up misses some, and the drop is counted.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::alert::Alert;
use super::health::Overall;

/// The original's channel names, plus `agent-failed` and `agent-stalled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Alert,
    Metric,
    HealthCheck,
    Diagnosis,
    Evidence,
    RepairRequest,
    RepairComplete,
    Rollback,
    PatternLearned,
    PlaybookUpdate,
    Prediction,
    ProactiveAction,
    ThreatDetected,
    Mitigation,
    Optimization,
    PerformanceReport,
    AgentStarted,
    AgentStopped,
    AgentError,
    AgentFailed,
    AgentStalled,
    SystemStatus,
}

impl Channel {
    /// Every channel, in catalogue order.
    pub const ALL: [Channel; 22] = [
        Channel::Alert,
        Channel::Metric,
        Channel::HealthCheck,
        Channel::Diagnosis,
        Channel::Evidence,
        Channel::RepairRequest,
        Channel::RepairComplete,
        Channel::Rollback,
        Channel::PatternLearned,
        Channel::PlaybookUpdate,
        Channel::Prediction,
        Channel::ProactiveAction,
        Channel::ThreatDetected,
        Channel::Mitigation,
        Channel::Optimization,
        Channel::PerformanceReport,
        Channel::AgentStarted,
        Channel::AgentStopped,
        Channel::AgentError,
        Channel::AgentFailed,
        Channel::AgentStalled,
        Channel::SystemStatus,
    ];

    /// The wire name, e.g. `agent-started`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Alert => "alert",
            Channel::Metric => "metric",
            Channel::HealthCheck => "health-check",
            Channel::Diagnosis => "diagnosis",
            Channel::Evidence => "evidence",
            Channel::RepairRequest => "repair-request",
            Channel::RepairComplete => "repair-complete",
            Channel::Rollback => "rollback",
            Channel::PatternLearned => "pattern-learned",
            Channel::PlaybookUpdate => "playbook-update",
            Channel::Prediction => "prediction",
            Channel::ProactiveAction => "proactive-action",
            Channel::ThreatDetected => "threat-detected",
            Channel::Mitigation => "mitigation",
            Channel::Optimization => "optimization",
            Channel::PerformanceReport => "performance-report",
            Channel::AgentStarted => "agent-started",
            Channel::AgentStopped => "agent-stopped",
            Channel::AgentError => "agent-error",
            Channel::AgentFailed => "agent-failed",
            Channel::AgentStalled => "agent-stalled",
            Channel::SystemStatus => "system-status",
        }
    }

    /// Parse a wire name (exact, lower case).
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether the channel's events drive decisions: they are delivered to subscribers without
    /// loss (or the loss is counted and alerted), never dropped because a subscriber is busy.
    pub fn reliable(self) -> bool {
        matches!(
            self,
            Channel::Alert
                | Channel::AgentFailed
                | Channel::AgentStalled
                | Channel::Diagnosis
                | Channel::RepairRequest
                | Channel::RepairComplete
                | Channel::Rollback
                | Channel::ProactiveAction
                | Channel::Mitigation
        )
    }
}

/// What happened. Serialised as the envelope's `data`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Payload {
    /// Requests of one route slower than the tracer's threshold over one interval (channel
    /// `metric`): how many, and the slowest of them.
    SlowRequest {
        #[serde(rename = "type")]
        kind: &'static str,
        /// The slowest request of the interval.
        trace: SlowTrace,
        /// Slow requests of this route in the interval.
        count: u64,
        interval_ms: u64,
        threshold_ms: u64,
    },
    /// Instrumented queries of one fingerprint were slower than `DB_SLOW_QUERY_MS` over one
    /// interval (channel `metric`).
    SlowQuery {
        #[serde(rename = "type")]
        kind: &'static str,
        query: SlowQuery,
    },
    /// The Monitor's overall verdict changed (channel `health-check`).
    HealthChanged { previous: Overall, overall: Overall },
    /// An agent or core actor (re)started (channel `agent-started`). A burst of restarts is
    /// one event: `merged_restarts` counts the restarts it stands for beyond the first.
    AgentStarted {
        agent: String,
        restarts: u32,
        merged_restarts: u32,
    },
    /// An agent was stopped (channel `agent-stopped`).
    AgentStopped { agent: String },
    /// An agent's code panicked; it is being restarted (channel `agent-error`).
    AgentError {
        agent: String,
        error: String,
        restarts: u32,
    },
    /// An agent or core actor exceeded its restart intensity (channel `agent-failed`).
    AgentFailed {
        #[serde(rename = "type")]
        kind: &'static str,
        agent: String,
        error: String,
        restarts: u32,
        window_ms: u64,
    },
    /// An agent's job ran past its deadline; the agent is restarted (channel
    /// `agent-stalled`).
    AgentStalled {
        #[serde(rename = "type")]
        kind: &'static str,
        agent: String,
        /// `tick`, `event` or `command`.
        job: &'static str,
        deadline_ms: u64,
        restarts: u32,
    },
    /// An alert was raised, escalated, acknowledged or resolved (channel `alert`).
    AlertChanged {
        action: &'static str,
        alert: Box<Alert>,
    },
    /// The system started or is stopping (channel `system-status`).
    SystemStatus {
        status: &'static str,
        agents: Vec<String>,
        start_time: DateTime<Utc>,
    },
}

/// The query carried by a slow-query event: one fingerprint's slow executions over one
/// interval, by its slowest.
#[derive(Debug, Clone, Serialize)]
pub struct SlowQuery {
    /// Fingerprint id, 16 hex digits.
    pub id: String,
    /// The normalised statement (constants replaced), when known.
    pub sql: Option<String>,
    /// The slowest execution of the interval.
    pub duration_ms: f64,
    /// Slow executions of this fingerprint in the interval.
    pub count: u64,
    pub threshold_ms: u64,
    /// W3C trace id of the request the query ran in.
    pub trace_id: Option<String>,
    pub error: Option<String>,
}

/// The trace summary carried by a slow-request event.
#[derive(Debug, Clone, Serialize)]
pub struct SlowTrace {
    pub trace_id: String,
    pub method: String,
    /// The matched route pattern, never the raw path.
    pub route: String,
    pub status: u16,
    pub duration_ms: f64,
}

impl Payload {
    /// The channel this payload belongs on.
    pub fn channel(&self) -> Channel {
        match self {
            Payload::SlowRequest { .. } | Payload::SlowQuery { .. } => Channel::Metric,
            Payload::HealthChanged { .. } => Channel::HealthCheck,
            Payload::AlertChanged { .. } => Channel::Alert,
            Payload::AgentStarted { .. } => Channel::AgentStarted,
            Payload::AgentStopped { .. } => Channel::AgentStopped,
            Payload::AgentError { .. } => Channel::AgentError,
            Payload::AgentFailed { .. } => Channel::AgentFailed,
            Payload::AgentStalled { .. } => Channel::AgentStalled,
            Payload::SystemStatus { .. } => Channel::SystemStatus,
        }
    }
}

/// The envelope every subscriber and `/events` sees.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: Uuid,
    pub channel: Channel,
    pub timestamp: DateTime<Utc>,
    pub source: String,
    pub data: Payload,
}

impl Event {
    /// Wrap `data` from `source`, stamped now.
    pub fn new(source: impl Into<String>, data: Payload) -> Self {
        Event {
            id: Uuid::new_v4(),
            channel: data.channel(),
            timestamp: Utc::now(),
            source: source.into(),
            data,
        }
    }
}
