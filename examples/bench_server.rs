//! Benchmark server for `scripts/bench.sh`: one trivial JSON route, with or without selfheal.
//!
//! ```text
//! cargo run --release --example bench_server -- bare     [PORT]
//! cargo run --release --example bench_server -- selfheal [PORT]
//! ```
//!
//! Both modes serve `GET /bench/json` from one HTTP worker on 127.0.0.1 (PORT from argv[2],
//! else `BENCH_PORT`, else 8099). `bare` is a plain actix-web `App` with that one route.
//! `selfheal` starts `SelfHeal` with every agent switched on, the Monitor ticking every
//! second (5× its default rate), the tracer sampling 100 % of requests, and the App wrapped in
//! `sh.tracer()` with `sh.routes()` mounted, exactly as an embedding host app would.
//! SIGINT/SIGTERM stop the HTTP server; in `selfheal` mode the agents are then stopped in order.

use std::process::ExitCode;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Serialize;

const DEFAULT_PORT: u16 = 8099;
/// The Monitor's tick in `selfheal` mode: below its 5 s default, so the agents work harder.
const MONITOR_INTERVAL_MS: u64 = 1_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bare,
    SelfHeal,
}

#[derive(Serialize)]
struct Reply {
    ok: bool,
    service: &'static str,
    items: [u32; 3],
}

async fn bench_json() -> HttpResponse {
    HttpResponse::Ok().json(Reply {
        ok: true,
        service: "bench",
        items: [1, 2, 3],
    })
}

fn bench_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/bench/json", web::get().to(bench_json));
}

fn parse_args() -> Result<(Mode, u16), String> {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("bare") => Mode::Bare,
        Some("selfheal") => Mode::SelfHeal,
        other => return Err(format!("expected mode `bare` or `selfheal`, got {other:?}")),
    };
    let port = match args.next().or_else(|| std::env::var("BENCH_PORT").ok()) {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|e| format!("bad port {p:?}: {e}"))?,
        None => DEFAULT_PORT,
    };
    Ok((mode, port))
}

/// Settings for `selfheal` mode: the environment, then every agent on, full sampling.
fn selfheal_settings(port: u16) -> Result<selfheal::Settings, String> {
    let _ = dotenvy::dotenv();
    let monitor_ms = std::env::var("MONITOR_INTERVAL_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(MONITOR_INTERVAL_MS, |ms| ms.min(MONITOR_INTERVAL_MS));
    let mut forced: Vec<(String, String)> = vec![
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), port.to_string()),
        ("HTTP_WORKERS".into(), "1".into()),
        ("ENABLE_SELF_HEALING".into(), "true".into()),
        ("TRACE_SAMPLE_RATE".into(), "1".into()),
        ("MONITOR_INTERVAL_MS".into(), monitor_ms.to_string()),
    ];
    forced.extend(selfheal::agents::registry().names().into_iter().map(|n| {
        (
            format!("{}_AGENT_ENABLED", n.to_ascii_uppercase()),
            "true".into(),
        )
    }));
    let mut s = selfheal::Settings::from_lookup(|k| {
        forced
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(k).ok())
    })
    .map_err(|e| e.to_string())?;
    if s.server.admin_token.is_none() {
        s.server.admin_token = Some("bench-admin-token-0123456789".to_owned());
    }
    // The bench route must be traced whatever TRACE_EXCLUDE_PATHS says.
    s.tracer
        .exclude_paths
        .retain(|p| !"/bench/json".starts_with(p.as_str()));
    Ok(s)
}

/// Stop the server on SIGINT or SIGTERM (graceful, 1 s at most).
fn stop_on_signal(handle: actix_web::dev::ServerHandle) {
    actix_web::rt::spawn(async move {
        selfheal::startup::shutdown_signal().await;
        handle.stop(true).await;
    });
}

async fn run(mode: Mode, port: u16) -> Result<(), String> {
    let addr = ("127.0.0.1", port);
    let bind_err = |e: std::io::Error| format!("cannot listen on 127.0.0.1:{port}: {e}");
    match mode {
        Mode::Bare => {
            let server = HttpServer::new(|| App::new().configure(bench_routes))
                .workers(1)
                .shutdown_timeout(1)
                .disable_signals()
                .bind(addr)
                .map_err(bind_err)?
                .run();
            stop_on_signal(server.handle());
            log::info!("bench_server bare on 127.0.0.1:{port}");
            server.await.map_err(|e| e.to_string())
        }
        Mode::SelfHeal => {
            let settings = selfheal_settings(port)?;
            let sh = selfheal::SelfHeal::start(settings)
                .await
                .map_err(|e| e.to_string())?;
            let app_sh = sh.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(app_sh.tracer())
                    .configure(bench_routes)
                    .configure(app_sh.routes())
            })
            .workers(1)
            .shutdown_timeout(1)
            .disable_signals()
            .bind(addr)
            .map_err(bind_err)?
            .run();
            stop_on_signal(server.handle());
            log::info!("bench_server selfheal on 127.0.0.1:{port}");
            let served = server.await.map_err(|e| e.to_string());
            sh.shutdown().await;
            served
        }
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let (mode, port) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bench_server: {e}\nusage: bench_server bare|selfheal [PORT]");
            return ExitCode::from(2);
        }
    };
    match run(mode, port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_server: {e}");
            ExitCode::FAILURE
        }
    }
}
