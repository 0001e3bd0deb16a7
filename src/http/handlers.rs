//! Handlers of the system API, in route-table order. Each validates its input, asks the actors
//! through the typed handles in [`SelfHeal`], and answers with the envelope.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::actors::alert_manager::{GetAlertStats, GetRecentAlerts};
use crate::actors::event_bus::{GetBusStats, GetHistory};
use crate::actors::metrics_store::{
    GetHealth, GetQueryReport, GetRouteStats, GetStoreStats, QueryMetrics,
};
use crate::actors::supervisor::{AgentLookupError, ListAgents, RestartAgent};
use crate::domain::agent::{AgentState, AgentStatus};
use crate::domain::alert::Severity;
use crate::domain::event::Channel;
use crate::domain::health::{HealthReport, Overall};
use crate::domain::metric::{Window, API_RESPONSE_TIME};
use crate::http::error::{ok, ApiError};
use crate::store::{AuditRow, MetricHistoryQuery, Record};
use crate::system::SelfHeal;

type Sh = web::Data<SelfHeal>;

/// `GET /health`: liveness for load balancers. Touches no actor and no dependency.
pub async fn liveness() -> HttpResponse {
    ok(json!({ "status": "ok" }))
}

/// Unknown route under `/api/v1/system`.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".to_owned()))
}

/// A known route asked with the wrong method.
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// The verdict the system reports: the Monitor's, unless it is stale or missing, and never
/// better than `degraded` while an agent has failed.
fn system_overall(sh: &SelfHeal, report: &HealthReport, agents: &[AgentStatus]) -> (Overall, bool) {
    let interval = Duration::from_millis(sh.settings.intervals.monitor_ms);
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
    if agents.iter().any(|a| a.state == AgentState::Failed) && overall < Overall::Degraded {
        overall = Overall::Degraded;
    }
    (overall, stale)
}

