//! selfheal: a self-healing layer for Rust web backends, built on Actix.
//!
//! It traces every request, watches the host, the process and the API, and runs its agents as
//! supervised actors that survive their own panics. Run it as the server
//! (`cargo run --release`) or embed it in an actix-web app:
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let settings = selfheal::Settings::from_env().map_err(std::io::Error::other)?;
//!     let sh = selfheal::SelfHeal::start(settings).await.map_err(std::io::Error::other)?;
//!     let app_sh = sh.clone();
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(app_sh.tracer())
//!             // … the host app's own routes, then (matched last) the system routes:
//!             .configure(app_sh.routes())
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     sh.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//! - [`config`]: `Settings` from the environment; every knob, all errors at once.
//! - [`domain`]: plain types (events, health, agent status, metric keys, alerts).
//! - [`actors`]: `EventBus`, `MetricsStore`, `AlertManager` (rules → dedup → silence →
//!   notify → persist), the agent harness (`AgentActor`) that turns panics into supervised
//!   restarts, and the `SystemSupervisor` with its registry.
//! - [`agents`]: the agents (`MonitorAgent` with its alert rules and external checks) and the
//!   registration list.
//! - [`middleware`]: the request tracer and the admin token check.
//! - [`http`]: the route table, handlers, and the one error type.
//! - [`notify`]: the notification channels (Slack, PagerDuty, email), one retrying worker each.
//! - [`system`]: `SelfHeal`, the running system and its handles.
//! - [`startup`]: `Application`, the standalone server (used by the binary and the tests).

pub mod actors;
pub mod agents;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod middleware;
pub mod notify;
pub mod redis;
pub mod startup;
pub mod store;
pub mod system;

pub use config::Settings;
pub use system::SelfHeal;
