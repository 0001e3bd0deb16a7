//! Where alerts go: notification channels, why a notice is sent, which channels each
//! severity goes to, and the matchers silences and maintenance windows use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Severity;

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
