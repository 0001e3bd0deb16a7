//! The harness: a real app per test, bound to port 0, and an HTTP client to talk to it.
//!
//! Two kinds of app, both real uses of the library:
//! - [`spawn_app`]: the standalone server (`selfheal::startup::Application`), which serves
//!   `/health` and `/api/v1/system/*` only;
//! - [`spawn_host_app`]: a host actix-web app that embeds selfheal the way the crate docs show
//!   (`SelfHeal::start`, `.wrap(sh.tracer())`, `.configure(sh.routes())`) next to routes of its
//!   own, for what only app routes can show: route patterns, slow and in-flight requests.
//!
//! Each app runs on an actix `System` of its own, on its own thread. Why: the agents run on
//! arbiters of their own, which would outlive the test's `System` (and keep ticking for the rest
//! of the run) unless that `System` is stopped; dropping a [`TestApp`] stops its `System`, which
//! stops every arbiter it started, agents and HTTP workers alike. Actor handles work across
//! `System`s, so tests still inject faults and query actors through [`TestApp::selfheal`].

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::rt::System;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::Value;

use selfheal::startup::Application;
use selfheal::{SelfHeal, Settings};

/// How long a condition may take to hold before the test gives up on it.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// How often a condition is re-checked.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Fast values for the knobs that decide how long a test waits.
const TEST_DEFAULTS: &[(&str, &str)] = &[
    ("HOST", "127.0.0.1"),
    ("PORT", "0"),
    ("HTTP_WORKERS", "2"),
    ("MONITOR_INTERVAL_MS", "100"),
    ("AGENT_BACKOFF_INITIAL_MS", "10"),
    ("AGENT_BACKOFF_MAX_MS", "100"),
    ("TRACE_FLUSH_INTERVAL_MS", "20"),
];

/// Routes of the host app whose patterns have no parameter: one series each.
pub const DISTINCT_ROUTES: usize = 6;

/// A running app and a client for it. Dropping it stops the app.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The admin token the system routes accept.
    pub token: String,
    pub client: awc::Client,
    selfheal: SelfHeal,
    system: System,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.system.stop();
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when it is not JSON.
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `data` of a success envelope; fails the test on anything else.
    pub fn data(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert_eq!(self.body["success"], true, "{}", self.text);
        &self.body["data"]
    }
}

/// Settings as `Settings::from_env` would read them from `TEST_DEFAULTS`, a fresh admin
/// token, and `overrides` (which win).
pub fn test_settings(overrides: &[(&str, &str)]) -> Settings {
    test_settings_with(overrides, &selfheal::agents::registry().sections())
}

/// [`test_settings`] with the agents' sections of `sections`.
pub fn test_settings_with(
    overrides: &[(&str, &str)],
    sections: &[selfheal::config::SectionSpec],
) -> Settings {
    let token = format!("test-token-{}", uuid::Uuid::new_v4().simple());
    let mut env: HashMap<String, String> = TEST_DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("SYSTEM_ADMIN_TOKEN".to_owned(), token);
    // A spill file of its own: a test's unwritten records must never reach another test.
    let spill = std::env::temp_dir().join(format!(
        "selfheal-test-spill-{}.jsonl",
        uuid::Uuid::new_v4().simple()
    ));
    env.insert(
        "DB_SPILL_FILE".to_owned(),
        spill.to_string_lossy().into_owned(),
    );
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    match Settings::from_lookup_with(sections, |key| env.get(key).cloned()) {
        Ok(settings) => settings,
        Err(e) => panic!("test settings are invalid: {e}"),
    }
}

/// The standalone server with `overrides` on top of the test defaults.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    let settings = test_settings(overrides);
    start_in_own_system(move || async move {
        let app = Application::build(settings)
            .await
            .expect("the application builds");
        let port = app.port();
        let selfheal = app.selfheal().clone();
        actix_web::rt::spawn(app.run_until_stopped());
        (port, selfheal)
    })
}

/// A host app embedding selfheal, with `overrides` on top of the test defaults. Its own
/// routes: `GET /users/{id}`, `GET /sleep/{ms}` (answers after `ms` milliseconds) and
/// `GET /distinct/0` … `/distinct/5`.
pub async fn spawn_host_app(overrides: &[(&str, &str)]) -> TestApp {
    spawn_host_app_with(overrides, selfheal::agents::registry).await
}

