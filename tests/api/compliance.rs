//! The contract every registered agent meets, checked for each name in the registry: a new
//! agent is covered by registering it.

use std::time::{Duration, Instant};

use selfheal::actors::supervisor::ListAgents;
use selfheal::domain::agent::AgentState;

use crate::helpers::{eventually, spawn_app};

const STATUS_FIELDS: [&str; 11] = [
    "name",
    "state",
    "running",
    "enabled",
    "restarts",
    "last_error",
    "started_at",
    "last_tick",
    "ticks",
    "dropped_events",
    "stats",
];

#[actix_web::test]
async fn every_registered_agent_starts_survives_a_panic_restarts_on_request_and_stops() {
    let names = selfheal::agents::registry().names();
    assert!(!names.is_empty(), "no agent is registered");
    let switches: Vec<(String, &str)> = names
        .iter()
        .map(|n| (format!("{}_AGENT_ENABLED", n.to_ascii_uppercase()), "true"))
        .collect();
    let overrides: Vec<(&str, &str)> = switches.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let app = spawn_app(&overrides).await;

    let agents = app.agents().await;
    for name in &names {
        let status = agents
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not in /agents"));
        for field in STATUS_FIELDS {
            assert!(
                status.get(field).is_some(),
                "{name}: no {field} in {status}"
            );
        }
        assert_eq!(status["name"], *name);
        assert_eq!(status["state"], "running", "{name}: {status}");
        assert_eq!(status["running"], true, "{name}: {status}");
        assert_eq!(status["enabled"], true, "{name}: {status}");
        assert_eq!(status["restarts"], 0, "{name}: {status}");
        assert!(status["started_at"].is_string(), "{name}: {status}");
    }

    for name in &names {
        assert_eq!(
            app.selfheal().inject_agent_panic(name, 1).await,
            Ok(true),
            "{name}: the panic was not injected"
        );
        let status = eventually(
            || app.agent(name),
            |s| s["state"] == "running" && s["restarts"] == 1,
        )
        .await;
        assert_eq!(status["state"], "running", "{name} after a panic: {status}");
        assert_eq!(status["restarts"], 1, "{name} after a panic: {status}");
        let error = status["last_error"].as_str().unwrap_or("");
        assert!(
            error.contains("injected fault"),
            "{name}: last_error {error:?}"
        );

        let reply = app
            .admin_post(&format!("/api/v1/system/agents/{name}/restart"), Vec::new())
            .await;
        let status = reply.data();
        assert_eq!(
            status["state"], "running",
            "{name} after an admin restart: {status}"
        );
        assert_eq!(
            status["restarts"], 2,
            "{name} after an admin restart: {status}"
        );
    }

    app.selfheal().shutdown().await;
    // `stopped` is final: it must hold while the agents' threads wind down, not only at once.
    let until = Instant::now() + Duration::from_millis(250);
    while Instant::now() < until {
        let statuses = app
            .selfheal()
            .supervisor
            .send(ListAgents)
            .await
            .expect("the supervisor answers after shutdown");
        for name in &names {
            let status = statuses
                .iter()
                .find(|s| s.name == *name)
                .unwrap_or_else(|| panic!("{name} missing after shutdown"));
            assert_eq!(status.state, AgentState::Stopped, "{name}: {status:?}");
            assert!(!status.running, "{name}: {status:?}");
            assert_eq!(status.restarts, 2, "{name} lost its history: {status:?}");
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}
