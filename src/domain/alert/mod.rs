//! Alerts: the typed [`Alert`] (with [`AlertId`], [`AlertState`] and [`Severity`]), the type
//! catalogue, what a rule raises ([`signal`]), and where alerts go ([`routing`]). The stored
//! row (`store::AlertRow`) is a separate type; the store converts between the two.

mod routing;
mod signal;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

pub use routing::{all_match, ChannelKind, Matcher, NotifyAction, SeverityRoutes};
pub use signal::{fingerprint, AlertSignal, Level, Observation};

/// The original's severities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }

    /// Parse a wire name (exact, lower case).
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Sort rank: 0 for critical … 4 for info.
    pub fn rank(self) -> usize {
        self as usize
    }

    /// The original's `determineSeverity` for a measured value against its threshold: over
    /// twice the threshold is critical, over 1.5× high, over it medium, else low.
    pub fn from_ratio(value: f64, threshold: f64) -> Severity {
        if threshold <= 0.0 || !value.is_finite() {
            return Severity::Low;
        }
        let ratio = value / threshold;
        if ratio > 2.0 {
            Severity::Critical
        } else if ratio > 1.5 {
            Severity::High
        } else if ratio > 1.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// For a percentage: critical from half-way between the threshold and 100 %, high from a
    /// quarter of the way, medium over the threshold (a ratio of 2 is unreachable for 80 %).
    pub fn from_percent(value: f64, threshold: f64) -> Severity {
        if threshold <= 0.0 || threshold >= 100.0 {
            return Severity::from_ratio(value, threshold);
        }
        let headroom = 100.0 - threshold;
        if value >= threshold + headroom / 2.0 {
            Severity::Critical
        } else if value >= threshold + headroom / 4.0 {
            Severity::High
        } else if value > threshold {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The alert types raised here (the original's catalogue, and `AGENT_FAILED`).
pub mod types {
    pub const API_SLOW: &str = "API_SLOW";
    pub const API_ERROR_RATE: &str = "API_ERROR_RATE";
    pub const DB_SLOW: &str = "DB_SLOW";
    pub const DB_POOL_EXHAUSTED: &str = "DB_POOL_EXHAUSTED";
    pub const DB_CONNECTION_ERROR: &str = "DB_CONNECTION_ERROR";
    pub const MEMORY_HIGH: &str = "MEMORY_HIGH";
    pub const CPU_HIGH: &str = "CPU_HIGH";
    pub const DISK_HIGH: &str = "DISK_HIGH";
    pub const REDIS_SLOW: &str = "REDIS_SLOW";
    pub const REDIS_MEMORY_HIGH: &str = "REDIS_MEMORY_HIGH";
    pub const REDIS_DOWN: &str = "REDIS_DOWN";
    pub const EXTERNAL_API_DOWN: &str = "EXTERNAL_API_DOWN";
    /// An agent or core actor crashed past its restart intensity (raised by the AlertManager
    /// itself).
    pub const AGENT_FAILED: &str = "AGENT_FAILED";
    /// An agent's job ran past its deadline (`AGENT_JOB_TIMEOUT_MS`); it was restarted.
    pub const AGENT_STALLED: &str = "AGENT_STALLED";
    /// Events that drive decisions (alerts, failures, diagnoses, repairs) could not be
    /// delivered to a subscriber.
    pub const EVENTS_LOST: &str = "EVENTS_LOST";
    /// The metrics store refused samples of new series: it is at `METRICS_MAX_SERIES`.
    pub const METRICS_CARDINALITY: &str = "METRICS_CARDINALITY";
}

/// An alert's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub Uuid);

impl AlertId {
    /// A fresh random id.
    pub fn new() -> Self {
        AlertId(Uuid::new_v4())
    }

    /// Parse a UUID in any of its usual spellings.
    pub fn parse(s: &str) -> Option<AlertId> {
        Uuid::parse_str(s).ok().map(AlertId)
    }
}

impl Default for AlertId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an alert is in its life: `firing` → `acknowledged` → `resolved` (or straight from
/// `firing` to `resolved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Acknowledged,
    Resolved,
}

impl AlertState {
    /// Every state, in life order.
    pub const ALL: [AlertState; 3] = [
        AlertState::Firing,
        AlertState::Acknowledged,
        AlertState::Resolved,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    /// Parse a wire name (exact, lower case).
    pub fn parse(s: &str) -> Option<AlertState> {
        AlertState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert: a condition (type + component + identifying labels, hashed into the
/// fingerprint) from the moment it fires until it is resolved. Repeats of the condition raise
/// `occurrences` and `last_seen`; they never make a new alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: AlertId,
    pub alert_type: String,
    pub component: String,
    pub message: String,
    pub severity: Severity,
    /// The rule's threshold, when it has one.
    pub threshold: Option<f64>,
    /// The measured value that fired (or last repeated) it.
    pub value: Option<f64>,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// Anything else worth keeping (counts, the error text, the rule's scope).
    pub metadata: Value,
    pub state: AlertState,
    pub occurrences: u32,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub ack_comment: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    /// Resolved because its condition cleared (not by hand).
    pub auto_resolved: bool,
    /// A silence or maintenance window covers it now: recorded, not notified.
    pub silenced: bool,
    /// The channels told it fired: acknowledge and resolve go to them.
    pub notified_channels: Vec<ChannelKind>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub last_notified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The metadata key under which stored rows and the JSON view keep `notified_channels`.
pub const NOTIFIED_CHANNELS: &str = "notified_channels";

impl Alert {
    /// A new firing alert for `signal` (a fresh id), first seen `now`.
    pub fn firing(signal: AlertSignal, now: DateTime<Utc>) -> Alert {
        Alert {
            id: AlertId::new(),
            fingerprint: signal.fingerprint(),
            alert_type: signal.alert_type,
            component: signal.component,
            message: signal.message,
            severity: signal.severity,
            threshold: signal.threshold,
            value: signal.value,
            labels: signal.labels,
            metadata: signal.metadata,
            state: AlertState::Firing,
            occurrences: 1,
            acknowledged_by: None,
            acknowledged_at: None,
            ack_comment: None,
            resolved_by: None,
            resolved_at: None,
            resolution: None,
            auto_resolved: false,
            silenced: false,
            notified_channels: Vec::new(),
            first_seen: now,
            last_seen: now,
            last_notified_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Not resolved yet.
    pub fn is_open(&self) -> bool {
        self.state != AlertState::Resolved
    }

    /// Acknowledged by `by` (was firing).
    pub fn acknowledge(&mut self, by: &str, comment: Option<String>, now: DateTime<Utc>) {
        self.state = AlertState::Acknowledged;
        self.acknowledged_by = Some(by.to_owned());
        self.acknowledged_at = Some(now);
        self.ack_comment = comment;
        self.updated_at = now;
    }

    /// Resolved by `by`; `auto` when its condition cleared.
    pub fn resolve(&mut self, by: &str, why: Option<String>, auto: bool, now: DateTime<Utc>) {
        self.state = AlertState::Resolved;
        self.auto_resolved = auto;
        self.resolved_by = Some(by.to_owned());
        self.resolved_at = Some(now);
        self.resolution = why;
        self.updated_at = now;
    }

    /// The metadata as stored and served: with `notified_channels`.
    pub fn metadata_with_channels(&self) -> Value {
        let mut m = match &self.metadata {
            Value::Object(m) => m.clone(),
            Value::Null => serde_json::Map::new(),
            other => {
                let mut m = serde_json::Map::new();
                m.insert("value".to_owned(), other.clone());
                m
            }
        };
        if !self.notified_channels.is_empty() {
            m.insert(
                NOTIFIED_CHANNELS.to_owned(),
                Value::Array(
                    self.notified_channels
                        .iter()
                        .map(|c| Value::String(c.as_str().to_owned()))
                        .collect(),
                ),
            );
        }
        Value::Object(m)
    }
}

/// The JSON every route and event shows of an alert (the original's field names: `type`,
/// `value`, `threshold`; `acknowledged` and `resolved` as flags).
impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            id: AlertId,
            #[serde(rename = "type")]
            alert_type: &'a str,
            component: &'a str,
            message: &'a str,
            severity: Severity,
            threshold: Option<f64>,
            value: Option<f64>,
            fingerprint: &'a str,
            labels: &'a BTreeMap<String, String>,
            metadata: Value,
            state: AlertState,
            occurrences: u32,
            acknowledged: bool,
            acknowledged_by: Option<&'a str>,
            acknowledged_at: Option<DateTime<Utc>>,
            ack_comment: Option<&'a str>,
            resolved: bool,
            resolved_by: Option<&'a str>,
            resolved_at: Option<DateTime<Utc>>,
            resolution: Option<&'a str>,
            auto_resolved: bool,
            silenced: bool,
            first_seen: DateTime<Utc>,
            last_seen: DateTime<Utc>,
            last_notified_at: Option<DateTime<Utc>>,
            created_at: DateTime<Utc>,
            updated_at: DateTime<Utc>,
        }
        View {
            id: self.id,
            alert_type: &self.alert_type,
            component: &self.component,
            message: &self.message,
            severity: self.severity,
            threshold: self.threshold,
            value: self.value,
            fingerprint: &self.fingerprint,
            labels: &self.labels,
            metadata: self.metadata_with_channels(),
            state: self.state,
            occurrences: self.occurrences,
            acknowledged: self.acknowledged_at.is_some(),
            acknowledged_by: self.acknowledged_by.as_deref(),
            acknowledged_at: self.acknowledged_at,
            ack_comment: self.ack_comment.as_deref(),
            resolved: self.state == AlertState::Resolved,
            resolved_by: self.resolved_by.as_deref(),
            resolved_at: self.resolved_at,
            resolution: self.resolution.as_deref(),
            auto_resolved: self.auto_resolved,
            silenced: self.silenced,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_notified_at: self.last_notified_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_the_ratio_and_percent_headroom() {
        assert_eq!(Severity::from_ratio(201.0, 100.0), Severity::Critical);
        assert_eq!(Severity::from_ratio(160.0, 100.0), Severity::High);
        assert_eq!(Severity::from_ratio(101.0, 100.0), Severity::Medium);
        assert_eq!(Severity::from_percent(82.0, 80.0), Severity::Medium);
        assert_eq!(Severity::from_percent(85.0, 80.0), Severity::High);
        assert_eq!(Severity::from_percent(90.0, 80.0), Severity::Critical);
    }
}
