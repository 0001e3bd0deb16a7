//! Slack: an incoming-webhook POST with a Block Kit message.
//!
//! The message: `channel`, a `text` fallback (with `SLACK_MENTION`, converted to real Slack
//! mention syntax, on critical triggers and repeats), `blocks` (header, message, the facts,
//! the resolution, a context line with the alert link) and one `attachments` entry carrying
//! the original's severity colour. Acknowledgements are not posted. Slack accepts about one
//! message per second per webhook, so the worker keeps 1 s between requests; a 429 is retried
//! after its `Retry-After`.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    clip_chars, facts, is_web_link, resolution_text, severity_label, Delivered, Notice, Notifier,
    NotifyError,
};
use crate::config::NotifySettings;
use crate::domain::alert::{ChannelKind, NotifyAction, Severity};
use crate::outbound::HttpClient;

/// Slack's limits for a header's text and a section's text.
const HEADER_CHARS: usize = 150;
const SECTION_CHARS: usize = 3000;
/// Colour of a resolved alert (Slack's "good" green).
const RESOLVED_COLOUR: &str = "#2eb67d";

/// The Slack channel.
pub struct SlackNotifier {
    client: HttpClient,
    webhook_url: String,
    channel: String,
    mention: String,
}

impl SlackNotifier {
    /// The channel, with its client (call on the worker's arbiter). Without a webhook URL
    /// every send fails permanently.
    pub fn new(s: &NotifySettings) -> Self {
        SlackNotifier {
            client: HttpClient::new(Duration::from_millis(s.timeout_ms.max(1)), true),
            webhook_url: s.slack_webhook_url.clone().unwrap_or_default(),
            channel: s.slack_channel.clone(),
            mention: mention(&s.slack_mention),
        }
    }
}

impl Notifier for SlackNotifier {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Slack
    }

    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn send(&self, notice: &Notice) -> Result<Delivered, NotifyError> {
        if self.webhook_url.is_empty() {
            return Err(NotifyError::permanent("SLACK_WEBHOOK_URL is not set"));
        }
        let body = payload(notice, &self.channel, &self.mention);
        let answer = self
            .client
            .post_json(&self.webhook_url, &body, &[&self.webhook_url])
            .await?;
        Ok(Delivered {
            http_status: Some(answer.status),
            detail: Default::default(),
        })
    }
}

