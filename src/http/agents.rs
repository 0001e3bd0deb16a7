//! Agents and core actors: their status, and the admin restart.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::http::common::{audit, Sh};
use crate::http::error::{ok, ApiError};
use crate::http::health::actor_map;

/// `GET /api/v1/system/agents`: every agent and core actor (`kind`: `agent` or `core`).
pub async fn list_agents(sh: Sh) -> Result<HttpResponse, ApiError> {
    let actors = sh.actors.statuses();
    Ok(ok(json!({
        "system_running": true,
        "uptime": sh.uptime().as_millis() as u64,
        "agents": actor_map(&actors),
    })))
}

/// `POST /api/v1/system/agents/{name}/restart` (name case-insensitive): agents and core
/// actors alike; clears `failed`.
pub async fn restart_agent(
    sh: Sh,
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let restarted = sh.restart(&name).await.map_err(ApiError::from);
    audit(
        &sh,
        &req,
        "agent.restart",
        "agent",
        &name,
        restarted.as_ref().map(|_| ()),
        json!({}),
    );
    let status = restarted?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": format!("Agent {} restarted successfully", status.name),
        "data": status,
    })))
}
