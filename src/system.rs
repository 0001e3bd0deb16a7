//! `SelfHeal`: the running system and the typed handles to its actors.
//!
//! [`SelfHeal::start`] starts, inside the current actix `System`: the `EventBus` and the
//! `MetricsStore` (each under actix's `Supervisor`), then the `SystemSupervisor`, which
//! starts the agents in order. A host app then `.wrap(selfheal.tracer())`s its `App` and
//! `.configure(selfheal.routes())`s the system routes; [`SelfHeal::shutdown`] stops the
//! agents in reverse order after the HTTP server has drained.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actors::agent::AgentContext;
use crate::actors::alert_manager::AlertManager;
use crate::actors::event_bus::{EventBus, Publish};
use crate::actors::metrics_store::{MetricsOptions, MetricsStore, PersistOptions, PersistRollups};
use crate::actors::supervisor::{InjectAgentPanic, Registry, StopAll, SystemSupervisor};
use crate::config::Settings;
use crate::db::{PgPool, PoolRegistry, QueryCollector, QueryLogger, QueryLoggerOptions};
use crate::domain::event::{Event, Payload};
use crate::middleware::request_tracer::{InFlightRegistry, RequestTracer};
use crate::notify::Notifiers;
use crate::redis::RedisHandle;
use crate::store::{Store, StoreError};

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
    #[error("DATABASE_URL: {0}")]
    Database(#[from] StoreError),
    #[error("{0}")]
    Redis(String),
}

/// Handles to the running system. Cheap to clone; held by handlers in `web::Data`.
#[derive(Clone)]
pub struct SelfHeal {
    pub settings: Arc<Settings>,
    pub bus: Addr<EventBus>,
    pub metrics: Addr<MetricsStore>,
    /// Alerts, silences and maintenance windows.
    pub alerts: Addr<AlertManager>,
    /// The notification channels' workers (for the shutdown drain).
    notifiers: Notifiers,
    pub supervisor: Addr<SystemSupervisor>,
    pub in_flight: InFlightRegistry,
    /// History: Postgres behind a write-behind queue, or memory (standalone).
    pub store: Store,
    /// Redis, when `REDIS_URL` is set.
    pub redis: Option<RedisHandle>,
    /// Postgres pools the Monitor watches and `/queries` shows.
    pub pools: PoolRegistry,
    query_logger: QueryLogger,
    instance_id: Uuid,
    admin_token: Arc<str>,
    started: Instant,
    started_at: DateTime<Utc>,
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
        let settings = Arc::new(settings);
        let instance_id = Uuid::new_v4();
        let store = Store::from_settings(&settings)?;
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
        let history = settings.metrics.event_history;
        let bus = Supervisor::start(move |_| EventBus::new(history));
        let metrics_options = MetricsOptions {
            max_series: settings.metrics.max_series,
            max_fingerprints: settings.database.max_fingerprints,
            slow_query_ms: settings.thresholds.db_slow_query_ms,
            events: Some(bus.clone()),
            persist: Some(PersistOptions {
                store: store.clone(),
                instance_id,
                every: Duration::from_millis(settings.database.persist_interval_ms),
            }),
        };
        let metrics = Supervisor::start(move |_| MetricsStore::with_options(metrics_options));
        let query_logger = QueryLogger::new(QueryLoggerOptions {
            slow_threshold: Duration::from_millis(settings.thresholds.db_slow_query_ms),
            log_all_queries: settings.database.log_all_queries,
        });
        {
            let (logger, metrics) = (query_logger.clone(), metrics.clone());
            let every = Duration::from_millis(settings.tracer.flush_interval_ms.max(1));
            Supervisor::start(move |_| QueryCollector::new(logger, metrics, every));
        }
        let notifiers = Notifiers::start(&settings.notify, store.clone());
        let alerts = {
            let (settings, store, bus) = (settings.clone(), store.clone(), bus.clone());
            let notifiers = notifiers.clone();
            Supervisor::start(move |_| AlertManager::new(settings, store, bus, notifiers))
        };
        let cx = AgentContext {
            settings: settings.clone(),
            bus: bus.clone(),
            metrics: metrics.clone(),
            alerts: alerts.clone(),
            store: store.clone(),
            redis: redis.clone(),
            pools: pools.clone(),
            instance_id,
        };
        let supervisor = SystemSupervisor::start(registry, cx).await;
        let agents = supervisor.started_names();
        let supervisor = supervisor.start();
        let started_at = Utc::now();
        log::info!(
            "selfheal {} started (instance {instance_id}; store: {}; redis: {}); agents running: {}",
            env!("CARGO_PKG_VERSION"),
            store.backend(),
            if redis.is_some() { "on" } else { "off" },
            if agents.is_empty() {
                "none".to_owned()
            } else {
                agents.join(", ")
            }
        );
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
            notifiers,
            supervisor,
            in_flight: InFlightRegistry::default(),
            store,
            redis,
            pools,
            query_logger,
            instance_id,
            admin_token,
            started: Instant::now(),
            started_at,
        })
    }

    /// The request tracer middleware, for `App::wrap`.
    pub fn tracer(&self) -> RequestTracer {
        RequestTracer::new(
            self.settings.tracer.clone(),
            self.metrics.clone(),
            self.bus.clone(),
            self.in_flight.clone(),
        )
    }

    /// `GET /health` and `/api/v1/system/*`, for `App::configure`.
    pub fn routes(&self) -> impl FnOnce(&mut actix_web::web::ServiceConfig) {
        crate::http::routes::configure(self.clone())
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

    /// Make the named agent's next `times` ticks panic. For tests and the demo's fault route.
    pub async fn inject_agent_panic(&self, name: &str, times: u32) -> Result<bool, String> {
        self.supervisor
            .send(InjectAgentPanic {
                name: name.to_owned(),
                times,
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Stop the agents, last started first. Call after the HTTP server has stopped.
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
            log::warn!("the supervisor was gone before shutdown");
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
            let queued = self.store.status().writer.map_or(0, |w| w.queued);
            match self.store.spill().await {
                Ok(n) if n > 0 => log::warn!(
                    "database: unreachable at shutdown; {n} queued record(s) saved to {} and \
                     written at the next start",
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
        log::info!("selfheal stopped");
    }
}

/// The configured token, or a generated one written to `SYSTEM_ADMIN_TOKEN_FILE` (0600).
fn admin_token(settings: &Settings) -> Result<Arc<str>, StartError> {
    if let Some(token) = &settings.server.admin_token {
        return Ok(Arc::from(token.as_str()));
    }
    let mut bytes = [0u8; 32];
    let path = settings.server.admin_token_file.clone();
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
