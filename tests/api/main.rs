//! Black-box tests of selfheal. Every test spawns its own app on port 0 (see `helpers`) and
//! talks to it over HTTP, or through the library's public handles for fault injection.
// Test code: a failed expectation is a failed test (clippy.toml allows this in `#[test]`s,
// but not in the helpers they share).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod compliance;
mod config;
mod data;
#[path = "../../examples/demo_backend/orders.rs"]
mod demo_orders;
mod errors;
mod events;
mod helpers;
mod infra;
mod metrics;
mod store;
mod supervision;
mod tracing;
