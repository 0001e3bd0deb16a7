//! Handlers of alerts. Reads come from the store (history, survives restarts) overlaid with
//! the AlertManager's fresher copies of the alerts it holds, so a change is visible at once
//! even though the store is written behind.

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actors::alert_manager::silences::check_comment;
use crate::actors::alert_manager::{
    AcknowledgeAlert, AlertError, GetAlert, GetAlertStats, GetRecentAlerts, ResolveAlert,
};
use crate::domain::alert::{Alert, AlertId, AlertState, Severity};
use crate::handles::SelfHeal;
use crate::http::common::{actor, audit, json_body, parse_id, parse_limit, parse_since, Sh};
use crate::http::error::{ok, ApiError};
use crate::store::{AlertQuery, AlertRow};

/// Stored rows as alerts (a row this version cannot read is left out, with a warning).
fn alerts_of(rows: Vec<AlertRow>) -> Vec<Alert> {
    rows.into_iter()
        .filter_map(|r| match Alert::try_from(r) {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("alerts: a stored alert is left out: {e}");
                None
            }
        })
        .collect()
}

/// An alert type in a filter: 1 to 100 letters, digits, `_`, `-`, `.` or `:`.
fn valid_type(t: &str) -> bool {
    (1..=100).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
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
    if let Some(s) = q
        .state
        .as_deref()
        .filter(|s| AlertState::parse(s).is_none())
    {
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
    if let Some(t) = q.alert_type.as_deref().filter(|t| !valid_type(t)) {
        return Err(ApiError::BadRequest(format!(
            "type must be an alert type such as API_SLOW: 1 to 100 letters, digits, _ - . : (got {:?})",
            crate::text::clip_chars(t, 100)
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
    // The AlertManager restarting (or failed): the stored alerts still answer, flagged partial
    // (an AGENT_FAILED about the manager itself is among them).
    let manager_answers = fresh.is_ok() && stats.is_ok();
    let (fresh, stats) = (fresh.unwrap_or_default(), stats.ok());
    // The store lags the manager by up to one write-behind flush: prefer the manager's copy,
    // and drop a row whose fresh state no longer passes the filters.
    let mut total = read.data.total;
    let mut items = alerts_of(read.data.items);
    let before = items.len();
    let listed: HashSet<AlertId> = items.iter().map(|a| a.id).collect();
    // Where this page sits in the store's order (newest first): a fresh alert the store does
    // not list (not written yet, or written in a state the filters reject) belongs on it when
    // it sorts between the page's first and last rows (or past either end of the results).
    let full = items.len() >= limit;
    let newest = items.first().map(|a| a.created_at);
    let oldest = items.last().map(|a| a.created_at);
    items = items
        .into_iter()
        .filter_map(|row| match fresh.iter().find(|f| f.id == row.id) {
            Some(f) => query.matches_alert(f).then(|| f.clone()),
            None => Some(row),
        })
        .collect();
    let dropped = before - items.len();
    let unlisted: Vec<_> = fresh
        .iter()
        .filter(|f| !listed.contains(&f.id) && query.matches_alert(f))
        .filter(|f| offset == 0 || newest.is_some_and(|n| f.created_at < n))
        .filter(|f| !full || oldest.is_some_and(|o| f.created_at > o))
        .cloned()
        .collect();
    let added = unlisted.len();
    if added > 0 {
        items.extend(unlisted);
        // Stable: rows created at the same instant keep the store's order.
        items.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        items.truncate(limit);
    }
    total = total
        .saturating_sub(dropped as u64)
        .saturating_add(added as u64);
    Ok(ok(json!({
        "alerts": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "stats": stats,
        "partial": read.partial || !manager_answers,
        "source": read.source,
    })))
}

/// `GET /api/v1/system/alerts/{id}`: the alert and every notification attempt for it.
pub async fn get_alert(sh: Sh, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id, "alert")?;
    // Fresher than the store when the AlertManager answers; the store alone otherwise.
    let fresh = sh.alerts.send(GetAlert(AlertId(id))).await.ok().flatten();
    let (stored, notifications) =
        futures_util::future::join(sh.store.alert(id), sh.store.notifications(id)).await;
    let alert = fresh
        .or_else(|| stored.data.and_then(|r| alerts_of(vec![r]).pop()))
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
    check_comment(c.as_deref())?;
    Ok(c)
}

/// Acknowledge or resolve: the body, the AlertManager's answer, and the audit row (written
/// after, with the outcome).
async fn act_on_alert(
    sh: &SelfHeal,
    req: &HttpRequest,
    raw_id: &str,
    body: &[u8],
    resolve: bool,
) -> Result<HttpResponse, ApiError> {
    let what = if resolve {
        "alert.resolve"
    } else {
        "alert.acknowledge"
    };
    let done = alert_action(sh, req, raw_id, body, resolve).await;
    audit(
        sh,
        req,
        what,
        "alert",
        raw_id,
        done.as_ref().map(|_| ()),
        match &done {
            Ok((_, by, comment)) => json!({ "by": by, "comment": comment }),
            Err(_) => json!({}),
        },
    );
    done.map(|(a, _, _)| ok(a))
}

async fn alert_action(
    sh: &SelfHeal,
    req: &HttpRequest,
    raw_id: &str,
    body: &[u8],
    resolve: bool,
) -> Result<(Alert, String, Option<String>), ApiError> {
    let id = parse_id(raw_id, "alert")?;
    let action: AlertAction = json_body(body)?.unwrap_or_default();
    let comment = comment(&action)?;
    let by = actor(req, action.who)?;
    let answer = if resolve {
        let msg = ResolveAlert {
            id: AlertId(id),
            by: by.clone(),
            comment: comment.clone(),
        };
        sh.alerts.send(msg).await?
    } else {
        let msg = AcknowledgeAlert {
            id: AlertId(id),
            by: by.clone(),
            comment: comment.clone(),
        };
        sh.alerts.send(msg).await?
    };
    match answer {
        Ok(a) => Ok((a, by, comment)),
        // Not held here: a 409 when the store knows it (resolved, or another instance's).
        Err(AlertError::NotFound(m)) => Err(match sh.store.alert(id).await.data {
            Some(a) if a.state == "resolved" => {
                ApiError::Conflict(format!("alert {id} is already resolved"))
            }
            Some(a) => ApiError::Conflict(format!(
                "alert {id} is {} but not held by this instance",
                a.state
            )),
            None => ApiError::NotFound(m),
        }),
        Err(e) => Err(e.into()),
    }
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
