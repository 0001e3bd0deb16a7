//! `ExternalProbe`: checks that the endpoints in `EXTERNAL_CHECKS` answer.
//!
//! One `GET` per check, all checks at once, each bounded by `API_TIMEOUT_MS` (connecting,
//! TLS and waiting for the answer's head together). A 2xx answer is up; any other status
//! (redirects are not followed: a 3xx is down), a connection or TLS error, or no answer in
//! time is down. At most [`BODY_LIMIT`] bytes of the body are read, and only so the
//! connection can be reused; what it says does not matter.
//!
//! The probe owns one `awc::Client` (connection pool, TLS configuration), built once. The
//! client is `!Send`, so the probe lives where it is used: inside the Monitor agent, on the
//! agent's arbiter. `https` URLs use rustls with the webpki roots.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::config::ExternalCheck;

/// Body bytes read from an answer at most (the rest is left unread).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The timeout used when `API_TIMEOUT_MS` is 0.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);

/// The outcome of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExternalResult {
    /// The check's name, from `EXTERNAL_CHECKS`.
    pub name: String,
    /// The URL without credentials, query or fragment ([`redact_url`]).
    pub url: String,
    /// A 2xx answer came within the timeout.
    pub up: bool,
    /// The answer's status; `None` when there was no answer.
    pub status: Option<u16>,
    /// From sending the request to the answer's head (or to the failure).
    pub elapsed_ms: f64,
    /// Why the check is down; `None` when it is up.
    pub error: Option<String>,
}

/// A client for probing external endpoints, built once and reused for every probe.
pub struct ExternalProbe {
    client: awc::Client,
    timeout: Duration,
}

impl ExternalProbe {
    /// A probe whose checks each get `timeout` (a zero `timeout` means [`DEFAULT_TIMEOUT`]).
    pub fn new(timeout: Duration) -> ExternalProbe {
        let timeout = if timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            timeout
        };
        // awc's rustls connector panics when no process-wide crypto provider is installed.
        // Installing is idempotent: the error only says one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The connector's own limits (5 s each by default) would cut a longer timeout short,
        // and a shorter one is enforced by the request timeout anyway: align them.
        let connector = awc::Connector::new()
            .timeout(timeout)
            .handshake_timeout(timeout);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .finish();
        ExternalProbe { client, timeout }
    }

    /// Probe every check concurrently; the results are in the order of `checks`. Takes the
    /// slowest check's time: at most the timeout, not the sum of the checks' times.
    pub async fn probe(&self, checks: &[ExternalCheck]) -> Vec<ExternalResult> {
        join_all(checks.iter().map(|check| self.probe_one(check))).await
    }

    async fn probe_one(&self, check: &ExternalCheck) -> ExternalResult {
        let started = Instant::now();
        let answer = self.client.get(check.url.as_str()).send().await;
        let elapsed = started.elapsed();
        let (up, status, error) = match answer {
            Ok(mut res) => {
                let status = res.status();
                // Drained (up to the limit) so the connection can go back to the pool; a body
                // that is late or too long changes nothing about the verdict.
                let left = self.timeout.saturating_sub(elapsed);
                let _ = actix_web::rt::time::timeout(left, res.body().limit(BODY_LIMIT)).await;
                let up = status.is_success();
                let error = (!up).then(|| format!("answered {status}"));
                (up, Some(status.as_u16()), error)
            }
            Err(e) => (false, None, Some(describe(&e, self.timeout))),
        };
        ExternalResult {
            name: check.name.clone(),
            url: redact_url(&check.url),
            up,
            status,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            error,
        }
    }
}

/// A send error in words, timeouts (of the connection or of the answer) as one.
fn describe(e: &awc::error::SendRequestError, timeout: Duration) -> String {
    use awc::error::{ConnectError, SendRequestError};
    match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
            format!("no answer within {} ms", timeout.as_millis())
        }
        other => other.to_string(),
    }
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
}
