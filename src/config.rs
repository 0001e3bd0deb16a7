//! Settings read once from the environment (and `.env` through dotenvy).
//!
//! Every knob has one line in [`Settings::from_lookup`]: its env name, its default, and its
//! bounds. The same parse, run against an empty environment, lists every knob with its default
//! ([`Settings::knobs`]); a test keeps `.env.example` and the README in step with that list.
//!
//! Rules: an unset or empty variable takes its default; `0` is accepted wherever it means
//! "off" (thresholds, intervals); anything that does not parse or is out of range is an error,
//! and every error is reported at once ([`ConfigError`]).

use std::time::Duration;

pub use crate::domain::alert::SeverityRoutes;

/// Every problem found in the environment, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per bad variable: `NAME=value: what is wrong`.
    pub problems: Vec<String>,
}

/// The whole configuration. Built by [`Settings::from_env`] or [`Settings::from_lookup`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ENABLE_SELF_HEALING`: start the agents. The tracer and system routes work either way.
    pub enable_self_healing: bool,
    /// HTTP listener and admin access.
    pub server: ServerSettings,
    /// `DATABASE_URL`: Postgres; unset means standalone (in memory).
    pub database_url: Option<String>,
    /// `REDIS_URL`: Redis; unset means no Redis.
    pub redis_url: Option<String>,
    /// Postgres pool, write-behind queue and query logger.
    pub database: DatabaseSettings,
    /// Redis pool and key prefix.
    pub redis: RedisSettings,
    /// Alerting thresholds; `0` turns a rule off.
    pub thresholds: Thresholds,
    /// Agent tick intervals; `0` means the agent does not tick.
    pub intervals: Intervals,
    /// `<AGENT>_AGENT_ENABLED` per agent.
    pub agents: AgentSwitches,
    /// Diagnostic agent.
    pub diagnostic: DiagnosticSettings,
    /// Repair agent.
    pub repair: RepairSettings,
    /// Learning agent.
    pub learning: LearningSettings,
    /// Predictive agent.
    pub predictive: PredictiveSettings,
    /// Security agent.
    pub security: SecuritySettings,
    /// Performance agent.
    pub performance: PerformanceSettings,
    /// Notification channels.
    pub notify: NotifySettings,
    /// Alert rules: anti-flap, repeats, the API window, external checks.
    pub alerting: AlertSettings,
    /// Retention of stored history.
    pub retention: RetentionSettings,
    /// Request tracer middleware.
    pub tracer: TracerSettings,
    /// In-memory metrics and events.
    pub metrics: MetricsSettings,
    /// Supervision policy for agents.
    pub supervisor: SupervisorSettings,
}

/// HTTP listener and admin access.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `HOST`: address to bind.
    pub host: String,
    /// `PORT`: port to bind; `0` picks a free one.
    pub port: u16,
    /// `HTTP_WORKERS`: worker threads; `0` means one per core.
    pub workers: usize,
    /// `SYSTEM_ADMIN_TOKEN`: Bearer token for `/api/v1/system/*`; generated when unset.
    pub admin_token: Option<String>,
    /// `SYSTEM_ADMIN_TOKEN_FILE`: where a generated token is written (mode 0600).
    pub admin_token_file: String,
    /// `SYSTEM_MAX_BODY_BYTES`: larger request bodies on system routes get 413.
    pub max_body_bytes: usize,
}

/// Postgres pool, write-behind queue and query logger.
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

/// Alerting thresholds (seed defaults). `0` turns the rule off.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// `API_RESPONSE_THRESHOLD_MS`: p95 latency per route.
    pub api_response_ms: u64,
    /// `API_ERROR_RATE_THRESHOLD`: percent of 5xx answers per route.
    pub api_error_rate_percent: f64,
    /// `API_TIMEOUT_MS`: timeout of each external check (`0`: the default).
    pub api_timeout_ms: u64,
    /// `DB_QUERY_THRESHOLD_MS`: timed `SELECT 1`.
    pub db_query_ms: u64,
    /// `DB_POOL_THRESHOLD`: percent of the pool in use.
    pub db_pool_percent: f64,
    /// `DB_SLOW_QUERY_MS`: a query slower than this is a slow query.
    pub db_slow_query_ms: u64,
    /// `MEMORY_THRESHOLD_PERCENT`: host memory in use.
    pub memory_percent: f64,
    /// `HEAP_THRESHOLD_PERCENT`: this process's resident memory as a percent of host memory.
    pub heap_percent: f64,
    /// `CPU_THRESHOLD_PERCENT`: host CPU over the last interval.
    pub cpu_percent: f64,
    /// `DISK_THRESHOLD_PERCENT`: the disk holding the working directory.
    pub disk_percent: f64,
    /// `REDIS_RESPONSE_THRESHOLD_MS`: timed `PING`.
    pub redis_response_ms: u64,
    /// `REDIS_MEMORY_THRESHOLD`: used memory as a percent of `maxmemory`.
    pub redis_memory_percent: f64,
}

