//! Alerts: severities, the type catalogue, what a rule raises ([`AlertSignal`]), its
//! fingerprint, notification channels and actions, and the matchers silences and maintenance
//! windows use.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// An agent crashed past its restart intensity (raised by the AlertManager itself).
    pub const AGENT_FAILED: &str = "AGENT_FAILED";
}

/// What a rule (or an agent) raises. Repeats of one condition share a fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertSignal {
    /// One of [`types`], or another agent's type.
    pub alert_type: String,
    /// `api`, `database`, `redis`, `system`, `process`, `external`, …
    pub component: String,
    /// What identifies the condition besides type and component (route, pool, check name).
    pub labels: BTreeMap<String, String>,
    pub severity: Severity,
    pub message: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// Anything else worth keeping (trace ids, counts, the error text).
    pub metadata: Value,
}

impl AlertSignal {
    /// A signal with no labels and no metadata.
    pub fn new(
        alert_type: &str,
        component: &str,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        AlertSignal {
            alert_type: alert_type.to_owned(),
            component: component.to_owned(),
            labels: BTreeMap::new(),
            severity,
            message: message.into(),
            value: None,
            threshold: None,
            metadata: Value::Object(Default::default()),
        }
    }

    /// Add an identifying label.
    pub fn label(mut self, name: &str, value: impl Into<String>) -> Self {
        self.labels.insert(name.to_owned(), value.into());
        self
    }

    /// Set the measured value and its threshold.
    pub fn measured(mut self, value: f64, threshold: f64) -> Self {
        self.value = Some(value);
        self.threshold = Some(threshold);
        self
    }

    /// Set the metadata.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// [`fingerprint`] of this signal.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.alert_type, &self.component, &self.labels)
    }
}

/// Type + component + labels (sorted), hashed to 16 hex digits with FNV-1a 64: stable across
/// processes and versions, so a restarted instance finds its open alerts and PagerDuty gets
/// the same `dedup_key`.
pub fn fingerprint(alert_type: &str, component: &str, labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(alert_type);
    feed(component);
    for (k, v) in labels {
        feed(k);
        feed(v);
    }
    format!("{h:016x}")
}

/// Where a measurement stands against its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Over the threshold.
    Breach,
    /// Under the threshold by at least the hysteresis margin (or the check succeeded).
    Clear,
    /// Between the two: not a breach, and not yet clear enough to resolve a firing rule.
    Hold,
}

impl Level {
    /// `value` against `threshold` where more is worse; clear only `hysteresis_percent` under
    /// the threshold.
    pub fn of(value: f64, threshold: f64, hysteresis_percent: f64) -> Level {
        if value > threshold {
            Level::Breach
        } else if value <= threshold * (1.0 - hysteresis_percent / 100.0) {
            Level::Clear
        } else {
            Level::Hold
        }
    }

    /// A check that either failed or succeeded.
    pub fn failed(failed: bool) -> Level {
        if failed {
            Level::Breach
        } else {
            Level::Clear
        }
    }
}

/// One rule's reading on one Monitor tick. `scope` groups the rules one probe evaluates
/// (`api`, `host`, `database`, `redis`, `external`): a firing rule of an evaluated scope that
/// is not observed any more (a route without traffic, a removed pool) counts as clear.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub scope: &'static str,
    pub level: Level,
    pub signal: AlertSignal,
}

/// A notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Slack,
    PagerDuty,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [
        ChannelKind::Slack,
        ChannelKind::PagerDuty,
        ChannelKind::Email,
    ];

    /// The name in `ALERT_ROUTES` and `notification_log.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::PagerDuty => "pagerduty",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Why a notification is sent (`notification_log.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyAction {
    /// The alert fired.
    Trigger,
    /// Still firing and unacknowledged after `ALERT_REPEAT_INTERVAL_MS`, or escalated.
    Repeat,
    /// Acknowledged here.
    Acknowledge,
    /// Resolved (by hand, or because the condition cleared).
    Resolve,
}

impl NotifyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyAction::Trigger => "trigger",
            NotifyAction::Repeat => "repeat",
            NotifyAction::Acknowledge => "acknowledge",
            NotifyAction::Resolve => "resolve",
        }
    }
}

/// Which channels each severity goes to (`ALERT_ROUTES`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityRoutes(pub [Vec<ChannelKind>; 5]);

impl SeverityRoutes {
    /// The original's routing, with email wherever it is configured: critical → Slack,
    /// PagerDuty and email; high → Slack and email; medium, low, info → email.
    pub const DEFAULT: &'static str =
        "critical=slack+pagerduty+email,high=slack+email,medium=email,low=email,info=email";

    /// Parse `severity=channel+channel,…`; `none` (or nothing) for no channel. Severities not
    /// named go nowhere.
    pub fn parse(s: &str) -> Result<SeverityRoutes, String> {
        let mut routes: [Vec<ChannelKind>; 5] = Default::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (sev, channels) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected severity=channel+channel"))?;
            let sev = Severity::parse(sev.trim())
                .ok_or_else(|| format!("`{}`: not a severity", sev.trim()))?;
            let list = &mut routes[sev.rank()];
            for c in channels.split('+').map(str::trim) {
                if c.is_empty() || c == "none" {
                    continue;
                }
                let c = ChannelKind::parse(c).ok_or_else(|| {
                    format!("`{c}`: not a channel (slack, pagerduty, email or none)")
                })?;
                if !list.contains(&c) {
                    list.push(c);
                }
            }
        }
        Ok(SeverityRoutes(routes))
    }

    /// The channels `severity` goes to.
    pub fn channels(&self, severity: Severity) -> &[ChannelKind] {
        &self.0[severity.rank()]
    }
}

