//! The Postgres backend: diesel + diesel-async over a deadpool pool. Migrations are embedded
//! and run on the first write (and at start when Postgres answers), so a start with Postgres
//! down still serves, and the schema appears when it comes back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use uuid::Uuid;

use super::model::*;
use super::schema::*;
use super::{
    AlertQuery, MetricHistoryQuery, Page, StoreError, MAINTENANCE_WINDOWS_MAX, SILENCES_MAX,
};

/// The migrations in `migrations/`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pool of Postgres connections and the schema state.
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
    url: String,
    /// `host:port/database` of the URL, for messages (never the password).
    target: String,
    timeout: Duration,
    migrated: AtomicBool,
    /// Held while migrations run: one run at a time per store.
    migrating: tokio::sync::Mutex<()>,
}

/// Rows written, the rows Postgres refused (index in the batch, reason), and whether the
/// refusals came from the server (it refuses writes of any kind) rather than the rows.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    pub written: usize,
    pub refused: Vec<(usize, String)>,
    pub server_refuses: bool,
}

/// Whether an error means "Postgres is unreachable" (retry later) rather than "this data is bad".
fn is_outage(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(kind, _) => matches!(
            kind,
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
        ),
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

/// `host:port/database` of a Postgres URL (no user, no password, no query).
pub fn target_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_owned()
}

/// A connection failure in words: where, and the cause (without the pool's own wording). A
/// database that does not exist, or a refused login, is a configuration problem with a hint,
/// not an outage.
pub fn connect_error(url: &str, cause: impl std::fmt::Display) -> StoreError {
    let cause = cause.to_string();
    let cause = cause
        .strip_prefix("Error occurred while creating a new object: ")
        .unwrap_or(&cause)
        .trim()
        .to_owned();
    let target = target_of(url);
    if let Some(db) = cause
        .strip_prefix("database \"")
        .and_then(|r| r.split_once("\" does not exist"))
        .map(|(db, _)| db.to_owned())
    {
        let (hostport, _) = target.split_once('/').unwrap_or((&target, ""));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        let user = url
            .split_once("://")
            .and_then(|(_, r)| r.rsplit_once('@'))
            .map(|(cred, _)| cred.split(':').next().unwrap_or("postgres").to_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres".to_owned());
        return StoreError::Misconfigured(format!(
            "Postgres at {hostport} answers, but the database {db:?} does not exist: create it \
             with `createdb -h {host} -p {port} -U {user} {db}` (or point DATABASE_URL at one \
             that exists); selfheal keeps checking and starts writing once it is there"
        ));
    }
    if cause.contains("password authentication failed")
        || (cause.contains("role \"") && cause.contains("does not exist"))
        || cause.contains("no pg_hba.conf entry")
    {
        return StoreError::Misconfigured(format!(
            "Postgres at {target} refuses the login: {cause}; check the user and password in \
             DATABASE_URL"
        ));
    }
    StoreError::Unavailable(format!("Postgres at {target} does not answer: {cause}"))
}

fn diesel_err(e: DieselError) -> StoreError {
    if is_outage(&e) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Query(e.to_string())
    }
}

/// A pool builder with the timeouts every selfheal pool uses. Connections are checked out
/// with `RecyclingMethod::Fast`: no extra round trip per checkout; a broken connection is
/// discarded by the pool (and a query on a connection that died since fails once).
fn pool_with(
    manager: AsyncDieselConnectionManager<AsyncPgConnection>,
    max_size: usize,
    timeout: Duration,
) -> Result<Pool<AsyncPgConnection>, StoreError> {
    Pool::builder(manager)
        .max_size(max_size.max(1))
        .runtime(deadpool_redis::Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| StoreError::Config(e.to_string()))
}

/// A manager for `url` with fast recycling and no instrumentation.
pub fn plain_manager(url: &str) -> AsyncDieselConnectionManager<AsyncPgConnection> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    AsyncDieselConnectionManager::new_with_config(url, config)
}