/// Agent intervals. `0` means "do not tick".
#[derive(Debug, Clone)]
pub struct Intervals {
    /// `MONITOR_INTERVAL_MS`.
    pub monitor_ms: u64,
    /// `PREDICTIVE_INTERVAL_MS`.
    pub predictive_ms: u64,
    /// `LEARNING_INTERVAL_MS`.
    pub learning_ms: u64,
    /// `SECURITY_SCAN_INTERVAL_MS`.
    pub security_scan_ms: u64,
    /// `PERF_ANALYSIS_INTERVAL_MS`.
    pub perf_analysis_ms: u64,
}

/// `<AGENT>_AGENT_ENABLED` switches.
#[derive(Debug, Clone)]
pub struct AgentSwitches {
    /// `MONITOR_AGENT_ENABLED`.
    pub monitor: bool,
    /// `SECURITY_AGENT_ENABLED`.
    pub security: bool,
    /// `DIAGNOSTIC_AGENT_ENABLED`.
    pub diagnostic: bool,
    /// `REPAIR_AGENT_ENABLED`.
    pub repair: bool,
    /// `LEARNING_AGENT_ENABLED`.
    pub learning: bool,
    /// `PREDICTIVE_AGENT_ENABLED`.
    pub predictive: bool,
    /// `PERFORMANCE_AGENT_ENABLED`.
    pub performance: bool,
}

impl AgentSwitches {
    /// Whether the agent named `name` (case-insensitive) is switched on.
    pub fn is_enabled(&self, name: &str) -> bool {
        match name.to_ascii_lowercase().as_str() {
            "monitor" => self.monitor,
            "security" => self.security,
            "diagnostic" => self.diagnostic,
            "repair" => self.repair,
            "learning" => self.learning,
            "predictive" => self.predictive,
            "performance" => self.performance,
            _ => true,
        }
    }
}

/// Diagnostic agent (AI or rules).
#[derive(Debug, Clone)]
pub struct DiagnosticSettings {
    /// `ANTHROPIC_API_KEY`: AI mode when set, rules otherwise.
    pub anthropic_api_key: Option<String>,
    /// `ANTHROPIC_BASE_URL`: base URL of the Messages API.
    pub anthropic_base_url: String,
    /// `DIAGNOSTIC_AI_MODEL`.
    pub ai_model: String,
    /// `DIAGNOSTIC_MAX_LOGS`: log lines attached to the evidence.
    pub max_logs: usize,
    /// `DIAGNOSTIC_CONFIDENCE_THRESHOLD`: below it a diagnosis is escalated, not repaired.
    pub confidence_threshold: f64,
    /// `DIAGNOSTIC_MAX_TOKENS`.
    pub max_tokens: u32,
}

/// Repair agent.
#[derive(Debug, Clone)]
pub struct RepairSettings {
    /// `REPAIR_MAX_RETRIES`.
    pub max_retries: u32,
    /// `REPAIR_VERIFY_TIMEOUT_MS`: how long a repair has to show its effect.
    pub verify_timeout_ms: u64,
    /// `REPAIR_AUTO_FIX_ENABLED`: apply fixes, or only propose them.
    pub auto_fix_enabled: bool,
}

/// Learning agent.
#[derive(Debug, Clone)]
pub struct LearningSettings {
    /// `LEARNING_MIN_SUCCESS_RATE`: 0.0–1.0.
    pub min_success_rate: f64,
    /// `LEARNING_MIN_OCCURRENCES`.
    pub min_occurrences: u32,
    /// `LEARNING_PATTERN_EXPIRY_DAYS`.
    pub pattern_expiry_days: u32,
}

