//! `MonitorAgent`: samples the host, this process and the API every `MONITOR_INTERVAL_MS`
//! and computes the overall health verdict.
//!
//! Per tick: host memory %, host CPU % over the interval (not since boot: sysinfo compares two
//! refreshes), disk % of the filesystem holding the working directory, this process's RSS and
//! CPU, and the per-route API statistics of the last minute from the `MetricsStore` (p95
//! latency and 5xx rate against `API_RESPONSE_THRESHOLD_MS` and `API_ERROR_RATE_THRESHOLD`).
//! Out: gauge samples and the health report to the `MetricsStore`; a `health-check` event
//! when the overall verdict changes.
//!
//! Every tick also sends the alert rules' readings ([`rules`]) to the `AlertManager`, and,
//! every `EXTERNAL_CHECK_INTERVAL_MS`, probes the `EXTERNAL_CHECKS` endpoints.
//!
//! Grading: over a threshold is `degraded`; half-way from a percentage threshold to 100 %, or
//! twice a latency threshold, is `critical`. A threshold of 0 switches its rule off.
//! Restart policy: the harness's (see `actors::harness`); the sysinfo handles are rebuilt.

pub mod rules;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sysinfo::{DiskRefreshKind, Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::actors::agent::{Agent, AgentContext, AgentError};
use crate::actors::alert_manager::ObserveRules;
use crate::actors::metrics_store::{Gauge, GetRecentRouteStats, RecordGauges, RecordHealth};
use crate::agents::external::{ExternalProbe, ExternalResult};
use crate::config::{Intervals, Settings, Thresholds};
use crate::db::PoolStatus;
use crate::domain::event::Payload;
use crate::domain::health::{Check, CheckStatus, HealthReport, Overall};
use crate::domain::metric::{
    RouteStats, SeriesKey, Unit, CPU_USAGE, DB_POOL_USAGE, DB_QUERY_TIME, DISK_USAGE,
    EXTERNAL_API_RESPONSE_TIME, MEMORY_USAGE, PROCESS_CPU_USAGE, PROCESS_MEMORY_RSS,
    REDIS_MEMORY_USAGE, REDIS_RESPONSE_TIME,
};
use crate::redis::{RedisHandle, RedisMemory};
use crate::store::WriterStatus;

/// One tick's host and process measurements.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HostSample {
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_percent: f64,
    pub cpu_percent: f64,
    pub disk_mount: Option<String>,
    pub disk_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub rss_percent: Option<f64>,
    pub process_cpu_percent: Option<f64>,
}

/// The Monitor's state: sysinfo handles (CPU usage needs the previous refresh) and the last
/// verdict.
pub struct MonitorAgent {
    system: System,
    disks: Disks,
    disk_index: Option<usize>,
    pid: Option<Pid>,
    last: HostSample,
    overall: Overall,
    health_changes: u64,
    last_deps: Dependencies,
    heartbeats: u64,
    /// The external checks' client (when `EXTERNAL_CHECKS` is set), when they last ran, and
    /// what they found.
    external: Option<ExternalProbe>,
    external_at: Option<Instant>,
    last_external: Vec<ExternalResult>,
    readings_sent: u64,
}