/// Run the pending migrations on a dedicated connection (diesel's harness is synchronous; it
/// runs on a blocking thread with its own runtime). Returns how many ran.
pub async fn run_migrations(url: &str) -> Result<usize, StoreError> {
    let url = url.to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .map_err(|e| connect_error(&url, e))?;
        // One migrating instance at a time, across processes: the lock is held by this
        // connection and released when it closes.
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            &format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"),
        )
        .map_err(|e| connect_error(&url, e))?;
        let ran = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::Query(format!("migration failed: {e}")))?;
        Ok(ran.len())
    })
    .await
    .map_err(|e| StoreError::Query(format!("migration task failed: {e}")))?
}

/// Key of the Postgres advisory lock taken while migrating ("selfheal" in ASCII).
const MIGRATION_LOCK: i64 = 0x73656c666865616c;

/// Revert every migration (tests: up, down, up).
pub async fn revert_migrations(url: &str) -> Result<usize, StoreError> {
    let url = url.to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let reverted = conn
            .revert_all_migrations(MIGRATIONS)
            .map_err(|e| StoreError::Query(format!("revert failed: {e}")))?;
        Ok(reverted.len())
    })
    .await
    .map_err(|e| StoreError::Query(format!("migration task failed: {e}")))?
}

impl PgStore {
    /// A store on `url`. Connects lazily: this does not fail when Postgres is down.
    pub fn new(url: &str, max_size: usize, timeout: Duration) -> Result<Self, StoreError> {
        Ok(PgStore {
            pool: pool_with(plain_manager(url), max_size, timeout)?,
            url: url.to_owned(),
            target: target_of(url),
            timeout,
            migrated: AtomicBool::new(false),
            migrating: tokio::sync::Mutex::new(()),
        })
    }

    /// The pool (the Monitor reads its status and times `SELECT 1` on it).
    pub fn pool(&self) -> &Pool<AsyncPgConnection> {
        &self.pool
    }