/// Predictive agent.
#[derive(Debug, Clone)]
pub struct PredictiveSettings {
    /// `PREDICTIVE_HORIZON_HOURS`.
    pub horizon_hours: u32,
    /// `PREDICTIVE_MIN_DATA_POINTS`.
    pub min_data_points: u32,
    /// `PREDICTIVE_CONFIDENCE`: 0.0–1.0.
    pub confidence: f64,
}

/// Security agent.
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// `SECURITY_MAX_FAILED_LOGINS`.
    pub max_failed_logins: u32,
    /// `SECURITY_LOCKOUT_MS`.
    pub lockout_ms: u64,
    /// `SECURITY_IP_BLOCK_MS`.
    pub ip_block_ms: u64,
    /// `SECURITY_RATE_LIMIT`: requests per window per client; `0` is off.
    pub rate_limit: u32,
    /// `SECURITY_RATE_WINDOW_MS`.
    pub rate_window_ms: u64,
}

/// Performance agent.
#[derive(Debug, Clone)]
pub struct PerformanceSettings {
    /// `PERF_CACHE_HIT_TARGET`: 0.0–1.0.
    pub cache_hit_target: f64,
    /// `PERF_QUERY_ANALYSIS`.
    pub query_analysis: bool,
    /// `PERF_AUTO_OPTIMIZE`.
    pub auto_optimize: bool,
}

/// Notification channels.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `SLACK_WEBHOOK_URL`: Slack is on when set.
    pub slack_webhook_url: Option<String>,
    /// `SLACK_CHANNEL`.
    pub slack_channel: String,
    /// `SLACK_MENTION`: added on critical alerts.
    pub slack_mention: String,
    /// `PAGERDUTY_API_KEY`: the Events v2 routing key; PagerDuty is on when set.
    pub pagerduty_api_key: Option<String>,
    /// `ALERT_EMAIL_TO`: email is on when set.
    pub alert_email_to: Option<String>,
    /// `ALERT_EMAIL_FROM`.
    pub alert_email_from: String,
    /// `PAGERDUTY_EVENTS_URL`: the Events API v2 endpoint.
    pub pagerduty_events_url: String,
    /// `SMTP_URL`: `smtp://host:port` (`smtps://` for TLS); email needs it and `ALERT_EMAIL_TO`.
    pub smtp_url: Option<String>,
    /// `ALERT_ROUTES`: which channels each severity goes to.
    pub routes: SeverityRoutes,
    /// `ALERT_LINK_BASE_URL`: prefix of the alert link in messages.
    pub link_base_url: String,
    /// `NOTIFY_TIMEOUT_MS`: per attempt.
    pub timeout_ms: u64,
    /// `NOTIFY_MAX_ATTEMPTS`: attempts per notification before it is given up.
    pub max_attempts: u32,
    /// `NOTIFY_BACKOFF_INITIAL_MS`: delay before the first retry (doubled each time, jittered).
    pub backoff_initial_ms: u64,
    /// `NOTIFY_BACKOFF_MAX_MS`: longest delay between retries.
    pub backoff_max_ms: u64,
    /// `NOTIFY_QUEUE_MAX`: notifications waiting per channel; more are refused and logged.
    pub queue_max: usize,
}

/// An external endpoint the Monitor probes (`EXTERNAL_CHECKS=name=url,…`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalCheck {
    pub name: String,
    pub url: String,
}

/// Alert rules.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `ALERT_PENDING_TICKS`: consecutive breaching ticks before a rule fires.
    pub pending_ticks: u32,
    /// `ALERT_RESOLVE_TICKS`: consecutive clear ticks before a firing rule resolves.
    pub resolve_ticks: u32,
    /// `ALERT_HYSTERESIS_PERCENT`: a firing rule is clear only this far under its threshold.
    pub hysteresis_percent: f64,
    /// `ALERT_REPEAT_INTERVAL_MS`: re-notify a firing, unacknowledged alert this often; 0: never.
    pub repeat_interval_ms: u64,
    /// `API_ALERT_WINDOW_MS`: the API rules look at the requests of this last stretch.
    pub api_window_ms: u64,
    /// `API_ALERT_MIN_REQUESTS`: fewer requests in the window are not judged.
    pub api_min_requests: u64,
    /// `EXTERNAL_CHECKS`: `name=url` pairs.
    pub external_checks: Vec<ExternalCheck>,
    /// `EXTERNAL_CHECK_INTERVAL_MS`: how often the external checks run (at most once a tick).
    pub external_interval_ms: u64,
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

