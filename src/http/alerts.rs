//! Handlers of alerts, silences and maintenance windows. Reads come from the store (history,
//! survives restarts) overlaid with the AlertManager's fresher copies of the alerts it holds,
//! so a change is visible at once even though the store is written behind.

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::actors::alert_manager::silences::{MaintenanceRequest, SilenceRequest};
use crate::actors::alert_manager::{
    AcknowledgeAlert, AlertError, CreateMaintenance, CreateSilence, DeleteMaintenance,
    DeleteSilence, GetAlert, GetAlertStats, GetRecentAlerts, ListMaintenance, ListSilences,
    ResolveAlert,
};
use crate::domain::alert::Severity;
use crate::http::error::{ok, ApiError};
use crate::http::handlers::{audit, parse_limit, parse_since};
use crate::store::AlertQuery;
use crate::system::SelfHeal;

type Sh = web::Data<SelfHeal>;

const STATES: [&str; 3] = ["firing", "acknowledged", "resolved"];

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::NotFound(m) => ApiError::NotFound(m),
            AlertError::Conflict(m) => ApiError::Conflict(m),
            AlertError::NotReady(m) => ApiError::Unavailable(m),
        }
    }
}

/// Who is acting: the body's `who`, else the `X-Admin-User` header, else the token holder.
fn actor(req: &HttpRequest, who: Option<String>) -> String {
    who.map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .or_else(|| {
            req.headers()
                .get("x-admin-user")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "admin-token".to_owned())
}

fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::BadRequest(format!("{what} id must be a UUID (got {raw:?})")))
}

/// A JSON body, `None` when empty; malformed JSON is a 422.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::Unprocessable(format!("invalid JSON body: {e}")))
}

fn required_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    json_body(body)?.ok_or_else(|| ApiError::BadRequest("a JSON body is required".to_owned()))
}

/// Query of `/alerts`.
#[derive(Debug, Deserialize)]
pub struct AlertsQuery {
    state: Option<String>,
    severity: Option<String>,
    #[serde(rename = "type")]
    alert_type: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `GET /api/v1/system/alerts?state=&severity=&type=&since=&limit=&offset=`: newest first.
pub async fn list_alerts(sh: Sh, q: web::Query<AlertsQuery>) -> Result<HttpResponse, ApiError> {
    if let Some(s) = q.state.as_deref().filter(|s| !STATES.contains(s)) {
        return Err(ApiError::BadRequest(format!(
            "state must be one of firing, acknowledged, resolved (got {s:?})"
        )));
    }
    if let Some(s) = q
        .severity
        .as_deref()
        .filter(|s| Severity::parse(s).is_none())
    {
        return Err(ApiError::BadRequest(format!(
            "severity must be one of critical, high, medium, low, info (got {s:?})"
        )));
    }
    if let Some(t) = q
        .alert_type
        .as_deref()
        .filter(|t| t.is_empty() || t.len() > 100)
    {
        return Err(ApiError::BadRequest(format!(
            "type must be an alert type such as API_SLOW (got {t:?})"
        )));
    }
    let limit = parse_limit(q.limit.as_deref(), 50, 1000)?;
    let offset = match q.offset.as_deref() {
        None => 0,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 1_000_000)
            .ok_or_else(|| {
                ApiError::BadRequest(format!("offset must be a whole number from 0 (got {s:?})"))
            })?,
    };
    let query = AlertQuery {
        state: q.state.clone(),
        severity: q.severity.clone(),
        alert_type: q.alert_type.clone(),
        since: parse_since(q.since.as_deref())?,
        limit,
        offset,
    };
    let (read, fresh, stats) = futures_util::future::join3(
        sh.store.alerts(&query),
        sh.alerts.send(GetRecentAlerts),
        sh.alerts.send(GetAlertStats),
    )
    .await;
    let (fresh, stats) = (fresh?, stats?);
    // The store lags the manager by up to one write-behind flush: prefer the manager's copy,
    // and drop a row whose fresh state no longer passes the filters.
    let mut page = read.data;
    let before = page.items.len();
    let listed: HashSet<Uuid> = page.items.iter().map(|a| a.id).collect();
    // Where this page sits in the store's order (newest first): a fresh alert the store does
    // not list (not written yet, or written in a state the filters reject) belongs on it when
    // it sorts between the page's first and last rows (or past either end of the results).
    let full = page.items.len() >= limit;
    let newest = page.items.first().map(|a| a.created_at);
    let oldest = page.items.last().map(|a| a.created_at);
    page.items = page
        .items
        .into_iter()
        .filter_map(|row| match fresh.iter().find(|f| f.id == row.id) {
            Some(f) => query.matches(f).then(|| f.clone()),
            None => Some(row),
        })
        .collect();
    let dropped = before - page.items.len();
    let unlisted: Vec<_> = fresh
        .iter()
        .filter(|f| !listed.contains(&f.id) && query.matches(f))
        .filter(|f| offset == 0 || newest.is_some_and(|n| f.created_at < n))
        .filter(|f| !full || oldest.is_some_and(|o| f.created_at > o))
        .cloned()
        .collect();
    let added = unlisted.len();
    if added > 0 {
        page.items.extend(unlisted);
        // Stable: rows created at the same instant keep the store's order.
        page.items.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        page.items.truncate(limit);
    }
    page.total = page
        .total
        .saturating_sub(dropped as u64)
        .saturating_add(added as u64);
    Ok(ok(json!({
        "alerts": page.items,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "stats": stats,
        "partial": read.partial,
        "source": read.source,
    })))
}

