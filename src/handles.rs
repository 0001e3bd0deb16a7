//! `SelfHeal`: the typed handles to a running system, held by handlers in `web::Data` and by
//! the host app. Starting and stopping the system is in the `system` module.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::actors::agent::Agent;
use crate::actors::alert_manager::AlertManager;
use crate::actors::event_bus::EventBus;
use crate::actors::harness::{AgentActor, Call, CallError};
use crate::actors::metrics_store::MetricsStore;
use crate::actors::supervisor::{AgentHandles, SystemSupervisor};
use crate::config::Settings;
use crate::db::{PgPool, PoolRegistry, QueryLogger};
use crate::domain::agent::AgentStatus;
use crate::domain::health::LatestHealth;
use crate::middleware::request_tracer::{InFlightRegistry, RequestTracer};
use crate::notify::Notifiers;
use crate::outbound::{Breakers, CircuitBreaker};
use crate::redis::RedisHandle;
use crate::store::Store;
use crate::supervision::{
    ActorRegistry, AdminRestart, GetStatus, InjectHang, InjectPanic, Reporter,
};

/// Why a request about one supervised actor could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorLookupError {
    #[error("no agent or core actor named {0}")]
    NotFound(String),
    #[error("agent {0} is disabled by configuration")]
    Disabled(String),
    #[error("{0} has been stopped: the system is shutting down")]
    Stopped(String),
    #[error("{0} is not answering")]
    Unavailable(String),
    #[error("{0} cannot take that (it is not an agent)")]
    Unsupported(String),
}

/// Failed admin logins, for `/health/detailed` (they are logged too, at most once a minute).
#[derive(Debug, Default)]
pub struct AuthCounters {
    failed: AtomicU64,
    last_logged: Mutex<Option<(Instant, u64)>>,
}

/// What `/health/detailed` shows of the admin token checks.
#[derive(Debug, Clone, Serialize)]
pub struct AuthStats {
    pub failed_attempts: u64,
}