/// Request tracer (the seed's `createRequestTracer` options).
#[derive(Debug, Clone)]
pub struct TracerSettings {
    /// `TRACE_SAMPLE_RATE`: 0.0–1.0 of requests recorded.
    pub sample_rate: f64,
    /// `TRACE_SLOW_THRESHOLD_MS`: slower requests log a warning and publish an event; `0` is off.
    pub slow_threshold_ms: u64,
    /// `TRACE_EXCLUDE_PATHS`: comma-separated path prefixes that are not traced.
    pub exclude_paths: Vec<String>,
    /// `TRACE_FLUSH_INTERVAL_MS`: how often each worker hands its samples to the MetricsStore.
    pub flush_interval_ms: u64,
}

/// In-memory metrics and events.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// `METRICS_MAX_SERIES`: series beyond this are counted, not stored.
    pub max_series: usize,
    /// `EVENT_HISTORY_SIZE`: events kept for `/events`.
    pub event_history: usize,
}

/// Restart policy for agents.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// `AGENT_MAX_RESTARTS`: restarts allowed inside the window before the agent is `failed`.
    pub max_restarts: u32,
    /// `AGENT_RESTART_WINDOW_MS`.
    pub restart_window_ms: u64,
    /// `AGENT_BACKOFF_INITIAL_MS`: wait before the first restart; doubles each time.
    pub backoff_initial_ms: u64,
    /// `AGENT_BACKOFF_MAX_MS`: cap on the wait.
    pub backoff_max_ms: u64,
}

