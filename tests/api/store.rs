//! The store: migrations, one behaviour on both backends (memory and Postgres), history that
//! survives a restart, and metric rollups persisted once.
//!
//! The suite ([`store_suite`]) is written once and run against `Store::memory` and
//! `Store::postgres` on a fresh database: the same writes, the same reads, the same answers.
//! Timestamps are whole seconds, so a row read back from Postgres (microsecond precision) can
//! be compared whole with the row written.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use selfheal::actors::metrics_store::{Gauge, PersistRollups, RecordGauges};
use selfheal::domain::metric::{SeriesKey, Unit};
use selfheal::store::postgres::{revert_migrations, run_migrations};
use selfheal::store::{
    AlertQuery, AlertRow, AuditRow, DiagnosticRow, HealthMetricRow, MaintenanceRow,
    MetricHistoryQuery, NotificationRow, PatternRow, PerformanceRow, PredictionRow, Read, Record,
    RepairRow, SecurityIncidentRow, SilenceRow, Store, StoreOptions, WriterState,
};

use crate::helpers::{eventually, spawn_app, Reply};
use crate::infra::{TcpProxy, TestDb};

/// The migrations, in order.
const MIGRATIONS: usize = 2;

/// The twelve tables of the migrations.
const TABLES: [&str; 12] = [
    "system_alerts",
    "notification_log",
    "diagnostic_reports",
    "repair_history",
    "learning_patterns",
    "predictions",
    "security_incidents",
    "performance_metrics",
    "system_health_metrics",
    "admin_audit_logs",
    "alert_silences",
    "maintenance_windows",
];

/// How long a flush may take before the test fails.
const FLUSH: Duration = Duration::from_secs(5);

fn options() -> StoreOptions {
    StoreOptions {
        pool_size: 4,
        timeout: Duration::from_secs(3),
        queue_max: 10_000,
        batch: 500,
        flush_every: Duration::from_millis(20),
        memory_rows: 1_000,
        retention: (0, 0, 0),
        spill_file: None,
        memory_bytes: 1 << 26,
        supervisor: selfheal::config::knobs::defaults(),
    }
}

/// A base time in whole seconds, an hour ago.
fn base_time() -> DateTime<Utc> {
    (Utc::now() - chrono::Duration::hours(1)).trunc_subsecs(0)
}

fn minutes(t: DateTime<Utc>, m: i64) -> DateTime<Utc> {
    t + chrono::Duration::minutes(m)
}

/// How many of the twelve tables exist in `db`'s public schema.
fn table_count(db: &TestDb) -> i64 {
    let names = TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    db.scalar(&format!(
        "SELECT count(*) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name IN ({names})"
    ))
}

/// Wait until every write so far is in the backend.
async fn flushed(store: &Store) {
    assert!(
        store.flush(FLUSH).await,
        "the store did not flush within {FLUSH:?}: {:?}",
        store.status()
    );
}

/// The data of a complete answer from `backend`.
fn answer<T>(read: Read<T>, backend: &str) -> T {
    assert!(!read.partial, "a partial answer from {}", read.source);
    assert_eq!(read.source, backend, "the answer's source");
    read.data
}

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

fn alert(id: Uuid, at: DateTime<Utc>, alert_type: &str, severity: &str, state: &str) -> AlertRow {
    AlertRow {
        id,
        alert_type: alert_type.to_owned(),
        component: "system".to_owned(),
        message: format!("{alert_type} is {severity}"),
        severity: severity.to_owned(),
        threshold_value: Some(80.0),
        actual_value: Some(93.5),
        fingerprint: format!("fp-{}", id.simple()),
        labels: json!({ "host": "a", "n": 1 }),
        metadata: json!({ "source": "test", "values": [1.5, 2, "x"] }),
        state: state.to_owned(),
        occurrences: 1,
        acknowledged: state == "acknowledged",
        acknowledged_by: None,
        acknowledged_at: None,
        ack_comment: None,
        resolved: state == "resolved",
        resolved_by: None,
        resolved_at: None,
        resolution: None,
        auto_resolved: false,
        silenced: false,
        first_seen: at,
        last_seen: at,
        last_notified_at: None,
        created_at: at,
        updated_at: at,
    }
}

fn notification(alert_id: Uuid, at: DateTime<Utc>, status: &str) -> NotificationRow {
    NotificationRow {
        id: Uuid::new_v4(),
        alert_id,
        channel: "slack".to_owned(),
        action: "trigger".to_owned(),
        status: status.to_owned(),
        attempt: 1,
        http_status: Some(200),
        error: None,
        detail: json!({ "text": "cpu high" }),
        created_at: at,
    }
}

fn diagnostic(at: DateTime<Utc>, issue: &str) -> DiagnosticRow {
    DiagnosticRow {
        id: Uuid::new_v4(),
        alert_id: Some(Uuid::new_v4()),
        issue_type: issue.to_owned(),
        root_cause: Some("a slow query".to_owned()),
        evidence: json!({ "p95_ms": 1200, "queries": ["SELECT 1"] }),
        ai_analysis: None,
        ai_model: None,
        mode: "rules".to_owned(),
        confidence_score: Some(0.75),
        suggested_fix: Some("add an index".to_owned()),
        severity: Some("warning".to_owned()),
        affected_users: 12,
        created_at: at,
    }
}

fn repair(id: Uuid, at: DateTime<Utc>, success: bool, attempts: i32) -> RepairRow {
    RepairRow {
        id,
        diagnostic_id: Some(Uuid::new_v4()),
        alert_id: None,
        repair_type: "clear_cache".to_owned(),
        mode: "auto".to_owned(),
        fix_applied: Some("cache cleared".to_owned()),
        success,
        attempts,
        time_to_fix_seconds: Some(1.25),
        before_value: Some(91.0),
        after_value: None,
        verification_result: json!({ "verified": success }),
        rollback_plan: None,
        rolled_back: false,
        error: None,
        created_at: at,
    }
}

fn pattern(hash: &str, at: DateTime<Utc>, success: i32, failure: i32) -> PatternRow {
    PatternRow {
        id: Uuid::new_v4(),
        pattern_hash: hash.to_owned(),
        symptoms: json!({ "alert_type": "cpu_high", "component": "system" }),
        root_cause: Some("busy loop".to_owned()),
        solution: Some("restart the worker".to_owned()),
        success_count: success,
        failure_count: failure,
        avg_fix_time_seconds: Some(2.5),
        auto_fix_enabled: false,
        last_applied_at: None,
        created_at: at,
        updated_at: at,
    }
}

fn prediction(id: Uuid, at: DateTime<Utc>, outcome: Option<&str>) -> PredictionRow {
    PredictionRow {
        id,
        prediction_type: "memory_exhaustion".to_owned(),
        predicted_issue: Some("memory at 95 % within 30 min".to_owned()),
        predicted_time: Some(minutes(at, 30)),
        confidence: Some(0.8),
        data_points: json!({ "slope": 0.5 }),
        proactive_action: Some("scale up".to_owned()),
        action_taken: outcome.is_some(),
        outcome: outcome.map(str::to_owned),
        created_at: at,
    }
}

