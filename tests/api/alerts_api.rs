//! The alert routes as a client sees them: alerts and silences that survive a restart on
//! Postgres, the filters and paging of `GET /alerts`, and every input error as the JSON
//! envelope.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::Method;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::alerts::{
    act, alert_when, alerts, delete, detail, notifications, one_alert, pd_actions, quiet_host,
    rows, send_json, silences, slow_requests, text, within, Channels,
};
use crate::helpers::{assert_error, encode, Reply, TestApp};
use crate::infra::TestDb;

#[actix_web::test]
async fn alerts_and_silences_survive_a_restart_and_a_reloaded_alert_resolves_itself() {
    let db = TestDb::create();
    let ch = Channels::start();
    let mut env = ch.env().to_vec();
    env.extend([
        ("DATABASE_URL", db.url.as_str()),
        ("API_RESPONSE_THRESHOLD_MS", "50"),
        ("DB_WRITE_FLUSH_MS", "20"),
    ]);
    let app = quiet_host(&env).await;
    slow_requests(&app, 2, 150).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    let (id, fp) = (text(&alert, "id"), text(&alert, "fingerprint"));
    ch.pd.wait_for(1, Duration::from_secs(5)).await;
    ch.slack.wait_for(1, Duration::from_secs(5)).await;
    // Two silences, one deleted at once, and a maintenance window; none covers the alert.
    let silence = json!({
        "matchers": [{"field": "type", "value": "REDIS_DOWN"}],
        "duration_ms": 3_600_000,
    });
    let window = json!({
        "name": "redis upgrade",
        "matchers": [{"field": "component", "value": "redis"}],
        "days": [6, 7],
        "start": "22:00",
        "end": "02:00",
    });
    let mut created = Vec::new();
    for (path, body) in [
        ("silences", &silence),
        ("silences", &silence),
        ("maintenance-windows", &window),
    ] {
        let reply = send_json(&app, Method::POST, &format!("/api/v1/system/{path}"), body).await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        created.push(text(&reply.body["data"], "id"));
    }
    let (silence_id, gone_id, window_id) = (created[0].clone(), &created[1], &created[2]);
    let deleted = delete(&app, &format!("/api/v1/system/silences/{gone_id}")).await;
    assert_eq!(deleted.status.as_u16(), 200, "{}", deleted.text);
    // Both deliveries are logged (the store reads Postgres here, so they are written).
    let sent = rows(&[
        ("pagerduty", "trigger", "sent"),
        ("slack", "trigger", "sent"),
    ]);
    let before = within(
        Duration::from_secs(5),
        || detail(&app, &id),
        |d| notifications(d) == sent,
    )
    .await;
    assert_eq!(notifications(&before), sent, "{before}");
    app.selfheal().shutdown().await;
    drop(app);
    let sql = format!("SELECT count(*) FROM system_alerts WHERE id = '{id}' AND state = 'firing'");
    assert_eq!(db.scalar(&sql), 1, "the open alert is in Postgres");

    // A new instance on the same database, same receivers.
    let app = quiet_host(&env).await;
    let page = detail(&app, &id).await;
    assert_eq!(page["alert"]["fingerprint"], fp.as_str(), "{page}");
    // Postgres keeps microseconds.
    let micros = |v: &Value| {
        let t = chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        t.timestamp_micros()
    };
    assert_eq!(
        micros(&page["alert"]["first_seen"]),
        micros(&alert["first_seen"]),
        "{page}"
    );
    assert_eq!(notifications(&page), sent, "{page}");
    let listed = within(Duration::from_secs(5), || silences(&app), |s| !s.is_empty()).await;
    assert_eq!(
        listed,
        [(silence_id, json!(true))],
        "the deleted silence stays deleted"
    );
    let windows = app.admin_get("/api/v1/system/maintenance-windows").await;
    let windows = windows.data()["windows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_eq!(
        (text(&windows[0], "id"), text(&windows[0], "name")),
        (window_id.clone(), "redis upgrade".to_owned())
    );
    assert_eq!(windows[0]["days"], json!([6, 7]));

    // The new Monitor sees no slow route: the reloaded alert resolves by itself, and the
    // channels told it fired hear it resolved, under the same incident key.
    let a = alert_when(&app, &id, Duration::from_secs(10), |a| {
        a["state"] == "resolved"
    })
    .await;
    assert_eq!(a["auto_resolved"], true, "{a}");
    assert_eq!(a["resolved_by"], "selfheal", "{a}");
    let pd = ch.pd.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(
        pd_actions(&pd),
        [
            ("trigger".to_owned(), fp.clone()),
            ("resolve".to_owned(), fp)
        ]
    );
    let slack = ch.slack.wait_for(2, Duration::from_secs(5)).await;
    assert!(slack[1].text.contains("Resolved"), "{}", slack[1].text);
    assert_eq!(
        alerts(&app, "type=API_SLOW").await.len(),
        1,
        "the same alert, not a new one"
    );
}

