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
use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::actors::agent::AgentContext;
use crate::actors::event_bus::{EventBus, Publish};
use crate::actors::metrics_store::MetricsStore;
use crate::actors::supervisor::{InjectAgentPanic, Registry, StopAll, SystemSupervisor};
use crate::config::Settings;
use crate::domain::event::{Event, Payload};
use crate::middleware::request_tracer::{InFlightRegistry, RequestTracer};

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
}

/// Handles to the running system. Cheap to clone; held by handlers in `web::Data`.
#[derive(Clone)]
pub struct SelfHeal {
    pub settings: Arc<Settings>,
    pub bus: Addr<EventBus>,
    pub metrics: Addr<MetricsStore>,
    pub supervisor: Addr<SystemSupervisor>,
    pub in_flight: InFlightRegistry,
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
        let history = settings.metrics.event_history;
        let bus = Supervisor::start(move |_| EventBus::new(history));
        let max_series = settings.metrics.max_series;
        let metrics = Supervisor::start(move |_| MetricsStore::new(max_series));
        let cx = AgentContext {
            settings: settings.clone(),
            bus: bus.clone(),
            metrics: metrics.clone(),
        };
        let supervisor = SystemSupervisor::start(registry, cx).await;
        let agents = supervisor.started_names();
        let supervisor = supervisor.start();
        let started_at = Utc::now();
        log::info!(
            "selfheal {} started; agents running: {}",
            env!("CARGO_PKG_VERSION"),
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
            supervisor,
            in_flight: InFlightRegistry::default(),
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
