//! The HTTP surface: one route table ([`routes`]), the admin token check ([`auth`]), the
//! handlers, one file per resource, what they share ([`common`]), and one error type
//! ([`error`]) with the one mapping of errors to responses.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod common;
pub mod error;
pub mod events;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod queries;
pub mod routes;
pub mod silences;
pub mod traces;