fn incident(at: DateTime<Utc>, threat: &str) -> SecurityIncidentRow {
    SecurityIncidentRow {
        id: Uuid::new_v4(),
        threat_type: threat.to_owned(),
        severity: Some("high".to_owned()),
        source_ip: Some("203.0.113.7".to_owned()),
        target_endpoint: Some("/login".to_owned()),
        payload: Some("' OR 1=1 --".to_owned()),
        user_id: None,
        mitigation_action: Some("blocked".to_owned()),
        blocked: true,
        created_at: at,
    }
}

fn performance(at: DateTime<Utc>, endpoint: &str) -> PerformanceRow {
    PerformanceRow {
        id: Uuid::new_v4(),
        metric_type: "slow_endpoint".to_owned(),
        endpoint: Some(endpoint.to_owned()),
        query_hash: None,
        value_ms: Some(850.0),
        percentile_95: Some(1200.0),
        percentile_99: Some(1900.0),
        sample_count: Some(4_000_000_000),
        optimization_applied: None,
        improvement_percent: None,
        details: json!({}),
        created_at: at,
    }
}

fn health_metric(
    name: &str,
    tags: Value,
    bucket_start: DateTime<Utc>,
    instance_id: Uuid,
    value: f64,
) -> HealthMetricRow {
    HealthMetricRow {
        id: Uuid::new_v4(),
        metric_name: name.to_owned(),
        metric_value: value,
        metric_unit: Some("%".to_owned()),
        component: "system".to_owned(),
        severity: "normal".to_owned(),
        tags,
        bucket_start,
        bucket_seconds: 60,
        sample_count: 6,
        min_value: value - 1.0,
        max_value: value + 1.0,
        p50: value,
        p95: value + 0.5,
        p99: value + 0.75,
        instance_id,
        created_at: minutes(bucket_start, 1),
    }
}

fn audit(at: DateTime<Utc>, action: &str) -> AuditRow {
    AuditRow {
        id: Uuid::new_v4(),
        actor: "admin-token".to_owned(),
        action: action.to_owned(),
        resource: Some("agent".to_owned()),
        resource_id: Some("monitor".to_owned()),
        details: json!({ "reason": "test" }),
        ip_address: Some("127.0.0.1".to_owned()),
        user_agent: Some("store-test".to_owned()),
        created_at: at,
    }
}

fn silence(at: DateTime<Utc>, ends_at: DateTime<Utc>) -> SilenceRow {
    SilenceRow {
        id: Uuid::new_v4(),
        matchers: json!([
            { "field": "component", "value": "database" },
            { "field": "severity", "value": "warning" },
        ]),
        starts_at: at,
        ends_at,
        created_by: "ops".to_owned(),
        comment: Some("failover drill".to_owned()),
        created_at: at,
        updated_at: at,
        deleted_at: None,
        deleted_by: None,
    }
}

fn window(at: DateTime<Utc>, name: &str) -> MaintenanceRow {
    MaintenanceRow {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        matchers: json!([{ "field": "component", "value": "batch" }]),
        days: json!([1, 3, 5]),
        start_minute: 120,
        end_minute: 180,
        utc_offset_minutes: 0,
        created_by: "ops".to_owned(),
        comment: None,
        created_at: at,
        updated_at: at,
        deleted_at: None,
        deleted_by: None,
    }
}

/// `row` deleted at `at` (the DELETE route's write).
fn deleted_silence(row: &SilenceRow, at: DateTime<Utc>) -> SilenceRow {
    SilenceRow {
        deleted_at: Some(at),
        deleted_by: Some("admin".to_owned()),
        updated_at: at,
        ..row.clone()
    }
}

