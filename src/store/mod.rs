//! The store: one API every component writes history through and reads it back from.
//!
//! Two backends behind one handle ([`Store`]):
//! - **in memory** (standalone mode, no `DATABASE_URL`): bounded tables, the newest
//!   `STORE_MEMORY_ROWS` rows of each;
//! - **Postgres** (diesel + diesel-async, pooled): writes go through the write-behind
//!   [`writer::StoreWriter`]; the in-memory tables mirror every write, so that while Postgres
//!   is unreachable reads still answer, flagged `partial`.
//!
//! Writes never block the caller and never fail: [`Store::write`] applies the record to
//! memory and queues it for Postgres. Every write is idempotent (see [`Record`]).

pub mod memory;
pub mod model;
pub mod postgres;
#[rustfmt::skip]
pub mod schema;
pub mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use memory::MemoryStore;
pub use model::*;
pub use postgres::PgStore;
pub use writer::{WriterState, WriterStatus};

use crate::config::Settings;
use crate::supervision::{Core, Reporter, StatusCell};
use writer::{Drain, Enqueue, SharedStatus, StoreWriter};

/// Why a store operation failed. Each message names what failed and why, once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Postgres could not be reached (or did not answer in time): retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Postgres answers, but the configuration is wrong (the database does not exist, the
    /// login is refused): not an outage; the message says how to fix it.
    #[error("{0}")]
    Misconfigured(String),
    /// Postgres refused the statement.
    #[error("Postgres refused the query: {0}")]
    Query(String),
    /// The pool could not be built from the configuration.
    #[error("DATABASE_URL: {0}")]
    Config(String),
}

/// Filters for alert listings.
#[derive(Debug, Clone)]
pub struct AlertQuery {
    pub state: Option<String>,
    pub severity: Option<String>,
    pub alert_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
    pub offset: usize,
}

impl Default for AlertQuery {
    fn default() -> Self {
        AlertQuery {
            state: None,
            severity: None,
            alert_type: None,
            since: None,
            limit: 50,
            offset: 0,
        }
    }
}

impl AlertQuery {
    /// Whether `a` passes the filters (the in-memory backend's `WHERE`).
    pub fn matches(&self, a: &AlertRow) -> bool {
        self.state.as_ref().is_none_or(|s| &a.state == s)
            && self.severity.as_ref().is_none_or(|s| &a.severity == s)
            && self.alert_type.as_ref().is_none_or(|t| &a.alert_type == t)
            && self.since.is_none_or(|t| a.created_at >= t)
    }

    /// Whether the alert `a` passes the filters (the routes' overlay of fresh copies).
    pub fn matches_alert(&self, a: &crate::domain::alert::Alert) -> bool {
        self.state.as_ref().is_none_or(|s| a.state.as_str() == s)
            && self
                .severity
                .as_ref()
                .is_none_or(|s| a.severity.as_str() == s)
            && self.alert_type.as_ref().is_none_or(|t| &a.alert_type == t)
            && self.since.is_none_or(|t| a.created_at >= t)
    }
}

/// Filters for metric rollups.
#[derive(Debug, Clone)]
pub struct MetricHistoryQuery {
    pub name: String,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// Most silences [`Store::silences`] returns.
pub const SILENCES_MAX: usize = 1_000;

/// Most maintenance windows [`Store::maintenance_windows`] returns.
pub const MAINTENANCE_WINDOWS_MAX: usize = 1_000;

/// A page of rows and the number matching the filters.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// An answer and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Read<T> {
    pub data: T,
    /// `true` when Postgres could not be read and the answer comes from the in-memory mirror
    /// (the newest rows only, and only those written since this process started).
    pub partial: bool,
    /// `postgres` or `memory`.
    pub source: &'static str,
}