/// Ids of the alerts of `GET /alerts?{query}`, and its `total`.
async fn page(app: &TestApp, query: &str) -> (Vec<String>, u64) {
    let reply = app
        .admin_get(&format!("/api/v1/system/alerts?{query}"))
        .await;
    let data = reply.data();
    let ids = data["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| text(a, "id"))
        .collect();
    (ids, data["total"].as_u64().unwrap())
}

/// The manager's count of open alerts, from `GET /alerts`.
async fn open_alerts(app: &TestApp) -> u64 {
    let reply = app.admin_get("/api/v1/system/alerts").await;
    reply.data()["stats"]["open"].as_u64().unwrap()
}

fn set<'a>(ids: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    ids.into_iter().cloned().collect()
}

#[actix_web::test]
async fn with_postgres_every_change_of_an_alert_is_listed_at_once_though_written_behind() {
    let db = TestDb::create();
    // The default flush: the store lags the manager by up to a second.
    let app = quiet_host(&[
        ("DATABASE_URL", db.url.as_str()),
        ("DB_WRITE_FLUSH_MS", "1000"),
        ("API_RESPONSE_THRESHOLD_MS", "50"),
    ])
    .await;
    slow_requests(&app, 2, 150).await;
    // Raised: as soon as the manager counts it, the next list shows it.
    let open = within(Duration::from_secs(5), || open_alerts(&app), |n| *n == 1).await;
    assert_eq!(open, 1);
    let (ids, total) = page(&app, "").await;
    assert_eq!(
        (ids.len(), total),
        (1, 1),
        "a raised alert is listed at once: {ids:?}"
    );
    let id = ids[0].clone();
    assert_eq!(page(&app, "state=firing").await, (vec![id.clone()], 1));

    // Acknowledged: listed under its new state at once, and no longer under the old one.
    let acked = act(&app, &id, "acknowledge", &json!({})).await;
    assert_eq!(acked.data()["state"], "acknowledged");
    let listed = page(&app, "state=acknowledged").await;
    assert_eq!(
        listed,
        (vec![id.clone()], 1),
        "listed as acknowledged at once"
    );
    assert_eq!(page(&app, "state=firing").await, (vec![], 0));

    // Resolved likewise.
    let resolved = act(&app, &id, "resolve", &json!({})).await;
    assert_eq!(resolved.data()["state"], "resolved");
    let listed = page(&app, "state=resolved").await;
    assert_eq!(listed, (vec![id.clone()], 1), "listed as resolved at once");
    assert_eq!(page(&app, "state=acknowledged").await, (vec![], 0));
}

