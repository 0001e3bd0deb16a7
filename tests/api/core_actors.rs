//! The core actors (event bus, metrics store, query collector, store writer, alert manager,
//! system supervisor) under supervision, against real Postgres and Redis: each one panicked
//! under load comes back without a failed host request, without losing a write, with its
//! metrics still counting and its alerts still deduplicated; a panic loop ends `failed` with a
//! critical alert while the host serves; and when the alert manager itself fails, the critical
//! channels are told directly.

use std::cell::Cell;
use std::time::Duration;

use actix_web::http::Method;
use futures_util::future::join;
use serde_json::{json, Value};

use crate::alerts::{alerts, send_json, slow_requests, within, QUIET_HOST};
use crate::helpers::{encode, eventually, TestApp, Traffic};
use crate::infra::{redis_url, TestDb};
use crate::receivers::HttpReceiver;

/// The core actors, in the order they are panicked.
const CORE: [&str; 6] = [
    "metrics_store",
    "query_collector",
    "event_bus",
    "store_writer",
    "alert_manager",
    "system_supervisor",
];

/// How many requests `/users/{id}` has had in the last minute, as `/metrics` counts them.
async fn users_counted(app: &TestApp) -> u64 {
    let path = format!(
        "/api/v1/system/metrics?route={}&window=1m",
        encode("/users/{id}")
    );
    let reply = app.admin_get(&path).await;
    reply.data()["routes"][0]["count"].as_u64().unwrap_or(0)
}

/// A host app on a fresh database and the test Redis, with `extra` on top of [`QUIET_HOST`].
async fn host_on(db: &TestDb, redis: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut env = QUIET_HOST.to_vec();
    env.extend([
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis),
        ("DB_WRITE_FLUSH_MS", "20"),
        ("API_RESPONSE_THRESHOLD_MS", "100"),
    ]);
    env.extend_from_slice(extra);
    crate::helpers::spawn_host_app(&env).await
}

/// Once an admin restart brought the actor back, its `AGENT_FAILED` alert resolves.
async fn assert_agent_failed_resolved(app: &TestApp) {
    let open = within(
        Duration::from_secs(5),
        || alerts(app, "type=AGENT_FAILED&state=firing"),
        |a| a.is_empty(),
    )
    .await;
    assert_eq!(open, Vec::<Value>::new());
}

/// The `API_SLOW` alerts about `/sleep/{ms}`.
async fn sleep_alerts(app: &TestApp) -> Vec<Value> {
    alerts(app, "type=API_SLOW")
        .await
        .into_iter()
        .filter(|a| a.to_string().contains("/sleep/{ms}"))
        .collect()
}

