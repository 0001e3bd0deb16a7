//! A small host app that embeds selfheal exactly as a user's backend would, plus routes that
//! can be made to misbehave so the system has something to detect.
//!
//! Run: `cargo run --release --example demo_backend` (serves on `PORT`, default 8080).
//!
//! - `GET /demo/items/{id}`: a normal route (one series for every id).
//! - `GET /demo/slow?ms=N`: answers after N ms (0–60 000, default 1000).
//! - `GET /demo/error?rate=R&status=S`: answers S (400–599, default 500) with probability R
//!   (0.0–1.0, default 1.0), else 200. Only 5xx count as errors for `API_ERROR_RATE`.
//! - `GET /demo/alloc?mb=N`: allocates, writes and keeps N MiB (1–1024 per call, 4 GiB in
//!   all); `POST /demo/alloc/free` releases it and hands the pages back to the OS.
//! - `GET /demo/dependency`: a fake external dependency, `{"ok":true}` with 200 until told
//!   otherwise; `POST /demo/dependency?status=S&delay_ms=D` sets what it answers next (S
//!   100–599, default 200; D 0–60 000, default 0), so a bare `POST` heals it.
//! - `GET /demo/orders?customer=ID`: a customer's orders from `demo_orders` (200 000 seeded
//!   rows), filtered on an unindexed column: a slow query (needs `DATABASE_URL`).
//! - `GET /demo/n-plus-one?n=N`: one query, then N more, per request (needs `DATABASE_URL`).
//! - `POST` (or `GET`) `/demo/panic-agent?name=Monitor`: makes the agent panic (only with
//!   `SELFHEAL_DEMO_FAULTS=1`; the route does not exist otherwise). The core actors take it
//!   too: `event_bus`, `metrics_store`, `alert_manager`, `store_writer` (with `DATABASE_URL`),
//!   `query_collector`, `system_supervisor`; `&times=N` makes it panic N times in a row (a
//!   crash loop: past `AGENT_MAX_RESTARTS` the actor is `failed`).
//! - `POST` (or `GET`) `/demo/hang-agent?name=monitor&ms=N`: the agent's next job hangs for N
//!   ms (1–600 000): past `AGENT_JOB_TIMEOUT_MS` the watchdog marks it `stalled` and restarts it
//!   (only with `SELFHEAL_DEMO_FAULTS=1`).
//!
//! Invalid input is answered with a JSON 400 (`{"success":false,"error":{..}}`).
//!
//! # Trigger each alert
//!
//! Start the demo with a short Monitor tick, low thresholds and itself as an external check:
//!
//! ```sh
//! MONITOR_INTERVAL_MS=1000 API_RESPONSE_THRESHOLD_MS=300 API_ERROR_RATE_THRESHOLD=5 \
//! HEAP_THRESHOLD_PERCENT=2 EXTERNAL_CHECKS=dep=http://127.0.0.1:8080/demo/dependency \
//! EXTERNAL_CHECK_INTERVAL_MS=2000 cargo run --release --example demo_backend
//! ```
//!
//! The API rules judge each route over the last `API_ALERT_WINDOW_MS` (default 60 000) once it
//! has `API_ALERT_MIN_REQUESTS` requests (default 5); an alert clears about that long after
//! the route recovers. Watch `GET /api/v1/system/alerts` (with the admin token).
//!
//! - Slow route → `API_SLOW` (p95 over `API_RESPONSE_THRESHOLD_MS`):
//!   `for i in $(seq 10); do curl -s 'localhost:8080/demo/slow?ms=800' & done; wait`
//! - Error burst → `API_ERROR_RATE` (5xx share over `API_ERROR_RATE_THRESHOLD` percent):
//!   `for i in $(seq 20); do curl -s 'localhost:8080/demo/error?rate=0.5'; done`
//! - Memory growth → `MEMORY_HIGH` (process RSS over `HEAP_THRESHOLD_PERCENT` of host
//!   memory; 2 % of 16 GiB is about 330 MiB): `curl 'localhost:8080/demo/alloc?mb=512'`;
//!   clear it with `curl -X POST localhost:8080/demo/alloc/free`.
//! - External endpoint down → `EXTERNAL_API_DOWN` (checked every `EXTERNAL_CHECK_INTERVAL_MS`,
//!   at most once a Monitor tick): `curl -X POST 'localhost:8080/demo/dependency?status=500'`,
//!   or too slow for `API_TIMEOUT_MS` (default 10 000):
//!   `curl -X POST 'localhost:8080/demo/dependency?delay_ms=15000'`; heal it with
//!   `curl -X POST localhost:8080/demo/dependency`. A closed port
//!   (`EXTERNAL_CHECKS=dep=http://127.0.0.1:9/`) is down from the start. The probes are
//!   requests to the demo too: a failing or slow `/demo/dependency` also raises `API_ERROR_RATE`
//!   or `API_SLOW` for that route.

