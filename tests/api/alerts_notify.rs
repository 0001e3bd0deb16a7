//! What reaches the channels, end to end: silences and maintenance windows hold notifications
//! back (not alerts), a firing alert is repeated until acknowledged, email reaches every
//! recipient, and resolving by hand tells the channels the alert fired on.

use std::time::Duration;

use actix_web::http::Method;
use serde_json::{json, Value};

use crate::alerts::{
    act, alert_when, delete, detail, notifications, one_alert, pd_actions, quiet_host, rows,
    send_json, silences, slow_requests, text, ticks, within, Channels,
};
use crate::helpers::{assert_error, TestApp};
use crate::receivers::{SmtpMessage, SmtpSink};

// ---- silences and maintenance windows ------------------------------------------------------

/// Fire `API_SLOW` while a silence or maintenance window covers it: recorded and flagged
/// silenced, nothing reaches Slack or PagerDuty, and its history has a `silenced` row per
/// channel. Answers the alert.
async fn fire_while_suppressed(app: &TestApp, ch: &Channels) -> Value {
    slow_requests(app, 2, 150).await;
    let alert = one_alert(app, "type=API_SLOW", Duration::from_secs(5)).await;
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["silenced"], true, "{alert}");
    let id = text(&alert, "id");
    let history = within(
        Duration::from_secs(5),
        || detail(app, &id),
        |d| notifications(d).len() >= 2,
    )
    .await;
    let silenced = rows(&[
        ("pagerduty", "trigger", "silenced"),
        ("slack", "trigger", "silenced"),
    ]);
    assert_eq!(notifications(&history), silenced, "{history}");
    // More ticks and housekeeping rounds (every 250 ms) with the route still slow: still
    // nothing sent, and no further rows.
    let start = ticks(app).await;
    within(Duration::from_secs(5), || ticks(app), |t| *t >= start + 8).await;
    assert!(ch.slack.requests().is_empty(), "{:?}", ch.slack.requests());
    assert!(ch.pd.requests().is_empty(), "{:?}", ch.pd.requests());
    let later = detail(app, &id).await;
    assert_eq!(notifications(&later), silenced, "{later}");
    assert_eq!(later["alert"]["state"], "firing");
    assert!(
        later["alert"]["occurrences"].as_i64().unwrap() >= 8,
        "{later}"
    );
    alert
}

/// The suppression is gone and the alert still fires: notified at once, on both channels.
async fn notified_once_lifted(app: &TestApp, ch: &Channels, alert: &Value) {
    let (id, fp) = (text(alert, "id"), text(alert, "fingerprint"));
    let pd = ch.pd.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(pd_actions(&pd), [("trigger".to_owned(), fp)]);
    let slack = ch.slack.wait_for(1, Duration::from_secs(5)).await;
    assert!(slack[0].text.contains("API_SLOW"), "{}", slack[0].text);
    let a = alert_when(app, &id, Duration::from_secs(5), |a| a["silenced"] == false).await;
    assert_eq!(a["state"], "firing", "{a}");
    let want = rows(&[
        ("pagerduty", "trigger", "sent"),
        ("pagerduty", "trigger", "silenced"),
        ("slack", "trigger", "sent"),
        ("slack", "trigger", "silenced"),
    ]);
    let history = within(
        Duration::from_secs(5),
        || detail(app, &id),
        |d| notifications(d) == want,
    )
    .await;
    assert_eq!(notifications(&history), want, "{history}");
}

