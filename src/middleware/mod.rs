//! Middleware on every request: the request tracer.

pub mod request_tracer;
