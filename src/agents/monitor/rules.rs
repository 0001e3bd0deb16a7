//! The Monitor's alert rules: one tick's measurements as rule readings ([`Observation`]s) for
//! the AlertManager, which applies the pending and resolve ticks.
//!
//! | type | component | labels | reading | severity |
//! |---|---|---|---|---|
//! | `API_SLOW` | api | method, route | p95 over `API_ALERT_WINDOW_MS` vs `API_RESPONSE_THRESHOLD_MS` | by ratio |
//! | `API_ERROR_RATE` | api | method, route | % of 5xx vs `API_ERROR_RATE_THRESHOLD` | high; critical from 50 % |
//! | `MEMORY_HIGH` | system | – | host memory % vs `MEMORY_THRESHOLD_PERCENT` | by headroom |
//! | `MEMORY_HIGH` | process | type=rss | resident memory % of host vs `HEAP_THRESHOLD_PERCENT` | by headroom |
//! | `CPU_HIGH` | system | – | host CPU % over the tick vs `CPU_THRESHOLD_PERCENT` | by headroom |
//! | `DISK_HIGH` | system | mount | disk % vs `DISK_THRESHOLD_PERCENT` | by headroom |
//! | `DB_CONNECTION_ERROR` | database | – | `SELECT 1` failed | critical |
//! | `DB_SLOW` | database | – | `SELECT 1` time vs `DB_QUERY_THRESHOLD_MS` | by ratio |
//! | `DB_POOL_EXHAUSTED` | database | pool | % in use vs `DB_POOL_THRESHOLD`, or callers waiting | high; critical when full with callers waiting |
//! | `REDIS_DOWN` | redis | – | `PING` failed | high |
//! | `REDIS_SLOW` | redis | – | `PING` time vs `REDIS_RESPONSE_THRESHOLD_MS` | by ratio |
//! | `REDIS_MEMORY_HIGH` | redis | – | used memory % of `maxmemory` vs `REDIS_MEMORY_THRESHOLD` | by headroom |
//! | `EXTERNAL_API_DOWN` | external | check | non-2xx, error or timeout | medium |
//! | `METRICS_CARDINALITY` | metrics | – | samples of new series refused since the last tick | high |
//!
//! A threshold of 0 turns its rule off. Routes with fewer than `API_ALERT_MIN_REQUESTS`
//! requests in the window are not judged (a hold: a firing alert neither repeats nor clears).
//! `CPU_HIGH` fires only after `CPU_ALERT_PENDING_MS` of breaching ticks (a compile or a
//! backup must not page anyone); the others after `ALERT_PENDING_TICKS`.

use serde_json::json;

use super::dependencies::Dependencies;
use super::host::HostSample;
use super::MonitorSettings;
use crate::actors::metrics_store::StoreStats;
use crate::agents::external::ExternalResult;
use crate::config::Settings;
use crate::domain::alert::{types, AlertSignal, Level, Observation, Severity};
use crate::domain::metric::RouteStats;

/// Error rate from which `API_ERROR_RATE` is critical.
const CRITICAL_ERROR_RATE: f64 = 50.0;

/// One tick's readings.
pub struct Readings {
    /// The scopes evaluated on this tick.
    pub scopes: Vec<&'static str>,
    pub observations: Vec<Observation>,
}

impl Readings {
    /// Add a reading; the scope goes into the metadata too, so the alert can be tracked again
    /// after a restart.
    fn push(&mut self, scope: &'static str, level: Level, signal: AlertSignal) {
        self.push_pending(scope, level, signal, None);
    }

    /// [`Readings::push`] with a pending time of its own (in ticks).
    fn push_pending(
        &mut self,
        scope: &'static str,
        level: Level,
        mut signal: AlertSignal,
        pending_ticks: Option<u32>,
    ) {
        match signal.metadata.as_object_mut() {
            Some(m) => {
                m.insert("scope".into(), json!(scope));
            }
            None => signal.metadata = json!({ "scope": scope }),
        }
        self.observations.push(Observation {
            scope,
            level,
            signal,
            pending_ticks,
        });
    }
}

