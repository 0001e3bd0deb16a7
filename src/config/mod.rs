//! Settings read once from the environment (and `.env` through dotenvy).
//!
//! One section per concern ([`server`], [`data`], [`alerting`], [`runtime`]), each a
//! [`Section`] read by the one reader, [`Knobs`]: every knob is declared once, with its env
//! name, default, bounds and one-line description. Each registered agent adds its own section
//! the same way (its switch `<NAME>_AGENT_ENABLED`, its job deadline `<NAME>_JOB_TIMEOUT_MS`,
//! and whatever its `Agent::Settings` reads). The same parse, run against an empty
//! environment, lists every knob with its default and description ([`Settings::knobs_with`]);
//! `.env.example` and the README's table are generated from that list ([`render`]), and a
//! test keeps them in step.
//!
//! Rules: an unset or empty variable takes its default; `0` is accepted wherever it means
//! "off" (thresholds, intervals); anything that does not parse or is out of range is an error,
//! and every error is reported at once ([`ConfigError`]).
//!
//! The standard entry points (`Settings::from_env`, `Settings::from_lookup`,
//! `Settings::knobs`) read selfheal's own sections plus those of the agents in
//! `agents::registry()`; they are defined in the `system` module, which knows the registry.

pub mod alerting;
pub mod data;
pub mod knobs;
pub mod render;
pub mod runtime;
pub mod server;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

pub use crate::domain::alert::SeverityRoutes;
pub use alerting::{AlertSettings, ExternalCheck, NotifySettings, Thresholds};
pub use data::{DatabaseSettings, Dependencies, RedisSettings, RetentionSettings};
pub use knobs::{Knob, Knobs, Section};
pub use runtime::{MetricsSettings, OutboundSettings, SupervisorSettings, TracerSettings};
pub use server::ServerSettings;

/// Every problem found in the environment, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per bad variable: `NAME=value: what is wrong`.
    pub problems: Vec<String>,
}

