//! The request tracer: trace ids in and out, what is not traced, what `/traces` lists, and
//! the slow-request event.

use futures_util::future::join;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app, spawn_host_app};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `(trace id, span id, flags)` of a well-formed version-00 `traceparent`.
fn parse_traceparent(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {value:?}");
    assert_eq!(parts[0], "00", "traceparent {value:?}");
    assert!(is_lower_hex(parts[1], 32), "trace id of {value:?}");
    assert!(is_lower_hex(parts[2], 16), "span id of {value:?}");
    assert!(is_lower_hex(parts[3], 2), "flags of {value:?}");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

#[actix_web::test]
async fn a_fresh_request_gets_a_new_32_hex_trace_id_and_a_matching_traceparent() {
    let app = spawn_app(&[]).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let reply = app.admin_get("/api/v1/system/agents").await;
        let id = reply
            .header("x-trace-id")
            .expect("an x-trace-id")
            .to_owned();
        assert!(is_lower_hex(&id, 32), "x-trace-id {id:?}");
        assert_ne!(id, "0".repeat(32));
        let (trace_id, _, _) =
            parse_traceparent(reply.header("traceparent").expect("a traceparent"));
        assert_eq!(trace_id, id);
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "two requests shared a trace id");
}

#[actix_web::test]
async fn an_incoming_x_trace_id_is_echoed() {
    let app = spawn_app(&[]).await;
    let auth = app.bearer();
    let reply = app
        .get(
            "/api/v1/system/agents",
            &[("authorization", &auth), ("x-trace-id", "abc-123")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("x-trace-id"), Some("abc-123"));
    parse_traceparent(reply.header("traceparent").expect("a traceparent"));
}

#[actix_web::test]
async fn an_incoming_traceparent_keeps_its_trace_id_under_a_new_span() {
    let app = spawn_app(&[]).await;
    let auth = app.bearer();
    let reply = app
        .get(
            "/api/v1/system/agents",
            &[("authorization", &auth), ("traceparent", TRACEPARENT)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let (trace_id, span_id, flags) =
        parse_traceparent(reply.header("traceparent").expect("a traceparent"));
    assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(span_id, "00f067aa0ba902b7", "the caller's span was reused");
    assert_eq!(flags, "01");
    assert_eq!(
        reply.header("x-trace-id"),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
}

#[actix_web::test]
async fn refused_requests_still_carry_their_trace_id() {
    let app = spawn_app(&[("SYSTEM_MAX_BODY_BYTES", "8")]).await;
    let unauthorized = app
        .get("/api/v1/system/agents", &[("x-trace-id", "refused-1")])
        .await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.header("x-trace-id"), Some("refused-1"));
    assert!(unauthorized.header("traceparent").is_some());
    let too_large = app
        .admin_post("/api/v1/system/agents/monitor/restart", vec![b'x'; 9])
        .await;
    assert_eq!(too_large.status, 413);
    assert!(too_large.header("x-trace-id").is_some());
}

#[actix_web::test]
async fn the_liveness_probe_is_neither_traced_nor_measured() {
    // One worker: the probe and the traced request land in the same batch.
    let app = spawn_app(&[("HTTP_WORKERS", "1")]).await;
    let probe = app.get("/health", &[]).await;
    assert_eq!(probe.status, 200);
    assert_eq!(probe.header("x-trace-id"), None);
    assert_eq!(probe.header("traceparent"), None);
    app.admin_get("/api/v1/system/agents").await;
    let routes = || async {
        let reply = app
            .admin_get("/api/v1/system/metrics?name=api_response_time&window=1m")
            .await;
        let series = reply.data()["series"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        series
            .iter()
            .map(|s| s["tags"]["route"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let seen = eventually(routes, |r| r.iter().any(|r| r == "/api/v1/system/agents")).await;
    assert!(
        seen.iter().any(|r| r == "/api/v1/system/agents"),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|r| r == "/health"),
        "/health was measured: {seen:?}"
    );
}

fn active(reply: &Value) -> Vec<Value> {
    reply["active"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn traces_lists_an_in_flight_request_by_route_pattern_without_any_authorization_value() {
    let app = spawn_host_app(&[]).await;
    let slow = app.get(
        "/sleep/800",
        &[
            ("x-trace-id", "in-flight-1"),
            ("authorization", "Bearer user-secret-credential"),
        ],
    );
    let watch = async {
        let listing = || async { app.admin_get("/api/v1/system/traces").await };
        let is_listed = |r: &crate::helpers::Reply| {
            active(r.data())
                .iter()
                .any(|t| t["trace_id"] == "in-flight-1")
        };
        eventually(listing, is_listed).await
    };
    let (slow, listing) = join(slow, watch).await;
    assert_eq!(slow.status, 200);
    let data = listing.data();
    let entry = active(data)
        .into_iter()
        .find(|t| t["trace_id"] == "in-flight-1")
        .unwrap_or_else(|| panic!("the slow request was never listed: {}", listing.text));
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["route"], "/sleep/{ms}");
    let age = entry["age_ms"].as_f64().expect("an age");
    assert!(age > 0.0 && age < 5_000.0, "age {age}");
    assert!(entry["started_at"].is_string(), "{entry}");
    assert_eq!(
        data["stats"]["by_route"]["/sleep/{ms}"], 1,
        "{}",
        listing.text
    );
    for secret in ["user-secret-credential", app.token.as_str()] {
        assert!(!listing.text.contains(secret), "/traces leaked {secret:?}");
    }
    // Once answered, it is no longer in flight.
    let after = eventually(
        || app.admin_get("/api/v1/system/traces"),
        |r| {
            !active(r.data())
                .iter()
                .any(|t| t["trace_id"] == "in-flight-1")
        },
    )
    .await;
    assert!(
        !active(after.data())
            .iter()
            .any(|t| t["trace_id"] == "in-flight-1"),
        "still listed after it was answered: {}",
        after.text
    );
}

#[actix_web::test]
async fn a_request_over_the_slow_threshold_publishes_a_slow_request_event() {
    let app = spawn_host_app(&[("TRACE_SLOW_THRESHOLD_MS", "100")]).await;
    let reply = app.get("/sleep/250", &[("x-trace-id", "slow-1")]).await;
    assert_eq!(reply.status, 200);
    let ours = |events: &Vec<Value>| {
        events
            .iter()
            .find(|e| e["data"]["trace"]["trace_id"] == "slow-1")
            .cloned()
    };
    let events = eventually(|| app.events("metric"), |e| ours(e).is_some()).await;
    let event = ours(&events).unwrap_or_else(|| panic!("no slow-request event: {events:?}"));
    assert_eq!(event["channel"], "metric");
    assert_eq!(event["source"], "RequestTracer");
    assert_eq!(event["data"]["type"], "SLOW_REQUEST");
    let trace = &event["data"]["trace"];
    assert_eq!(trace["method"], "GET");
    assert_eq!(trace["route"], "/sleep/{ms}");
    assert_eq!(trace["status"], 200);
    let ms = trace["duration_ms"].as_f64().expect("a duration");
    assert!(ms >= 250.0, "duration {ms}");
}
