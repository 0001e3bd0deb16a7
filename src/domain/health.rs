//! Health verdicts: per-component checks and the overall verdict the Monitor computes.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Overall health of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Healthy,
    Degraded,
    Critical,
    /// No verdict yet (the Monitor has not ticked, or is not running).
    Unknown,
}

/// Status of one component check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Healthy,
    /// Over its threshold.
    Degraded,
    /// Far over its threshold.
    Critical,
    /// Unreachable.
    Down,
    /// Not configured, or its rule is switched off.
    Disabled,
}

impl CheckStatus {
    /// Grade `value` against `threshold`, where `critical_at` is the value from which a breach
    /// counts as critical. A threshold of 0 means the rule is off.
    pub fn grade(value: f64, threshold: f64, critical_at: f64) -> CheckStatus {
        if threshold <= 0.0 {
            CheckStatus::Healthy
        } else if value >= critical_at {
            CheckStatus::Critical
        } else if value > threshold {
            CheckStatus::Degraded
        } else {
            CheckStatus::Healthy
        }
    }

    /// Grade a percentage: critical half-way between the threshold and 100 %.
    pub fn grade_percent(value: f64, threshold: f64) -> CheckStatus {
        Self::grade(value, threshold, (threshold + 100.0) / 2.0)
    }

    /// Grade a latency or other open-ended value: critical at twice the threshold.
    pub fn grade_open(value: f64, threshold: f64) -> CheckStatus {
        Self::grade(value, threshold, threshold * 2.0)
    }
}

/// One component's latest check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    /// The measured value that decided the status, if any.
    pub value: Option<f64>,
    /// The threshold it was compared with (absent when the rule is off).
    pub threshold: Option<f64>,
    pub unit: &'static str,
    pub message: String,
    /// Other measurements of the component.
    pub details: serde_json::Value,
    pub timestamp: DateTime<Utc>,
    /// An optional dependency (Redis): the system keeps serving without it, so its being
    /// down or critical makes the overall verdict `degraded`, not `critical`.
    #[serde(skip)]
    pub optional: bool,
}

/// The Monitor's verdict after a tick.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub overall: Overall,
    /// Component name → check, in a stable order.
    pub checks: serde_json::Map<String, serde_json::Value>,
    pub unhealthy_count: usize,
    pub last_update: DateTime<Utc>,
}

impl HealthReport {
    /// The report before the first tick.
    pub fn unknown() -> Self {
        HealthReport {
            overall: Overall::Unknown,
            checks: serde_json::Map::new(),
            unhealthy_count: 0,
            last_update: Utc::now(),
        }
    }

    /// Build from named checks: overall is the worst status among enabled checks.
    pub fn from_checks(checks: Vec<(String, Check)>) -> Self {
        let mut overall = Overall::Healthy;
        let mut unhealthy = 0;
        let mut map = serde_json::Map::new();
        for (name, check) in checks {
            let level = match check.status {
                CheckStatus::Healthy | CheckStatus::Disabled => Overall::Healthy,
                CheckStatus::Degraded => Overall::Degraded,
                CheckStatus::Critical | CheckStatus::Down if check.optional => Overall::Degraded,
                CheckStatus::Critical | CheckStatus::Down => Overall::Critical,
            };
            if level != Overall::Healthy {
                unhealthy += 1;
            }
            overall = overall.max(level);
            map.insert(
                name,
                serde_json::to_value(&check).unwrap_or(serde_json::Value::Null),
            );
        }
        HealthReport {
            overall,
            checks: map,
            unhealthy_count: unhealthy,
            last_update: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_grades_are_degraded_over_and_critical_half_way_to_full() {
        assert_eq!(CheckStatus::grade_percent(80.0, 85.0), CheckStatus::Healthy);
        assert_eq!(
            CheckStatus::grade_percent(86.0, 85.0),
            CheckStatus::Degraded
        );
        assert_eq!(
            CheckStatus::grade_percent(93.0, 85.0),
            CheckStatus::Critical
        );
        assert_eq!(CheckStatus::grade_percent(99.0, 0.0), CheckStatus::Healthy);
    }

    #[test]
    fn overall_is_the_worst_enabled_check() {
        let check = |status| Check {
            status,
            value: None,
            threshold: None,
            unit: "",
            message: String::new(),
            details: serde_json::Value::Null,
            timestamp: Utc::now(),
            optional: false,
        };
        let r = HealthReport::from_checks(vec![
            ("a".into(), check(CheckStatus::Healthy)),
            ("b".into(), check(CheckStatus::Disabled)),
            ("c".into(), check(CheckStatus::Degraded)),
        ]);
        assert_eq!(r.overall, Overall::Degraded);
        assert_eq!(r.unhealthy_count, 1);
        let r = HealthReport::from_checks(vec![
            ("a".into(), check(CheckStatus::Down)),
            ("c".into(), check(CheckStatus::Degraded)),
        ]);
        assert_eq!(r.overall, Overall::Critical);
    }
}

/// The latest report, written by the Monitor and read by the health routes. It lives outside
/// every actor, so that no actor's failure (the metrics store's, say) hides the verdict.
#[derive(Debug, Clone)]
pub struct LatestHealth(Arc<RwLock<HealthReport>>);

impl Default for LatestHealth {
    fn default() -> Self {
        LatestHealth(Arc::new(RwLock::new(HealthReport::unknown())))
    }
}

impl LatestHealth {
    /// Replace the latest report.
    pub fn set(&self, report: HealthReport) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = report;
    }

    /// The latest report (`unknown` before the Monitor's first round).
    pub fn get(&self) -> HealthReport {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
