//! Plain data types shared by every layer: events, health, agent status, metric keys.
//! No actix and no I/O here.

pub mod agent;
pub mod alert;
pub mod event;
pub mod health;
pub mod metric;