/// Store settings (from `Settings`).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub pool_size: usize,
    pub timeout: Duration,
    pub queue_max: usize,
    pub batch: usize,
    pub flush_every: Duration,
    pub memory_rows: usize,
    /// Bytes per in-memory table, at most.
    pub memory_bytes: usize,
    /// Days kept in Postgres: metric rollups; resolved alerts, expired or deleted silences
    /// and deleted maintenance windows; patterns (`0`: forever).
    pub retention: (u32, u32, u32),
    /// Where unwritten records go at shutdown when Postgres is unreachable (`None`: lost).
    pub spill_file: Option<std::path::PathBuf>,
    /// The writer's restart policy.
    pub supervisor: crate::config::SupervisorSettings,
}

impl StoreOptions {
    pub fn from_settings(s: &Settings) -> Self {
        StoreOptions {
            pool_size: s.database.pool_size,
            timeout: Duration::from_millis(s.database.timeout_ms),
            queue_max: s.database.write_queue_max,
            batch: s.database.write_batch,
            flush_every: Duration::from_millis(s.database.write_flush_ms),
            memory_rows: s.database.memory_rows,
            memory_bytes: s.database.memory_bytes,
            retention: (
                s.retention.metrics_days,
                s.retention.alerts_days,
                s.retention.patterns_days,
            ),
            spill_file: (!s.database.spill_file.is_empty())
                .then(|| std::path::PathBuf::from(&s.database.spill_file)),
            supervisor: s.supervisor.clone(),
        }
    }
}

struct Postgres {
    pg: Arc<PgStore>,
    writer: Addr<StoreWriter>,
    status: SharedStatus,
    /// The writer's supervision status.
    cell: StatusCell,
    /// The arbiter (thread) all of selfheal's Postgres work runs on.
    arbiter: ArbiterHandle,
}

struct Inner {
    memory: MemoryStore,
    postgres: Option<Postgres>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: stop the database arbiter (and the writer on it). What is
        // still queued then is in the journal if Postgres was down; `SelfHeal::shutdown`
        // drains the queue before this happens.
        if let Some(p) = &self.postgres {
            p.arbiter.stop();
        }
    }
}

/// The store handle. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// What `/health` and the Monitor show about the store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    /// `memory` or `postgres`.
    pub backend: &'static str,
    /// The write-behind queue (Postgres only).
    pub writer: Option<WriterStatus>,
}

impl Store {
    /// The in-memory backend: at most `rows` rows and `bytes` bytes per table.
    pub fn memory(rows: usize, bytes: usize) -> Self {
        Store {
            inner: Arc::new(Inner {
                memory: MemoryStore::new(rows, bytes),
                postgres: None,
            }),
        }
    }

    /// The Postgres backend, with its write-behind writer started on an arbiter of its own
    /// in the current actix `System` (all of selfheal's Postgres work runs there). Does not connect: an unreachable Postgres is reported by the writer and the
    /// Monitor, and writes wait in the queue.
    pub fn postgres(url: &str, o: &StoreOptions, reporter: Reporter) -> Result<Self, StoreError> {
        let pg = Arc::new(PgStore::new(url, o.pool_size, o.timeout)?);
        let mut writer = StoreWriter::new(pg.clone(), o, reporter);
        let status = writer.status();
        let cell = writer.status_cell();
        let arbiter = Arbiter::new().handle();
        let writer = Supervisor::start_in_arbiter(&arbiter, move |_| writer);
        Ok(Store {
            inner: Arc::new(Inner {
                memory: MemoryStore::new(o.memory_rows, o.memory_bytes),
                postgres: Some(Postgres {
                    pg,
                    writer,
                    status,
                    cell,
                    arbiter,
                }),
            }),
        })
    }

    /// From the settings: Postgres when `DATABASE_URL` is set, memory otherwise; the writer's
    /// failures are told to `reporter`.
    pub fn from_settings(settings: &Settings, reporter: Reporter) -> Result<Self, StoreError> {
        let o = StoreOptions::from_settings(settings);
        match &settings.database_url {
            Some(url) => Self::postgres(url, &o, reporter),
            None => Ok(Self::memory(o.memory_rows, o.memory_bytes)),
        }
    }

