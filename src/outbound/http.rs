//! [`HttpClient`]: the one HTTP client of outbound calls. It wraps an `awc::Client` with a
//! timeout that covers connecting, TLS and waiting for the answer, and classifies outcomes
//! into [`Answer`] or an [`OutboundError`] that says whether a retry can help.
//!
//! `awc::Client` is `!Send`: build one per arbiter (each notifier worker, the Monitor) and keep
//! it for the actor's lifetime (connection pooling), never one per request.

use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use awc::http::StatusCode;
use serde_json::Value;

use super::OutboundError;

/// How much of an error answer's body goes into the error text.
const ERROR_BODY_CHARS: usize = 300;
/// Body bytes read from an answer at most.
pub const BODY_LIMIT: usize = 64 * 1024;

/// An answer with its status (2xx only for [`HttpClient::post_json`]).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// The outbound HTTP client (see the module doc).
pub struct HttpClient {
    client: awc::Client,
    timeout: Duration,
}

impl HttpClient {
    /// A client whose requests each get `timeout`; redirects are followed only when asked (a
    /// probe must see a 3xx as it is).
    pub fn new(timeout: Duration, follow_redirects: bool) -> Self {
        // awc's rustls connector panics when no process-wide crypto provider is installed.
        // Installing is idempotent: the error only says one is installed already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        // The connector's own limits (5 s each by default) would cut a longer timeout short,
        // and a shorter one is enforced by the request timeout anyway: align them.
        let connector = awc::Connector::new()
            .timeout(timeout)
            .handshake_timeout(timeout);
        let mut builder = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .add_default_header((
                "user-agent",
                concat!("selfheal/", env!("CARGO_PKG_VERSION")),
            ));
        if !follow_redirects {
            builder = builder.disable_redirects();
        }
        HttpClient {
            client: builder.finish(),
            timeout,
        }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POST `body` as JSON to `url`; a non-2xx answer is an error. Errors never contain
    /// `secrets` (the URL itself is one: a Slack webhook URL is a credential).
    pub async fn post_json(
        &self,
        url: &str,
        body: &Value,
        secrets: &[&str],
    ) -> Result<Answer, OutboundError> {
        let mut resp = self
            .client
            .post(url)
            .send_json(body)
            .await
            .map_err(|e| send_error(&e, self.timeout, secrets))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // The body is only for the record; an unreadable one does not change the verdict.
        let text = match resp.body().limit(BODY_LIMIT).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => String::new(),
        };
        classify(status, retry_after, text, secrets)
    }

    /// GET `url` and answer its status (any status), draining at most [`BODY_LIMIT`] bytes of
    /// the body within what is left of the timeout so the connection can be reused.
    pub async fn get_status(&self, url: &str) -> Result<u16, OutboundError> {
        let started = std::time::Instant::now();
        let mut res = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| send_error(&e, self.timeout, &[]))?;
        let left = self.timeout.saturating_sub(started.elapsed());
        let _ = actix_web::rt::time::timeout(left, res.body().limit(BODY_LIMIT)).await;
        Ok(res.status().as_u16())
    }
}

fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: String,
    secrets: &[&str],
) -> Result<Answer, OutboundError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(Answer { status: code, body });
    }
    let retryable = matches!(code, 408 | 425 | 429) || status.is_server_error();
    let body = crate::text::clip_chars(body.trim(), ERROR_BODY_CHARS);
    let message = if body.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {body}")
    };
    Err(OutboundError {
        retryable,
        http_status: Some(code),
        retry_after: if retryable { retry_after } else { None },
        message: crate::text::redact(&message, secrets),
    })
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Slack or PagerDuty).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn send_error(e: &SendRequestError, timeout: Duration, secrets: &[&str]) -> OutboundError {
    let text = match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
            format!("no answer within {} ms", timeout.as_millis())
        }
        other => format!("request failed: {other}"),
    };
    let message = crate::text::redact(&text, secrets);
    match e {
        // The URL or the request itself is wrong: the same request fails again.
        SendRequestError::Url(_)
        | SendRequestError::Http(_)
        | SendRequestError::TunnelNotSupported => OutboundError::permanent(message),
        _ => OutboundError::transient(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(code: u16, retry_after: Option<u64>) -> Result<Answer, OutboundError> {
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
