//! Small text helpers shared by the notifiers, the outbound client and the logs: cutting a
//! text to a length, redacting secrets, and making user input safe to log.

/// `s` cut to at most `max` characters, on a character boundary, with `…` when cut.
pub fn clip_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` with every non-empty secret replaced, so error texts never carry a key or URL.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "<redacted>");
    }
    out
}

/// `url` without what may be a secret: user and password, query and fragment
/// (`https://user:pw@host/p?token=x` → `https://host/p`). This is what alerts, health and logs
/// show of a check.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// Longest log line kept, in characters; longer ones are cut with `…`.
pub const LOG_LINE_MAX: usize = 4_096;

/// `s` as one safe log line: newlines, carriage returns and other control characters escaped
/// (`\n`, `\r`, `\t`, `\u{1b}`), so a value from a client can never forge a log line, and
/// cut to [`LOG_LINE_MAX`] characters.
pub fn escape_for_log(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(LOG_LINE_MAX));
    for (chars, c) in s.chars().enumerate() {
        if chars >= LOG_LINE_MAX {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `s` has a control character other than the whitespace a comment may carry
/// (`\n`, `\r`, `\t`). Such text is refused before it is kept: Postgres refuses NUL, and the
/// rest only forges logs and messages.
pub fn has_forbidden_control(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        assert_eq!(
            redact_url("https://u:p@api.example.com/v1/x?token=s#f"),
            "https://api.example.com/v1/x"
        );
        assert_eq!(redact_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(redact_url("http://h:1/p/q"), "http://h:1/p/q");
    }

    #[test]
    fn secrets_are_redacted_and_clipping_keeps_char_boundaries() {
        assert_eq!(
            redact(
                "POST https://hooks/x/SECRET failed",
                &["https://hooks/x/SECRET", ""]
            ),
            "POST <redacted> failed"
        );
        assert_eq!(clip_chars("ééé", 2), "é…");
        assert_eq!(clip_chars("abc", 3), "abc");
    }

    #[test]
    fn log_lines_cannot_be_forged_and_are_cut() {
        assert_eq!(
            escape_for_log("alice\n2026-01-01 ERROR fake\u{0}"),
            "alice\\n2026-01-01 ERROR fake\\u{0}"
        );
        let long = "x".repeat(LOG_LINE_MAX + 10);
        assert_eq!(escape_for_log(&long).chars().count(), LOG_LINE_MAX + 1);
        assert!(has_forbidden_control("a\u{0}b", true));
        assert!(!has_forbidden_control("a\nb", true));
        assert!(has_forbidden_control("a\nb", false));
    }
}