/// `POST path` with the admin token and `body` as it is, labelled JSON.
async fn raw(app: &TestApp, path: &str, body: &str) -> Reply {
    let auth = app.bearer();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    app.call(Method::POST, path, &headers, body.as_bytes().to_vec())
        .await
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[actix_web::test]
async fn alerts_can_be_filtered_by_state_severity_type_and_time_and_paged() {
    let started = Utc::now();
    let checks: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| format!("{name}=http://127.0.0.1:{}/", closed_port()))
        .collect();
    let checks = checks.join(",");
    let app = quiet_host(&[
        ("EXTERNAL_CHECKS", &checks),
        ("EXTERNAL_CHECK_INTERVAL_MS", "100"),
        ("API_RESPONSE_THRESHOLD_MS", "50"),
    ])
    .await;
    slow_requests(&app, 1, 150).await;
    // Three checks down (medium) and a slow route (critical).
    let all = within(
        Duration::from_secs(5),
        || alerts(&app, ""),
        |a| a.len() == 4,
    )
    .await;
    assert_eq!(all.len(), 4, "{all:?}");
    let of_check = |name: &str| {
        let found = all.iter().find(|a| a["labels"]["check"] == name);
        text(
            found.unwrap_or_else(|| panic!("no alert for check {name}: {all:?}")),
            "id",
        )
    };
    let (a, b, c) = (of_check("a"), of_check("b"), of_check("c"));
    let slow = text(
        all.iter()
            .find(|x| x["type"] == "API_SLOW")
            .expect("API_SLOW"),
        "id",
    );

    // b acknowledged; a resolved by hand, and fired anew since its check still fails.
    assert_eq!(
        act(&app, &b, "acknowledge", &json!({})).await.data()["state"],
        "acknowledged"
    );
    assert_eq!(
        act(&app, &a, "resolve", &json!({})).await.data()["state"],
        "resolved"
    );
    let firing = within(
        Duration::from_secs(5),
        || page(&app, "state=firing"),
        |(ids, _)| ids.len() == 3,
    )
    .await;
    assert_eq!(firing.0.len(), 3, "{firing:?}");
    let a2 = firing
        .0
        .iter()
        .find(|id| ![&slow, &c].contains(id))
        .expect("check a's new alert")
        .clone();
    assert_ne!(a2, a);

    let everything = set([&a, &a2, &b, &c, &slow]);
    assert_eq!(set(&firing.0), set([&a2, &c, &slow]));
    assert_eq!(page(&app, "state=acknowledged").await, (vec![b.clone()], 1));
    assert_eq!(page(&app, "state=resolved").await, (vec![a.clone()], 1));
    assert_eq!(
        page(&app, "severity=critical").await,
        (vec![slow.clone()], 1)
    );
    let (medium, total) = page(&app, "severity=medium").await;
    assert_eq!((set(&medium), total), (set([&a, &a2, &b, &c]), 4));
    assert_eq!(page(&app, "severity=low").await, (vec![], 0));
    assert_eq!(page(&app, "type=API_SLOW").await, (vec![slow.clone()], 1));
    assert_eq!(page(&app, "type=EXTERNAL_API_DOWN").await.1, 4);
    assert_eq!(page(&app, "type=EXTERNAL_API_DOWN&state=firing").await.1, 2);
    assert_eq!(page(&app, "type=NO_SUCH_TYPE").await, (vec![], 0));
    let at = |t: chrono::DateTime<Utc>| encode(&t.to_rfc3339_opts(SecondsFormat::Millis, true));
    assert_eq!(page(&app, &format!("since={}", at(started))).await.1, 5);
    let later = Utc::now() + chrono::Duration::minutes(1);
    assert_eq!(
        page(&app, &format!("since={}", at(later))).await,
        (vec![], 0)
    );

    // Pages of two, newest first, cover every alert once; `total` counts them all.
    let (newest, total) = page(&app, "").await;
    assert_eq!((newest.len(), total), (5, 5));
    assert_eq!(newest[0], a2, "the newest alert first");
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let (ids, total) = page(&app, &format!("limit=2&offset={offset}")).await;
        assert_eq!(total, 5);
        assert_eq!(ids, newest[offset..(offset + 2).min(5)], "offset {offset}");
        seen.extend(ids);
    }
    assert_eq!(set(&seen), everything);
    assert_eq!(page(&app, "limit=2&offset=5").await, (vec![], 5));

    let stats = app.admin_get("/api/v1/system/alerts").await;
    let stats = &stats.data()["stats"];
    assert_eq!(
        (&stats["open"], &stats["firing"], &stats["acknowledged"]),
        (&json!(4), &json!(3), &json!(1)),
        "{stats}"
    );
}