/// A percentage rule; `None` when its threshold is 0 (off).
fn percent_rule(
    alert_type: &str,
    component: &str,
    what: &str,
    value: f64,
    threshold: f64,
    hysteresis: f64,
) -> Option<(Level, AlertSignal)> {
    if threshold <= 0.0 {
        return None;
    }
    let level = Level::of(value, threshold, hysteresis);
    let signal = AlertSignal::new(
        alert_type,
        component,
        Severity::from_percent(value, threshold).min(Severity::Medium),
        format!("{what} at {value:.1}%, over the {threshold}% threshold"),
    )
    .measured(value, threshold);
    Some((level, signal))
}

/// A latency rule; `None` when its threshold is 0 (off).
fn latency_rule(
    alert_type: &str,
    component: &str,
    what: &str,
    ms: f64,
    threshold_ms: u64,
    hysteresis: f64,
) -> Option<(Level, AlertSignal)> {
    if threshold_ms == 0 {
        return None;
    }
    let threshold = threshold_ms as f64;
    let signal = AlertSignal::new(
        alert_type,
        component,
        Severity::from_ratio(ms, threshold).min(Severity::Medium),
        format!("{what} took {ms:.1} ms, over the {threshold_ms} ms threshold"),
    )
    .measured(ms, threshold);
    Some((Level::of(ms, threshold, hysteresis), signal))
}

fn api_rules(r: &mut Readings, routes: &[RouteStats], s: &Settings) {
    let t = &s.thresholds;
    let h = s.alerting.hysteresis_percent;
    let min = s.alerting.api_min_requests;
    for route in routes {
        let judged = route.count >= min;
        let name = format!("{} {}", route.method, route.route);
        let meta = json!({
            "requests": route.count, "errors": route.errors, "p95_ms": route.p95_ms,
            "error_rate": route.error_rate, "window_secs": s.alerting.api_window_ms / 1000,
        });
        if let Some((level, signal)) = latency_rule(
            types::API_SLOW,
            "api",
            &format!("p95 of {name}"),
            route.p95_ms,
            t.api_response_ms,
            h,
        ) {
            let level = if judged { level } else { Level::Hold };
            let signal = signal
                .label("method", route.method.clone())
                .label("route", route.route.clone())
                .with_metadata(meta.clone());
            r.push("api", level, signal);
        }
        if t.api_error_rate_percent > 0.0 {
            let threshold = t.api_error_rate_percent;
            let level = match judged {
                true => Level::of(route.error_rate, threshold, h),
                false => Level::Hold,
            };
            let severity = if route.error_rate >= CRITICAL_ERROR_RATE {
                Severity::Critical
            } else {
                Severity::High
            };
            let signal = AlertSignal::new(
                types::API_ERROR_RATE,
                "api",
                severity,
                format!(
                    "{name}: {:.1}% of {} requests failed (5xx), over the {threshold}% threshold",
                    route.error_rate, route.count
                ),
            )
            .measured(route.error_rate, threshold)
            .label("method", route.method.clone())
            .label("route", route.route.clone())
            .with_metadata(meta);
            r.push("api", level, signal);
        }
    }
}

fn host_rules(r: &mut Readings, sample: &HostSample, s: &Settings, own: &MonitorSettings) {
    let t = &s.thresholds;
    let h = s.alerting.hysteresis_percent;
    if let Some((level, signal)) = percent_rule(
        types::CPU_HIGH,
        "system",
        "host CPU",
        sample.cpu_percent,
        t.cpu_percent,
        h,
    ) {
        let signal = signal.with_metadata(json!({ "pending_ms": own.cpu_pending_ms }));
        r.push_pending("host", level, signal, Some(own.cpu_pending_ticks()));
    }
    let mut rules = vec![percent_rule(
        types::MEMORY_HIGH,
        "system",
        "host memory",
        sample.memory_percent,
        t.memory_percent,
        h,
    )
    .map(|(l, sig)| {
        let sig = sig.with_metadata(json!({
            "total_bytes": sample.memory_total_bytes, "used_bytes": sample.memory_used_bytes,
        }));
        (l, sig)
    })];
    if let Some(d) = sample.disk_percent {
        let mount = sample.disk_mount.clone().unwrap_or_default();
        rules.push(
            percent_rule(
                types::DISK_HIGH,
                "system",
                &format!("disk {mount}"),
                d,
                t.disk_percent,
                h,
            )
            .map(|(l, sig)| (l, sig.label("mount", mount))),
        );
    }
    if let Some(rss) = sample.rss_percent {
        rules.push(
            percent_rule(
                types::MEMORY_HIGH,
                "process",
                "this process's resident memory",
                rss,
                t.heap_percent,
                h,
            )
            .map(|(l, sig)| {
                let sig = sig
                    .label("type", "rss")
                    .with_metadata(json!({ "rss_bytes": sample.rss_bytes }));
                (l, sig)
            }),
        );
    }
    for (level, signal) in rules.into_iter().flatten() {
        r.push("host", level, signal);
    }
}