/// `SLACK_MENTION` in Slack's syntax: `@channel`/`@here`/`@everyone` → `<!channel>`…, a user
/// id (`U…`, `W…`) → `<@U…>`, a user group id (`S…`) → `<!subteam^S…>`; anything already in
/// `<…>` is kept, anything else is kept as text. Several may be given, separated by spaces or
/// commas.
pub(crate) fn mention(raw: &str) -> String {
    raw.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            if t.starts_with('<') && t.ends_with('>') {
                return t.to_owned();
            }
            let bare = t.strip_prefix('@').unwrap_or(t);
            let is_id = bare.len() >= 3
                && bare
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            match bare {
                "channel" | "here" | "everyone" => format!("<!{bare}>"),
                _ if is_id && (bare.starts_with('U') || bare.starts_with('W')) => {
                    format!("<@{bare}>")
                }
                _ if is_id && bare.starts_with('S') => format!("<!subteam^{bare}>"),
                _ => escape(t),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Escape text for Slack's mrkdwn and `text` (`&`, `<`, `>` only, as Slack documents).
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The original's colours: critical red, high orange, medium yellow, low blue, else grey.
fn colour(notice: &Notice) -> &'static str {
    if notice.action == NotifyAction::Resolve {
        return RESOLVED_COLOUR;
    }
    match notice.alert.severity {
        Severity::Critical => "#ff0000",
        Severity::High => "#ff6600",
        Severity::Medium => "#ffcc00",
        Severity::Low => "#0066ff",
        Severity::Info => "#cccccc",
    }
}

/// The webhook body for `notice`; `mention` is already in Slack syntax.
pub(crate) fn payload(notice: &Notice, channel: &str, mention: &str) -> Value {
    let a = &notice.alert;
    let kind = &a.alert_type;
    let (header, summary) = match notice.action {
        NotifyAction::Resolve => (
            format!("✅ Resolved: {kind}"),
            format!("✅ Resolved: {kind} on {}", a.component),
        ),
        NotifyAction::Repeat => (
            format!("🔁 Still firing: {kind}"),
            format!(
                "🔁 Still firing: [{}] {kind} on {}",
                severity_label(a),
                a.component
            ),
        ),
        NotifyAction::Trigger | NotifyAction::Acknowledge => (
            format!("🚨 {kind}"),
            format!("🚨 [{}] {kind} on {}", severity_label(a), a.component),
        ),
    };
    let mut text = format!("{}: {}", escape(&summary), escape(&a.message));
    let paging = matches!(notice.action, NotifyAction::Trigger | NotifyAction::Repeat);
    let mut message_line = escape(&a.message);
    if paging && a.severity == Severity::Critical && !mention.is_empty() {
        text = format!("{mention} {text}");
        message_line = format!("{mention} {message_line}");
    }

    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": clip_chars(&header, HEADER_CHARS), "emoji": true } }),
        // The mention goes in a block too: with blocks, `text` is only the notification
        // fallback.
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip_chars(&message_line, SECTION_CHARS) } }),
        json!({ "type": "section", "fields": facts(a).into_iter().map(|(name, value)| json!({
            "type": "mrkdwn",
            "text": clip_chars(&format!("*{name}*\n{}", escape(&value)), 2000),
        })).collect::<Vec<_>>() }),
    ];
    if notice.action == NotifyAction::Resolve {
        let mut r = resolution_text(a);
        if let Some(first) = r.get(..1) {
            r = first.to_uppercase() + &r[1..];
        }
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip_chars(&escape(&r), SECTION_CHARS) } }));
    }
    let link = notice.link.trim();
    let mut context = Vec::new();
    if is_web_link(link) {
        let href = link
            .replace('|', "%7C")
            .replace('>', "%3E")
            .replace('<', "%3C");
        context.push(format!("<{href}|View alert in selfheal>"));
    } else if !link.is_empty() {
        context.push(escape(link));
    }
    context.push(format!("alert `{}`", a.id));
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": context.join(" · ") }] }));

    let mut body = json!({
        "text": text,
        "blocks": blocks,
        "attachments": [{
            "color": colour(notice),
            "fallback": summary,
            "footer": "selfheal",
            "ts": a.last_seen.timestamp(),
        }],
    });
    if !channel.is_empty() {
        body["channel"] = json!(channel);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::super::test_support::notice;
    use super::*;

    #[test]
    fn mentions_become_slack_syntax() {
        assert_eq!(mention("@channel"), "<!channel>");
        assert_eq!(mention("@here, U024BE7LH"), "<!here> <@U024BE7LH>");
        assert_eq!(mention("S0614TZR7"), "<!subteam^S0614TZR7>");
        assert_eq!(mention("<@W123ABC>"), "<@W123ABC>");
        assert_eq!(mention("@everyone"), "<!everyone>");
        assert_eq!(mention("oncall"), "oncall");
        assert_eq!(mention(""), "");
    }

    #[test]
    fn trigger_has_header_facts_message_and_link() {
        let n = notice(NotifyAction::Trigger);
        let p = payload(&n, "#alerts", "<!channel>");
        assert_eq!(p["channel"], "#alerts");
        // High is not critical: no mention.
        assert!(!p["text"].as_str().unwrap().contains("<!channel>"));
        assert!(p["text"]
            .as_str()
            .unwrap()
            .contains("[HIGH] API_SLOW on api"));
        assert_eq!(p["blocks"][0]["text"]["text"], "🚨 API_SLOW");
        assert_eq!(p["blocks"][1]["text"]["text"], "GET /orders p95 is 900 ms");
        let fields: Vec<&str> = p["blocks"][2]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Severity*\nHIGH",
                "*Component*\napi",
                "*Value*\n900",
                "*Threshold*\n500",
                "*Route*\n/orders",
                "*Trace*\n4bf92f3577b34da6a3ce929d0e0e4736",
                "*Occurrences*\n3"
            ]
        );
        let context = p["blocks"][3]["elements"][0]["text"].as_str().unwrap();
        assert!(
            context.contains("<https://ops.example.com/alerts/1|View alert in selfheal>"),
            "{context}"
        );
        assert_eq!(p["attachments"][0]["color"], "#ff6600");
    }

    #[test]
    fn critical_triggers_mention_and_text_is_escaped() {
        let mut n = notice(NotifyAction::Trigger);
        n.alert.severity = Severity::Critical;
        n.alert.message = "a < b & c".into();
        let p = payload(&n, "", "<!here>");
        let text = p["text"].as_str().unwrap();
        assert!(text.starts_with("<!here> "), "{text}");
        assert!(text.ends_with("a &lt; b &amp; c"), "{text}");
        assert!(p.get("channel").is_none());
        assert_eq!(p["attachments"][0]["color"], "#ff0000");
    }

    #[test]
    fn resolve_says_who_and_does_not_mention() {
        let mut n = notice(NotifyAction::Resolve);
        n.alert.severity = Severity::Critical;
        n.alert.auto_resolved = true;
        let p = payload(&n, "#a", "<!channel>");
        assert!(!p["text"].as_str().unwrap().contains("<!channel>"));
        assert_eq!(p["blocks"][0]["text"]["text"], "✅ Resolved: API_SLOW");
        assert_eq!(
            p["blocks"][3]["text"]["text"],
            "Condition cleared (auto-resolved)"
        );
        assert_eq!(p["attachments"][0]["color"], RESOLVED_COLOUR);
    }

    #[test]
    fn a_relative_link_is_shown_as_text() {
        let mut n = notice(NotifyAction::Repeat);
        n.link = "/alerts/1".into();
        let p = payload(&n, "#a", "");
        assert_eq!(p["blocks"][0]["text"]["text"], "🔁 Still firing: API_SLOW");
        let context = p["blocks"][3]["elements"][0]["text"].as_str().unwrap();
        assert!(context.starts_with("/alerts/1 · alert `"), "{context}");
    }
}