#[actix_web::test]
async fn a_silenced_alert_is_recorded_but_notified_only_once_the_silence_is_deleted() {
    let ch = Channels::start();
    let mut env = ch.env().to_vec();
    env.push(("API_RESPONSE_THRESHOLD_MS", "50"));
    let app = quiet_host(&env).await;

    let created = send_json(
        &app,
        Method::POST,
        "/api/v1/system/silences",
        &json!({
            "matchers": [{"field": "type", "value": "API_SLOW"}],
            "duration_ms": 600_000,
            "created_by": "erin",
            "comment": "known slow, fix under way",
        }),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let silence = &created.body["data"];
    assert_eq!(silence["active"], true, "{silence}");
    assert_eq!(silence["created_by"], "erin");
    let silence_id = text(silence, "id");
    assert_eq!(silences(&app).await, [(silence_id.clone(), json!(true))]);

    let alert = fire_while_suppressed(&app, &ch).await;

    let deleted = delete(&app, &format!("/api/v1/system/silences/{silence_id}")).await;
    assert_eq!(deleted.data()["active"], false, "{}", deleted.text);
    assert!(!deleted.data()["deleted_at"].is_null(), "{}", deleted.text);
    notified_once_lifted(&app, &ch, &alert).await;
    assert_eq!(silences(&app).await, [], "a deleted silence is not listed");
    let again = delete(&app, &format!("/api/v1/system/silences/{silence_id}")).await;
    assert_error(&again, 404, "NOT_FOUND");
}

#[actix_web::test]
async fn an_open_maintenance_window_suppresses_notifications_until_it_is_removed() {
    let ch = Channels::start();
    let mut env = ch.env().to_vec();
    env.push(("API_RESPONSE_THRESHOLD_MS", "50"));
    let app = quiet_host(&env).await;

    // Open every day, all day: open now, whatever the time.
    let created = send_json(
        &app,
        Method::POST,
        "/api/v1/system/maintenance-windows",
        &json!({
            "name": "api migration",
            "matchers": [{"field": "component", "value": "api"}],
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "start": "00:00",
            "end": "24:00",
        }),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let window = &created.body["data"];
    assert_eq!(window["active"], true, "{window}");
    let window_id = text(window, "id");
    let listed = app.admin_get("/api/v1/system/maintenance-windows").await;
    let windows = listed.data()["windows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(windows.len(), 1, "{}", listed.text);
    assert_eq!(
        (text(&windows[0], "id"), &windows[0]["active"]),
        (window_id.clone(), &json!(true))
    );

    let alert = fire_while_suppressed(&app, &ch).await;
    let id = text(&alert, "id");
    let history = detail(&app, &id).await;
    let why = &history["notifications"][0]["detail"]["suppressed_by"];
    assert_eq!(
        (&why["kind"], &why["name"]),
        (&json!("maintenance"), &json!("api migration")),
        "{history}"
    );

    let deleted = delete(
        &app,
        &format!("/api/v1/system/maintenance-windows/{window_id}"),
    )
    .await;
    assert_eq!(deleted.data()["active"], false, "{}", deleted.text);
    notified_once_lifted(&app, &ch, &alert).await;
    let listed = app.admin_get("/api/v1/system/maintenance-windows").await;
    assert_eq!(listed.data()["windows"], json!([]), "{}", listed.text);
}

// ---- repeats, email, resolving by hand -----------------------------------------------------

#[actix_web::test]
async fn a_firing_alert_is_notified_again_every_repeat_interval_until_acknowledged() {
    let ch = Channels::start();
    let mut env = ch.env().to_vec();
    env.extend([
        ("API_RESPONSE_THRESHOLD_MS", "50"),
        ("ALERT_REPEAT_INTERVAL_MS", "1000"),
    ]);
    let app = quiet_host(&env).await;
    slow_requests(&app, 2, 150).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    let (id, fp) = (text(&alert, "id"), text(&alert, "fingerprint"));

    // The trigger, then a repeat about every second: PagerDuty re-triggers the same incident,
    // Slack says it is still firing.
    let pd = ch.pd.wait_for(3, Duration::from_secs(8)).await;
    assert_eq!(
        pd_actions(&pd[..3]),
        vec![("trigger".to_owned(), fp.clone()); 3]
    );
    for pair in pd[..3].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(600) && gap < Duration::from_secs(3),
            "repeats {gap:?} apart for a 1 s interval"
        );
    }
    let slack = ch.slack.wait_for(3, Duration::from_secs(8)).await;
    assert!(!slack[0].text.contains("Still firing"), "{}", slack[0].text);
    for repeat in &slack[1..3] {
        assert!(repeat.text.contains("Still firing"), "{}", repeat.text);
    }

    // Acknowledged: PagerDuty hears it after any repeat already queued (a channel keeps its
    // order), and nothing is repeated any more.
    let acked = act(&app, &id, "acknowledge", &json!({"who": "alice"})).await;
    assert_eq!(acked.data()["state"], "acknowledged", "{}", acked.text);
    let pd = within(
        Duration::from_secs(5),
        || async { ch.pd.requests() },
        |r| pd_actions(r).iter().any(|(a, _)| a == "acknowledge"),
    )
    .await;
    let ack_at = pd_actions(&pd)
        .iter()
        .position(|(a, _)| a == "acknowledge")
        .expect("an acknowledge");
    assert!(pd_actions(&pd[..ack_at])
        .iter()
        .all(|(a, k)| a == "trigger" && *k == fp));
    // Slack paces itself to a message a second: let one queued before the acknowledgement out.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let (slack_then, pd_then) = (ch.slack.requests().len(), ch.pd.requests().len());
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let pd = ch.pd.requests();
    assert_eq!(pd.len(), pd_then, "{:?}", pd_actions(&pd));
    assert_eq!(
        pd_actions(&pd[ack_at..]),
        [("acknowledge".to_owned(), fp.clone())]
    );
    assert_eq!(
        ch.slack.requests().len(),
        slack_then,
        "Slack repeated an acknowledged alert"
    );

    let history = notifications(&detail(&app, &id).await);
    for want in rows(&[("pagerduty", "repeat", "sent"), ("slack", "repeat", "sent")]) {
        assert!(history.contains(&want), "{want:?} in {history:?}");
    }
    let stats = app.admin_get("/api/v1/system/alerts").await;
    assert_eq!(stats.data()["stats"]["acknowledged"], 1, "{}", stats.text);
}

#[actix_web::test]
async fn email_reaches_both_recipients_when_an_alert_fires_and_when_it_is_resolved() {
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let app = quiet_host(&[
        ("API_RESPONSE_THRESHOLD_MS", "50"),
        ("SMTP_URL", &smtp),
        ("ALERT_EMAIL_TO", "oncall@example.com, lead@example.com"),
        ("ALERT_EMAIL_FROM", "selfheal@example.com"),
        (
            "ALERT_ROUTES",
            "critical=email,high=email,medium=email,low=email,info=email",
        ),
    ])
    .await;
    slow_requests(&app, 2, 150).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    let id = text(&alert, "id");

    let assert_mail = |m: &SmtpMessage| {
        assert_eq!(m.from, "selfheal@example.com");
        assert_eq!(
            m.to,
            ["oncall@example.com", "lead@example.com"],
            "one message, both recipients"
        );
        let to = m.header("To").unwrap_or_default();
        assert!(
            to.contains("oncall@example.com") && to.contains("lead@example.com"),
            "{to}"
        );
        let kind = m.header("Content-Type").unwrap_or_default();
        assert!(kind.starts_with("multipart/alternative"), "{}", m.data);
        assert!(m.data.contains("Content-Type: text/plain"), "{}", m.data);
        assert!(m.data.contains("Content-Type: text/html"), "{}", m.data);
        assert!(
            m.data.contains(&id),
            "the alert id is in the message: {}",
            m.data
        );
    };
    let mail = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail.len(), 1);
    assert_mail(&mail[0]);
    let subject = mail[0].header("Subject").unwrap_or_default();
    assert!(
        subject.starts_with('[')
            && subject.contains("] API_SLOW on api: ")
            && !subject.contains("RESOLVED"),
        "{subject}"
    );

    let resolved = act(
        &app,
        &id,
        "resolve",
        &json!({"who": "carol", "comment": "cache warmed"}),
    )
    .await;
    assert_eq!(resolved.data()["state"], "resolved", "{}", resolved.text);
    let mail = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_mail(&mail[1]);
    let subject = mail[1].header("Subject").unwrap_or_default();
    assert!(
        subject.starts_with("[RESOLVED] API_SLOW on api"),
        "{subject}"
    );
    assert!(
        mail[1].data.contains("resolved by carol: cache warmed"),
        "{}",
        mail[1].data
    );

    let want = rows(&[("email", "resolve", "sent"), ("email", "trigger", "sent")]);
    let history = within(
        Duration::from_secs(5),
        || detail(&app, &id),
        |d| notifications(d) == want,
    )
    .await;
    assert_eq!(notifications(&history), want, "{history}");
}

