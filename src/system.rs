//! Starting and stopping the system ([`SelfHeal::start`], [`SelfHeal::shutdown`]), the
//! standard configuration (selfheal's sections plus the registered agents'), and [`init`]:
//! settings and logging for a binary or an embedding app.
//!
//! Start order, inside the current actix `System`: the admin token; the store (its writer on an
//! arbiter of its own); the EventBus, the MetricsStore (with the query collector) and the
//! AlertManager, each under actix's `Supervisor` on an arbiter of its own so none can stall
//! another; the notifier workers; then the `SystemSupervisor`, which starts the agents in
//! order. Stop is the reverse (see [`SelfHeal::shutdown`]).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use uuid::Uuid;

use crate::actors::agent::AgentContext;
use crate::actors::alert_manager::{self, AlertManager};
use crate::actors::event_bus::{self, EventBus, Publish};
use crate::actors::metrics_store::{
    self, MetricsOptions, MetricsStore, PersistOptions, PersistRollups,
};
use crate::actors::query_collector::{self, QueryCollector};
use crate::actors::supervisor::{self, AgentHandles, Registry, StopAll, SystemSupervisor};
use crate::config::{ConfigError, Knob, Settings};
use crate::db::{PoolRegistry, QueryLogger, QueryLoggerOptions};
use crate::domain::event::{Event, Payload};
use crate::domain::health::LatestHealth;
use crate::handles::{AuthCounters, SelfHeal};
use crate::middleware::request_tracer::InFlightRegistry;
use crate::notify::Notifiers;
use crate::outbound::Breakers;
use crate::redis::RedisHandle;
use crate::store::{Store, StoreError};
use crate::supervision::{ActorRegistry, Core, Reporter};

/// Why the system could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no SYSTEM_ADMIN_TOKEN is set and the generated one could not be written to {path}: {source}; \
         set SYSTEM_ADMIN_TOKEN, or SYSTEM_ADMIN_TOKEN_FILE to a writable path"
    )]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Database(#[from] StoreError),
    #[error("{0}")]
    Redis(String),
}

impl Settings {
    /// Read `.env` (if present), then the environment: selfheal's own knobs and those of every
    /// agent in [`crate::agents::registry`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&crate::agents::registry().sections())
    }

    /// Parse from any key lookup (tests pass a map), with the standard agents.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_with(&crate::agents::registry().sections(), lookup)
    }

    /// Every knob of the standard configuration, in `.env.example` order.
    pub fn knobs() -> Vec<Knob> {
        Self::knobs_with(&crate::agents::registry().sections())
    }
}

/// Settings and logging for a binary or an embedding app, in one call: read `.env` and the
/// environment, install the logger (env_logger, `RUST_LOG`, default `info`, with the log
/// ring behind it), and on a configuration error print every problem and exit with code 2.
pub fn init() -> Settings {
    match init_or_exit_code() {
        Ok(s) => s,
        Err(code) => std::process::exit(i32::from(code)),
    }
}

/// [`init`], answering the exit code instead of exiting (for a `main` that returns one).
pub fn init_or_exit_code() -> Result<Settings, u8> {
    let settings = Settings::from_env();
    let max_logs = settings.as_ref().map_or(1_000, |s| s.metrics.max_logs);
    if !crate::logging::init(max_logs) {
        eprintln!(
            "selfheal: a logger was installed already; WARN and ERROR lines are not kept for \
             /api/v1/system/logs (wrap yours with selfheal::logging::RingLogger::wrapping)"
        );
    }
    // A panic anywhere goes to the log with its location; actors' panics are also caught and
    // turned into restarts by their supervision.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!(
            "panic in thread {}: {info}",
            thread.name().unwrap_or("unnamed")
        );
    }));
    settings.map_err(|e| {
        eprintln!("selfheal: {e}");
        2
    })
}

