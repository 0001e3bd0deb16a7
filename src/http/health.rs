//! Health: the public liveness probe, the verdict, the detailed view and the dashboard.

use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Addr, Handler, Message};
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

use crate::actors::alert_manager::{self, GetAlertStats, GetRecentAlerts};
use crate::actors::event_bus::{self, GetBusStats, GetHistory};
use crate::actors::metrics_store::{self, GetRouteStats, GetStoreStats, QueryMetrics};
use crate::domain::agent::{AgentState, AgentStatus};
use crate::domain::health::{HealthReport, Overall};
use crate::domain::metric::{SeriesStats, Window, API_RESPONSE_TIME};
use crate::handles::SelfHeal;
use crate::http::common::Sh;
use crate::http::error::{ok, ApiError};

/// `GET` and `HEAD /health`: liveness for load balancers. Touches no actor and no dependency.
pub async fn liveness() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

/// Unknown route.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".to_owned()))
}

/// A known route asked with the wrong method.
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// The verdict the system reports: the Monitor's, unless it is stale or missing, and never
/// better than `degraded` while an agent or core actor has failed.
fn system_overall(sh: &SelfHeal, report: &HealthReport, actors: &[AgentStatus]) -> (Overall, bool) {
    let interval = sh
        .settings
        .agent("Monitor")
        .and_then(|m| m.interval)
        .unwrap_or(Duration::from_secs(5));
    let max_age = (interval * 3).max(Duration::from_secs(15));
    let age = (Utc::now() - report.last_update)
        .to_std()
        .unwrap_or_default();
    let stale = report.overall != Overall::Unknown && age > max_age;
    let mut overall = if stale {
        Overall::Unknown
    } else {
        report.overall
    };
    // A failed actor is known damage: not `healthy`, and not `unknown` either.
    if actors.iter().any(|a| a.state == AgentState::Failed)
        && matches!(overall, Overall::Healthy | Overall::Unknown)
    {
        overall = Overall::Degraded;
    }
    (overall, stale)
}

fn system_block(sh: &SelfHeal) -> serde_json::Value {
    json!({
        "status": "running",
        "store": sh.store.status(),
        "uptime": sh.uptime().as_millis() as u64,
        "started_at": sh.started_at(),
        "version": env!("CARGO_PKG_VERSION"),
        "self_healing": sh.settings.enable_self_healing,
    })
}

/// Actors by name.
pub(crate) fn actor_map(actors: &[AgentStatus]) -> serde_json::Map<String, serde_json::Value> {
    actors
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// The Monitor's latest report.
async fn report(sh: &SelfHeal) -> HealthReport {
    sh.health.get()
}

/// `GET /api/v1/system/health`.
pub async fn health(sh: Sh) -> Result<HttpResponse, ApiError> {
    let report = report(&sh).await;
    let actors = sh.actors.statuses();
    let (overall, stale) = system_overall(&sh, &report, &actors);
    let summary: serde_json::Map<_, _> = actors
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                json!({"kind": a.kind, "state": a.state, "running": a.running, "enabled": a.enabled, "restarts": a.restarts}),
            )
        })
        .collect();
    Ok(ok(json!({
        "system": system_block(&sh),
        "overall": overall,
        "stale": stale,
        "agents": summary,
        "health": report,
    })))
}

/// How long the health views wait for a core actor: one waiting out a restart backoff is
/// shown as unavailable rather than holding the answer back.
const ANSWER: Duration = Duration::from_secs(1);

/// The parts of a health view asked of the core actors, and the actors that did not answer
/// (restarting or failed): the views show what they can, `null` for the rest, rather than
/// fail whole.
#[derive(Default)]
struct Parts {
    unavailable: Vec<&'static str>,
}

impl Parts {
    /// `msg` answered by `addr` within [`ANSWER`], or `None` with `name` noted.
    async fn ask<A, M>(&mut self, name: &'static str, addr: &Addr<A>, msg: M) -> Option<M::Result>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        match addr.send(msg).timeout(ANSWER).await {
            Ok(answer) => Some(answer),
            Err(_) => {
                if !self.unavailable.contains(&name) {
                    self.unavailable.push(name);
                }
                None
            }
        }
    }

    /// Host and process gauges (every series but the request latencies) over `window`.
    async fn gauges(&mut self, sh: &SelfHeal, window: Window) -> Option<Vec<SeriesStats>> {
        let query = QueryMetrics {
            window,
            name: None,
            route: None,
        };
        let view = self.ask(metrics_store::NAME, &sh.metrics, query).await?;
        Some(
            view.series
                .into_iter()
                .filter(|s| s.name != API_RESPONSE_TIME)
                .collect(),
        )
    }
}

