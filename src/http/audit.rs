//! The audit log of admin actions.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::http::common::{parse_limit, Sh};
use crate::http::error::{ok, ApiError};

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
