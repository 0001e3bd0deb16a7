//! What the handlers share: the handle type, input parsing (limits, times, ids, bodies, who
//! is acting) and the audit log.

use actix_web::{web, HttpRequest};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::actors::alert_manager::silences::{check_who, WHO_MAX_CHARS};
use crate::handles::SelfHeal;
use crate::http::error::ApiError;
use crate::store::{AuditRow, Record};

/// The handles, as handlers receive them.
pub type Sh = web::Data<SelfHeal>;

/// Who is acting: the body's `who`, else the `X-Admin-User` header, else the token holder.
/// At most 255 characters, no control characters.
pub fn actor(req: &HttpRequest, who: Option<String>) -> Result<String, ApiError> {
    if let Some(w) = who.map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()) {
        check_who("who", &w)?;
        return Ok(w);
    }
    Ok(header_actor(req)?.unwrap_or_else(|| "admin-token".to_owned()))
}

/// `X-Admin-User`, checked: at most [`WHO_MAX_CHARS`] characters of visible text.
fn header_actor(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("x-admin-user") else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("X-Admin-User: expected visible ASCII text".to_owned()))?
        .trim();
    if v.chars().count() > WHO_MAX_CHARS {
        return Err(ApiError::BadRequest(format!(
            "X-Admin-User: at most {WHO_MAX_CHARS} characters"
        )));
    }
    // A header value may hold a tab, which is not visible text (nor a name `who` accepts).
    if crate::text::has_forbidden_control(v, false) {
        return Err(ApiError::BadRequest(
            "X-Admin-User: expected visible ASCII text".to_owned(),
        ));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// Record an admin action in the audit log (`admin_audit_logs`), after it was looked up and
/// done (or refused): `outcome` is `ok` or the error's code.
pub fn audit(
    sh: &SelfHeal,
    req: &HttpRequest,
    action: &str,
    resource: &str,
    id: &str,
    outcome: Result<(), &ApiError>,
    mut details: serde_json::Value,
) {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| crate::text::clip_chars(v, 255))
    };
    if let Some(m) = details.as_object_mut() {
        m.insert(
            "outcome".to_owned(),
            json!(match outcome {
                Ok(()) => "ok",
                Err(e) => e.code(),
            }),
        );
    }
    sh.store.write(Record::Audit(AuditRow {
        id: Uuid::new_v4(),
        // One shared admin token: the actor is the token holder; a caller may name itself.
        actor: header_actor(req)
            .ok()
            .flatten()
            .unwrap_or_else(|| "admin-token".to_owned()),
        action: action.to_owned(),
        resource: Some(resource.to_owned()),
        // The path segment as given (a refused id is kept too), cut and without control
        // characters, so the row is never refused by Postgres.
        resource_id: Some(crate::text::clip_chars(
            &crate::text::escape_for_log(id),
            255,
        )),
        details,
        ip_address: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: header("user-agent"),
        created_at: Utc::now(),
    }));
}

/// `limit`: a whole number from 1 to `max` (`default` when absent).
pub fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
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

/// `since`: an RFC 3339 time.
pub fn parse_since(raw: Option<&str>) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
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

/// `trace_id`: 32 hex digits (the trace-id of a `traceparent`), lower-cased.
pub fn parse_trace_id(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(t.to_ascii_lowercase()))
        }
        Some(t) => Err(ApiError::BadRequest(format!(
            "trace_id must be 32 hex digits (the trace-id of a traceparent), got {t:?}"
        ))),
    }
}

/// A route pattern or other short label from the query string: at most 255 characters, no
/// control characters.
pub fn parse_label(name: &str, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control) => {
            Err(ApiError::BadRequest(format!(
                "{name} must be 1 to 255 characters without control characters"
            )))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// A UUID from the path.
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::BadRequest(format!(
            "{what} id must be a UUID (got {:?})",
            crate::text::clip_chars(raw, 64)
        ))
    })
}

/// A JSON body, `None` when empty; malformed JSON is a 422.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::Unprocessable(format!("invalid JSON body: {e}")))
}

/// A JSON body that must be there.
pub fn required_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    json_body(body)?.ok_or_else(|| ApiError::BadRequest("a JSON body is required".to_owned()))
}