impl MonitorAgent {
    fn sample_host(&mut self) -> HostSample {
        self.system.refresh_memory();
        self.system.refresh_cpu_usage();
        let total = self.system.total_memory();
        let used = self.system.used_memory();
        let percent = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        let mut sample = HostSample {
            memory_total_bytes: total,
            memory_used_bytes: used,
            memory_percent: percent(used, total),
            cpu_percent: f64::from(self.system.global_cpu_usage()),
            ..HostSample::default()
        };
        if let Some(i) = self.disk_index {
            self.disks
                .refresh_specifics(false, DiskRefreshKind::nothing().with_storage());
            if let Some(disk) = self.disks.get(i) {
                let total = disk.total_space();
                sample.disk_mount = Some(disk.mount_point().display().to_string());
                sample.disk_percent =
                    Some(percent(total.saturating_sub(disk.available_space()), total));
            }
        }
        if let Some(pid) = self.pid {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_memory().with_cpu(),
            );
            if let Some(p) = self.system.process(pid) {
                sample.rss_bytes = Some(p.memory());
                sample.rss_percent = Some(percent(p.memory(), total));
                sample.process_cpu_percent = Some(f64::from(p.cpu_usage()));
            }
        }
        sample
    }

    /// `<prefix>instance:<id>`: this instance is alive (expires after three intervals).
    async fn heartbeat(&mut self, cx: &AgentContext, redis: &RedisHandle, overall: Overall) {
        let every = Duration::from_millis(cx.settings.intervals.monitor_ms.max(1000));
        let value = json!({
            "instance_id": cx.instance_id,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "overall": overall,
            "at": Utc::now(),
        })
        .to_string();
        match redis
            .set_with_ttl(&format!("instance:{}", cx.instance_id), &value, every * 3)
            .await
        {
            Ok(()) => self.heartbeats += 1,
            Err(e) => log::debug!("redis heartbeat failed: {e}"),
        }
    }

    /// Probe the external endpoints when their interval has passed (`None` otherwise).
    async fn probe_external(&mut self, cx: &AgentContext) -> Option<Vec<ExternalResult>> {
        let probe = self.external.as_ref()?;
        let every = Duration::from_millis(cx.settings.alerting.external_interval_ms);
        if self.external_at.is_some_and(|at| at.elapsed() < every) {
            return None;
        }
        self.external_at = Some(Instant::now());
        Some(probe.probe(&cx.settings.alerting.external_checks).await)
    }

    fn gauges(sample: &HostSample) -> Vec<Gauge> {
        let gauge = |name: &str, unit, value| Gauge {
            key: SeriesKey::new(name, Vec::new()),
            unit,
            value,
        };
        let mut out = vec![
            gauge(MEMORY_USAGE, Unit::Percent, sample.memory_percent),
            gauge(CPU_USAGE, Unit::Percent, sample.cpu_percent),
        ];
        if let Some(d) = sample.disk_percent {
            out.push(gauge(DISK_USAGE, Unit::Percent, d));
        }
        if let Some(rss) = sample.rss_bytes {
            out.push(gauge(PROCESS_MEMORY_RSS, Unit::Bytes, rss as f64));
        }
        if let Some(c) = sample.process_cpu_percent {
            out.push(gauge(PROCESS_CPU_USAGE, Unit::Percent, c));
        }
        out
    }
}