/// Record an admin action in the audit log (`admin_audit_logs`).
pub(crate) fn audit(
    sh: &SelfHeal,
    req: &HttpRequest,
    action: &str,
    resource: &str,
    id: &str,
    details: serde_json::Value,
) {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    sh.store.write(Record::Audit(AuditRow {
        id: Uuid::new_v4(),
        // One shared admin token: the actor is the token holder; a caller may name itself.
        actor: header("x-admin-user").unwrap_or_else(|| "admin-token".to_owned()),
        action: action.to_owned(),
        resource: Some(resource.to_owned()),
        resource_id: Some(id.to_owned()),
        details,
        ip_address: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: header("user-agent"),
        created_at: Utc::now(),
    }));
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

fn agent_map(agents: &[AgentStatus]) -> serde_json::Map<String, serde_json::Value> {
    agents
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// `GET /api/v1/system/health`.
pub async fn health(sh: Sh) -> Result<HttpResponse, ApiError> {
    let report = sh.metrics.send(GetHealth).await?;
    let agents = sh.supervisor.send(ListAgents).await?;
    let (overall, stale) = system_overall(&sh, &report, &agents);
    let summary: serde_json::Map<_, _> = agents
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                json!({"state": a.state, "running": a.running, "enabled": a.enabled, "restarts": a.restarts}),
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

/// `GET /api/v1/system/health/detailed`.
pub async fn health_detailed(sh: Sh) -> Result<HttpResponse, ApiError> {
    let report = sh.metrics.send(GetHealth).await?;
    let agents = sh.supervisor.send(ListAgents).await?;
    let (overall, stale) = system_overall(&sh, &report, &agents);
    let gauges = gauge_series(&sh, Window::M5).await?;
    let routes = sh.metrics.send(GetRouteStats(Window::M5)).await?;
    let store = sh.metrics.send(GetStoreStats).await?;
    let bus = sh.bus.send(GetBusStats).await?;
    let alerts = sh.alerts.send(GetAlertStats).await?;
    let (traces, _) = sh.in_flight.snapshot(0);
    Ok(ok(json!({
        "timestamp": Utc::now(),
        "overall": overall,
        "stale": stale,
        "components": report.checks,
        "last_update": report.last_update,
        "metrics": gauges,
        "routes": routes,
        "traces": traces,
        "agents": agent_map(&agents),
        "store": store,
        "events": bus,
        "alerts": alerts,
    })))
}

/// Host and process gauges (every series but the request latencies) over `window`.
async fn gauge_series(
    sh: &SelfHeal,
    window: Window,
) -> Result<Vec<crate::domain::metric::SeriesStats>, ApiError> {
    let view = sh
        .metrics
        .send(QueryMetrics {
            window,
            name: None,
            route: None,
        })
        .await?;
    Ok(view
        .series
        .into_iter()
        .filter(|s| s.name != API_RESPONSE_TIME)
        .collect())
}

/// `GET /api/v1/system/dashboard`.
pub async fn dashboard(sh: Sh) -> Result<HttpResponse, ApiError> {
    let report = sh.metrics.send(GetHealth).await?;
    let agents = sh.supervisor.send(ListAgents).await?;
    let (overall, stale) = system_overall(&sh, &report, &agents);
    let gauges = gauge_series(&sh, Window::M5).await?;
    let mut routes = sh.metrics.send(GetRouteStats(Window::M5)).await?;
    routes.truncate(10);
    let events = sh
        .bus
        .send(GetHistory {
            channel: None,
            limit: 20,
        })
        .await?;
    let (traces, _) = sh.in_flight.snapshot(0);
    let stats = sh.alerts.send(GetAlertStats).await?;
    // The ten open alerts that matter most: most severe first, then newest.
    let mut active: Vec<_> = sh
        .alerts
        .send(GetRecentAlerts)
        .await?
        .into_iter()
        .filter(|a| a.state != "resolved")
        .collect();
    active.sort_by_key(|a| {
        (
            Severity::parse(&a.severity).map_or(usize::MAX, Severity::rank),
            std::cmp::Reverse(a.last_seen),
        )
    });
    active.truncate(10);
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
        "agents": agent_map(&agents),
        "alerts": { "active": active, "stats": stats },
        "recent_events": events,
    })))
}

/// `GET /api/v1/system/agents`.
pub async fn list_agents(sh: Sh) -> Result<HttpResponse, ApiError> {
    let agents = sh.supervisor.send(ListAgents).await?;
    Ok(ok(json!({
        "system_running": true,
        "uptime": sh.uptime().as_millis() as u64,
        "agents": agent_map(&agents),
    })))
}

/// `POST /api/v1/system/agents/{name}/restart` (name case-insensitive).
pub async fn restart_agent(
    sh: Sh,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    audit(&sh, &req, "agent.restart", "agent", &name, json!({}));
    let status = sh
        .supervisor
        .send(RestartAgent(name))
        .await?
        .map_err(|e| match e {
            AgentLookupError::NotFound(_) => ApiError::NotFound(e.to_string()),
            AgentLookupError::Disabled(_) | AgentLookupError::Stopped(_) => {
                ApiError::Conflict(e.to_string())
            }
            AgentLookupError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        })?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": format!("Agent {} restarted successfully", status.name),
        "data": status,
    })))
}

/// Query of `/metrics`.
#[derive(Debug, Deserialize)]
pub struct MetricsQuery {
    name: Option<String>,
    route: Option<String>,
    window: Option<String>,
}

fn parse_window(raw: Option<&str>) -> Result<Window, ApiError> {
    match raw {
        None => Ok(Window::M5),
        Some(w) => Window::parse(w).ok_or_else(|| {
            ApiError::BadRequest(format!("window must be one of 1m, 5m, 15m, 1h (got {w:?})"))
        }),
    }
}

pub(crate) fn parse_limit(
    raw: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to {max} (got {s:?})"
                ))
            }),
    }
}

