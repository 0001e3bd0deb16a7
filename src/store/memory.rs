//! The in-memory backend: bounded tables (the newest `STORE_MEMORY_ROWS` rows of each, and at
//! most `STORE_MEMORY_BYTES` bytes of them, sized as their JSON). In standalone mode it is the
//! store; with Postgres it mirrors every write, so reads still answer (flagged partial) while
//! Postgres is unreachable. A deleted silence or maintenance window leaves memory at once
//! (nothing reads it back).

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::*;
use super::{AlertQuery, MetricHistoryQuery, Page, MAINTENANCE_WINDOWS_MAX, SILENCES_MAX};

/// A bounded table: rows in write order, oldest evicted first, bounded by rows and bytes.
#[derive(Debug)]
struct Table<T> {
    rows: VecDeque<T>,
    /// Each row's size, in the same order.
    sizes: VecDeque<usize>,
    bytes: usize,
    cap: usize,
    max_bytes: usize,
}

/// A row's size in memory, estimated as its JSON.
fn size_of<T: serde::Serialize>(row: &T) -> usize {
    serde_json::to_vec(row).map_or(0, |v| v.len())
}

impl<T: serde::Serialize> Table<T> {
    fn new(cap: usize, max_bytes: usize) -> Self {
        Table {
            rows: VecDeque::new(),
            sizes: VecDeque::new(),
            bytes: 0,
            cap: cap.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn push(&mut self, row: T) {
        let size = size_of(&row);
        while !self.rows.is_empty()
            && (self.rows.len() >= self.cap || self.bytes + size > self.max_bytes)
        {
            self.rows.pop_front();
            self.bytes -= self.sizes.pop_front().unwrap_or(0);
        }
        self.rows.push_back(row);
        self.sizes.push_back(size);
        self.bytes += size;
    }

    /// Replace the row `same` matches, or append.
    fn upsert(&mut self, row: T, same: impl Fn(&T, &T) -> bool) {
        match self.rows.iter().rposition(|r| same(r, &row)) {
            Some(i) => {
                let size = size_of(&row);
                self.bytes = self.bytes - self.sizes[i] + size;
                self.sizes[i] = size;
                self.rows[i] = row;
                // A row that grew may push the table over its byte cap.
                while self.bytes > self.max_bytes && self.rows.len() > 1 {
                    self.rows.pop_front();
                    self.bytes -= self.sizes.pop_front().unwrap_or(0);
                }
            }
            None => self.push(row),
        }
    }

    /// Remove the rows `gone` matches.
    fn remove(&mut self, gone: impl Fn(&T) -> bool) {
        let mut i = 0;
        while i < self.rows.len() {
            if gone(&self.rows[i]) {
                self.rows.remove(i);
                self.bytes -= self.sizes.remove(i).unwrap_or(0);
            } else {
                i += 1;
            }
        }
    }

    /// Append unless a row `same` matches (insert-once semantics).
    fn insert_once(&mut self, row: T, same: impl Fn(&T, &T) -> bool) {
        if !self.rows.iter().rev().any(|r| same(r, &row)) {
            self.push(row);
        }
    }

    /// Copies of the rows matching `keep` (callers sort them).
    fn matching(&self, keep: impl Fn(&T) -> bool) -> Vec<T>
    where
        T: Clone,
    {
        self.rows.iter().filter(|r| keep(r)).cloned().collect()
    }

    /// Copies of every row.
    fn all(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.matching(|_| true)
    }
}

#[derive(Debug)]
struct Tables {
    alerts: Table<AlertRow>,
    notifications: Table<NotificationRow>,
    diagnostics: Table<DiagnosticRow>,
    repairs: Table<RepairRow>,
    patterns: Table<PatternRow>,
    predictions: Table<PredictionRow>,
    security: Table<SecurityIncidentRow>,
    performance: Table<PerformanceRow>,
    health_metrics: Table<HealthMetricRow>,
    audit: Table<AuditRow>,
    silences: Table<SilenceRow>,
    maintenance: Table<MaintenanceRow>,
}

/// The in-memory backend.
#[derive(Debug)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

/// Newest first; ties by id (as the Postgres queries order them).
fn by_created_desc<T>(rows: &mut [T], at: impl Fn(&T) -> (DateTime<Utc>, Uuid)) {
    rows.sort_by(|a, b| {
        let (ta, ia) = at(a);
        let (tb, ib) = at(b);
        tb.cmp(&ta).then(ia.cmp(&ib))
    });
}

impl MemoryStore {
    /// Tables holding at most `rows` rows and `bytes` bytes each.
    pub fn new(rows: usize, bytes: usize) -> Self {
        MemoryStore {
            tables: Mutex::new(Tables {
                alerts: Table::new(rows, bytes),
                notifications: Table::new(rows, bytes),
                diagnostics: Table::new(rows, bytes),
                repairs: Table::new(rows, bytes),
                patterns: Table::new(rows, bytes),
                predictions: Table::new(rows, bytes),
                security: Table::new(rows, bytes),
                performance: Table::new(rows, bytes),
                health_metrics: Table::new(rows, bytes),
                audit: Table::new(rows, bytes),
                silences: Table::new(rows, bytes),
                maintenance: Table::new(rows, bytes),
            }),
        }
    }

    /// Rows and bytes held in all tables.
    pub fn size(&self) -> (usize, usize) {
        self.with(|t| {
            let tables: [(usize, usize); 12] = [
                (t.alerts.rows.len(), t.alerts.bytes),
                (t.notifications.rows.len(), t.notifications.bytes),
                (t.diagnostics.rows.len(), t.diagnostics.bytes),
                (t.repairs.rows.len(), t.repairs.bytes),
                (t.patterns.rows.len(), t.patterns.bytes),
                (t.predictions.rows.len(), t.predictions.bytes),
                (t.security.rows.len(), t.security.bytes),
                (t.performance.rows.len(), t.performance.bytes),
                (t.health_metrics.rows.len(), t.health_metrics.bytes),
                (t.audit.rows.len(), t.audit.bytes),
                (t.silences.rows.len(), t.silences.bytes),
                (t.maintenance.rows.len(), t.maintenance.bytes),
            ];
            tables
                .iter()
                .fold((0, 0), |(r, b), (tr, tb)| (r + tr, b + tb))
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> R {
        // A panic while holding the lock cannot leave a table half-written (every operation is
        // a single push or replace), so a poisoned lock is safe to keep using.
        let mut guard = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Apply one write, with the same semantics as Postgres.
    pub fn apply(&self, record: &Record) {
        self.with(|t| match record.clone() {
            Record::Alert(r) => t.alerts.upsert(r, |a, b| a.id == b.id),
            Record::Notification(r) => t.notifications.insert_once(r, |a, b| a.id == b.id),
            Record::Diagnostic(r) => t.diagnostics.insert_once(r, |a, b| a.id == b.id),
            Record::Repair(r) => t.repairs.upsert(r, |a, b| a.id == b.id),
            Record::Pattern(mut r) => {
                // Postgres updates the row in place and never its primary key: a hash keeps
                // the id it was first stored with.
                if let Some(p) = t
                    .patterns
                    .rows
                    .iter()
                    .find(|p| p.pattern_hash == r.pattern_hash)
                {
                    r.id = p.id;
                }
                t.patterns
                    .upsert(r, |a, b| a.pattern_hash == b.pattern_hash)
            }
            Record::Prediction(r) => t.predictions.upsert(r, |a, b| a.id == b.id),
            Record::SecurityIncident(r) => t.security.insert_once(r, |a, b| a.id == b.id),
            Record::Performance(r) => t.performance.insert_once(r, |a, b| a.id == b.id),
            Record::HealthMetric(r) => t
                .health_metrics
                .insert_once(r, |a, b| a.bucket_key() == b.bucket_key()),
            Record::Audit(r) => t.audit.insert_once(r, |a, b| a.id == b.id),
            // Deleted: nothing reads it back from memory, so it leaves.
            Record::Silence(r) if r.deleted_at.is_some() => t.silences.remove(|s| s.id == r.id),
            Record::Silence(r) => t.silences.upsert(r, |a, b| a.id == b.id),
            Record::Maintenance(r) if r.deleted_at.is_some() => {
                t.maintenance.remove(|w| w.id == r.id)
            }
            Record::Maintenance(r) => t.maintenance.upsert(r, |a, b| a.id == b.id),
        })
    }

    pub fn alerts(&self, q: &AlertQuery) -> Page<AlertRow> {
        self.with(|t| {
            let mut rows: Vec<AlertRow> = t
                .alerts
                .rows
                .iter()
                .filter(|a| q.matches(a))
                .cloned()
                .collect();
            by_created_desc(&mut rows, |a| (a.created_at, a.id));
            let total = rows.len() as u64;
            let items = rows.into_iter().skip(q.offset).take(q.limit).collect();
            Page { items, total }
        })
    }

    pub fn alert(&self, id: Uuid) -> Option<AlertRow> {
        self.with(|t| t.alerts.rows.iter().find(|a| a.id == id).cloned())
    }

    pub fn open_alerts(&self) -> Vec<AlertRow> {
        self.with(|t| {
            let mut rows: Vec<AlertRow> = t
                .alerts
                .rows
                .iter()
                .filter(|a| a.state != "resolved")
                .cloned()
                .collect();
            by_created_desc(&mut rows, |a| (a.created_at, a.id));
            rows
        })
    }

    pub fn notifications(&self, alert_id: Uuid) -> Vec<NotificationRow> {
        self.with(|t| {
            let mut rows: Vec<NotificationRow> = t
                .notifications
                .rows
                .iter()
                .filter(|n| n.alert_id == alert_id)
                .cloned()
                .collect();
            rows.sort_by_key(|n| (n.created_at, n.id));
            rows
        })
    }

    pub fn diagnostics(&self, limit: usize) -> Vec<DiagnosticRow> {
        self.with(|t| sorted(t.diagnostics.all(), limit, |r| (r.created_at, r.id)))
    }

    pub fn repairs(&self, limit: usize) -> Vec<RepairRow> {
        self.with(|t| sorted(t.repairs.all(), limit, |r| (r.created_at, r.id)))
    }

    pub fn patterns(&self) -> Vec<PatternRow> {
        self.with(|t| {
            let mut rows = t.patterns.all();
            rows.sort_by(|a, b| a.pattern_hash.cmp(&b.pattern_hash));
            rows
        })
    }

    pub fn predictions(&self, limit: usize) -> Vec<PredictionRow> {
        self.with(|t| sorted(t.predictions.all(), limit, |r| (r.created_at, r.id)))
    }

    pub fn security_incidents(&self, limit: usize) -> Vec<SecurityIncidentRow> {
        self.with(|t| sorted(t.security.all(), limit, |r| (r.created_at, r.id)))
    }

    pub fn performance(&self, limit: usize) -> Vec<PerformanceRow> {
        self.with(|t| sorted(t.performance.all(), limit, |r| (r.created_at, r.id)))
    }

    pub fn audit(&self, limit: usize) -> Vec<AuditRow> {
        self.with(|t| sorted(t.audit.all(), limit, |r| (r.created_at, r.id)))
    }

    /// Silences not deleted and not over (ended at or after `include_expired_since`, when
    /// given), newest created first.
    pub fn silences(&self, include_expired_since: Option<DateTime<Utc>>) -> Vec<SilenceRow> {
        let now = Utc::now();
        self.with(|t| {
            let rows = t.silences.matching(|s| {
                s.deleted_at.is_none()
                    && (s.ends_at > now
                        || include_expired_since.is_some_and(|since| s.ends_at >= since))
            });
            sorted(rows, SILENCES_MAX, |s| (s.created_at, s.id))
        })
    }

    /// Maintenance windows not deleted, oldest created first.
    pub fn maintenance_windows(&self) -> Vec<MaintenanceRow> {
        self.with(|t| {
            let mut rows = t.maintenance.matching(|w| w.deleted_at.is_none());
            rows.sort_by_key(|w| (w.created_at, w.id));
            rows.truncate(MAINTENANCE_WINDOWS_MAX);
            rows
        })
    }

    pub fn metric_history(&self, q: &MetricHistoryQuery) -> Vec<HealthMetricRow> {
        self.with(|t| {
            let mut rows = t.health_metrics.matching(|r| {
                r.metric_name == q.name && q.since.is_none_or(|s| r.bucket_start >= s)
            });
            // The newest `limit`, returned oldest first (a time series).
            rows.sort_by(|a, b| b.bucket_start.cmp(&a.bucket_start).then(a.id.cmp(&b.id)));
            rows.truncate(q.limit);
            rows.reverse();
            rows
        })
    }
}

/// Newest first by `at`, at most `limit`.
fn sorted<T>(mut rows: Vec<T>, limit: usize, at: impl Fn(&T) -> (DateTime<Utc>, Uuid)) -> Vec<T> {
    by_created_desc(&mut rows, at);
    rows.truncate(limit);
    rows
}
