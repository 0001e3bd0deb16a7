//! A small host app that embeds selfheal exactly as a user's backend would, plus routes that
//! can be made to misbehave so the system has something to detect.
//!
//! Run: `cargo run --release --example demo_backend` (serves on `PORT`, default 8080).
//!
//! - `GET /demo/items/{id}`: a normal route (one series for every id).
//! - `GET /demo/slow?ms=N`: answers after N ms (0–60 000).
//! - `GET /demo/error?rate=R`: answers 500 with probability R (0.0–1.0), else 200.
//! - `GET /demo/alloc?mb=N`: allocates and keeps N MiB (1–1024 per call, 4 GiB in all);
//!   `POST /demo/alloc/free` releases it.
//! - `GET /demo/orders?customer=ID`: a customer's orders from `demo_orders` (200 000 seeded
//!   rows), filtered on an unindexed column: a slow query (needs `DATABASE_URL`).
//! - `GET /demo/n-plus-one?n=N`: one query, then N more, per request (needs `DATABASE_URL`).
//! - `POST` (or `GET`) `/demo/panic-agent?name=Monitor`: makes the agent panic (only with
//!   `SELFHEAL_DEMO_FAULTS=1`; the route does not exist otherwise).

#[path = "demo_backend/orders.rs"]
mod orders;

use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::json;

use diesel_async::pooled_connection::deadpool::Pool;
use selfheal::{SelfHeal, Settings};

/// Memory held by `/demo/alloc`, released by `/demo/alloc/free`.
#[derive(Default)]
struct Hoard {
    blocks: Mutex<Vec<Vec<u8>>>,
}

const MAX_HOARD_MB: usize = 4096;

fn bad_request(message: String) -> HttpResponse {
    HttpResponse::BadRequest()
        .json(json!({"success": false, "error": {"code": "BAD_REQUEST", "message": message}}))
}

/// `raw` parsed as a number, or `default` when absent.
fn parse<T: std::str::FromStr>(raw: &Option<String>, name: &str, default: T) -> Result<T, String> {
    match raw {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| format!("{name} must be a number (got {s:?})")),
    }
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<String>,
}

async fn slow(q: web::Query<SlowQuery>) -> HttpResponse {
    let ms: u64 = match parse(&q.ms, "ms", 1000) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    if ms > 60_000 {
        return bad_request(format!("ms must be from 0 to 60000 (got {ms})"));
    }
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
    HttpResponse::Ok().json(json!({"slept_ms": ms}))
}

#[derive(Deserialize)]
struct ErrorQuery {
    rate: Option<String>,
}

async fn error(q: web::Query<ErrorQuery>) -> HttpResponse {
    let rate: f64 = match parse(&q.rate, "rate", 1.0) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    if !(0.0..=1.0).contains(&rate) {
        return bad_request(format!("rate must be from 0.0 to 1.0 (got {rate})"));
    }
    if fastrand::f64() < rate {
        HttpResponse::InternalServerError().json(json!({"error": "demo failure", "rate": rate}))
    } else {
        HttpResponse::Ok().json(json!({"ok": true, "rate": rate}))
    }
}

#[derive(Deserialize)]
struct AllocQuery {
    mb: Option<String>,
}

async fn alloc(q: web::Query<AllocQuery>, hoard: web::Data<Hoard>) -> HttpResponse {
    let mb: usize = match parse(&q.mb, "mb", 64) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    if !(1..=1024).contains(&mb) {
        return bad_request(format!("mb must be from 1 to 1024 (got {mb})"));
    }
    let mut blocks = hoard.blocks.lock().unwrap_or_else(PoisonError::into_inner);
    if blocks.len() + mb > MAX_HOARD_MB {
        return HttpResponse::Conflict().json(json!({"success": false, "error": {
            "code": "CONFLICT",
            "message": format!("the demo holds {} MiB already; the cap is {MAX_HOARD_MB} MiB", blocks.len()),
        }}));
    }
    for _ in 0..mb {
        // Written, not just reserved, so the pages really count in the process's RSS.
        blocks.push(vec![0xA5; 1 << 20]);
    }
    HttpResponse::Ok().json(json!({"allocated_mb": mb, "held_mb": blocks.len()}))
}

