//! Handlers of silences and maintenance windows: validated here, kept by the AlertManager,
//! every change audited (after it was done or refused, with the outcome).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

use crate::actors::alert_manager::silences::{MaintenanceRequest, SilenceRequest};
use crate::actors::alert_manager::{
    CreateMaintenance, CreateSilence, DeleteMaintenance, DeleteSilence, ListMaintenance,
    ListSilences,
};
use crate::http::common::{actor, audit, parse_id, required_body, Sh};
use crate::http::error::{ok, ApiError};

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
    let created = async {
        let r: SilenceRequest = required_body(&body)?;
        let by = actor(&req, r.created_by.clone())?;
        let row = r
            .into_row(Utc::now(), &by)
            .map_err(ApiError::Unprocessable)?;
        Ok::<_, ApiError>(sh.alerts.send(CreateSilence(row)).await??)
    }
    .await;
    let (id, details) = match &created {
        Ok(v) => (
            v.row.id.to_string(),
            json!({ "matchers": v.row.matchers, "ends_at": v.row.ends_at }),
        ),
        Err(_) => ("-".to_owned(), json!({})),
    };
    audit(
        &sh,
        &req,
        "silence.create",
        "silence",
        &id,
        created.as_ref().map(|_| ()),
        details,
    );
    Ok(HttpResponse::Created().json(json!({ "success": true, "data": created? })))
}

/// `DELETE /api/v1/system/silences/{id}`: expire a silence now.
pub async fn delete_silence(
    sh: Sh,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let deleted = async {
        let id = parse_id(&id, "silence")?;
        let by = actor(&req, None)?;
        Ok::<_, ApiError>(sh.alerts.send(DeleteSilence { id, by }).await??)
    }
    .await;
    audit(
        &sh,
        &req,
        "silence.delete",
        "silence",
        &id,
        deleted.as_ref().map(|_| ()),
        json!({}),
    );
    Ok(ok(deleted?))
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
    let created = async {
        let r: MaintenanceRequest = required_body(&body)?;
        let by = actor(&req, r.created_by.clone())?;
        let row = r
            .into_row(Utc::now(), &by)
            .map_err(ApiError::Unprocessable)?;
        Ok::<_, ApiError>(sh.alerts.send(CreateMaintenance(row)).await??)
    }
    .await;
    let (id, details) = match &created {
        Ok(v) => (v.row.id.to_string(), json!({ "name": v.row.name })),
        Err(_) => ("-".to_owned(), json!({})),
    };
    audit(
        &sh,
        &req,
        "maintenance.create",
        "maintenance_window",
        &id,
        created.as_ref().map(|_| ()),
        details,
    );
    Ok(HttpResponse::Created().json(json!({ "success": true, "data": created? })))
}

/// `DELETE /api/v1/system/maintenance-windows/{id}`.
pub async fn delete_maintenance(
    sh: Sh,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let deleted = async {
        let id = parse_id(&id, "maintenance window")?;
        let by = actor(&req, None)?;
        Ok::<_, ApiError>(sh.alerts.send(DeleteMaintenance { id, by }).await??)
    }
    .await;
    audit(
        &sh,
        &req,
        "maintenance.delete",
        "maintenance_window",
        &id,
        deleted.as_ref().map(|_| ()),
        json!({}),
    );
    Ok(ok(deleted?))
}