fn deleted_window(row: &MaintenanceRow, at: DateTime<Utc>) -> MaintenanceRow {
    MaintenanceRow {
        deleted_at: Some(at),
        deleted_by: Some("admin".to_owned()),
        updated_at: at,
        ..row.clone()
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    rows.iter().map(id).collect()
}

// ---------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------

/// Rows each table must hold after [`store_suite`] (checked in SQL for Postgres).
const SUITE_ROWS: [(&str, i64); 12] = [
    // 6 filtered + 1 upserted in one batch + 1 upserted across batches + 1 clipped
    ("system_alerts", 9),
    // 3 for one alert + 1 for another (one of them written twice)
    ("notification_log", 4),
    ("diagnostic_reports", 2),
    // 2 + 1 upserted
    ("repair_history", 3),
    ("learning_patterns", 2),
    ("predictions", 1),
    ("security_incidents", 2),
    ("performance_metrics", 2),
    // 5 + 5 other name + 2 tags + 1 other instance of one key
    ("system_health_metrics", 13),
    ("admin_audit_logs", 3),
    // 2 in force + 1 expired + 1 deleted
    ("alert_silences", 4),
    // 2 + 1 clipped, one of them deleted
    ("maintenance_windows", 3),
];

/// The same writes and reads, with the same answers, on any backend (`memory` or `postgres`).
async fn store_suite(store: &Store, backend: &str) {
    let t0 = base_time();
    alerts_filter_and_page(store, backend, t0).await;
    alerts_upsert_by_id(store, backend, t0).await;
    long_strings_are_clipped_to_their_column(store, backend, t0).await;
    insert_once_tables(store, backend, t0).await;
    repairs_and_predictions_upsert_by_id(store, backend, t0).await;
    patterns_upsert_by_hash(store, backend, t0).await;
    metric_history(store, backend, t0).await;
    audit_newest_first(store, backend, t0).await;
    silences_upsert_by_id_and_hide_when_deleted_or_over(store, backend, t0).await;
    maintenance_windows_upsert_by_id_and_hide_when_deleted(store, backend, t0).await;
}

/// Alert listings: filters, paging with `total`, newest first; open alerts.
async fn alerts_filter_and_page(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let spec = [
        ("cpu_high", "critical", "firing"),
        ("memory_high", "warning", "firing"),
        ("cpu_high", "info", "acknowledged"),
        ("memory_high", "critical", "resolved"),
        ("cpu_high", "warning", "firing"),
        ("memory_high", "critical", "firing"),
    ];
    let rows: Vec<AlertRow> = spec
        .iter()
        .enumerate()
        .map(|(i, (t, s, st))| alert(Uuid::new_v4(), minutes(t0, i as i64), t, s, st))
        .collect();
    // Written out of order: the listing orders by creation, not by write.
    for i in [3, 0, 5, 1, 4, 2] {
        store.write(Record::Alert(rows[i].clone()));
    }
    flushed(store).await;
    let id = |i: usize| rows[i].id;

    let list = |q: AlertQuery| async move { answer(store.alerts(&q).await, backend) };
    let all = list(AlertQuery::default()).await;
    assert_eq!(all.total, 6, "{backend}");
    assert_eq!(
        all.items,
        [5, 4, 3, 2, 1, 0].map(|i| rows[i].clone()),
        "{backend}"
    );

    let cases: Vec<(&str, AlertQuery, Vec<usize>, u64)> = vec![
        (
            "state",
            AlertQuery {
                state: Some("firing".into()),
                ..AlertQuery::default()
            },
            vec![5, 4, 1, 0],
            4,
        ),
        (
            "severity",
            AlertQuery {
                severity: Some("critical".into()),
                ..AlertQuery::default()
            },
            vec![5, 3, 0],
            3,
        ),
        (
            "type",
            AlertQuery {
                alert_type: Some("cpu_high".into()),
                ..AlertQuery::default()
            },
            vec![4, 2, 0],
            3,
        ),
        (
            "all three",
            AlertQuery {
                state: Some("firing".into()),
                severity: Some("critical".into()),
                alert_type: Some("memory_high".into()),
                ..AlertQuery::default()
            },
            vec![5],
            1,
        ),
        (
            "since (inclusive)",
            AlertQuery {
                since: Some(minutes(t0, 3)),
                ..AlertQuery::default()
            },
            vec![5, 4, 3],
            3,
        ),
        (
            "first page",
            AlertQuery {
                limit: 2,
                ..AlertQuery::default()
            },
            vec![5, 4],
            6,
        ),
        (
            "second page",
            AlertQuery {
                limit: 2,
                offset: 2,
                ..AlertQuery::default()
            },
            vec![3, 2],
            6,
        ),
        (
            "last page, short",
            AlertQuery {
                limit: 10,
                offset: 4,
                ..AlertQuery::default()
            },
            vec![1, 0],
            6,
        ),
        (
            "past the end",
            AlertQuery {
                limit: 10,
                offset: 10,
                ..AlertQuery::default()
            },
            vec![],
            6,
        ),
        (
            "filtered page",
            AlertQuery {
                state: Some("firing".into()),
                limit: 2,
                offset: 1,
                ..AlertQuery::default()
            },
            vec![4, 1],
            4,
        ),
        (
            "no match",
            AlertQuery {
                state: Some("silenced".into()),
                ..AlertQuery::default()
            },
            vec![],
            0,
        ),
    ];
    for (what, q, want, total) in cases {
        let page = list(q).await;
        assert_eq!(
            ids(&page.items, |a| a.id),
            want.iter().map(|&i| id(i)).collect::<Vec<_>>(),
            "{backend}: alerts by {what}"
        );
        assert_eq!(page.total, total, "{backend}: total of alerts by {what}");
    }

    let open = answer(store.open_alerts().await, backend);
    assert_eq!(
        ids(&open, |a| a.id),
        [5, 4, 2, 1, 0].map(id),
        "{backend}: open alerts, newest first"
    );
    assert_eq!(
        answer(store.alert(id(3)).await, backend),
        Some(rows[3].clone())
    );
    assert_eq!(answer(store.alert(Uuid::new_v4()).await, backend), None);
}

/// Alerts are upserted by id: one row, the last write wins (also clearing a field).
async fn alerts_upsert_by_id(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let id = Uuid::new_v4();
    let at = minutes(t0, 10);
    let first = alert(id, at, "upsert_test", "warning", "firing");
    let second = AlertRow {
        occurrences: 2,
        last_seen: minutes(at, 1),
        state: "acknowledged".into(),
        acknowledged: true,
        acknowledged_by: Some("ops".into()),
        acknowledged_at: Some(minutes(at, 1)),
        ack_comment: Some("looking".into()),
        updated_at: minutes(at, 1),
        ..first.clone()
    };
    let third = AlertRow {
        occurrences: 3,
        last_seen: minutes(at, 2),
        state: "resolved".into(),
        severity: "critical".into(),
        ack_comment: None,
        resolved: true,
        resolved_by: Some("auto".into()),
        resolved_at: Some(minutes(at, 2)),
        resolution: Some("recovered".into()),
        auto_resolved: true,
        labels: json!({ "host": "b" }),
        updated_at: minutes(at, 2),
        ..second.clone()
    };
    // Three writes in one batch.
    for row in [&first, &second, &third] {
        store.write(Record::Alert(row.clone()));
    }
    flushed(store).await;
    let by_type = |t: &str| AlertQuery {
        alert_type: Some(t.to_owned()),
        ..AlertQuery::default()
    };
    let page = answer(store.alerts(&by_type("upsert_test")).await, backend);
    assert_eq!(page.total, 1, "{backend}: one row per alert id");
    assert_eq!(
        page.items,
        vec![third.clone()],
        "{backend}: the last write wins"
    );
    assert_eq!(answer(store.alert(id).await, backend), Some(third));

    // Written again after the first write reached the backend.
    let id = Uuid::new_v4();
    let first = alert(id, minutes(t0, 11), "upsert_later", "critical", "firing");
    store.write(Record::Alert(first.clone()));
    flushed(store).await;
    let later = AlertRow {
        occurrences: 7,
        state: "acknowledged".into(),
        acknowledged: true,
        acknowledged_by: Some("ops".into()),
        last_seen: minutes(t0, 15),
        ..first
    };
    store.write(Record::Alert(later.clone()));
    flushed(store).await;
    let page = answer(store.alerts(&by_type("upsert_later")).await, backend);
    assert_eq!(page.total, 1, "{backend}: one row after two flushes");
    assert_eq!(page.items, vec![later.clone()], "{backend}");
    assert!(
        answer(store.open_alerts().await, backend).contains(&later),
        "{backend}: an acknowledged alert is open"
    );
}

/// A value longer than its column is cut (on a character boundary), not refused.
async fn long_strings_are_clipped_to_their_column(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let id = Uuid::new_v4();
    let mut long = alert(id, minutes(t0, 20), "clip_test", "warning", "firing");
    long.component = "é".repeat(60); // varchar(50), two bytes a character
    long.fingerprint = "f".repeat(100); // varchar(64)
    store.write(Record::Alert(long.clone()));
    flushed(store).await;
    let got = answer(store.alert(id).await, backend).expect("the clipped alert is stored");
    assert_eq!(got.component, "é".repeat(50), "{backend}");
    assert_eq!(got.fingerprint, "f".repeat(64), "{backend}");
    assert_eq!(
        got.message, long.message,
        "{backend}: text columns are not cut"
    );
}

/// Notifications, diagnostics, security incidents and performance findings are inserted
/// once: writing the same row again (even changed) keeps the first.
async fn insert_once_tables(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let alert_id = Uuid::new_v4();
    let n: Vec<NotificationRow> = (0..3)
        .map(|i| notification(alert_id, minutes(t0, 30 + i), "sent"))
        .collect();
    let other = notification(Uuid::new_v4(), minutes(t0, 29), "sent");
    let d = [
        diagnostic(minutes(t0, 30), "slow_query"),
        diagnostic(minutes(t0, 31), "leak"),
    ];
    let s = [
        incident(minutes(t0, 30), "sql_injection"),
        incident(minutes(t0, 31), "xss"),
    ];
    let p = [
        performance(minutes(t0, 30), "/a"),
        performance(minutes(t0, 31), "/b"),
    ];

    // Newest first, then an older one: read back oldest first.
    for row in [&n[2], &n[0], &other, &n[1]] {
        store.write(Record::Notification(row.clone()));
    }
    for i in [1, 0] {
        store.write(Record::Diagnostic(d[i].clone()));
        store.write(Record::SecurityIncident(s[i].clone()));
        store.write(Record::Performance(p[i].clone()));
    }
    // The same rows again, changed: in the same batch …
    store.write(Record::Notification(NotificationRow {
        status: "failed".into(),
        ..n[1].clone()
    }));
    store.write(Record::Diagnostic(DiagnosticRow {
        root_cause: Some("something else".into()),
        ..d[0].clone()
    }));
    flushed(store).await;
    // … and in a later one.
    store.write(Record::Notification(NotificationRow {
        attempt: 2,
        ..n[1].clone()
    }));
    store.write(Record::SecurityIncident(SecurityIncidentRow {
        blocked: false,
        ..s[0].clone()
    }));
    store.write(Record::Performance(PerformanceRow {
        value_ms: Some(1.0),
        ..p[0].clone()
    }));
    flushed(store).await;

    assert_eq!(
        answer(store.notifications(alert_id).await, backend),
        n.to_vec(),
        "{backend}: an alert's notifications, once each, oldest first"
    );
    assert_eq!(
        answer(store.notifications(other.alert_id).await, backend),
        vec![other],
        "{backend}"
    );
    assert!(answer(store.notifications(Uuid::new_v4()).await, backend).is_empty());

    assert_eq!(
        answer(store.diagnostics(10).await, backend),
        vec![d[1].clone(), d[0].clone()],
        "{backend}: diagnostics, newest first, first write kept"
    );
    assert_eq!(
        answer(store.diagnostics(1).await, backend),
        vec![d[1].clone()],
        "{backend}: diagnostics limit"
    );
    assert_eq!(
        answer(store.security_incidents(10).await, backend),
        vec![s[1].clone(), s[0].clone()],
        "{backend}: incidents"
    );
    assert_eq!(
        answer(store.security_incidents(1).await, backend),
        vec![s[1].clone()],
        "{backend}"
    );
    assert_eq!(
        answer(store.performance(10).await, backend),
        vec![p[1].clone(), p[0].clone()],
        "{backend}: performance findings"
    );
    assert_eq!(
        answer(store.performance(1).await, backend),
        vec![p[1].clone()],
        "{backend}"
    );
}

/// Repairs and predictions are upserted by id as they are verified.
async fn repairs_and_predictions_upsert_by_id(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let older = repair(Uuid::new_v4(), minutes(t0, 40), true, 1);
    let newest = repair(Uuid::new_v4(), minutes(t0, 42), true, 1);
    let id = Uuid::new_v4();
    let pending = repair(id, minutes(t0, 41), false, 1);
    let verified = RepairRow {
        success: true,
        attempts: 2,
        after_value: Some(40.0),
        verification_result: json!({ "verified": true, "after": 40.0 }),
        error: None,
        ..pending.clone()
    };
    for row in [&older, &pending, &newest] {
        store.write(Record::Repair(row.clone()));
    }
    flushed(store).await;
    store.write(Record::Repair(verified.clone()));
    flushed(store).await;
    assert_eq!(
        answer(store.repairs(10).await, backend),
        vec![newest.clone(), verified, older],
        "{backend}: repairs, newest first, the verified version"
    );
    assert_eq!(answer(store.repairs(1).await, backend), vec![newest]);

    let id = Uuid::new_v4();
    let open = prediction(id, minutes(t0, 45), None);
    let known = prediction(id, minutes(t0, 45), Some("prevented"));
    store.write(Record::Prediction(open.clone()));
    flushed(store).await;
    assert_eq!(answer(store.predictions(10).await, backend), vec![open]);
    store.write(Record::Prediction(known.clone()));
    flushed(store).await;
    assert_eq!(
        answer(store.predictions(10).await, backend),
        vec![known],
        "{backend}: the outcome replaces the open prediction"
    );
}

/// Patterns are upserted by `pattern_hash` with absolute counts: one row per hash, the
/// latest counts.
async fn patterns_upsert_by_hash(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let b = pattern("hash-b", minutes(t0, 50), 1, 0);
    let a = pattern("hash-a", minutes(t0, 51), 3, 1);
    store.write(Record::Pattern(b.clone()));
    store.write(Record::Pattern(a.clone()));
    flushed(store).await;
    assert_eq!(
        answer(store.patterns().await, backend),
        vec![a.clone(), b.clone()],
        "{backend}: patterns by hash"
    );

    // The learner writes the whole row again with its new counts (same id).
    let b2 = PatternRow {
        success_count: 5,
        failure_count: 2,
        auto_fix_enabled: true,
        last_applied_at: Some(minutes(t0, 55)),
        updated_at: minutes(t0, 55),
        ..b.clone()
    };
    let b3 = PatternRow {
        success_count: 6,
        ..b2.clone()
    };
    store.write(Record::Pattern(b2));
    store.write(Record::Pattern(b3.clone()));
    flushed(store).await;
    assert_eq!(
        answer(store.patterns().await, backend),
        vec![a.clone(), b3.clone()],
        "{backend}: one row per hash, the latest counts"
    );

    // A pattern row built afresh for a known hash (another id): still one row per hash,
    // with the new counts, the same on both backends.
    let b4 = PatternRow {
        id: Uuid::new_v4(),
        success_count: 9,
        failure_count: 3,
        ..b3.clone()
    };
    store.write(Record::Pattern(b4.clone()));
    flushed(store).await;
    let rows = answer(store.patterns().await, backend);
    assert_eq!(rows.len(), 2, "{backend}: {rows:?}");
    assert_eq!(rows[0], a, "{backend}");
    assert_eq!(
        (
            &rows[1].pattern_hash,
            rows[1].success_count,
            rows[1].failure_count
        ),
        (&b4.pattern_hash, 9, 3),
        "{backend}: the latest counts"
    );
    assert_eq!(
        rows[1].id, b.id,
        "{backend}: a pattern keeps the id it was first stored with"
    );
}

/// Metric rollups: filtered by name and `since`, oldest first; `limit` keeps the newest;
/// inserted once per (name, tags, minute, instance).
async fn metric_history(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let instance = Uuid::new_v4();
    let tags = json!({ "kind": "host" });
    let rows: Vec<HealthMetricRow> = (0..5)
        .map(|k| {
            health_metric(
                "suite_cpu",
                tags.clone(),
                minutes(t0, k),
                instance,
                10.0 + k as f64,
            )
        })
        .collect();
    for k in [4, 1, 3, 0, 2] {
        store.write(Record::HealthMetric(rows[k].clone()));
        // Another metric in the same minutes, which no query by name returns.
        store.write(Record::HealthMetric(health_metric(
            "suite_memory",
            tags.clone(),
            minutes(t0, k as i64),
            instance,
            50.0,
        )));
    }
    // The very same row again, and the same key under another id (a second persist of the
    // minute): neither adds a row.
    store.write(Record::HealthMetric(rows[2].clone()));
    store.write(Record::HealthMetric(HealthMetricRow {
        id: Uuid::new_v4(),
        metric_value: 99.0,
        ..rows[3].clone()
    }));
    flushed(store).await;
    store.write(Record::HealthMetric(rows[2].clone()));
    store.write(Record::HealthMetric(HealthMetricRow {
        id: Uuid::new_v4(),
        ..rows[4].clone()
    }));
    flushed(store).await;

    let history = |since: Option<DateTime<Utc>>, limit: usize| async move {
        let q = MetricHistoryQuery {
            name: "suite_cpu".to_owned(),
            since,
            limit,
        };
        answer(store.metric_history(&q).await, backend)
    };
    assert_eq!(
        history(None, 100).await,
        rows,
        "{backend}: every minute once, oldest first, first write kept"
    );
    assert_eq!(
        history(Some(minutes(t0, 2)), 100).await,
        rows[2..].to_vec(),
        "{backend}: since is inclusive"
    );
    assert_eq!(
        history(None, 2).await,
        rows[3..].to_vec(),
        "{backend}: limit keeps the newest, oldest first"
    );
    assert_eq!(
        history(Some(minutes(t0, 1)), 3).await,
        rows[2..].to_vec(),
        "{backend}: since and limit"
    );
    assert!(history(Some(minutes(t0, 5)), 100).await.is_empty());
    let none = MetricHistoryQuery {
        name: "no_such_metric".to_owned(),
        since: None,
        limit: 100,
    };
    assert!(answer(store.metric_history(&none).await, backend).is_empty());

    // Other tags, or another instance, in the same minute: rows of their own.
    let bucket = minutes(t0, 30);
    let by_tags = [
        health_metric("suite_disk", json!({ "mount": "/" }), bucket, instance, 1.0),
        health_metric(
            "suite_disk",
            json!({ "mount": "/var" }),
            bucket,
            instance,
            2.0,
        ),
        health_metric(
            "suite_disk",
            json!({ "mount": "/" }),
            bucket,
            Uuid::new_v4(),
            3.0,
        ),
    ];
    for row in &by_tags {
        store.write(Record::HealthMetric(row.clone()));
    }
    flushed(store).await;
    let q = MetricHistoryQuery {
        name: "suite_disk".to_owned(),
        since: None,
        limit: 100,
    };
    let mut got = answer(store.metric_history(&q).await, backend);
    got.sort_by(|a, b| a.metric_value.total_cmp(&b.metric_value));
    assert_eq!(
        got,
        by_tags.to_vec(),
        "{backend}: one row per series and instance"
    );
}

/// The audit log: newest first, each action once.
async fn audit_newest_first(store: &Store, backend: &str, t0: DateTime<Utc>) {
    let rows: Vec<AuditRow> = (0..3)
        .map(|i| audit(minutes(t0, 60 + i), &format!("action.{i}")))
        .collect();
    for i in [0, 2, 1, 0] {
        store.write(Record::Audit(rows[i].clone()));
    }
    flushed(store).await;
    store.write(Record::Audit(rows[1].clone()));
    flushed(store).await;
    assert_eq!(
        answer(store.audit(10).await, backend),
        vec![rows[2].clone(), rows[1].clone(), rows[0].clone()],
        "{backend}: audit entries once each, newest first"
    );
    assert_eq!(
        answer(store.audit(2).await, backend),
        vec![rows[2].clone(), rows[1].clone()],
        "{backend}: audit limit"
    );
}

/// Silences: read back as written, newest created first; an edit replaces the row; a
/// deleted one is hidden; an expired one only when `include_expired_since` covers its end.
async fn silences_upsert_by_id_and_hide_when_deleted_or_over(
    store: &Store,
    backend: &str,
    t0: DateTime<Utc>,
) {
    // t0 is an hour ago: ending at t0 + 180 min is two hours ahead, at t0 + 10 min is past.
    let first = silence(minutes(t0, 70), minutes(t0, 180));
    let second = silence(minutes(t0, 71), minutes(t0, 120));
    let expired = SilenceRow {
        starts_at: t0,
        ..silence(minutes(t0, 72), minutes(t0, 10))
    };
    let doomed = silence(minutes(t0, 73), minutes(t0, 180));
    for row in [&first, &second, &expired, &doomed] {
        store.write(Record::Silence(row.clone()));
    }
    flushed(store).await;
    assert_eq!(
        answer(store.silences(None).await, backend),
        vec![doomed.clone(), second.clone(), first.clone()],
        "{backend}: silences in force, newest created first"
    );
    assert_eq!(
        answer(store.silences(Some(minutes(t0, 10))).await, backend),
        vec![
            doomed.clone(),
            expired.clone(),
            second.clone(),
            first.clone()
        ],
        "{backend}: a silence that ended at include_expired_since is included"
    );
    assert_eq!(
        answer(store.silences(Some(minutes(t0, 11))).await, backend),
        vec![doomed.clone(), second.clone(), first.clone()],
        "{backend}: one that ended before it is not"
    );

    // An edit (longer, another comment, a matcher less) and a deletion, each an upsert.
    let edited = SilenceRow {
        ends_at: minutes(t0, 240),
        comment: None,
        matchers: json!([{ "field": "component", "value": "database" }]),
        updated_at: minutes(t0, 74),
        ..first.clone()
    };
    store.write(Record::Silence(edited.clone()));
    store.write(Record::Silence(deleted_silence(&doomed, minutes(t0, 75))));
    flushed(store).await;
    assert_eq!(
        answer(store.silences(None).await, backend),
        vec![second.clone(), edited.clone()],
        "{backend}: the edit replaces the row, the deleted one is hidden"
    );
    assert_eq!(
        answer(store.silences(Some(t0)).await, backend),
        vec![expired, second, edited],
        "{backend}: a deleted silence stays hidden whatever the time"
    );
}

/// Maintenance windows: read back as written, oldest created first; an edit replaces the row;
/// a deleted one is hidden; a long name is clipped.
async fn maintenance_windows_upsert_by_id_and_hide_when_deleted(
    store: &Store,
    backend: &str,
    t0: DateTime<Utc>,
) {
    let nightly = window(minutes(t0, 80), "nightly batch");
    // Saturday and Sunday, 23:00 to 02:00 at UTC+1, every alert.
    let weekend = MaintenanceRow {
        matchers: json!([]),
        days: json!([6, 7]),
        start_minute: 23 * 60,
        end_minute: 2 * 60,
        utc_offset_minutes: 60,
        comment: Some("over midnight".to_owned()),
        ..window(minutes(t0, 81), "weekend")
    };
    let long = window(minutes(t0, 82), &"n".repeat(150)); // varchar(100)
    for row in [&weekend, &long, &nightly] {
        store.write(Record::Maintenance(row.clone()));
    }
    flushed(store).await;
    let clipped = MaintenanceRow {
        name: "n".repeat(100),
        ..long
    };
    assert_eq!(
        answer(store.maintenance_windows().await, backend),
        vec![nightly.clone(), weekend.clone(), clipped.clone()],
        "{backend}: windows oldest first, the long name clipped"
    );

    let edited = MaintenanceRow {
        days: json!([1, 2, 3, 4, 5]),
        end_minute: 1440,
        updated_at: minutes(t0, 83),
        ..weekend
    };
    store.write(Record::Maintenance(edited.clone()));
    store.write(Record::Maintenance(deleted_window(
        &nightly,
        minutes(t0, 84),
    )));
    flushed(store).await;
    assert_eq!(
        answer(store.maintenance_windows().await, backend),
        vec![edited, clipped],
        "{backend}: the edit replaces the row, the deleted one is hidden"
    );
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[actix_web::test]
async fn migrations_go_up_down_and_up_again() {
    let db = TestDb::create();
    assert_eq!(
        table_count(&db),
        0,
        "a fresh database has none of the tables"
    );

    assert_eq!(
        run_migrations(&db.url).await.expect("migrations run"),
        MIGRATIONS
    );
    assert_eq!(
        table_count(&db),
        12,
        "the migrations create the twelve tables"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'system_health_metrics_bucket_key'"
        ),
        1,
        "rollups are unique per series, minute and instance"
    );

    db.execute(
        "INSERT INTO admin_audit_logs (id, actor, action) \
         VALUES ('00000000-0000-4000-8000-000000000001', 'sql', 'before.second.run')",
    );
    assert_eq!(
        run_migrations(&db.url).await.expect("migrations run again"),
        0,
        "a second start applies nothing"
    );
    assert_eq!(table_count(&db), 12);
    assert_eq!(
        db.scalar("SELECT count(*) FROM admin_audit_logs WHERE action = 'before.second.run'"),
        1,
        "a second start keeps the rows"
    );

    assert_eq!(
        revert_migrations(&db.url).await.expect("migrations revert"),
        MIGRATIONS
    );
    assert_eq!(table_count(&db), 0, "down removes every table");

    assert_eq!(
        run_migrations(&db.url).await.expect("migrations run"),
        MIGRATIONS
    );
    assert_eq!(table_count(&db), 12, "up again recreates them");
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_indexes \
             WHERE indexname = 'alert_silences_ends_idx' AND indexdef LIKE '%WHERE (deleted_at IS NULL)%'"
        ),
        1,
        "silences in force are found through a partial index on ends_at"
    );
}

