//! `Application`: the standalone server. Binds a `TcpListener` (port 0 in tests), starts the
//! system, and serves the tracer-wrapped system routes.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use crate::config::Settings;
use crate::handles::SelfHeal;
use crate::system::StartError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
}

/// The server and the system it serves.
pub struct Application {
    port: u16,
    server: Server,
    selfheal: SelfHeal,
}

impl Application {
    /// Start the system and bind the HTTP server (not yet serving: see `run_until_stopped`).
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr).map_err(|source| BuildError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| BuildError::Bind {
                addr: addr.clone(),
                source,
            })?
            .port();
        let workers = settings.server.workers;
        let selfheal = SelfHeal::start(settings).await?;
        let sh = selfheal.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(sh.tracer())
                .configure(sh.routes())
                // Every other path: a JSON 404, like the system routes'.
                .default_service(web::to(crate::http::health::not_found))
        });
        if workers > 0 {
            server = server.workers(workers);
        }
        // Signals are handled by `serve`, which stops the agents in order after HTTP drains.
        let server = server
            .disable_signals()
            .listen(listener)
            .map_err(|source| BuildError::Bind { addr, source })?
            .run();
        log::info!("listening on port {port}");
        Ok(Application {
            port,
            server,
            selfheal,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running system's handles.
    pub fn selfheal(&self) -> &SelfHeal {
        &self.selfheal
    }

    /// Serve until SIGINT/SIGTERM (or a stop through the server handle); see [`serve`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        serve(self.server, self.selfheal).await
    }
}

/// Run `server` until SIGINT/SIGTERM or a stop through its handle: HTTP drains first (in-flight
/// requests finish), then the agents stop in reverse start order. Build the server with
/// `.disable_signals()`: actix-server's own handler stops the whole actix `System` once HTTP
/// has drained, which would kill the agents before they stop in order.
pub async fn serve(server: Server, selfheal: SelfHeal) -> std::io::Result<()> {
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let signal = shutdown_signal().await;
        log::info!("{signal} received: draining HTTP, then stopping the agents");
        handle.stop(true).await;
    });
    let result = server.await;
    selfheal.shutdown().await;
    result
}

/// Wait for the first of SIGINT or SIGTERM; returns its name.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{signal, SignalKind};
        use futures_util::future::{select, Either};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                let int = std::pin::pin!(actix_web::rt::signal::ctrl_c());
                match select(int, std::pin::pin!(term.recv())).await {
                    Either::Left(_) => "SIGINT",
                    Either::Right(_) => "SIGTERM",
                }
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM ({e}); only SIGINT stops the server");
                let _ = actix_web::rt::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
        "SIGINT"
    }
}
