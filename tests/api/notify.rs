//! The notification channels against real local receivers: what Slack, PagerDuty and an SMTP
//! server get, how failures are retried, and that channels do not hold each other up.

use std::time::{Duration, Instant};

use chrono::Utc;

use selfheal::domain::alert::{Alert, AlertId, AlertSignal, ChannelKind, NotifyAction, Severity};
use selfheal::notify::{Notice, Notifiers};
use selfheal::store::{NotificationRow, Store};

use crate::helpers::{breakers, test_settings, DEADLINE};
use crate::receivers::{HttpReceiver, Scripted, SmtpSink, SmtpStage};

const ROUTING_KEY: &str = "R0UTINGKEY0123456789";
const WEBHOOK_PATH: &str = "/services/T000/B000/SECRETWEBHOOK";

/// A firing alert of `severity`.
fn alert(alert_type: &str, severity: &str) -> Alert {
    let severity = Severity::parse(severity).expect("a severity");
    let signal = AlertSignal::new(
        alert_type,
        "api",
        severity,
        format!("{alert_type} on GET /orders"),
    )
    .label("route", "/orders")
    .measured(0.0, 500.0)
    // A fingerprint of its own per test alert.
    .label("n", format!("{:016x}", fastrand::u64(..)));
    let mut a = Alert::firing(signal, Utc::now());
    a.occurrences = 2;
    a
}

fn notice(alert: &Alert, action: NotifyAction) -> Notice {
    Notice {
        alert: alert.clone(),
        action,
        link: format!("https://selfheal.example.com/alerts/{}", alert.id),
    }
}

/// Notifiers with fast retries and `overrides` (env names, as in production).
fn start(store: &Store, overrides: &[(&str, &str)]) -> Notifiers {
    let mut env = vec![
        ("NOTIFY_BACKOFF_INITIAL_MS", "20"),
        ("NOTIFY_BACKOFF_MAX_MS", "100"),
        ("NOTIFY_MAX_ATTEMPTS", "3"),
        ("NOTIFY_TIMEOUT_MS", "5000"),
    ];
    env.extend_from_slice(overrides);
    Notifiers::start(&test_settings(&env).notify, store.clone(), &breakers())
}

/// The rows of `alert_id` once there are at least `n` (fails the test after the deadline).
async fn rows(store: &Store, alert_id: AlertId, n: usize) -> Vec<NotificationRow> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = store.notifications(alert_id.0).await.data;
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} notification rows, got {got:#?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

fn statuses(rows: &[NotificationRow]) -> Vec<(&str, &str, i32, Option<i32>)> {
    rows.iter()
        .map(|r| {
            (
                r.action.as_str(),
                r.status.as_str(),
                r.attempt,
                r.http_status,
            )
        })
        .collect()
}

#[actix_web::test]
async fn slack_gets_block_kit_with_a_real_mention_and_no_acknowledgements() {
    let slack = HttpReceiver::start();
    let store = Store::memory(1000, 1 << 26);
    let url = slack.url_for(WEBHOOK_PATH);
    let n = start(
        &store,
        &[
            ("SLACK_WEBHOOK_URL", &url),
            ("SLACK_CHANNEL", "#ops"),
            ("SLACK_MENTION", "@here"),
        ],
    );
    assert_eq!(n.enabled(), [ChannelKind::Slack]);
    let a = alert("API_DOWN", "critical");
    assert!(n.dispatch(ChannelKind::Slack, notice(&a, NotifyAction::Trigger)));
    assert!(n.dispatch(ChannelKind::Slack, notice(&a, NotifyAction::Acknowledge)));
    let mut resolved = a.clone();
    resolved.resolve("alice", None, false, Utc::now());
    assert!(n.dispatch(ChannelKind::Slack, notice(&resolved, NotifyAction::Resolve)));

    let got = slack.wait_for(2, DEADLINE).await;
    let trigger = &got[0];
    assert_eq!(trigger.path, WEBHOOK_PATH);
    assert_eq!(trigger.method, "POST");
    assert_eq!(trigger.header("Content-Type"), Some("application/json"));
    let body = &trigger.body;
    assert_eq!(body["channel"], "#ops");
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("<!here> "), "{text}");
    assert!(text.contains("[CRITICAL] API_DOWN on api"), "{text}");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["text"], "🚨 API_DOWN");
    let fields: Vec<&str> = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["fields"].as_array())
        .flatten()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    for expected in [
        "*Severity*\nCRITICAL",
        "*Component*\napi",
        "*Value*\n0",
        "*Threshold*\n500",
        "*Route*\n/orders",
        "*Occurrences*\n2",
    ] {
        assert!(fields.contains(&expected), "{expected:?} not in {fields:?}");
    }
    assert!(
        body.to_string()
            .contains(&format!("<https://selfheal.example.com/alerts/{}|", a.id)),
        "{body}"
    );
    assert_eq!(body["attachments"][0]["color"], "#ff0000");

    let resolve = &got[1].body;
    assert_eq!(
        resolve["blocks"][0]["text"]["text"],
        "✅ Resolved: API_DOWN"
    );
    assert!(!resolve["text"].as_str().unwrap().contains("<!here>"));
    assert!(
        resolve.to_string().contains("Resolved by alice"),
        "{resolve}"
    );

    let logged = rows(&store, a.id, 2).await;
    assert_eq!(
        statuses(&logged),
        [
            ("trigger", "sent", 1, Some(200)),
            ("resolve", "sent", 1, Some(200))
        ]
    );
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(slack.requests().len(), 2, "the acknowledgement was posted");
    assert_eq!(store.notifications(a.id.0).await.data.len(), 2);
}