#[actix_web::test]
async fn each_core_actor_panicked_under_load_comes_back_without_losing_a_request_or_a_write() {
    let db = TestDb::create();
    let redis = redis_url();
    // A long enough backoff that writes and requests arrive while each actor is down.
    let app = host_on(
        &db,
        &redis,
        &[
            ("AGENT_BACKOFF_INITIAL_MS", "200"),
            ("AGENT_MAX_RESTARTS", "5"),
        ],
    )
    .await;
    for name in CORE {
        let status = app.agent(name).await;
        assert_eq!(status["kind"], "core", "{name}: {status}");
        assert_eq!(status["state"], "running", "{name}: {status}");
    }
    // An alert the manager holds before any panic: it must stay the one alert of its kind.
    slow_requests(&app, 2, 250).await;
    let before = within(
        Duration::from_secs(5),
        || sleep_alerts(&app),
        |a| a.len() == 1,
    )
    .await;
    assert_eq!(before.len(), 1, "{before:?}");
    let slow_id = before[0]["id"].clone();

    let traffic = Traffic::default();
    let created = Cell::new(0i64);
    let faults = async {
        let silence = json!({
            "matchers": [{"field": "type", "value": "REDIS_DOWN"}],
            "duration_ms": 3_600_000,
            "comment": "written while a core actor restarts",
        });
        for name in CORE {
            let counted = eventually(|| users_counted(&app), |n| *n > 0).await;
            assert_eq!(
                app.selfheal().inject_agent_panic(name, 1).await,
                Ok(true),
                "{name}: the panic was not injected"
            );
            // Writes while it is down (each one a silence row and an audit row); the alert
            // manager answers them once it is back, or refuses them with a 503.
            for _ in 0..3 {
                let reply =
                    send_json(&app, Method::POST, "/api/v1/system/silences", &silence).await;
                match reply.status.as_u16() {
                    201 => created.set(created.get() + 1),
                    503 => {}
                    other => panic!("{name}: a silence answered {other}: {}", reply.text),
                }
            }
            // A slow request while it is down: the same route, the same alert.
            slow_requests(&app, 1, 250).await;
            let status = eventually(
                || app.agent(name),
                |s| s["state"] == "running" && s["restarts"] == 1,
            )
            .await;
            assert_eq!(status["state"], "running", "{name}: {status}");
            assert_eq!(status["restarts"], 1, "{name}: {status}");
            let error = status["last_error"].as_str().unwrap_or("");
            assert!(error.contains("injected fault"), "{name}: {error:?}");
            // Requests are counted again after the restart, on top of what was counted.
            let after = eventually(|| users_counted(&app), |n| *n > counted + 20).await;
            assert!(after > counted + 20, "{name}: {counted} then {after}");
        }
        traffic.stop.set(true);
    };
    join(traffic.run(&app, 3, 0), faults).await;

    assert_eq!(traffic.failures.borrow().as_slice(), &[] as &[String]);
    assert!(
        traffic.answered.get() >= 100,
        "{} requests",
        traffic.answered.get()
    );
    assert!(
        created.get() >= 15,
        "only {} silences were created",
        created.get()
    );

    // The writer lost nothing: every silence created and its audit row are in Postgres.
    let want = created.get();
    let rows = |sql: &'static str| {
        let db = &db;
        move || async move { db.scalar(sql) }
    };
    let silences = eventually(rows("SELECT count(*) FROM alert_silences"), |n: &i64| {
        *n >= want
    })
    .await;
    assert_eq!(silences, want);
    let audited = eventually(
        rows("SELECT count(*) FROM admin_audit_logs WHERE action LIKE '%silence%'"),
        |n: &i64| *n >= want,
    )
    .await;
    assert_eq!(audited, want);

    // The alert manager still deduplicates against the alert it had before its restart.
    slow_requests(&app, 1, 250).await;
    let after = sleep_alerts(&app).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], slow_id, "{after:?}");
    let stored = eventually(
        rows("SELECT count(*) FROM system_alerts WHERE alert_type = 'API_SLOW'"),
        |n: &i64| *n >= 1,
    )
    .await;
    assert_eq!(stored, 1, "API_SLOW rows in Postgres");
}

