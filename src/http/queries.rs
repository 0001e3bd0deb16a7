//! Queries: the query logger's statistics.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actors::metrics_store::GetQueryReport;
use crate::http::common::{parse_limit, parse_trace_id, Sh};
use crate::http::error::{ok, ApiError};

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
    let trace_id = parse_trace_id(q.trace_id.as_deref())?;
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
