//! The data layer against the real Postgres and Redis: the write-behind queue across an
//! outage, the query logger on real queries, the Monitor's database and Redis checks, and the
//! demo's database routes.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use selfheal::store::{AuditRow, Record, Store, StoreOptions, WriterState};

use crate::helpers::{assert_error, eventually, spawn_app, spawn_demo_app, TestApp};
use crate::infra::{redis_url, test_prefix, TcpProxy, TestDb};

fn options(queue_max: usize) -> StoreOptions {
    StoreOptions {
        pool_size: 2,
        timeout: Duration::from_millis(500),
        queue_max,
        batch: 20,
        flush_every: Duration::from_millis(20),
        memory_rows: 1000,
        retention: (0, 0, 0),
        spill_file: None,
        memory_bytes: 1 << 26,
        supervisor: selfheal::config::knobs::defaults(),
    }
}

fn audit(i: usize) -> Record {
    Record::Audit(AuditRow {
        id: Uuid::new_v4(),
        actor: "test".to_owned(),
        action: format!("outage.write.{i}"),
        resource: None,
        resource_id: None,
        details: serde_json::json!({ "i": i }),
        ip_address: None,
        user_agent: None,
        created_at: Utc::now(),
    })
}

/// Poll `check` for up to `secs` seconds (outages need longer than the default deadline).
async fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if check() {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

#[actix_web::test]
async fn writes_queued_during_a_postgres_outage_are_written_once_after_it() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let store = Store::postgres(&db.url_via(&proxy), &options(10_000), Default::default()).unwrap();
    // Migrated and answering before the outage.
    store.write(audit(0));
    assert!(
        store.flush(Duration::from_secs(10)).await,
        "first write lands"
    );

    proxy.down();
    for i in 1..=50 {
        store.write(audit(i));
    }
    assert!(
        within(10, || {
            let w = store.status().writer.unwrap();
            w.state == WriterState::Down && w.queued == 50
        })
        .await,
        "the writer reports Postgres down with the 50 records queued: {:?}",
        store.status()
    );
    // Nothing reached Postgres; reads still answer, from memory, flagged partial.
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 1);
    let read = store.audit(100).await;
    assert!(read.partial);
    assert_eq!(read.source, "memory");
    assert_eq!(read.data.len(), 51);

    proxy.up();
    assert!(
        store.flush(Duration::from_secs(15)).await,
        "the queue drains once Postgres is back: {:?}",
        store.status()
    );
    // Every queued record written exactly once.
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 51);
    assert_eq!(
        db.scalar("SELECT count(DISTINCT action) FROM admin_audit_logs"),
        51
    );
    let w = store.status().writer.unwrap();
    assert_eq!(
        (w.state, w.queued, w.written, w.overflow),
        (WriterState::Up, 0, 51, 0)
    );
    let read = store.audit(100).await;
    assert!(!read.partial);
    assert_eq!(read.source, "postgres");
    assert_eq!(read.data.len(), 51);
}

#[actix_web::test]
async fn a_full_queue_refuses_and_counts_what_it_cannot_hold() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let store = Store::postgres(&db.url_via(&proxy), &options(10), Default::default()).unwrap();
    store.write(audit(0));
    assert!(store.flush(Duration::from_secs(10)).await);
    proxy.down();
    for i in 1..=15 {
        store.write(audit(i));
    }
    assert!(
        within(10, || {
            let w = store.status().writer.unwrap();
            w.queued == 10 && w.overflow == 5
        })
        .await,
        "10 held, 5 refused and counted: {:?}",
        store.status()
    );
    proxy.up();
    assert!(store.flush(Duration::from_secs(15)).await);
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 11);
    assert_eq!(store.status().writer.unwrap().overflow, 5);
}

/// Host rules off, so the overall verdict depends on the dependency under test only (the
/// machine running the suite may well be busy).
const QUIET_HOST: &[(&str, &str)] = &[
    ("CPU_THRESHOLD_PERCENT", "0"),
    ("MEMORY_THRESHOLD_PERCENT", "0"),
    ("DISK_THRESHOLD_PERCENT", "0"),
    ("HEAP_THRESHOLD_PERCENT", "0"),
];

async fn component(app: &TestApp, name: &str) -> Value {
    let r = app.admin_get("/api/v1/system/health/detailed").await;
    assert_eq!(r.status, 200);
    r.data()["components"][name].clone()
}

