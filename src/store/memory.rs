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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    /// A fixed time `secs` seconds on, with a fraction of the same length (so every row of a
    /// kind has the same size as JSON).
    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 123_456_000)
            .single()
            .unwrap_or_default()
    }

    fn audit(i: i64, details: &str) -> AuditRow {
        AuditRow {
            id: Uuid::new_v4(),
            actor: "admin-token".to_owned(),
            action: "agent.restart".to_owned(),
            resource: Some("agent".to_owned()),
            resource_id: Some("Monitor".to_owned()),
            details: json!({ "outcome": "ok", "note": details }),
            ip_address: Some("127.0.0.1".to_owned()),
            user_agent: None,
            created_at: at(i),
        }
    }

    fn silence(comment: &str) -> SilenceRow {
        SilenceRow {
            id: Uuid::new_v4(),
            matchers: json!([{"field": "type", "value": "API_SLOW"}]),
            starts_at: at(0),
            // Long after any run of this test: in force, so listed.
            ends_at: at(2_000_000_000),
            created_by: "erin".to_owned(),
            comment: Some(comment.to_owned()),
            created_at: at(0),
            updated_at: at(0),
            deleted_at: None,
            deleted_by: None,
        }
    }

    fn window(name: &str) -> MaintenanceRow {
        MaintenanceRow {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            matchers: json!([]),
            days: json!([1, 2, 3]),
            start_minute: 60,
            end_minute: 120,
            utc_offset_minutes: 0,
            created_by: "erin".to_owned(),
            comment: None,
            created_at: at(0),
            updated_at: at(0),
            deleted_at: None,
            deleted_by: None,
        }
    }

    fn ids<T>(rows: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
        rows.iter().map(id).collect()
    }

    #[test]
    fn a_table_bounded_by_bytes_keeps_the_newest_rows_that_fit_and_evicts_the_oldest() {
        let rows: Vec<AuditRow> = (0..10).map(|i| audit(i, "x")).collect();
        let size = size_of(&rows[0]);
        assert!(
            rows.iter().all(|r| size_of(r) == size),
            "equal sizes, for the arithmetic below"
        );
        // Room for three and a half rows; far more rows allowed than that.
        let cap = 3 * size + size / 2;
        let store = MemoryStore::new(1_000, cap);
        for r in &rows {
            store.apply(&Record::Audit(r.clone()));
            assert!(store.size().1 <= cap, "{:?} over {cap}", store.size());
        }
        assert_eq!(store.size(), (3, 3 * size));
        let newest: Vec<Uuid> = rows[7..].iter().rev().map(|r| r.id).collect();
        assert_eq!(ids(&store.audit(100), |r| r.id), newest);

        // A row twice the size pushes out as many of the oldest as it needs.
        let big = audit(10, &"y".repeat(size + 10));
        let big_size = size_of(&big);
        assert!(big_size > 2 * size && big_size + size <= cap);
        store.apply(&Record::Audit(big.clone()));
        assert_eq!(store.size(), (2, big_size + size));
        assert_eq!(ids(&store.audit(100), |r| r.id), vec![big.id, rows[9].id]);
    }

    #[test]
    fn a_row_that_grows_in_place_pushes_the_oldest_out_to_stay_under_the_byte_cap() {
        let (a, b, c) = (silence("a"), silence("b"), silence("c"));
        let size = size_of(&a);
        let cap = 3 * size + 20;
        let store = MemoryStore::new(1_000, cap);
        for s in [&a, &b, &c] {
            store.apply(&Record::Silence(s.clone()));
        }
        assert_eq!(store.size(), (3, 3 * size));
        // `c` gets a comment 100 bytes longer: `a`, the oldest, leaves.
        let mut grown = c.clone();
        grown.comment = Some("c".repeat(101));
        store.apply(&Record::Silence(grown.clone()));
        let (rows, bytes) = store.size();
        assert_eq!((rows, bytes), (2, size + size_of(&grown)));
        assert!(bytes <= cap, "{bytes} over {cap}");
        let listed = store.silences(None);
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|s| s.id != a.id), "{listed:?}");
        assert!(listed.contains(&grown), "{listed:?}");
    }

    #[test]
    fn the_row_cap_still_holds_under_a_large_byte_cap() {
        let store = MemoryStore::new(2, 1 << 20);
        let rows: Vec<AuditRow> = (0..5).map(|i| audit(i, "x")).collect();
        for r in &rows {
            store.apply(&Record::Audit(r.clone()));
        }
        assert_eq!(store.size().0, 2);
        assert_eq!(
            ids(&store.audit(100), |r| r.id),
            vec![rows[4].id, rows[3].id]
        );
    }

    #[test]
    fn a_deleted_silence_leaves_memory() {
        let store = MemoryStore::new(1_000, 1 << 20);
        let (kept, gone) = (silence("kept"), silence("gone"));
        store.apply(&Record::Silence(kept.clone()));
        store.apply(&Record::Silence(gone.clone()));
        assert_eq!(store.size(), (2, size_of(&kept) + size_of(&gone)));

        let mut deleted = gone.clone();
        deleted.deleted_at = Some(Utc::now());
        deleted.deleted_by = Some("erin".to_owned());
        store.apply(&Record::Silence(deleted.clone()));
        assert_eq!(
            store.size(),
            (1, size_of(&kept)),
            "only the kept one's bytes"
        );
        assert_eq!(ids(&store.silences(None), |s| s.id), vec![kept.id]);
        // Not listed even among the expired ones.
        let since = Some(Utc::now() - chrono::Duration::days(30));
        assert_eq!(ids(&store.silences(since), |s| s.id), vec![kept.id]);

        // A deletion arriving again (a replay) or for a silence never held adds nothing.
        store.apply(&Record::Silence(deleted));
        let mut never_held = silence("elsewhere");
        never_held.deleted_at = Some(Utc::now());
        store.apply(&Record::Silence(never_held));
        assert_eq!(store.size(), (1, size_of(&kept)));
    }

    #[test]
    fn a_deleted_maintenance_window_leaves_memory() {
        let store = MemoryStore::new(1_000, 1 << 20);
        let (kept, gone) = (window("kept"), window("gone"));
        store.apply(&Record::Maintenance(kept.clone()));
        store.apply(&Record::Maintenance(gone.clone()));
        assert_eq!(store.size(), (2, size_of(&kept) + size_of(&gone)));

        let mut deleted = gone.clone();
        deleted.deleted_at = Some(Utc::now());
        deleted.deleted_by = Some("erin".to_owned());
        store.apply(&Record::Maintenance(deleted.clone()));
        assert_eq!(store.size(), (1, size_of(&kept)));
        assert_eq!(ids(&store.maintenance_windows(), |w| w.id), vec![kept.id]);

        store.apply(&Record::Maintenance(deleted));
        let mut never_held = window("elsewhere");
        never_held.deleted_at = Some(Utc::now());
        store.apply(&Record::Maintenance(never_held));
        assert_eq!(store.size(), (1, size_of(&kept)));
    }
}