/// Probe Postgres and Redis (each bounded by its timeout), concurrently.
async fn probe_dependencies(cx: &AgentContext) -> Dependencies {
    let database = async {
        let (query_ms, error) = match cx.store.ping().await? {
            Ok(d) => (Some(d.as_secs_f64() * 1000.0), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Some(DbProbe {
            query_ms,
            error,
            pools: cx.pools.statuses(),
            writer: cx.store.status().writer,
        })
    };
    let redis = async {
        let r = cx.redis.as_ref()?;
        Some(match r.ping().await {
            Ok(d) => RedisProbe {
                ping_ms: Some(d.as_secs_f64() * 1000.0),
                error: None,
                memory: r.memory().await.ok(),
            },
            Err(e) => RedisProbe {
                ping_ms: None,
                error: Some(e),
                memory: None,
            },
        })
    };
    let (database, redis) = futures_util::future::join(database, redis).await;
    Dependencies { database, redis }
}

fn dependency_gauges(deps: &Dependencies) -> Vec<Gauge> {
    let mut out = Vec::new();
    if let Some(db) = &deps.database {
        if let Some(ms) = db.query_ms {
            out.push(Gauge {
                key: SeriesKey::new(
                    DB_QUERY_TIME,
                    vec![("source".into(), "health_check".into())],
                ),
                unit: Unit::Ms,
                value: ms,
            });
        }
        for p in &db.pools {
            out.push(Gauge {
                key: SeriesKey::new(DB_POOL_USAGE, vec![("pool".into(), p.name.clone())]),
                unit: Unit::Percent,
                value: p.usage_percent,
            });
        }
    }
    if let Some(r) = &deps.redis {
        if let Some(ms) = r.ping_ms {
            out.push(Gauge {
                key: SeriesKey::new(REDIS_RESPONSE_TIME, Vec::new()),
                unit: Unit::Ms,
                value: ms,
            });
        }
        if let Some(m) = r.memory.and_then(|m| m.percent()) {
            out.push(Gauge {
                key: SeriesKey::new(REDIS_MEMORY_USAGE, Vec::new()),
                unit: Unit::Percent,
                value: m,
            });
        }
    }
    out
}

/// A check graded against a percentage threshold.
fn percent_check(name: &str, value: f64, threshold: f64, details: serde_json::Value) -> Check {
    let status = CheckStatus::grade_percent(value, threshold);
    Check {
        status,
        value: Some(value),
        threshold: (threshold > 0.0).then_some(threshold),
        unit: "%",
        message: match status {
            CheckStatus::Healthy => format!("{name} at {value:.1}%"),
            _ => format!("{name} at {value:.1}%, over the {threshold}% threshold"),
        },
        details,
        timestamp: Utc::now(),
        optional: false,
    }
}

/// The API check: the worst route by p95 latency and by 5xx rate over the last minute.
fn api_check(routes: &[RouteStats], t: &Thresholds) -> Check {
    let latency_limit = t.api_response_ms as f64;
    let mut status = CheckStatus::Healthy;
    let mut breaches = Vec::new();
    for r in routes {
        let slow = CheckStatus::grade_open(r.p95_ms, latency_limit);
        let failing = CheckStatus::grade_open(r.error_rate, t.api_error_rate_percent);
        let worst = slow.max(failing);
        if worst != CheckStatus::Healthy {
            breaches.push(json!({
                "method": r.method, "route": r.route, "count": r.count,
                "p95_ms": r.p95_ms, "error_rate": r.error_rate,
                "slow": slow != CheckStatus::Healthy, "failing": failing != CheckStatus::Healthy,
            }));
        }
        status = status.max(worst);
    }
    let worst_p95 = routes.iter().map(|r| r.p95_ms).fold(0.0, f64::max);
    let requests: u64 = routes.iter().map(|r| r.count).sum();
    let errors: u64 = routes.iter().map(|r| r.errors).sum();
    Check {
        status,
        value: Some(worst_p95),
        threshold: (latency_limit > 0.0).then_some(latency_limit),
        unit: "ms",
        message: if breaches.is_empty() {
            format!(
                "{} route(s), {requests} request(s) in the last minute, worst p95 {worst_p95:.1} ms",
                routes.len()
            )
        } else {
            format!(
                "{} route(s) over their latency or error-rate threshold",
                breaches.len()
            )
        },
        details: json!({
            "routes": routes.len(), "requests": requests, "errors": errors,
            "error_rate_threshold": t.api_error_rate_percent, "breaches": breaches,
        }),
        timestamp: Utc::now(),
        optional: false,
    }
}

/// One tick's probe of Postgres (when `DATABASE_URL` is set).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DbProbe {
    /// The timed `SELECT 1`, when it answered.
    pub query_ms: Option<f64>,
    pub error: Option<String>,
    pub pools: Vec<PoolStatus>,
    pub writer: Option<WriterStatus>,
}

/// One tick's probe of Redis (when `REDIS_URL` is set).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RedisProbe {
    /// The timed `PING`, when it answered.
    pub ping_ms: Option<f64>,
    pub error: Option<String>,
    pub memory: Option<RedisMemory>,
}

/// The dependencies' probes; `None` when not configured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Dependencies {
    pub database: Option<DbProbe>,
    pub redis: Option<RedisProbe>,
}

fn disabled_check() -> Check {
    Check {
        status: CheckStatus::Disabled,
        value: None,
        threshold: None,
        unit: "",
        message: "not configured (standalone mode)".to_owned(),
        details: serde_json::Value::Null,
        timestamp: Utc::now(),
        optional: false,
    }
}