    /// Run migrations once per process (again after a failure).
    pub async fn ensure_migrated(&self) -> Result<(), StoreError> {
        if AtomicBool::load(&self.migrated, Ordering::Acquire) {
            return Ok(());
        }
        // The writer's start, its first batch and a read may all ask at once; two runs at once
        // on a fresh database make one fail (the other's tables already exist). Wait for the
        // run under way, then see whether it succeeded.
        let _one_run = self.migrating.lock().await;
        if AtomicBool::load(&self.migrated, Ordering::Acquire) {
            return Ok(());
        }
        // Any failure here (even a schema conflict) is retried, never a reason to drop rows.
        let ran = run_migrations(&self.url).await.map_err(|e| match e {
            StoreError::Query(m) => StoreError::Unavailable(format!(
                "Postgres at {}: the schema could not be set up: {m}",
                self.target
            )),
            other => other,
        })?;
        if ran > 0 {
            log::info!("database: applied {ran} migration(s)");
        }
        AtomicBool::store(&self.migrated, true, Ordering::Release);
        Ok(())
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| connect_error(&self.url, e))
    }

    /// Run `f` on a pooled connection within the store's timeout.
    async fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, DieselError>,
    ) -> Result<T, StoreError> {
        let work = async {
            self.ensure_migrated().await?;
            let mut conn = self.conn().await?;
            f(&mut conn).await.map_err(diesel_err)
        };
        match actix_web::rt::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "Postgres at {} does not answer within {} ms",
                self.target,
                self.timeout.as_millis()
            ))),
        }
    }

    /// Time a `SELECT 1`.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let work = async {
            let mut conn = self.conn().await?;
            let start = std::time::Instant::now();
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                .get_result::<i32>(&mut conn)
                .await
                .map_err(diesel_err)?;
            Ok(start.elapsed())
        };
        actix_web::rt::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "Postgres at {}: SELECT 1 took longer than {} ms",
                    self.target,
                    self.timeout.as_millis()
                )))
            })
    }

    /// Write a batch in one transaction. When Postgres refuses it (bad data, or a server that
    /// refuses writes), the batch is written row by row and the refused rows are reported by
    /// their index; the writer decides what that means. An unreachable server is an `Err`.
    pub async fn write(&self, batch: &[&Record]) -> Result<WriteOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let whole = self
            .with_conn(async |conn| {
                conn.transaction(async |tx| write_all(tx, batch).await)
                    .await
            })
            .await;
        match whole {
            Ok(()) => Ok(WriteOutcome {
                written: batch.len(),
                ..WriteOutcome::default()
            }),
            Err(StoreError::Query(why)) => {
                log::warn!(
                    "database: a batch of {} was refused ({why}); writing row by row",
                    batch.len()
                );
                let mut outcome = WriteOutcome::default();
                for (i, record) in batch.iter().enumerate() {
                    let one = std::slice::from_ref(record);
                    match self
                        .with_conn(async |conn| write_all(conn, one).await)
                        .await
                    {
                        Ok(()) => outcome.written += 1,
                        Err(StoreError::Query(why)) => outcome.refused.push((i, why)),
                        Err(e) => return Err(e),
                    }
                }
                if !outcome.refused.is_empty() {
                    // The rows, or the server? A write of our own says which.
                    outcome.server_refuses = !self.accepts_writes().await?;
                    if outcome.server_refuses || outcome.written == 0 {
                        // Perhaps the schema is gone: check it again before the next attempt.
                        AtomicBool::store(&self.migrated, false, Ordering::Release);
                    }
                }
                Ok(outcome)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether Postgres accepts writes now: one upsert into `selfheal_write_probe`. `Ok(false)`
    /// when it answers but refuses (read-only, disk full, the table gone); `Err` when it does
    /// not answer.
    pub async fn accepts_writes(&self) -> Result<bool, StoreError> {
        let probe = self
            .with_conn(async |conn| {
                diesel::insert_into(selfheal_write_probe::table)
                    .values((
                        selfheal_write_probe::id.eq(1),
                        selfheal_write_probe::written_at.eq(diesel::dsl::now),
                    ))
                    .on_conflict(selfheal_write_probe::id)
                    .do_update()
                    .set(selfheal_write_probe::written_at.eq(diesel::dsl::now))
                    .execute(conn)
                    .await
            })
            .await;
        match probe {
            Ok(_) => Ok(true),
            Err(StoreError::Query(why)) => {
                log::warn!("database: answers but refuses writes: {why}");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Delete history older than the retention periods (days; `0` keeps forever): metric
    /// rollups; resolved alerts with their notifications, expired or deleted silences and
    /// deleted maintenance windows (all on the alerts period); stale patterns. Each table is pruned
    /// on its own, in chunks of [`PRUNE_CHUNK`] rows found through an index, each chunk in a
    /// transaction with a server-side statement timeout, so a large backlog is worked off over
    /// several runs without holding a connection for long. Returns the rows deleted.
    pub async fn prune(
        &self,
        metrics_days: u32,
        alerts_days: u32,
        patterns_days: u32,
    ) -> Result<usize, StoreError> {
        self.prune_in_chunks(metrics_days, alerts_days, patterns_days, PRUNE_CHUNK)
            .await
    }

    /// [`PgStore::prune`] with `chunk` rows per statement. A table that fails is logged and
    /// the others are still pruned; the first error is returned after all were tried.
    pub async fn prune_in_chunks(
        &self,
        metrics_days: u32,
        alerts_days: u32,
        patterns_days: u32,
        chunk: usize,
    ) -> Result<usize, StoreError> {
        let chunk = chunk.max(1);
        let mut deleted = 0;
        let mut first_error = None;
        for (table, days, statements) in [
            ("system_health_metrics", metrics_days, PRUNE_METRICS),
            ("system_alerts", alerts_days, PRUNE_ALERTS),
            ("alert_silences", alerts_days, PRUNE_SILENCES),
            ("maintenance_windows", alerts_days, PRUNE_MAINTENANCE),
            ("learning_patterns", patterns_days, PRUNE_PATTERNS),
        ] {
            if days == 0 {
                continue;
            }
            let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
            for _ in 0..PRUNE_MAX_CHUNKS {
                // The server cancels a statement after PRUNE_STATEMENT_MS; this bounds a
                // server that does not answer at all.
                let budget = Duration::from_millis(PRUNE_STATEMENT_MS * 2 + 5_000);
                let n = match actix_web::rt::time::timeout(
                    budget,
                    self.prune_chunk(statements, before, chunk),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => {
                        log::warn!("database: pruning {table} failed: {e}");
                        first_error.get_or_insert(e);
                        break;
                    }
                    Err(_) => {
                        log::warn!(
                            "database: pruning {table}: no answer in {} ms",
                            budget.as_millis()
                        );
                        first_error.get_or_insert(StoreError::Unavailable(format!(
                            "pruning {table}: no answer"
                        )));
                        break;
                    }
                };
                deleted += n;
                if n < chunk {
                    break;
                }
            }
        }
        match first_error {
            Some(e) if deleted == 0 => Err(e),
            _ => Ok(deleted),
        }
    }

    /// One chunk: `statements` in order, each bound to `before`; the last one's row count.
    async fn prune_chunk(
        &self,
        statements: &'static [&'static str],
        before: chrono::DateTime<chrono::Utc>,
        chunk: usize,
    ) -> Result<usize, StoreError> {
        self.ensure_migrated().await?;
        let mut conn = self.conn().await?;
        conn.transaction(async |tx| {
            diesel::sql_query(format!(
                "SET LOCAL statement_timeout = {PRUNE_STATEMENT_MS}"
            ))
            .execute(tx)
            .await?;
            let mut n = 0;
            for sql in statements {
                n = diesel::sql_query(*sql)
                    .bind::<diesel::sql_types::Timestamptz, _>(before)
                    .bind::<diesel::sql_types::BigInt, _>(chunk as i64)
                    .execute(tx)
                    .await?;
            }
            Ok::<usize, DieselError>(n)
        })
        .await
        .map_err(diesel_err)
    }

    pub async fn alerts(&self, q: &AlertQuery) -> Result<Page<AlertRow>, StoreError> {
        let q = q.clone();
        self.with_conn(async move |conn| {
            let filtered = || {
                let mut query = system_alerts::table.into_boxed();
                if let Some(s) = &q.state {
                    query = query.filter(system_alerts::state.eq(s.clone()));
                }
                if let Some(s) = &q.severity {
                    query = query.filter(system_alerts::severity.eq(s.clone()));
                }
                if let Some(t) = &q.alert_type {
                    query = query.filter(system_alerts::alert_type.eq(t.clone()));
                }
                if let Some(since) = q.since {
                    query = query.filter(system_alerts::created_at.ge(since));
                }
                query
            };
            let total: i64 = filtered().count().get_result(conn).await?;
            let items = filtered()
                .order((system_alerts::created_at.desc(), system_alerts::id))
                .limit(q.limit as i64)
                .offset(q.offset as i64)
                .select(AlertRow::as_select())
                .load(conn)
                .await?;
            Ok(Page {
                items,
                total: total as u64,
            })
        })
        .await
    }

    pub async fn alert(&self, id: Uuid) -> Result<Option<AlertRow>, StoreError> {
        self.with_conn(async |conn| {
            system_alerts::table
                .find(id)
                .select(AlertRow::as_select())
                .first(conn)
                .await
                .optional()
        })
        .await
    }

    pub async fn open_alerts(&self) -> Result<Vec<AlertRow>, StoreError> {
        self.with_conn(async |conn| {
            system_alerts::table
                .filter(system_alerts::state.ne("resolved"))
                .order((system_alerts::created_at.desc(), system_alerts::id))
                .select(AlertRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn notifications(&self, alert_id: Uuid) -> Result<Vec<NotificationRow>, StoreError> {
        self.with_conn(async |conn| {
            notification_log::table
                .filter(notification_log::alert_id.eq(alert_id))
                .order((notification_log::created_at.asc(), notification_log::id))
                .select(NotificationRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn diagnostics(&self, limit: usize) -> Result<Vec<DiagnosticRow>, StoreError> {
        self.with_conn(async |conn| {
            diagnostic_reports::table
                .order((
                    diagnostic_reports::created_at.desc(),
                    diagnostic_reports::id,
                ))
                .limit(limit as i64)
                .select(DiagnosticRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn repairs(&self, limit: usize) -> Result<Vec<RepairRow>, StoreError> {
        self.with_conn(async |conn| {
            repair_history::table
                .order((repair_history::created_at.desc(), repair_history::id))
                .limit(limit as i64)
                .select(RepairRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn patterns(&self) -> Result<Vec<PatternRow>, StoreError> {
        self.with_conn(async |conn| {
            learning_patterns::table
                .order(learning_patterns::pattern_hash.asc())
                .select(PatternRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn predictions(&self, limit: usize) -> Result<Vec<PredictionRow>, StoreError> {
        self.with_conn(async |conn| {
            predictions::table
                .order((predictions::created_at.desc(), predictions::id))
                .limit(limit as i64)
                .select(PredictionRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn security_incidents(
        &self,
        limit: usize,
    ) -> Result<Vec<SecurityIncidentRow>, StoreError> {
        self.with_conn(async |conn| {
            security_incidents::table
                .order((
                    security_incidents::created_at.desc(),
                    security_incidents::id,
                ))
                .limit(limit as i64)
                .select(SecurityIncidentRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn performance(&self, limit: usize) -> Result<Vec<PerformanceRow>, StoreError> {
        self.with_conn(async |conn| {
            performance_metrics::table
                .order((
                    performance_metrics::created_at.desc(),
                    performance_metrics::id,
                ))
                .limit(limit as i64)
                .select(PerformanceRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        self.with_conn(async |conn| {
            admin_audit_logs::table
                .order((admin_audit_logs::created_at.desc(), admin_audit_logs::id))
                .limit(limit as i64)
                .select(AuditRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    /// Silences not deleted and not over (ended at or after `include_expired_since`, when
    /// given), newest created first.
    pub async fn silences(
        &self,
        include_expired_since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<SilenceRow>, StoreError> {
        let now = chrono::Utc::now();
        self.with_conn(async move |conn| {
            let mut query = alert_silences::table
                .filter(alert_silences::deleted_at.is_null())
                .into_boxed();
            query = match include_expired_since {
                Some(since) => query.filter(
                    alert_silences::ends_at
                        .gt(now)
                        .or(alert_silences::ends_at.ge(since)),
                ),
                None => query.filter(alert_silences::ends_at.gt(now)),
            };
            query
                .order((alert_silences::created_at.desc(), alert_silences::id))
                .limit(SILENCES_MAX as i64)
                .select(SilenceRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    /// Maintenance windows not deleted, oldest created first.
    pub async fn maintenance_windows(&self) -> Result<Vec<MaintenanceRow>, StoreError> {
        self.with_conn(async |conn| {
            maintenance_windows::table
                .filter(maintenance_windows::deleted_at.is_null())
                .order((
                    maintenance_windows::created_at.asc(),
                    maintenance_windows::id,
                ))
                .limit(MAINTENANCE_WINDOWS_MAX as i64)
                .select(MaintenanceRow::as_select())
                .load(conn)
                .await
        })
        .await
    }

    pub async fn metric_history(
        &self,
        q: &MetricHistoryQuery,
    ) -> Result<Vec<HealthMetricRow>, StoreError> {
        let q = q.clone();
        self.with_conn(async move |conn| {
            let mut query = system_health_metrics::table
                .filter(system_health_metrics::metric_name.eq(q.name.clone()))
                .into_boxed();
            if let Some(since) = q.since {
                query = query.filter(system_health_metrics::bucket_start.ge(since));
            }
            let mut rows = query
                .order((
                    system_health_metrics::bucket_start.desc(),
                    system_health_metrics::id,
                ))
                .limit(q.limit as i64)
                .select(HealthMetricRow::as_select())
                .load(conn)
                .await?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }
}

/// The last write of each key wins within a batch (an upsert may not touch a row twice).
fn last_by<K: std::hash::Hash + Eq, T: Clone>(rows: Vec<&T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut at: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<T> = Vec::new();
    for r in rows {
        match at.get(&key(r)) {
            Some(&i) => out[i] = r.clone(),
            None => {
                at.insert(key(r), out.len());
                out.push(r.clone());
            }
        }
    }
    out
}

/// Rows deleted per pruning statement.
const PRUNE_CHUNK: usize = 10_000;

/// Pruning statements ($1: the cutoff, $2: the chunk size), each table through its index.
const PRUNE_METRICS: &[&str] = &["DELETE FROM system_health_metrics WHERE id IN \
     (SELECT id FROM system_health_metrics WHERE bucket_start < $1 LIMIT $2)"];
// Both statements pick the same alerts (same order, and old resolved alerts do not change).
const PRUNE_ALERTS: &[&str] = &[
    "DELETE FROM notification_log WHERE alert_id IN \
     (SELECT id FROM system_alerts WHERE state = 'resolved' AND last_seen < $1 \
      ORDER BY last_seen, id LIMIT $2)",
    "DELETE FROM system_alerts WHERE id IN \
     (SELECT id FROM system_alerts WHERE state = 'resolved' AND last_seen < $1 \
      ORDER BY last_seen, id LIMIT $2)",
];
// Silences ended, or deleted, before the cutoff.
const PRUNE_SILENCES: &[&str] = &["DELETE FROM alert_silences WHERE id IN \
     (SELECT id FROM alert_silences WHERE ends_at < $1 OR deleted_at < $1 LIMIT $2)"];
const PRUNE_MAINTENANCE: &[&str] = &["DELETE FROM maintenance_windows WHERE id IN \
     (SELECT id FROM maintenance_windows WHERE deleted_at < $1 LIMIT $2)"];
const PRUNE_PATTERNS: &[&str] = &["DELETE FROM learning_patterns WHERE id IN \
     (SELECT id FROM learning_patterns WHERE updated_at < $1 LIMIT $2)"];
/// Chunks per table and run (the rest waits for the next run, an hour later).
const PRUNE_MAX_CHUNKS: usize = 100;
/// Server-side limit on one pruning statement, ms.
const PRUNE_STATEMENT_MS: u64 = 30_000;

/// Rows per multi-row insert: 65 535 parameters / at most 17 columns (the widest insert-once
/// table), with room to spare.
const INSERT_CHUNK: usize = 1_000;

/// Write every record: multi-row inserts for insert-once tables, one upsert per row for the
/// rest.
async fn write_all(conn: &mut AsyncPgConnection, batch: &[&Record]) -> Result<(), DieselError> {
    macro_rules! collect {
        ($variant:ident) => {
            batch
                .iter()
                .filter_map(|r| match *r {
                    Record::$variant(row) => Some(row),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
    }
    macro_rules! insert_once {
        ($variant:ident, $table:ident) => {{
            let rows: Vec<_> = collect!($variant).into_iter().cloned().collect();
            // Postgres takes at most 65 535 parameters per statement.
            for chunk in rows.chunks(INSERT_CHUNK) {
                diesel::insert_into($table::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
        }};
    }
    macro_rules! upsert_by_id {
        ($variant:ident, $table:ident) => {{
            for row in last_by(collect!($variant), |r| r.id) {
                diesel::insert_into($table::table)
                    .values(&row)
                    .on_conflict($table::id)
                    .do_update()
                    .set(&row)
                    .execute(conn)
                    .await?;
            }
        }};
    }
    upsert_by_id!(Alert, system_alerts);
    insert_once!(Notification, notification_log);
    insert_once!(Diagnostic, diagnostic_reports);
    upsert_by_id!(Repair, repair_history);
    for row in last_by(collect!(Pattern), |r| r.pattern_hash.clone()) {
        diesel::insert_into(learning_patterns::table)
            .values(&row)
            .on_conflict(learning_patterns::pattern_hash)
            .do_update()
            .set(&row)
            .execute(conn)
            .await?;
    }
    upsert_by_id!(Prediction, predictions);
    upsert_by_id!(Silence, alert_silences);
    upsert_by_id!(Maintenance, maintenance_windows);
    insert_once!(SecurityIncident, security_incidents);
    insert_once!(Performance, performance_metrics);
    insert_once!(HealthMetric, system_health_metrics);
    insert_once!(Audit, admin_audit_logs);
    Ok(())
}
