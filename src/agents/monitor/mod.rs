//! `MonitorAgent`: samples the host, this process, the dependencies and the API every
//! `MONITOR_INTERVAL_MS`, computes the overall health verdict, and feeds the alert rules.
//!
//! Per tick: the host and process ([`host`]), Postgres and Redis ([`dependencies`]), the
//! per-route API statistics over `API_ALERT_WINDOW_MS` and the metrics store's fill from the
//! `MetricsStore`, and every `EXTERNAL_CHECK_INTERVAL_MS` the `EXTERNAL_CHECKS` endpoints. Out:
//! gauge samples and the health report ([`checks`]) to the `MetricsStore`; a `health-check`
//! event when the overall verdict changes; the rules' readings ([`rules`]) to the
//! AlertManager; a Redis heartbeat.
//!
//! Command ([`MonitorCommand::Check`], `POST /api/v1/system/health/check`): measure now and
//! answer the fresh report, without a rule reading (an extra tick would hurry the alerts'
//! pending ticks).
//!
//! Its own settings ([`MonitorSettings`]): the interval, the external checks' interval and
//! timeout, and how long host CPU must stay high before `CPU_HIGH` fires.
//!
//! Restart policy: the harness's (see `actors::harness`); the sysinfo handles are rebuilt.

pub mod checks;
pub mod dependencies;
pub mod host;
pub mod rules;

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;

use crate::actors::agent::{Agent, AgentContext, AgentError};
use crate::actors::alert_manager::ObserveRules;
use crate::actors::metrics_store::{
    Gauge, GetRecentRouteStats, GetStoreStats, RecordGauges, StoreStats,
};
use crate::agents::external::{ExternalProbe, ExternalResult};
use crate::config::{every, Knobs, Section};
use crate::domain::event::Payload;
use crate::domain::health::{HealthReport, Overall};
use crate::domain::metric::{RouteStats, SeriesKey, Unit, EXTERNAL_API_RESPONSE_TIME};
use crate::redis::RedisHandle;
use dependencies::{dependency_gauges, probe_dependencies, Dependencies};
use host::{Host, HostSample};

/// The Monitor's own settings.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// `MONITOR_INTERVAL_MS`: how often it ticks (`0`: never).
    pub interval_ms: u64,
    /// `EXTERNAL_CHECK_INTERVAL_MS`: how often the external checks run (at most once a tick).
    pub external_interval_ms: u64,
    /// `API_TIMEOUT_MS`: timeout of each external check (`0`: the default, 10 000).
    pub external_timeout_ms: u64,
    /// `CPU_ALERT_PENDING_MS`: how long host CPU must stay over its threshold before
    /// `CPU_HIGH` fires.
    pub cpu_pending_ms: u64,
}

impl Section for MonitorSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        MonitorSettings {
            interval_ms: k.ms(
                "MONITOR_INTERVAL_MS",
                5_000,
                "Monitor: host, process, dependency and API sampling, the health verdict and the alert rules' readings, ms; 0 = off.",
            ),
            external_interval_ms: k.ms(
                "EXTERNAL_CHECK_INTERVAL_MS",
                30_000,
                "How often the external endpoints are probed, ms; 0 = every Monitor tick.",
            ),
            external_timeout_ms: k.ms(
                "API_TIMEOUT_MS",
                10_000,
                "Timeout of each external check (EXTERNAL_CHECKS), ms; 0 = the default, 10000.",
            ),
            cpu_pending_ms: k.ms(
                "CPU_ALERT_PENDING_MS",
                300_000,
                "How long host CPU must stay over CPU_THRESHOLD_PERCENT before CPU_HIGH fires, ms (like Prometheus's `for: 5m`; at least ALERT_PENDING_TICKS ticks).",
            ),
        }
    }
}