#[actix_web::test]
async fn bad_input_to_the_alert_routes_is_refused_with_the_json_envelope() {
    let app = quiet_host(&[("API_RESPONSE_THRESHOLD_MS", "50")]).await;
    slow_requests(&app, 1, 150).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    let id = text(&alert, "id");
    let base = "/api/v1/system";

    // Ids: not a UUID is a 400, an unknown one a 404, on every alert route.
    for bad in ["not-a-uuid", "1234"] {
        assert_error(
            &app.admin_get(&format!("{base}/alerts/{bad}")).await,
            400,
            "BAD_REQUEST",
        );
        for action in ["acknowledge", "resolve"] {
            assert_error(
                &act(&app, bad, action, &json!({})).await,
                400,
                "BAD_REQUEST",
            );
        }
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_error(
        &app.admin_get(&format!("{base}/alerts/{unknown}")).await,
        404,
        "NOT_FOUND",
    );
    for action in ["acknowledge", "resolve"] {
        assert_error(
            &act(&app, &unknown, action, &json!({})).await,
            404,
            "NOT_FOUND",
        );
    }

    // Filters.
    for query in [
        "state=open",
        "state=",
        "severity=urgent",
        "type=",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "offset=-1",
        "offset=x",
        "since=yesterday",
        "since=2026-13-01T00:00:00Z",
    ] {
        let reply = app.admin_get(&format!("{base}/alerts?{query}")).await;
        assert_error(&reply, 400, "BAD_REQUEST");
    }

    // Bodies of acknowledge and resolve: malformed JSON or an unknown field is a 422, an
    // over-long name a 400; none of them changes the alert.
    for action in ["acknowledge", "resolve"] {
        let path = format!("{base}/alerts/{id}/{action}");
        assert_error(&raw(&app, &path, "{").await, 422, "UNPROCESSABLE_ENTITY");
        assert_error(
            &raw(&app, &path, "[1, 2]").await,
            422,
            "UNPROCESSABLE_ENTITY",
        );
        assert_error(
            &raw(&app, &path, r#"{"whom": "x"}"#).await,
            422,
            "UNPROCESSABLE_ENTITY",
        );
        let long = json!({"who": "x".repeat(256)});
        assert_error(
            &act(&app, &id, action, &long).await,
            422,
            "UNPROCESSABLE_ENTITY",
        );
    }
    assert_eq!(detail(&app, &id).await["alert"]["state"], "firing");

    // Resolved: resolving or acknowledging again is a conflict.
    let resolved = act(&app, &id, "resolve", &json!({"who": "ops"})).await;
    assert_eq!(resolved.data()["state"], "resolved", "{}", resolved.text);
    assert_error(
        &act(&app, &id, "resolve", &json!({})).await,
        409,
        "CONFLICT",
    );
    assert_error(
        &act(&app, &id, "acknowledge", &json!({})).await,
        409,
        "CONFLICT",
    );

    // Silences.
    let silences_path = format!("{base}/silences");
    let matcher = json!([{"field": "type", "value": "API_SLOW"}]);
    let past = (Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let soon = (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    assert_error(&raw(&app, &silences_path, "").await, 400, "BAD_REQUEST");
    assert_error(
        &raw(&app, &silences_path, "{").await,
        422,
        "UNPROCESSABLE_ENTITY",
    );
    for body in [
        json!({}),
        json!({"duration_ms": 60_000}),
        json!({"matchers": [], "duration_ms": 60_000}),
        json!({"matchers": matcher}),
        json!({"matchers": matcher, "duration_ms": 0}),
        json!({"matchers": matcher, "ends_at": past}),
        json!({"matchers": matcher, "ends_at": soon, "duration_ms": 60_000}),
        json!({"matchers": matcher, "ends_at": "tomorrow"}),
        json!({"matchers": matcher, "duration_ms": 60_000, "reason": "unknown field"}),
        json!({"matchers": [{"field": "colour", "value": "red"}], "duration_ms": 60_000}),
        json!({"matchers": [{"field": "type", "value": ""}], "duration_ms": 60_000}),
        json!({"matchers": [{"field": "type"}], "duration_ms": 60_000}),
    ] {
        let reply = send_json(&app, Method::POST, &silences_path, &body).await;
        assert_error(&reply, 422, "UNPROCESSABLE_ENTITY");
    }
    assert_error(
        &delete(&app, &format!("{silences_path}/{unknown}")).await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &delete(&app, &format!("{silences_path}/nope")).await,
        400,
        "BAD_REQUEST",
    );
    assert_eq!(silences(&app).await, [], "no refused silence was created");

    // Maintenance windows.
    let windows_path = format!("{base}/maintenance-windows");
    let window = |days: Value, start: &str, end: &str| json!({"name": "nightly", "days": days, "start": start, "end": end});
    for body in [
        window(json!(["funday"]), "01:00", "02:00"),
        window(json!([]), "01:00", "02:00"),
        window(json!([0]), "01:00", "02:00"),
        window(json!([8]), "01:00", "02:00"),
        window(json!([true]), "01:00", "02:00"),
        window(json!(["mon"]), "25:00", "02:00"),
        window(json!(["mon"]), "24:00", "02:00"),
        window(json!(["mon"]), "01:00", "12:60"),
        window(json!(["mon"]), "1 am", "02:00"),
        window(json!(["mon"]), "01:00", "01:00"),
        json!({"days": ["mon"], "start": "01:00", "end": "02:00"}),
        json!({"name": " ", "days": ["mon"], "start": "01:00", "end": "02:00"}),
        json!({"name": "x", "days": ["mon"], "start": "01:00", "end": "02:00", "utc_offset_minutes": 900}),
        json!({"name": "x", "days": ["mon"], "start": "01:00", "end": "02:00", "matchers": [{"field": "nope", "value": "x"}]}),
        json!({"name": "x", "days": ["mon"], "start": "01:00", "end": "02:00", "every": "week"}),
    ] {
        let reply = send_json(&app, Method::POST, &windows_path, &body).await;
        assert_error(&reply, 422, "UNPROCESSABLE_ENTITY");
    }
    assert_error(&raw(&app, &windows_path, "").await, 400, "BAD_REQUEST");
    assert_error(
        &delete(&app, &format!("{windows_path}/{unknown}")).await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &delete(&app, &format!("{windows_path}/nope")).await,
        400,
        "BAD_REQUEST",
    );
    let listed = app.admin_get(&windows_path).await;
    assert_eq!(
        listed.data()["windows"],
        json!([]),
        "no refused window was created"
    );
}

#[actix_web::test]
async fn a_failed_agent_is_a_critical_alert_until_an_admin_restarts_it() {
    let ch = Channels::start();
    let app = quiet_host(&ch.env()).await;
    app.wait_for_first_tick("Monitor").await;
    assert_eq!(
        app.selfheal().inject_agent_panic("Monitor", 100).await,
        Ok(true)
    );
    let alert = one_alert(&app, "type=AGENT_FAILED", Duration::from_secs(10)).await;
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["labels"]["agent"], "Monitor");
    assert_eq!(alert["state"], "firing");
    let id = text(&alert, "id");
    // Critical: paged.
    ch.pd.wait_for(1, Duration::from_secs(5)).await;

    let r = app
        .admin_post("/api/v1/system/agents/Monitor/restart", Vec::new())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let resolved = alert_when(&app, &id, Duration::from_secs(5), |a| {
        a["state"] == "resolved"
    })
    .await;
    assert_eq!(resolved["auto_resolved"], true, "{resolved}");
    let pd = ch.pd.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(pd_actions(&pd)[1].0, "resolve");
}

#[actix_web::test]
async fn other_agents_can_ask_whether_a_maintenance_window_is_open() {
    use selfheal::actors::alert_manager::InMaintenance;
    use selfheal::domain::alert::Severity;

    let app = quiet_host(&[]).await;
    let ask = |component: &str| InMaintenance {
        alert_type: "DB_SLOW".to_owned(),
        component: component.to_owned(),
        severity: Severity::High,
        labels: Default::default(),
    };
    assert_eq!(
        app.selfheal().alerts.send(ask("database")).await.unwrap(),
        None
    );
    let window = json!({
        "name": "db upgrade",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "00:00",
        "end": "24:00",
        "matchers": [{"field": "component", "value": "database"}],
    });
    let r = send_json(
        &app,
        Method::POST,
        "/api/v1/system/maintenance-windows",
        &window,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_str().unwrap().to_owned();
    let open = app.selfheal().alerts.send(ask("database")).await.unwrap();
    let open = serde_json::to_value(open).unwrap();
    assert_eq!(open["kind"], "maintenance", "{open}");
    assert_eq!(open["name"], "db upgrade");
    // Another component is not covered.
    assert_eq!(
        app.selfheal().alerts.send(ask("redis")).await.unwrap(),
        None
    );
    let r = delete(&app, &format!("/api/v1/system/maintenance-windows/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.selfheal().alerts.send(ask("database")).await.unwrap(),
        None
    );
}

#[actix_web::test]
async fn an_agent_failure_open_at_a_restart_is_resolved_and_pagerduty_told() {
    let db = TestDb::create();
    let ch = Channels::start();
    let mut env = ch.env().to_vec();
    env.extend([
        ("DATABASE_URL", db.url.as_str()),
        ("DB_WRITE_FLUSH_MS", "20"),
    ]);
    let app = quiet_host(&env).await;
    app.wait_for_first_tick("Monitor").await;
    app.selfheal()
        .inject_agent_panic("Monitor", 100)
        .await
        .unwrap();
    let alert = one_alert(&app, "type=AGENT_FAILED", Duration::from_secs(10)).await;
    let (id, fp) = (text(&alert, "id"), text(&alert, "fingerprint"));
    ch.pd.wait_for(1, Duration::from_secs(5)).await;
    // Written (with its notification row) before the process goes.
    let stored = within(
        Duration::from_secs(5),
        || async {
            db.scalar(&format!(
                "SELECT count(*) FROM notification_log WHERE alert_id = '{id}' AND status = 'sent'"
            ))
        },
        |n| *n >= 1,
    )
    .await;
    assert!(stored >= 1);
    app.selfheal().shutdown().await;
    drop(app);

    // The new process starts its agents afresh: the stored alert is resolved, and the
    // incident with it.
    let app = quiet_host(&env).await;
    let resolved = alert_when(&app, &id, Duration::from_secs(10), |a| {
        a["state"] == "resolved"
    })
    .await;
    assert_eq!(resolved["auto_resolved"], true, "{resolved}");
    let pd = ch.pd.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(pd_actions(&pd)[1], ("resolve".to_owned(), fp));
}
