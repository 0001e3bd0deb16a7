//! Hardening (issue 9, section 9), proven through the running server as an attacker would
//! probe it:
//! - made-up HTTP methods cannot blind monitoring: they share one `OTHER` label, requests to
//!   no route or with an unknown method stop short of the quarter of `METRICS_MAX_SERIES`
//!   kept for matched routes, and refused samples are logged, alerted
//!   (`METRICS_CARDINALITY`) and make the verdict `degraded`;
//! - nothing is accepted and then dropped: a NUL in a stored text is refused with 422 before
//!   anything is kept, bad filters are a 400, texts over their limit (and an `X-Admin-User`
//!   that is not visible text) are refused, and every accepted row and every audit row
//!   (refused actions too, with their outcome) reaches Postgres;
//! - auth: the scheme in any case, the token as sent (not trimmed), failed attempts counted,
//!   a configured token shorter than 16 characters refused;
//! - routes: `HEAD /health`, a JSON 404 for every unknown path, a JSON 405 where the path
//!   exists;
//! - a burst of admin restarts is one event, not thirty, so the history keeps the rest;
//! - an external check's circuit breaker opens and shows in `/health/detailed`.
//!
//! Proven elsewhere, not repeated here: the in-memory tables' byte cap and deleted rows
//! (`src/store/memory.rs`), the spill journal's modes (`src/store/writer/journal.rs`), log
//! escaping (`src/text.rs`).

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::Method;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::alerts::{alerts, one_alert, quiet_host, send_json, slow_requests, within, QUIET_HOST};
use crate::helpers::{
    assert_error, capture_logs, eventually, spawn_app, spawn_demo_app, spawn_host_app, Reply,
    TestApp,
};
use crate::infra::TestDb;

/// The method labels a latency series may carry: the nine standard methods and `OTHER`.
const METHOD_LABELS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];
/// The status class labels a latency series may carry.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// The `api_response_time` series of the last minute.
async fn latency_series(app: &TestApp) -> Vec<Value> {
    let reply = app
        .admin_get("/api/v1/system/metrics?name=api_response_time&window=1m")
        .await;
    list(&reply.data()["series"])
}

/// The metrics store's figures (`data.store` of `/metrics`).
async fn store_stats(app: &TestApp) -> Value {
    app.admin_get("/api/v1/system/metrics").await.data()["store"].clone()
}