impl MonitorSettings {
    /// Breaching ticks before `CPU_HIGH` fires.
    pub fn cpu_pending_ticks(&self) -> u32 {
        let ticks = self.cpu_pending_ms.div_ceil(self.interval_ms.max(1));
        u32::try_from(ticks).unwrap_or(u32::MAX)
    }
}

/// What the Monitor can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorCommand {
    /// Measure now and answer the fresh health report (also recorded as the latest).
    Check,
}

/// How long the metrics store may take to answer: it answers in microseconds when it runs,
/// and while it waits out a restart backoff the tick goes on without it rather than stall.
const METRICS_ANSWER: Duration = Duration::from_secs(1);

/// The Monitor's state: the sysinfo handles, the external checks' client, and what the last
/// tick found.
pub struct MonitorAgent {
    own: MonitorSettings,
    host: Host,
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
    /// The metrics store's refused samples at the last tick.
    refused_seen: Option<u64>,
    readings_sent: u64,
    checks_run: u64,
}

/// One round of measurements.
struct Measured {
    sample: HostSample,
    /// The per-route statistics, or why the metrics store could not give them.
    routes: Result<Vec<RouteStats>, String>,
    deps: Dependencies,
    /// `None` when the external checks were not due.
    external: Option<Vec<ExternalResult>>,
    store: Option<StoreStats>,
    /// Samples of new series refused since the last tick.
    refused: u64,
}

impl MonitorAgent {
    /// `<prefix>instance:<id>`: this instance is alive (expires after three intervals).
    async fn heartbeat(&mut self, cx: &AgentContext, redis: &RedisHandle, overall: Overall) {
        let every = Duration::from_millis(self.own.interval_ms.max(1000));
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
        let every = Duration::from_millis(self.own.external_interval_ms);
        if self.external_at.is_some_and(|at| at.elapsed() < every) {
            return None;
        }
        self.external_at = Some(Instant::now());
        Some(probe.probe(&cx.settings.alerting.external_checks).await)
    }

    /// Everything a tick measures. A tick moves the baseline refused samples are counted from;
    /// a check on request does not (the next tick's rule must see them).
    /// Without the metrics store (restarting, or failed) the rest is still measured.
    async fn measure(&mut self, cx: &AgentContext, tick: bool) -> Measured {
        let sample = self.host.sample();
        // Both asked at once: a store that does not answer costs one wait, not two.
        let (routes, store) = futures_util::future::join(
            cx.metrics
                .send(GetRecentRouteStats {
                    secs: cx.settings.alerting.api_window_ms / 1000,
                })
                .timeout(METRICS_ANSWER),
            cx.metrics.send(GetStoreStats).timeout(METRICS_ANSWER),
        )
        .await;
        let routes = routes.map_err(|e| format!("the metrics store is unavailable ({e})"));
        let store = store.ok();
        let refused = match (&store, self.refused_seen) {
            (Some(s), Some(seen)) => s.rejected_samples.saturating_sub(seen),
            // The first tick: what was refused since start.
            (Some(s), None) => s.rejected_samples,
            (None, _) => 0,
        };
        if let Some(s) = store.as_ref().filter(|_| tick) {
            self.refused_seen = Some(s.rejected_samples);
        }
        let (deps, external) =
            futures_util::future::join(probe_dependencies(cx), self.probe_external(cx)).await;
        Measured {
            sample,
            routes,
            deps,
            external,
            store,
            refused,
        }
    }

