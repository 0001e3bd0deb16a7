//! Errors of the system API: the right status, a stable code, a JSON body.

use crate::helpers::{assert_error, spawn_app};

#[actix_web::test]
async fn bad_query_values_are_answered_400_with_the_error_envelope() {
    let app = spawn_app(&[]).await;
    for path in [
        "/api/v1/system/metrics?window=2h",
        "/api/v1/system/events?limit=0",
        "/api/v1/system/events?limit=abc",
        "/api/v1/system/events?limit=1001",
        "/api/v1/system/events?channel=nope",
        "/api/v1/system/traces?limit=-1",
    ] {
        let reply = app.admin_get(path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert_error(&reply, 400, "BAD_REQUEST");
    }
}

#[actix_web::test]
async fn restarting_an_unknown_agent_is_a_json_404() {
    let app = spawn_app(&[]).await;
    let reply = app
        .admin_post("/api/v1/system/agents/nobody/restart", Vec::new())
        .await;
    assert_error(&reply, 404, "NOT_FOUND");
}

#[actix_web::test]
async fn agent_names_are_case_insensitive_on_restart() {
    let app = spawn_app(&[]).await;
    let before = app.agent("Monitor").await["restarts"].as_u64();
    let reply = app
        .admin_post("/api/v1/system/agents/MONITOR/restart", Vec::new())
        .await;
    let data = reply.data();
    assert_eq!(data["name"], "Monitor", "{}", reply.text);
    assert_eq!(data["state"], "running", "{}", reply.text);
    assert_eq!(
        data["restarts"].as_u64(),
        before.map(|n| n + 1),
        "{}",
        reply.text
    );
}

#[actix_web::test]
async fn a_body_over_the_limit_is_refused_with_413_and_the_restart_does_not_happen() {
    let app = spawn_app(&[("SYSTEM_MAX_BODY_BYTES", "64")]).await;
    let reply = app
        .admin_post("/api/v1/system/agents/Monitor/restart", vec![b'x'; 65])
        .await;
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(app.agent("Monitor").await["restarts"], 0);
    // At the limit it is accepted.
    let reply = app
        .admin_post("/api/v1/system/agents/Monitor/restart", vec![b'x'; 64])
        .await;
    assert_eq!(reply.data()["restarts"], 1, "{}", reply.text);
}

#[actix_web::test]
async fn restarting_a_disabled_agent_is_a_409_conflict() {
    let app = spawn_app(&[("MONITOR_AGENT_ENABLED", "false")]).await;
    assert_eq!(app.agent("Monitor").await["state"], "disabled");
    let reply = app
        .admin_post("/api/v1/system/agents/monitor/restart", Vec::new())
        .await;
    assert_error(&reply, 409, "CONFLICT");
}

#[actix_web::test]
async fn a_wrong_method_on_a_system_route_is_a_json_405() {
    let app = spawn_app(&[]).await;
    let reply = app.admin_get("/api/v1/system/agents/monitor/restart").await;
    assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
}
