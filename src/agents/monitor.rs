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
//! Grading: over a threshold is `degraded`; half-way from a percentage threshold to 100 %, or
//! twice a latency threshold, is `critical`. A threshold of 0 switches its rule off.
//! Restart policy: the harness's (see `actors::harness`); the sysinfo handles are rebuilt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sysinfo::{DiskRefreshKind, Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::actors::agent::{Agent, AgentContext, AgentError};
use crate::actors::metrics_store::{Gauge, GetRouteStats, RecordGauges, RecordHealth};
use crate::config::{Intervals, Settings, Thresholds};
use crate::domain::event::Payload;
use crate::domain::health::{Check, CheckStatus, HealthReport, Overall};
use crate::domain::metric::{
    RouteStats, SeriesKey, Unit, Window, CPU_USAGE, DISK_USAGE, MEMORY_USAGE, PROCESS_CPU_USAGE,
    PROCESS_MEMORY_RSS,
};

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
    }
}

/// A dependency this build does not connect to.
fn dependency_check(url: &Option<String>) -> Check {
    Check {
        status: CheckStatus::Disabled,
        value: None,
        threshold: None,
        unit: "",
        message: match url {
            None => "not configured (standalone mode)".to_owned(),
            Some(_) => "configured, but this build does not connect to it yet".to_owned(),
        },
        details: serde_json::Value::Null,
        timestamp: Utc::now(),
    }
}

/// The verdict for one tick's measurements.
pub fn evaluate(sample: &HostSample, routes: &[RouteStats], settings: &Settings) -> HealthReport {
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
        dependency_check(&settings.database_url),
    ));
    checks.push(("redis".to_owned(), dependency_check(&settings.redis_url)));
    HealthReport::from_checks(checks)
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

    fn build(_: &AgentContext) -> Result<Self, AgentError> {
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
        })
    }

    async fn tick(&mut self, cx: &AgentContext) -> Result<(), AgentError> {
        let sample = self.sample_host();
        let routes = cx
            .metrics
            .send(GetRouteStats(Window::M1))
            .await
            .map_err(|e| AgentError::new(format!("metrics store unavailable: {e}")))?;
        let report = evaluate(&sample, &routes, &cx.settings);
        cx.metrics.do_send(RecordGauges(Self::gauges(&sample)));
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
        Ok(())
    }

    fn stats(&self) -> serde_json::Value {
        json!({
            "overall": self.overall,
            "health_changes": self.health_changes,
            "last_sample": self.last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(p95: f64, errors: u64, count: u64) -> RouteStats {
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

    fn calm() -> HostSample {
        HostSample {
            memory_percent: 40.0,
            cpu_percent: 10.0,
            disk_percent: Some(50.0),
            rss_percent: Some(1.0),
            ..HostSample::default()
        }
    }

    #[test]
    fn a_calm_host_with_fast_routes_is_healthy_and_dependencies_are_disabled() {
        let s = Settings::for_tests();
        let r = evaluate(&calm(), &[route(20.0, 0, 100)], &s);
        assert_eq!(r.overall, Overall::Healthy);
        assert_eq!(r.checks["database"]["status"], "disabled");
        assert_eq!(r.checks["redis"]["status"], "disabled");
    }

    #[test]
    fn slow_or_failing_routes_degrade_and_far_over_is_critical() {
        let s = Settings::for_tests();
        assert_eq!(
            evaluate(&calm(), &[route(600.0, 0, 100)], &s).overall,
            Overall::Degraded
        );
        assert_eq!(
            evaluate(&calm(), &[route(1500.0, 0, 100)], &s).overall,
            Overall::Critical
        );
        // 1.5 % of 5xx against the 1 % threshold.
        let r = evaluate(&calm(), &[route(20.0, 3, 200)], &s);
        assert_eq!(r.overall, Overall::Degraded);
        assert_eq!(r.checks["api"]["details"]["breaches"][0]["failing"], true);
    }

    #[test]
    fn host_pressure_is_graded_and_zero_thresholds_are_off() {
        let mut s = Settings::for_tests();
        let mut hot = calm();
        hot.memory_percent = 95.0;
        assert_eq!(evaluate(&hot, &[], &s).overall, Overall::Critical);
        s.thresholds.memory_percent = 0.0;
        assert_eq!(evaluate(&hot, &[], &s).overall, Overall::Healthy);
    }
}
