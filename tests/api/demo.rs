//! The demo backend's trigger routes (`examples/demo_backend.rs`, the very code the demo
//! serves): the fake external dependency, the error burst, the slow route and memory that is
//! really handed back. Served without a database, next to the demo's database routes (whose
//! `QueryConfig` answers malformed query strings with a JSON 400), as `main` mounts them.

use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpServer};
use serde_json::{json, Value};

use selfheal::agents::external::ExternalProbe;

use crate::helpers::breakers;
use selfheal::config::ExternalCheck;

use crate::demo_backend::Triggers;
use crate::demo_orders::{self, DemoDb};

/// The demo's own routes on a free port of this test's system, and a client for them.
struct Demo {
    address: String,
    client: awc::Client,
}

impl Demo {
    fn spawn() -> Demo {
        let triggers = Triggers::default();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(DemoDb(None)))
                .configure(demo_orders::configure)
                .configure(|cfg| triggers.configure(cfg))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the demo binds");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        Demo {
            address: format!("http://127.0.0.1:{port}"),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish(),
        }
    }

    /// `method path`, answered with its status and JSON body (`Null` when not JSON).
    async fn call(&self, method: Method, path: &str) -> (StatusCode, Value) {
        let mut res = self
            .client
            .request(method.clone(), format!("{}{path}", self.address))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let body = res.body().await.expect("the body");
        (
            res.status(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path).await
    }

    async fn post(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::POST, path).await
    }
}

fn assert_bad_request((status, body): &(StatusCode, Value), what: &str) {
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["success"], false, "{what}: {body}");
    assert_eq!(body["error"]["code"], "BAD_REQUEST", "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[actix_web::test]
async fn the_dependency_answers_what_it_was_told_until_healed() {
    let demo = Demo::spawn();
    let ok = (StatusCode::OK, json!({"ok": true}));
    assert_eq!(demo.get("/demo/dependency").await, ok);

    let set = demo.post("/demo/dependency?status=500").await;
    assert_eq!(set, (StatusCode::OK, json!({"status": 500, "delay_ms": 0})));
    // It stays broken, for every worker, until told otherwise.
    for _ in 0..4 {
        assert_eq!(
            demo.get("/demo/dependency").await,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"ok": false, "status": 500})
            )
        );
    }

    demo.post("/demo/dependency?status=200").await;
    assert_eq!(demo.get("/demo/dependency").await, ok);

    // A bare POST heals whatever was set.
    demo.post("/demo/dependency?status=503&delay_ms=100").await;
    assert_eq!(
        demo.get("/demo/dependency").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let healed = demo.post("/demo/dependency").await;
    assert_eq!(
        healed,
        (StatusCode::OK, json!({"status": 200, "delay_ms": 0}))
    );
    assert_eq!(demo.get("/demo/dependency").await, ok);
}

#[actix_web::test]
async fn a_delayed_dependency_answers_after_the_delay() {
    let demo = Demo::spawn();
    demo.post("/demo/dependency?delay_ms=300").await;
    let started = Instant::now();
    let (status, _) = demo.get("/demo/dependency").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[actix_web::test]
async fn the_dependency_rejects_invalid_settings_with_a_json_400_and_keeps_its_behaviour() {
    let demo = Demo::spawn();
    demo.post("/demo/dependency?status=502").await;
    for query in [
        "status=99",
        "status=600",
        "status=abc",
        "status=-1",
        "status=",
        "delay_ms=60001",
        "delay_ms=soon",
        "status=500&delay_ms=-5",
        // Malformed: a field twice.
        "status=500&status=200",
    ] {
        let reply = demo.post(&format!("/demo/dependency?{query}")).await;
        assert_bad_request(&reply, query);
    }
    assert_eq!(
        demo.get("/demo/dependency").await.0,
        StatusCode::BAD_GATEWAY,
        "a rejected setting changed the behaviour"
    );
    // The edges are accepted.
    for query in ["status=100", "status=599", "delay_ms=60000", "delay_ms=0"] {
        let (status, body) = demo.post(&format!("/demo/dependency?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
    }
}

#[actix_web::test]
async fn the_external_probe_sees_the_dependency_go_down_and_come_back() {
    let demo = Demo::spawn();
    let probe = ExternalProbe::new(Duration::from_millis(300), breakers());
    let checks = [ExternalCheck {
        name: "dep".to_owned(),
        url: format!("{}/demo/dependency", demo.address),
    }];
    let verdict = |r: &selfheal::agents::external::ExternalResult| (r.up, r.status);

    assert_eq!(verdict(&probe.probe(&checks).await[0]), (true, Some(200)));
    demo.post("/demo/dependency?status=500").await;
    assert_eq!(verdict(&probe.probe(&checks).await[0]), (false, Some(500)));
    demo.post("/demo/dependency?delay_ms=2000").await;
    assert_eq!(verdict(&probe.probe(&checks).await[0]), (false, None));
    demo.post("/demo/dependency").await;
    assert_eq!(verdict(&probe.probe(&checks).await[0]), (true, Some(200)));
}

#[actix_web::test]
async fn the_error_route_answers_the_chosen_status_at_the_chosen_rate() {
    let demo = Demo::spawn();
    for _ in 0..5 {
        let (status, body) = demo.get("/demo/error?status=503").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(demo.get("/demo/error?rate=0").await.0, StatusCode::OK);
    }
    let mut errors = 0;
    for _ in 0..200 {
        if demo.get("/demo/error?rate=0.5").await.0 == StatusCode::INTERNAL_SERVER_ERROR {
            errors += 1;
        }
    }
    // Binomial(200, 0.5): outside 60..=140 has a probability below 1e-8.
    assert!((60..=140).contains(&errors), "{errors} errors of 200");
    for query in [
        "status=200",
        "status=600",
        "status=x",
        "rate=1.5",
        "rate=-0.1",
    ] {
        assert_bad_request(&demo.get(&format!("/demo/error?{query}")).await, query);
    }
}

#[actix_web::test]
async fn the_slow_route_answers_after_the_delay_and_rejects_longer_than_a_minute() {
    let demo = Demo::spawn();
    let started = Instant::now();
    let (status, body) = demo.get("/demo/slow?ms=250").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"slept_ms": 250})));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_bad_request(&demo.get("/demo/slow?ms=60001").await, "ms=60001");
}

/// This process's resident memory (the demo runs in it), from `/proc/self/status`.
#[cfg(target_os = "linux")]
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

#[cfg(target_os = "linux")]
#[actix_web::test]
async fn freed_memory_goes_back_to_the_os() {
    let demo = Demo::spawn();
    assert_bad_request(&demo.get("/demo/alloc?mb=0").await, "mb=0");
    assert_bad_request(&demo.get("/demo/alloc?mb=1025").await, "mb=1025");
    // Twice: after the first free the allocator serves 1 MiB blocks differently (glibc raises
    // its mmap threshold), and the second round must be returned as well.
    for round in 1..=2 {
        let before = rss_mib();
        let (status, body) = demo.get("/demo/alloc?mb=256").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["held_mb"], 256, "{body}");
        let held = rss_mib();
        let (status, body) = demo.post("/demo/alloc/free").await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"released_mb": 256}))
        );
        let after = rss_mib();
        assert!(
            held - before >= 200.0 && held - after >= 200.0,
            "round {round}: RSS {before:.0} MiB, {held:.0} MiB holding 256 MiB, {after:.0} MiB freed"
        );
    }
}