impl Settings {
    /// Read `.env` (if present) and then the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported by dotenvy when it is read.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(ConfigError {
                    problems: vec![format!(".env: {e}")],
                });
            }
        }
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Parse from any key lookup (tests pass a map). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader::new(&lookup);
        let settings = Self::read(&mut r);
        if r.problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError {
                problems: r.problems,
            })
        }
    }

    /// Every knob with its default as written in `.env.example` (empty when it has none).
    pub fn knobs() -> Vec<(&'static str, String)> {
        let none = |_: &str| None;
        let mut r = Reader::new(&none);
        let _ = Self::read(&mut r);
        r.seen
    }

    /// The defaults with a fixed admin token, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        let mut r = Reader::new(&|_: &str| None);
        let mut s = Self::read(&mut r);
        s.server.admin_token = Some("test-admin-token".to_owned());
        s.server.port = 0;
        s.server.host = "127.0.0.1".to_owned();
        s
    }

    fn read(r: &mut Reader<'_>) -> Self {
        Settings {
            enable_self_healing: r.bool("ENABLE_SELF_HEALING", true),
            server: ServerSettings {
                host: r.string("HOST", "0.0.0.0"),
                port: r.int("PORT", 8080, 0, u16::MAX as u64) as u16,
                workers: r.int("HTTP_WORKERS", 0, 0, 1024) as usize,
                admin_token: r.optional("SYSTEM_ADMIN_TOKEN"),
                admin_token_file: r.string("SYSTEM_ADMIN_TOKEN_FILE", ".selfheal/admin-token"),
                max_body_bytes: r.int("SYSTEM_MAX_BODY_BYTES", 65_536, 1, 1 << 30) as usize,
            },
            database_url: r.url("DATABASE_URL", &["postgres", "postgresql"], ""),
            redis_url: r.url("REDIS_URL", &["redis", "rediss"], ""),
            database: DatabaseSettings {
                pool_size: r.int("DB_POOL_SIZE", 10, 1, 1_000) as usize,
                timeout_ms: r.int("DB_TIMEOUT_MS", 2_000, 1, 600_000),
                write_queue_max: r.int("DB_WRITE_QUEUE_MAX", 100_000, 1, 100_000_000) as usize,
                write_batch: r.int("DB_WRITE_BATCH", 500, 1, 5_000) as usize,
                write_flush_ms: r.int("DB_WRITE_FLUSH_MS", 1_000, 1, 600_000),
                spill_file: r.string("DB_SPILL_FILE", ".selfheal/pending-writes.jsonl"),
                memory_rows: r.int("STORE_MEMORY_ROWS", 10_000, 1, 10_000_000) as usize,
                // The one-minute ring holds 7 minutes: persisting less often than every 5 would lose some.
                persist_interval_ms: r.int("METRICS_PERSIST_INTERVAL_MS", 60_000, 0, 300_000),
                log_all_queries: r.bool("DB_LOG_ALL_QUERIES", false),
                max_fingerprints: r.int("QUERY_MAX_FINGERPRINTS", 1_000, 1, 1_000_000) as usize,
            },
            redis: RedisSettings {
                key_prefix: r.string("REDIS_KEY_PREFIX", "selfheal:"),
                pool_size: r.int("REDIS_POOL_SIZE", 8, 1, 1_000) as usize,
                timeout_ms: r.int("REDIS_TIMEOUT_MS", 2_000, 1, 600_000),
            },
            thresholds: Thresholds {
                api_response_ms: r.ms("API_RESPONSE_THRESHOLD_MS", 500),
                api_error_rate_percent: r.percent("API_ERROR_RATE_THRESHOLD", 1.0),
                api_timeout_ms: r.ms("API_TIMEOUT_MS", 10_000),
                db_query_ms: r.ms("DB_QUERY_THRESHOLD_MS", 100),
                db_pool_percent: r.percent("DB_POOL_THRESHOLD", 80.0),
                db_slow_query_ms: r.ms("DB_SLOW_QUERY_MS", 500),
                memory_percent: r.percent("MEMORY_THRESHOLD_PERCENT", 85.0),
                heap_percent: r.percent("HEAP_THRESHOLD_PERCENT", 90.0),
                cpu_percent: r.percent("CPU_THRESHOLD_PERCENT", 80.0),
                disk_percent: r.percent("DISK_THRESHOLD_PERCENT", 90.0),
                redis_response_ms: r.ms("REDIS_RESPONSE_THRESHOLD_MS", 50),
                redis_memory_percent: r.percent("REDIS_MEMORY_THRESHOLD", 80.0),
            },
            intervals: Intervals {
                monitor_ms: r.ms("MONITOR_INTERVAL_MS", 5_000),
                predictive_ms: r.ms("PREDICTIVE_INTERVAL_MS", 300_000),
                learning_ms: r.ms("LEARNING_INTERVAL_MS", 86_400_000),
                security_scan_ms: r.ms("SECURITY_SCAN_INTERVAL_MS", 60_000),
                perf_analysis_ms: r.ms("PERF_ANALYSIS_INTERVAL_MS", 60_000),
            },
            agents: AgentSwitches {
                monitor: r.bool("MONITOR_AGENT_ENABLED", true),
                security: r.bool("SECURITY_AGENT_ENABLED", true),
                diagnostic: r.bool("DIAGNOSTIC_AGENT_ENABLED", true),
                repair: r.bool("REPAIR_AGENT_ENABLED", true),
                learning: r.bool("LEARNING_AGENT_ENABLED", true),
                predictive: r.bool("PREDICTIVE_AGENT_ENABLED", true),
                performance: r.bool("PERFORMANCE_AGENT_ENABLED", true),
            },
            diagnostic: DiagnosticSettings {
                anthropic_api_key: r.optional("ANTHROPIC_API_KEY"),
                anthropic_base_url: r
                    .url("ANTHROPIC_BASE_URL", &["http", "https"], ANTHROPIC_BASE_URL)
                    .unwrap_or_else(|| ANTHROPIC_BASE_URL.to_owned()),
                ai_model: r.string("DIAGNOSTIC_AI_MODEL", "claude-sonnet-4-20250514"),
                max_logs: r.int("DIAGNOSTIC_MAX_LOGS", 1000, 0, 1_000_000) as usize,
                confidence_threshold: r.fraction("DIAGNOSTIC_CONFIDENCE_THRESHOLD", 0.8),
                max_tokens: r.int("DIAGNOSTIC_MAX_TOKENS", 2000, 1, 200_000) as u32,
            },
            repair: RepairSettings {
                max_retries: r.int("REPAIR_MAX_RETRIES", 3, 0, 100) as u32,
                verify_timeout_ms: r.ms("REPAIR_VERIFY_TIMEOUT_MS", 60_000),
                auto_fix_enabled: r.bool("REPAIR_AUTO_FIX_ENABLED", true),
            },
            learning: LearningSettings {
                min_success_rate: r.fraction("LEARNING_MIN_SUCCESS_RATE", 0.95),
                min_occurrences: r.int("LEARNING_MIN_OCCURRENCES", 3, 0, 1_000_000) as u32,
                pattern_expiry_days: r.int("LEARNING_PATTERN_EXPIRY_DAYS", 90, 0, 36_500) as u32,
            },
            predictive: PredictiveSettings {
                horizon_hours: r.int("PREDICTIVE_HORIZON_HOURS", 72, 0, 8_760) as u32,
                min_data_points: r.int("PREDICTIVE_MIN_DATA_POINTS", 24, 2, 1_000_000) as u32,
                confidence: r.fraction("PREDICTIVE_CONFIDENCE", 0.7),
            },
            security: SecuritySettings {
                max_failed_logins: r.int("SECURITY_MAX_FAILED_LOGINS", 5, 0, 1_000_000) as u32,
                lockout_ms: r.ms("SECURITY_LOCKOUT_MS", 3_600_000),
                ip_block_ms: r.ms("SECURITY_IP_BLOCK_MS", 86_400_000),
                rate_limit: r.int("SECURITY_RATE_LIMIT", 100, 0, u32::MAX as u64) as u32,
                rate_window_ms: r.ms("SECURITY_RATE_WINDOW_MS", 60_000),
            },
            performance: PerformanceSettings {
                cache_hit_target: r.fraction("PERF_CACHE_HIT_TARGET", 0.8),
                query_analysis: r.bool("PERF_QUERY_ANALYSIS", true),
                auto_optimize: r.bool("PERF_AUTO_OPTIMIZE", true),
            },
            notify: NotifySettings {
                slack_webhook_url: r.url("SLACK_WEBHOOK_URL", &["http", "https"], ""),
                slack_channel: r.string("SLACK_CHANNEL", "#system-alerts"),
                slack_mention: r.string("SLACK_MENTION", "@channel"),
                pagerduty_api_key: r.optional("PAGERDUTY_API_KEY"),
                alert_email_to: r.optional("ALERT_EMAIL_TO"),
                alert_email_from: r.string("ALERT_EMAIL_FROM", "alerts@leadsite.ai"),
                pagerduty_events_url: r
                    .url(
                        "PAGERDUTY_EVENTS_URL",
                        &["http", "https"],
                        PAGERDUTY_EVENTS_URL,
                    )
                    .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_owned()),
                smtp_url: r.url("SMTP_URL", &["smtp", "smtps"], ""),
                routes: r.routes("ALERT_ROUTES", SeverityRoutes::DEFAULT),
                link_base_url: r.string("ALERT_LINK_BASE_URL", ""),
                timeout_ms: r.int("NOTIFY_TIMEOUT_MS", 10_000, 1, 600_000),
                max_attempts: r.int("NOTIFY_MAX_ATTEMPTS", 5, 1, 100) as u32,
                backoff_initial_ms: r.int("NOTIFY_BACKOFF_INITIAL_MS", 1_000, 1, 3_600_000),
                backoff_max_ms: r.int("NOTIFY_BACKOFF_MAX_MS", 60_000, 1, 3_600_000),
                queue_max: r.int("NOTIFY_QUEUE_MAX", 1_000, 1, 1_000_000) as usize,
            },
            alerting: AlertSettings {
                pending_ticks: r.int("ALERT_PENDING_TICKS", 2, 1, 10_000) as u32,
                resolve_ticks: r.int("ALERT_RESOLVE_TICKS", 2, 1, 10_000) as u32,
                hysteresis_percent: r.float("ALERT_HYSTERESIS_PERCENT", 10.0, 0.0, 99.0),
                repeat_interval_ms: r.ms("ALERT_REPEAT_INTERVAL_MS", 14_400_000),
                // The 10-second ring holds 80 s: a longer window would need the coarse ring.
                api_window_ms: r.int("API_ALERT_WINDOW_MS", 60_000, 10_000, 60_000),
                api_min_requests: r.int("API_ALERT_MIN_REQUESTS", 5, 1, 1_000_000),
                external_checks: r.external_checks("EXTERNAL_CHECKS"),
                external_interval_ms: r.ms("EXTERNAL_CHECK_INTERVAL_MS", 30_000),
            },
            retention: RetentionSettings {
                metrics_days: r.int("METRICS_RETENTION_DAYS", 30, 0, 36_500) as u32,
                alerts_days: r.int("ALERTS_RETENTION_DAYS", 90, 0, 36_500) as u32,
                patterns_days: r.int("PATTERNS_RETENTION_DAYS", 365, 0, 36_500) as u32,
            },
            tracer: TracerSettings {
                sample_rate: r.fraction("TRACE_SAMPLE_RATE", 1.0),
                slow_threshold_ms: r.ms("TRACE_SLOW_THRESHOLD_MS", 500),
                exclude_paths: r.list("TRACE_EXCLUDE_PATHS", "/health,/api/v1/health,/favicon.ico"),
                flush_interval_ms: r.int("TRACE_FLUSH_INTERVAL_MS", 100, 1, 60_000),
            },
            metrics: MetricsSettings {
                max_series: r.int("METRICS_MAX_SERIES", 1000, 1, 1_000_000) as usize,
                event_history: r.int("EVENT_HISTORY_SIZE", 1000, 1, 1_000_000) as usize,
            },
            supervisor: SupervisorSettings {
                max_restarts: r.int("AGENT_MAX_RESTARTS", 5, 0, 10_000) as u32,
                restart_window_ms: r.int("AGENT_RESTART_WINDOW_MS", 60_000, 1, 86_400_000),
                backoff_initial_ms: r.int("AGENT_BACKOFF_INITIAL_MS", 100, 0, 3_600_000),
                backoff_max_ms: r.int("AGENT_BACKOFF_MAX_MS", 5_000, 0, 3_600_000),
            },
        }
    }
}

