//! The HTTP side shared by Slack and PagerDuty: one `awc::Client` per worker, a JSON POST,
//! and the classification of its outcome into [`Delivered`] or a [`NotifyError`] that says
//! whether a retry makes sense.

use std::time::Duration;

use awc::error::SendRequestError;
use awc::http::StatusCode;
use serde_json::Value;

use super::{clip_chars, redact, NotifyError};

/// How much of an error answer's body goes into the error text.
const ERROR_BODY_CHARS: usize = 300;

/// The client a worker keeps for its lifetime (connection pooling, rustls for https).
pub(crate) fn client(timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .timeout(timeout)
        .add_default_header((
            "user-agent",
            concat!("selfheal/", env!("CARGO_PKG_VERSION")),
        ))
        .finish()
}

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

/// POST `body` as JSON to `url`. Errors never contain `secrets` (the URL itself is one: a
/// Slack webhook URL is a credential).
pub(crate) async fn post_json(
    client: &awc::Client,
    url: &str,
    body: &Value,
    secrets: &[&str],
) -> Result<Answer, NotifyError> {
    let mut resp = client
        .post(url)
        .send_json(body)
        .await
        .map_err(|e| send_error(&e, secrets))?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // The body is only for the record; an unreadable one does not change the verdict.
    let text = match resp.body().limit(64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    classify(status, retry_after, text, secrets)
}

fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: String,
    secrets: &[&str],
) -> Result<Answer, NotifyError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(Answer { status: code, body });
    }
    let retryable = matches!(code, 408 | 425 | 429) || status.is_server_error();
    let body = clip_chars(body.trim(), ERROR_BODY_CHARS);
    let message = if body.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {body}")
    };
    Err(NotifyError {
        retryable,
        http_status: Some(code),
        retry_after: if retryable { retry_after } else { None },
        message: redact(&message, secrets),
    })
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Slack or PagerDuty).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn send_error(e: &SendRequestError, secrets: &[&str]) -> NotifyError {
    let message = redact(&format!("request failed: {e}"), secrets);
    match e {
        // The URL or the request itself is wrong: the same request fails again.
        SendRequestError::Url(_)
        | SendRequestError::Http(_)
        | SendRequestError::TunnelNotSupported => NotifyError::permanent(message),
        _ => NotifyError::transient(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(code: u16, retry_after: Option<u64>) -> Result<Answer, NotifyError> {
        classify(
            StatusCode::from_u16(code).unwrap(),
            retry_after.map(Duration::from_secs),
            format!("answer with key SECRETKEY for {code}"),
            &["SECRETKEY"],
        )
    }

    #[test]
    fn success_server_errors_and_rate_limits_are_classified() {
        assert_eq!(verdict(202, None).unwrap().status, 202);
        let e = verdict(429, Some(3)).unwrap_err();
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(e.http_status, Some(429));
        assert!(verdict(503, None).unwrap_err().retryable);
        for code in [400, 403, 404, 410] {
            let e = verdict(code, Some(1)).unwrap_err();
            assert!(!e.retryable, "{code}");
            assert_eq!(e.retry_after, None);
        }
    }

    #[test]
    fn error_texts_never_carry_secrets() {
        let e = verdict(400, None).unwrap_err();
        assert!(!e.message.contains("SECRETKEY"), "{}", e.message);
        assert!(e.message.starts_with("HTTP 400: "));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