#[actix_web::test]
async fn slack_gets_at_most_one_message_per_second() {
    let slack = HttpReceiver::start();
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[("SLACK_WEBHOOK_URL", &slack.url_for(WEBHOOK_PATH))],
    );
    let (a, b) = (alert("API_SLOW", "high"), alert("DB_SLOW", "high"));
    assert!(n.dispatch(ChannelKind::Slack, notice(&a, NotifyAction::Trigger)));
    assert!(n.dispatch(ChannelKind::Slack, notice(&b, NotifyAction::Trigger)));
    let got = slack.wait_for(2, DEADLINE).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(990),
        "{gap:?} between messages"
    );
    assert_eq!(got[0].body["blocks"][0]["text"]["text"], "🚨 API_SLOW");
    assert_eq!(got[1].body["blocks"][0]["text"]["text"], "🚨 DB_SLOW");
}

#[actix_web::test]
async fn slack_rate_limit_waits_for_retry_after_then_delivers() {
    let slack = HttpReceiver::start();
    slack.push_response(429, &[("Retry-After", "1")], "rate_limited");
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[("SLACK_WEBHOOK_URL", &slack.url_for(WEBHOOK_PATH))],
    );
    let a = alert("API_SLOW", "high");
    assert!(n.dispatch(ChannelKind::Slack, notice(&a, NotifyAction::Trigger)));

    let got = slack.wait_for(2, DEADLINE).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert_eq!(got[0].text, got[1].text, "the retry is the same message");
    let logged = rows(&store, a.id, 2).await;
    assert_eq!(
        statuses(&logged),
        [
            ("trigger", "retrying", 1, Some(429)),
            ("trigger", "sent", 2, Some(200))
        ]
    );
    assert!(logged[0].detail["retry_in_ms"].as_u64().unwrap() >= 1000);
    let error = logged[0].error.as_deref().unwrap();
    assert!(error.contains("429"), "{error}");
    assert!(!error.contains("SECRETWEBHOOK"), "{error}");
    let status = n.status();
    assert_eq!(status["slack"]["sent"], 1);
    assert_eq!(status["slack"]["retries"], 1);
    assert_eq!(status["slack"]["queued"], 0);
}

#[actix_web::test]
async fn pagerduty_trigger_ack_and_resolve_share_the_fingerprint_as_dedup_key() {
    let pd = HttpReceiver::pagerduty();
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[
            ("PAGERDUTY_API_KEY", ROUTING_KEY),
            ("PAGERDUTY_EVENTS_URL", &pd.url_for("/v2/enqueue")),
        ],
    );
    assert_eq!(n.enabled(), [ChannelKind::PagerDuty]);
    let a = alert("API_DOWN", "critical");
    for action in [
        NotifyAction::Trigger,
        NotifyAction::Repeat,
        NotifyAction::Acknowledge,
        NotifyAction::Resolve,
    ] {
        assert!(n.dispatch(ChannelKind::PagerDuty, notice(&a, action)));
    }
    let medium = alert("DB_SLOW", "medium");
    assert!(n.dispatch(
        ChannelKind::PagerDuty,
        notice(&medium, NotifyAction::Trigger)
    ));

    let got = pd.wait_for(5, DEADLINE).await;
    let actions: Vec<&str> = got[..4]
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "acknowledge", "resolve"]);
    for r in &got[..4] {
        assert_eq!(r.path, "/v2/enqueue");
        assert_eq!(r.body["dedup_key"], a.fingerprint.as_str());
        assert_eq!(r.body["routing_key"], ROUTING_KEY);
    }
    let trigger = &got[0].body;
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["summary"],
        "[CRITICAL] API_DOWN: API_DOWN on GET /orders"
    );
    assert_eq!(trigger["payload"]["source"], "selfheal");
    assert_eq!(trigger["payload"]["component"], "api");
    assert_eq!(
        trigger["payload"]["custom_details"]["alert_id"],
        a.id.to_string()
    );
    assert_eq!(
        trigger["links"][0]["href"],
        format!("https://selfheal.example.com/alerts/{}", a.id)
    );
    assert!(got[3].body.get("payload").is_none());
    assert_eq!(got[4].body["payload"]["severity"], "warning");
    assert_eq!(got[4].body["dedup_key"], medium.fingerprint.as_str());

    let logged = rows(&store, a.id, 4).await;
    assert!(logged
        .iter()
        .all(|r| r.status == "sent" && r.http_status == Some(202)));
    assert!(logged
        .iter()
        .all(|r| r.detail["dedup_key"] == a.fingerprint.as_str()));
    assert!(logged.iter().all(|r| r.channel == "pagerduty"));
}