impl AuthCounters {
    /// Count a refused request; log it when the last log line is over a minute old.
    pub fn failed(&self, from: Option<String>, path: &str) {
        let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self
            .last_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|(at, _)| at.elapsed().as_secs() >= 60);
        if due {
            let since = last.map_or(n, |(_, count)| n - count);
            log::warn!(
                "admin auth: {since} request(s) without a valid token since the last report \
                 (latest from {} to {}); {n} in all",
                from.as_deref().unwrap_or("an unknown address"),
                crate::text::escape_for_log(&crate::text::clip_chars(path, 200)),
            );
            *last = Some((Instant::now(), n));
        }
    }

    pub fn stats(&self) -> AuthStats {
        AuthStats {
            failed_attempts: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Handles to the running system. Cheap to clone; held by handlers in `web::Data`.
#[derive(Clone)]
pub struct SelfHeal {
    pub settings: Arc<Settings>,
    pub bus: Addr<EventBus>,
    pub metrics: Addr<MetricsStore>,
    /// Alerts, silences and maintenance windows.
    pub alerts: Addr<AlertManager>,
    pub supervisor: Addr<SystemSupervisor>,
    /// Every supervised actor (agents and core actors): status, restart, fault injection.
    pub actors: ActorRegistry,
    /// The Monitor's latest verdict.
    pub health: LatestHealth,
    /// The running agents' typed handles.
    pub(crate) agents: AgentHandles,
    pub in_flight: InFlightRegistry,
    /// History: Postgres behind a write-behind queue, or memory (standalone).
    pub store: Store,
    /// Redis, when `REDIS_URL` is set.
    pub redis: Option<RedisHandle>,
    /// Postgres pools the Monitor watches and `/queries` shows.
    pub pools: PoolRegistry,
    /// The circuit breakers of outbound calls.
    pub breakers: Breakers,
    /// Failed admin logins.
    pub auth: Arc<AuthCounters>,
    /// The notification channels' workers (for the shutdown drain).
    pub(crate) notifiers: Notifiers,
    /// Where supervision reports go (and how many were lost).
    pub(crate) reporter: Reporter,
    /// The core actors' own arbiters, stopped at shutdown.
    pub(crate) arbiters: Vec<ArbiterHandle>,
    pub(crate) query_logger: QueryLogger,
    pub(crate) instance_id: Uuid,
    pub(crate) admin_token: Arc<str>,
    pub(crate) started: Instant,
    pub(crate) started_at: DateTime<Utc>,
}

impl SelfHeal {
    /// The request tracer middleware, for `App::wrap`.
    pub fn tracer(&self) -> RequestTracer {
        RequestTracer::new(
            self.settings.tracer.clone(),
            self.metrics.clone(),
            self.in_flight.clone(),
        )
    }

    /// The query logger, to install on the host app's diesel-async pool:
    /// `Pool::builder(selfheal.query_logger().manager(&url))`.
    pub fn query_logger(&self) -> QueryLogger {
        self.query_logger.clone()
    }

    /// Watch a host pool: the Monitor grades its usage against `DB_POOL_THRESHOLD` and
    /// `/api/v1/system/queries` shows its status.
    pub fn watch_pool(&self, name: &str, pool: PgPool) {
        self.pools.add(name, pool);
    }

    /// The circuit breaker named `name` (created closed on first use; shown in
    /// `/health/detailed`): wrap the host app's own outbound calls in it.
    pub fn breaker(&self, name: &str) -> CircuitBreaker {
        self.breakers.get(name)
    }

    /// The running agent `A`'s handle: send it the commands it declares.
    pub fn agent<A: Agent>(&self) -> Option<Addr<AgentActor<A>>> {
        self.agents.get::<A>()
    }

    /// Send `command` to agent `A` and wait for its answer.
    pub async fn command<A: Agent>(&self, command: A::Command) -> Result<A::Reply, CallError> {
        let unavailable = |why: &str| CallError::Unavailable {
            agent: A::NAME,
            why: why.to_owned(),
        };
        let addr = self
            .agent::<A>()
            .ok_or_else(|| unavailable("not running"))?;
        addr.send(Call(command))
            .await
            .map_err(|_| unavailable("its mailbox is closed"))?
    }

    /// This process's id (rollup rows and the Redis heartbeat carry it).
    pub fn instance_id(&self) -> Uuid {
        self.instance_id
    }

    /// The admin token the system routes accept.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Time since start.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// When the system started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// Restart the agent or core actor named `name` (case-insensitive), clearing `failed`;
    /// answers its status afterwards.
    pub async fn restart(&self, name: &str) -> Result<AgentStatus, ActorLookupError> {
        let entry = self
            .actors
            .find(name)
            .ok_or_else(|| ActorLookupError::NotFound(name.to_owned()))?;
        let control = entry
            .control
            .ok_or_else(|| ActorLookupError::Disabled(entry.name.clone()))?;
        if entry.status.state() == crate::domain::agent::AgentState::Stopped {
            return Err(ActorLookupError::Stopped(entry.name));
        }
        let unavailable = || ActorLookupError::Unavailable(entry.name.clone());
        control
            .restart
            .send(AdminRestart)
            .await
            .map_err(|_| unavailable())?;
        // Answered after the restart's `started()`: the fresh status.
        control
            .status
            .send(GetStatus)
            .await
            .map_err(|_| unavailable())
    }

    /// Make the named agent's next `times` ticks panic, or a core actor panic now and after
    /// each of its next `times - 1` restarts. For tests and the demo's fault route.
    pub async fn inject_agent_panic(&self, name: &str, times: u32) -> Result<bool, String> {
        let entry = self
            .actors
            .find(name)
            .ok_or_else(|| ActorLookupError::NotFound(name.to_owned()).to_string())?;
        let control = entry
            .control
            .ok_or_else(|| ActorLookupError::Disabled(entry.name.clone()).to_string())?;
        control
            .inject
            .send(InjectPanic { times })
            .await
            .map_err(|e| format!("{}: {e}", entry.name))
    }

    /// Make the named agent's next job hang for `ms` (the watchdog's test). Agents only.
    pub async fn inject_agent_hang(&self, name: &str, ms: u64) -> Result<bool, String> {
        let entry = self
            .actors
            .find(name)
            .ok_or_else(|| ActorLookupError::NotFound(name.to_owned()).to_string())?;
        let hang = entry
            .control
            .and_then(|c| c.hang)
            .ok_or_else(|| ActorLookupError::Unsupported(entry.name.clone()).to_string())?;
        hang.send(InjectHang { ms })
            .await
            .map_err(|e| format!("{}: {e}", entry.name))
    }
}
