//! What every channel shows, and the small text helpers they share: the facts of an alert,
//! numbers as people write them, the resolution sentence, link checks, secret redaction.

use serde_json::Value;

use crate::domain::alert::Alert;
pub(crate) use crate::text::{clip_chars, redact};

/// A number as people write it: `900`, `0`, `0.25` (at most three decimals).
pub(crate) fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "-0" | "" => "0".to_owned(),
        s => s.to_owned(),
    }
}

/// A label or metadata attribute as text (labels first).
fn attribute(alert: &Alert, key: &str) -> Option<String> {
    if let Some(v) = alert.labels.get(key).filter(|v| !v.is_empty()) {
        return Some(v.clone());
    }
    match alert.metadata.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The severity in upper case (`HIGH`).
pub(crate) fn severity_label(alert: &Alert) -> String {
    alert.severity.as_str().to_uppercase()
}

/// The facts every channel shows: Severity, Component, Value, Threshold, Route and Trace when
/// known, Occurrences. "N/A" only when a value is absent (0 shows as 0).
pub(crate) fn facts(alert: &Alert) -> Vec<(&'static str, String)> {
    let num = |v: Option<f64>| v.map_or_else(|| "N/A".to_owned(), format_number);
    let mut out = vec![
        ("Severity", severity_label(alert)),
        ("Component", alert.component.clone()),
        ("Value", num(alert.value)),
        ("Threshold", num(alert.threshold)),
    ];
    if let Some(route) = attribute(alert, "route") {
        out.push(("Route", route));
    }
    if let Some(trace) = attribute(alert, "trace_id") {
        out.push(("Trace", trace));
    }
    out.push(("Occurrences", alert.occurrences.to_string()));
    out
}

/// Who or what resolved the alert, as a sentence fragment.
pub(crate) fn resolution_text(alert: &Alert) -> String {
    let mut s = if alert.auto_resolved {
        "condition cleared (auto-resolved)".to_owned()
    } else {
        match alert.resolved_by.as_deref().filter(|b| !b.is_empty()) {
            Some(by) => format!("resolved by {by}"),
            None => "resolved".to_owned(),
        }
    };
    if let Some(r) = alert.resolution.as_deref().filter(|r| !r.is_empty()) {
        s.push_str(": ");
        s.push_str(r);
    }
    s
}

/// Whether `link` can be rendered as a link (absolute http or https URL).
pub(crate) fn is_web_link(link: &str) -> bool {
    let lower = link.trim().to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && lower.len() > "https://".len()
}

#[cfg(test)]
pub(crate) mod test_support {
    use chrono::Utc;
    use serde_json::json;

    use super::super::Notice;
    use super::*;
    use crate::domain::alert::{AlertSignal, NotifyAction, Severity};

    /// A firing API_SLOW alert on `/orders` (value 900 against 500, seen 3 times).
    pub fn alert() -> Alert {
        let signal = AlertSignal::new(
            "API_SLOW",
            "api",
            Severity::High,
            "GET /orders p95 is 900 ms",
        )
        .label("route", "/orders")
        .measured(900.0, 500.0)
        .with_metadata(json!({ "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736" }));
        let mut a = Alert::firing(signal, Utc::now());
        a.fingerprint = "0123456789abcdef".into();
        a.occurrences = 3;
        a
    }

    pub fn notice(action: NotifyAction) -> Notice {
        Notice {
            alert: alert(),
            action,
            link: "https://ops.example.com/alerts/1".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::alert;
    use super::*;

    #[test]
    fn numbers_show_zero_and_drop_trailing_zeros() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(900.0), "900");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
        assert_eq!(format_number(-0.0001), "0");
        assert_eq!(format_number(12.5), "12.5");
    }

    #[test]
    fn facts_say_na_only_when_absent() {
        let mut a = alert();
        a.value = Some(0.0);
        a.threshold = None;
        let f = facts(&a);
        assert!(f.contains(&("Value", "0".into())));
        assert!(f.contains(&("Threshold", "N/A".into())));
        assert!(f.contains(&("Route", "/orders".into())));
        assert!(f.contains(&("Trace", "4bf92f3577b34da6a3ce929d0e0e4736".into())));
        assert_eq!(f.last(), Some(&("Occurrences", "3".into())));
    }

    #[test]
    fn resolutions_name_who_or_say_auto() {
        let mut a = alert();
        a.resolved_by = Some("alice".into());
        a.resolution = Some("restarted the pool".into());
        assert_eq!(resolution_text(&a), "resolved by alice: restarted the pool");
        a.auto_resolved = true;
        a.resolution = None;
        assert_eq!(resolution_text(&a), "condition cleared (auto-resolved)");
    }
}