impl SelfHeal {
    /// Start every component with the standard agents. Must run inside an actix `System`
    /// (`#[actix_web::main]`, `#[actix_web::test]`).
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        Self::start_with(settings, crate::agents::registry()).await
    }

    /// Start with a given agent registry.
    pub async fn start_with(settings: Settings, registry: Registry) -> Result<Self, StartError> {
        let admin_token = admin_token(&settings)?;
        crate::logging::ring().set_capacity(settings.metrics.max_logs);
        let settings = Arc::new(settings);
        let instance_id = Uuid::new_v4();
        let reporter = Reporter::default();
        let actors = ActorRegistry::default();
        let health = LatestHealth::default();
        let policy = settings.supervisor.clone();
        let breakers = Breakers::new(
            settings.outbound.breaker_failures,
            Duration::from_millis(settings.outbound.breaker_open_ms),
        );
        let store = Store::from_settings(&settings, reporter.clone())?;
        let pools = PoolRegistry::default();
        if let Some(pg) = store.pg() {
            pools.add("selfheal", pg.pool().clone());
        }
        let redis = match &settings.redis_url {
            Some(url) => Some(
                RedisHandle::new(
                    url,
                    &settings.redis.key_prefix,
                    settings.redis.pool_size,
                    Duration::from_millis(settings.redis.timeout_ms),
                )
                .map_err(StartError::Redis)?,
            ),
            None => None,
        };
        let mut arbiters = Vec::new();
        let mut arbiter = || {
            let a = Arbiter::new().handle();
            arbiters.push(a.clone());
            a
        };

        let mut bus = EventBus::new(settings.metrics.event_history, &policy, reporter.clone());
        let cell = bus.status_cell();
        let bus = Supervisor::start_in_arbiter(&arbiter(), move |_| bus);
        actors.add_core(event_bus::NAME, cell, &bus);
        {
            let bus = bus.clone();
            reporter.set_publisher(move |event| bus.do_send(Publish(event)));
        }

        let metrics_arbiter = arbiter();
        let mut metrics = MetricsStore::new(
            MetricsOptions {
                max_series: settings.metrics.max_series,
                max_fingerprints: settings.database.max_fingerprints,
                slow_query_ms: settings.thresholds.db_slow_query_ms,
                slow_request_ms: settings.tracer.slow_threshold_ms,
                events: Some(bus.clone()),
                persist: Some(PersistOptions {
                    store: store.clone(),
                    instance_id,
                    every: Duration::from_millis(settings.database.persist_interval_ms),
                }),
            },
            &policy,
            reporter.clone(),
        );
        let cell = metrics.status_cell();
        let metrics = Supervisor::start_in_arbiter(&metrics_arbiter, move |_| metrics);
        actors.add_core(metrics_store::NAME, cell, &metrics);

        let query_logger = QueryLogger::new(QueryLoggerOptions {
            log_all_queries: settings.database.log_all_queries,
        });
        let mut collector = QueryCollector::new(
            query_logger.clone(),
            metrics.clone(),
            Duration::from_millis(settings.tracer.flush_interval_ms.max(1)),
            &policy,
            reporter.clone(),
        );
        let cell = collector.status_cell();
        // Light work (a buffer swap every flush): it shares the MetricsStore's thread.
        let collector = Supervisor::start_in_arbiter(&metrics_arbiter, move |_| collector);
        actors.add_core(query_collector::NAME, cell, &collector);

        if let Some((writer, cell)) = store.writer() {
            actors.add_core(crate::store::writer::NAME, cell, &writer);
        }

        let notifiers = Notifiers::start(&settings.notify, store.clone(), &breakers);
        let mut alerts = AlertManager::new(
            settings.clone(),
            store.clone(),
            bus.clone(),
            notifiers.clone(),
            actors.clone(),
            reporter.clone(),
        );
        let cell = alerts.status_cell();
        let alerts = Supervisor::start_in_arbiter(&arbiter(), move |_| alerts);
        actors.add_core(alert_manager::NAME, cell, &alerts);
        reporter.set_alerts(alert_manager::NAME, alerts.clone().recipient());
        {
            let (settings, notifiers, store) = (settings.clone(), notifiers.clone(), store.clone());
            reporter.set_fallback(move |report| {
                alert_manager::fallback(&settings, &notifiers, &store, report)
            });
        }

        let cx = AgentContext {
            settings: settings.clone(),
            bus: bus.clone(),
            metrics: metrics.clone(),
            alerts: alerts.clone(),
            store: store.clone(),
            redis: redis.clone(),
            pools: pools.clone(),
            breakers: breakers.clone(),
            actors: actors.clone(),
            health: health.clone(),
            instance_id,
        };
        let handles = AgentHandles::default();
        let mut system_supervisor = SystemSupervisor::start(
            registry,
            cx,
            actors.clone(),
            handles.clone(),
            reporter.clone(),
            &policy,
        )
        .await;
        let agents = system_supervisor.started_names();
        let cell = system_supervisor.status_cell();
        let supervisor = Supervisor::start(move |_| system_supervisor);
        actors.add_core(supervisor::NAME, cell, &supervisor);

        let started_at = Utc::now();
        log::info!(
            "selfheal {} started (instance {instance_id}; store: {}; redis: {}); agents running: {}",
            env!("CARGO_PKG_VERSION"),
            store.backend(),
            match &settings.redis_url {
                Some(_) => "on".to_owned(),
                None => "off".to_owned(),
            },
            if agents.is_empty() {
                "none".to_owned()
            } else {
                agents.join(", ")
            }
        );
        if let Some(r) = &redis {
            // Redis is optional: down at start is a warning, with where it was looked for.
            if let Err(e) = r.ping().await {
                log::warn!(
                    "redis: not answering at start ({e}) at {}; selfheal runs without it and \
                     reconnects when it is back",
                    r.address()
                );
            }
        }
        bus.do_send(Publish(Event::new(
            "Orchestrator",
            Payload::SystemStatus {
                status: "running",
                agents,
                start_time: started_at,
            },
        )));
        Ok(SelfHeal {
            settings,
            bus,
            metrics,
            alerts,
            supervisor,
            actors,
            health,
            agents: handles,
            in_flight: InFlightRegistry::default(),
            store,
            redis,
            pools,
            breakers,
            auth: Arc::new(AuthCounters::default()),
            notifiers,
            reporter,
            arbiters,
            query_logger,
            instance_id,
            admin_token,
            started: Instant::now(),
            started_at,
        })
    }

    /// Stop the agents, last started first, let the notifications on their way out go, write
    /// what is queued, then stop the core actors. Call after the HTTP server has stopped.
    pub async fn shutdown(&self) {
        self.bus.do_send(Publish(Event::new(
            "Orchestrator",
            Payload::SystemStatus {
                status: "stopping",
                agents: Vec::new(),
                start_time: self.started_at,
            },
        )));
        if self.supervisor.send(StopAll).await.is_err() {
            log::warn!(
                "the system supervisor did not answer at shutdown; agents stop with their arbiters"
            );
        }
        // Notifications on their way (their attempts are rows to write below).
        let deadline = Instant::now() + Duration::from_millis(self.settings.notify.timeout_ms);
        while self.notifiers.queued() > 0 && Instant::now() < deadline {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        if self.notifiers.queued() > 0 {
            log::warn!(
                "notifications: {} still queued at shutdown are not sent",
                self.notifiers.queued()
            );
        }
        // The running minute's rollups, then everything queued, into Postgres.
        let _ = self
            .metrics
            .send(PersistRollups {
                include_current: true,
            })
            .await;
        let wait = Duration::from_millis(self.settings.database.timeout_ms.saturating_mul(2));
        if !self.store.flush(wait).await {
            let writer = self.store.status().writer;
            let queued = writer.as_ref().map_or(0, |w| w.queued);
            let why = writer
                .and_then(|w| w.last_error)
                .unwrap_or_else(|| "Postgres did not answer in time".to_owned());
            match self.store.spill().await {
                Ok(n) if n > 0 => log::warn!(
                    "database: not writable at shutdown ({why}); {n} queued record(s) saved to \
                     {} and written at the next start",
                    self.settings.database.spill_file
                ),
                Ok(_) => log::error!(
                    "database: {queued} queued record(s) could not be written before shutdown \
                     and DB_SPILL_FILE is empty: they are lost"
                ),
                Err(e) => log::error!(
                    "database: {queued} queued record(s) could not be written or saved ({e}): \
                     they are lost"
                ),
            }
        }
        for a in &self.arbiters {
            a.stop();
        }
        log::info!("selfheal stopped");
    }
}

