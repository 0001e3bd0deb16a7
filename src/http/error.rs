//! The one error type of the HTTP boundary and the one place errors become responses: every
//! error a handler meets converts into [`ApiError`] here (`From` impls below), and
//! [`ApiError::error_response`] writes it. Framework errors without a body (a 405 from a
//! route's guard, …) get the same envelope through [`envelope`].
//!
//! Clients get `{"success":false,"error":{"code","message"}}` with a stable code; 5xx bodies
//! stay opaque (the cause goes to the log, not the client).

use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid admin token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// The cause is logged; the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BAD_REQUEST",
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            ApiError::Unprocessable(_) => "UNPROCESSABLE_ENTITY",
            ApiError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            log::error!("internal error answered as 500: {cause}");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header(ContentType::json());
        if matches!(self, ApiError::Unauthorized) {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"selfheal\""),
            ));
        }
        res.body(
            json!({
                "success": false,
                "error": { "code": self.code(), "message": self.to_string() },
            })
            .to_string(),
        )
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::Unavailable(
            "a system component is restarting or failed; try again shortly (see /api/v1/system/agents)"
                .to_owned(),
        )
    }
}

impl From<crate::actors::alert_manager::AlertError> for ApiError {
    fn from(e: crate::actors::alert_manager::AlertError) -> Self {
        use crate::actors::alert_manager::AlertError;
        match e {
            AlertError::NotFound(m) => ApiError::NotFound(m),
            AlertError::Conflict(m) => ApiError::Conflict(m),
            AlertError::NotReady(m) => ApiError::Unavailable(m),
        }
    }
}

/// A text field of a JSON body that cannot be kept (too long, or with a control character):
/// the body is well-formed but not valid, 422, as for a silence or a window (a header or a
/// query value that is wrong is a 400).
impl From<crate::actors::alert_manager::silences::TextError> for ApiError {
    fn from(e: crate::actors::alert_manager::silences::TextError) -> Self {
        ApiError::Unprocessable(e.into_message())
    }
}

impl From<crate::handles::ActorLookupError> for ApiError {
    fn from(e: crate::handles::ActorLookupError) -> Self {
        use crate::handles::ActorLookupError;
        match e {
            ActorLookupError::NotFound(_) => ApiError::NotFound(e.to_string()),
            ActorLookupError::Disabled(_)
            | ActorLookupError::Stopped(_)
            | ActorLookupError::Unsupported(_) => ApiError::Conflict(e.to_string()),
            ActorLookupError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<crate::actors::harness::CallError> for ApiError {
    fn from(e: crate::actors::harness::CallError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

/// The envelope for a framework error answered without a JSON body (code from the status).
pub fn envelope(status: StatusCode) -> HttpResponse {
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
    HttpResponse::build(status)
        .insert_header(ContentType::json())
        .body(json!({"success": false, "error": {"code": code, "message": message}}).to_string())
}

/// `{"success":true,"data":…}`.
pub fn ok<T: serde::Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": true, "data": data }))
}