#[actix_web::test]
async fn resolving_by_hand_tells_pagerduty_and_a_condition_still_there_fires_anew() {
    let ch = Channels::start();
    let mut env = ch.env().to_vec();
    env.push(("API_RESPONSE_THRESHOLD_MS", "50"));
    let app = quiet_host(&env).await;
    slow_requests(&app, 2, 150).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    let (id, fp) = (text(&alert, "id"), text(&alert, "fingerprint"));
    ch.pd.wait_for(1, Duration::from_secs(5)).await;

    let reply = act(
        &app,
        &id,
        "resolve",
        &json!({"who": "dave", "comment": "restarted the worker"}),
    )
    .await;
    let a = reply.data();
    assert_eq!(a["state"], "resolved", "{a}");
    assert_eq!(a["resolved"], true);
    assert_eq!(a["auto_resolved"], false);
    assert_eq!(a["resolved_by"], "dave");
    assert_eq!(a["resolution"], "restarted the worker");
    assert!(!a["resolved_at"].is_null(), "{a}");
    let pd = ch.pd.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(pd_actions(&pd[..2])[1], ("resolve".to_owned(), fp.clone()));
    let slack = ch.slack.wait_for(2, Duration::from_secs(5)).await;
    assert!(slack[1].text.contains("Resolved"), "{}", slack[1].text);
    let stored = detail(&app, &id).await;
    assert_eq!(stored["alert"]["state"], "resolved", "{stored}");
    assert_eq!(stored["alert"]["resolved_by"], "dave", "{stored}");

    // The route is still slow: its rule fires again after the pending ticks, as a new alert of
    // the same fingerprint (the same PagerDuty incident key).
    let again = one_alert(&app, "type=API_SLOW&state=firing", Duration::from_secs(5)).await;
    assert_ne!(text(&again, "id"), id);
    assert_eq!(text(&again, "fingerprint"), fp);
    let pd = ch.pd.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(pd_actions(&pd)[2], ("trigger".to_owned(), fp));
}