#[actix_web::test]
async fn health_shows_the_database_down_during_an_outage_and_healthy_after() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let url = db.url_via(&proxy);
    let mut env = QUIET_HOST.to_vec();
    env.extend([("DATABASE_URL", url.as_str()), ("DB_TIMEOUT_MS", "300")]);
    let app = spawn_app(&env).await;
    let check = eventually(|| component(&app, "database"), |c| c["status"] == "healthy").await;
    assert_eq!(check["status"], "healthy", "{check}");
    assert!(check["value"].as_f64().unwrap() > 0.0, "SELECT 1 is timed");
    let pools = check["details"]["pools"].as_array().unwrap();
    assert!(pools
        .iter()
        .any(|p| p["name"] == "selfheal" && p["max_size"].as_u64() == Some(10)));

    proxy.down();
    let down = eventually(|| component(&app, "database"), |c| c["status"] == "down").await;
    assert_eq!(down["status"], "down", "database check goes down: {down}");
    assert!(down["message"]
        .as_str()
        .unwrap()
        .contains("does not answer"));
    let r = app.admin_get("/api/v1/system/health/detailed").await;
    assert_eq!(r.data()["overall"], "critical");
    // The system keeps serving meanwhile.
    assert_eq!(app.get("/health", &[]).await.status, 200);

    proxy.up();
    let back = eventually(|| component(&app, "database"), |c| c["status"] == "healthy").await;
    assert_eq!(back["status"], "healthy", "reconnected by itself: {back}");
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn queries(app: &TestApp, query: &str) -> Value {
    let r = app
        .admin_get(&format!("/api/v1/system/queries{query}"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.data().clone()
}

fn top_entry<'a>(report: &'a Value, needle: &str) -> Option<&'a Value> {
    report["top"]
        .as_array()?
        .iter()
        .find(|q| q["query"].as_str().is_some_and(|t| t.contains(needle)))
}

#[actix_web::test]
async fn the_query_logger_fingerprints_times_and_links_queries_to_their_request() {
    let db = TestDb::create();
    let app = spawn_demo_app(&[], Some(&db.url)).await;
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let r = app
        .get("/demo/n-plus-one?n=5", &[("traceparent", &traceparent)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["queries"], 6);

    // The request's six queries, linked by its trace id: one list query, then five lookups.
    let by_trace = format!("?trace_id={TRACE}");
    let report = eventually(
        || queries(&app, &by_trace),
        |q| q["trace"].as_array().is_some_and(|t| t.len() == 6),
    )
    .await;
    let trace = report["trace"].as_array().unwrap();
    assert_eq!(trace.len(), 6, "{report}");
    assert!(trace.iter().all(|q| q["trace_id"] == TRACE));
    let lookup_id = &trace[1]["id"];
    assert!(
        trace[1..].iter().all(|q| &q["id"] == lookup_id),
        "one fingerprint for the N lookups"
    );
    assert_ne!(&trace[0]["id"], lookup_id);
    assert!(trace
        .iter()
        .all(|q| q["duration_ms"].as_f64().unwrap() > 0.0));

    // Per-fingerprint stats: constants normalised, five calls of the lookup.
    let lookup = top_entry(&report, "WHERE (\"demo_orders\".\"id\" = ?)").expect("the lookup");
    assert_eq!(lookup["calls"], 5);
    assert_eq!(&lookup["id"], lookup_id);
    for field in ["total_ms", "mean_ms", "p95_ms", "max_ms"] {
        assert!(lookup[field].as_f64().unwrap() > 0.0, "{field}: {lookup}");
    }
    assert!(lookup["last_seen"].is_string());

    // Two customers, one statement; the unindexed filter is measurably slower than the
    // primary-key lookups (a sequential scan of 200 000 rows).
    for customer in [1, 2] {
        let r = app
            .get(&format!("/demo/orders?customer={customer}"), &[])
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["count"], 40);
    }
    let report = eventually(
        || queries(&app, ""),
        |q| top_entry(q, "\"customer_id\" = ?").is_some_and(|e| e["calls"] == 2),
    )
    .await;
    let scan = top_entry(&report, "\"customer_id\" = ?").unwrap();
    assert_eq!(scan["calls"], 2, "{report}");
    let lookup = top_entry(&report, "WHERE (\"demo_orders\".\"id\" = ?)").unwrap();
    assert!(
        scan["mean_ms"].as_f64().unwrap() > 3.0 * lookup["mean_ms"].as_f64().unwrap(),
        "scan {scan} vs lookup {lookup}"
    );
    // The pools: selfheal's own and the demo's, with deadpool's figures.
    let pools = report["pools"].as_array().unwrap();
    let demo = pools
        .iter()
        .find(|p| p["name"] == "demo")
        .expect("the demo pool is watched");
    assert_eq!(demo["max_size"], 4);
    assert!(demo["size"].as_u64().unwrap() >= 1);
    assert!(report["fingerprints"]["total_queries"].as_u64().unwrap() >= 8);
}