/// Postgres: `down` when `SELECT 1` fails; graded on its time (`DB_QUERY_THRESHOLD_MS`) and
/// on the busiest pool's usage (`DB_POOL_THRESHOLD`); at least `degraded` while callers wait
/// for a connection or the write-behind queue cannot write.
fn database_check(probe: Option<&DbProbe>, t: &Thresholds) -> Check {
    let Some(p) = probe else {
        return disabled_check();
    };
    let busiest = p
        .pools
        .iter()
        .max_by(|a, b| a.usage_percent.total_cmp(&b.usage_percent));
    let details = json!({"pools": p.pools, "writer": p.writer, "error": p.error});
    let writer_down = p
        .writer
        .as_ref()
        .is_some_and(|w| w.state == crate::store::WriterState::Down);
    let queued = p.writer.as_ref().map_or(0, |w| w.queued);
    let (status, message) = match p.query_ms {
        None => (
            CheckStatus::Down,
            format!(
                "SELECT 1 failed: {}; {queued} write(s) queued",
                p.error.as_deref().unwrap_or("no answer")
            ),
        ),
        Some(ms) => {
            let slow = CheckStatus::grade_open(ms, t.db_query_ms as f64);
            let pool = busiest.map_or(CheckStatus::Healthy, |b| {
                CheckStatus::grade_percent(b.usage_percent, t.db_pool_percent)
            });
            let waiting = p.pools.iter().any(|b| b.waiting > 0);
            let mut status = slow.max(pool);
            if waiting || writer_down {
                status = status.max(CheckStatus::Degraded);
            }
            let mut message = format!("SELECT 1 in {ms:.1} ms");
            if let Some(b) = busiest {
                message.push_str(&format!(
                    "; pool {} {:.0}% in use ({}/{}), {} waiting",
                    b.name, b.usage_percent, b.in_use, b.max_size, b.waiting
                ));
            }
            if writer_down {
                message.push_str(&format!("; writes failing, {queued} queued"));
            }
            (status, message)
        }
    };
    Check {
        status,
        value: p.query_ms,
        threshold: (t.db_query_ms > 0).then_some(t.db_query_ms as f64),
        unit: "ms",
        message,
        details,
        timestamp: Utc::now(),
        optional: false,
    }
}

/// Redis: `down` when `PING` fails (optional: the overall verdict is then `degraded`);
/// graded on the `PING` time (`REDIS_RESPONSE_THRESHOLD_MS`) and on used memory against
/// `maxmemory` (`REDIS_MEMORY_THRESHOLD`) when a limit is set.
fn redis_check(probe: Option<&RedisProbe>, t: &Thresholds) -> Check {
    let Some(p) = probe else {
        let mut c = disabled_check();
        c.optional = true;
        return c;
    };
    let memory_percent = p.memory.and_then(|m| m.percent());
    let details = json!({"memory": p.memory, "memory_percent": memory_percent, "error": p.error});
    let (status, message) = match p.ping_ms {
        None => (
            CheckStatus::Down,
            format!("PING failed: {}", p.error.as_deref().unwrap_or("no answer")),
        ),
        Some(ms) => {
            let slow = CheckStatus::grade_open(ms, t.redis_response_ms as f64);
            let full = memory_percent.map_or(CheckStatus::Healthy, |m| {
                CheckStatus::grade_percent(m, t.redis_memory_percent)
            });
            let mut message = format!("PING in {ms:.1} ms");
            if let Some(m) = memory_percent {
                message.push_str(&format!("; memory {m:.1}% of maxmemory"));
            }
            (slow.max(full), message)
        }
    };
    Check {
        status,
        value: p.ping_ms,
        threshold: (t.redis_response_ms > 0).then_some(t.redis_response_ms as f64),
        unit: "ms",
        message,
        details,
        timestamp: Utc::now(),
        optional: true,
    }
}

/// One check per external endpoint (`external:<name>`): `down` when its last probe failed.
/// They are optional: a failing one makes the verdict `degraded`, not `critical`.
fn external_checks(results: &[ExternalResult]) -> Vec<(String, Check)> {
    results
        .iter()
        .map(|e| {
            let check = Check {
                status: if e.up {
                    CheckStatus::Healthy
                } else {
                    CheckStatus::Down
                },
                value: Some(e.elapsed_ms),
                threshold: None,
                unit: "ms",
                message: match (e.up, &e.error, e.status) {
                    (true, _, Some(s)) => format!("HTTP {s} in {:.1} ms", e.elapsed_ms),
                    (_, Some(err), _) => err.clone(),
                    (_, None, Some(s)) => format!("answered HTTP {s}"),
                    _ => "no answer".to_owned(),
                },
                details: json!({"url": e.url, "status": e.status}),
                timestamp: Utc::now(),
                optional: true,
            };
            (format!("external:{}", e.name), check)
        })
        .collect()
}

