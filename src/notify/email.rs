//! Email: one message per notice to every address in `ALERT_EMAIL_TO`, over SMTP (lettre,
//! `SMTP_URL`), as `multipart/alternative` with a plain-text and an HTML body.
//!
//! Triggers, repeats and resolves are sent; acknowledgements are not. SMTP 4xx replies and
//! connection errors are retried, 5xx replies are not. A bad `SMTP_URL` or address fails
//! every notice permanently, with the reason in the log and in `notification_log`.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use super::{
    clip_chars, facts, is_web_link, redact, resolution_text, severity_label, Delivered, Notice,
    Notifier, NotifyError,
};
use crate::config::NotifySettings;
use crate::domain::alert::{ChannelKind, NotifyAction};

/// Longest subject line.
const SUBJECT_CHARS: usize = 200;

/// The email channel.
pub struct EmailNotifier {
    /// The transport and addresses, or why they could not be set up.
    setup: Result<Setup, String>,
    /// Parts of `SMTP_URL` that must not appear in errors (the URL, its password).
    secrets: Vec<String>,
}

struct Setup {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl EmailNotifier {
    /// The channel, with its transport (built once; no connection is made until a send).
    pub fn new(s: &NotifySettings) -> Self {
        let url = s.smtp_url.clone().unwrap_or_default();
        let secrets = secrets_of(&url);
        let setup = setup(s, &url)
            .map_err(|e| redact(&e, &secrets.iter().map(String::as_str).collect::<Vec<_>>()));
        if let Err(e) = &setup {
            log::error!("email notifications cannot be sent: {e}");
        }
        EmailNotifier { setup, secrets }
    }
}

fn setup(s: &NotifySettings, url: &str) -> Result<Setup, String> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| format!("SMTP_URL is not usable: {e}"))?
        .timeout(Some(Duration::from_millis(s.timeout_ms.max(1))))
        .build();
    let from: Mailbox = s.alert_email_from.trim().parse().map_err(|e| {
        format!(
            "ALERT_EMAIL_FROM `{}` is not an address: {e}",
            s.alert_email_from
        )
    })?;
    let mut to = Vec::new();
    for addr in s
        .alert_email_to
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        to.push(
            addr.parse::<Mailbox>()
                .map_err(|e| format!("ALERT_EMAIL_TO: `{addr}` is not an address: {e}"))?,
        );
    }
    if to.is_empty() {
        return Err("ALERT_EMAIL_TO names no address".to_owned());
    }
    Ok(Setup {
        transport,
        from,
        to,
    })
}

/// The URL and, when it has one, the password in its user info.
fn secrets_of(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    if let Some((userinfo, _)) = rest.split_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            out.push(password.to_owned());
        }
    }
    out
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&self, notice: &Notice) -> Result<Delivered, NotifyError> {
        let setup = self
            .setup
            .as_ref()
            .map_err(|e| NotifyError::permanent(e.clone()))?;
        let mut builder = Message::builder()
            .from(setup.from.clone())
            .subject(subject(notice));
        for to in &setup.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                text_body(notice),
                html_body(notice),
            ))
            .map_err(|e| NotifyError::permanent(format!("the message cannot be built: {e}")))?;
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        match setup.transport.send(message).await {
            Ok(reply) => {
                let mut detail = serde_json::Map::new();
                detail.insert("smtp_code".into(), json!(reply.code().to_string()));
                detail.insert("recipients".into(), json!(setup.to.len()));
                Ok(Delivered {
                    http_status: None,
                    detail,
                })
            }
            Err(e) => {
                let message = redact(&format!("SMTP: {e}"), &secrets);
                // Permanent: a 5xx reply, or a message the client itself rejects. Anything
                // else (4xx, connection, TLS, timeout, a garbled reply) may pass next time.
                if e.is_permanent() || e.is_client() {
                    Err(NotifyError::permanent(message))
                } else {
                    Err(NotifyError::transient(message))
                }
            }
        }
    }
}

/// `[CRITICAL] API_SLOW on api: <message>`, `[RESOLVED] …`, one line.
pub(crate) fn subject(notice: &Notice) -> String {
    let a = &notice.alert;
    let tag = match notice.action {
        NotifyAction::Resolve => "[RESOLVED]".to_owned(),
        NotifyAction::Repeat => format!("[{}] Still firing:", severity_label(a)),
        NotifyAction::Trigger | NotifyAction::Acknowledge => format!("[{}]", severity_label(a)),
    };
    let line = format!("{tag} {} on {}: {}", a.alert_type, a.component, a.message);
    let line: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clip_chars(&line, SUBJECT_CHARS)
}

