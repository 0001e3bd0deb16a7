//! Bearer-token check for `/api/v1/system/*`, compared in constant time, plus the body-size
//! limit of those routes (declared `Content-Length` over the limit is refused with 413 before
//! anything reads the body).

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;

/// What the check needs: the token and the body limit.
#[derive(Clone)]
pub struct AdminAuth {
    token: Arc<str>,
    max_body_bytes: usize,
}

impl AdminAuth {
    /// A check accepting `Authorization: Bearer <token>`.
    pub fn new(token: Arc<str>, max_body_bytes: usize) -> Self {
        AdminAuth {
            token,
            max_body_bytes,
        }
    }

    /// Whether the request carries the token.
    pub fn allows(&self, req: &ServiceRequest) -> bool {
        let Some(given) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        // `ct_eq` on slices of unequal length is false without comparing contents; the
        // token's length is not a secret worth protecting.
        bool::from(given.trim().as_bytes().ct_eq(self.token.as_bytes()))
    }

    fn declared_length(req: &ServiceRequest) -> Option<usize> {
        req.headers()
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}

/// The middleware function: `.wrap(from_fn(move |req, next| admin_guard(auth.clone(), req, next)))`.
///
/// Refusals are answered as responses, not errors, so the middleware around this one (the
/// tracer's trace headers, for one) still sees and decorates them.
pub async fn admin_guard<B: MessageBody + 'static>(
    auth: AdminAuth,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let refusal = if !auth.allows(&req) {
        Some(ApiError::Unauthorized)
    } else if AdminAuth::declared_length(&req).is_some_and(|n| n > auth.max_body_bytes) {
        Some(ApiError::PayloadTooLarge(auth.max_body_bytes))
    } else {
        None
    };
    match refusal {
        Some(e) => Ok(req.error_response(e).map_into_right_body()),
        None => Ok(next.call(req).await?.map_into_left_body()),
    }
}
