//! `/events`: the envelope, the order, `limit` and `channel`.

use chrono::DateTime;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app};

fn events(reply: &crate::helpers::Reply) -> Vec<Value> {
    reply.data()["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[actix_web::test]
async fn events_are_listed_oldest_first_in_their_envelope_and_limit_keeps_the_newest() {
    // No ticks and no slow-request events: the history is exactly what the test causes.
    let app = spawn_app(&[
        ("MONITOR_INTERVAL_MS", "0"),
        ("TRACE_SLOW_THRESHOLD_MS", "0"),
    ])
    .await;
    assert_eq!(
        app.selfheal().inject_agent_panic("Monitor", 1).await,
        Ok(true)
    );
    let restarted = |e: &Value| e["channel"] == "agent-started" && e["data"]["restarts"] == 1;
    let reply = eventually(
        || app.admin_get("/api/v1/system/events"),
        |r| events(r).iter().any(restarted),
    )
    .await;
    let all = events(&reply);

    let channels: Vec<&str> = all
        .iter()
        .map(|e| e["channel"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        channels,
        [
            "agent-started",
            "system-status",
            "agent-error",
            "agent-started"
        ],
        "{}",
        reply.text
    );
    let mut previous = None;
    for event in &all {
        let id = event["id"].as_str().unwrap_or("");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "id {id:?}");
        let timestamp = event["timestamp"].as_str().unwrap_or("");
        let at = DateTime::parse_from_rfc3339(timestamp)
            .unwrap_or_else(|e| panic!("timestamp {timestamp:?}: {e}"));
        assert!(previous <= Some(at), "out of order: {}", reply.text);
        previous = Some(at);
        assert!(event["source"].is_string(), "{event}");
        assert!(event["data"].is_object(), "{event}");
    }
    assert_eq!(all[1]["source"], "Orchestrator");
    assert_eq!(all[1]["data"]["status"], "running");
    assert_eq!(all[2]["source"], "Monitor");
    assert_eq!(all[2]["data"]["agent"], "Monitor");

    let ids = |events: &[Value]| events.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    let newest_two = events(&app.admin_get("/api/v1/system/events?limit=2").await);
    assert_eq!(ids(&newest_two), ids(&all[2..]));
    let newest_start = events(
        &app.admin_get("/api/v1/system/events?channel=agent-started&limit=1")
            .await,
    );
    assert_eq!(ids(&newest_start), ids(&all[3..]));
}
