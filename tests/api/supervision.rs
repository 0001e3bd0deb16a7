//! Supervision seen from outside: a panicking agent is restarted without disturbing requests,
//! a panic loop ends in `failed` (with an event and a degraded verdict) until an admin
//! restart, and the Monitor's report covers every component.

use std::time::{Duration, Instant};

use actix_web::http::Method;
use futures_util::future::join;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app, spawn_host_app, TestApp, Traffic};

/// Host thresholds off, so the verdict depends on the agents alone.
const CALM_HOST: &[(&str, &str)] = &[
    ("MEMORY_THRESHOLD_PERCENT", "0"),
    ("CPU_THRESHOLD_PERCENT", "0"),
    ("DISK_THRESHOLD_PERCENT", "0"),
    ("HEAP_THRESHOLD_PERCENT", "0"),
    ("API_RESPONSE_THRESHOLD_MS", "0"),
    ("API_ERROR_RATE_THRESHOLD", "0"),
    ("AGENT_MAX_RESTARTS", "2"),
];

fn restarts(agent: &Value) -> u64 {
    agent["restarts"].as_u64().unwrap_or(0)
}

#[actix_web::test]
async fn a_panic_in_the_monitor_restarts_it_without_failing_a_single_request() {
    let app = spawn_host_app(&[]).await;
    // Each client sends 50 requests, and keeps going until the Monitor is back: the traffic
    // spans the panic, the backoff and the rebuild.
    let traffic = Traffic::default();
    let fault = async {
        eventually(|| async { traffic.answered.get() }, |n| *n >= 20).await;
        let injected = Instant::now();
        let accepted = app.selfheal().inject_agent_panic("Monitor", 1).await;
        let back = eventually(
            || app.agent("Monitor"),
            |a| a["state"] == "running" && restarts(a) >= 1,
        )
        .await;
        let took = injected.elapsed();
        traffic.stop.set(true);
        (accepted, took, back)
    };
    let (_, (accepted, took, monitor)) = join(traffic.run(&app, 4, 50), fault).await;

    assert_eq!(accepted, Ok(true));
    assert_eq!(traffic.failures.borrow().as_slice(), &[] as &[String]);
    assert!(
        traffic.answered.get() >= 200,
        "{} requests",
        traffic.answered.get()
    );
    assert_eq!(monitor["state"], "running", "{monitor}");
    assert!(restarts(&monitor) >= 1, "{monitor}");
    let error = monitor["last_error"].as_str().unwrap_or("");
    assert!(error.contains("injected fault"), "last_error {error:?}");
    assert!(
        took <= Duration::from_secs(1),
        "back to running after {took:?}"
    );
}

/// Panic the Monitor until it is `failed`; returns its status then.
async fn drive_monitor_into_failed(app: &TestApp) -> Value {
    assert_eq!(
        app.selfheal().inject_agent_panic("Monitor", 100).await,
        Ok(true)
    );
    let monitor = eventually(|| app.agent("Monitor"), |a| a["state"] == "failed").await;
    assert_eq!(monitor["state"], "failed", "{monitor}");
    monitor
}

#[actix_web::test]
async fn a_panic_loop_leaves_the_monitor_failed_with_an_event_and_a_degraded_verdict() {
    let app = spawn_app(CALM_HOST).await;
    app.wait_for_first_tick("Monitor").await;
    let health = app.admin_get("/api/v1/system/health").await;
    assert_eq!(health.data()["overall"], "healthy", "{}", health.text);

    let monitor = drive_monitor_into_failed(&app).await;
    assert_eq!(monitor["restarts"], 2, "{monitor}");
    assert_eq!(monitor["running"], false, "{monitor}");
    let error = monitor["last_error"].as_str().unwrap_or("");
    assert!(error.contains("injected fault"), "last_error {error:?}");

    let failed = eventually(|| app.events("agent-failed"), |e| !e.is_empty()).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["channel"], "agent-failed");
    assert_eq!(failed[0]["data"]["type"], "AGENT_FAILED");
    assert_eq!(failed[0]["data"]["agent"], "Monitor");

    let health = app.admin_get("/api/v1/system/health").await;
    let data = health.data();
    assert_eq!(data["overall"], "degraded", "{}", health.text);
    assert_eq!(
        data["agents"]["Monitor"]["state"], "failed",
        "{}",
        health.text
    );
}

#[actix_web::test]
async fn an_admin_restart_brings_a_failed_agent_back_to_running() {
    let app = spawn_app(CALM_HOST).await;
    drive_monitor_into_failed(&app).await;

    let reply = app
        .admin_post("/api/v1/system/agents/Monitor/restart", Vec::new())
        .await;
    let restarted = reply.data();
    assert_eq!(restarted["state"], "running", "{}", reply.text);
    assert_eq!(
        reply.body["message"], "Agent Monitor restarted successfully",
        "{}",
        reply.text
    );
    let ticks = restarted["ticks"].as_u64().unwrap_or(0);
    let monitor = eventually(
        || app.agent("Monitor"),
        |a| a["ticks"].as_u64() >= Some(ticks + 3),
    )
    .await;
    assert!(
        monitor["ticks"].as_u64() >= Some(ticks + 3),
        "no ticks after the restart: {monitor}"
    );
    assert_eq!(monitor["state"], "running", "{monitor}");
    assert_eq!(monitor["restarts"], 3, "{monitor}");

    // The crash history went with `failed`: one more panic is an ordinary restart.
    assert_eq!(
        app.selfheal().inject_agent_panic("Monitor", 1).await,
        Ok(true)
    );
    let monitor = eventually(
        || app.agent("Monitor"),
        |a| a["state"] == "failed" || (a["state"] == "running" && a["restarts"] == 4),
    )
    .await;
    assert_eq!(monitor["state"], "running", "{monitor}");
    assert_eq!(monitor["restarts"], 4, "{monitor}");
}

