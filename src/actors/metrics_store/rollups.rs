//! One-minute rollups of every series to `system_health_metrics`.
//!
//! Every `METRICS_PERSIST_INTERVAL_MS` (and at shutdown, with the running minute) the minutes
//! not yet persisted are read off the one-minute ring ([`SeriesTable::rollups`]) and written
//! through the store, one row per series, minute and instance. `persisted_until` (a minute
//! number) remembers how far it got, so a minute is never written twice by this process; the
//! row's unique key makes a replay harmless anyway.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::series::{now_secs, Rollup, SeriesTable, RINGS};
use crate::store::{HealthMetricRow, Record, Store};

/// Rollup persistence.
#[derive(Clone)]
pub struct PersistOptions {
    pub store: Store,
    /// Identifies this process's rows (with the series and the minute).
    pub instance_id: Uuid,
    pub every: Duration,
}

/// Where rollups go, and how far they got.
pub struct Persister {
    options: Option<PersistOptions>,
    /// Minutes before this one (minute number since the epoch) have been persisted.
    persisted_until: u64,
}

impl Persister {
    pub fn new(options: Option<PersistOptions>) -> Self {
        Persister {
            options,
            persisted_until: 0,
        }
    }

    /// How often the timer persists (`None`: never).
    pub fn every(&self) -> Option<Duration> {
        self.options
            .as_ref()
            .map(|p| p.every)
            .filter(|e| !e.is_zero())
    }

    /// Write the rollups of the minutes not yet persisted; with `include_current`, the
    /// running minute too (at shutdown: nothing later will be recorded). Returns the rows.
    pub fn persist(&mut self, table: &SeriesTable, include_current: bool) -> usize {
        let Some(p) = self.options.as_ref().filter(|p| !p.every.is_zero()) else {
            return 0;
        };
        let minute = now_secs() as u64 / RINGS[1].0;
        let to = if include_current { minute + 1 } else { minute };
        if to <= self.persisted_until {
            return 0;
        }
        let rollups = table.rollups(self.persisted_until, to);
        let n = rollups.len();
        for r in rollups {
            p.store
                .write(Record::HealthMetric(rollup_row(&r, p.instance_id)));
        }
        self.persisted_until = to;
        n
    }
}

/// The component a metric belongs to (the original's `component` column).
fn component_of(name: &str) -> &'static str {
    match name.split('_').next().unwrap_or("") {
        "api" => "api",
        "db" => "database",
        "redis" => "redis",
        "process" => "process",
        "external" => "external",
        _ => "system",
    }
}

fn rollup_row(r: &Rollup, instance_id: Uuid) -> HealthMetricRow {
    let tags: serde_json::Map<String, serde_json::Value> = r
        .key
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    HealthMetricRow {
        id: Uuid::new_v4(),
        metric_name: r.key.name.clone(),
        metric_value: r.mean,
        metric_unit: Some(r.unit.label().to_owned()),
        component: component_of(&r.key.name).to_owned(),
        severity: "normal".to_owned(),
        tags: serde_json::Value::Object(tags),
        bucket_start: DateTime::<Utc>::from_timestamp(r.bucket_start as i64, 0).unwrap_or_default(),
        bucket_seconds: RINGS[1].0 as i32,
        sample_count: r.count as i64,
        min_value: r.min,
        max_value: r.max,
        p50: r.p50,
        p95: r.p95,
        p99: r.p99,
        instance_id,
        created_at: Utc::now(),
    }
}