/// The verdict for one tick's measurements.
pub fn evaluate(
    sample: &HostSample,
    routes: &[RouteStats],
    deps: &Dependencies,
    settings: &Settings,
) -> HealthReport {
    HealthReport::from_checks(checks(sample, routes, deps, settings))
}

/// The named checks of one tick's measurements.
fn checks(
    sample: &HostSample,
    routes: &[RouteStats],
    deps: &Dependencies,
    settings: &Settings,
) -> Vec<(String, Check)> {
    let t = &settings.thresholds;
    let mut checks = vec![
        (
            "memory".to_owned(),
            percent_check(
                "host memory",
                sample.memory_percent,
                t.memory_percent,
                json!({"total_bytes": sample.memory_total_bytes, "used_bytes": sample.memory_used_bytes}),
            ),
        ),
        (
            "cpu".to_owned(),
            percent_check("host CPU", sample.cpu_percent, t.cpu_percent, json!({})),
        ),
    ];
    if let Some(d) = sample.disk_percent {
        checks.push((
            "disk".to_owned(),
            percent_check(
                "disk",
                d,
                t.disk_percent,
                json!({"mount": sample.disk_mount}),
            ),
        ));
    }
    if let Some(rss_percent) = sample.rss_percent {
        checks.push((
            "process".to_owned(),
            percent_check(
                "process resident memory",
                rss_percent,
                t.heap_percent,
                json!({"rss_bytes": sample.rss_bytes, "cpu_percent": sample.process_cpu_percent}),
            ),
        ));
    }
    checks.push(("api".to_owned(), api_check(routes, t)));
    checks.push((
        "database".to_owned(),
        database_check(deps.database.as_ref(), t),
    ));
    checks.push(("redis".to_owned(), redis_check(deps.redis.as_ref(), t)));
    checks
}

/// The disk whose mount point is the longest prefix of `dir`.
fn disk_holding(disks: &Disks, dir: &Path) -> Option<usize> {
    disks
        .iter()
        .enumerate()
        .filter(|(_, d)| dir.starts_with(d.mount_point()))
        .max_by_key(|(_, d)| d.mount_point().as_os_str().len())
        .map(|(i, _)| i)
}

impl Agent for MonitorAgent {
    const NAME: &'static str = "Monitor";

    fn interval(settings: &Settings) -> Option<Duration> {
        Intervals::every(settings.intervals.monitor_ms)
    }

