//! A test-only agent, declared the way `docs/ADDING_AN_AGENT.md` says: this one file, and one
//! registration line (in `registry` below). It has one setting of its own, a typed command, a
//! tick, and two subscriptions (a decision channel and a best-effort one).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use selfheal::actors::agent::{Agent, AgentContext, AgentError};
use selfheal::actors::supervisor::Registry;
use selfheal::config::{Knobs, Section};
use selfheal::domain::event::{Channel, Event};

/// The standard agents, and the probe.
pub fn registry() -> Registry {
    let mut r = selfheal::agents::registry();
    r.add::<ProbeAgent>();
    r
}

/// The probe's own settings.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// `PROBE_WIDGETS`.
    pub widgets: u32,
}

impl Section for ProbeSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        ProbeSettings {
            widgets: k.int(
                "PROBE_WIDGETS",
                3,
                1,
                100,
                "Widgets the probe agent counts (a test-only agent).",
            ) as u32,
        }
    }
}

/// What the probe can be asked.
#[derive(Debug, Clone, Copy)]
pub enum ProbeCommand {
    /// How many widgets it counts (its setting, as its own code sees it).
    Widgets,
}

/// See the module doc.
pub struct ProbeAgent {
    widgets: u32,
    ticks: u64,
    events: u64,
}

impl Agent for ProbeAgent {
    const NAME: &'static str = "Probe";
    type Settings = ProbeSettings;
    type Command = ProbeCommand;
    type Reply = u32;

    fn interval(_: &ProbeSettings) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }

    fn subscriptions() -> &'static [Channel] {
        &[Channel::Alert, Channel::HealthCheck]
    }

    fn build(_: &AgentContext, own: &ProbeSettings) -> Result<Self, AgentError> {
        Ok(ProbeAgent {
            widgets: own.widgets,
            ticks: 0,
            events: 0,
        })
    }

    async fn tick(&mut self, _: &AgentContext) -> Result<(), AgentError> {
        self.ticks += 1;
        Ok(())
    }

    async fn on_event(&mut self, _: &AgentContext, _: Arc<Event>) {
        self.events += 1;
    }

    async fn on_command(&mut self, _: &AgentContext, command: ProbeCommand) -> u32 {
        match command {
            ProbeCommand::Widgets => self.widgets,
        }
    }

    fn stats(&self) -> serde_json::Value {
        json!({ "widgets": self.widgets, "ticks": self.ticks, "events": self.events })
    }
}
