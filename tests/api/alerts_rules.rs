//! Each kind of Monitor rule fired for real and resolved by itself: a burst of 5xx, an external
//! endpoint that fails, Postgres and Redis going away (through a [`TcpProxy`]), this process's
//! memory growing, and a watched pool with every connection held.

use std::cell::Cell;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{App, HttpServer};
use futures_util::future::{join, join_all};
use serde_json::{json, Value};

use crate::alerts::{
    alert_when, alerts, one_alert, pd_actions, quiet_host, text, ticks, within, Channels,
    QUIET_HOST,
};
use crate::demo_backend::Triggers;
use crate::helpers::{spawn_demo_app, TestApp};
use crate::infra::{redis_url, test_prefix, TcpProxy, TestDb};

/// The demo's trigger routes (`examples/demo_backend.rs`) on a free port of this test's
/// system: `/demo/dependency` to take a dependency down, `/demo/alloc` to grow this process.
/// Answers `http://127.0.0.1:<port>`.
fn spawn_triggers() -> String {
    let triggers = Triggers::default();
    let server = HttpServer::new(move || App::new().configure(|cfg| triggers.configure(cfg)))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the demo's triggers bind");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}")
}

/// `method url` (a trigger route), answered with its status and JSON body.
async fn poke(app: &TestApp, method: Method, url: &str) -> (u16, Value) {
    let mut res = app
        .client
        .request(method, url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let body = res.body().limit(1 << 20).await.expect("the body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// One component of `/health/detailed`.
async fn component(app: &TestApp, name: &str) -> Value {
    let reply = app.admin_get("/api/v1/system/health/detailed").await;
    reply.data()["components"][name].clone()
}

fn resolved_by_itself(a: &Value) -> bool {
    a["state"] == "resolved"
}

fn assert_auto_resolved(a: &Value) {
    assert_eq!(a["state"], "resolved", "{a}");
    assert_eq!(a["auto_resolved"], true, "{a}");
    assert_eq!(a["resolved_by"], "selfheal", "{a}");
}

#[actix_web::test]
async fn a_burst_of_5xx_fires_api_error_rate_which_resolves_once_the_window_passes() {
    // Without a database the demo's `/demo/orders` answers 503.
    let mut env = QUIET_HOST.to_vec();
    env.extend([
        ("API_ERROR_RATE_THRESHOLD", "5"),
        ("API_RESPONSE_THRESHOLD_MS", "0"),
    ]);
    let app = spawn_demo_app(&env, None).await;
    for _ in 0..5 {
        let r = app.get("/demo/orders?customer=1", &[]).await;
        assert_eq!(r.status.as_u16(), 503, "{}", r.text);
    }
    let alert = one_alert(&app, "type=API_ERROR_RATE", Duration::from_secs(5)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["component"], "api");
    assert_eq!(
        alert["labels"],
        json!({"method": "GET", "route": "/demo/orders"})
    );
    assert_eq!(
        alert["severity"], "critical",
        "every request failed: {alert}"
    );
    assert_eq!(alert["value"], 100.0);
    assert_eq!(alert["threshold"], 5.0);
    assert!(
        alerts(&app, "type=API_SLOW").await.is_empty(),
        "the latency rule is off"
    );

    // The failed requests leave the 10 s window: the rule clears and the alert resolves.
    let id = text(&alert, "id");
    let a = alert_when(&app, &id, Duration::from_secs(20), resolved_by_itself).await;
    assert_auto_resolved(&a);
    assert_eq!(
        alerts(&app, "type=API_ERROR_RATE").await.len(),
        1,
        "no second alert"
    );
}

#[actix_web::test]
async fn an_external_check_that_fails_fires_and_resolves_when_it_answers_again() {
    let demo = spawn_triggers();
    let checks = format!("dep={demo}/demo/dependency");
    let app = quiet_host(&[
        ("EXTERNAL_CHECKS", &checks),
        ("EXTERNAL_CHECK_INTERVAL_MS", "100"),
    ])
    .await;
    let check = within(
        Duration::from_secs(5),
        || component(&app, "external:dep"),
        |c| c["status"] == "healthy",
    )
    .await;
    assert_eq!(check["status"], "healthy", "{check}");

    let dependency = format!("{demo}/demo/dependency");
    assert_eq!(
        poke(&app, Method::POST, &format!("{dependency}?status=500"))
            .await
            .0,
        200
    );
    let alert = one_alert(&app, "type=EXTERNAL_API_DOWN", Duration::from_secs(5)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["component"], "external");
    assert_eq!(alert["labels"], json!({"check": "dep"}));
    assert_eq!(alert["severity"], "medium");
    assert!(text(&alert, "message").contains("500"), "{alert}");
    let check = component(&app, "external:dep").await;
    assert_eq!(check["status"], "down", "{check}");
    assert_eq!(check["details"]["status"], 500, "{check}");

    // Healed: the next checks pass and the alert resolves by itself.
    assert_eq!(poke(&app, Method::POST, &dependency).await.0, 200);
    let a = alert_when(
        &app,
        &text(&alert, "id"),
        Duration::from_secs(5),
        resolved_by_itself,
    )
    .await;
    assert_auto_resolved(&a);
    let check = component(&app, "external:dep").await;
    assert_eq!(check["status"], "healthy", "{check}");
}

#[actix_web::test]
async fn postgres_going_away_fires_a_critical_alert_readable_meanwhile_and_resolved_when_back() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let url = db.url_via(&proxy);
    let ch = Channels::start();
    let mut env = ch.env().to_vec();
    env.extend([
        ("DATABASE_URL", url.as_str()),
        ("DB_TIMEOUT_MS", "300"),
        ("DB_WRITE_FLUSH_MS", "20"),
    ]);
    let app = quiet_host(&env).await;
    let check = within(
        Duration::from_secs(5),
        || component(&app, "database"),
        |c| c["status"] == "healthy",
    )
    .await;
    assert_eq!(check["status"], "healthy", "{check}");

    proxy.down();
    let alert = one_alert(&app, "type=DB_CONNECTION_ERROR", Duration::from_secs(10)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["component"], "database");
    assert_eq!(alert["severity"], "critical");
    let (id, fp) = (text(&alert, "id"), text(&alert, "fingerprint"));
    // Read while Postgres is away: the store answers from memory (partial), with the
    // manager's copy on top; the alert's page too.
    let reply = app
        .admin_get("/api/v1/system/alerts?type=DB_CONNECTION_ERROR")
        .await;
    assert_eq!(reply.data()["partial"], true, "{}", reply.text);
    assert_eq!(
        reply.data()["alerts"][0]["id"],
        id.as_str(),
        "{}",
        reply.text
    );
    let page = app.admin_get(&format!("/api/v1/system/alerts/{id}")).await;
    assert_eq!(page.data()["alert"]["state"], "firing", "{}", page.text);
    // PagerDuty is told even though the history cannot be written now (after at most the
    // AlertManager's 10 s wait for its start-up load, which this outage may have cut short).
    let pd = ch.pd.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(pd_actions(&pd), [("trigger".to_owned(), fp.clone())]);
    // The alert repeats on every tick of the outage, but its repeats are not written on every
    // tick: the write-behind queue (journaled to disk meanwhile) does not grow with them.
    let start = ticks(&app).await;
    let repeated = within(
        Duration::from_secs(10),
        || ticks(&app),
        |t| *t >= start + 20,
    )
    .await;
    assert!(repeated >= start + 20);
    let writer = app
        .selfheal()
        .store
        .status()
        .writer
        .expect("a Postgres store has a writer");
    assert!(
        writer.queued < 10,
        "{} records queued after 20 ticks: {writer:?}",
        writer.queued
    );
    let now = app.admin_get(&format!("/api/v1/system/alerts/{id}")).await;
    assert!(
        now.data()["alert"]["occurrences"].as_i64().unwrap() >= 20,
        "{}",
        now.text
    );

    proxy.up();
    let a = alert_when(&app, &id, Duration::from_secs(15), resolved_by_itself).await;
    assert_auto_resolved(&a);
    let pd = ch.pd.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(pd_actions(&pd)[1], ("resolve".to_owned(), fp));
    // What was queued during the outage reaches Postgres once the writer is back (its
    // backoff may run a few seconds): the store reads Postgres again and has the row, which
    // ends resolved, with its history.
    let stored = within(
        Duration::from_secs(20),
        || async {
            app.admin_get("/api/v1/system/alerts?type=DB_CONNECTION_ERROR")
                .await
                .data()
                .clone()
        },
        |d| d["source"] == "postgres" && d["alerts"].as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    assert_eq!(stored["source"], "postgres", "{stored}");
    assert_eq!(stored["alerts"][0]["id"], id.as_str(), "{stored}");
    let sql =
        format!("SELECT count(*) FROM system_alerts WHERE id = '{id}' AND state = 'resolved'");
    let written = within(
        Duration::from_secs(10),
        || async { db.scalar(&sql) },
        |n| *n == 1,
    )
    .await;
    assert_eq!(written, 1, "the resolved alert is in Postgres");
    let sql = format!(
        "SELECT count(*) FROM notification_log WHERE alert_id = '{id}' AND status = 'sent'"
    );
    let logged = within(
        Duration::from_secs(10),
        || async { db.scalar(&sql) },
        |n| *n >= 4,
    )
    .await;
    assert!(
        logged >= 4,
        "trigger and resolve, on Slack and PagerDuty: {logged}"
    );
}

#[actix_web::test]
async fn redis_going_away_fires_redis_down_which_resolves_when_it_is_back() {
    let prefix = test_prefix();
    let proxy = TcpProxy::start(&redis_url());
    let url = proxy.url_for(&redis_url());
    let app = quiet_host(&[
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("REDIS_TIMEOUT_MS", "300"),
    ])
    .await;
    let check = within(
        Duration::from_secs(5),
        || component(&app, "redis"),
        |c| c["status"] == "healthy",
    )
    .await;
    assert_eq!(check["status"], "healthy", "{check}");

    proxy.down();
    let alert = one_alert(&app, "type=REDIS_DOWN", Duration::from_secs(10)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["component"], "redis");
    assert_eq!(alert["severity"], "high");

    proxy.up();
    let a = alert_when(
        &app,
        &text(&alert, "id"),
        Duration::from_secs(15),
        resolved_by_itself,
    )
    .await;
    assert_auto_resolved(&a);
    assert_eq!(
        alerts(&app, "type=REDIS_DOWN").await.len(),
        1,
        "no second alert"
    );
}

/// This process's resident memory and its share of host memory, as the Monitor measured them
/// on its last tick.
async fn rss(app: &TestApp) -> (f64, f64) {
    let sample = within(
        Duration::from_secs(5),
        || async { app.agent("Monitor").await["stats"]["agent"]["last_sample"].clone() },
        |s| s["rss_percent"].as_f64().is_some_and(|p| p > 0.0),
    )
    .await;
    (
        sample["rss_bytes"].as_f64().unwrap(),
        sample["rss_percent"].as_f64().unwrap(),
    )
}

#[actix_web::test]
async fn this_process_growing_past_its_threshold_fires_memory_high_and_freeing_resolves_it() {
    const MIB: f64 = 1024.0 * 1024.0;
    // The tests share this process: the threshold sits 400 MiB over its resident memory now,
    // and the demo's route allocates 1000 MiB more.
    let demo = spawn_triggers();
    let probe = quiet_host(&[]).await;
    let (bytes, percent) = rss(&probe).await;
    drop(probe);
    let host_bytes = bytes * 100.0 / percent;
    let threshold = (bytes + 400.0 * MIB) * 100.0 / host_bytes;
    let threshold_env = format!("{threshold:.4}");
    let app = quiet_host(&[("HEAP_THRESHOLD_PERCENT", &threshold_env)]).await;
    let start = ticks(&app).await;
    within(Duration::from_secs(5), || ticks(&app), |t| *t >= start + 5).await;
    assert!(
        alerts(&app, "type=MEMORY_HIGH").await.is_empty(),
        "under the threshold yet"
    );

    let (status, body) = poke(&app, Method::GET, &format!("{demo}/demo/alloc?mb=1000")).await;
    assert_eq!((status, &body["held_mb"]), (200, &json!(1000)), "{body}");
    let alert = one_alert(&app, "type=MEMORY_HIGH", Duration::from_secs(10)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["component"], "process");
    assert_eq!(alert["labels"], json!({"type": "rss"}));
    assert!(
        alert["value"].as_f64().unwrap() > threshold,
        "{alert} vs {threshold}"
    );
    assert!(
        alert["metadata"]["rss_bytes"].as_f64().unwrap() > bytes + 400.0 * MIB,
        "{alert}"
    );

    let (status, body) = poke(&app, Method::POST, &format!("{demo}/demo/alloc/free")).await;
    assert_eq!((status, body), (200, json!({"released_mb": 1000})));
    let a = alert_when(
        &app,
        &text(&alert, "id"),
        Duration::from_secs(10),
        resolved_by_itself,
    )
    .await;
    assert_auto_resolved(&a);
}

#[actix_web::test]
async fn every_connection_of_a_watched_pool_held_fires_db_pool_exhausted_until_released() {
    let db = TestDb::create();
    let app = spawn_demo_app(QUIET_HOST, Some(&db.url)).await;
    // Eight clients for the demo pool's four connections, each request holding one for 501
    // queries, until the alert fires.
    let stop = Cell::new(false);
    let client = || async {
        while !stop.get() {
            let r = app.get("/demo/n-plus-one?n=500", &[]).await;
            assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        }
    };
    let watch = async {
        let found = within(
            Duration::from_secs(20),
            || alerts(&app, "type=DB_POOL_EXHAUSTED"),
            |a| !a.is_empty(),
        )
        .await;
        stop.set(true);
        found
    };
    let (_, found) = join(join_all((0..8).map(|_| client())), watch).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let alert = &found[0];
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["component"], "database");
    assert_eq!(alert["labels"], json!({"pool": "demo"}));
    assert!(
        alert["severity"] == "critical" || alert["severity"] == "high",
        "{alert}"
    );
    assert_eq!(alert["metadata"]["max_size"], 4, "{alert}");
    assert!(text(alert, "message").contains("pool demo"), "{alert}");

    // The clients are gone: the pool is idle and the alert resolves by itself.
    let a = alert_when(
        &app,
        &text(alert, "id"),
        Duration::from_secs(10),
        resolved_by_itself,
    )
    .await;
    assert_auto_resolved(&a);
}