#[path = "demo_backend/orders.rs"]
pub mod orders;

use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;
use serde_json::json;

use diesel_async::pooled_connection::deadpool::Pool;
use selfheal::SelfHeal;

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
    status: Option<String>,
}

async fn error(q: web::Query<ErrorQuery>) -> HttpResponse {
    let rate: f64 = match parse(&q.rate, "rate", 1.0) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    if !(0.0..=1.0).contains(&rate) {
        return bad_request(format!("rate must be from 0.0 to 1.0 (got {rate})"));
    }
    let code: u16 = match parse(&q.status, "status", 500) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(status) = StatusCode::from_u16(code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
    else {
        return bad_request(format!("status must be from 400 to 599 (got {code})"));
    };
    if fastrand::f64() < rate {
        HttpResponse::build(status)
            .json(json!({"error": "demo failure", "status": code, "rate": rate}))
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
    let blocks = std::mem::take(&mut *hoard.blocks.lock().unwrap_or_else(PoisonError::into_inner));
    let released = blocks.len();
    drop(blocks);
    return_free_memory_to_the_os();
    HttpResponse::Ok().json(json!({"released_mb": released}))
}

/// Freed blocks are not always unmapped: once a 1 MiB block has been freed, glibc raises its
/// mmap threshold and serves the next ones from an arena, whose free pages stay resident
/// unless they sit at the arena's top. `malloc_trim` hands every free page back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_free_memory_to_the_os() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's `malloc_trim` takes no pointer and only releases memory malloc owns
    // and has already freed.
    unsafe {
        malloc_trim(0);
    }
}

/// Other allocators unmap large blocks on free.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_free_memory_to_the_os() {}

/// What `GET /demo/dependency` answers; `POST /demo/dependency` sets it.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    status: StatusCode,
    delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: StatusCode::OK,
            delay: Duration::ZERO,
        }
    }
}

/// The fake external dependency's current behaviour, shared by every worker.
#[derive(Default)]
struct Dependency {
    behaviour: Mutex<Behaviour>,
}

impl Dependency {
    fn get(&self) -> Behaviour {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, behaviour: Behaviour) {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }
}

async fn dependency(dep: web::Data<Dependency>) -> HttpResponse {
    let Behaviour { status, delay } = dep.get();
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    let body = if status.is_success() {
        json!({"ok": true})
    } else {
        json!({"ok": false, "status": status.as_u16()})
    };
    HttpResponse::build(status).json(body)
}

#[derive(Deserialize)]
struct DependencyQuery {
    status: Option<String>,
    delay_ms: Option<String>,
}

/// Set the whole behaviour: what is not given goes back to normal (200, no delay).
async fn set_dependency(
    q: web::Query<DependencyQuery>,
    dep: web::Data<Dependency>,
) -> HttpResponse {
    let code: u16 = match parse(&q.status, "status", 200) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    // `StatusCode` takes 100..=999; only the standard classes make sense here.
    let Some(status) = StatusCode::from_u16(code).ok().filter(|_| code <= 599) else {
        return bad_request(format!("status must be from 100 to 599 (got {code})"));
    };
    let delay_ms: u64 = match parse(&q.delay_ms, "delay_ms", 0) {
        Ok(v) if v <= 60_000 => v,
        Ok(v) => return bad_request(format!("delay_ms must be from 0 to 60000 (got {v})")),
        Err(e) => return bad_request(e),
    };
    dep.set(Behaviour {
        status,
        delay: Duration::from_millis(delay_ms),
    });
    HttpResponse::Ok().json(json!({"status": status.as_u16(), "delay_ms": delay_ms}))
}

