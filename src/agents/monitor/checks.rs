//! The health checks: each component graded against its threshold, and the overall verdict.
//!
//! Grading: over a threshold is `degraded`; half-way from a percentage threshold to 100 %, or
//! twice a latency threshold, is `critical`; unreachable is `down`. A threshold of 0 switches
//! its check off.

use chrono::Utc;
use serde_json::json;

use super::dependencies::{DbProbe, Dependencies, RedisProbe};
use super::host::HostSample;
use crate::actors::metrics_store::StoreStats;
use crate::agents::external::ExternalResult;
use crate::config::{Settings, Thresholds};
use crate::domain::health::{Check, CheckStatus, HealthReport};
use crate::domain::metric::RouteStats;

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

/// A check that could not be made: `degraded` (a blind spot is damage), with why.
pub fn unavailable(name: &str, why: &str) -> Check {
    Check {
        status: CheckStatus::Degraded,
        value: None,
        threshold: None,
        unit: "",
        message: format!("{name}: not measured: {why}"),
        details: json!({ "unavailable": true }),
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
    let writer_down = p.writer.as_ref().is_some_and(|w| {
        matches!(
            w.state,
            crate::store::WriterState::Down | crate::store::WriterState::Misconfigured
        )
    });
    let queued = p.writer.as_ref().map_or(0, |w| w.queued);
    let (status, message) = match p.query_ms {
        None => (
            CheckStatus::Down,
            format!(
                "{}; {queued} write(s) queued",
                p.error.as_deref().unwrap_or("SELECT 1 got no answer")
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
pub fn external_checks(results: &[ExternalResult]) -> Vec<(String, Check)> {
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

/// The metrics store: `degraded` while it refuses samples of new series (`refused`: since the
/// last tick), with how full it is.
pub fn metrics_check(stats: &StoreStats, refused: u64) -> Check {
    let status = if refused > 0 {
        CheckStatus::Degraded
    } else {
        CheckStatus::Healthy
    };
    let used = stats.series as f64 * 100.0 / stats.max_series.max(1) as f64;
    Check {
        status,
        value: Some(stats.series as f64),
        threshold: Some(stats.max_series as f64),
        unit: "series",
        message: if refused > 0 {
            format!(
                "{refused} sample(s) of new series refused since the last tick: {} of {} series \
                 (METRICS_MAX_SERIES); last refused: {}",
                stats.series,
                stats.max_series,
                stats.last_rejected.as_deref().unwrap_or("-")
            )
        } else {
            format!(
                "{} of {} series ({used:.0}%)",
                stats.series, stats.max_series
            )
        },
        details: json!({
            "rejected_samples": stats.rejected_samples,
            "unrouted_max_series": stats.unrouted_max_series,
        }),
        timestamp: Utc::now(),
        optional: false,
    }
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
pub fn checks(
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

#[cfg(test)]
pub(crate) mod tests {
    //! Also the fixtures of `rules`' tests.
    use super::*;
    use crate::db::PoolStatus;
    use crate::domain::health::Overall;
    use crate::domain::metric::Window;
    use crate::redis::RedisMemory;

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
                misconfigured: false,
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