#[actix_web::test]
async fn slow_and_failing_queries_are_reported_and_slow_ones_published() {
    let db = TestDb::create();
    let app = spawn_demo_app(&[("DB_SLOW_QUERY_MS", "1")], Some(&db.url)).await;
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let r = app
        .get("/demo/orders?customer=9", &[("traceparent", &traceparent)])
        .await;
    assert_eq!(r.status, 200);
    let report = eventually(
        || queries(&app, ""),
        |q| {
            q["slow"]
                .as_array()
                .is_some_and(|s| s.iter().any(|e| e["trace_id"] == TRACE))
        },
    )
    .await;
    let slow = report["slow"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["trace_id"] == TRACE)
        .expect("the scan is a slow query");
    assert!(slow["query"].as_str().unwrap().contains("customer_id"));
    assert!(slow["duration_ms"].as_f64().unwrap() >= 1.0);
    let events = eventually(
        || app.events("metric"),
        |e| e.iter().any(|e| e["data"]["type"] == "SLOW_QUERY"),
    )
    .await;
    let event = events
        .iter()
        .find(|e| e["data"]["type"] == "SLOW_QUERY" && e["data"]["query"]["trace_id"] == TRACE)
        .expect("a SLOW_QUERY event for the request");
    assert_eq!(event["data"]["query"]["threshold_ms"], 1);
    assert_eq!(event["data"]["query"]["id"], slow["id"]);

    // A failing query on a host pool built with the logger: counted as an error, with its text.
    let pool = diesel_async::pooled_connection::deadpool::Pool::builder(
        app.selfheal().query_logger().manager(&db.url),
    )
    .max_size(1)
    .build()
    .unwrap();
    let mut conn = pool.get().await.unwrap();
    let failed = diesel_async::RunQueryDsl::execute(
        diesel::sql_query("SELECT * FROM no_such_table WHERE id = 42"),
        &mut conn,
    )
    .await;
    assert!(failed.is_err());
    let report = eventually(
        || queries(&app, ""),
        |q| q["errors"].as_array().is_some_and(|e| !e.is_empty()),
    )
    .await;
    let error = &report["errors"][0];
    assert_eq!(error["query"], "SELECT * FROM no_such_table WHERE id = ?");
    assert!(
        error["error"].as_str().unwrap().contains("no_such_table"),
        "{error}"
    );
    let entry = top_entry(&report, "no_such_table").unwrap();
    assert_eq!(
        (entry["calls"].as_u64(), entry["errors"].as_u64()),
        (Some(1), Some(1))
    );
}

#[actix_web::test]
async fn demo_database_routes_validate_input_and_need_a_database() {
    let app = spawn_demo_app(&[], None).await;
    let r = app.get("/demo/orders?customer=1", &[]).await;
    assert_error(&r, 503, "UNAVAILABLE");
    let r = app.get("/demo/n-plus-one?n=3", &[]).await;
    assert_error(&r, 503, "UNAVAILABLE");

    let db = TestDb::create();
    let app = spawn_demo_app(&[], Some(&db.url)).await;
    assert_eq!(db.scalar("SELECT count(*) FROM demo_orders"), 200_000);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'demo_orders' AND indexdef LIKE '%customer_id%'"),
        0,
        "customer_id stays unindexed"
    );
    for bad in [
        "",
        "?customer=",
        "?customer=abc",
        "?customer=-4",
        "?customer=99999999999",
        "?customer=1&customer=2",
    ] {
        let r = app.get(&format!("/demo/orders{bad}"), &[]).await;
        assert_error(&r, 400, "BAD_REQUEST");
    }
    for bad in ["?n=0", "?n=501", "?n=x"] {
        let r = app.get(&format!("/demo/n-plus-one{bad}"), &[]).await;
        assert_error(&r, 400, "BAD_REQUEST");
    }
    let r = app.get("/demo/orders?customer=4999999", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.body["count"].as_u64()),
        (200, Some(0))
    );
}