/// Samples of the series whose `method` tag is `method`.
fn count_of(series: &[Value], method: &str) -> u64 {
    series
        .iter()
        .filter(|s| s["tags"]["method"] == method)
        .map(|s| s["count"].as_u64().unwrap_or(0))
        .sum()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

// ---- monitoring cannot be blinded ------------------------------------------------------------

#[actix_web::test]
async fn a_thousand_made_up_methods_cannot_blind_monitoring_and_5xx_still_fire_api_error_rate() {
    let mut env = QUIET_HOST.to_vec();
    env.extend([
        ("API_ERROR_RATE_THRESHOLD", "5"),
        ("API_RESPONSE_THRESHOLD_MS", "0"),
    ]);
    // The default cap (1 000 series): the one a flood of made-up methods used to fill.
    let app = spawn_demo_app(&env, None).await;

    // 1 000 distinct made-up methods, half to paths that match no route, half to a real
    // route (which has no such method: 405), 50 at a time.
    let methods: Vec<Method> = (0..1000)
        .map(|i| Method::from_bytes(format!("X{i:04}MADEUP").as_bytes()).expect("a method"))
        .collect();
    for (batch, chunk) in methods.chunks(50).enumerate() {
        let replies = join_all(chunk.iter().enumerate().map(|(j, m)| {
            let app = &app;
            let path = if j % 2 == 0 {
                format!("/made-up/{batch}/{j}")
            } else {
                "/demo/error?status=500".to_owned()
            };
            async move { (m.clone(), app.call(m.clone(), &path, &[], Vec::new()).await) }
        }))
        .await;
        for (m, reply) in replies {
            assert!(
                matches!(reply.status.as_u16(), 404 | 405),
                "{m}: {} {}",
                reply.status,
                reply.text
            );
        }
    }

    // Every one of them is counted, under one label, in two series.
    let series = eventually(
        || latency_series(&app),
        |s: &Vec<Value>| count_of(s, "OTHER") >= 1000,
    )
    .await;
    let shown = Value::Array(series.clone());
    assert_eq!(count_of(&series, "OTHER"), 1000, "{shown}");
    for s in &series {
        let method = s["tags"]["method"].as_str().unwrap_or("");
        assert!(METHOD_LABELS.contains(&method), "method {method:?}: {s}");
        let class = s["tags"]["status_class"].as_str().unwrap_or("");
        assert!(
            STATUS_CLASSES.contains(&class),
            "status class {class:?}: {s}"
        );
    }
    let mut routes: Vec<&str> = series
        .iter()
        .filter_map(|s| s["tags"]["route"].as_str())
        .collect();
    routes.sort_unstable();
    assert_eq!(routes, ["/demo/error", "__unmatched__"], "{shown}");
    // Beside them the store holds only the Monitor's gauges: far from the cap.
    let store = store_stats(&app).await;
    assert!(store["series"].as_u64() < Some(20), "{store}");
    assert_eq!(store["rejected_samples"], 0, "{store}");

    // The 5xx of a real route are still recorded, and fire API_ERROR_RATE.
    for _ in 0..5 {
        let r = app.get("/demo/error", &[]).await;
        assert_eq!(r.status.as_u16(), 500, "{}", r.text);
    }
    let failed = eventually(
        || latency_series(&app),
        |s: &Vec<Value>| {
            s.iter()
                .any(|s| s["tags"]["status_class"] == "5xx" && s["count"] == 5)
        },
    )
    .await;
    let get_5xx: Vec<&Value> = failed
        .iter()
        .filter(|s| s["tags"]["status_class"] == "5xx")
        .collect();
    assert_eq!(get_5xx.len(), 1, "{}", Value::Array(failed.clone()));
    assert_eq!(
        get_5xx[0]["tags"],
        json!({"method": "GET", "route": "/demo/error", "status_class": "5xx"})
    );
    assert_eq!(get_5xx[0]["count"], 5, "{}", get_5xx[0]);
    let alert = one_alert(&app, "type=API_ERROR_RATE", Duration::from_secs(5)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(
        alert["labels"],
        json!({"method": "GET", "route": "/demo/error"}),
        "{alert}"
    );
    assert_eq!(alert["value"], 100.0, "{alert}");
}

#[actix_web::test]
async fn requests_to_no_route_stop_short_of_the_cap_and_leave_room_for_matched_routes() {
    // No Monitor (its gauges would take series too), and the test's own reads not traced.
    let app = spawn_host_app(&[
        ("METRICS_MAX_SERIES", "8"),
        ("MONITOR_AGENT_ENABLED", "false"),
        ("TRACE_EXCLUDE_PATHS", "/health,/api/v1/system"),
    ])
    .await;
    let store = store_stats(&app).await;
    assert_eq!(store["series"], 0, "{store}");
    assert_eq!(store["max_series"], 8, "{store}");
    assert_eq!(
        store["unrouted_max_series"], 6,
        "a quarter of 8 kept: {store}"
    );

    // Every standard method and a made-up one: ten series of requests to no route, only six
    // of which fit.
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
        Method::from_bytes(b"BREW").expect("a method"),
    ];
    for m in &methods {
        let reply = app.call(m.clone(), "/no/such/route", &[], Vec::new()).await;
        assert_eq!(reply.status.as_u16(), 404, "{m}: {}", reply.text);
    }
    let arrived = |s: &Value| {
        s["series"].as_u64().unwrap_or(0) + s["rejected_samples"].as_u64().unwrap_or(0)
            >= methods.len() as u64
    };
    let store = eventually(|| store_stats(&app), arrived).await;
    assert_eq!(store["series"], 6, "{store}");
    assert_eq!(store["rejected_samples"], 4, "{store}");
    assert!(
        store["last_rejected"]
            .as_str()
            .is_some_and(|r| r.contains("__unmatched__")),
        "{store}"
    );

    // The matched routes still get their series.
    for i in 0..2 {
        assert_eq!(app.get(&format!("/distinct/{i}"), &[]).await.status, 200);
    }
    let store = eventually(|| store_stats(&app), |s| s["series"] == 8).await;
    assert_eq!(store["series"], 8, "{store}");
    assert_eq!(store["rejected_samples"], 4, "{store}");
    let series = latency_series(&app).await;
    for route in ["/distinct/0", "/distinct/1"] {
        let found: Vec<&Value> = series
            .iter()
            .filter(|s| s["tags"]["route"] == route)
            .collect();
        assert_eq!(found.len(), 1, "{route}: {}", Value::Array(series.clone()));
        assert_eq!(found[0]["count"], 1, "{}", found[0]);
        assert_eq!(found[0]["tags"]["method"], "GET", "{}", found[0]);
    }
    // The reserve is part of the cap, not beyond it.
    assert_eq!(app.get("/distinct/2", &[]).await.status, 200);
    let store = eventually(
        || store_stats(&app),
        |s| s["rejected_samples"].as_u64() >= Some(5),
    )
    .await;
    assert_eq!(store["series"], 8, "{store}");
    assert_eq!(store["rejected_samples"], 5, "{store}");
}

#[actix_web::test]
async fn refused_series_are_logged_raise_metrics_cardinality_and_degrade_the_verdict() {
    let _ring = crate::helpers::LOG_RING.lock().await;
    capture_logs();
    // Two series: the Monitor's own gauges overflow the cap on every tick.
    let app = quiet_host(&[("METRICS_MAX_SERIES", "2")]).await;

    // The store logs the refused samples (at most once a minute): read as soon as the line is
    // there, so another test's flood of log lines has no time to push it out of the ring.
    let logged = |d: &Value| {
        list(&d["lines"]).iter().any(|l| {
            l["message"].as_str().is_some_and(|m| {
                m.contains("sample(s) of new series refused")
                    && m.contains("of METRICS_MAX_SERIES 2 series")
            })
        })
    };
    let logs = eventually(
        || async {
            app.admin_get("/api/v1/system/logs?level=error&limit=10000")
                .await
                .data()
                .clone()
        },
        logged,
    )
    .await;
    assert!(logged(&logs), "no log line about refused series: {logs}");

    let alert = one_alert(&app, "type=METRICS_CARDINALITY", Duration::from_secs(5)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["component"], "metrics", "{alert}");
    assert_eq!(alert["severity"], "high", "{alert}");
    assert_eq!(alert["threshold"], 2.0, "{alert}");
    let message = alert["message"].as_str().unwrap_or("");
    assert!(message.contains("METRICS_MAX_SERIES 2"), "{message}");

    let health = app.admin_get("/api/v1/system/health").await;
    let data = health.data();
    let metrics = &data["health"]["checks"]["metrics"];
    assert_eq!(metrics["status"], "degraded", "{}", health.text);
    assert!(
        metrics["details"]["rejected_samples"].as_u64() > Some(0),
        "{}",
        health.text
    );
    assert_eq!(data["overall"], "degraded", "{}", health.text);
}

// ---- nothing accepted, then dropped ----------------------------------------------------------

/// What an audited request was answered: the `outcome` its audit row must carry.
#[derive(Default)]
struct Outcomes(HashMap<&'static str, i64>);

impl Outcomes {
    /// The reply is the error envelope with `status` and `code` (or a success, for `"ok"`);
    /// its audit row is counted.
    fn expect(&mut self, what: &str, reply: &Reply, status: u16, code: &'static str) {
        if code == "ok" {
            assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text);
            assert_eq!(reply.body["success"], true, "{what}: {}", reply.text);
        } else {
            assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text);
            assert_error(reply, status, code);
        }
        *self.0.entry(code).or_default() += 1;
    }

    /// A text over its limit: refused, 422 in a JSON body (silences, windows, acknowledge and
    /// resolve), 400 in a header (`X-Admin-User`); either keeps nothing.
    fn expect_too_long(&mut self, what: &str, reply: &Reply) {
        if what.contains("X-Admin-User") {
            self.expect(what, reply, 400, "BAD_REQUEST");
        } else {
            self.expect(what, reply, 422, "UNPROCESSABLE_ENTITY");
        }
        let message = reply.body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("at most"), "{what}: {}", reply.text);
    }

    fn total(&self) -> i64 {
        self.0.values().sum()
    }
}

