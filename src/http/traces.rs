//! Traces: the requests in flight, and the slow requests kept for diagnosis.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actors::metrics_store::GetSlowRequests;
use crate::http::common::{parse_label, parse_limit, Sh};
use crate::http::error::{ok, ApiError};

/// Query of `/traces`.
#[derive(Debug, Deserialize)]
pub struct TracesQuery {
    limit: Option<String>,
}

/// `GET /api/v1/system/traces?limit=`: requests in flight, oldest first.
pub async fn traces(
    sh: Sh,
    req: HttpRequest,
    q: web::Query<TracesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    // Dynamic routes of requests still in flight are named with this app's route table.
    let (stats, active) = sh.in_flight.snapshot(limit, Some(req.resource_map()));
    Ok(ok(json!({ "stats": stats, "active": active })))
}

/// Query of `/traces/slow`.
#[derive(Debug, Deserialize)]
pub struct SlowQuery {
    route: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/system/traces/slow?route=&limit=`: completed requests slower than
/// `TRACE_SLOW_THRESHOLD_MS`, newest first, each with the number and total time of its queries
/// and the queries the query logger recorded under its trace id.
pub async fn slow_traces(sh: Sh, q: web::Query<SlowQuery>) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let route = parse_label("route", q.route.as_deref())?;
    let slow = sh.metrics.send(GetSlowRequests { route, limit }).await?;
    Ok(ok(json!({
        "requests": slow.requests,
        "kept": slow.kept,
        "routes": slow.routes,
        "total": slow.total,
        "per_route": slow.per_route,
        "max_routes": slow.max_routes,
        "threshold_ms": sh.settings.tracer.slow_threshold_ms,
    })))
}
