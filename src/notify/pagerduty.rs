//! PagerDuty: Events API v2 (`POST PAGERDUTY_EVENTS_URL`).
//!
//! Trigger and repeat send a `trigger` event, acknowledge and resolve send `acknowledge` and
//! `resolve`; all carry `dedup_key` = the alert's fingerprint, so repeats of one condition
//! update one incident and the resolve closes it (the original keyed on the alert id, opened
//! an incident per tick, and never resolved). PagerDuty answers 202; 429 and 5xx are retried,
//! 400 (an invalid event) is not.

use std::time::Duration;

use serde_json::{json, Value};

use super::{clip_chars, is_web_link, severity_label, Delivered, Notice, Notifier, NotifyError};
use crate::config::NotifySettings;
use crate::domain::alert::{ChannelKind, NotifyAction, Severity};
use crate::outbound::HttpClient;

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_CHARS: usize = 1024;

/// The PagerDuty channel.
pub struct PagerDutyNotifier {
    client: HttpClient,
    events_url: String,
    routing_key: String,
}

impl PagerDutyNotifier {
    /// The channel, with its client (call on the worker's arbiter). Without a routing key
    /// every send fails permanently.
    pub fn new(s: &NotifySettings) -> Self {
        PagerDutyNotifier {
            client: HttpClient::new(Duration::from_millis(s.timeout_ms.max(1)), true),
            events_url: s.pagerduty_events_url.clone(),
            routing_key: s.pagerduty_api_key.clone().unwrap_or_default(),
        }
    }
}

impl Notifier for PagerDutyNotifier {
    fn kind(&self) -> ChannelKind {
        ChannelKind::PagerDuty
    }

    fn row_detail(&self, notice: &Notice) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("dedup_key".into(), json!(notice.alert.fingerprint));
        m.insert("event_action".into(), json!(event_action(notice.action)));
        m
    }

    async fn send(&self, notice: &Notice) -> Result<Delivered, NotifyError> {
        if self.routing_key.is_empty() {
            return Err(NotifyError::permanent("PAGERDUTY_API_KEY is not set"));
        }
        let body = event(notice, &self.routing_key);
        let answer = self
            .client
            .post_json(&self.events_url, &body, &[&self.routing_key])
            .await?;
        let mut detail = serde_json::Map::new();
        // PagerDuty echoes the key it used; keep it when it says something else.
        if let Some(key) = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| {
                v.get("dedup_key")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .filter(|k| *k != notice.alert.fingerprint)
        {
            detail.insert("answered_dedup_key".into(), json!(key));
        }
        Ok(Delivered {
            http_status: Some(answer.status),
            detail,
        })
    }
}

fn event_action(action: NotifyAction) -> &'static str {
    match action {
        NotifyAction::Trigger | NotifyAction::Repeat => "trigger",
        NotifyAction::Acknowledge => "acknowledge",
        NotifyAction::Resolve => "resolve",
    }
}

/// Our severity in PagerDuty's four: critical, error, warning, info.
pub(crate) fn pd_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

/// The event for `notice`.
pub(crate) fn event(notice: &Notice, routing_key: &str) -> Value {
    let a = &notice.alert;
    let action = event_action(notice.action);
    if action != "trigger" {
        return json!({ "routing_key": routing_key, "event_action": action, "dedup_key": a.fingerprint });
    }
    let summary = clip_chars(
        &format!("[{}] {}: {}", severity_label(a), a.alert_type, a.message),
        SUMMARY_CHARS,
    );
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": a.fingerprint,
        "payload": {
            "summary": summary,
            "source": "selfheal",
            "severity": pd_severity(a.severity),
            "timestamp": a.last_seen,
            "component": a.component,
            "group": a.alert_type,
            "custom_details": {
                "alert_id": a.id,
                "value": a.value,
                "threshold": a.threshold,
                "occurrences": a.occurrences,
                "labels": a.labels,
                "first_seen": a.first_seen,
            },
        },
    });
    if is_web_link(&notice.link) {
        body["links"] = json!([{ "href": notice.link.trim(), "text": "Alert in selfheal" }]);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::super::test_support::notice;
    use super::*;

    #[test]
    fn trigger_carries_fingerprint_summary_severity_and_link() {
        let n = notice(NotifyAction::Trigger);
        let e = event(&n, "R0UTING");
        assert_eq!(e["routing_key"], "R0UTING");
        assert_eq!(e["event_action"], "trigger");
        assert_eq!(e["dedup_key"], "0123456789abcdef");
        assert_eq!(
            e["payload"]["summary"],
            "[HIGH] API_SLOW: GET /orders p95 is 900 ms"
        );
        assert_eq!(e["payload"]["severity"], "error");
        assert_eq!(e["payload"]["source"], "selfheal");
        assert_eq!(e["payload"]["component"], "api");
        assert_eq!(e["payload"]["group"], "API_SLOW");
        assert_eq!(
            e["payload"]["custom_details"]["alert_id"],
            n.alert.id.to_string()
        );
        assert_eq!(e["payload"]["custom_details"]["value"], 900.0);
        assert_eq!(e["payload"]["custom_details"]["labels"]["route"], "/orders");
        assert_eq!(e["links"][0]["href"], "https://ops.example.com/alerts/1");
    }

    #[test]
    fn repeats_trigger_and_ack_resolve_are_bare() {
        assert_eq!(
            event(&notice(NotifyAction::Repeat), "k")["event_action"],
            "trigger"
        );
        for (action, name) in [
            (NotifyAction::Acknowledge, "acknowledge"),
            (NotifyAction::Resolve, "resolve"),
        ] {
            let e = event(&notice(action), "k");
            assert_eq!(
                e,
                json!({ "routing_key": "k", "event_action": name, "dedup_key": "0123456789abcdef" })
            );
        }
    }

    #[test]
    fn long_summaries_are_cut_and_relative_links_omitted() {
        let mut n = notice(NotifyAction::Trigger);
        n.alert.message = "é".repeat(2000);
        n.link = "/alerts/1".into();
        let e = event(&n, "k");
        assert_eq!(
            e["payload"]["summary"].as_str().unwrap().chars().count(),
            1024
        );
        assert!(e.get("links").is_none());
    }

    #[test]
    fn severities_map_to_pagerduty_levels() {
        let map: Vec<&str> = Severity::ALL.into_iter().map(pd_severity).collect();
        assert_eq!(map, ["critical", "error", "warning", "info", "info"]);
    }
}