/// How a registered agent's section is read (built by the agent registry).
#[derive(Clone, Copy)]
pub struct SectionSpec {
    /// The agent's name, e.g. `Monitor`.
    pub agent: &'static str,
    /// Read the agent's own section.
    pub read: fn(&mut Knobs<'_>) -> Arc<dyn Any + Send + Sync>,
    /// The agent's tick interval, from its section.
    pub interval: fn(&(dyn Any + Send + Sync)) -> Option<Duration>,
}

/// One agent's settings: the generic switches, and its own section.
#[derive(Clone)]
pub struct AgentSettings {
    pub name: &'static str,
    /// `<NAME>_AGENT_ENABLED`.
    pub enabled: bool,
    /// `<NAME>_JOB_TIMEOUT_MS`: overrides `AGENT_JOB_TIMEOUT_MS`.
    pub job_timeout_ms: Option<u64>,
    /// How often the agent ticks (`None`: it does not).
    pub interval: Option<Duration>,
    section: Arc<dyn Any + Send + Sync>,
}

impl AgentSettings {
    /// The agent's own section.
    pub fn section<S: Any>(&self) -> Option<&S> {
        self.section.downcast_ref()
    }
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("job_timeout_ms", &self.job_timeout_ms)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ENABLE_SELF_HEALING`: start the agents. The tracer and system routes work either way.
    pub enable_self_healing: bool,
    /// HTTP listener and admin access.
    pub server: ServerSettings,
    /// `DATABASE_URL`: Postgres; unset means standalone (in memory).
    pub database_url: Option<String>,
    /// `REDIS_URL`: Redis; unset means no Redis.
    pub redis_url: Option<String>,
    /// Postgres pool, write-behind queue and query logger.
    pub database: DatabaseSettings,
    /// Redis pool and key prefix.
    pub redis: RedisSettings,
    /// Alerting thresholds; `0` turns a rule off.
    pub thresholds: Thresholds,
    /// Notification channels.
    pub notify: NotifySettings,
    /// Alert rules: anti-flap, repeats, the API window, external checks.
    pub alerting: AlertSettings,
    /// Retention of stored history.
    pub retention: RetentionSettings,
    /// Request tracer middleware.
    pub tracer: TracerSettings,
    /// In-memory metrics, events and evidence.
    pub metrics: MetricsSettings,
    /// Supervision policy for agents and core actors.
    pub supervisor: SupervisorSettings,
    /// Outbound calls: circuit breakers.
    pub outbound: OutboundSettings,
    /// Each registered agent's settings, in registration order.
    pub agents: Vec<AgentSettings>,
}

impl Settings {
    /// Read `.env` (if present), then the environment, with `sections` for the agents.
    pub fn from_env_with(sections: &[SectionSpec]) -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported by dotenvy when it is read.
        if let Err(e) = dotenvy::dotenv() {
            if !e.not_found() {
                return Err(ConfigError {
                    problems: vec![format!(".env: {e}")],
                });
            }
        }
        Self::from_lookup_with(sections, |key| std::env::var(key).ok())
    }

    /// Parse from any key lookup (tests pass a map). Empty values count as unset.
    pub fn from_lookup_with(
        sections: &[SectionSpec],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut k = Knobs::new(&lookup);
        let settings = Self::read(&mut k, sections);
        if k.problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError {
                problems: k.problems,
            })
        }
    }

    /// Every knob with its default and description, in `.env.example` order.
    pub fn knobs_with(sections: &[SectionSpec]) -> Vec<Knob> {
        let none = |_: &str| None;
        let mut k = Knobs::new(&none);
        let _ = Self::read(&mut k, sections);
        k.seen
    }

    /// The settings of the agent named `name` (case-insensitive).
    pub fn agent(&self, name: &str) -> Option<&AgentSettings> {
        self.agents
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether the agent named `name` runs: self-healing is on, it is registered, and its
    /// switch is on. An agent nobody registered is never "enabled".
    pub fn agent_enabled(&self, name: &str) -> bool {
        self.enable_self_healing && self.agent(name).is_some_and(|a| a.enabled)
    }

    /// The defaults (no agents) with a fixed admin token, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        let none = |_: &str| None;
        let mut k = Knobs::new(&none);
        let mut s = Self::read(&mut k, &[]);
        s.server.admin_token = Some("test-admin-token-0123".to_owned());
        s.server.port = 0;
        s.server.host = "127.0.0.1".to_owned();
        s
    }

    fn read(k: &mut Knobs<'_>, sections: &[SectionSpec]) -> Self {
        k.section("Server");
        let enable_self_healing = k.bool(
            "ENABLE_SELF_HEALING",
            true,
            "Start the agents (the tracer and the system routes work either way).",
        );
        let server = ServerSettings::read(k);
        let deps = Dependencies::read(k);
        let database = DatabaseSettings::read(k);
        let redis = RedisSettings::read(k);
        let thresholds = Thresholds::read(k);
        let notify = NotifySettings::read(k);
        let alerting = AlertSettings::read(k);
        let retention = RetentionSettings::read(k);
        let tracer = TracerSettings::read(k);
        let metrics = MetricsSettings::read(k);
        let supervisor = SupervisorSettings::read(k);
        let outbound = OutboundSettings::read(k);
        let agents = sections.iter().map(|spec| read_agent(k, spec)).collect();
        Settings {
            enable_self_healing,
            server,
            database_url: deps.database_url,
            redis_url: deps.redis_url,
            database,
            redis,
            thresholds,
            notify,
            alerting,
            retention,
            tracer,
            metrics,
            supervisor,
            outbound,
            agents,
        }
    }
}

/// An agent's generic knobs, then its own section.
fn read_agent(k: &mut Knobs<'_>, spec: &SectionSpec) -> AgentSettings {
    let name = spec.agent;
    let upper = name.to_ascii_uppercase();
    k.section(format!("{name} agent"));
    let enabled = k.bool(
        &format!("{upper}_AGENT_ENABLED"),
        true,
        &format!("Run the {name} agent."),
    );
    let job_timeout_ms = k.int_opt(
        &format!("{upper}_JOB_TIMEOUT_MS"),
        1,
        86_400_000,
        &format!("Deadline of one {name} job, ms; empty = AGENT_JOB_TIMEOUT_MS."),
    );
    let section = (spec.read)(k);
    AgentSettings {
        name,
        enabled,
        job_timeout_ms,
        interval: (spec.interval)(&*section),
        section,
    }
}

/// `ms` as a tick interval, `None` when it is 0 (off).
pub fn every(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_seed() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.server.host, "0.0.0.0");
        assert_eq!(
            s.agent("monitor").and_then(|a| a.interval),
            Some(Duration::from_millis(5000))
        );
        assert_eq!(s.thresholds.api_response_ms, 500);
        assert_eq!(s.thresholds.memory_percent, 85.0);
        assert_eq!(s.supervisor.job_timeout_ms, 30_000);
        assert!(s.enable_self_healing);
        assert!(s.agent_enabled("Monitor"));
        assert!(
            !s.agent_enabled("Nobody"),
            "an unregistered agent is not enabled"
        );
        assert_eq!(
            s.tracer.exclude_paths,
            vec!["/health", "/api/v1/health", "/favicon.ico"]
        );
    }

    #[test]
    fn zero_is_accepted_where_it_means_off() {
        let s = parse(&[("MONITOR_INTERVAL_MS", "0"), ("CPU_THRESHOLD_PERCENT", "0")]).unwrap();
        assert_eq!(s.agent("Monitor").and_then(|a| a.interval), None);
        assert_eq!(s.thresholds.cpu_percent, 0.0);
    }

    #[test]
    fn every_bad_variable_is_reported_at_once() {
        let err = parse(&[
            ("PORT", "eighty"),
            ("MEMORY_THRESHOLD_PERCENT", "150"),
            ("ENABLE_SELF_HEALING", "maybe"),
            ("TRACE_SAMPLE_RATE", "2"),
            ("DATABASE_URL", "mysql://secret@host/db"),
            ("MONITOR_AGENT_ENABLED", "perhaps"),
            ("SYSTEM_ADMIN_TOKEN", "short-secret"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 7, "{err}");
        let text = err.to_string();
        for key in [
            "PORT",
            "MEMORY_THRESHOLD_PERCENT",
            "ENABLE_SELF_HEALING",
            "TRACE_SAMPLE_RATE",
            "DATABASE_URL",
            "MONITOR_AGENT_ENABLED",
            "SYSTEM_ADMIN_TOKEN",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert!(
            !text.contains("secret"),
            "a URL's credentials or the token leaked: {text}"
        );
    }

    #[test]
    fn knobs_list_each_variable_once_with_its_default_and_a_description() {
        let knobs = Settings::knobs();
        let mut names: Vec<_> = knobs.iter().map(|k| k.key.as_str()).collect();
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), total);
        let find = |key: &str| knobs.iter().find(|k| k.key == key).cloned();
        assert_eq!(find("MONITOR_INTERVAL_MS").unwrap().default, "5000");
        assert_eq!(find("API_ERROR_RATE_THRESHOLD").unwrap().default, "1");
        assert_eq!(
            find("MONITOR_AGENT_ENABLED").unwrap().section,
            "Monitor agent"
        );
        assert!(
            knobs.iter().all(|k| !k.doc.is_empty()),
            "a knob without a description"
        );
    }
}
