//! The one route table: the public liveness probe and the admin-only system API.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{from_fn, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{error::JsonPayloadError, web};

use crate::handles::SelfHeal;
use crate::http::auth::{admin_guard, AdminAuth};
use crate::http::error::{envelope, ApiError};
use crate::http::{
    agents, alerts, audit, events, health, logs, metrics, queries, silences, traces,
};

impl SelfHeal {
    /// `GET /health` and `/api/v1/system/*`, for `App::configure`. Register them after the
    /// app's own routes: actix matches in registration order.
    pub fn routes(&self) -> impl FnOnce(&mut web::ServiceConfig) {
        configure(self.clone())
    }
}

/// Register `GET /health` and `/api/v1/system/*` on `cfg`.
pub fn configure(sh: SelfHeal) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let limit = sh.settings.server.max_body_bytes;
        let auth = AdminAuth::new(sh.admin_token().into(), limit, sh.auth.clone());
        cfg.service(
            web::resource("/health")
                .route(web::get().to(health::liveness))
                .route(web::head().to(health::liveness))
                .default_service(web::to(health::method_not_allowed)),
        )
        .service(
            web::scope("/api/v1/system")
                .app_data(web::Data::new(sh))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::BadRequest(format!("invalid query string: {e}")).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::BadRequest(format!("invalid path: {e}")).into()
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
                .service(resource("/health", web::get().to(health::health)))
                .service(resource(
                    "/health/detailed",
                    web::get().to(health::health_detailed),
                ))
                .service(resource("/health/check", web::post().to(health::check_now)))
                .service(resource("/dashboard", web::get().to(health::dashboard)))
                .service(resource("/agents", web::get().to(agents::list_agents)))
                .service(resource(
                    "/agents/{name}/restart",
                    web::post().to(agents::restart_agent),
                ))
                .service(resource("/alerts", web::get().to(alerts::list_alerts)))
                .service(resource("/alerts/{id}", web::get().to(alerts::get_alert)))
                .service(resource(
                    "/alerts/{id}/acknowledge",
                    web::post().to(alerts::acknowledge_alert),
                ))
                .service(resource(
                    "/alerts/{id}/resolve",
                    web::post().to(alerts::resolve_alert),
                ))
                .service(
                    web::resource("/silences")
                        .route(web::get().to(silences::list_silences))
                        .route(web::post().to(silences::create_silence))
                        .default_service(web::to(health::method_not_allowed)),
                )
                .service(resource(
                    "/silences/{id}",
                    web::delete().to(silences::delete_silence),
                ))
                .service(
                    web::resource("/maintenance-windows")
                        .route(web::get().to(silences::list_maintenance))
                        .route(web::post().to(silences::create_maintenance))
                        .default_service(web::to(health::method_not_allowed)),
                )
                .service(resource(
                    "/maintenance-windows/{id}",
                    web::delete().to(silences::delete_maintenance),
                ))
                .service(resource("/metrics", web::get().to(metrics::metrics)))
                .service(resource(
                    "/metrics/history",
                    web::get().to(metrics::metric_history),
                ))
                .service(resource("/queries", web::get().to(queries::queries)))
                .service(resource("/audit", web::get().to(audit::audit_log)))
                .service(resource("/traces", web::get().to(traces::traces)))
                .service(resource("/traces/slow", web::get().to(traces::slow_traces)))
                .service(resource("/logs", web::get().to(logs::logs)))
                .service(resource("/events", web::get().to(events::events)))
                .default_service(web::to(health::not_found))
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
        .default_service(web::to(health::method_not_allowed))
}

/// Give error responses that have no JSON body the standard envelope.
pub fn json_envelope<B: MessageBody>(
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
    let (req, _) = res.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, envelope(status)).map_into_right_body::<B>(),
    ))
}
