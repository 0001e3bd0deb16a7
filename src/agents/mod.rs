//! The agents, and the one list that registers them in start order.
//!
//! Start order is the original's: Monitor, Security, Diagnostic, Repair, Learning, Predictive,
//! Performance. Agents that later work adds are registered here, each with one line.

pub mod external;
pub mod monitor;

use crate::actors::supervisor::Registry;

/// Every agent, in start order.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    r.add::<monitor::MonitorAgent>();
    r
}
