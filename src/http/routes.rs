//! The one route table: the public liveness probe and the admin-only system API.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{error::JsonPayloadError, web, HttpResponse};
use serde_json::json;

use crate::http::alerts as a;
use crate::http::error::ApiError;
use crate::http::handlers as h;
use crate::middleware::admin_auth::{admin_guard, AdminAuth};
use crate::system::SelfHeal;

/// Register `GET /health` and `/api/v1/system/*` on `cfg`.
pub fn configure(sh: SelfHeal) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let limit = sh.settings.server.max_body_bytes;
        let auth = AdminAuth::new(sh.admin_token().into(), limit);
        cfg.route("/health", web::get().to(h::liveness)).service(
            web::scope("/api/v1/system")
                .app_data(web::Data::new(sh))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::BadRequest(format!("invalid query string: {e}")).into()
                }))
                // Raw bodies (optional JSON bodies) have the same limit as JSON ones.
                .app_data(web::PayloadConfig::new(limit))
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(move |e, _| {
                            match e {
                                JsonPayloadError::Overflow { .. }
                                | JsonPayloadError::OverflowKnownLength { .. } => {
                                    ApiError::PayloadTooLarge(limit)
                                }
                                JsonPayloadError::Deserialize(e) => {
                                    ApiError::Unprocessable(format!("invalid JSON body: {e}"))
                                }
                                other => {
                                    ApiError::BadRequest(format!("invalid JSON body: {other}"))
                                }
                            }
                            .into()
                        }),
                )
                .service(resource("/health", web::get().to(h::health)))
                .service(resource(
                    "/health/detailed",
                    web::get().to(h::health_detailed),
                ))
                .service(resource("/dashboard", web::get().to(h::dashboard)))
                .service(resource("/agents", web::get().to(h::list_agents)))
                .service(resource(
                    "/agents/{name}/restart",
                    web::post().to(h::restart_agent),
                ))
                .service(resource("/alerts", web::get().to(a::list_alerts)))
                .service(resource("/alerts/{id}", web::get().to(a::get_alert)))
                .service(resource(
                    "/alerts/{id}/acknowledge",
                    web::post().to(a::acknowledge_alert),
                ))
                .service(resource(
                    "/alerts/{id}/resolve",
                    web::post().to(a::resolve_alert),
                ))
                .service(
                    web::resource("/silences")
                        .route(web::get().to(a::list_silences))
                        .route(web::post().to(a::create_silence))
                        .default_service(web::to(h::method_not_allowed)),
                )
                .service(resource(
                    "/silences/{id}",
                    web::delete().to(a::delete_silence),
                ))
                .service(
                    web::resource("/maintenance-windows")
                        .route(web::get().to(a::list_maintenance))
                        .route(web::post().to(a::create_maintenance))
                        .default_service(web::to(h::method_not_allowed)),
                )
                .service(resource(
                    "/maintenance-windows/{id}",
                    web::delete().to(a::delete_maintenance),
                ))
                .service(resource("/metrics", web::get().to(h::metrics)))
                .service(resource(
                    "/metrics/history",
                    web::get().to(h::metric_history),
                ))
                .service(resource("/queries", web::get().to(h::queries)))
                .service(resource("/audit", web::get().to(h::audit_log)))
                .service(resource("/traces", web::get().to(h::traces)))
                .service(resource("/events", web::get().to(h::events)))
                .default_service(web::to(h::not_found))
                // Inner: framework errors without a JSON body (405, …) get the envelope.
                .wrap(ErrorHandlers::new().default_handler(json_envelope))
                // Outer: nothing under the scope, not even a 404, answers without the token.
                .wrap(from_fn(move |req, next| {
                    admin_guard(auth.clone(), req, next)
                })),
        );
    }
}

/// A resource answering `route`, and 405 (not the scope's 404) to any other method.
fn resource(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(h::method_not_allowed))
}

/// Give error responses that have no JSON body the standard envelope.
fn json_envelope<B: MessageBody>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "METHOD_NOT_ALLOWED",
            "method not allowed on this route".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body too large".to_owned()),
        s if s.is_server_error() => ("INTERNAL_ERROR", "internal error".to_owned()),
        s => (
            "BAD_REQUEST",
            s.canonical_reason().unwrap_or("bad request").to_owned(),
        ),
    };
    let body = json!({"success": false, "error": {"code": code, "message": message}}).to_string();
    let (req, _) = res.into_parts();
    let res = HttpResponse::build(status)
        .insert_header(ContentType::json())
        .body(body);
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, res).map_into_right_body::<B>(),
    ))
}