#[actix_web::test]
async fn queries_route_rejects_a_malformed_trace_id() {
    let app = spawn_app(&[]).await;
    for bad in [
        "abc",
        "zz92f3577b34da6a3ce929d0e0e4736z",
        "4bf92f3577b34da6a3ce929d0e0e47361",
    ] {
        let r = app
            .admin_get(&format!("/api/v1/system/queries?trace_id={bad}"))
            .await;
        assert_error(&r, 400, "BAD_REQUEST");
    }
    let r = app.admin_get("/api/v1/system/queries?limit=0").await;
    assert_error(&r, 400, "BAD_REQUEST");
    for bad in [
        "",
        "?name=",
        "?name=cpu%00usage",
        "?name=cpu&since=yesterday",
        "?name=cpu&limit=0",
    ] {
        let r = app
            .admin_get(&format!("/api/v1/system/metrics/history{bad}"))
            .await;
        assert_error(&r, 400, "BAD_REQUEST");
    }
    // Standalone: no pools, nothing recorded, still a full answer.
    let r = app.admin_get("/api/v1/system/queries").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["pools"], serde_json::json!([]));
    assert_eq!(r.data()["top"], serde_json::json!([]));
}

async fn exists(redis: &selfheal::redis::RedisHandle, key: &str) -> bool {
    let mut cmd = deadpool_redis::redis::cmd("EXISTS");
    cmd.arg(key);
    redis.query::<i64>(&cmd).await.unwrap() == 1
}

#[actix_web::test]
async fn redis_down_degrades_the_verdict_and_it_reconnects_by_itself() {
    let prefix = test_prefix();
    let proxy = TcpProxy::start(&redis_url());
    let url = proxy.url_for(&redis_url());
    let mut env = QUIET_HOST.to_vec();
    env.extend([
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("REDIS_TIMEOUT_MS", "300"),
    ]);
    let app = spawn_app(&env).await;
    let check = eventually(|| component(&app, "redis"), |c| c["status"] == "healthy").await;
    assert_eq!(check["status"], "healthy", "{check}");
    assert!(check["value"].as_f64().unwrap() > 0.0, "PING is timed");
    assert!(check["details"]["memory"]["used_bytes"].as_u64().unwrap() > 0);

    // The heartbeat is the key selfheal writes, under the configured prefix only.
    let direct =
        selfheal::redis::RedisHandle::new(&redis_url(), &prefix, 1, Duration::from_secs(2))
            .unwrap();
    let key = format!("{prefix}instance:{}", app.selfheal().instance_id());
    let written = eventually(|| exists(&direct, &key), |e| *e).await;
    assert!(written, "heartbeat {key} exists");
    let mut scan = deadpool_redis::redis::cmd("KEYS");
    scan.arg(format!("*{}*", app.selfheal().instance_id()));
    let keys: Vec<String> = direct.query(&scan).await.unwrap();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with(&prefix)),
        "{keys:?}"
    );

    proxy.down();
    let down = eventually(|| component(&app, "redis"), |c| c["status"] == "down").await;
    assert_eq!(down["status"], "down", "{down}");
    let r = app.admin_get("/api/v1/system/health/detailed").await;
    assert_eq!(
        r.data()["overall"],
        "degraded",
        "Redis is optional: degraded, not critical"
    );
    assert_eq!(app.get("/health", &[]).await.status, 200, "still serving");

    proxy.up();
    let back = eventually(|| component(&app, "redis"), |c| c["status"] == "healthy").await;
    assert_eq!(back["status"], "healthy", "reconnected by itself: {back}");
    let mut del = deadpool_redis::redis::cmd("DEL");
    del.arg(&key);
    let _: i64 = direct.query(&del).await.unwrap();
}

/// A fresh journal path in the temp directory.
fn temp_journal(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("selfheal-{tag}-{}.jsonl", Uuid::new_v4().simple()))
}

/// The app on `url` with `journal` as its `DB_SPILL_FILE`, once its writer has reached
/// Postgres.
async fn spawn_journaled(url: &str, journal: &std::path::Path) -> TestApp {
    let journal = journal.to_string_lossy().into_owned();
    let app = spawn_app(&[
        ("DATABASE_URL", url),
        ("DB_TIMEOUT_MS", "300"),
        ("DB_SPILL_FILE", journal.as_str()),
    ])
    .await;
    let up = eventually(
        || async { app.selfheal().store.status().writer.unwrap().state },
        |s| *s == WriterState::Up,
    )
    .await;
    assert_eq!(up, WriterState::Up);
    app
}