/// `GET /api/v1/system/alerts/{id}`: the alert and every notification attempt for it.
pub async fn get_alert(sh: Sh, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "alert")?;
    let fresh = sh.alerts.send(GetAlert(id)).await?;
    let (stored, notifications) =
        futures_util::future::join(sh.store.alert(id), sh.store.notifications(id)).await;
    let alert = fresh
        .or(stored.data)
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    Ok(ok(json!({
        "alert": alert,
        "notifications": notifications.data,
        "partial": stored.partial || notifications.partial,
        "source": stored.source,
    })))
}

/// Body of acknowledge and resolve.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertAction {
    who: Option<String>,
    comment: Option<String>,
    /// The original's name for the resolve comment.
    resolution: Option<String>,
}

fn comment(a: &AlertAction) -> Result<Option<String>, ApiError> {
    let c = a.comment.clone().or_else(|| a.resolution.clone());
    if c.as_ref().is_some_and(|c| c.chars().count() > 10_000) {
        return Err(ApiError::BadRequest(
            "comment: at most 10 000 characters".to_owned(),
        ));
    }
    if a.who.as_ref().is_some_and(|w| w.chars().count() > 255) {
        return Err(ApiError::BadRequest(
            "who: at most 255 characters".to_owned(),
        ));
    }
    Ok(c)
}

