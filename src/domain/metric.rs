//! Metric names, series keys, windows and the statistics served for them.

use serde::Serialize;

/// Latency of traced HTTP requests, tagged `method`, `route`, `status_class`.
pub const API_RESPONSE_TIME: &str = "api_response_time";
/// Host memory in use, percent.
pub const MEMORY_USAGE: &str = "memory_usage";
/// Host CPU over the last Monitor interval, percent.
pub const CPU_USAGE: &str = "cpu_usage";
/// Use of the disk holding the working directory, percent.
pub const DISK_USAGE: &str = "disk_usage";
/// Resident memory of this process, bytes.
pub const PROCESS_MEMORY_RSS: &str = "process_memory_rss";
/// CPU of this process over the last Monitor interval, percent of one core.
pub const PROCESS_CPU_USAGE: &str = "process_cpu_usage";

/// Query latency: instrumented app queries (`source=app`) and the Monitor's `SELECT 1`
/// (`source=health_check`).
pub const DB_QUERY_TIME: &str = "db_query_time";
/// Pool connections in use, percent of the pool's size, tagged `pool`.
pub const DB_POOL_USAGE: &str = "db_pool_usage";
/// Redis `PING` round trip.
pub const REDIS_RESPONSE_TIME: &str = "redis_response_time";
/// Redis used memory, percent of `maxmemory`.
pub const REDIS_MEMORY_USAGE: &str = "redis_memory_usage";
/// Time of an external check (`EXTERNAL_CHECKS`), ms; tag `check`.
pub const EXTERNAL_API_RESPONSE_TIME: &str = "external_api_response_time";

/// Route label for requests that matched no route (never the raw path).
pub const UNMATCHED_ROUTE: &str = "__unmatched__";

/// Method label for a request whose method is not one of the standard nine (never what the
/// client sent: a made-up method must not make a series of its own).
pub const OTHER_METHOD: &str = "OTHER";

/// How values of a series are measured; decides the histogram's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds, recorded at microsecond resolution up to 60 s (longer values saturate;
    /// `max` still reports the true maximum).
    Ms,
    /// Percent, recorded at 0.01 resolution up to 1000 %.
    Percent,
    /// Bytes, recorded at KiB resolution.
    Bytes,
}

impl Unit {
    /// Multiplier from the value to the histogram's integer unit.
    pub fn scale(self) -> f64 {
        match self {
            Unit::Ms => 1_000.0,
            Unit::Percent => 100.0,
            Unit::Bytes => 1.0 / 1024.0,
        }
    }

    /// How the unit is written in stored rows.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Percent => "%",
            Unit::Bytes => "bytes",
        }
    }

    /// Largest integer the histogram tracks.
    pub fn highest(self) -> u64 {
        match self {
            Unit::Ms => 60_000_000,
            Unit::Percent => 100_000,
            Unit::Bytes => 1 << 34,
        }
    }
}

/// A series: a metric name and its sorted tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub name: String,
    pub tags: Vec<(String, String)>,
}

impl SeriesKey {
    /// A key with `tags` sorted by name.
    pub fn new(name: impl Into<String>, mut tags: Vec<(String, String)>) -> Self {
        tags.sort();
        SeriesKey {
            name: name.into(),
            tags,
        }
    }

    /// The value of tag `name`.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The windows statistics are served over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Window {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
}

impl Window {
    /// All windows, shortest first.
    pub const ALL: [Window; 4] = [Window::M1, Window::M5, Window::M15, Window::H1];

    /// Parse `1m`, `5m`, `15m` or `1h`.
    pub fn parse(s: &str) -> Option<Window> {
        match s {
            "1m" => Some(Window::M1),
            "5m" => Some(Window::M5),
            "15m" => Some(Window::M15),
            "1h" => Some(Window::H1),
            _ => None,
        }
    }

    /// Length in seconds.
    pub fn secs(self) -> u64 {
        match self {
            Window::M1 => 60,
            Window::M5 => 300,
            Window::M15 => 900,
            Window::H1 => 3_600,
        }
    }
}

/// Statistics of one series over one window.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesStats {
    pub name: String,
    pub tags: serde_json::Map<String, serde_json::Value>,
    pub unit: Unit,
    pub window: Window,
    pub count: u64,
    /// Samples per second over the window (or since the series began, if later).
    pub rate: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// The most recent sample.
    pub last: f64,
}

/// Per-route statistics over one window, merged across status classes.
#[derive(Debug, Clone, Serialize)]
pub struct RouteStats {
    pub method: String,
    pub route: String,
    pub window: Window,
    pub count: u64,
    pub rate: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Answers with a 4xx status (client errors: not counted in the error rate).
    pub client_errors: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    /// `errors / count` in percent.
    pub error_rate: f64,
}