    /// The write-behind writer and its supervision status (Postgres only).
    pub fn writer(&self) -> Option<(Addr<StoreWriter>, StatusCell)> {
        self.inner
            .postgres
            .as_ref()
            .map(|p| (p.writer.clone(), p.cell.clone()))
    }

    /// Rows and bytes held by the in-memory tables.
    pub fn memory_size(&self) -> (usize, usize) {
        self.inner.memory.size()
    }

    /// The Postgres backend, if configured.
    pub fn pg(&self) -> Option<&PgStore> {
        self.inner.postgres.as_ref().map(|p| &*p.pg)
    }

    /// `memory` or `postgres`.
    pub fn backend(&self) -> &'static str {
        if self.inner.postgres.is_some() {
            "postgres"
        } else {
            "memory"
        }
    }

    /// Backend and write-queue figures.
    pub fn status(&self) -> StoreStatus {
        StoreStatus {
            backend: self.backend(),
            writer: self
                .inner
                .postgres
                .as_ref()
                .map(|p| writer::read_status(&p.status)),
        }
    }

    /// Record a write: applied to memory now, written to Postgres behind.
    pub fn write(&self, mut record: Record) {
        record.clip();
        self.inner.memory.apply(&record);
        if let Some(p) = &self.inner.postgres {
            p.writer.do_send(Enqueue(record));
        }
    }

    /// Wait until everything written so far is in Postgres; `false` after `timeout`.
    /// Always `true` in memory.
    pub async fn flush(&self, timeout: Duration) -> bool {
        match &self.inner.postgres {
            None => true,
            Some(p) => p.writer.send(Drain(timeout)).await.unwrap_or(false),
        }
    }

    /// After a [`Store::flush`] that timed out (shutdown): save what is still queued to the
    /// spill file, read back at the next start. Answers how many records were saved.
    pub async fn spill(&self) -> Result<usize, String> {
        match &self.inner.postgres {
            None => Ok(0),
            Some(p) => p
                .writer
                .send(writer::Spill)
                .await
                .map_err(|e| e.to_string())?,
        }
    }

    /// Run `work` on the database arbiter: every connection of selfheal's pool is opened
    /// and driven there (diesel-async drives a connection on the runtime that opened it), so
    /// a busy HTTP worker can never stall the writer's or the Monitor's queries.
    async fn on_db<T, Fut>(
        &self,
        work: impl FnOnce(Arc<PgStore>) -> Fut + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let Some(p) = &self.inner.postgres else {
            return Err(StoreError::Config("no DATABASE_URL".to_owned()));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let pg = p.pg.clone();
        let started = p.arbiter.spawn(async move {
            let _ = tx.send(work(pg).await);
        });
        if !started {
            return Err(StoreError::Unavailable(
                "the database arbiter has stopped".to_owned(),
            ));
        }
        rx.await
            .map_err(|_| StoreError::Unavailable("the database arbiter has stopped".to_owned()))?
    }

    /// Time a `SELECT 1` (Postgres only; `None` in memory).
    pub async fn ping(&self) -> Option<Result<Duration, StoreError>> {
        self.inner.postgres.as_ref()?;
        Some(self.on_db(|pg| async move { pg.ping().await }).await)
    }

    /// Read from Postgres when it is up, else from memory (flagged partial).
    async fn read<T, Fut>(
        &self,
        from_pg: impl FnOnce(Arc<PgStore>) -> Fut + Send + 'static,
        from_memory: impl FnOnce(&MemoryStore) -> T,
    ) -> Read<T>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let Some(p) = &self.inner.postgres else {
            return Read {
                data: from_memory(&self.inner.memory),
                partial: false,
                source: "memory",
            };
        };
        // Known down: answer at once rather than wait for a timeout on every read.
        if !matches!(
            writer::read_state(&p.status),
            WriterState::Down | WriterState::Misconfigured
        ) {
            match self.on_db(from_pg).await {
                Ok(data) => {
                    return Read {
                        data,
                        partial: false,
                        source: "postgres",
                    }
                }
                Err(e @ StoreError::Query(_)) => {
                    log::warn!("store: Postgres refused a read ({e}); answering from memory")
                }
                Err(e) => {
                    log::debug!("store: read from Postgres failed ({e}); answering from memory")
                }
            }
        }
        Read {
            data: from_memory(&self.inner.memory),
            partial: true,
            source: "memory",
        }
    }

    pub async fn alerts(&self, q: &AlertQuery) -> Read<Page<AlertRow>> {
        let owned = q.clone();
        self.read(
            move |pg| async move { pg.alerts(&owned).await },
            |m| m.alerts(q),
        )
        .await
    }

    pub async fn alert(&self, id: Uuid) -> Read<Option<AlertRow>> {
        self.read(move |pg| async move { pg.alert(id).await }, |m| m.alert(id))
            .await
    }

    /// Alerts not resolved (the alert manager reloads them at start).
    pub async fn open_alerts(&self) -> Read<Vec<AlertRow>> {
        self.read(
            |pg| async move { pg.open_alerts().await },
            |m| m.open_alerts(),
        )
        .await
    }

    /// Silences not deleted and not over, plus, with `include_expired_since`, those that
    /// ended at or after it; newest created first, at most [`SILENCES_MAX`].
    pub async fn silences(
        &self,
        include_expired_since: Option<DateTime<Utc>>,
    ) -> Read<Vec<SilenceRow>> {
        self.read(
            move |pg| async move { pg.silences(include_expired_since).await },
            |m| m.silences(include_expired_since),
        )
        .await
    }

    /// Maintenance windows not deleted, oldest created first, at most
    /// [`MAINTENANCE_WINDOWS_MAX`].
    pub async fn maintenance_windows(&self) -> Read<Vec<MaintenanceRow>> {
        self.read(
            |pg| async move { pg.maintenance_windows().await },
            |m| m.maintenance_windows(),
        )
        .await
    }

    pub async fn notifications(&self, alert_id: Uuid) -> Read<Vec<NotificationRow>> {
        self.read(
            move |pg| async move { pg.notifications(alert_id).await },
            |m| m.notifications(alert_id),
        )
        .await
    }

    pub async fn diagnostics(&self, limit: usize) -> Read<Vec<DiagnosticRow>> {
        self.read(
            move |pg| async move { pg.diagnostics(limit).await },
            |m| m.diagnostics(limit),
        )
        .await
    }

    pub async fn repairs(&self, limit: usize) -> Read<Vec<RepairRow>> {
        self.read(
            move |pg| async move { pg.repairs(limit).await },
            |m| m.repairs(limit),
        )
        .await
    }

    pub async fn patterns(&self) -> Read<Vec<PatternRow>> {
        self.read(|pg| async move { pg.patterns().await }, |m| m.patterns())
            .await
    }

    pub async fn predictions(&self, limit: usize) -> Read<Vec<PredictionRow>> {
        self.read(
            move |pg| async move { pg.predictions(limit).await },
            |m| m.predictions(limit),
        )
        .await
    }

    pub async fn security_incidents(&self, limit: usize) -> Read<Vec<SecurityIncidentRow>> {
        self.read(
            move |pg| async move { pg.security_incidents(limit).await },
            |m| m.security_incidents(limit),
        )
        .await
    }

    pub async fn performance(&self, limit: usize) -> Read<Vec<PerformanceRow>> {
        self.read(
            move |pg| async move { pg.performance(limit).await },
            |m| m.performance(limit),
        )
        .await
    }

    pub async fn audit(&self, limit: usize) -> Read<Vec<AuditRow>> {
        self.read(
            move |pg| async move { pg.audit(limit).await },
            |m| m.audit(limit),
        )
        .await
    }

    pub async fn metric_history(&self, q: &MetricHistoryQuery) -> Read<Vec<HealthMetricRow>> {
        let owned = q.clone();
        self.read(
            move |pg| async move { pg.metric_history(&owned).await },
            |m| m.metric_history(q),
        )
        .await
    }
}