    /// The report of a round, recorded as the latest, with a `health-check` event when the
    /// verdict changed; and its gauges.
    fn report(&mut self, cx: &AgentContext, m: &Measured) -> HealthReport {
        let routes = m.routes.as_deref().unwrap_or(&[]);
        let mut named = checks::checks(&m.sample, routes, &m.deps, &cx.settings);
        match (&m.routes, &m.store) {
            (Ok(_), Some(store)) => named.push((
                "metrics".to_owned(),
                checks::metrics_check(store, m.refused),
            )),
            (Err(why), _) => {
                // Blind on the API: say so rather than report its silence as healthy.
                for (name, check) in named.iter_mut().filter(|(n, _)| n == "api") {
                    *check = checks::unavailable(name, why);
                }
                named.push(("metrics".to_owned(), checks::unavailable("metrics", why)));
            }
            (Ok(_), None) => named.push((
                "metrics".to_owned(),
                checks::unavailable("metrics", "the metrics store did not answer"),
            )),
        }
        named.extend(checks::external_checks(
            m.external.as_deref().unwrap_or(&self.last_external),
        ));
        let report = HealthReport::from_checks(named);
        let mut gauges = m.sample.gauges();
        gauges.extend(dependency_gauges(&m.deps));
        if let Some(results) = &m.external {
            gauges.extend(results.iter().filter(|e| !e.skipped).map(|e| Gauge {
                key: SeriesKey::new(
                    EXTERNAL_API_RESPONSE_TIME,
                    vec![("check".into(), e.name.clone())],
                ),
                unit: Unit::Ms,
                value: e.elapsed_ms,
            }));
        }
        cx.metrics.do_send(RecordGauges(gauges));
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
        cx.health.set(report.clone());
        report
    }

    fn keep(&mut self, m: Measured) {
        self.last = m.sample;
        self.last_deps = m.deps;
        if let Some(results) = m.external {
            self.last_external = results;
        }
    }
}

impl Agent for MonitorAgent {
    const NAME: &'static str = "Monitor";
    type Settings = MonitorSettings;
    type Command = MonitorCommand;
    type Reply = Result<HealthReport, AgentError>;

    fn interval(own: &MonitorSettings) -> Option<Duration> {
        every(own.interval_ms)
    }

    fn build(cx: &AgentContext, own: &MonitorSettings) -> Result<Self, AgentError> {
        Ok(MonitorAgent {
            own: own.clone(),
            host: Host::new()?,
            last: HostSample::default(),
            overall: Overall::Unknown,
            health_changes: 0,
            last_deps: Dependencies::default(),
            heartbeats: 0,
            // A timeout of 0 is the probe's default.
            external: (!cx.settings.alerting.external_checks.is_empty()).then(|| {
                ExternalProbe::new(
                    Duration::from_millis(own.external_timeout_ms),
                    cx.breakers.clone(),
                )
            }),
            external_at: None,
            last_external: Vec::new(),
            refused_seen: None,
            readings_sent: 0,
            checks_run: 0,
        })
    }

    async fn tick(&mut self, cx: &AgentContext) -> Result<(), AgentError> {
        let m = self.measure(cx, true).await;
        let report = self.report(cx, &m);
        let readings = rules::readings(
            &rules::Inputs {
                sample: &m.sample,
                routes: m.routes.as_deref().ok(),
                deps: &m.deps,
                external: m.external.as_deref(),
                refused: m.store.as_ref().map(|s| (m.refused, s)),
            },
            &cx.settings,
            &self.own,
        );
        cx.alerts.do_send(ObserveRules {
            scopes: readings.scopes,
            observations: readings.observations,
        });
        self.readings_sent += 1;
        if let Some(redis) = &cx.redis {
            if m.deps.redis.as_ref().is_some_and(|r| r.ping_ms.is_some()) {
                self.heartbeat(cx, redis, report.overall).await;
            }
        }
        self.keep(m);
        Ok(())
    }

    async fn on_command(
        &mut self,
        cx: &AgentContext,
        command: MonitorCommand,
    ) -> Result<HealthReport, AgentError> {
        match command {
            MonitorCommand::Check => {
                let m = self.measure(cx, false).await;
                let report = self.report(cx, &m);
                self.keep(m);
                self.checks_run += 1;
                Ok(report)
            }
        }
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
            "checks_on_request": self.checks_run,
            "cpu_pending_ticks": self.own.cpu_pending_ticks(),
        })
    }
}
