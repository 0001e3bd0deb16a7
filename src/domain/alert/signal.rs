//! What a rule raises ([`AlertSignal`]), its [`fingerprint`], and where a measurement stands
//! against its rule ([`Level`], [`Observation`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Severity;

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
    /// Breaching ticks before this rule fires, when it needs more than `ALERT_PENDING_TICKS`
    /// (host CPU: a compile must not page anyone).
    pub pending_ticks: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::super::types;
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
}