/// Default base URL of the Anthropic Messages API.
const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// Default PagerDuty Events API v2 endpoint.
const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl Intervals {
    /// `ms` as a tick interval, `None` when it is 0 (off).
    pub fn every(ms: u64) -> Option<Duration> {
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

/// Reads keys, applies defaults, collects every problem, and records what it was asked for.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
    seen: Vec<(&'static str, String)>,
}

impl<'a> Reader<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Reader {
            lookup,
            problems: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// The raw value, trimmed; `None` when unset or empty. Records the knob and its default.
    fn raw(&mut self, key: &'static str, default: &str) -> Option<String> {
        if !self.seen.iter().any(|(k, _)| *k == key) {
            self.seen.push((key, default.to_owned()));
        }
        (self.lookup)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, key: &str, value: &str, what: &str) {
        self.problems.push(format!("{key}={value:?}: {what}"));
    }

    fn string(&mut self, key: &'static str, default: &str) -> String {
        self.raw(key, default).unwrap_or_else(|| default.to_owned())
    }

    fn optional(&mut self, key: &'static str) -> Option<String> {
        self.raw(key, "")
    }

    fn list(&mut self, key: &'static str, default: &str) -> Vec<String> {
        self.string(key, default)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A URL with one of `schemes`; `default` (empty: none) when unset.
    fn url(&mut self, key: &'static str, schemes: &[&str], default: &str) -> Option<String> {
        let Some(v) = self.raw(key, default) else {
            return (!default.is_empty()).then(|| default.to_owned());
        };
        let ok = v
            .split_once("://")
            .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
        if ok {
            Some(v)
        } else {
            // Never echo a URL that may carry a password.
            self.problems.push(format!(
                "{key}: expected a URL starting with {}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
            None
        }
    }

    /// `severity=channel+channel,…` (see [`SeverityRoutes::parse`]).
    fn routes(&mut self, key: &'static str, default: &str) -> SeverityRoutes {
        let fallback =
            || SeverityRoutes::parse(default).unwrap_or(SeverityRoutes(Default::default()));
        let Some(v) = self.raw(key, default) else {
            return fallback();
        };
        match SeverityRoutes::parse(&v) {
            Ok(r) => r,
            Err(e) => {
                self.problem(key, &v, &e);
                fallback()
            }
        }
    }

    /// `name=url,…` with http(s) URLs and distinct names.
    fn external_checks(&mut self, key: &'static str) -> Vec<ExternalCheck> {
        let Some(v) = self.raw(key, "") else {
            return Vec::new();
        };
        let mut out: Vec<ExternalCheck> = Vec::new();
        for (i, part) in v
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let parsed = part.split_once('=').and_then(|(name, url)| {
                let (name, url) = (name.trim(), url.trim());
                let scheme_ok = url
                    .split_once("://")
                    .is_some_and(|(s, rest)| matches!(s, "http" | "https") && !rest.is_empty());
                (!name.is_empty() && scheme_ok).then(|| ExternalCheck {
                    name: name.to_owned(),
                    url: url.to_owned(),
                })
            });
            // Never echo the entry: its URL may carry a password or a token.
            let name = part.split_once('=').map_or("", |(n, _)| n.trim());
            let entry = i + 1;
            match parsed {
                Some(c) if out.iter().any(|o| o.name == c.name) => self.problems.push(format!(
                    "{key}: entry {entry}: the check name {name:?} is used twice"
                )),
                Some(c) => out.push(c),
                None => self
                    .problems
                    .push(format!("{key}: entry {entry}: expected name=http(s)://…")),
            }
        }
        out
    }

    fn bool(&mut self, key: &'static str, default: bool) -> bool {
        let Some(v) = self.raw(key, if default { "true" } else { "false" }) else {
            return default;
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                self.problem(key, &v, "expected true or false");
                default
            }
        }
    }

    fn int(&mut self, key: &'static str, default: u64, min: u64, max: u64) -> u64 {
        let Some(v) = self.raw(key, &default.to_string()) else {
            return default;
        };
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            Ok(_) => {
                self.problem(
                    key,
                    &v,
                    &format!("expected a whole number from {min} to {max}"),
                );
                default
            }
            Err(_) => {
                self.problem(key, &v, "expected a whole number");
                default
            }
        }
    }

    /// Milliseconds; `0` means off.
    fn ms(&mut self, key: &'static str, default: u64) -> u64 {
        self.int(key, default, 0, 365 * 86_400_000)
    }

    fn float(&mut self, key: &'static str, default: f64, min: f64, max: f64) -> f64 {
        let Some(v) = self.raw(key, &format_float(default)) else {
            return default;
        };
        match v.parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => n,
            _ => {
                self.problem(key, &v, &format!("expected a number from {min} to {max}"));
                default
            }
        }
    }

    /// A percentage; `0` means off.
    fn percent(&mut self, key: &'static str, default: f64) -> f64 {
        self.float(key, default, 0.0, 100.0)
    }

    fn fraction(&mut self, key: &'static str, default: f64) -> f64 {
        self.float(key, default, 0.0, 1.0)
    }
}