/// The AlertManager's counters from `/health/detailed`.
async fn alert_stats(app: &TestApp) -> Value {
    let r = app.admin_get("/api/v1/system/health/detailed").await;
    r.data()["alerts"].clone()
}

#[actix_web::test]
async fn a_channel_that_refuses_a_notice_is_retried_later_not_on_every_round() {
    use crate::receivers::{HttpReceiver, Scripted};
    // A PagerDuty that answers only after 30 s, and a queue of one: the trigger is taken (and
    // hangs), and the repeats due every 300 ms are refused.
    let pd = HttpReceiver::with_default(Scripted::status(202).delay(Duration::from_secs(30)));
    let pd_url = pd.url_for("/v2/enqueue");
    let app = quiet_host(&[
        ("PAGERDUTY_API_KEY", "routing-key-1"),
        ("PAGERDUTY_EVENTS_URL", pd_url.as_str()),
        ("NOTIFY_QUEUE_MAX", "1"),
        ("NOTIFY_TIMEOUT_MS", "60000"),
        ("API_RESPONSE_THRESHOLD_MS", "50"),
        ("ALERT_REPEAT_INTERVAL_MS", "300"),
    ])
    .await;
    slow_requests(&app, 2, 150).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    assert_eq!(alert["severity"], "critical");
    pd.wait_for(1, Duration::from_secs(5)).await;
    // The first refused repeat sets a 30 s wait: over the next 3 s (12 housekeeping rounds)
    // at most one more refusal is counted.
    let first = within(
        Duration::from_secs(5),
        || alert_stats(&app),
        |s| s["notifications_refused_total"].as_u64() >= Some(1),
    )
    .await;
    let refused = first["notifications_refused_total"].as_u64().unwrap();
    assert!(refused >= 1, "{first}");
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let later = alert_stats(&app).await;
    assert!(
        later["notifications_refused_total"].as_u64().unwrap() <= refused + 1,
        "refused notices are retried on every round: {first} then {later}"
    );
}

#[actix_web::test]
async fn an_escalation_tells_the_channels_told_so_far_and_pages_the_new_ones() {
    let ch = Channels::start();
    // The default routes: high → Slack (and email), critical → Slack and PagerDuty (and email).
    let mut env: Vec<(&str, &str)> = ch
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "ALERT_ROUTES")
        .collect();
    env.push(("API_RESPONSE_THRESHOLD_MS", "100"));
    let app = quiet_host(&env).await;
    // p95 of 170 ms against 100 ms: high, which goes to Slack (and email) only.
    slow_requests(&app, 3, 170).await;
    let alert = one_alert(&app, "type=API_SLOW", Duration::from_secs(5)).await;
    assert_eq!(alert["severity"], "high", "{alert}");
    let id = text(&alert, "id");
    ch.slack.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        ch.pd.requests().is_empty(),
        "{:#?} {}",
        ch.pd.requests(),
        detail(&app, &id).await
    );

    // Far slower: critical. PagerDuty is paged and Slack hears of it again; still one alert.
    slow_requests(&app, 6, 450).await;
    let escalated = alert_when(&app, &id, Duration::from_secs(5), |a| {
        a["severity"] == "critical"
    })
    .await;
    assert_eq!(escalated["severity"], "critical", "{escalated}");
    let pd = ch.pd.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(pd_actions(&pd)[0].0, "trigger");
    let slack = ch.slack.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(slack.len(), 2, "one trigger and one escalation: {slack:#?}");
    let open = crate::alerts::alerts(&app, "type=API_SLOW").await;
    assert_eq!(open.len(), 1, "{open:?}");
}