#[actix_web::test]
async fn store_suite_in_memory() {
    let store = Store::memory(1_000, 1 << 26);
    assert_eq!(store.backend(), "memory");
    store_suite(&store, "memory").await;
}

#[actix_web::test]
async fn store_suite_on_postgres() {
    let db = TestDb::create();
    let store =
        Store::postgres(&db.url, &options(), Default::default()).expect("the store is built");
    assert_eq!(store.backend(), "postgres");
    store_suite(&store, "postgres").await;
    // The rows really are in the tables, once each.
    for (table, rows) in SUITE_ROWS {
        assert_eq!(
            db.scalar(&format!("SELECT count(*) FROM {table}")),
            rows,
            "rows in {table}"
        );
    }
    let writer = store
        .status()
        .writer
        .expect("a Postgres store has a writer");
    assert_eq!(
        (writer.rejected, writer.overflow, writer.failures),
        (0, 0, 0),
        "nothing refused, no failed attempt: {writer:?}"
    );
}

#[actix_web::test]
async fn history_written_by_one_store_is_read_by_the_next() {
    let db = TestDb::create();
    let t0 = base_time();
    let first_alert = alert(Uuid::new_v4(), t0, "restart_test", "critical", "firing");
    let entry = audit(minutes(t0, 1), "agent.restart");
    let rollup = health_metric("restart_cpu", json!({}), t0, Uuid::new_v4(), 42.0);
    let learned = pattern("restart-hash", t0, 2, 1);
    {
        let store =
            Store::postgres(&db.url, &options(), Default::default()).expect("the store is built");
        store.write(Record::Alert(first_alert.clone()));
        store.write(Record::Audit(entry.clone()));
        store.write(Record::HealthMetric(rollup.clone()));
        store.write(Record::Pattern(learned.clone()));
        flushed(&store).await;
        let writer = store
            .status()
            .writer
            .expect("a Postgres store has a writer");
        assert_eq!(
            (writer.written, writer.failures),
            (4, 0),
            "written at the first attempt: {writer:?}"
        );
    }

    // A new store: its memory mirror is empty, so anything it reads came from Postgres.
    let store =
        Store::postgres(&db.url, &options(), Default::default()).expect("the store is built");
    assert_eq!(
        answer(store.alert(first_alert.id).await, "postgres"),
        Some(first_alert.clone())
    );
    assert_eq!(
        answer(store.open_alerts().await, "postgres"),
        vec![first_alert.clone()]
    );
    assert_eq!(answer(store.audit(10).await, "postgres"), vec![entry]);
    assert_eq!(answer(store.patterns().await, "postgres"), vec![learned]);
    let q = MetricHistoryQuery {
        name: "restart_cpu".to_owned(),
        since: None,
        limit: 10,
    };
    assert_eq!(
        answer(store.metric_history(&q).await, "postgres"),
        vec![rollup.clone()]
    );

    // The second process carries on: the alert is updated in place, the rollup not repeated.
    let resolved = AlertRow {
        state: "resolved".into(),
        resolved: true,
        occurrences: 2,
        ..first_alert.clone()
    };
    store.write(Record::Alert(resolved.clone()));
    store.write(Record::HealthMetric(HealthMetricRow {
        id: Uuid::new_v4(),
        ..rollup
    }));
    flushed(&store).await;
    assert_eq!(
        answer(store.alert(first_alert.id).await, "postgres"),
        Some(resolved)
    );
    assert!(answer(store.open_alerts().await, "postgres").is_empty());
    assert_eq!(db.scalar("SELECT count(*) FROM system_alerts"), 1);
    assert_eq!(db.scalar("SELECT count(*) FROM system_health_metrics"), 1);
}