/// A silence body: `API_SLOW` for ten minutes, with `extra` fields on top.
fn silence(extra: Value) -> Value {
    let mut body = json!({
        "matchers": [{"field": "type", "value": "API_SLOW"}],
        "duration_ms": 600_000,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// A maintenance window body (Mondays 01:00–02:00), with `extra` fields on top.
fn window(extra: Value) -> Value {
    let mut body = json!({"name": "nightly", "days": ["mon"], "start": "01:00", "end": "02:00"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// `POST path` with the admin token, `body` as JSON and `headers` on top.
async fn post_with(app: &TestApp, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let auth = app.bearer();
    let mut all = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    all.extend_from_slice(headers);
    app.call(Method::POST, path, &all, body.to_string().into_bytes())
        .await
}

#[actix_web::test]
async fn nul_characters_and_oversized_texts_are_refused_and_every_accepted_row_and_audit_row_reaches_postgres(
) {
    let db = TestDb::create();
    let app = quiet_host(&[
        ("DATABASE_URL", db.url.as_str()),
        ("DB_WRITE_FLUSH_MS", "20"),
        ("API_RESPONSE_THRESHOLD_MS", "100"),
    ])
    .await;
    let mut audited = Outcomes::default();
    let silences = "/api/v1/system/silences";
    let windows = "/api/v1/system/maintenance-windows";

    // A NUL anywhere a silence keeps text: refused before anything is kept.
    for (what, body) in [
        ("created_by", silence(json!({"created_by": "ops\u{0}bot"}))),
        ("comment", silence(json!({"comment": "deploy\u{0}ing"}))),
        (
            "matcher",
            silence(json!({"matchers": [{"field": "type", "value": "API\u{0}SLOW"}]})),
        ),
    ] {
        let reply = send_json(&app, Method::POST, silences, &body).await;
        audited.expect(what, &reply, 422, "UNPROCESSABLE_ENTITY");
    }
    // Over the limits: 10 001 characters of comment, 256 of a name (in the body or the
    // header). Characters, not bytes: `é` is two bytes.
    let long_comment = "é".repeat(10_001);
    let reply = send_json(
        &app,
        Method::POST,
        silences,
        &silence(json!({ "comment": long_comment })),
    )
    .await;
    audited.expect_too_long("comment of 10 001", &reply);
    let reply = send_json(
        &app,
        Method::POST,
        silences,
        &silence(json!({"created_by": "é".repeat(256)})),
    )
    .await;
    audited.expect_too_long("created_by of 256", &reply);
    let header_256 = "u".repeat(256);
    let reply = post_with(
        &app,
        silences,
        &[("x-admin-user", &header_256)],
        &silence(json!({})),
    )
    .await;
    audited.expect_too_long("X-Admin-User of 256", &reply);
    // A header value may carry a tab: not a name either.
    let reply = post_with(
        &app,
        silences,
        &[("x-admin-user", "ops\tbot")],
        &silence(json!({})),
    )
    .await;
    audited.expect("X-Admin-User with a tab", &reply, 400, "BAD_REQUEST");

    // At the limits: accepted, and kept whole in Postgres.
    let comment_10k = format!("{}\n", "é".repeat(9_999));
    let by_255 = "é".repeat(255);
    let reply = send_json(
        &app,
        Method::POST,
        silences,
        &silence(json!({"comment": comment_10k, "created_by": by_255})),
    )
    .await;
    audited.expect("silence at the limits", &reply, 201, "ok");
    let at_limits = reply.body["data"]["id"].as_str().unwrap_or("").to_owned();
    let header_255 = "h".repeat(255);
    let reply = post_with(
        &app,
        silences,
        &[("x-admin-user", &header_255)],
        &silence(json!({})),
    )
    .await;
    audited.expect("X-Admin-User of 255", &reply, 201, "ok");
    assert_eq!(
        reply.body["data"]["created_by"], header_255,
        "{}",
        reply.text
    );
    let by_header = reply.body["data"]["id"].as_str().unwrap_or("").to_owned();

    // Maintenance windows: the same rules, and the name too.
    for (what, body) in [
        ("name", window(json!({"name": "night\u{0}ly"}))),
        ("created_by", window(json!({"created_by": "\u{0}"}))),
        ("comment", window(json!({"comment": "a\u{0}"}))),
    ] {
        let reply = send_json(&app, Method::POST, windows, &body).await;
        audited.expect(what, &reply, 422, "UNPROCESSABLE_ENTITY");
    }
    let reply = send_json(
        &app,
        Method::POST,
        windows,
        &window(json!({"comment": "x".repeat(10_001)})),
    )
    .await;
    audited.expect_too_long("window comment of 10 001", &reply);
    let reply = send_json(
        &app,
        Method::POST,
        windows,
        &window(json!({"comment": "x".repeat(10_000), "created_by": "w".repeat(255)})),
    )
    .await;
    audited.expect("window at the limits", &reply, 201, "ok");
    let window_id = reply.body["data"]["id"].as_str().unwrap_or("").to_owned();

    // Acknowledge and resolve: `who` and the comment.
    slow_requests(&app, 2, 250).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    let id = alert["id"].as_str().unwrap_or("").to_owned();
    let ack = format!("/api/v1/system/alerts/{id}/acknowledge");
    let resolve = format!("/api/v1/system/alerts/{id}/resolve");
    for (what, path, body) in [
        ("ack who", &ack, json!({"who": "ops\u{0}"})),
        ("ack comment", &ack, json!({"comment": "\u{0}"})),
        (
            "resolve resolution",
            &resolve,
            json!({"resolution": "fixed\u{0}"}),
        ),
    ] {
        let reply = send_json(&app, Method::POST, path, &body).await;
        audited.expect(what, &reply, 422, "UNPROCESSABLE_ENTITY");
    }
    let reply = send_json(&app, Method::POST, &ack, &json!({"who": "w".repeat(256)})).await;
    audited.expect_too_long("ack who of 256", &reply);
    let reply = send_json(
        &app,
        Method::POST,
        &ack,
        &json!({"comment": "c".repeat(10_001)}),
    )
    .await;
    audited.expect_too_long("ack comment of 10 001", &reply);
    let reply = post_with(&app, &ack, &[("x-admin-user", "ops\tbot")], &json!({})).await;
    audited.expect("ack X-Admin-User with a tab", &reply, 400, "BAD_REQUEST");
    let who_255 = "é".repeat(255);
    let reply = send_json(
        &app,
        Method::POST,
        &ack,
        &json!({"who": who_255, "comment": "é".repeat(10_000)}),
    )
    .await;
    audited.expect("ack at the limits", &reply, 200, "ok");
    assert_eq!(
        reply.body["data"]["acknowledged_by"], who_255,
        "{}",
        reply.text
    );

    // Refused at the lookup: still audited, with the outcome.
    let reply = app
        .admin_post("/api/v1/system/agents/nobody/restart", Vec::new())
        .await;
    audited.expect("restart nobody", &reply, 404, "NOT_FOUND");
    let reply = app
        .admin_post("/api/v1/system/agents/no%00body/restart", Vec::new())
        .await;
    audited.expect("restart a name with a NUL", &reply, 404, "NOT_FOUND");

    // Bad filter input is a 400, not a partial answer.
    for path in [
        "/api/v1/system/alerts?type=%00",
        "/api/v1/system/alerts?type=API%00SLOW",
        "/api/v1/system/alerts?state=%00",
        "/api/v1/system/alerts?severity=%00",
        "/api/v1/system/alerts?since=%00",
        "/api/v1/system/metrics/history?name=cpu%00usage",
        "/api/v1/system/traces/slow?route=%00",
    ] {
        let reply = app.admin_get(path).await;
        assert_error(&reply, 400, "BAD_REQUEST");
    }

    // Every accepted row is in Postgres, whole; nothing refused is.
    let rows = |sql: &'static str| {
        let db = &db;
        move || async move { db.scalar(sql) }
    };
    let silences_stored = eventually(rows("SELECT count(*) FROM alert_silences"), |n: &i64| {
        *n >= 2
    })
    .await;
    assert_eq!(silences_stored, 2, "only the two accepted silences");
    assert_eq!(
        db.scalar(&format!(
            "SELECT length(comment) + 1000 * length(created_by) FROM alert_silences WHERE id = '{at_limits}'"
        )),
        10_000 + 1000 * 255,
        "the comment and created_by at their limits are kept whole"
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM alert_silences WHERE id = '{by_header}' AND created_by = '{header_255}'"
        )),
        1,
        "X-Admin-User is the silence's creator"
    );
    let windows_stored = eventually(
        rows("SELECT count(*) FROM maintenance_windows"),
        |n: &i64| *n >= 1,
    )
    .await;
    assert_eq!(windows_stored, 1, "only the accepted window");
    assert_eq!(
        db.scalar(&format!(
            "SELECT length(comment) + 1000 * length(created_by) FROM maintenance_windows WHERE id = '{window_id}'"
        )),
        10_000 + 1000 * 255
    );
    let acked_sql = format!(
        "SELECT count(*) FROM system_alerts WHERE id = '{id}' AND acknowledged \
         AND length(acknowledged_by) = 255 AND length(ack_comment) = 10000"
    );
    let acked = eventually(|| async { db.scalar(&acked_sql) }, |n: &i64| *n == 1).await;
    assert_eq!(acked, 1, "the acknowledgement at the limits is in Postgres");

    // One audit row per action, refused ones included, each with its outcome.
    let total = audited.total();
    let stored = eventually(rows("SELECT count(*) FROM admin_audit_logs"), |n: &i64| {
        *n >= total
    })
    .await;
    assert_eq!(stored, total, "one audit row per audited request");
    for (code, n) in &audited.0 {
        assert_eq!(
            db.scalar(&format!(
                "SELECT count(*) FROM admin_audit_logs WHERE details->>'outcome' = '{code}'"
            )),
            *n,
            "audit rows with outcome {code}"
        );
    }
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM admin_audit_logs WHERE action = 'agent.restart' \
             AND resource_id = 'nobody' AND details->>'outcome' = 'NOT_FOUND'"
        ),
        1
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM admin_audit_logs WHERE action = 'silence.create' \
             AND actor = '{header_255}' AND details->>'outcome' = 'ok'"
        )),
        1,
        "the audit row names the X-Admin-User"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM admin_audit_logs WHERE actor ~ '[[:cntrl:]]'"),
        0,
        "no actor with a control character"
    );
    // The audit API serves them too.
    let reply = app.admin_get("/api/v1/system/audit?limit=1000").await;
    let entries = list(&reply.data()["entries"]);
    assert_eq!(entries.len() as i64, total, "{}", reply.text);
    assert!(
        entries.iter().any(|e| e["action"] == "agent.restart"
            && e["resource_id"] == "nobody"
            && e["details"]["outcome"] == "NOT_FOUND"),
        "{}",
        reply.text
    );
    // And the writer dropped nothing.
    let health = app.admin_get("/api/v1/system/health").await;
    let writer = &health.data()["system"]["store"]["writer"];
    assert_eq!(writer["rejected"], 0, "{}", health.text);
    assert_eq!(writer["overflow"], 0, "{}", health.text);
}