#[actix_web::test]
async fn pagerduty_server_errors_are_retried_until_delivered() {
    let pd = HttpReceiver::pagerduty();
    pd.push_response(500, &[], "oops");
    pd.push_response(503, &[], "");
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[
            ("PAGERDUTY_API_KEY", ROUTING_KEY),
            ("PAGERDUTY_EVENTS_URL", &pd.url_for("/v2/enqueue")),
        ],
    );
    let a = alert("API_DOWN", "critical");
    assert!(n.dispatch(ChannelKind::PagerDuty, notice(&a, NotifyAction::Trigger)));
    let logged = rows(&store, a.id, 3).await;
    assert_eq!(
        statuses(&logged),
        [
            ("trigger", "retrying", 1, Some(500)),
            ("trigger", "retrying", 2, Some(503)),
            ("trigger", "sent", 3, Some(202))
        ]
    );
    assert_eq!(pd.requests().len(), 3);
}

#[actix_web::test]
async fn pagerduty_bad_request_fails_at_once_without_retry() {
    let pd = HttpReceiver::pagerduty();
    pd.push_response(
        400,
        &[("content-type", "application/json")],
        r#"{"status":"invalid event","message":"Event object is invalid"}"#,
    );
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[
            ("PAGERDUTY_API_KEY", ROUTING_KEY),
            ("PAGERDUTY_EVENTS_URL", &pd.url_for("/v2/enqueue")),
        ],
    );
    let a = alert("API_DOWN", "critical");
    assert!(n.dispatch(ChannelKind::PagerDuty, notice(&a, NotifyAction::Trigger)));
    let logged = rows(&store, a.id, 1).await;
    assert_eq!(statuses(&logged), [("trigger", "failed", 1, Some(400))]);
    let error = logged[0].error.as_deref().unwrap();
    assert!(error.contains("invalid event"), "{error}");
    assert!(!error.contains(ROUTING_KEY), "{error}");
    // Well past the whole backoff budget: still one request.
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pd.requests().len(), 1);
    assert_eq!(store.notifications(a.id.0).await.data.len(), 1);
    let status = n.status();
    assert_eq!(status["pagerduty"]["failed"], 1);
    assert_eq!(status["pagerduty"]["retries"], 0);
    assert!(status["pagerduty"]["last_error"]
        .as_str()
        .unwrap()
        .contains("HTTP 400"));
}

#[actix_web::test]
async fn email_reaches_every_recipient_with_text_and_html_parts() {
    let sink = SmtpSink::start();
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[
            ("SMTP_URL", &sink.url()),
            ("ALERT_EMAIL_TO", "oncall@example.com, lead@example.com"),
            ("ALERT_EMAIL_FROM", "selfheal@example.com"),
        ],
    );
    assert_eq!(n.enabled(), [ChannelKind::Email]);
    let mut a = alert("API_SLOW", "high");
    a.message = "p95 <900 ms> & rising".into();
    assert!(n.dispatch(ChannelKind::Email, notice(&a, NotifyAction::Trigger)));
    assert!(n.dispatch(ChannelKind::Email, notice(&a, NotifyAction::Acknowledge)));

    let got = sink.wait_for(1, DEADLINE).await;
    let m = &got[0];
    assert_eq!(m.from, "selfheal@example.com");
    assert_eq!(m.to, ["oncall@example.com", "lead@example.com"]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[HIGH] API_SLOW on api: p95 <900 ms> & rising")
    );
    let to = m.header("To").unwrap();
    assert!(
        to.contains("oncall@example.com") && to.contains("lead@example.com"),
        "{to}"
    );
    assert!(
        m.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{}",
        m.data
    );
    assert!(m.data.contains("Content-Type: text/plain"), "{}", m.data);
    assert!(m.data.contains("Content-Type: text/html"), "{}", m.data);
    assert!(m.data.contains("&lt;900 ms&gt; &amp; rising"), "{}", m.data);

    let logged = rows(&store, a.id, 1).await;
    assert_eq!(statuses(&logged), [("trigger", "sent", 1, None)]);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.messages().len(), 1, "the acknowledgement was mailed");
}