#[actix_web::test]
async fn records_postgres_cannot_take_at_shutdown_are_saved_and_written_at_the_next_start() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let url = db.url_via(&proxy);
    let spill = temp_journal("spill");
    let app = spawn_journaled(&url, &spill).await;

    proxy.down();
    let r = app
        .admin_post("/api/v1/system/agents/monitor/restart", Vec::new())
        .await;
    assert_eq!(r.status, 200);
    app.selfheal().shutdown().await;
    drop(app);
    let saved = std::fs::read_to_string(&spill).expect("the spill file was written");
    assert!(saved.contains("agent.restart"), "{saved}");
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 0);

    proxy.up();
    let app = spawn_journaled(&url, &spill).await;
    let entries = eventually(
        || async {
            let r = app.admin_get("/api/v1/system/audit").await;
            r.data().clone()
        },
        |d| d["partial"] == false && d["entries"].as_array().is_some_and(|e| !e.is_empty()),
    )
    .await;
    assert_eq!(
        entries["entries"][0]["action"], "agent.restart",
        "{entries}"
    );
    assert_eq!(entries["entries"][0]["resource_id"], "monitor");
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 1);
    let left = eventually(|| async { spill.exists() }, |e| !*e).await;
    assert!(
        !left,
        "the spill file is removed once its records are written"
    );
}

#[actix_web::test]
async fn a_row_postgres_refuses_is_dropped_and_counted_without_blocking_the_rest() {
    let db = TestDb::create();
    let store = Store::postgres(&db.url, &options(1000), Default::default()).unwrap();
    let mut poison = audit(1);
    if let Record::Audit(row) = &mut poison {
        // Postgres text cannot hold a NUL byte: the row is invalid, the server is fine.
        row.actor = "bad\0actor".to_owned();
    }
    store.write(audit(0));
    store.write(poison);
    store.write(audit(2));
    assert!(
        store.flush(Duration::from_secs(10)).await,
        "{:?}",
        store.status()
    );
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 2);
    let w = store.status().writer.unwrap();
    assert_eq!(
        (w.state, w.written, w.rejected, w.queued),
        (WriterState::Up, 2, 1, 0)
    );
    assert!(w.last_error.unwrap().contains("admin_audit_logs"));
    // The queue keeps flowing.
    store.write(audit(3));
    assert!(store.flush(Duration::from_secs(10)).await);
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 3);
}

#[actix_web::test]
async fn a_query_abandoned_mid_flight_does_not_inflate_the_next_checkouts_timings() {
    let db = TestDb::create();
    let app = spawn_app(&[]).await;
    // A host pool of one connection with the logger: every checkout reuses it.
    let pool = diesel_async::pooled_connection::deadpool::Pool::builder(
        app.selfheal().query_logger().manager(&db.url),
    )
    .max_size(1)
    .build()
    .unwrap();
    {
        let mut conn = pool.get().await.unwrap();
        let abandoned = actix_web::rt::time::timeout(
            Duration::from_millis(30),
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query("SELECT pg_sleep(0.2)"),
                &mut conn,
            ),
        )
        .await;
        assert!(abandoned.is_err(), "the query was abandoned by the timeout");
    }
    // Let the server finish the abandoned statement; then a quick query on a new checkout.
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let mut conn = pool.get().await.unwrap();
    diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT 42 AS answer"), &mut conn)
        .await
        .unwrap();
    drop(conn);
    let report = eventually(
        || queries(&app, ""),
        |q| top_entry(q, "AS answer").is_some(),
    )
    .await;
    let quick = top_entry(&report, "AS answer").expect("the quick query is recorded");
    assert_eq!(quick["calls"], 1);
    assert!(
        quick["max_ms"].as_f64().unwrap() < 150.0,
        "timed from its own start, not the abandoned one's (≥ 430 ms ago): {quick}"
    );
}

