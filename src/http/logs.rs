//! Logs: the WARN and ERROR lines kept for diagnosis.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::http::common::{parse_limit, parse_trace_id};
use crate::http::error::{ok, ApiError};

/// Query of `/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    level: Option<String>,
    limit: Option<String>,
    trace_id: Option<String>,
}

/// `GET /api/v1/system/logs?level=&limit=&trace_id=`: the newest WARN and ERROR lines (of one
/// level, `warn` or `error`, and of one request's trace, when asked), oldest first.
pub async fn logs(q: web::Query<LogsQuery>) -> Result<HttpResponse, ApiError> {
    let level = match q.level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("warn" | "warning") => Some(log::Level::Warn),
        Some("error") => Some(log::Level::Error),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "level must be warn or error (only those lines are kept)".to_owned(),
            ))
        }
    };
    let limit = parse_limit(q.limit.as_deref(), 100, 10_000)?;
    let trace_id = parse_trace_id(q.trace_id.as_deref())?;
    Ok(ok(crate::logging::ring().query(
        level,
        limit,
        trace_id.as_deref(),
    )))
}
