//! Bearer-token check for `/api/v1/system/*`, compared in constant time, plus the body-size
//! limit of those routes (declared `Content-Length` over the limit is refused with 413 before
//! anything reads the body).
//!
//! The scheme is matched in any case (`Bearer`, `bearer`: RFC 7235); the token is compared as
//! sent, not trimmed. Refused requests are counted (`/health/detailed`) and logged, at most
//! once a minute.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use subtle::ConstantTimeEq;

use crate::handles::AuthCounters;
use crate::http::error::ApiError;

/// What the check needs: the token, the body limit, and where refusals are counted.
#[derive(Clone)]
pub struct AdminAuth {
    token: Arc<str>,
    max_body_bytes: usize,
    counters: Arc<AuthCounters>,
}

impl AdminAuth {
    /// A check accepting `Authorization: Bearer <token>`.
    pub fn new(token: Arc<str>, max_body_bytes: usize, counters: Arc<AuthCounters>) -> Self {
        AdminAuth {
            token,
            max_body_bytes,
            counters,
        }
    }

    /// Whether the request carries the token.
    pub fn allows(&self, req: &ServiceRequest) -> bool {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some((scheme, given)) = value.split_first_chunk::<7>() else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        // `ct_eq` on slices of unequal length is false without comparing contents; the
        // token's length is not a secret worth protecting.
        bool::from(given.ct_eq(self.token.as_bytes()))
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
        auth.counters
            .failed(req.peer_addr().map(|a| a.ip().to_string()), req.path());
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