// ---- auth ------------------------------------------------------------------------------------

#[actix_web::test]
async fn bearer_is_matched_in_any_case_the_token_is_not_trimmed_and_failures_are_counted() {
    let app = spawn_app(&[]).await;
    let path = "/api/v1/system/health";
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {}", app.token);
        let reply = app.get(path, &[("authorization", &auth)]).await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text);
    }
    let refused = [
        format!("Bearer  {}", app.token),
        format!("Bearer {} x", app.token),
        format!("Bearer\t{}", app.token),
        format!("Bearer {}", app.token.to_uppercase()),
        format!("Bearer{}", app.token),
    ];
    for auth in &refused {
        let reply = app.get(path, &[("authorization", auth)]).await;
        assert_error(&reply, 401, "UNAUTHORIZED");
    }
    let reply = app.get(path, &[]).await;
    assert_error(&reply, 401, "UNAUTHORIZED");

    let detailed = app.admin_get("/api/v1/system/health/detailed").await;
    assert_eq!(
        detailed.data()["auth"],
        json!({"failed_attempts": refused.len() + 1}),
        "{}",
        detailed.text
    );
}

#[actix_web::test]
async fn a_token_with_whitespace_around_it_is_not_the_token() {
    // Over HTTP/1.1 the parser drops a header value's trailing whitespace before selfheal sees
    // it (it is not part of the value: RFC 9110 §5.5), so the check is asked directly here,
    // with the value as a client could hand it to any transport.
    use selfheal::handles::AuthCounters;
    use selfheal::http::auth::AdminAuth;
    use std::sync::Arc;

    let token = "a-token-of-some-length";
    let counters = Arc::new(AuthCounters::default());
    let auth = AdminAuth::new(token.into(), 1024, counters);
    let allows = |value: &str| {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("authorization", value))
            .to_srv_request();
        auth.allows(&req)
    };
    assert!(allows(&format!("Bearer {token}")));
    assert!(allows(&format!("bearer {token}")));
    for value in [
        format!("Bearer {token} "),
        format!("Bearer {token}\t"),
        format!("Bearer  {token}"),
        format!("Bearer \t{token}"),
    ] {
        assert!(!allows(&value), "{value:?} was accepted");
    }
}

