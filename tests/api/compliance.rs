//! The contract every registered agent meets, checked for each name in the registry (the
//! standard agents, and the test-only probe of `probe_agent`): a new agent is covered by
//! registering it. The test drives each agent's own code — its settings, build, ticks, event
//! handler, stats — not only the harness around it.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use selfheal::config::render;
use selfheal::domain::agent::{ActorKind, AgentState};
use selfheal::domain::alert::{Alert, AlertSignal, Severity};
use selfheal::domain::event::{Channel, Event, Payload};
use selfheal::domain::health::Overall;
use selfheal::Settings;

use crate::helpers::{eventually, spawn_host_app_with, TestApp};
use crate::probe_agent::{registry, ProbeAgent, ProbeCommand};

const STATUS_FIELDS: [&str; 14] = [
    "name",
    "kind",
    "state",
    "running",
    "enabled",
    "restarts",
    "stalls",
    "last_error",
    "started_at",
    "last_tick",
    "ticks",
    "events_handled",
    "dropped_events",
    "stats",
];

/// An event of `channel`, for an agent subscribed to it. A channel an agent subscribes to
/// must have one here: the test fails until it does.
fn event_for(channel: Channel) -> Payload {
    match channel {
        Channel::Alert => Payload::AlertChanged {
            action: "raised",
            alert: Box::new(Alert::firing(
                AlertSignal::new("COMPLIANCE", "test", Severity::Low, "a test alert"),
                Utc::now(),
            )),
        },
        Channel::HealthCheck => Payload::HealthChanged {
            previous: Overall::Healthy,
            overall: Overall::Degraded,
        },
        other => panic!(
            "the compliance test has no event for channel {}: add one to event_for",
            other.as_str()
        ),
    }
}

fn publish_subscribed(app: &TestApp, name: &str) {
    let entry = app.selfheal().actors.find(name).expect("registered");
    for channel in entry.subscriptions {
        app.selfheal()
            .bus
            .do_send(selfheal::actors::event_bus::Publish(Event::new(
                "compliance",
                event_for(*channel),
            )));
    }
}