    fn build(cx: &AgentContext) -> Result<Self, AgentError> {
        let mut system =
            System::new().map_err(|e| AgentError::new(format!("sysinfo unavailable: {e}")))?;
        // The baseline the first tick's CPU figure is measured against.
        system.refresh_cpu_usage();
        let disks = Disks::new_with_refreshed_list().ok();
        let cwd = std::env::current_dir()
            .and_then(|d| d.canonicalize())
            .unwrap_or_else(|_| PathBuf::from("/"));
        let disk_index = disks.as_ref().and_then(|d| disk_holding(d, &cwd));
        let disks = match disks {
            Some(d) => d,
            None => Disks::new().map_err(|e| AgentError::new(format!("disks unavailable: {e}")))?,
        };
        let pid = sysinfo::get_current_pid().ok();
        if let Some(pid) = pid {
            system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu(),
            );
        }
        Ok(MonitorAgent {
            system,
            disks,
            disk_index,
            pid,
            last: HostSample::default(),
            overall: Overall::Unknown,
            health_changes: 0,
            last_deps: Dependencies::default(),
            heartbeats: 0,
            // A timeout of 0 is the probe's default.
            external: (!cx.settings.alerting.external_checks.is_empty()).then(|| {
                ExternalProbe::new(Duration::from_millis(cx.settings.thresholds.api_timeout_ms))
            }),
            external_at: None,
            last_external: Vec::new(),
            readings_sent: 0,
        })
    }

    async fn tick(&mut self, cx: &AgentContext) -> Result<(), AgentError> {
        let sample = self.sample_host();
        let routes = cx
            .metrics
            .send(GetRecentRouteStats {
                secs: cx.settings.alerting.api_window_ms / 1000,
            })
            .await
            .map_err(|e| AgentError::new(format!("metrics store unavailable: {e}")))?;
        let (deps, external) =
            futures_util::future::join(probe_dependencies(cx), self.probe_external(cx)).await;
        let mut named = checks(&sample, &routes, &deps, &cx.settings);
        named.extend(external_checks(
            external.as_deref().unwrap_or(&self.last_external),
        ));
        let report = HealthReport::from_checks(named);
        let readings = rules::readings(&sample, &routes, &deps, external.as_deref(), &cx.settings);
        cx.alerts.do_send(ObserveRules {
            scopes: readings.scopes,
            observations: readings.observations,
        });
        self.readings_sent += 1;
        let mut gauges = Self::gauges(&sample);
        gauges.extend(dependency_gauges(&deps));
        if let Some(results) = &external {
            gauges.extend(results.iter().map(|e| Gauge {
                key: SeriesKey::new(
                    EXTERNAL_API_RESPONSE_TIME,
                    vec![("check".into(), e.name.clone())],
                ),
                unit: Unit::Ms,
                value: e.elapsed_ms,
            }));
        }
        cx.metrics.do_send(RecordGauges(gauges));
        if let Some(redis) = &cx.redis {
            if deps.redis.as_ref().is_some_and(|r| r.ping_ms.is_some()) {
                self.heartbeat(cx, redis, report.overall).await;
            }
        }
        if report.overall != self.overall {
            log::info!("health: {:?} -> {:?}", self.overall, report.overall);
            self.health_changes += 1;
            cx.publish(
                Self::NAME,
                Payload::HealthChanged {
                    previous: self.overall,
                    overall: report.overall,
                },
            );
            self.overall = report.overall;
        }
        cx.metrics.do_send(RecordHealth(report));
        self.last = sample;
        self.last_deps = deps;
        if let Some(results) = external {
            self.last_external = results;
        }
        Ok(())
    }

    fn stats(&self) -> serde_json::Value {
        json!({
            "overall": self.overall,
            "health_changes": self.health_changes,
            "last_sample": self.last,
            "dependencies": self.last_deps,
            "heartbeats": self.heartbeats,
            "external": self.last_external,
            "rule_readings_sent": self.readings_sent,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Also the fixtures of `rules`' tests.
    use super::*;
    use crate::domain::metric::Window;

    pub(crate) fn route(p95: f64, errors: u64, count: u64) -> RouteStats {
        RouteStats {
            method: "GET".into(),
            route: "/r".into(),
            window: Window::M1,
            count,
            rate: 1.0,
            mean_ms: p95,
            max_ms: p95,
            p50_ms: p95,
            p95_ms: p95,
            p99_ms: p95,
            client_errors: 0,
            errors,
            error_rate: errors as f64 * 100.0 / count as f64,
        }
    }

    fn none() -> Dependencies {
        Dependencies::default()
    }

    pub(crate) fn calm() -> HostSample {
        HostSample {
            memory_percent: 40.0,
            cpu_percent: 10.0,
            disk_percent: Some(50.0),
            disk_mount: Some("/".into()),
            rss_percent: Some(1.0),
            ..HostSample::default()
        }
    }

    #[test]
    fn a_calm_host_with_fast_routes_is_healthy_and_dependencies_are_disabled() {
        let s = Settings::for_tests();
        let r = evaluate(
            &calm(),
            &[route(20.0, 0, 100)],
            &Dependencies::default(),
            &s,
        );
        assert_eq!(r.overall, Overall::Healthy);
        assert_eq!(r.checks["database"]["status"], "disabled");
        assert_eq!(r.checks["redis"]["status"], "disabled");
    }

    #[test]
    fn slow_or_failing_routes_degrade_and_far_over_is_critical() {
        let s = Settings::for_tests();
        assert_eq!(
            evaluate(&calm(), &[route(600.0, 0, 100)], &none(), &s).overall,
            Overall::Degraded
        );
        assert_eq!(
            evaluate(&calm(), &[route(1500.0, 0, 100)], &none(), &s).overall,
            Overall::Critical
        );
        // 1.5 % of 5xx against the 1 % threshold.
        let r = evaluate(&calm(), &[route(20.0, 3, 200)], &none(), &s);
        assert_eq!(r.overall, Overall::Degraded);
        assert_eq!(r.checks["api"]["details"]["breaches"][0]["failing"], true);
    }

    pub(crate) fn pool(name: &str, in_use: usize, waiting: usize) -> PoolStatus {
        PoolStatus {
            name: name.into(),
            max_size: 10,
            size: 10,
            available: 10 - in_use,
            in_use,
            waiting,
            usage_percent: in_use as f64 * 10.0,
        }
    }

    pub(crate) fn db(query_ms: Option<f64>, pools: Vec<PoolStatus>) -> Dependencies {
        Dependencies {
            database: Some(DbProbe {
                query_ms,
                error: query_ms.is_none().then(|| "connection refused".to_owned()),
                pools,
                writer: None,
            }),
            redis: None,
        }
    }

    #[test]
    fn the_database_is_graded_on_select_1_and_the_busiest_pool() {
        let s = Settings::for_tests();
        let r = evaluate(&calm(), &[], &db(Some(2.0), vec![pool("a", 1, 0)]), &s);
        assert_eq!(r.checks["database"]["status"], "healthy");
        // SELECT 1 over DB_QUERY_THRESHOLD_MS (100).
        let r = evaluate(&calm(), &[], &db(Some(150.0), vec![]), &s);
        assert_eq!(r.checks["database"]["status"], "degraded");
        // 90 % of a pool in use against DB_POOL_THRESHOLD 80 % (critical from half-way to
        // full, 90 %); the busiest pool counts.
        let r = evaluate(
            &calm(),
            &[],
            &db(Some(2.0), vec![pool("a", 1, 0), pool("b", 9, 0)]),
            &s,
        );
        assert_eq!(r.checks["database"]["status"], "critical");
        assert!(r.checks["database"]["message"]
            .as_str()
            .unwrap()
            .contains("pool b"));
        // Callers waiting for a connection.
        let r = evaluate(&calm(), &[], &db(Some(2.0), vec![pool("a", 2, 3)]), &s);
        assert_eq!(r.checks["database"]["status"], "degraded");
        // Unreachable: down, and the verdict is critical.
        let r = evaluate(&calm(), &[], &db(None, vec![]), &s);
        assert_eq!(r.checks["database"]["status"], "down");
        assert_eq!(r.overall, Overall::Critical);
    }

    #[test]
    fn redis_down_is_degraded_overall_and_memory_is_graded_against_maxmemory() {
        let s = Settings::for_tests();
        let redis = |ping_ms: Option<f64>, used: u64, max: u64| Dependencies {
            database: None,
            redis: Some(RedisProbe {
                ping_ms,
                error: None,
                memory: Some(RedisMemory {
                    used_bytes: used,
                    max_bytes: max,
                }),
            }),
        };
        let r = evaluate(&calm(), &[], &redis(Some(1.0), 10, 0), &s);
        assert_eq!(r.checks["redis"]["status"], "healthy");
        let r = evaluate(&calm(), &[], &redis(Some(1.0), 85, 100), &s);
        assert_eq!(r.checks["redis"]["status"], "degraded");
        let r = evaluate(&calm(), &[], &redis(Some(120.0), 10, 100), &s);
        assert_eq!(r.checks["redis"]["status"], "critical");
        assert_eq!(r.overall, Overall::Degraded, "Redis is optional");
        let r = evaluate(&calm(), &[], &redis(None, 0, 0), &s);
        assert_eq!(r.checks["redis"]["status"], "down");
        assert_eq!(r.overall, Overall::Degraded);
    }

    #[test]
    fn host_pressure_is_graded_and_zero_thresholds_are_off() {
        let mut s = Settings::for_tests();
        let mut hot = calm();
        hot.memory_percent = 95.0;
        assert_eq!(evaluate(&hot, &[], &none(), &s).overall, Overall::Critical);
        s.thresholds.memory_percent = 0.0;
        assert_eq!(evaluate(&hot, &[], &none(), &s).overall, Overall::Healthy);
    }
}
