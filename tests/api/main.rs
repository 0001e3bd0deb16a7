//! Black-box tests of selfheal. Every test spawns its own app on port 0 (see `helpers`) and
//! talks to it over HTTP, or through the library's public handles for fault injection.
// Test code: a failed expectation is a failed test (clippy.toml allows this in `#[test]`s,
// but not in the helpers they share).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod alerts_api;
mod alerts_notify;
mod alerts_rules;
mod auth;
mod compliance;
mod config;
mod core_actors;
mod data;
mod demo;
// The demo's routes, the very code it serves: `Triggers`, the database routes (`orders`) and
// the fault routes. Its `main` is not used here.
#[allow(dead_code)]
#[path = "../../examples/demo_backend.rs"]
mod demo_backend;
mod errors;
mod events;
mod evidence;
mod external;
mod hardening;
mod helpers;
mod infra;
mod metrics;
mod notify;
mod probe_agent;
mod receivers;
mod store;
mod supervision;
mod tracing;

use demo_backend::orders as demo_orders;
