//! Detect and alert, end to end: a host app whose Monitor rules fire, dedupe and resolve,
//! notifying local receivers that stand in for Slack, PagerDuty and an SMTP server. Here: the
//! helpers the `alerts_*` modules share and an alert's whole life (fire, dedup, acknowledge,
//! auto-resolve); `alerts_notify` covers silences, maintenance windows, repeats, email and
//! resolving by hand, `alerts_rules` fires each kind of rule for real, and `alerts_api` covers
//! restarts, filters and the routes' input errors.

use std::time::{Duration, Instant};

use actix_web::http::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_host_app, Reply, TestApp};
use crate::receivers::{HttpReceiver, Received};

/// Host rules off (the test machine's own CPU or memory must not raise alerts), a fast
/// Monitor, a short API window, and every request judged but the test's own calls to the
/// system routes (a slow read of Postgres there would raise an `API_SLOW` of its own).
pub const QUIET_HOST: &[(&str, &str)] = &[
    ("TRACE_EXCLUDE_PATHS", "/health,/api/v1/system"),
    ("CPU_THRESHOLD_PERCENT", "0"),
    ("MEMORY_THRESHOLD_PERCENT", "0"),
    ("DISK_THRESHOLD_PERCENT", "0"),
    ("HEAP_THRESHOLD_PERCENT", "0"),
    ("MONITOR_INTERVAL_MS", "100"),
    ("API_ALERT_WINDOW_MS", "10000"),
    ("API_ALERT_MIN_REQUESTS", "1"),
    ("NOTIFY_BACKOFF_INITIAL_MS", "50"),
    ("NOTIFY_BACKOFF_MAX_MS", "200"),
];