async fn item(id: web::Path<String>) -> HttpResponse {
    match id.parse::<u64>() {
        Ok(id) => HttpResponse::Ok().json(json!({"id": id, "name": format!("item {id}")})),
        Err(_) => bad_request(format!("id must be a whole number (got {:?})", id.as_str())),
    }
}

/// The routes that make the demo misbehave (and `/demo/items/{id}`, which never does), with
/// the state every worker shares: build once, mount in each worker's `App`. Malformed query
/// strings get a JSON 400 from the `QueryConfig` that `orders::configure` installs next to
/// them.
#[derive(Clone, Default)]
pub struct Triggers {
    hoard: web::Data<Hoard>,
    dependency: web::Data<Dependency>,
}

impl Triggers {
    /// Mount the routes listed in this file's doc, but the database and fault ones.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.hoard.clone())
            .app_data(self.dependency.clone())
            .route("/demo/items/{id}", web::get().to(item))
            .route("/demo/slow", web::get().to(slow))
            .route("/demo/error", web::get().to(error))
            .route("/demo/alloc", web::get().to(alloc))
            .route("/demo/alloc/free", web::post().to(free))
            .service(
                web::resource("/demo/dependency")
                    .route(web::get().to(dependency))
                    .route(web::post().to(set_dependency)),
            );
    }
}

/// Mount the fault routes (`/demo/panic-agent`, `/demo/hang-agent`); they need the
/// `SelfHeal` handle as app data.
pub fn configure_faults(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/demo/panic-agent")
            .route(web::post().to(panic_agent))
            .route(web::get().to(panic_agent)),
    )
    .service(
        web::resource("/demo/hang-agent")
            .route(web::post().to(hang_agent))
            .route(web::get().to(hang_agent)),
    );
}

#[derive(Deserialize)]
struct FaultQuery {
    name: Option<String>,
    times: Option<String>,
    ms: Option<String>,
}

/// The answer to a fault injection.
fn injected(result: Result<bool, String>, name: &str, what: serde_json::Value) -> HttpResponse {
    match result {
        Ok(true) => HttpResponse::Ok().json(json!({"injected": what, "agent": name})),
        Ok(false) => HttpResponse::Conflict().json(json!({"success": false, "error": {
            "code": "CONFLICT", "message": format!("{name} is not running")}})),
        Err(e) => HttpResponse::NotFound()
            .json(json!({"success": false, "error": {"code": "NOT_FOUND", "message": e}})),
    }
}

async fn panic_agent(q: web::Query<FaultQuery>, sh: web::Data<SelfHeal>) -> HttpResponse {
    let Some(name) = q.name.as_deref() else {
        return bad_request(
            "name is required (e.g. ?name=Monitor or ?name=metrics_store)".to_owned(),
        );
    };
    let times: u32 = match parse(&q.times, "times", 1) {
        Ok(v) if (1..=1000).contains(&v) => v,
        Ok(v) => return bad_request(format!("times must be from 1 to 1000 (got {v})")),
        Err(e) => return bad_request(e),
    };
    injected(
        sh.inject_agent_panic(name, times).await,
        name,
        json!({"panics": times}),
    )
}

async fn hang_agent(q: web::Query<FaultQuery>, sh: web::Data<SelfHeal>) -> HttpResponse {
    let Some(name) = q.name.as_deref() else {
        return bad_request("name is required (e.g. ?name=monitor)".to_owned());
    };
    let ms: u64 = match parse(&q.ms, "ms", 0) {
        Ok(v) if (1..=600_000).contains(&v) => v,
        Ok(_) => return bad_request("ms is required: from 1 to 600000".to_owned()),
        Err(e) => return bad_request(e),
    };
    injected(
        sh.inject_agent_hang(name, ms).await,
        name,
        json!({"hang_ms": ms}),
    )
}

#[actix_web::main]
async fn main() -> ExitCode {
    // .env and the environment, the logger; a configuration error lists every problem.
    let settings = match selfheal::system::init_or_exit_code() {
        Ok(s) => s,
        Err(code) => return ExitCode::from(code),
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
    let triggers = Triggers::default();
    let app_sh = sh.clone();
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .wrap(app_sh.tracer())
            .app_data(db.clone())
            .configure(orders::configure)
            .app_data(web::Data::new(app_sh.clone()))
            .configure(|cfg| triggers.configure(cfg));
        if faults {
            app = app.configure(configure_faults);
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