#[actix_web::test]
async fn silences_and_windows_written_by_one_store_are_read_by_the_next() {
    let db = TestDb::create();
    let t0 = base_time();
    let active = silence(t0, minutes(t0, 180));
    let gone = deleted_silence(&silence(minutes(t0, 1), minutes(t0, 180)), minutes(t0, 2));
    let weekly = window(t0, "weekly");
    let dropped = deleted_window(&window(minutes(t0, 1), "dropped"), minutes(t0, 2));
    {
        let store =
            Store::postgres(&db.url, &options(), Default::default()).expect("the store is built");
        for r in [
            Record::Silence(active.clone()),
            Record::Silence(gone.clone()),
            Record::Maintenance(weekly.clone()),
            Record::Maintenance(dropped.clone()),
        ] {
            store.write(r);
        }
        flushed(&store).await;
    }

    // A new store: its memory mirror is empty, so anything it reads came from Postgres.
    let store =
        Store::postgres(&db.url, &options(), Default::default()).expect("the store is built");
    assert_eq!(
        answer(store.silences(None).await, "postgres"),
        vec![active.clone()]
    );
    assert_eq!(
        answer(store.maintenance_windows().await, "postgres"),
        vec![weekly.clone()]
    );

    // It deletes what the first one wrote; a third store sees the deletions.
    store.write(Record::Silence(deleted_silence(&active, minutes(t0, 3))));
    store.write(Record::Maintenance(deleted_window(&weekly, minutes(t0, 3))));
    flushed(&store).await;
    drop(store);
    let store =
        Store::postgres(&db.url, &options(), Default::default()).expect("the store is built");
    assert!(answer(store.silences(None).await, "postgres").is_empty());
    assert!(answer(store.maintenance_windows().await, "postgres").is_empty());
    assert_eq!(
        db.scalar("SELECT count(*) FROM alert_silences WHERE deleted_by = 'admin'"),
        2,
        "deleted rows stay, marked"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM maintenance_windows WHERE deleted_by = 'admin'"),
        2
    );
}

