//! Actix actors: the infrastructure actors (event bus, metrics store), the agent harness that
//! supervises every agent, and the system supervisor that owns the agent registry.

pub mod agent;
pub mod alert_manager;
pub mod event_bus;
pub mod harness;
pub mod metrics_store;
pub mod query_collector;
pub mod query_stats;
pub mod supervisor;