#[actix_web::test]
async fn a_crash_during_an_outage_loses_no_queued_record() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let url = db.url_via(&proxy);
    let journal = temp_journal("journal");
    let app = spawn_journaled(&url, &journal).await;

    proxy.down();
    for _ in 0..3 {
        let r = app
            .admin_post("/api/v1/system/agents/monitor/restart", Vec::new())
            .await;
        assert_eq!(r.status, 200);
    }
    // The three audit rows, and whatever the outage's own alert (DB_CONNECTION_ERROR) queued.
    let down = eventually(
        || async { app.selfheal().store.status().writer.unwrap() },
        |w| w.state == WriterState::Down && w.queued >= 3,
    )
    .await;
    assert_eq!(down.state, WriterState::Down);
    assert!(down.queued >= 3, "{down:?}");
    // One more while down: journaled as it arrives.
    let r = app
        .admin_post("/api/v1/system/agents/monitor/restart", Vec::new())
        .await;
    assert_eq!(r.status, 200);
    let journaled = eventually(
        || async {
            std::fs::read_to_string(&journal)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(r#""table":"audit""#))
                .count()
        },
        |n| *n >= 4,
    )
    .await;
    assert!(journaled >= 4, "all four audit records are on disk");
    // The crash: no shutdown, the process's actors just vanish.
    drop(app);

    proxy.up();
    let app = spawn_journaled(&url, &journal).await;
    let audit = eventually(
        || async { app.admin_get("/api/v1/system/audit").await.data().clone() },
        |d| d["partial"] == false && d["entries"].as_array().is_some_and(|e| e.len() == 4),
    )
    .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 4, "{audit}");
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 4);
    let gone = eventually(|| async { journal.exists() }, |e| !*e).await;
    assert!(!gone, "the journal is removed once its records are written");
}

#[actix_web::test]
async fn a_server_that_refuses_all_writes_is_down_and_loses_nothing() {
    let db = TestDb::create();
    let store = Store::postgres(&db.url, &options(1000), Default::default()).unwrap();
    store.write(audit(0));
    assert!(store.flush(Duration::from_secs(10)).await);

    // A standby after failover, say: connections work, every write is refused.
    db.as_admin(&format!(
        "ALTER DATABASE \"{}\" SET default_transaction_read_only = on",
        db.name
    ));
    db.kick_sessions();
    for i in 1..=5 {
        store.write(audit(i));
    }
    assert!(
        within(10, || {
            let w = store.status().writer.unwrap();
            // (The first failure may be the kicked session itself.)
            w.state == WriterState::Down
                && w.queued == 5
                && w.last_error.is_some_and(|e| e.contains("read-only"))
        })
        .await,
        "refused by the server, not the rows: down, all kept: {:?}",
        store.status()
    );
    let w = store.status().writer.unwrap();
    assert_eq!(w.rejected, 0, "nothing counted against the rows");
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 1);

    db.as_admin(&format!(
        "ALTER DATABASE \"{}\" RESET default_transaction_read_only",
        db.name
    ));
    db.kick_sessions();
    assert!(
        store.flush(Duration::from_secs(15)).await,
        "{:?}",
        store.status()
    );
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 6);
    let w = store.status().writer.unwrap();
    assert_eq!((w.state, w.written, w.rejected), (WriterState::Up, 6, 0));
}

#[actix_web::test]
async fn a_batch_larger_than_postgres_parameter_limit_is_written() {
    let db = TestDb::create();
    let mut o = options(10_000);
    o.batch = 5_000;
    // Only the flush below writes: one batch of all 4 500 (and time for it on a busy machine).
    o.flush_every = Duration::from_secs(60);
    o.timeout = Duration::from_secs(10);
    let store = Store::postgres(&db.url, &o, Default::default()).unwrap();
    let start = Utc::now();
    // 4 500 rows × 17 columns = 76 500 parameters: more than one statement may carry.
    for i in 0..4_500i64 {
        store.write(Record::HealthMetric(selfheal::store::HealthMetricRow {
            id: Uuid::new_v4(),
            metric_name: "bulk".to_owned(),
            metric_value: i as f64,
            metric_unit: Some("ms".to_owned()),
            component: "system".to_owned(),
            severity: "normal".to_owned(),
            tags: serde_json::json!({}),
            bucket_start: start + chrono::Duration::minutes(i),
            bucket_seconds: 60,
            sample_count: 1,
            min_value: 0.0,
            max_value: 1.0,
            p50: 0.5,
            p95: 0.9,
            p99: 1.0,
            instance_id: Uuid::nil(),
            created_at: start,
        }));
    }
    assert!(
        store.flush(Duration::from_secs(30)).await,
        "{:?}",
        store.status()
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM system_health_metrics"),
        4_500
    );
    let w = store.status().writer.unwrap();
    assert_eq!((w.written, w.failures, w.rejected), (4_500, 0, 0));
}