fn database_rules(r: &mut Readings, deps: &Dependencies, s: &Settings) {
    let Some(db) = &deps.database else { return };
    let t = &s.thresholds;
    let h = s.alerting.hysteresis_percent;
    r.scopes.push("database");
    let down = db.query_ms.is_none();
    // A wrong configuration (no such database) is not an outage: health says how to fix it,
    // nobody is paged; a firing alert neither repeats nor clears meanwhile.
    let level = if db.misconfigured {
        Level::Hold
    } else {
        Level::failed(down)
    };
    r.push(
        "database",
        level,
        AlertSignal::new(
            types::DB_CONNECTION_ERROR,
            "database",
            Severity::Critical,
            db.error
                .clone()
                .unwrap_or_else(|| "the database does not answer".to_owned()),
        )
        .with_metadata(json!({ "error": db.error })),
    );
    if let Some((level, signal)) = db
        .query_ms
        .and_then(|ms| latency_rule(types::DB_SLOW, "database", "SELECT 1", ms, t.db_query_ms, h))
    {
        r.push("database", level, signal);
    }
    if t.db_pool_percent > 0.0 {
        for p in &db.pools {
            let full = p.in_use >= p.max_size && p.max_size > 0;
            // While the database does not answer, callers wait for a connection because of the
            // outage (DB_CONNECTION_ERROR): the pool's reading neither fires nor clears.
            let level = if down {
                Level::Hold
            } else if p.waiting > 0 {
                Level::Breach
            } else {
                Level::of(p.usage_percent, t.db_pool_percent, h)
            };
            let severity = if full && p.waiting > 0 {
                Severity::Critical
            } else {
                Severity::High
            };
            let signal = AlertSignal::new(
                types::DB_POOL_EXHAUSTED,
                "database",
                severity,
                format!(
                    "pool {}: {:.0}% in use ({}/{}), {} caller(s) waiting for a connection",
                    p.name, p.usage_percent, p.in_use, p.max_size, p.waiting
                ),
            )
            .measured(p.usage_percent, t.db_pool_percent)
            .label("pool", p.name.clone())
            .with_metadata(
                json!({ "in_use": p.in_use, "max_size": p.max_size, "waiting": p.waiting }),
            );
            r.push("database", level, signal);
        }
    }
}

fn redis_rules(r: &mut Readings, deps: &Dependencies, s: &Settings) {
    let Some(redis) = &deps.redis else { return };
    let t = &s.thresholds;
    let h = s.alerting.hysteresis_percent;
    r.scopes.push("redis");
    r.push(
        "redis",
        Level::failed(redis.ping_ms.is_none()),
        AlertSignal::new(
            types::REDIS_DOWN,
            "redis",
            Severity::High,
            format!(
                "Redis does not answer: {}",
                redis.error.as_deref().unwrap_or("no answer")
            ),
        )
        .with_metadata(json!({ "error": redis.error })),
    );
    if let Some((level, signal)) = redis.ping_ms.and_then(|ms| {
        latency_rule(
            types::REDIS_SLOW,
            "redis",
            "PING",
            ms,
            t.redis_response_ms,
            h,
        )
    }) {
        r.push("redis", level, signal);
    }
    if let Some((level, signal)) = redis.memory.and_then(|m| m.percent()).and_then(|pct| {
        percent_rule(
            types::REDIS_MEMORY_HIGH,
            "redis",
            "Redis memory (of maxmemory)",
            pct,
            t.redis_memory_percent,
            h,
        )
    }) {
        r.push("redis", level, signal);
    }
}

