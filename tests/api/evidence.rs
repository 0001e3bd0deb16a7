//! Evidence for diagnosis, kept bounded: the log ring (`/logs`) and the slow-request ring
//! (`/traces/slow`), each found by what a diagnosis starts from (a trace id, a route) and each
//! at its cap under load.

use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{
    capture_logs, encode, eventually, spawn_demo_app, spawn_host_app, TestApp, LOG_RING,
};
use crate::infra::{redis_url, TestDb};

/// The log ring's capacity in every test of this binary (`DIAGNOSTIC_MAX_LOGS`' default; no
/// test sets another, since the ring is the process's).
const LOG_CAP: usize = 1_000;

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// `/traces/slow` with `query`.
async fn slow(app: &TestApp, query: &str) -> Value {
    app.admin_get(&format!("/api/v1/system/traces/slow?{query}"))
        .await
        .data()
        .clone()
}

#[actix_web::test]
async fn a_warning_is_found_at_logs_by_the_trace_id_of_its_request() {
    let _ring = LOG_RING.lock().await;
    capture_logs();
    let app = spawn_host_app(&[]).await;
    // A refused admin request is logged (the first of a minute) inside its request.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let reply = app
        .get(
            "/api/v1/system/health",
            &[
                ("authorization", "Bearer wrong-token-of-some-length"),
                ("traceparent", traceparent.as_str()),
            ],
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text);

    let path = format!("/api/v1/system/logs?trace_id={trace_id}");
    let found = eventually(
        || async { app.admin_get(&path).await.data().clone() },
        |d| !list(&d["lines"]).is_empty(),
    )
    .await;
    let lines = list(&found["lines"]);
    assert_eq!(lines.len(), 1, "{found}");
    assert_eq!(lines[0]["level"], "WARN", "{found}");
    assert_eq!(lines[0]["trace_id"], trace_id, "{found}");
    let message = lines[0]["message"].as_str().unwrap_or("");
    assert!(message.contains("without a valid token"), "{message}");
    assert!(
        !message.contains("wrong-token"),
        "the token was logged: {message}"
    );
    assert_eq!(found["capturing"], true, "{found}");
    assert_eq!(found["capacity"], LOG_CAP, "{found}");

    // Filters: by level, and bad input is a 400.
    let errors = app
        .admin_get(&format!(
            "/api/v1/system/logs?level=error&trace_id={trace_id}"
        ))
        .await;
    assert_eq!(list(&errors.data()["lines"]), Vec::<Value>::new());
    for bad in [
        "level=info",
        "limit=0",
        "limit=x",
        "trace_id=xyz",
        "trace_id=%00",
    ] {
        let reply = app.admin_get(&format!("/api/v1/system/logs?{bad}")).await;
        crate::helpers::assert_error(&reply, 400, "BAD_REQUEST");
    }
}

#[actix_web::test]
async fn the_log_ring_stays_at_its_cap_under_a_flood_of_warnings() {
    let _ring = LOG_RING.lock().await;
    capture_logs();
    let app = spawn_host_app(&[]).await;
    let before = app.admin_get("/api/v1/system/logs?limit=1").await.data()["total"]
        .as_u64()
        .unwrap_or(0);
    // Four threads, 3 000 lines each, with newlines to escape and a long tail to cut.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..3_000 {
                    log::warn!(target: "flood", "line {t}/{i}\nforged: line{}", "x".repeat(50));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a flooding thread");
    }
    let data = app
        .admin_get("/api/v1/system/logs?limit=10000")
        .await
        .data()
        .clone();
    let lines = list(&data["lines"]);
    assert_eq!(lines.len(), LOG_CAP, "capacity {}", data["capacity"]);
    assert!(
        data["total"].as_u64().unwrap_or(0) >= before + 12_000,
        "{}",
        data["total"]
    );
    let flood = lines
        .iter()
        .filter(|l| l["target"] == "flood")
        .collect::<Vec<_>>();
    assert!(!flood.is_empty());
    for l in flood {
        let m = l["message"].as_str().unwrap_or("");
        assert!(!m.contains('\n'), "an unescaped newline: {m:?}");
        assert!(m.contains("\\nforged"), "{m:?}");
    }
}