#[actix_web::test]
async fn silences_and_windows_journaled_during_an_outage_are_written_by_the_next_start() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let journal = std::env::temp_dir().join(format!(
        "selfheal-silences-{}.jsonl",
        Uuid::new_v4().simple()
    ));
    let o = StoreOptions {
        timeout: Duration::from_millis(500),
        spill_file: Some(journal.clone()),
        ..options()
    };
    let t0 = base_time();
    let kept = silence(t0, minutes(t0, 180));
    let weekly = window(t0, "weekly");
    let removed = silence(minutes(t0, 1), minutes(t0, 180));
    {
        let store = Store::postgres(&db.url_via(&proxy), &o, Default::default())
            .expect("the store is built");
        store.write(Record::Silence(removed.clone()));
        flushed(&store).await;

        proxy.down();
        for r in [
            Record::Silence(kept.clone()),
            Record::Maintenance(weekly.clone()),
            Record::Silence(deleted_silence(&removed, minutes(t0, 2))),
        ] {
            store.write(r);
        }
        let state = eventually(
            || async { store.status().writer.map(|w| w.state) },
            |s| *s == Some(WriterState::Down),
        )
        .await;
        assert_eq!(state, Some(WriterState::Down), "{:?}", store.status());
        assert_eq!(store.spill().await, Ok(3), "the three writes are journaled");
    }
    let lines = std::fs::read_to_string(&journal).expect("the journal was written");
    assert_eq!(lines.lines().count(), 3, "{lines}");

    // The next start reads the journal and writes it (Postgres is reachable directly).
    let store = Store::postgres(&db.url, &o, Default::default()).expect("the store is built");
    flushed(&store).await;
    assert_eq!(
        answer(store.silences(None).await, "postgres"),
        vec![kept],
        "the journaled deletion was applied too"
    );
    assert_eq!(
        answer(store.maintenance_windows().await, "postgres"),
        vec![weekly]
    );
    assert_eq!(db.scalar("SELECT count(*) FROM alert_silences"), 2);
    let left = eventually(|| async { journal.exists() }, |e| !*e).await;
    assert!(!left, "the journal is removed once written");
}

