//! Metrics: series and per-route statistics, and persisted rollups.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actors::metrics_store::QueryMetrics;
use crate::domain::metric::Window;
use crate::http::common::{parse_limit, parse_since, Sh};
use crate::http::error::{ok, ApiError};
use crate::store::MetricHistoryQuery;

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