#[actix_web::test]
async fn a_slow_request_is_kept_with_its_trace_and_the_queries_it_ran() {
    let db = TestDb::create();
    let redis = redis_url();
    let app = spawn_demo_app(
        &[
            ("TRACE_SLOW_THRESHOLD_MS", "1"),
            ("REDIS_URL", redis.as_str()),
        ],
        Some(&db.url),
    )
    .await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    let reply = app
        .get(
            "/demo/n-plus-one?n=20",
            &[("traceparent", traceparent.as_str())],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let query = format!("route={}", encode("/demo/n-plus-one"));
    let data = eventually(|| slow(&app, &query), |d| !list(&d["requests"]).is_empty()).await;
    let requests = list(&data["requests"]);
    assert_eq!(requests.len(), 1, "{data}");
    let r = &requests[0];
    assert_eq!(r["w3c_trace_id"], trace_id, "{r}");
    assert_eq!(r["method"], "GET", "{r}");
    assert_eq!(r["route"], "/demo/n-plus-one", "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["duration_ms"].as_f64() > Some(1.0), "{r}");
    assert_eq!(
        r["queries"], 21,
        "one query for the ids, then one per id: {r}"
    );
    let query_ms = r["query_ms"].as_f64().unwrap_or(0.0);
    assert!(
        query_ms > 0.0 && query_ms <= r["duration_ms"].as_f64().unwrap_or(0.0),
        "{r}"
    );
    let logged = list(&r["logged_queries"]);
    assert_eq!(logged.len(), 21, "{r}");
    assert!(logged.iter().all(|q| q["trace_id"] == trace_id), "{r}");
    // The link leads to the same queries through `/queries`.
    let link = r["queries_link"].as_str().expect("a queries_link");
    let linked = app.admin_get(link).await;
    assert_eq!(list(&linked.data()["trace"]).len(), 21, "{}", linked.text);

    // Other routes are not listed under this one; a bad route filter is a 400.
    let other = slow(&app, &format!("route={}", encode("/demo/slow"))).await;
    assert_eq!(list(&other["requests"]), Vec::<Value>::new());
    let bad = app.admin_get("/api/v1/system/traces/slow?route=%00").await;
    crate::helpers::assert_error(&bad, 400, "BAD_REQUEST");
    let bad = app.admin_get("/api/v1/system/traces/slow?limit=-1").await;
    crate::helpers::assert_error(&bad, 400, "BAD_REQUEST");
}

#[actix_web::test]
async fn the_slow_ring_keeps_a_bounded_number_per_route_under_load() {
    // The test's own calls to the system routes are not traced: on a busy machine one of them
    // could take 5 ms too.
    let app = spawn_host_app(&[
        ("TRACE_SLOW_THRESHOLD_MS", "5"),
        ("TRACE_EXCLUDE_PATHS", "/health,/api/v1/system"),
    ])
    .await;
    // 100 slow requests, 20 at a time.
    for _ in 0..5 {
        let batch = (0..20).map(|_| app.get("/sleep/10", &[]));
        for reply in join_all(batch).await {
            assert_eq!(reply.status, 200);
        }
    }
    let query = format!("route={}&limit=1000", encode("/sleep/{ms}"));
    let data = eventually(|| slow(&app, &query), |d| d["total"].as_u64() >= Some(100)).await;
    assert_eq!(data["total"], 100, "{}", data["total"]);
    let per_route = data["per_route"].as_u64().expect("per_route") as usize;
    assert_eq!(list(&data["requests"]).len(), per_route, "{data}");
    assert_eq!(data["kept"], per_route, "{}", data["kept"]);
    // The newest first.
    let at: Vec<String> = list(&data["requests"])
        .iter()
        .map(|r| r["at"].as_str().unwrap_or("").to_owned())
        .collect();
    let mut sorted = at.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(at, sorted);

    // One SLOW_REQUEST event per route and second, carrying the count: not one per request.
    let slow_events = || async {
        app.events("metric")
            .await
            .into_iter()
            .filter(|e| e["data"]["type"] == "SLOW_REQUEST")
            .filter(|e| e["data"]["trace"]["route"] == "/sleep/{ms}")
            .collect::<Vec<_>>()
    };
    let count = |events: &Vec<Value>| -> u64 {
        events
            .iter()
            .map(|e| e["data"]["count"].as_u64().unwrap_or(0))
            .sum()
    };
    let events = eventually(slow_events, |e| count(e) >= 100).await;
    let counted = count(&events);
    assert_eq!(counted, 100, "{events:?}");
    assert!(
        events.len() <= 10,
        "{} events for 100 slow requests",
        events.len()
    );
}