#[actix_web::test]
async fn a_configured_admin_token_shorter_than_16_characters_is_refused() {
    let with_token = |token: &str| {
        let token = token.to_owned();
        selfheal::Settings::from_lookup(move |k| (k == "SYSTEM_ADMIN_TOKEN").then(|| token.clone()))
    };
    // Characters, not bytes: fifteen `é` are thirty bytes.
    for short in ["0123456789abcde", &"é".repeat(15)] {
        let err = with_token(short).expect_err("a 15-character token is refused");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.problems[0].starts_with("SYSTEM_ADMIN_TOKEN"),
            "{}",
            err.problems[0]
        );
        assert!(
            !err.to_string().contains(short),
            "the token is echoed: {err}"
        );
    }
    let settings = with_token("0123456789abcdef").expect("16 characters are enough");
    assert_eq!(
        settings.server.admin_token.as_deref(),
        Some("0123456789abcdef")
    );

    // And a server started with it accepts it.
    let app = spawn_app(&[("SYSTEM_ADMIN_TOKEN", "0123456789abcdef")]).await;
    assert_eq!(app.token, "0123456789abcdef");
    let reply = app.admin_get("/api/v1/system/health").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

// ---- routes ----------------------------------------------------------------------------------

#[actix_web::test]
async fn head_health_answers_200_unknown_paths_a_json_404_and_wrong_methods_a_json_405() {
    let app = spawn_app(&[]).await;
    let reply = app.call(Method::HEAD, "/health", &[], Vec::new()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.text.is_empty(),
        "a HEAD answer has no body: {}",
        reply.text
    );

    // Unknown paths, outside the system API: no token needed to learn they do not exist.
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/api/v1/nope"),
        (Method::GET, "/health/nope"),
        (Method::POST, "/nope"),
        (Method::DELETE, "/api/v1/health"),
    ] {
        let reply = app.call(method.clone(), path, &[], Vec::new()).await;
        assert_error(&reply, 404, "NOT_FOUND");
    }
    // Inside it, with the token.
    for path in [
        "/api/v1/system",
        "/api/v1/system/",
        "/api/v1/system/alerts/x/y/z",
    ] {
        assert_error(&app.admin_get(path).await, 404, "NOT_FOUND");
    }

    // Paths that exist, asked with a method they do not answer.
    let auth = app.bearer();
    let alert = uuid::Uuid::new_v4();
    let wrong = [
        (Method::POST, "/health".to_owned(), false),
        (Method::DELETE, "/health".to_owned(), false),
        (
            Method::from_bytes(b"PURGE").expect("a method"),
            "/health".to_owned(),
            false,
        ),
        (Method::PUT, "/api/v1/system/silences".to_owned(), true),
        (Method::DELETE, "/api/v1/system/health".to_owned(), true),
        (
            Method::GET,
            format!("/api/v1/system/alerts/{alert}/acknowledge"),
            true,
        ),
    ];
    for (method, path, with_token) in wrong {
        let headers: Vec<(&str, &str)> = if with_token {
            vec![("authorization", auth.as_str())]
        } else {
            Vec::new()
        };
        let reply = app.call(method.clone(), &path, &headers, Vec::new()).await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.text);
        assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
    }

    // Embedded in a host app, the routes selfheal mounts answer the same way.
    let host = spawn_host_app(&[]).await;
    assert_error(
        &host.admin_get("/api/v1/system/nothing-here").await,
        404,
        "NOT_FOUND",
    );
    let reply = host.call(Method::POST, "/health", &[], Vec::new()).await;
    assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
    let reply = host.call(Method::HEAD, "/health", &[], Vec::new()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

// ---- restart spam ----------------------------------------------------------------------------

/// Every event of the history, oldest first.
async fn all_events(app: &TestApp) -> Vec<Value> {
    let reply = app.admin_get("/api/v1/system/events?limit=1000").await;
    list(&reply.data()["events"])
}

/// The Monitor's `agent-started` events after a restart (not its first start).
async fn monitor_restarts(app: &TestApp) -> Vec<Value> {
    app.events("agent-started")
        .await
        .into_iter()
        .filter(|e| e["data"]["agent"] == "Monitor" && e["data"]["restarts"].as_u64() > Some(0))
        .collect()
}

#[actix_web::test]
async fn a_burst_of_admin_restarts_is_one_event_and_keeps_the_rest_of_the_history() {
    const BURST: u64 = 30;
    // A small history: thirty events would push out everything before them. A slow Monitor
    // (its first tick a second after each start), so the burst itself is the only noise.
    let mut env = QUIET_HOST.to_vec();
    env.extend([
        ("EVENT_HISTORY_SIZE", "20"),
        ("MONITOR_INTERVAL_MS", "60000"),
    ]);
    let app = spawn_app(&env).await;
    app.wait_for_first_tick("Monitor").await;
    let before = all_events(&app).await;
    assert!(!before.is_empty());
    assert!(
        before.len() < 15,
        "room for the burst's own events: {}",
        Value::Array(before.clone())
    );

    // All at once, as a script in a loop would.
    let replies = join_all(
        (0..BURST).map(|_| app.admin_post("/api/v1/system/agents/monitor/restart", Vec::new())),
    )
    .await;
    for reply in &replies {
        assert_eq!(reply.data()["state"], "running", "{}", reply.text);
    }
    assert_eq!(app.agent("Monitor").await["restarts"], BURST);
    // The first restart is told at once; the rest together when the 10 s window ends.
    let told = within(
        Duration::from_secs(15),
        || monitor_restarts(&app),
        |e: &Vec<Value>| e.len() >= 2,
    )
    .await;
    let shown = Value::Array(told.clone());
    assert_eq!(told.len(), 2, "{shown}");
    assert_eq!(told[0]["data"]["restarts"], 1, "{shown}");
    assert_eq!(told[0]["data"]["merged_restarts"], 0, "{shown}");
    assert_eq!(told[1]["data"]["restarts"], BURST, "{shown}");
    let stood_for: u64 = told
        .iter()
        .map(|e| 1 + e["data"]["merged_restarts"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(stood_for, BURST, "{shown}");
    assert_eq!(app.agent("Monitor").await["restarts"], BURST);

    // Nothing from before the burst was pushed out.
    let after = all_events(&app).await;
    for e in &before {
        assert!(
            after.iter().any(|a| a["id"] == e["id"]),
            "{e} left the history: {}",
            Value::Array(after.clone())
        );
    }
}

// ---- circuit breakers ------------------------------------------------------------------------

#[actix_web::test]
async fn an_external_check_of_a_dead_endpoint_opens_its_breaker_shown_in_health_detailed() {
    let url = format!("http://127.0.0.1:{}/status", closed_port());
    let checks = format!("dead={url}");
    let mut env = QUIET_HOST.to_vec();
    env.extend([
        ("EXTERNAL_CHECKS", checks.as_str()),
        ("EXTERNAL_CHECK_INTERVAL_MS", "0"),
        ("CIRCUIT_BREAKER_FAILURES", "2"),
        ("CIRCUIT_BREAKER_OPEN_MS", "60000"),
        ("API_TIMEOUT_MS", "500"),
    ]);
    let app = spawn_app(&env).await;

    let breaker = |d: &Value| {
        list(&d["breakers"])
            .into_iter()
            .find(|b| b["name"] == "external:dead")
            .unwrap_or(Value::Null)
    };
    // Open, and refusing the probes of later ticks without calling the endpoint.
    let detailed = eventually(
        || async {
            app.admin_get("/api/v1/system/health/detailed")
                .await
                .data()
                .clone()
        },
        |d| breaker(d)["rejected"].as_u64() >= Some(2),
    )
    .await;
    let b = breaker(&detailed);
    assert_eq!(b["state"], "open", "{}", detailed["breakers"]);
    assert_eq!(b["failure_threshold"], 2, "{b}");
    assert_eq!(b["consecutive_failures"], 2, "{b}");
    assert_eq!(b["failures"], 2, "no call once open: {b}");
    assert_eq!(b["successes"], 0, "{b}");
    assert_eq!(b["trips"], 1, "{b}");
    assert_eq!(b["open_ms"], 60000, "{b}");
    assert!(b["opened_at"].is_string(), "{b}");
    assert!(b["last_error"].is_string(), "{b}");
    // The check stays failed meanwhile.
    let fired = one_alert(&app, "type=EXTERNAL_API_DOWN", Duration::from_secs(5)).await;
    assert_eq!(fired["labels"], json!({"check": "dead"}), "{fired}");
    assert!(
        alerts(&app, "type=EXTERNAL_API_DOWN&state=resolved")
            .await
            .is_empty(),
        "an open breaker is not a recovery"
    );
}