fn entries(reply: &Reply) -> Vec<Value> {
    reply.data()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[actix_web::test]
async fn audit_and_rollups_survive_an_app_restart() {
    let db = TestDb::create();
    let name = "restart_test_gauge";

    // Writes are flushed every minute: only shutdown can have written them in time.
    let app = spawn_app(&[
        ("DATABASE_URL", db.url.as_str()),
        ("DB_WRITE_FLUSH_MS", "60000"),
    ])
    .await;
    let reply = app
        .admin_post("/api/v1/system/agents/monitor/restart", Vec::new())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.selfheal()
        .metrics
        .send(RecordGauges(vec![Gauge {
            key: SeriesKey::new(name, Vec::new()),
            unit: Unit::Ms,
            value: 12.5,
        }]))
        .await
        .expect("the metrics store answers");
    let first_instance = app.selfheal().instance_id();
    app.selfheal().shutdown().await;
    drop(app);
    assert_eq!(
        db.scalar("SELECT count(*) FROM admin_audit_logs WHERE action = 'agent.restart'"),
        1,
        "shutdown flushed the audit entry"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM system_health_metrics \
             WHERE metric_name = '{name}' AND instance_id = '{first_instance}'"
        )),
        1,
        "shutdown persisted the running minute's rollup"
    );

    let app = spawn_app(&[("DATABASE_URL", db.url.as_str())]).await;
    let reply = app.admin_get("/api/v1/system/audit").await;
    let data = reply.data();
    assert_eq!(data["partial"], false, "{}", reply.text);
    assert_eq!(data["source"], "postgres", "{}", reply.text);
    let entries = entries(&reply);
    assert_eq!(entries.len(), 1, "{}", reply.text);
    assert_eq!(entries[0]["action"], "agent.restart", "{}", reply.text);
    assert_eq!(entries[0]["resource"], "agent", "{}", reply.text);
    assert_eq!(entries[0]["resource_id"], "monitor", "{}", reply.text);

    let reply = app
        .admin_get(&format!("/api/v1/system/metrics/history?name={name}"))
        .await;
    let data = reply.data();
    assert_eq!(data["partial"], false, "{}", reply.text);
    assert_eq!(data["source"], "postgres", "{}", reply.text);
    let rollups = data["rollups"].as_array().cloned().unwrap_or_default();
    assert_eq!(rollups.len(), 1, "{}", reply.text);
    assert_eq!(rollups[0]["metric_value"], 12.5, "{}", reply.text);
    assert_eq!(rollups[0]["metric_unit"], "ms", "{}", reply.text);
    assert_eq!(
        rollups[0]["instance_id"],
        first_instance.to_string(),
        "{}",
        reply.text
    );
}

