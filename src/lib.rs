//! selfheal: monitoring and alerting for Rust web backends on Actix, built to become
//! self-healing.
//!
//! It traces every request and query, watches the host, the process, the dependencies and the
//! API, raises deduplicated alerts, and runs its agents and its own machinery as supervised
//! actors that survive their panics and hangs (what heals today is selfheal itself; diagnosis
//! and repair of the host app are not in this build). Run it as the server (`cargo run --release`)
//! or embed it in an actix-web app:
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     // .env and the environment; the logger; a configuration error exits with code 2.
//!     let settings = selfheal::init();
//!     let sh = selfheal::SelfHeal::start(settings).await.map_err(std::io::Error::other)?;
//!     let app_sh = sh.clone();
//!     let server = HttpServer::new(move || {
//!         App::new()
//!             .wrap(app_sh.tracer())
//!             // … the host app's own routes, then (matched last) the system routes:
//!             .configure(app_sh.routes())
//!     })
//!     .disable_signals() // `serve` handles SIGINT/SIGTERM
//!     .bind(("127.0.0.1", 8080))?
//!     .run();
//!     // Drains HTTP on a signal, then stops the agents in reverse order.
//!     selfheal::startup::serve(server, sh).await
//! }
//! ```
//!
//! # Layout
//! - [`config`]: `Settings` from the environment, one section per concern plus each agent's
//!   own; every knob declared once (default, bounds, description), all errors at once.
//! - [`domain`]: plain types (the typed `Alert`, events, health, agent status, metric keys).
//! - [`trace`]: a request's trace identity, current in the request's task.
//! - [`text`]: cutting, redacting and escaping text for logs and messages.
//! - [`logging`]: the logger and the ring of WARN/ERROR lines kept for diagnosis.
//! - [`store`]: history in Postgres (write-behind, journaled) or in memory; [`db`]: the query
//!   logger for the host's pool; [`redis`]: the Redis pool.
//! - [`outbound`]: the outbound HTTP client, retries, circuit breakers.
//! - [`notify`]: the notification channels (Slack, PagerDuty, email), one retrying worker each.
//! - [`supervision`]: the restart policy every actor runs under (panics caught and turned
//!   into restarts with backoff and intensity, `failed`, reports to the alert manager).
//! - [`actors`]: the agent harness and trait, the core actors
//!   (`EventBus`, `MetricsStore`, `AlertManager`, `QueryCollector`, the store writer, the
//!   `SystemSupervisor`).
//! - [`agents`]: the agents (the `MonitorAgent`, its rules and external checks) and the one
//!   registration list.
//! - [`middleware`]: the request tracer.
//! - [`handles`]: `SelfHeal`, the handles to a running system.
//! - [`http`]: the route table, the admin token check, handlers by resource, the one error type.
//! - [`system`]: starting and stopping the system, the standard configuration, [`init`].
//! - [`startup`]: `Application`, the standalone server (used by the binary and the tests).

pub mod actors;
pub mod agents;
pub mod config;
pub mod db;
pub mod domain;
pub mod handles;
pub mod http;
pub mod logging;
pub mod middleware;
pub mod notify;
pub mod outbound;
pub mod redis;
pub mod startup;
pub mod store;
pub mod supervision;
pub mod system;
pub mod text;
pub mod trace;

pub use config::Settings;
pub use handles::SelfHeal;
pub use system::init;
pub use trace::TraceContext;

/// The README's Rust examples, compiled as doctests so that the embedding guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
