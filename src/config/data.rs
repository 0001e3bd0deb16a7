//! The data layer: Postgres (pool, write-behind queue, query logger), Redis, retention.

use super::knobs::{Knobs, Section};

/// `DATABASE_URL` and `REDIS_URL`.
#[derive(Debug, Clone)]
pub struct Dependencies {
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
}

impl Section for Dependencies {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Dependencies");
        Dependencies {
            database_url: k.url(
                "DATABASE_URL",
                &["postgres", "postgresql"],
                "",
                "Postgres URL, e.g. postgres://postgres@127.0.0.1:5432/selfheal. Unset: standalone, in memory.",
            ),
            redis_url: k.url(
                "REDIS_URL",
                &["redis", "rediss"],
                "",
                "Redis URL, e.g. redis://127.0.0.1:6379. Unset: no Redis.",
            ),
        }
    }
}

/// Postgres pool, write-behind queue and query logger, and the in-memory store.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DB_POOL_SIZE`: connections in selfheal's own pool.
    pub pool_size: usize,
    /// `DB_TIMEOUT_MS`: connect, checkout and statement timeout of selfheal's own queries.
    pub timeout_ms: u64,
    /// `DB_WRITE_QUEUE_MAX`: records held while Postgres is unreachable; more are refused
    /// (counted and logged).
    pub write_queue_max: usize,
    /// `DB_WRITE_BATCH`: records per write transaction.
    pub write_batch: usize,
    /// `DB_WRITE_FLUSH_MS`: how often queued records are written.
    pub write_flush_ms: u64,
    /// `DB_SPILL_FILE`: the journal of records queued while Postgres is unreachable (each
    /// appended as it arrives, so a crash or a shutdown loses none; queued again at the next
    /// start, removed once written); empty: the queue is kept in memory only.
    pub spill_file: String,
    /// `STORE_MEMORY_ROWS`: rows per table kept in memory (standalone store, and the mirror
    /// that answers reads while Postgres is down).
    pub memory_rows: usize,
    /// `STORE_MEMORY_BYTES`: bytes per in-memory table, at most (the oldest rows go first).
    pub memory_bytes: usize,
    /// `METRICS_PERSIST_INTERVAL_MS`: how often one-minute rollups are written (at most
    /// 300 000: the in-memory ring holds 7 minutes); `0` is off (at shutdown too).
    pub persist_interval_ms: u64,
    /// `DB_LOG_ALL_QUERIES`: log every instrumented query at debug level (keep off in
    /// production).
    pub log_all_queries: bool,
    /// `QUERY_MAX_FINGERPRINTS`: distinct query fingerprints tracked; more are counted, not
    /// stored.
    pub max_fingerprints: usize,
}

impl Section for DatabaseSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Data layer");
        DatabaseSettings {
            pool_size: k.int(
                "DB_POOL_SIZE",
                10,
                1,
                1_000,
                "Connections in selfheal's own Postgres pool.",
            ) as usize,
            timeout_ms: k.int(
                "DB_TIMEOUT_MS",
                2_000,
                1,
                600_000,
                "Connect, checkout and statement timeout of selfheal's own queries, ms.",
            ),
            write_queue_max: k.int(
                "DB_WRITE_QUEUE_MAX",
                100_000,
                1,
                100_000_000,
                "Records held while Postgres is unreachable; more are refused (counted and logged).",
            ) as usize,
            write_batch: k.int(
                "DB_WRITE_BATCH",
                500,
                1,
                5_000,
                "Records per write transaction.",
            ) as usize,
            write_flush_ms: k.int(
                "DB_WRITE_FLUSH_MS",
                1_000,
                1,
                600_000,
                "How often queued records are written, ms.",
            ),
            spill_file: k.string(
                "DB_SPILL_FILE",
                ".selfheal/pending-writes.jsonl",
                "Journal of records queued while Postgres is unreachable (survives a crash or shutdown; written at the next start; created 0600 in a 0700 folder); empty = memory only.",
            ),
            memory_rows: k.int(
                "STORE_MEMORY_ROWS",
                10_000,
                1,
                10_000_000,
                "Rows per table kept in memory (the standalone store; the mirror that answers while Postgres is down).",
            ) as usize,
            memory_bytes: k.int(
                "STORE_MEMORY_BYTES",
                8 << 20,
                1 << 10,
                1 << 34,
                "Bytes per table kept in memory, at most (the oldest rows go first).",
            ) as usize,
            // The one-minute ring holds 7 minutes: persisting less often than every 5 would
            // lose some.
            persist_interval_ms: k.int(
                "METRICS_PERSIST_INTERVAL_MS",
                60_000,
                0,
                300_000,
                "How often one-minute metric rollups are written to system_health_metrics, ms (at most 300000; 0 = off).",
            ),
            log_all_queries: k.bool(
                "DB_LOG_ALL_QUERIES",
                false,
                "Log every instrumented query at debug level (keep off in production).",
            ),
            max_fingerprints: k.int(
                "QUERY_MAX_FINGERPRINTS",
                1_000,
                1,
                1_000_000,
                "Distinct query fingerprints tracked; samples of more are counted, not stored.",
            ) as usize,
        }
    }
}

/// Redis pool and key prefix.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `REDIS_KEY_PREFIX`: every key selfheal writes starts with it.
    pub key_prefix: String,
    /// `REDIS_POOL_SIZE`.
    pub pool_size: usize,
    /// `REDIS_TIMEOUT_MS`: connect and command timeout.
    pub timeout_ms: u64,
}

impl Section for RedisSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        RedisSettings {
            key_prefix: k.string(
                "REDIS_KEY_PREFIX",
                "selfheal:",
                "Prefix of every Redis key selfheal writes.",
            ),
            pool_size: k.int(
                "REDIS_POOL_SIZE",
                8,
                1,
                1_000,
                "Connections in the Redis pool.",
            ) as usize,
            timeout_ms: k.int(
                "REDIS_TIMEOUT_MS",
                2_000,
                1,
                600_000,
                "Redis connect and command timeout, ms.",
            ),
        }
    }
}

/// Retention of stored history.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// `METRICS_RETENTION_DAYS`.
    pub metrics_days: u32,
    /// `ALERTS_RETENTION_DAYS`.
    pub alerts_days: u32,
    /// `PATTERNS_RETENTION_DAYS`.
    pub patterns_days: u32,
}

impl Section for RetentionSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Retention of history in Postgres, days (0 = keep forever; pruned hourly)");
        RetentionSettings {
            metrics_days: k.int(
                "METRICS_RETENTION_DAYS",
                30,
                0,
                36_500,
                "Metric rollups (system_health_metrics).",
            ) as u32,
            alerts_days: k.int(
                "ALERTS_RETENTION_DAYS",
                90,
                0,
                36_500,
                "Resolved alerts and their notification log.",
            ) as u32,
            patterns_days: k.int(
                "PATTERNS_RETENTION_DAYS",
                365,
                0,
                36_500,
                "Learned patterns not updated for this long.",
            ) as u32,
        }
    }
}