fn format_float(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_seed() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.server.host, "0.0.0.0");
        assert_eq!(s.intervals.monitor_ms, 5000);
        assert_eq!(s.thresholds.api_response_ms, 500);
        assert_eq!(s.thresholds.memory_percent, 85.0);
        assert!(s.enable_self_healing);
        assert_eq!(
            s.tracer.exclude_paths,
            vec!["/health", "/api/v1/health", "/favicon.ico"]
        );
    }

    #[test]
    fn zero_is_accepted_where_it_means_off() {
        let s = parse(&[("MONITOR_INTERVAL_MS", "0"), ("CPU_THRESHOLD_PERCENT", "0")]).unwrap();
        assert_eq!(s.intervals.monitor_ms, 0);
        assert_eq!(Intervals::every(s.intervals.monitor_ms), None);
        assert_eq!(s.thresholds.cpu_percent, 0.0);
    }

    #[test]
    fn every_bad_variable_is_reported_at_once() {
        let err = parse(&[
            ("PORT", "eighty"),
            ("MEMORY_THRESHOLD_PERCENT", "150"),
            ("ENABLE_SELF_HEALING", "maybe"),
            ("TRACE_SAMPLE_RATE", "2"),
            ("DATABASE_URL", "mysql://secret@host/db"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
        let text = err.to_string();
        for key in [
            "PORT",
            "MEMORY_THRESHOLD_PERCENT",
            "ENABLE_SELF_HEALING",
            "TRACE_SAMPLE_RATE",
            "DATABASE_URL",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(
            !text.contains("secret"),
            "a URL's credentials leaked: {text}"
        );
    }

    #[test]
    fn knobs_list_each_variable_once_with_its_default() {
        let knobs = Settings::knobs();
        let mut names: Vec<_> = knobs.iter().map(|(k, _)| *k).collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total);
        assert!(knobs.contains(&("MONITOR_INTERVAL_MS", "5000".to_owned())));
        assert!(knobs.contains(&("ANTHROPIC_BASE_URL", "https://api.anthropic.com".to_owned())));
        assert!(knobs.contains(&("API_ERROR_RATE_THRESHOLD", "1".to_owned())));
    }
}