fn poison(i: usize) -> Record {
    let mut r = audit(i);
    if let Record::Audit(row) = &mut r {
        row.actor = format!("bad\0actor {i}");
    }
    r
}

#[actix_web::test]
async fn a_batch_of_nothing_but_bad_rows_neither_stalls_the_writer_nor_takes_it_down() {
    let db = TestDb::create();
    let store = Store::postgres(&db.url, &options(1000), Default::default()).unwrap();
    store.write(audit(0));
    assert!(store.flush(Duration::from_secs(10)).await);
    // A whole batch (20) of rows Postgres cannot store, then good ones behind them.
    for i in 1..=20 {
        store.write(poison(i));
    }
    for i in 21..=25 {
        store.write(audit(i));
    }
    assert!(
        store.flush(Duration::from_secs(15)).await,
        "{:?}",
        store.status()
    );
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 6);
    let w = store.status().writer.unwrap();
    assert_eq!(
        (w.state, w.queued, w.rejected, w.failures),
        (WriterState::Up, 0, 20, 0),
        "the rows were the problem, not the server: {w:?}"
    );
}

#[actix_web::test]
async fn rows_refused_for_a_while_are_retried_with_a_delay_before_being_given_up() {
    let db = TestDb::create();
    let mut o = options(1000);
    o.flush_every = Duration::from_millis(400);
    let store = Store::postgres(&db.url, &o, Default::default()).unwrap();
    store.write(audit(0));
    assert!(store.flush(Duration::from_secs(10)).await);
    // One table refuses inserts for a moment; the server accepts other writes meanwhile.
    db.execute(
        "CREATE FUNCTION refuse_for_now() RETURNS trigger AS $$ \
         BEGIN RAISE EXCEPTION 'refused for now'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_for_now BEFORE INSERT ON admin_audit_logs \
         FOR EACH ROW EXECUTE FUNCTION refuse_for_now();",
    );
    for i in 1..=5 {
        store.write(audit(i));
    }
    assert!(
        within(10, || store
            .status()
            .writer
            .unwrap()
            .last_error
            .is_some_and(|e| e.contains("refused for now")))
        .await,
        "{:?}",
        store.status()
    );
    db.execute("DROP TRIGGER refuse_for_now ON admin_audit_logs;");
    assert!(
        store.flush(Duration::from_secs(15)).await,
        "{:?}",
        store.status()
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM admin_audit_logs"),
        6,
        "retried after a delay, not dropped at once"
    );
    let w = store.status().writer.unwrap();
    assert_eq!((w.state, w.rejected), (WriterState::Up, 0));
}

#[actix_web::test]
async fn the_journal_is_compacted_as_the_backlog_drains_under_steady_writes() {
    let db = TestDb::create();
    let proxy = TcpProxy::start(&db.url);
    let journal = temp_journal("compact");
    let mut o = options(10_000);
    o.batch = 50;
    o.spill_file = Some(journal.clone());
    let store = Store::postgres(&db.url_via(&proxy), &o, Default::default()).unwrap();
    store.write(audit(0));
    assert!(store.flush(Duration::from_secs(10)).await);

    proxy.down();
    for i in 1..=500 {
        store.write(audit(i));
    }
    assert!(
        within(10, || store.status().writer.unwrap().state
            == WriterState::Down)
        .await,
        "{:?}",
        store.status()
    );
    proxy.up();
    // Steady traffic while the backlog drains: the queue is seldom empty.
    for round in 0..60 {
        for i in 0..5 {
            store.write(audit(1_000 + round * 5 + i));
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    let queued = store.status().writer.unwrap().queued;
    let lines = std::fs::read_to_string(&journal)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    // Compacted whenever it exceeds twice the pending records (plus 64): never all 801.
    assert!(
        lines < 801 && lines <= 2 * queued + 64 + 50,
        "the journal holds about the pending records, not all ever queued: {lines} lines, {:?}",
        store.status()
    );
    assert!(
        store.flush(Duration::from_secs(15)).await,
        "{:?}",
        store.status()
    );
    assert_eq!(db.scalar("SELECT count(*) FROM admin_audit_logs"), 801);
    let gone = eventually(|| async { journal.exists() }, |e| !*e).await;
    assert!(!gone, "removed once drained");
}