/// [`spawn_host_app`] with the agents of `registry` (the settings are read with their
/// sections too).
pub async fn spawn_host_app_with(
    overrides: &[(&str, &str)],
    registry: fn() -> selfheal::actors::supervisor::Registry,
) -> TestApp {
    let settings = test_settings_with(overrides, &registry().sections());
    start_in_own_system(move || async move {
        let workers = settings.server.workers.max(1);
        let selfheal = SelfHeal::start_with(settings, registry())
            .await
            .expect("selfheal starts");
        let sh = selfheal.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(sh.tracer())
                .configure(sh.routes())
                .route("/users/{id}", web::get().to(get_user))
                .route("/sleep/{ms}", web::get().to(sleep_for))
                .configure(|cfg| {
                    for i in 0..DISTINCT_ROUTES {
                        cfg.route(&format!("/distinct/{i}"), web::get().to(ok));
                    }
                })
        })
        .workers(workers)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the host app binds");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        (port, selfheal)
    })
}

async fn ok() -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn get_user(id: web::Path<u64>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "id": id.into_inner() }))
}

async fn sleep_for(ms: web::Path<u64>) -> HttpResponse {
    actix_web::rt::time::sleep(Duration::from_millis(ms.into_inner())).await;
    HttpResponse::Ok().finish()
}

/// Run `start` on a new thread inside a new actix `System`, which then keeps running until the
/// returned app is dropped.
fn start_in_own_system<F, Fut>(start: F) -> TestApp
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = (u16, SelfHeal)>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runner = System::new();
        let started = runner.block_on(start());
        if tx.send((started, System::current())).is_ok() {
            let _ = runner.run();
        }
    });
    let ((port, selfheal), system) = rx.recv().expect("the app started");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        token: selfheal.admin_token().to_owned(),
        client: awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish(),
        selfheal,
        system,
    }
}

impl TestApp {
    /// The running system's handles, for fault injection and actor queries.
    pub fn selfheal(&self) -> &SelfHeal {
        &self.selfheal
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Send a request with `headers` and `body`, and read the whole answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.address));
        for &(name, value) in headers {
            req = req.insert_header((name, value));
        }
        let mut res = req
            .send_body(body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let bytes = res
            .body()
            .limit(16 << 20)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status: res.status(),
            headers: res.headers().clone(),
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// `GET path` with the admin token.
    pub async fn admin_get(&self, path: &str) -> Reply {
        let auth = self.bearer();
        self.call(Method::GET, path, &[("authorization", &auth)], Vec::new())
            .await
    }

    /// `POST path` with the admin token and `body`.
    pub async fn admin_post(&self, path: &str, body: Vec<u8>) -> Reply {
        let auth = self.bearer();
        self.call(Method::POST, path, &[("authorization", &auth)], body)
            .await
    }

    /// `GET path` with extra `headers` and no token.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.call(Method::GET, path, headers, Vec::new()).await
    }

    /// Every agent's status from `GET /api/v1/system/agents`, by name.
    pub async fn agents(&self) -> serde_json::Map<String, Value> {
        let reply = self.admin_get("/api/v1/system/agents").await;
        match &reply.data()["agents"] {
            Value::Object(agents) => agents.clone(),
            other => panic!("agents is not an object: {other}"),
        }
    }

    /// One agent's status from `GET /api/v1/system/agents`.
    pub async fn agent(&self, name: &str) -> Value {
        self.agents()
            .await
            .remove(name)
            .unwrap_or_else(|| panic!("no agent {name} in /agents"))
    }

    /// Wait until the agent has ticked at least once (its first report is in).
    pub async fn wait_for_first_tick(&self, name: &str) {
        let agent = eventually(|| self.agent(name), |a| a["ticks"].as_u64() > Some(0)).await;
        assert!(
            agent["ticks"].as_u64() > Some(0),
            "{name} never ticked: {agent}"
        );
    }

    /// Events of `channel` from `GET /api/v1/system/events`, oldest first.
    pub async fn events(&self, channel: &str) -> Vec<Value> {
        let reply = self
            .admin_get(&format!(
                "/api/v1/system/events?channel={channel}&limit=1000"
            ))
            .await;
        match &reply.data()["events"] {
            Value::Array(events) => events.clone(),
            other => panic!("events is not an array: {other}"),
        }
    }
}

/// Probe until `done` holds or [`DEADLINE`] passes; returns the last value probed, for the
/// caller to assert on.
pub async fn eventually<T, Fut>(mut probe: impl FnMut() -> Fut, done: impl Fn(&T) -> bool) -> T
where
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = probe().await;
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        actix_web::rt::time::sleep(POLL_EVERY).await;
    }
}