#[actix_web::test]
async fn email_transient_smtp_errors_are_retried() {
    let sink = SmtpSink::start();
    sink.fail_next(SmtpStage::Rcpt, "451 4.3.0 try again later");
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[
            ("SMTP_URL", &sink.url()),
            ("ALERT_EMAIL_TO", "oncall@example.com"),
        ],
    );
    let a = alert("API_SLOW", "high");
    assert!(n.dispatch(ChannelKind::Email, notice(&a, NotifyAction::Trigger)));
    let logged = rows(&store, a.id, 2).await;
    assert_eq!(
        statuses(&logged),
        [
            ("trigger", "retrying", 1, None),
            ("trigger", "sent", 2, None)
        ]
    );
    assert!(
        logged[0].error.as_deref().unwrap().contains("451"),
        "{:?}",
        logged[0].error
    );
    assert_eq!(
        sink.wait_for(1, DEADLINE).await[0].to,
        ["oncall@example.com"]
    );
}

#[actix_web::test]
async fn a_slow_channel_does_not_delay_another() {
    let slack = HttpReceiver::with_default(
        Scripted::status(200)
            .body("ok")
            .delay(Duration::from_secs(3)),
    );
    let pd = HttpReceiver::pagerduty();
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[
            ("SLACK_WEBHOOK_URL", &slack.url_for(WEBHOOK_PATH)),
            ("PAGERDUTY_API_KEY", ROUTING_KEY),
            ("PAGERDUTY_EVENTS_URL", &pd.url_for("/v2/enqueue")),
        ],
    );
    let a = alert("API_DOWN", "critical");
    let started = Instant::now();
    assert!(n.dispatch(ChannelKind::Slack, notice(&a, NotifyAction::Trigger)));
    slack.wait_for(1, DEADLINE).await;
    assert!(n.dispatch(ChannelKind::PagerDuty, notice(&a, NotifyAction::Trigger)));
    let logged = rows(&store, a.id, 1).await;
    assert_eq!(logged[0].channel, "pagerduty");
    assert_eq!(logged[0].status, "sent");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "PagerDuty waited for Slack: {:?}",
        started.elapsed()
    );
    assert_eq!(n.status()["slack"]["queued"], 1);
}

#[actix_web::test]
async fn a_full_queue_and_an_unconfigured_channel_refuse_notices() {
    let pd = HttpReceiver::with_default(
        Scripted::status(202)
            .body("{}")
            .delay(Duration::from_millis(500)),
    );
    let store = Store::memory(1000, 1 << 26);
    let n = start(
        &store,
        &[
            ("PAGERDUTY_API_KEY", ROUTING_KEY),
            ("PAGERDUTY_EVENTS_URL", &pd.url_for("/v2/enqueue")),
            ("NOTIFY_QUEUE_MAX", "2"),
        ],
    );
    let alerts: Vec<Alert> = (0..3).map(|_| alert("API_DOWN", "critical")).collect();
    let accepted: Vec<bool> = alerts
        .iter()
        .map(|a| n.dispatch(ChannelKind::PagerDuty, notice(a, NotifyAction::Trigger)))
        .collect();
    assert_eq!(accepted, [true, true, false]);
    assert!(!n.dispatch(
        ChannelKind::Slack,
        notice(&alerts[0], NotifyAction::Trigger)
    ));
    let status = n.status();
    assert_eq!(status["pagerduty"]["refused"], 1);
    assert_eq!(status["pagerduty"]["queued"], 2);
    assert_eq!(status["slack"]["enabled"], false);
    assert_eq!(status["slack"]["refused"], 1);

    // The accepted ones are delivered, in order; the refused one never is.
    let got = pd.wait_for(2, DEADLINE).await;
    assert_eq!(got[0].body["dedup_key"], alerts[0].fingerprint.as_str());
    assert_eq!(got[1].body["dedup_key"], alerts[1].fingerprint.as_str());
    rows(&store, alerts[1].id, 1).await;
    assert!(store.notifications(alerts[2].id.0).await.data.is_empty());
    let drained = Instant::now() + DEADLINE;
    while n.status()["pagerduty"]["queued"] != 0 {
        assert!(Instant::now() < drained, "the queue never drained");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    // Once drained, the queue takes notices again.
    assert!(n.dispatch(
        ChannelKind::PagerDuty,
        notice(&alerts[2], NotifyAction::Trigger)
    ));
}