#[actix_web::test]
async fn rollups_are_persisted_once_however_often_they_are_persisted() {
    let db = TestDb::create();
    let app = spawn_app(&[("DATABASE_URL", &db.url), ("DB_WRITE_FLUSH_MS", "20")]).await;
    let sh = app.selfheal();
    let name = "store_test_gauge";
    let gauge = |disk: &str, value: f64| Gauge {
        key: SeriesKey::new(name, vec![("disk".to_owned(), disk.to_owned())]),
        unit: Unit::Percent,
        value,
    };
    sh.metrics
        .send(RecordGauges(vec![
            gauge("sda", 10.0),
            gauge("sda", 30.0),
            gauge("sdb", 5.0),
        ]))
        .await
        .expect("the metrics store answers");

    let persist = |include_current| async move {
        let n = sh
            .metrics
            .send(PersistRollups { include_current })
            .await
            .expect("the metrics store answers");
        flushed(&sh.store).await;
        n
    };
    let mine = format!("SELECT count(*) FROM system_health_metrics WHERE metric_name = '{name}'");
    let all = "SELECT count(*) FROM system_health_metrics";
    let distinct = "SELECT count(DISTINCT (metric_name, tags, bucket_start, instance_id)) \
                    FROM system_health_metrics";

    let queued = persist(true).await;
    assert!(queued >= 2, "the two series' rollups were queued: {queued}");
    assert_eq!(db.scalar(&mine), 2, "one row per series for the minute");
    let rows = db.scalar(all);
    assert!(rows >= 2, "{rows}");
    assert_eq!(db.scalar(distinct), rows, "no duplicate rollup");

    for include_current in [true, false, true] {
        persist(include_current).await;
        assert_eq!(
            db.scalar(&mine),
            2,
            "persisting again (include_current: {include_current}) adds no row"
        );
        assert_eq!(
            db.scalar(all),
            db.scalar(distinct),
            "no duplicate rollup (include_current: {include_current})"
        );
    }
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM system_health_metrics \
             WHERE metric_name = '{name}' AND instance_id = '{}'",
            sh.instance_id()
        )),
        2,
        "the rows carry this instance's id"
    );

    let writer = sh
        .store
        .status()
        .writer
        .expect("a Postgres store has a writer");
    assert_eq!(writer.failures, 0, "no failed write: {writer:?}");

    let reply = app
        .admin_get(&format!("/api/v1/system/metrics/history?name={name}"))
        .await;
    let data = reply.data();
    assert_eq!(data["partial"], false, "{}", reply.text);
    assert_eq!(data["source"], "postgres", "{}", reply.text);
    let mut rollups = data["rollups"].as_array().cloned().unwrap_or_default();
    rollups.sort_by_key(|r| r["tags"]["disk"].as_str().unwrap_or("").to_owned());
    assert_eq!(rollups.len(), 2, "{}", reply.text);
    let sda = &rollups[0];
    assert_eq!(sda["metric_name"], name);
    assert_eq!(sda["tags"], json!({ "disk": "sda" }));
    assert_eq!(sda["sample_count"], 2);
    assert_eq!(sda["metric_value"], 20.0, "the mean: {sda}");
    assert_eq!(sda["min_value"], 10.0, "{sda}");
    assert_eq!(sda["max_value"], 30.0, "{sda}");
    assert_eq!(sda["metric_unit"], "%");
    assert_eq!(sda["bucket_seconds"], 60);
    assert_eq!(rollups[1]["tags"], json!({ "disk": "sdb" }));
    assert_eq!(rollups[1]["sample_count"], 1);
}

#[actix_web::test]
async fn history_past_its_retention_is_pruned_and_the_rest_kept() {
    let db = TestDb::create();
    let store = Store::postgres(&db.url, &options(), Default::default()).unwrap();
    let now = Utc::now();
    let old = now - chrono::Duration::days(400);
    let instance = Uuid::new_v4();
    let (old_resolved, old_open, new_resolved) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for r in [
        Record::HealthMetric(health_metric("cpu_usage", json!({}), old, instance, 1.0)),
        Record::HealthMetric(health_metric("cpu_usage", json!({}), now, instance, 2.0)),
        Record::Alert(alert(old_resolved, old, "CPU_HIGH", "high", "resolved")),
        Record::Alert(alert(old_open, old, "CPU_HIGH", "high", "firing")),
        Record::Alert(alert(new_resolved, now, "CPU_HIGH", "high", "resolved")),
        Record::Notification(notification(old_resolved, old, "sent")),
        Record::Notification(notification(old_open, old, "sent")),
        Record::Pattern(pattern("old", old, 1, 0)),
        Record::Pattern(pattern("new", now, 1, 0)),
    ] {
        store.write(r);
    }
    // Silences: one long expired, one deleted long ago (pruned); one deleted lately, one in
    // force since long ago (kept). Windows: one deleted long ago (pruned); one deleted
    // lately, one in force since long ago (kept).
    let later = now + chrono::Duration::days(1);
    let (old_expired, old_deleted) = (silence(old, old), silence(old, later));
    let (old_deleted_window, old_window) = (window(old, "a"), window(old, "b"));
    for r in [
        Record::Silence(old_expired.clone()),
        Record::Silence(deleted_silence(&old_deleted, old)),
        Record::Silence(deleted_silence(&silence(old, later), now)),
        Record::Silence(silence(old, later)),
        Record::Maintenance(deleted_window(&old_deleted_window, old)),
        Record::Maintenance(deleted_window(&window(old, "c"), now)),
        Record::Maintenance(old_window.clone()),
    ] {
        store.write(r);
    }
    assert!(store.flush(Duration::from_secs(10)).await);
    let deleted = store.pg().unwrap().prune(30, 90, 365).await.unwrap();
    // One rollup, one resolved alert (and its notification), two silences, one window, one
    // pattern.
    assert_eq!(deleted, 6);
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM alert_silences WHERE id IN ('{}', '{}')",
            old_expired.id, old_deleted.id
        )),
        0,
        "silences expired or deleted before the alerts retention are pruned"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM alert_silences"), 2);
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM maintenance_windows WHERE id = '{}'",
            old_deleted_window.id
        )),
        0,
        "windows deleted before the alerts retention are pruned"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM maintenance_windows"),
        2,
        "windows in force stay, however old"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM system_health_metrics"), 1);
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM system_alerts WHERE id = '{old_resolved}'"
        )),
        0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM system_alerts"),
        2,
        "open and recent alerts stay"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM notification_log"),
        1,
        "the pruned alert's notification goes with it, the open one's stays"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM learning_patterns"), 1);
    // 0 keeps forever.
    assert_eq!(store.pg().unwrap().prune(0, 0, 0).await.unwrap(), 0);
}

#[actix_web::test]
async fn pruning_works_through_a_backlog_chunk_by_chunk() {
    let db = TestDb::create();
    let store = Store::postgres(&db.url, &options(), Default::default()).unwrap();
    let now = Utc::now();
    let instance = Uuid::new_v4();
    // 25 old rollups (distinct minutes), 3 recent ones; chunks of 4.
    for i in 0..25 {
        let at = now - chrono::Duration::days(400) + chrono::Duration::minutes(i);
        store.write(Record::HealthMetric(health_metric(
            "cpu_usage",
            json!({}),
            at,
            instance,
            1.0,
        )));
    }
    for i in 0..3 {
        let at = now - chrono::Duration::minutes(i);
        store.write(Record::HealthMetric(health_metric(
            "cpu_usage",
            json!({}),
            at,
            instance,
            1.0,
        )));
    }
    assert!(store.flush(Duration::from_secs(10)).await);
    let pg = store.pg().unwrap();
    assert_eq!(pg.prune_in_chunks(30, 0, 0, 4).await.unwrap(), 25);
    assert_eq!(db.scalar("SELECT count(*) FROM system_health_metrics"), 3);
    // A table that fails does not stop the others: with the alerts table gone, patterns are
    // still pruned.
    store.write(Record::Pattern(pattern(
        "old",
        now - chrono::Duration::days(400),
        1,
        0,
    )));
    assert!(store.flush(Duration::from_secs(10)).await);
    db.execute("DROP TABLE notification_log");
    assert_eq!(pg.prune_in_chunks(30, 90, 365, 4).await.unwrap(), 1);
    assert_eq!(db.scalar("SELECT count(*) FROM learning_patterns"), 0);
}