fn heading(notice: &Notice) -> String {
    let a = &notice.alert;
    match notice.action {
        NotifyAction::Resolve => format!("Resolved: {} on {}", a.alert_type, a.component),
        NotifyAction::Repeat => format!("Still firing: {} on {}", a.alert_type, a.component),
        NotifyAction::Trigger | NotifyAction::Acknowledge => {
            format!("{} on {}", a.alert_type, a.component)
        }
    }
}

pub(crate) fn text_body(notice: &Notice) -> String {
    let a = &notice.alert;
    let mut out = format!("{}\n\n{}\n\n", heading(notice), a.message);
    if notice.action == NotifyAction::Resolve {
        let _ = writeln!(out, "{}\n", resolution_text(a));
    }
    for (name, value) in facts(a) {
        let _ = writeln!(out, "{name}: {value}");
    }
    let _ = writeln!(out, "First seen: {}", a.first_seen.to_rfc3339());
    let _ = writeln!(out, "Last seen: {}", a.last_seen.to_rfc3339());
    let _ = writeln!(out, "Alert id: {}", a.id);
    if !notice.link.trim().is_empty() {
        let _ = writeln!(out, "\nAlert: {}", notice.link.trim());
    }
    out
}

pub(crate) fn html_body(notice: &Notice) -> String {
    let a = &notice.alert;
    let mut out = String::from("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n");
    let _ = writeln!(out, "<h2>{}</h2>", escape_html(&heading(notice)));
    let _ = writeln!(out, "<p>{}</p>", escape_html(&a.message));
    if notice.action == NotifyAction::Resolve {
        let _ = writeln!(
            out,
            "<p><strong>{}</strong></p>",
            escape_html(&resolution_text(a))
        );
    }
    out.push_str("<table cellpadding=\"4\">\n");
    let rows = facts(a).into_iter().chain([
        ("First seen", a.first_seen.to_rfc3339()),
        ("Last seen", a.last_seen.to_rfc3339()),
        ("Alert id", a.id.to_string()),
    ]);
    for (name, value) in rows {
        let _ = writeln!(
            out,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape_html(name),
            escape_html(&value)
        );
    }
    out.push_str("</table>\n");
    let link = notice.link.trim();
    if is_web_link(link) {
        let _ = writeln!(out, "<p><a href=\"{0}\">{0}</a></p>", escape_html(link));
    } else if !link.is_empty() {
        let _ = writeln!(out, "<p>Alert: {}</p>", escape_html(link));
    }
    out.push_str("</body></html>\n");
    out
}

/// Text safe inside HTML elements and double-quoted attributes.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::notice;
    use super::*;
    use crate::domain::alert::Severity;

    #[test]
    fn subjects_carry_severity_or_resolved_on_one_line() {
        let mut n = notice(NotifyAction::Trigger);
        n.alert.severity = Severity::Critical;
        n.alert.message = "slow\nreally".into();
        assert_eq!(subject(&n), "[CRITICAL] API_SLOW on api: slow really");
        n.action = NotifyAction::Resolve;
        assert!(subject(&n).starts_with("[RESOLVED] API_SLOW on api"));
        n.action = NotifyAction::Repeat;
        assert!(subject(&n).starts_with("[CRITICAL] Still firing: API_SLOW"));
    }

    #[test]
    fn bodies_show_the_facts_and_the_link_and_html_is_escaped() {
        let mut n = notice(NotifyAction::Trigger);
        n.alert.message = "<script>alert('x')</script> & more".into();
        let text = text_body(&n);
        assert!(
            text.contains("Value: 900\nThreshold: 500\nRoute: /orders"),
            "{text}"
        );
        assert!(text.contains("Alert: https://ops.example.com/alerts/1"));
        let html = html_body(&n);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        assert!(html.contains("<a href=\"https://ops.example.com/alerts/1\">"));
        assert!(html.contains("<th align=\"left\">Occurrences</th><td>3</td>"));
    }

    #[test]
    fn resolves_say_who_resolved() {
        let mut n = notice(NotifyAction::Resolve);
        n.alert.resolved_by = Some("bob".into());
        assert!(text_body(&n).contains("resolved by bob"));
        assert!(html_body(&n).contains("resolved by bob"));
    }

    #[test]
    fn smtp_passwords_are_secrets() {
        assert_eq!(
            secrets_of("smtps://u:p4ss@mail:465"),
            ["smtps://u:p4ss@mail:465", "p4ss"]
        );
        assert_eq!(secrets_of("smtp://mail:25"), ["smtp://mail:25"]);
    }
}