#[actix_web::test]
async fn the_monitor_reports_every_check_with_database_and_redis_disabled_in_standalone_mode() {
    const CHECKS: [&str; 7] = [
        "memory", "cpu", "disk", "process", "api", "database", "redis",
    ];
    let app = spawn_app(&[]).await;
    let checks = || async {
        app.admin_get("/api/v1/system/health").await.data()["health"]["checks"].clone()
    };
    let checks = eventually(checks, |c| CHECKS.iter().all(|k| c.get(k).is_some())).await;
    for name in CHECKS {
        assert!(
            checks[name]["status"].is_string(),
            "check {name} missing: {checks}"
        );
    }
    for name in ["database", "redis"] {
        assert_eq!(
            checks[name]["status"], "disabled",
            "{name}: {}",
            checks[name]
        );
        let message = checks[name]["message"].as_str().unwrap_or("");
        assert!(message.contains("standalone"), "{name}: {message:?}");
    }
    for name in ["memory", "cpu", "disk", "process", "api"] {
        let status = checks[name]["status"].as_str().unwrap_or("");
        assert!(
            ["healthy", "degraded", "critical"].contains(&status),
            "{name} is {status:?}: {}",
            checks[name]
        );
    }
}

#[actix_web::test]
async fn a_hung_monitor_tick_is_stalled_within_its_deadline_restarted_and_alerted() {
    const TIMEOUT_MS: u64 = 500;
    let redis = crate::infra::redis_url();
    let timeout = TIMEOUT_MS.to_string();
    let mut env = crate::alerts::QUIET_HOST.to_vec();
    env.extend([
        ("AGENT_JOB_TIMEOUT_MS", timeout.as_str()),
        ("REDIS_URL", redis.as_str()),
    ]);
    let app = crate::helpers::spawn_demo_app(&env, None).await;
    app.wait_for_first_tick("Monitor").await;

    // The demo's fault route refuses what it cannot do.
    for (path, status) in [
        ("/demo/hang-agent?ms=100", 400),
        ("/demo/hang-agent?name=monitor&ms=0", 400),
        ("/demo/hang-agent?name=monitor&ms=x", 400),
        ("/demo/hang-agent?name=nobody&ms=100", 404),
    ] {
        let reply = app.call(Method::POST, path, &[], Vec::new()).await;
        assert_eq!(reply.status.as_u16(), status, "{path}: {}", reply.text);
        assert_eq!(reply.body["success"], false, "{path}: {}", reply.text);
    }
    assert_eq!(app.agent("Monitor").await["stalls"], 0);

    let reply = app
        .call(
            Method::POST,
            "/demo/hang-agent?name=monitor&ms=10000",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["injected"]["hang_ms"], 10_000, "{}", reply.text);
    let injected = Instant::now();
    let stalled = eventually(|| app.agent("Monitor"), |a| a["state"] == "stalled").await;
    let took = injected.elapsed();
    assert_eq!(stalled["state"], "stalled", "{stalled}");
    // The next tick starts within an interval (100 ms); then the deadline, then at most 1 s.
    let limit = Duration::from_millis(100 + TIMEOUT_MS + 1_000);
    assert!(took <= limit, "stalled after {took:?} (limit {limit:?})");

    let back = eventually(
        || app.agent("Monitor"),
        |a| a["state"] == "running" && restarts(a) >= 1,
    )
    .await;
    assert_eq!(back["state"], "running", "{back}");
    assert_eq!(back["stalls"], 1, "{back}");
    assert_eq!(restarts(&back), 1, "{back}");
    let ticks = back["ticks"].as_u64().unwrap_or(0);
    let ticking = eventually(
        || app.agent("Monitor"),
        |a| a["ticks"].as_u64() > Some(ticks),
    )
    .await;
    assert!(ticking["ticks"].as_u64() > Some(ticks), "{ticking}");

    let events = eventually(|| app.events("agent-stalled"), |e| !e.is_empty()).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["type"], "AGENT_STALLED");
    assert_eq!(events[0]["data"]["agent"], "Monitor");

    // Alerted, and resolved once it finished a job within its deadline again.
    let listed = app
        .admin_get("/api/v1/system/alerts?type=AGENT_STALLED")
        .await;
    let alerts = listed.data()["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(alerts.len(), 1, "{}", listed.text);
    assert_eq!(alerts[0]["severity"], "high", "{}", listed.text);
    let resolved = eventually(
        || async {
            app.admin_get("/api/v1/system/alerts?type=AGENT_STALLED&state=resolved")
                .await
                .body
        },
        |b| b["data"]["alerts"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    assert_eq!(
        resolved["data"]["alerts"][0]["state"], "resolved",
        "{resolved}"
    );
}
