//! Middleware: the request tracer (every request) and the admin token check (system routes).

pub mod admin_auth;
pub mod request_tracer;
pub mod trace_context;
