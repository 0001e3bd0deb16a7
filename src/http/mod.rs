//! The HTTP surface: one route table ([`routes`]), handlers by resource, one error type.

pub mod alerts;
pub mod error;
pub mod handlers;
pub mod routes;