/// Acknowledge or resolve: the body, the AlertManager's answer, and the audit row.
async fn act_on_alert(
    sh: &SelfHeal,
    req: &HttpRequest,
    raw_id: &str,
    body: &[u8],
    resolve: bool,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(raw_id, "alert")?;
    let action: AlertAction = json_body(body)?.unwrap_or_default();
    let comment = comment(&action)?;
    let by = actor(req, action.who);
    let answer = if resolve {
        let msg = ResolveAlert {
            id,
            by: by.clone(),
            comment: comment.clone(),
        };
        sh.alerts.send(msg).await?
    } else {
        let msg = AcknowledgeAlert {
            id,
            by: by.clone(),
            comment: comment.clone(),
        };
        sh.alerts.send(msg).await?
    };
    let row = match answer {
        Ok(row) => row,
        // Not held here: a 409 when the store knows it (resolved, or another instance's).
        Err(AlertError::NotFound(m)) => {
            return Err(match sh.store.alert(id).await.data {
                Some(a) if a.state == "resolved" => {
                    ApiError::Conflict(format!("alert {id} is already resolved"))
                }
                Some(a) => ApiError::Conflict(format!(
                    "alert {id} is {} but not held by this instance",
                    a.state
                )),
                None => ApiError::NotFound(m),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let what = if resolve {
        "alert.resolve"
    } else {
        "alert.acknowledge"
    };
    audit(
        sh,
        req,
        what,
        "alert",
        &id.to_string(),
        json!({ "by": by, "comment": comment }),
    );
    Ok(ok(row))
}

/// `POST /api/v1/system/alerts/{id}/acknowledge` with `{who?, comment?}`.
pub async fn acknowledge_alert(
    sh: Sh,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    act_on_alert(&sh, &req, &id, &body, false).await
}

/// `POST /api/v1/system/alerts/{id}/resolve` with `{who?, comment?}` (or `resolution`).
pub async fn resolve_alert(
    sh: Sh,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    act_on_alert(&sh, &req, &id, &body, true).await
}

/// `GET /api/v1/system/silences`: active and pending silences.
pub async fn list_silences(sh: Sh) -> Result<HttpResponse, ApiError> {
    let silences = sh.alerts.send(ListSilences).await?;
    Ok(ok(json!({ "silences": silences })))
}

/// `POST /api/v1/system/silences` with `{matchers, starts_at?, ends_at | duration_ms, created_by?, comment?}`.
pub async fn create_silence(
    sh: Sh,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: SilenceRequest = required_body(&body)?;
    let by = actor(&req, r.created_by.clone());
    let row = r
        .into_row(Utc::now(), &by)
        .map_err(ApiError::Unprocessable)?;
    let view = sh.alerts.send(CreateSilence(row)).await??;
    audit(
        &sh,
        &req,
        "silence.create",
        "silence",
        &view.row.id.to_string(),
        json!({ "matchers": view.row.matchers, "ends_at": view.row.ends_at }),
    );
    Ok(HttpResponse::Created().json(json!({ "success": true, "data": view })))
}

/// `DELETE /api/v1/system/silences/{id}`: expire a silence now.
pub async fn delete_silence(
    sh: Sh,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "silence")?;
    let by = actor(&req, None);
    let view = sh.alerts.send(DeleteSilence { id, by }).await??;
    audit(
        &sh,
        &req,
        "silence.delete",
        "silence",
        &id.to_string(),
        json!({}),
    );
    Ok(ok(view))
}

/// `GET /api/v1/system/maintenance-windows`.
pub async fn list_maintenance(sh: Sh) -> Result<HttpResponse, ApiError> {
    let windows = sh.alerts.send(ListMaintenance).await?;
    Ok(ok(json!({ "windows": windows })))
}

/// `POST /api/v1/system/maintenance-windows` with `{name, matchers?, days, start, end, utc_offset_minutes?, created_by?, comment?}`.
pub async fn create_maintenance(
    sh: Sh,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: MaintenanceRequest = required_body(&body)?;
    let by = actor(&req, r.created_by.clone());
    let row = r
        .into_row(Utc::now(), &by)
        .map_err(ApiError::Unprocessable)?;
    let view = sh.alerts.send(CreateMaintenance(row)).await??;
    audit(
        &sh,
        &req,
        "maintenance.create",
        "maintenance_window",
        &view.row.id.to_string(),
        json!({ "name": view.row.name }),
    );
    Ok(HttpResponse::Created().json(json!({ "success": true, "data": view })))
}

/// `DELETE /api/v1/system/maintenance-windows/{id}`.
pub async fn delete_maintenance(
    sh: Sh,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "maintenance window")?;
    let by = actor(&req, None);
    let view = sh.alerts.send(DeleteMaintenance { id, by }).await??;
    audit(
        &sh,
        &req,
        "maintenance.delete",
        "maintenance_window",
        &id.to_string(),
        json!({}),
    );
    Ok(ok(view))
}