fn external_rules(r: &mut Readings, results: &[ExternalResult]) {
    r.scopes.push("external");
    for e in results {
        let why = match (&e.error, e.status) {
            (Some(err), _) => err.clone(),
            (None, Some(status)) => format!("answered HTTP {status}"),
            (None, None) => "no answer".to_owned(),
        };
        let signal = AlertSignal::new(
            types::EXTERNAL_API_DOWN,
            "external",
            Severity::Medium,
            format!("external check {} ({}) failed: {why}", e.name, e.url),
        )
        .label("check", e.name.clone())
        .with_metadata(json!({
            "url": e.url, "status": e.status, "error": e.error, "elapsed_ms": e.elapsed_ms,
        }));
        r.push("external", Level::failed(!e.up), signal);
    }
}

/// The metrics store refusing samples of new series (`METRICS_MAX_SERIES` reached).
fn metrics_rules(r: &mut Readings, refused: u64, stats: &StoreStats) {
    r.scopes.push("metrics");
    let signal = AlertSignal::new(
        types::METRICS_CARDINALITY,
        "metrics",
        Severity::High,
        format!(
            "the metrics store refused {refused} sample(s) of new series since the last tick: it \
             holds {} of METRICS_MAX_SERIES {} series ({} for requests to no route or with an \
             unknown method); last refused: {}",
            stats.series,
            stats.max_series,
            stats.unrouted_max_series,
            stats.last_rejected.as_deref().unwrap_or("-")
        ),
    )
    .measured(stats.series as f64, stats.max_series as f64)
    .with_metadata(json!({ "refused": refused, "rejected_total": stats.rejected_samples }));
    r.push("metrics", Level::failed(refused > 0), signal);
}

/// One tick's measurements, as the rules read them.
pub struct Inputs<'a> {
    pub sample: &'a HostSample,
    /// `None` when the metrics store could not be read: the API rules are not judged (and
    /// the alerts they raised are neither renewed nor resolved).
    pub routes: Option<&'a [RouteStats]>,
    pub deps: &'a Dependencies,
    /// `None` on ticks where the external checks did not run (they have an interval of their
    /// own).
    pub external: Option<&'a [ExternalResult]>,
    /// Samples refused since the last tick, and the store's figures (`None`: not read).
    pub refused: Option<(u64, &'a StoreStats)>,
}