/// The reply is the JSON error envelope with `status` and `code`, and nothing internal.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    let content_type = reply
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    assert!(
        content_type.is_some_and(|t| t.starts_with("application/json")),
        "content type {content_type:?}: {}",
        reply.text
    );
    assert_eq!(reply.body["success"], false, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.text);
    let message = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "no message: {}", reply.text);
    for internal in ["panicked", "backtrace", "src/", ".rs:"] {
        assert!(
            !reply.text.contains(internal),
            "internal detail {internal:?} in {}",
            reply.text
        );
    }
}

/// `value` percent-encoded for a query string.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The demo backend's routes (its triggers — `/demo/slow`, `/demo/error`, `/demo/alloc`,
/// `/demo/dependency` —, its database routes `/demo/orders`, `/demo/n-plus-one`, and its fault
/// routes `/demo/panic-agent`, `/demo/hang-agent`, as `SELFHEAL_DEMO_FAULTS=1` mounts them: the
/// very code of `examples/demo_backend.rs`) on a host app embedding selfheal, with the demo's pool
/// built through the query logger and watched by the Monitor. With `database_url`, the table
/// is created and seeded (200 000 rows) before the app answers; without, the routes answer 503.
pub async fn spawn_demo_app(overrides: &[(&str, &str)], database_url: Option<&str>) -> TestApp {
    let mut all: Vec<(&str, &str)> = overrides.to_vec();
    if let Some(url) = database_url {
        all.push(("DATABASE_URL", url));
    }
    let settings = test_settings(&all);
    start_in_own_system(move || async move {
        use crate::demo_orders::{self, DemoDb};
        let workers = settings.server.workers.max(1);
        let url = settings.database_url.clone();
        let selfheal = SelfHeal::start(settings).await.expect("selfheal starts");
        let db = match url {
            None => DemoDb(None),
            Some(url) => {
                let pool = diesel_async::pooled_connection::deadpool::Pool::builder(
                    selfheal.query_logger().manager(&url),
                )
                .max_size(4)
                .build()
                .expect("the demo pool builds");
                demo_orders::prepare(&pool, demo_orders::SEED_ROWS)
                    .await
                    .expect("demo_orders is created and seeded");
                selfheal.watch_pool("demo", pool.clone());
                DemoDb(Some(pool))
            }
        };
        let sh = selfheal.clone();
        let db = web::Data::new(db);
        let triggers = crate::demo_backend::Triggers::default();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(sh.tracer())
                .app_data(db.clone())
                .configure(demo_orders::configure)
                .configure(|cfg| triggers.configure(cfg))
                .app_data(web::Data::new(sh.clone()))
                .configure(crate::demo_backend::configure_faults)
                .configure(sh.routes())
        })
        .workers(workers)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the demo app binds");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        (port, selfheal)
    })
}

/// Host traffic for fault tests: clients sending `GET /users/{id}` one after the other, each
/// at least `min` requests and until `stop` is set; every answer is counted and every non-200
/// kept.
#[derive(Default)]
pub struct Traffic {
    pub stop: std::cell::Cell<bool>,
    pub answered: std::cell::Cell<usize>,
    pub failures: std::cell::RefCell<Vec<String>>,
}

impl Traffic {
    /// Run `clients` clients until each sent `min` requests and `stop` is set.
    pub async fn run(&self, app: &TestApp, clients: usize, min: usize) {
        let client = |c: usize| async move {
            let mut i = 0;
            while i < min || !self.stop.get() {
                let reply = app.get(&format!("/users/{}", c * 100_000 + i), &[]).await;
                self.answered.set(self.answered.get() + 1);
                if reply.status != 200 {
                    self.failures
                        .borrow_mut()
                        .push(format!("{}: {}", reply.status, reply.text));
                }
                i += 1;
            }
        };
        futures_util::future::join_all((0..clients).map(client)).await;
    }
}

/// A fresh set of circuit breakers with the default policy (for components built by hand).
pub fn breakers() -> selfheal::outbound::Breakers {
    selfheal::outbound::Breakers::new(5, Duration::from_secs(30))
}

/// Held by the tests that read the log ring or flood it (it is the process's): a flood must not
/// push out the line another test is looking for.
pub static LOG_RING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Feed the process's log ring (WARN and ERROR lines, for `/logs`) without printing anything:
/// the tests' own logger. Idempotent. A test that reads the ring holds [`LOG_RING`].
pub fn capture_logs() {
    struct Silent;
    impl log::Log for Silent {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            false
        }
        fn log(&self, _: &log::Record<'_>) {}
        fn flush(&self) {}
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        selfheal::logging::RingLogger::wrapping(Box::new(Silent), log::LevelFilter::Off).install();
    });
}