/// One condition of a silence or maintenance window: `field` is `type`, `component`,
/// `severity` or `label:<name>`; `value` matches exactly, or as a prefix when it ends in `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub field: String,
    pub value: String,
}

impl Matcher {
    /// Whether the field name is one a matcher can use.
    pub fn validate(&self) -> Result<(), String> {
        let ok = matches!(self.field.as_str(), "type" | "component" | "severity")
            || self
                .field
                .strip_prefix("label:")
                .is_some_and(|l| !l.is_empty());
        if !ok {
            return Err(format!(
                "matcher field `{}`: expected type, component, severity or label:<name>",
                self.field
            ));
        }
        if self.value.is_empty() {
            return Err(format!("matcher `{}`: empty value", self.field));
        }
        Ok(())
    }

    /// Whether an alert with these attributes matches.
    pub fn matches(
        &self,
        alert_type: &str,
        component: &str,
        severity: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        let actual = match self.field.as_str() {
            "type" => Some(alert_type),
            "component" => Some(component),
            "severity" => Some(severity),
            f => f
                .strip_prefix("label:")
                .and_then(|l| labels.get(l).map(String::as_str)),
        };
        let Some(actual) = actual else {
            return false;
        };
        match self.value.strip_suffix('*') {
            Some(prefix) => actual.starts_with(prefix),
            None => actual == self.value,
        }
    }
}

/// Whether every matcher matches (an empty list matches everything).
pub fn all_match(
    matchers: &[Matcher],
    alert_type: &str,
    component: &str,
    severity: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(alert_type, component, severity, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_type_component_and_labels_only() {
        let a = AlertSignal::new(types::API_SLOW, "api", Severity::High, "x")
            .label("route", "/a")
            .measured(900.0, 500.0);
        let mut b = a.clone();
        b.severity = Severity::Critical;
        b.message = "y".into();
        b.value = Some(2000.0);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = a.clone().label("route", "/b");
        assert_ne!(a.fingerprint(), c.fingerprint());
        // No ambiguity from concatenation.
        let d = AlertSignal::new("API_SLO", "Wapi", Severity::High, "x").label("route", "/a");
        assert_ne!(a.fingerprint(), d.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
    }

    #[test]
    fn levels_have_a_hysteresis_band() {
        assert_eq!(Level::of(501.0, 500.0, 10.0), Level::Breach);
        assert_eq!(Level::of(500.0, 500.0, 10.0), Level::Hold);
        assert_eq!(Level::of(451.0, 500.0, 10.0), Level::Hold);
        assert_eq!(Level::of(450.0, 500.0, 10.0), Level::Clear);
        assert_eq!(Level::of(500.0, 500.0, 0.0), Level::Clear);
    }

    #[test]
    fn severities_follow_the_ratio_and_percent_headroom() {
        assert_eq!(Severity::from_ratio(201.0, 100.0), Severity::Critical);
        assert_eq!(Severity::from_ratio(160.0, 100.0), Severity::High);
        assert_eq!(Severity::from_ratio(101.0, 100.0), Severity::Medium);
        assert_eq!(Severity::from_percent(82.0, 80.0), Severity::Medium);
        assert_eq!(Severity::from_percent(85.0, 80.0), Severity::High);
        assert_eq!(Severity::from_percent(90.0, 80.0), Severity::Critical);
    }

    #[test]
    fn routes_parse_and_reject_unknown_names() {
        let r = SeverityRoutes::parse(SeverityRoutes::DEFAULT).unwrap();
        assert_eq!(
            r.channels(Severity::Critical),
            &[
                ChannelKind::Slack,
                ChannelKind::PagerDuty,
                ChannelKind::Email
            ]
        );
        assert_eq!(
            r.channels(Severity::High),
            &[ChannelKind::Slack, ChannelKind::Email]
        );
        let r = SeverityRoutes::parse("critical=pagerduty,info=none").unwrap();
        assert!(r.channels(Severity::High).is_empty());
        assert!(SeverityRoutes::parse("urgent=slack").is_err());
        assert!(SeverityRoutes::parse("high=sms").is_err());
        assert!(SeverityRoutes::parse("high").is_err());
    }

    #[test]
    fn matchers_match_exactly_or_by_prefix() {
        let labels: BTreeMap<String, String> =
            [("route".to_owned(), "/demo/slow".to_owned())].into();
        let m = |f: &str, v: &str| Matcher {
            field: f.into(),
            value: v.into(),
        };
        assert!(m("type", "API_SLOW").matches("API_SLOW", "api", "high", &labels));
        assert!(m("type", "API_*").matches("API_SLOW", "api", "high", &labels));
        assert!(!m("type", "API").matches("API_SLOW", "api", "high", &labels));
        assert!(m("label:route", "/demo/*").matches("API_SLOW", "api", "high", &labels));
        assert!(!m("label:pool", "x").matches("API_SLOW", "api", "high", &labels));
        assert!(all_match(&[], "A", "b", "low", &labels));
        assert!(m("label:", "x").validate().is_err());
        assert!(m("host", "x").validate().is_err());
        assert!(m("type", "").validate().is_err());
    }
}