/// `GET /api/v1/system/metrics?name=&route=&window=`.
pub async fn metrics(sh: Sh, q: web::Query<MetricsQuery>) -> Result<HttpResponse, ApiError> {
    let window = parse_window(q.window.as_deref())?;
    let q = q.into_inner();
    let view = sh
        .metrics
        .send(QueryMetrics {
            window,
            name: q.name,
            route: q.route,
        })
        .await?;
    Ok(ok(view))
}

/// Query of `/traces` and `/events`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    channel: Option<String>,
}

/// `GET /api/v1/system/traces?limit=`.
pub async fn traces(sh: Sh, q: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let (stats, active) = sh.in_flight.snapshot(limit);
    Ok(ok(json!({ "stats": stats, "active": active })))
}

/// `GET /api/v1/system/events?channel=&limit=`.
pub async fn events(sh: Sh, q: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let channel = match q.channel.as_deref() {
        None => None,
        Some(c) => Some(Channel::parse(c).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown channel {c:?}; known: {}",
                Channel::ALL.map(Channel::as_str).join(", ")
            ))
        })?),
    };
    let events = sh.bus.send(GetHistory { channel, limit }).await?;
    let stats = sh.bus.send(GetBusStats).await?;
    Ok(ok(json!({ "events": events, "stats": stats })))
}

/// Query of `/queries`.
#[derive(Debug, Deserialize)]
pub struct QueriesQuery {
    limit: Option<String>,
    trace_id: Option<String>,
}

/// `GET /api/v1/system/queries?limit=&trace_id=`: top fingerprints by total time, slow and
/// failed queries, pool status; with `trace_id` (32 hex digits, from `traceparent`), the
/// queries that request ran.
pub async fn queries(sh: Sh, q: web::Query<QueriesQuery>) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(q.limit.as_deref(), 20, 500)?;
    let trace_id = match q.trace_id.as_deref() {
        None => None,
        Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(t.to_ascii_lowercase())
        }
        Some(t) => {
            return Err(ApiError::BadRequest(format!(
                "trace_id must be 32 hex digits (the trace-id of a traceparent), got {t:?}"
            )))
        }
    };
    let report = sh.metrics.send(GetQueryReport { limit, trace_id }).await?;
    Ok(ok(json!({
        "top": report.top,
        "slow": report.slow,
        "errors": report.errors,
        "trace": report.trace,
        "fingerprints": report.table,
        "pools": sh.pools.statuses(),
        "slow_threshold_ms": sh.settings.thresholds.db_slow_query_ms,
    })))
}

/// Query of `/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<String>,
}

/// `GET /api/v1/system/audit?limit=`: admin actions, newest first.
pub async fn audit_log(sh: Sh, q: web::Query<AuditQuery>) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let read = sh.store.audit(limit).await;
    Ok(ok(
        json!({ "entries": read.data, "partial": read.partial, "source": read.source }),
    ))
}

/// `since`: an RFC 3339 time.
pub(crate) fn parse_since(raw: Option<&str>) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    raw.map(|raw| {
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "since must be an RFC 3339 time such as 2026-01-31T12:00:00Z (got {raw:?})"
                ))
            })
    })
    .transpose()
}

/// Query of `/metrics/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    name: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/system/metrics/history?name=&since=&limit=`: persisted one-minute rollups
/// of a metric, oldest first.
pub async fn metric_history(sh: Sh, q: web::Query<HistoryQuery>) -> Result<HttpResponse, ApiError> {
    let name = q
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("name is required (a metric name)".to_owned()))?;
    if name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name must be a metric name: at most 100 characters, no control characters".to_owned(),
        ));
    }
    let limit = parse_limit(q.limit.as_deref(), 60, 10_000)?;
    let since = parse_since(q.since.as_deref())?;
    let read = sh
        .store
        .metric_history(&MetricHistoryQuery { name, since, limit })
        .await;
    Ok(ok(
        json!({ "rollups": read.data, "partial": read.partial, "source": read.source }),
    ))
}