/// The readings of one tick.
pub fn readings(i: &Inputs<'_>, settings: &Settings, own: &MonitorSettings) -> Readings {
    let mut r = Readings {
        scopes: vec!["host"],
        observations: Vec::new(),
    };
    if let Some(routes) = i.routes {
        r.scopes.insert(0, "api");
        api_rules(&mut r, routes, settings);
    }
    host_rules(&mut r, i.sample, settings, own);
    database_rules(&mut r, i.deps, settings);
    redis_rules(&mut r, i.deps, settings);
    if let Some(results) = i.external {
        external_rules(&mut r, results);
    }
    if let Some((refused, stats)) = i.refused {
        metrics_rules(&mut r, refused, stats);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::monitor::checks::tests::{calm, db, pool, route};
    use crate::agents::monitor::dependencies::RedisProbe;
    use crate::redis::RedisMemory;

    /// The level of the one reading of `alert_type` (and `component`).
    fn level(r: &Readings, alert_type: &str, component: &str) -> Level {
        let found: Vec<_> = r
            .observations
            .iter()
            .filter(|o| o.signal.alert_type == alert_type && o.signal.component == component)
            .collect();
        assert_eq!(found.len(), 1, "{alert_type}/{component}: {found:?}");
        found[0].level
    }

    fn own() -> MonitorSettings {
        crate::config::knobs::defaults()
    }

    fn read(sample: &HostSample, routes: &[RouteStats], deps: &Dependencies) -> Readings {
        readings(
            &Inputs {
                sample,
                routes: Some(routes),
                deps,
                external: None,
                refused: None,
            },
            &Settings::for_tests(),
            &own(),
        )
    }

    #[test]
    fn api_slow_fires_over_the_threshold_and_clears_under_the_hysteresis_band() {
        let none = Dependencies::default();
        let r = read(&calm(), &[route(600.0, 0, 100)], &none);
        assert_eq!(level(&r, types::API_SLOW, "api"), Level::Breach);
        let o = &r.observations[0];
        assert_eq!(o.signal.labels["route"], "/r");
        assert_eq!(o.signal.metadata["scope"], "api");
        assert_eq!(
            read(&calm(), &[route(480.0, 0, 100)], &none).observations[0].level,
            Level::Hold
        );
        assert_eq!(
            level(
                &read(&calm(), &[route(20.0, 0, 100)], &none),
                types::API_SLOW,
                "api"
            ),
            Level::Clear
        );
        // Too few requests to judge.
        assert_eq!(
            level(
                &read(&calm(), &[route(900.0, 0, 2)], &none),
                types::API_SLOW,
                "api"
            ),
            Level::Hold
        );
    }

    #[test]
    fn api_error_rate_fires_on_5xx_share_and_clears() {
        let none = Dependencies::default();
        let r = read(&calm(), &[route(20.0, 3, 100)], &none);
        assert_eq!(level(&r, types::API_ERROR_RATE, "api"), Level::Breach);
        let r = read(&calm(), &[route(20.0, 60, 100)], &none);
        let o = r
            .observations
            .iter()
            .find(|o| o.signal.alert_type == types::API_ERROR_RATE)
            .unwrap();
        assert_eq!(o.signal.severity, Severity::Critical);
        assert_eq!(
            level(
                &read(&calm(), &[route(20.0, 0, 100)], &none),
                types::API_ERROR_RATE,
                "api"
            ),
            Level::Clear
        );
    }

    #[test]
    fn host_rules_fire_and_clear_and_zero_turns_them_off() {
        let none = Dependencies::default();
        let mut hot = calm();
        hot.memory_percent = 95.0;
        hot.cpu_percent = 99.0;
        hot.disk_percent = Some(97.0);
        hot.rss_percent = Some(95.0);
        let r = read(&hot, &[], &none);
        for (t, c) in [
            (types::MEMORY_HIGH, "system"),
            (types::CPU_HIGH, "system"),
            (types::DISK_HIGH, "system"),
            (types::MEMORY_HIGH, "process"),
        ] {
            assert_eq!(level(&r, t, c), Level::Breach, "{t}/{c}");
        }
        let r = read(&calm(), &[], &none);
        for (t, c) in [
            (types::MEMORY_HIGH, "system"),
            (types::CPU_HIGH, "system"),
            (types::DISK_HIGH, "system"),
            (types::MEMORY_HIGH, "process"),
        ] {
            assert_eq!(level(&r, t, c), Level::Clear, "{t}/{c}");
        }
        let mut s = Settings::for_tests();
        s.thresholds.cpu_percent = 0.0;
        let r = readings(
            &Inputs {
                sample: &hot,
                routes: Some(&[]),
                deps: &none,
                external: None,
                refused: None,
            },
            &s,
            &own(),
        );
        assert!(r
            .observations
            .iter()
            .all(|o| o.signal.alert_type != types::CPU_HIGH));
    }

    #[test]
    fn database_rules_fire_and_clear() {
        let r = read(&calm(), &[], &db(None, vec![pool("app", 1, 1)]));
        assert!(r.scopes.contains(&"database"));
        assert_eq!(
            level(&r, types::DB_CONNECTION_ERROR, "database"),
            Level::Breach
        );
        // Callers waiting during the outage are its consequence, not a pool to page about.
        assert_eq!(level(&r, types::DB_POOL_EXHAUSTED, "database"), Level::Hold);
        let r = read(&calm(), &[], &db(Some(2.0), vec![pool("app", 1, 0)]));
        assert_eq!(
            level(&r, types::DB_CONNECTION_ERROR, "database"),
            Level::Clear
        );
        assert_eq!(level(&r, types::DB_SLOW, "database"), Level::Clear);
        assert_eq!(
            level(&r, types::DB_POOL_EXHAUSTED, "database"),
            Level::Clear
        );
        let r = read(&calm(), &[], &db(Some(250.0), vec![pool("app", 9, 0)]));
        assert_eq!(level(&r, types::DB_SLOW, "database"), Level::Breach);
        assert_eq!(
            level(&r, types::DB_POOL_EXHAUSTED, "database"),
            Level::Breach
        );
        // Waiting callers are a breach whatever the percentage.
        let r = read(&calm(), &[], &db(Some(2.0), vec![pool("app", 10, 3)]));
        let o = r
            .observations
            .iter()
            .find(|o| o.signal.alert_type == types::DB_POOL_EXHAUSTED)
            .unwrap();
        assert_eq!(
            (o.level, o.signal.severity),
            (Level::Breach, Severity::Critical)
        );
        // Not configured: not evaluated at all.
        assert!(!read(&calm(), &[], &Dependencies::default())
            .scopes
            .contains(&"database"));
    }

    #[test]
    fn redis_rules_fire_and_clear() {
        let redis = |ping_ms: Option<f64>, used: u64| Dependencies {
            database: None,
            redis: Some(RedisProbe {
                ping_ms,
                error: None,
                memory: Some(RedisMemory {
                    used_bytes: used,
                    max_bytes: 100,
                }),
            }),
        };
        let r = read(&calm(), &[], &redis(None, 0));
        assert_eq!(level(&r, types::REDIS_DOWN, "redis"), Level::Breach);
        let r = read(&calm(), &[], &redis(Some(200.0), 95));
        assert_eq!(level(&r, types::REDIS_DOWN, "redis"), Level::Clear);
        assert_eq!(level(&r, types::REDIS_SLOW, "redis"), Level::Breach);
        assert_eq!(level(&r, types::REDIS_MEMORY_HIGH, "redis"), Level::Breach);
        let r = read(&calm(), &[], &redis(Some(1.0), 10));
        assert_eq!(level(&r, types::REDIS_SLOW, "redis"), Level::Clear);
        assert_eq!(level(&r, types::REDIS_MEMORY_HIGH, "redis"), Level::Clear);
    }

    #[test]
    fn external_checks_fire_on_failure_and_only_when_probed() {
        let result = |up: bool| ExternalResult {
            name: "payments".into(),
            url: "http://127.0.0.1:9/".into(),
            up,
            status: (!up).then_some(500),
            elapsed_ms: 3.0,
            error: None,
            skipped: false,
        };
        let s = Settings::for_tests();
        let none = Dependencies::default();
        let with = |external: Option<&[ExternalResult]>| {
            readings(
                &Inputs {
                    sample: &calm(),
                    routes: Some(&[]),
                    deps: &none,
                    external,
                    refused: None,
                },
                &s,
                &own(),
            )
        };
        let r = with(Some(&[result(false)]));
        assert_eq!(
            level(&r, types::EXTERNAL_API_DOWN, "external"),
            Level::Breach
        );
        assert!(r
            .observations
            .iter()
            .any(|o| o.signal.message.contains("HTTP 500")));
        let r = with(Some(&[result(true)]));
        assert_eq!(
            level(&r, types::EXTERNAL_API_DOWN, "external"),
            Level::Clear
        );
        let r = with(None);
        assert!(!r.scopes.contains(&"external"));
    }

    #[test]
    fn host_cpu_needs_the_cpu_pending_time_and_the_others_do_not() {
        let mut hot = calm();
        hot.cpu_percent = 99.0;
        hot.memory_percent = 99.0;
        let r = read(&hot, &[], &Dependencies::default());
        let pending = |t: &str| {
            r.observations
                .iter()
                .find(|o| o.signal.alert_type == t && o.signal.component == "system")
                .map(|o| o.pending_ticks)
        };
        // 300 000 ms at one tick every 5 000 ms.
        assert_eq!(pending(types::CPU_HIGH), Some(Some(60)));
        assert_eq!(pending(types::MEMORY_HIGH), Some(None));
        let mut own = own();
        own.interval_ms = 1_000;
        own.cpu_pending_ms = 2_500;
        assert_eq!(own.cpu_pending_ticks(), 3);
    }

    #[test]
    fn refused_metric_samples_are_a_cardinality_breach_until_they_stop() {
        let stats = StoreStats {
            series: 1000,
            max_series: 1000,
            rejected_samples: 42,
            unrouted_max_series: 750,
            last_rejected: Some("api_response_time{method=GET}".into()),
            ingested_samples: 1,
        };
        let none = Dependencies::default();
        let with = |refused| {
            readings(
                &Inputs {
                    sample: &calm(),
                    routes: Some(&[]),
                    deps: &none,
                    external: None,
                    refused: Some((refused, &stats)),
                },
                &Settings::for_tests(),
                &own(),
            )
        };
        let r = with(7);
        assert_eq!(
            level(&r, types::METRICS_CARDINALITY, "metrics"),
            Level::Breach
        );
        assert!(r.scopes.contains(&"metrics"));
        assert_eq!(
            level(&with(0), types::METRICS_CARDINALITY, "metrics"),
            Level::Clear
        );
    }
}
