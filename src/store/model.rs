//! Row types: one struct per table, used for writing, reading and the JSON the routes serve.
//! Field order follows `schema.rs` (generated; see `diesel.toml`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use std::collections::BTreeMap;

use crate::domain::alert::{Alert, AlertId, AlertState, ChannelKind, Severity, NOTIFIED_CHANNELS};

use super::schema::{
    admin_audit_logs, alert_silences, diagnostic_reports, learning_patterns, maintenance_windows,
    notification_log, performance_metrics, predictions, repair_history, security_incidents,
    system_alerts, system_health_metrics,
};

/// Cut `s` to at most `max` characters (varchar limits), on a character boundary.
pub(crate) fn clip(s: &mut String, max: usize) {
    if s.len() > max {
        if let Some((i, _)) = s.char_indices().nth(max) {
            s.truncate(i);
        }
    }
}

fn clip_opt(s: &mut Option<String>, max: usize) {
    if let Some(s) = s.as_mut() {
        clip(s, max);
    }
}

/// `system_alerts`: one row per alert; repeats of one condition update it (same fingerprint).
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = system_alerts, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct AlertRow {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub component: String,
    pub message: String,
    pub severity: String,
    #[serde(rename = "threshold")]
    pub threshold_value: Option<f64>,
    #[serde(rename = "value")]
    pub actual_value: Option<f64>,
    pub fingerprint: String,
    pub labels: Value,
    pub metadata: Value,
    pub state: String,
    pub occurrences: i32,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub ack_comment: Option<String>,
    pub resolved: bool,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub auto_resolved: bool,
    pub silenced: bool,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub last_notified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Alert> for AlertRow {
    fn from(a: &Alert) -> AlertRow {
        AlertRow {
            id: a.id.0,
            alert_type: a.alert_type.clone(),
            component: a.component.clone(),
            message: a.message.clone(),
            severity: a.severity.as_str().to_owned(),
            threshold_value: a.threshold,
            actual_value: a.value,
            fingerprint: a.fingerprint.clone(),
            labels: Value::Object(
                a.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
            metadata: a.metadata_with_channels(),
            state: a.state.as_str().to_owned(),
            occurrences: i32::try_from(a.occurrences).unwrap_or(i32::MAX),
            acknowledged: a.acknowledged_at.is_some(),
            acknowledged_by: a.acknowledged_by.clone(),
            acknowledged_at: a.acknowledged_at,
            ack_comment: a.ack_comment.clone(),
            resolved: a.state == AlertState::Resolved,
            resolved_by: a.resolved_by.clone(),
            resolved_at: a.resolved_at,
            resolution: a.resolution.clone(),
            auto_resolved: a.auto_resolved,
            silenced: a.silenced,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
            last_notified_at: a.last_notified_at,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A stored row whose state or severity is not one this version knows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("alert {id}: unknown {field} {value:?}")]
pub struct UnknownAlertValue {
    pub id: Uuid,
    pub field: &'static str,
    pub value: String,
}

impl TryFrom<AlertRow> for Alert {
    type Error = UnknownAlertValue;

    fn try_from(row: AlertRow) -> Result<Alert, UnknownAlertValue> {
        let unknown = |field, value: &str| UnknownAlertValue {
            id: row.id,
            field,
            value: value.to_owned(),
        };
        let state = AlertState::parse(&row.state).ok_or_else(|| unknown("state", &row.state))?;
        let severity =
            Severity::parse(&row.severity).ok_or_else(|| unknown("severity", &row.severity))?;
        let labels = match &row.labels {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let mut metadata = row.metadata;
        let notified_channels = metadata
            .as_object_mut()
            .and_then(|m| m.remove(NOTIFIED_CHANNELS))
            .and_then(|v| match v {
                Value::Array(list) => Some(
                    list.iter()
                        .filter_map(|c| c.as_str().and_then(ChannelKind::parse))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Alert {
            id: AlertId(row.id),
            alert_type: row.alert_type,
            component: row.component,
            message: row.message,
            severity,
            threshold: row.threshold_value,
            value: row.actual_value,
            fingerprint: row.fingerprint,
            labels,
            metadata,
            state,
            occurrences: u32::try_from(row.occurrences).unwrap_or(0),
            acknowledged_by: row.acknowledged_by,
            acknowledged_at: row.acknowledged_at,
            ack_comment: row.ack_comment,
            resolved_by: row.resolved_by,
            resolved_at: row.resolved_at,
            resolution: row.resolution,
            auto_resolved: row.auto_resolved,
            silenced: row.silenced,
            notified_channels,
            first_seen: row.first_seen,
            last_seen: row.last_seen,
            last_notified_at: row.last_notified_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// `notification_log`: one row per notification attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = notification_log, check_for_backend(diesel::pg::Pg))]
pub struct NotificationRow {
    pub id: Uuid,
    pub alert_id: Uuid,
    pub channel: String,
    pub action: String,
    pub status: String,
    pub attempt: i32,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
}

/// `diagnostic_reports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = diagnostic_reports, check_for_backend(diesel::pg::Pg))]
pub struct DiagnosticRow {
    pub id: Uuid,
    pub alert_id: Option<Uuid>,
    pub issue_type: String,
    pub root_cause: Option<String>,
    pub evidence: Value,
    pub ai_analysis: Option<String>,
    pub ai_model: Option<String>,
    pub mode: String,
    pub confidence_score: Option<f64>,
    pub suggested_fix: Option<String>,
    pub severity: Option<String>,
    pub affected_users: i32,
    pub created_at: DateTime<Utc>,
}

/// `repair_history`: one row per repair, updated as it is verified.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = repair_history, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct RepairRow {
    pub id: Uuid,
    pub diagnostic_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub repair_type: String,
    pub mode: String,
    pub fix_applied: Option<String>,
    pub success: bool,
    pub attempts: i32,
    pub time_to_fix_seconds: Option<f64>,
    pub before_value: Option<f64>,
    pub after_value: Option<f64>,
    pub verification_result: Value,
    pub rollback_plan: Option<String>,
    pub rolled_back: bool,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `learning_patterns`: one row per pattern hash; written whole (absolute counts).
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = learning_patterns, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct PatternRow {
    pub id: Uuid,
    pub pattern_hash: String,
    pub symptoms: Value,
    pub root_cause: Option<String>,
    pub solution: Option<String>,
    pub success_count: i32,
    pub failure_count: i32,
    pub avg_fix_time_seconds: Option<f64>,
    pub auto_fix_enabled: bool,
    pub last_applied_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `predictions`: updated when the outcome is known.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = predictions, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct PredictionRow {
    pub id: Uuid,
    pub prediction_type: String,
    pub predicted_issue: Option<String>,
    pub predicted_time: Option<DateTime<Utc>>,
    pub confidence: Option<f64>,
    pub data_points: Value,
    pub proactive_action: Option<String>,
    pub action_taken: bool,
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `security_incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = security_incidents, check_for_backend(diesel::pg::Pg))]
pub struct SecurityIncidentRow {
    pub id: Uuid,
    pub threat_type: String,
    pub severity: Option<String>,
    pub source_ip: Option<String>,
    pub target_endpoint: Option<String>,
    pub payload: Option<String>,
    pub user_id: Option<String>,
    pub mitigation_action: Option<String>,
    pub blocked: bool,
    pub created_at: DateTime<Utc>,
}

/// `performance_metrics`: findings of the performance analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = performance_metrics, check_for_backend(diesel::pg::Pg))]
pub struct PerformanceRow {
    pub id: Uuid,
    pub metric_type: String,
    pub endpoint: Option<String>,
    pub query_hash: Option<String>,
    pub value_ms: Option<f64>,
    pub percentile_95: Option<f64>,
    pub percentile_99: Option<f64>,
    pub sample_count: Option<i64>,
    pub optimization_applied: Option<String>,
    pub improvement_percent: Option<f64>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// `system_health_metrics`: a one-minute rollup of one series, from one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = system_health_metrics, check_for_backend(diesel::pg::Pg))]
pub struct HealthMetricRow {
    pub id: Uuid,
    pub metric_name: String,
    pub metric_value: f64,
    pub metric_unit: Option<String>,
    pub component: String,
    pub severity: String,
    pub tags: Value,
    pub bucket_start: DateTime<Utc>,
    pub bucket_seconds: i32,
    pub sample_count: i64,
    pub min_value: f64,
    pub max_value: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub instance_id: Uuid,
    pub created_at: DateTime<Utc>,
}

impl HealthMetricRow {
    /// What identifies the rollup (the table's unique key).
    pub fn bucket_key(&self) -> (&str, &Value, DateTime<Utc>, Uuid) {
        (
            &self.metric_name,
            &self.tags,
            self.bucket_start,
            self.instance_id,
        )
    }
}

/// `admin_audit_logs`: one row per admin action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_audit_logs, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub id: Uuid,
    pub actor: String,
    pub action: String,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub details: Value,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `alert_silences`: mutes matching alerts from `starts_at` to `ends_at`. Deleting sets
/// `deleted_at`; the row stays until retention removes it.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = alert_silences, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct SilenceRow {
    pub id: Uuid,
    /// `[{"field": .., "value": ..}]`.
    pub matchers: Value,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted_by: Option<String>,
}

/// `maintenance_windows`: mutes matching alerts every week on `days` between two times of
/// day. Deleting sets `deleted_at`.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Queryable, Selectable, Insertable, AsChangeset,
)]
#[diesel(table_name = maintenance_windows, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct MaintenanceRow {
    pub id: Uuid,
    pub name: String,
    /// `[{"field": .., "value": ..}]`; empty matches every alert.
    pub matchers: Value,
    /// ISO weekdays, 1 = Monday .. 7 = Sunday.
    pub days: Value,
    /// Minutes after midnight, 0..1439.
    pub start_minute: i32,
    /// Minutes after midnight, 0..1440; below `start_minute` the window runs over midnight.
    pub end_minute: i32,
    pub utc_offset_minutes: i32,
    pub created_by: String,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted_by: Option<String>,
}

/// A write to the store. Every write is idempotent (keyed by id, or by its unique key), so a
/// replay after an outage writes each record once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "table", content = "row", rename_all = "snake_case")]
// Records are built once and moved into the queue; boxing the largest would add an allocation
// per alert write to save ~200 bytes per queued record.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// Insert or replace by id.
    Alert(AlertRow),
    /// Insert once.
    Notification(NotificationRow),
    /// Insert once.
    Diagnostic(DiagnosticRow),
    /// Insert or replace by id.
    Repair(RepairRow),
    /// Insert or replace by `pattern_hash`.
    Pattern(PatternRow),
    /// Insert or replace by id.
    Prediction(PredictionRow),
    /// Insert once.
    SecurityIncident(SecurityIncidentRow),
    /// Insert once.
    Performance(PerformanceRow),
    /// Insert once per (name, tags, minute, instance).
    HealthMetric(HealthMetricRow),
    /// Insert once.
    Audit(AuditRow),
    /// Insert or replace by id (a deletion is a write with `deleted_at` set).
    Silence(SilenceRow),
    /// Insert or replace by id (a deletion is a write with `deleted_at` set).
    Maintenance(MaintenanceRow),
}

fn micros(t: &mut DateTime<Utc>) {
    use chrono::SubsecRound;
    *t = t.trunc_subsecs(6);
}

fn micros_opt(t: &mut Option<DateTime<Utc>>) {
    if let Some(t) = t.as_mut() {
        micros(t);
    }
}

impl Record {
    fn round_times(&mut self) {
        match self {
            Record::Alert(r) => {
                micros_opt(&mut r.acknowledged_at);
                micros_opt(&mut r.resolved_at);
                micros_opt(&mut r.last_notified_at);
                micros(&mut r.first_seen);
                micros(&mut r.last_seen);
                micros(&mut r.created_at);
                micros(&mut r.updated_at);
            }
            Record::Notification(r) => micros(&mut r.created_at),
            Record::Diagnostic(r) => micros(&mut r.created_at),
            Record::Repair(r) => micros(&mut r.created_at),
            Record::Pattern(r) => {
                micros_opt(&mut r.last_applied_at);
                micros(&mut r.created_at);
                micros(&mut r.updated_at);
            }
            Record::Prediction(r) => {
                micros_opt(&mut r.predicted_time);
                micros(&mut r.created_at);
            }
            Record::SecurityIncident(r) => micros(&mut r.created_at),
            Record::Performance(r) => micros(&mut r.created_at),
            Record::HealthMetric(r) => {
                micros(&mut r.bucket_start);
                micros(&mut r.created_at);
            }
            Record::Audit(r) => micros(&mut r.created_at),
            Record::Silence(r) => {
                micros(&mut r.starts_at);
                micros(&mut r.ends_at);
                micros(&mut r.created_at);
                micros(&mut r.updated_at);
                micros_opt(&mut r.deleted_at);
            }
            Record::Maintenance(r) => {
                micros(&mut r.created_at);
                micros(&mut r.updated_at);
                micros_opt(&mut r.deleted_at);
            }
        }
    }

    /// The table the record goes to.
    pub fn table(&self) -> &'static str {
        match self {
            Record::Alert(_) => "system_alerts",
            Record::Notification(_) => "notification_log",
            Record::Diagnostic(_) => "diagnostic_reports",
            Record::Repair(_) => "repair_history",
            Record::Pattern(_) => "learning_patterns",
            Record::Prediction(_) => "predictions",
            Record::SecurityIncident(_) => "security_incidents",
            Record::Performance(_) => "performance_metrics",
            Record::HealthMetric(_) => "system_health_metrics",
            Record::Audit(_) => "admin_audit_logs",
            Record::Silence(_) => "alert_silences",
            Record::Maintenance(_) => "maintenance_windows",
        }
    }

    /// Cut strings to their column's length, so one long value cannot fail a batch, and
    /// times to microseconds, Postgres's precision (so memory and Postgres hold the same row).
    pub fn clip(&mut self) {
        self.round_times();
        match self {
            Record::Alert(r) => {
                clip(&mut r.alert_type, 100);
                clip(&mut r.component, 50);
                clip(&mut r.severity, 20);
                clip(&mut r.fingerprint, 64);
                clip(&mut r.state, 20);
                clip_opt(&mut r.acknowledged_by, 255);
                clip_opt(&mut r.resolved_by, 255);
            }
            Record::Notification(r) => {
                clip(&mut r.channel, 20);
                clip(&mut r.action, 20);
                clip(&mut r.status, 20);
            }
            Record::Diagnostic(r) => {
                clip(&mut r.issue_type, 100);
                clip_opt(&mut r.ai_model, 100);
                clip(&mut r.mode, 20);
                clip_opt(&mut r.severity, 20);
            }
            Record::Repair(r) => {
                clip(&mut r.repair_type, 100);
                clip(&mut r.mode, 20);
            }
            Record::Pattern(r) => clip(&mut r.pattern_hash, 64),
            Record::Prediction(r) => {
                clip(&mut r.prediction_type, 50);
                clip_opt(&mut r.outcome, 50);
            }
            Record::SecurityIncident(r) => {
                clip(&mut r.threat_type, 100);
                clip_opt(&mut r.severity, 20);
                clip_opt(&mut r.source_ip, 64);
                clip_opt(&mut r.target_endpoint, 255);
                clip_opt(&mut r.user_id, 255);
            }
            Record::Performance(r) => {
                clip(&mut r.metric_type, 50);
                clip_opt(&mut r.endpoint, 255);
                clip_opt(&mut r.query_hash, 64);
            }
            Record::HealthMetric(r) => {
                clip(&mut r.metric_name, 100);
                clip_opt(&mut r.metric_unit, 50);
                clip(&mut r.component, 50);
                clip(&mut r.severity, 20);
            }
            Record::Audit(r) => {
                clip(&mut r.actor, 255);
                clip(&mut r.action, 100);
                clip_opt(&mut r.resource, 100);
                clip_opt(&mut r.resource_id, 255);
                clip_opt(&mut r.ip_address, 64);
            }
            Record::Silence(r) => {
                clip(&mut r.created_by, 255);
                clip_opt(&mut r.deleted_by, 255);
            }
            Record::Maintenance(r) => {
                clip(&mut r.name, 100);
                clip(&mut r.created_by, 255);
                clip_opt(&mut r.deleted_by, 255);
            }
        }
    }
}