/// `GET /api/v1/system/health/detailed`. A part whose actor is down is `null`, and the actor
/// is named in `unavailable`.
pub async fn health_detailed(sh: Sh, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let report = report(&sh).await;
    let actors = sh.actors.statuses();
    let (overall, stale) = system_overall(&sh, &report, &actors);
    let mut parts = Parts::default();
    let gauges = parts.gauges(&sh, Window::M5).await;
    let routes = parts
        .ask(metrics_store::NAME, &sh.metrics, GetRouteStats(Window::M5))
        .await;
    let store = parts
        .ask(metrics_store::NAME, &sh.metrics, GetStoreStats)
        .await;
    let bus = parts.ask(event_bus::NAME, &sh.bus, GetBusStats).await;
    let alerts = parts
        .ask(alert_manager::NAME, &sh.alerts, GetAlertStats)
        .await;
    let (traces, _) = sh.in_flight.snapshot(0, Some(req.resource_map()));
    let logs = crate::logging::ring().query(None, 0, None);
    let (memory_rows, memory_bytes) = sh.store.memory_size();
    Ok(ok(json!({
        "timestamp": Utc::now(),
        "overall": overall,
        "stale": stale,
        "components": report.checks,
        "last_update": report.last_update,
        "metrics": gauges,
        "routes": routes,
        "traces": traces,
        "agents": actor_map(&actors),
        "store": store,
        "history": { "memory_rows": memory_rows, "memory_bytes": memory_bytes },
        "events": bus,
        "alerts": alerts,
        "breakers": sh.breakers.snapshots(),
        "auth": sh.auth.stats(),
        "supervision": { "reports_lost": sh.reporter.lost() },
        "logs": { "capturing": logs.capturing, "capacity": logs.capacity, "total": logs.total },
        "unavailable": parts.unavailable,
    })))
}

/// `GET /api/v1/system/dashboard`. A part whose actor is down is `null`, and the actor is
/// named in `unavailable`.
pub async fn dashboard(sh: Sh, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let report = report(&sh).await;
    let actors = sh.actors.statuses();
    let (overall, stale) = system_overall(&sh, &report, &actors);
    let mut parts = Parts::default();
    let gauges = parts.gauges(&sh, Window::M5).await;
    let mut routes = parts
        .ask(metrics_store::NAME, &sh.metrics, GetRouteStats(Window::M5))
        .await;
    if let Some(r) = routes.as_mut() {
        r.truncate(10);
    }
    let history = GetHistory {
        channel: None,
        limit: 20,
    };
    let events = parts.ask(event_bus::NAME, &sh.bus, history).await;
    let (traces, _) = sh.in_flight.snapshot(0, Some(req.resource_map()));
    let stats = parts
        .ask(alert_manager::NAME, &sh.alerts, GetAlertStats)
        .await;
    // The ten open alerts that matter most: most severe first, then newest.
    let active = parts
        .ask(alert_manager::NAME, &sh.alerts, GetRecentAlerts)
        .await
        .map(|alerts| {
            let mut active: Vec<_> = alerts.into_iter().filter(|a| a.is_open()).collect();
            active.sort_by_key(|a| (a.severity.rank(), std::cmp::Reverse(a.last_seen)));
            active.truncate(10);
            active
        });
    Ok(ok(json!({
        "timestamp": Utc::now(),
        "system": system_block(&sh),
        "health": {
            "overall": overall,
            "stale": stale,
            "unhealthy_count": report.unhealthy_count,
            "last_update": report.last_update,
        },
        "metrics": gauges,
        "routes": routes,
        "traces": traces,
        "agents": actor_map(&actors),
        "alerts": { "active": active, "stats": stats },
        "recent_events": events,
        "unavailable": parts.unavailable,
    })))
}

/// `POST /api/v1/system/health/check`: the Monitor measures now (its `Check` command) and the
/// fresh report is answered (and recorded as the latest), without waiting for its next tick.
pub async fn check_now(sh: Sh) -> Result<HttpResponse, ApiError> {
    use crate::agents::monitor::{MonitorAgent, MonitorCommand};
    let report = sh
        .command::<MonitorAgent>(MonitorCommand::Check)
        .await?
        .map_err(|e| ApiError::Unavailable(format!("the Monitor could not measure: {e}")))?;
    Ok(ok(report))
}