async fn free(hoard: web::Data<Hoard>) -> HttpResponse {
    let mut blocks = hoard.blocks.lock().unwrap_or_else(PoisonError::into_inner);
    let released = blocks.len();
    *blocks = Vec::new();
    HttpResponse::Ok().json(json!({"released_mb": released}))
}

async fn item(id: web::Path<String>) -> HttpResponse {
    match id.parse::<u64>() {
        Ok(id) => HttpResponse::Ok().json(json!({"id": id, "name": format!("item {id}")})),
        Err(_) => bad_request(format!("id must be a whole number (got {:?})", id.as_str())),
    }
}

#[derive(Deserialize)]
struct PanicQuery {
    name: Option<String>,
}

async fn panic_agent(q: web::Query<PanicQuery>, sh: web::Data<SelfHeal>) -> HttpResponse {
    let Some(name) = q.name.as_deref() else {
        return bad_request("name is required (e.g. ?name=Monitor)".to_owned());
    };
    match sh.inject_agent_panic(name, 1).await {
        Ok(true) => HttpResponse::Ok().json(json!({"injected": true, "agent": name})),
        Ok(false) => HttpResponse::Conflict().json(json!({"success": false, "error": {
            "code": "CONFLICT", "message": format!("agent {name} is not running")}})),
        Err(e) => HttpResponse::NotFound()
            .json(json!({"success": false, "error": {"code": "NOT_FOUND", "message": e}})),
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = Settings::from_env();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo_backend: {e}");
            return ExitCode::from(2);
        }
    };
    let faults = std::env::var("SELFHEAL_DEMO_FAULTS").is_ok_and(|v| v == "1");
    let addr = (settings.server.host.clone(), settings.server.port);
    let sh = match SelfHeal::start(settings).await {
        Ok(sh) => sh,
        Err(e) => {
            log::error!("selfheal could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The demo's own table, through a pool with selfheal's query logger installed.
    let db = match sh.settings.database_url.clone() {
        None => {
            log::warn!("no DATABASE_URL: /demo/orders and /demo/n-plus-one answer 503");
            orders::DemoDb(None)
        }
        Some(url) => {
            let pool = Pool::builder(sh.query_logger().manager(&url))
                .max_size(sh.settings.database.pool_size)
                .build();
            match pool {
                Ok(pool) => {
                    sh.watch_pool("demo", pool.clone());
                    match orders::prepare(&pool, orders::SEED_ROWS).await {
                        Ok(n) => log::info!("demo_orders ready: {n} rows"),
                        Err(e) => log::error!("demo_orders could not be prepared: {e}"),
                    }
                    orders::DemoDb(Some(pool))
                }
                Err(e) => {
                    log::error!("demo pool: {e}");
                    orders::DemoDb(None)
                }
            }
        }
    };
    let db = web::Data::new(db);
    let hoard = web::Data::new(Hoard::default());
    let app_sh = sh.clone();
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .wrap(app_sh.tracer())
            .app_data(hoard.clone())
            .app_data(db.clone())
            .configure(orders::configure)
            .app_data(web::Data::new(app_sh.clone()))
            .route("/demo/items/{id}", web::get().to(item))
            .route("/demo/slow", web::get().to(slow))
            .route("/demo/error", web::get().to(error))
            .route("/demo/alloc", web::get().to(alloc))
            .route("/demo/alloc/free", web::post().to(free));
        if faults {
            app = app.service(
                web::resource("/demo/panic-agent")
                    .route(web::post().to(panic_agent))
                    .route(web::get().to(panic_agent)),
            );
        }
        // The system routes last: actix matches in registration order, and the app's own
        // routes are the ones hit on every request.
        app.configure(app_sh.routes())
    })
    .disable_signals();
    let server = match server.bind(addr) {
        Ok(s) => s.run(),
        Err(e) => {
            log::error!("cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "demo backend up; fault route {}",
        if faults { "enabled" } else { "disabled" }
    );
    match selfheal::startup::serve(server, sh).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