#[actix_web::test]
async fn a_core_actor_panicking_in_a_loop_ends_failed_with_a_critical_alert_while_the_host_serves()
{
    let db = TestDb::create();
    let redis = redis_url();
    let app = host_on(&db, &redis, &[("AGENT_MAX_RESTARTS", "2")]).await;
    assert_eq!(
        app.selfheal()
            .inject_agent_panic("metrics_store", 100)
            .await,
        Ok(true)
    );
    let failed = eventually(|| app.agent("metrics_store"), |s| s["state"] == "failed").await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["kind"], "core", "{failed}");
    assert_eq!(failed["running"], false, "{failed}");

    let alert = within(
        Duration::from_secs(5),
        || alerts(&app, "type=AGENT_FAILED"),
        |a| !a.is_empty(),
    )
    .await;
    assert_eq!(alert.len(), 1, "{alert:?}");
    assert_eq!(alert[0]["severity"], "critical", "{}", alert[0]);
    assert!(
        alert[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("metrics_store"),
        "{}",
        alert[0]
    );
    let health = eventually(
        || async { app.admin_get("/api/v1/system/health").await.body },
        |h| h["data"]["health"]["checks"]["metrics"]["status"] == "degraded",
    )
    .await;
    assert_eq!(health["data"]["overall"], "degraded", "{health}");
    // The Monitor still reports, and says what it cannot see.
    let checks = &health["data"]["health"]["checks"];
    assert_eq!(checks["metrics"]["status"], "degraded", "{health}");
    assert_eq!(checks["api"]["details"]["unavailable"], true, "{health}");
    assert_eq!(checks["memory"]["status"], "healthy", "{health}");
    // The detailed view and the dashboard show what they can, and name what is missing.
    for path in ["/api/v1/system/health/detailed", "/api/v1/system/dashboard"] {
        let reply = app.admin_get(path).await;
        assert_eq!(
            reply.data()["unavailable"],
            json!(["metrics_store"]),
            "{path}"
        );
        assert_eq!(reply.data()["routes"], Value::Null, "{path}");
    }

    // The host serves throughout.
    for i in 0..20 {
        let reply = app.get(&format!("/users/{i}"), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }

    // An admin restart brings it back: it counts again, and its alert resolves.
    let reply = app
        .admin_post("/api/v1/system/agents/metrics_store/restart", Vec::new())
        .await;
    assert_eq!(reply.data()["state"], "running", "{}", reply.text);
    for i in 0..5 {
        assert_eq!(app.get(&format!("/users/{i}"), &[]).await.status, 200);
    }
    let counted = eventually(|| users_counted(&app), |n| *n >= 5).await;
    assert!(counted >= 5, "{counted} requests counted after the restart");
    assert_agent_failed_resolved(&app).await;
}

#[actix_web::test]
async fn a_failed_alert_manager_tells_the_critical_channels_itself_and_the_host_serves() {
    let db = TestDb::create();
    let redis = redis_url();
    let slack = HttpReceiver::start();
    let slack_url = slack.url_for("/services/T0/B0/x");
    let app = host_on(
        &db,
        &redis,
        &[
            ("AGENT_MAX_RESTARTS", "2"),
            ("SLACK_WEBHOOK_URL", slack_url.as_str()),
            ("ALERT_ROUTES", crate::alerts::EVERY_SEVERITY),
        ],
    )
    .await;
    assert_eq!(
        app.selfheal()
            .inject_agent_panic("alert_manager", 100)
            .await,
        Ok(true)
    );
    let failed = eventually(|| app.agent("alert_manager"), |s| s["state"] == "failed").await;
    assert_eq!(failed["state"], "failed", "{failed}");

    let told = slack.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(told.len(), 1, "{told:?}");
    let text = told[0].body.to_string();
    assert!(text.contains("AGENT_FAILED"), "{text}");
    assert!(text.contains("alert_manager"), "{text}");

    // The host serves, and `/alerts` answers from the store (marked partial).
    assert_eq!(app.get("/users/1", &[]).await.status, 200);
    let listed = within(
        Duration::from_secs(5),
        || async {
            app.admin_get("/api/v1/system/alerts?type=AGENT_FAILED")
                .await
                .body
        },
        |b| {
            b["data"]["alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    assert_eq!(listed["success"], true, "{listed}");
    assert_eq!(listed["data"]["partial"], true, "{listed}");

    // Restarted, it reloads that alert and resolves it, telling Slack.
    let reply = app
        .admin_post("/api/v1/system/agents/alert_manager/restart", Vec::new())
        .await;
    assert_eq!(reply.data()["state"], "running", "{}", reply.text);
    let told = slack.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(told.len(), 2, "{told:?}");
    assert_agent_failed_resolved(&app).await;
}

#[actix_web::test]
async fn the_monitor_does_not_stall_while_the_metrics_store_waits_out_a_restart() {
    let db = TestDb::create();
    let redis = redis_url();
    // A backoff longer than the Monitor's job deadline: a tick that waited for the store's
    // answer would be stalled.
    let app = host_on(
        &db,
        &redis,
        &[
            ("AGENT_BACKOFF_INITIAL_MS", "3000"),
            ("AGENT_BACKOFF_MAX_MS", "3000"),
            ("AGENT_JOB_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    app.wait_for_first_tick("Monitor").await;
    assert_eq!(
        app.selfheal().inject_agent_panic("metrics_store", 1).await,
        Ok(true)
    );
    // During the backoff the Monitor reports without it.
    let health = eventually(
        || async { app.admin_get("/api/v1/system/health").await.body },
        |h| h["data"]["health"]["checks"]["metrics"]["status"] == "degraded",
    )
    .await;
    assert_eq!(
        health["data"]["health"]["checks"]["metrics"]["details"]["unavailable"], true,
        "{health}"
    );
    // The detailed view does not wait out the backoff: it names the store as unavailable.
    let asked = std::time::Instant::now();
    let detailed = app.admin_get("/api/v1/system/health/detailed").await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(detailed.data()["unavailable"], json!(["metrics_store"]));
    let back = within(
        Duration::from_secs(6),
        || app.agent("metrics_store"),
        |s| s["state"] == "running",
    )
    .await;
    assert_eq!(back["state"], "running", "{back}");
    let monitor = app.agent("Monitor").await;
    assert_eq!(monitor["stalls"], 0, "{monitor}");
    assert_eq!(monitor["restarts"], 0, "{monitor}");
    assert_eq!(monitor["state"], "running", "{monitor}");
    // And once the store is back, the metrics check is measured again.
    let health = eventually(
        || async { app.admin_get("/api/v1/system/health").await.body },
        |h| h["data"]["health"]["checks"]["metrics"]["status"] == "healthy",
    )
    .await;
    assert_eq!(
        health["data"]["health"]["checks"]["metrics"]["status"], "healthy",
        "{health}"
    );
}