/// Alerts from `GET /alerts` with `query`.
pub async fn alerts(app: &TestApp, query: &str) -> Vec<Value> {
    let reply = app
        .admin_get(&format!("/api/v1/system/alerts?{query}"))
        .await;
    reply.data()["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Poll `probe` until `done` holds, for up to `timeout`.
pub async fn within<T, Fut>(
    timeout: Duration,
    mut probe: impl FnMut() -> Fut,
    done: impl Fn(&T) -> bool,
) -> T
where
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let v = probe().await;
        if done(&v) || Instant::now() >= deadline {
            return v;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Monitor's tick count.
pub async fn ticks(app: &TestApp) -> u64 {
    app.agent("Monitor").await["ticks"].as_u64().unwrap_or(0)
}

/// `(event_action, dedup_key)` of each PagerDuty event.
pub fn pd_actions(requests: &[Received]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| {
            (
                r.body["event_action"].as_str().unwrap_or("").to_owned(),
                r.body["dedup_key"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// `n` requests to `/sleep/{ms}`, one after the other.
pub async fn slow_requests(app: &TestApp, n: usize, ms: u64) {
    for _ in 0..n {
        let r = app.get(&format!("/sleep/{ms}"), &[]).await;
        assert_eq!(r.status.as_u16(), 200);
    }
}

// ---- shared helpers ------------------------------------------------------------------------

/// Every severity to Slack and PagerDuty: tests of the pipeline must not depend on how severe
/// a reading makes its alert.
pub const EVERY_SEVERITY: &str = "critical=slack+pagerduty,high=slack+pagerduty,\
medium=slack+pagerduty,low=slack+pagerduty,info=slack+pagerduty";

/// Local stand-ins for Slack and PagerDuty.
pub struct Channels {
    pub slack: HttpReceiver,
    pub pd: HttpReceiver,
    slack_url: String,
    pd_url: String,
}

impl Channels {
    pub fn start() -> Channels {
        let slack = HttpReceiver::start();
        let pd = HttpReceiver::pagerduty();
        let slack_url = slack.url_for("/services/T0/B0/x");
        let pd_url = pd.url_for("/v2/enqueue");
        Channels {
            slack,
            pd,
            slack_url,
            pd_url,
        }
    }

    /// The settings that send every alert to both.
    pub fn env(&self) -> [(&'static str, &str); 4] {
        [
            ("SLACK_WEBHOOK_URL", self.slack_url.as_str()),
            ("PAGERDUTY_API_KEY", "routing-key-1"),
            ("PAGERDUTY_EVENTS_URL", self.pd_url.as_str()),
            ("ALERT_ROUTES", EVERY_SEVERITY),
        ]
    }
}

/// A host app with [`QUIET_HOST`], and `extra` on top.
pub async fn quiet_host(extra: &[(&str, &str)]) -> TestApp {
    let mut env = QUIET_HOST.to_vec();
    env.extend_from_slice(extra);
    spawn_host_app(&env).await
}

/// `method path` with the admin token and `body` as JSON.
pub async fn send_json(app: &TestApp, method: Method, path: &str, body: &Value) -> Reply {
    let auth = app.bearer();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    app.call(method, path, &headers, body.to_string().into_bytes())
        .await
}

/// `DELETE path` with the admin token.
pub async fn delete(app: &TestApp, path: &str) -> Reply {
    let auth = app.bearer();
    app.call(
        Method::DELETE,
        path,
        &[("authorization", &auth)],
        Vec::new(),
    )
    .await
}

/// `data` of `GET /alerts/{id}`: `{alert, notifications, …}`.
pub async fn detail(app: &TestApp, id: &str) -> Value {
    app.admin_get(&format!("/api/v1/system/alerts/{id}"))
        .await
        .data()
        .clone()
}

/// `(channel, action, status)` of every notification in `detail`, sorted.
pub fn notifications(detail: &Value) -> Vec<(String, String, String)> {
    let field = |n: &Value, f: &str| n[f].as_str().unwrap_or_default().to_owned();
    let mut rows: Vec<_> = detail["notifications"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|n| (field(n, "channel"), field(n, "action"), field(n, "status")))
                .collect()
        })
        .unwrap_or_default();
    rows.sort();
    rows
}

/// `(channel, action, status)` triples, owned.
pub fn rows(want: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    want.iter()
        .map(|(c, a, s)| (c.to_string(), a.to_string(), s.to_string()))
        .collect()
}

/// The one alert `GET /alerts?{query}` lists, once it lists one (fails after `timeout`).
pub async fn one_alert(app: &TestApp, query: &str, timeout: Duration) -> Value {
    let found = within(timeout, || alerts(app, query), |a| !a.is_empty()).await;
    assert_eq!(found.len(), 1, "{query}: {found:?}");
    found[0].clone()
}

/// Alert `id` once `done` holds for it (fails after `timeout`).
pub async fn alert_when(
    app: &TestApp,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let d = within(timeout, || detail(app, id), |d| done(&d["alert"])).await;
    assert!(done(&d["alert"]), "alert {id} within {timeout:?}: {d}");
    d["alert"].clone()
}

/// A string field of an alert (`id`, `fingerprint`, …).
pub fn text(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_owned()
}

/// `POST /alerts/{id}/{action}` with `body`.
pub async fn act(app: &TestApp, id: &str, action: &str, body: &Value) -> Reply {
    send_json(
        app,
        Method::POST,
        &format!("/api/v1/system/alerts/{id}/{action}"),
        body,
    )
    .await
}

/// `(id, active)` of each silence `GET /silences` lists.
pub async fn silences(app: &TestApp) -> Vec<(String, Value)> {
    let reply = app.admin_get("/api/v1/system/silences").await;
    let listed = reply.data()["silences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    listed
        .iter()
        .map(|s| (text(s, "id"), s["active"].clone()))
        .collect()
}

// ---- the whole life of an alert -----------------------------------------------------------

#[actix_web::test]
async fn a_slow_route_fires_once_is_acknowledged_and_resolves_itself() {
    let slack = HttpReceiver::start();
    let pd = HttpReceiver::pagerduty();
    let mut env = QUIET_HOST.to_vec();
    let (slack_url, pd_url) = (
        slack.url_for("/services/T0/B0/x"),
        pd.url_for("/v2/enqueue"),
    );
    env.extend([
        ("API_RESPONSE_THRESHOLD_MS", "50"),
        ("SLACK_WEBHOOK_URL", slack_url.as_str()),
        ("PAGERDUTY_API_KEY", "routing-key-1"),
        ("PAGERDUTY_EVENTS_URL", pd_url.as_str()),
    ]);
    let app = spawn_host_app(&env).await;
    slow_requests(&app, 3, 150).await;

    // Fires after the pending ticks: one alert, one Slack message, one PagerDuty trigger.
    let firing = within(
        Duration::from_secs(5),
        || alerts(&app, "type=API_SLOW"),
        |a| !a.is_empty(),
    )
    .await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    let alert = &firing[0];
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["component"], "api");
    assert_eq!(alert["labels"]["route"], "/sleep/{ms}");
    assert_eq!(
        alert["severity"], "critical",
        "150 ms is 3x the 50 ms threshold"
    );
    assert_eq!(alert["threshold"], 50.0);
    assert!(alert["value"].as_f64().unwrap() > 100.0);
    for field in [
        "id",
        "fingerprint",
        "occurrences",
        "first_seen",
        "last_seen",
        "type",
    ] {
        assert!(!alert[field].is_null(), "{field} missing: {alert}");
    }
    let id = alert["id"].as_str().unwrap().to_owned();
    let fingerprint = alert["fingerprint"].as_str().unwrap().to_owned();
    slack.wait_for(1, Duration::from_secs(5)).await;
    pd.wait_for(1, Duration::from_secs(5)).await;

    // 20 more ticks with the route still slow: still one alert, more occurrences, no new
    // notification.
    let start = ticks(&app).await;
    within(
        Duration::from_secs(10),
        || ticks(&app),
        |t| *t >= start + 20,
    )
    .await;
    let now = alerts(&app, "type=API_SLOW").await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["id"], id.as_str());
    assert!(now[0]["occurrences"].as_i64().unwrap() >= 20, "{}", now[0]);
    assert_eq!(slack.requests().len(), 1);
    assert_eq!(
        pd_actions(&pd.requests()),
        [("trigger".to_owned(), fingerprint.clone())]
    );
    let trigger = &pd.requests()[0].body;
    assert_eq!(trigger["routing_key"], "routing-key-1");
    assert_eq!(trigger["payload"]["severity"], "critical");

    // Acknowledge: PagerDuty hears it with the same dedup_key; nothing is re-notified.
    let reply = app
        .call(
            Method::POST,
            &format!("/api/v1/system/alerts/{id}/acknowledge"),
            &[
                ("authorization", &app.bearer()),
                ("content-type", "application/json"),
            ],
            json!({"who": "alice", "comment": "looking"})
                .to_string()
                .into_bytes(),
        )
        .await;
    let acked = reply.data();
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "alice");
    pd.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(
        pd_actions(&pd.requests())[1],
        ("acknowledge".to_owned(), fingerprint.clone())
    );
    // Acknowledging twice is a conflict.
    let again = app
        .admin_post(
            &format!("/api/v1/system/alerts/{id}/acknowledge"),
            Vec::new(),
        )
        .await;
    assert_error(&again, 409, "CONFLICT");

    // The slow requests leave the window: auto-resolved, PagerDuty resolve, Slack resolution.
    let resolved = within(
        Duration::from_secs(30),
        || async {
            app.admin_get(&format!("/api/v1/system/alerts/{id}"))
                .await
                .body
        },
        |b| b["data"]["alert"]["state"] == "resolved",
    )
    .await;
    let a = &resolved["data"]["alert"];
    assert_eq!(a["state"], "resolved", "{resolved}");
    assert_eq!(a["auto_resolved"], true);
    let pd_seen = pd.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(
        pd_actions(&pd_seen)[2],
        ("resolve".to_owned(), fingerprint.clone())
    );
    let slack_seen = slack.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(slack_seen.len(), 2, "a trigger and a resolution only");
    assert!(
        slack_seen[1].text.to_lowercase().contains("resolved"),
        "{}",
        slack_seen[1].text
    );

    // The notification history of the alert: trigger and resolve on Slack; trigger,
    // acknowledge and resolve on PagerDuty, all sent.
    let history = within(
        Duration::from_secs(5),
        || async {
            app.admin_get(&format!("/api/v1/system/alerts/{id}"))
                .await
                .body
        },
        |b| {
            b["data"]["notifications"]
                .as_array()
                .is_some_and(|n| n.len() >= 5)
        },
    )
    .await;
    let mut seen: Vec<(String, String, String)> = history["data"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap().to_owned(),
                n["action"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String, String)> = [
        ("pagerduty", "acknowledge"),
        ("pagerduty", "resolve"),
        ("pagerduty", "trigger"),
        ("slack", "resolve"),
        ("slack", "trigger"),
    ]
    .iter()
    .map(|(c, a)| (c.to_string(), a.to_string(), "sent".to_owned()))
    .collect();
    assert_eq!(seen, want);

    // Resolving a resolved alert is a conflict.
    let again = app
        .admin_post(&format!("/api/v1/system/alerts/{id}/resolve"), Vec::new())
        .await;
    assert_error(&again, 409, "CONFLICT");
}
