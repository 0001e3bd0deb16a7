//! The runtime: the request tracer, in-memory metrics and events, the evidence kept for
//! diagnosis, supervision, and outbound calls.

use super::knobs::{Knobs, Section};

/// Request tracer (the seed's `createRequestTracer` options).
#[derive(Debug, Clone)]
pub struct TracerSettings {
    /// `TRACE_SAMPLE_RATE`: 0.0–1.0 of requests recorded.
    pub sample_rate: f64,
    /// `TRACE_SLOW_THRESHOLD_MS`: slower requests are kept in the slow-request ring and
    /// summed up in one `SLOW_REQUEST` event per route and second; `0` is off.
    pub slow_threshold_ms: u64,
    /// `TRACE_EXCLUDE_PATHS`: comma-separated path prefixes that are not traced.
    pub exclude_paths: Vec<String>,
    /// `TRACE_FLUSH_INTERVAL_MS`: how often each worker hands its samples to the MetricsStore.
    pub flush_interval_ms: u64,
}

impl Section for TracerSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Request tracer (the seed's createRequestTracer options)");
        TracerSettings {
            sample_rate: k.fraction(
                "TRACE_SAMPLE_RATE",
                1.0,
                "Fraction of requests recorded, 0.0-1.0 (trace ids are propagated on every request).",
            ),
            slow_threshold_ms: k.ms(
                "TRACE_SLOW_THRESHOLD_MS",
                500,
                "Slower requests are kept for /api/v1/system/traces/slow and summed up in one SLOW_REQUEST event per route and second, ms; 0 = off.",
            ),
            exclude_paths: k.list(
                "TRACE_EXCLUDE_PATHS",
                "/health,/api/v1/health,/favicon.ico",
                "Comma-separated path prefixes that are not traced at all.",
            ),
            flush_interval_ms: k.int(
                "TRACE_FLUSH_INTERVAL_MS",
                100,
                1,
                60_000,
                "How often each HTTP worker hands its samples to the MetricsStore, ms.",
            ),
        }
    }
}

/// In-memory metrics, events, and the evidence kept for diagnosis.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// `METRICS_MAX_SERIES`: series beyond this are counted, not stored (a quarter is kept for
    /// the app's matched routes).
    pub max_series: usize,
    /// `EVENT_HISTORY_SIZE`: events kept for `/events`.
    pub event_history: usize,
    /// `DIAGNOSTIC_MAX_LOGS`: WARN and ERROR log lines kept for diagnosis (`/logs`).
    pub max_logs: usize,
}

impl Section for MetricsSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Metrics, events and evidence");
        MetricsSettings {
            max_series: k.int(
                "METRICS_MAX_SERIES",
                1000,
                1,
                1_000_000,
                "Series kept in memory (route x method x status class, plus host gauges; a quarter is kept for the app's matched routes); more are counted, not stored.",
            ) as usize,
            event_history: k.int(
                "EVENT_HISTORY_SIZE",
                1000,
                1,
                1_000_000,
                "Events kept for /api/v1/system/events.",
            ) as usize,
            max_logs: k.int(
                "DIAGNOSTIC_MAX_LOGS",
                1000,
                0,
                1_000_000,
                "WARN and ERROR log lines kept in memory for diagnosis (GET /api/v1/system/logs); 0 = none.",
            ) as usize,
        }
    }
}

/// Supervision of agents and core actors.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// `AGENT_MAX_RESTARTS`: restarts allowed inside the window before the actor is `failed`.
    pub max_restarts: u32,
    /// `AGENT_RESTART_WINDOW_MS`.
    pub restart_window_ms: u64,
    /// `AGENT_BACKOFF_INITIAL_MS`: wait before the first restart; doubles each time.
    pub backoff_initial_ms: u64,
    /// `AGENT_BACKOFF_MAX_MS`: cap on the wait.
    pub backoff_max_ms: u64,
    /// `AGENT_JOB_TIMEOUT_MS`: deadline of one agent job (tick, event, command); past it the
    /// agent is `stalled` and restarted. `<NAME>_JOB_TIMEOUT_MS` overrides it per agent.
    pub job_timeout_ms: u64,
}

impl Section for SupervisorSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Supervision (agents and core actors)");
        SupervisorSettings {
            max_restarts: k.int(
                "AGENT_MAX_RESTARTS",
                5,
                0,
                10_000,
                "Crashes (or stalls) allowed within the window before an agent or core actor is `failed` (then only an admin restart helps).",
            ) as u32,
            restart_window_ms: k.int(
                "AGENT_RESTART_WINDOW_MS",
                60_000,
                1,
                86_400_000,
                "The window of AGENT_MAX_RESTARTS, ms.",
            ),
            backoff_initial_ms: k.int(
                "AGENT_BACKOFF_INITIAL_MS",
                100,
                0,
                3_600_000,
                "Wait before the first restart, doubling per crash in the window, up to the cap, ms.",
            ),
            backoff_max_ms: k.int(
                "AGENT_BACKOFF_MAX_MS",
                5_000,
                0,
                3_600_000,
                "Cap on the wait between restarts, ms.",
            ),
            job_timeout_ms: k.int(
                "AGENT_JOB_TIMEOUT_MS",
                30_000,
                1,
                86_400_000,
                "Deadline of one agent job (tick, event, command), ms; past it the agent is `stalled`, alerted and restarted. <NAME>_JOB_TIMEOUT_MS overrides it per agent.",
            ),
        }
    }
}

/// Outbound calls (notifications, external checks): circuit breakers per target.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// `CIRCUIT_BREAKER_FAILURES`: consecutive failures that open a target's breaker.
    pub breaker_failures: u32,
    /// `CIRCUIT_BREAKER_OPEN_MS`: how long an open breaker refuses calls before one probe.
    pub breaker_open_ms: u64,
}

impl Section for OutboundSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Outbound calls");
        OutboundSettings {
            breaker_failures: k.int(
                "CIRCUIT_BREAKER_FAILURES",
                5,
                1,
                10_000,
                "Consecutive failures of one outbound target (a notification channel, an external check) that open its circuit breaker.",
            ) as u32,
            breaker_open_ms: k.int(
                "CIRCUIT_BREAKER_OPEN_MS",
                30_000,
                1,
                86_400_000,
                "How long an open breaker refuses calls before it lets one probe through, ms.",
            ),
        }
    }
}