#[test]
fn an_agent_s_switch_deadline_and_settings_are_knobs_generated_into_the_env_example() {
    let sections = registry().sections();
    let text = render::env_example(&Settings::knobs_with(&sections));
    for line in [
        "# --- Probe agent",
        "PROBE_AGENT_ENABLED=true",
        "PROBE_JOB_TIMEOUT_MS=",
        "# Widgets the probe agent counts (a test-only agent).\nPROBE_WIDGETS=3",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let table = render::readme_table(&Settings::knobs_with(&sections));
    assert!(table.contains("| `PROBE_WIDGETS` | `3` |"), "{table}");
    // Parsed and validated with everything else, every problem at once.
    let err = Settings::from_lookup_with(&sections, |k| match k {
        "PROBE_WIDGETS" => Some("0".into()),
        "PROBE_AGENT_ENABLED" => Some("maybe".into()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    let s = Settings::from_lookup_with(&sections, |k| {
        (k == "PROBE_AGENT_ENABLED").then(|| "false".to_owned())
    })
    .unwrap();
    assert!(!s.agent_enabled("Probe"));
    assert!(s.agent_enabled("Monitor"));
    // The standard configuration does not know the probe.
    assert!(!Settings::knobs()
        .iter()
        .any(|k| k.key.starts_with("PROBE_")));
}

#[actix_web::test]
async fn every_registered_agent_runs_its_own_code_survives_a_panic_and_a_hang_restarts_on_request_and_stops(
) {
    let names = registry().names();
    let switches: Vec<(String, &str)> = names
        .iter()
        .map(|n| (format!("{}_AGENT_ENABLED", n.to_ascii_uppercase()), "true"))
        .collect();
    let mut overrides: Vec<(&str, &str)> = switches.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    overrides.extend([
        ("AGENT_JOB_TIMEOUT_MS", "600"),
        ("PROBE_WIDGETS", "7"),
        ("AGENT_MAX_RESTARTS", "10"),
    ]);
    let app = spawn_host_app_with(&overrides, registry).await;

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
        assert_eq!(status["kind"], "agent");
        assert_eq!(status["state"], "running", "{name}: {status}");
        assert_eq!(status["enabled"], true, "{name}: {status}");
        assert_eq!(status["restarts"], 0, "{name}: {status}");
    }

    // Its own code: ticks (with its stats), and the events of every channel it subscribes to.
    for name in &names {
        let ticking = app.selfheal().settings.agent(name).and_then(|a| a.interval);
        if ticking.is_some() {
            let s = eventually(
                || app.agent(name),
                |s| s["ticks"].as_u64() >= Some(2) && !s["stats"]["agent"].is_null(),
            )
            .await;
            assert!(s["ticks"].as_u64() >= Some(2), "{name} does not tick: {s}");
            assert!(
                !s["stats"]["agent"].is_null(),
                "{name}: no stats of its own: {s}"
            );
        }
        let subscribed = app.selfheal().actors.find(name).unwrap().subscriptions;
        if !subscribed.is_empty() {
            publish_subscribed(&app, name);
            let want = subscribed.len() as u64;
            let s = eventually(
                || app.agent(name),
                |s| s["events_handled"].as_u64() >= Some(want),
            )
            .await;
            assert!(
                s["events_handled"].as_u64() >= Some(want),
                "{name} did not handle its events: {s}"
            );
        }
    }
    // Its settings reached its code, and its typed command reaches it through its handle.
    assert_eq!(
        app.selfheal()
            .command::<ProbeAgent>(ProbeCommand::Widgets)
            .await,
        Ok(7)
    );
    // Its own count of the events it took (the Monitor's health checks may add to the two sent).
    let events = app.agent("Probe").await["stats"]["agent"]["events"].as_u64();
    assert!(events >= Some(2), "the probe counted {events:?} events");

    for name in &names {
        // A panic in its job: restarted, rebuilt by its own `build`.
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
        assert_eq!(status["restarts"], 1, "{name} after a panic: {status}");
        let error = status["last_error"].as_str().unwrap_or("");
        assert!(
            error.contains("injected fault"),
            "{name}: last_error {error:?}"
        );

        // A hang in its next job: stalled past the deadline, then rebuilt.
        assert_eq!(
            app.selfheal().inject_agent_hang(name, 5_000).await,
            Ok(true),
            "{name}: the hang was not injected"
        );
        publish_subscribed(&app, name);
        let stalled = eventually(|| app.agent(name), |s| s["state"] == "stalled").await;
        assert_eq!(stalled["state"], "stalled", "{name}: {stalled}");
        let status = eventually(
            || app.agent(name),
            |s| s["state"] == "running" && s["restarts"] == 2,
        )
        .await;
        assert_eq!(status["stalls"], 1, "{name} after a hang: {status}");

        let reply = app
            .admin_post(&format!("/api/v1/system/agents/{name}/restart"), Vec::new())
            .await;
        let status = reply.data();
        assert_eq!(status["state"], "running", "{name}: {status}");
        assert_eq!(
            status["restarts"], 3,
            "{name} after an admin restart: {status}"
        );
    }

    app.selfheal().shutdown().await;
    // `stopped` is final: it must hold while the agents' threads wind down, not only at once.
    let until = Instant::now() + Duration::from_millis(250);
    while Instant::now() < until {
        for name in &names {
            let status = app.selfheal().actors.find(name).unwrap().status.get();
            assert_eq!(status.kind, ActorKind::Agent);
            assert_eq!(status.state, AgentState::Stopped, "{name}: {status:?}");
            assert!(!status.running, "{name}: {status:?}");
            assert_eq!(status.restarts, 3, "{name} lost its history: {status:?}");
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_switched_off_agent_is_listed_disabled_and_cannot_be_restarted() {
    let app = spawn_host_app_with(&[("PROBE_AGENT_ENABLED", "false")], registry).await;
    let probe: Value = app.agent("Probe").await;
    assert_eq!(probe["state"], "disabled", "{probe}");
    assert_eq!(probe["enabled"], false, "{probe}");
    let reply = app
        .admin_post("/api/v1/system/agents/probe/restart", Vec::new())
        .await;
    crate::helpers::assert_error(&reply, 409, "CONFLICT");
    assert!(app.selfheal().agent::<ProbeAgent>().is_none());
}

#[actix_web::test]
async fn decision_events_wait_for_a_busy_agent_and_those_beyond_its_queue_are_counted_and_alerted()
{
    use selfheal::actors::harness::MAX_RELIABLE_EVENTS;
    // A long deadline: the hang below keeps the probe busy without being a stall.
    let app = spawn_host_app_with(&[("AGENT_JOB_TIMEOUT_MS", "60000")], registry).await;
    let before = eventually(|| app.agent("Probe"), |s| s["ticks"].as_u64() >= Some(1)).await;
    let handled_before = before["events_handled"].as_u64().unwrap_or(0);
    assert_eq!(
        app.selfheal().inject_agent_hang("Probe", 3_000).await,
        Ok(true)
    );
    // Its next tick (every 50 ms) hangs; then every alert event has to wait for it.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    const OVER: usize = 50;
    for _ in 0..MAX_RELIABLE_EVENTS + OVER {
        app.selfheal()
            .bus
            .do_send(selfheal::actors::event_bus::Publish(Event::new(
                "compliance",
                event_for(Channel::Alert),
            )));
    }
    let lost = crate::alerts::within(
        Duration::from_secs(10),
        || crate::alerts::alerts(&app, "type=EVENTS_LOST"),
        |a| !a.is_empty(),
    )
    .await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["severity"], "high", "{}", lost[0]);
    assert!(
        lost[0]["message"].as_str().unwrap_or("").contains("Probe"),
        "{}",
        lost[0]
    );
    // Every queued one is handled once the job ends; the overflow is counted lost.
    let after = crate::alerts::within(
        Duration::from_secs(15),
        || app.agent("Probe"),
        |s| s["events_handled"].as_u64() >= Some(handled_before + MAX_RELIABLE_EVENTS as u64),
    )
    .await;
    assert!(
        after["events_handled"].as_u64() >= Some(handled_before + MAX_RELIABLE_EVENTS as u64),
        "{after}"
    );
    // The overflow, and possibly the alert events of the EVENTS_LOST alert itself (published
    // while the queue was still full).
    let dropped = after["dropped_events"].as_u64().unwrap_or(0);
    assert!(
        (OVER as u64..=OVER as u64 + 2).contains(&dropped),
        "{after}"
    );
    assert_eq!(after["stalls"], 0, "{after}");
}