/// The configured token; else the one a previous start generated (`SYSTEM_ADMIN_TOKEN_FILE`),
/// so the operator's saved token keeps working; else a new one, written there (0600).
fn admin_token(settings: &Settings) -> Result<Arc<str>, StartError> {
    if let Some(token) = &settings.server.admin_token {
        return Ok(Arc::from(token.as_str()));
    }
    let path = settings.server.admin_token_file.clone();
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let token = existing.trim();
        if token.len() >= crate::config::server::MIN_ADMIN_TOKEN_CHARS
            && token.bytes().all(|b| b.is_ascii_graphic())
        {
            log::info!(
                "SYSTEM_ADMIN_TOKEN is not set: using the admin token generated earlier in {path}"
            );
            return Ok(Arc::from(token));
        }
        log::warn!("{path} does not hold a usable admin token; generating a new one");
    }
    let mut bytes = [0u8; 32];
    let fail = |source| StartError::TokenFile {
        path: path.clone(),
        source,
    };
    getrandom::fill(&mut bytes).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_secret(Path::new(&path), &token).map_err(fail)?;
    log::warn!(
        "SYSTEM_ADMIN_TOKEN is not set: generated an admin token and wrote it to {path} \
         (mode 0600); send it as `Authorization: Bearer <token>` to /api/v1/system/*"
    );
    Ok(Arc::from(token.as_str()))
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // An existing file keeps its old mode on open; make sure it is 0600.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")
    }
}
