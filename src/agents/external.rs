//! `ExternalProbe`: checks that the endpoints in `EXTERNAL_CHECKS` answer.
//!
//! One `GET` per check, all checks at once, each bounded by `API_TIMEOUT_MS` (connecting,
//! TLS and waiting for the answer's head together). A 2xx answer is up; any other status
//! (redirects are not followed: a 3xx is down), a connection or TLS error, or no answer in
//! time is down. At most [`BODY_LIMIT`] bytes of the body are read, and only so the
//! connection can be reused; what it says does not matter.
//!
//! The probe owns one [`HttpClient`] (connection pool, TLS configuration), built once. The
//! client is `!Send`, so the probe lives where it is used: inside the Monitor agent, on the
//! agent's arbiter. `https` URLs use rustls with the webpki roots.
//!
//! Each check has a circuit breaker (`external:<name>`): after `CIRCUIT_BREAKER_FAILURES`
//! failures in a row the endpoint is not called for `CIRCUIT_BREAKER_OPEN_MS` (the check stays
//! down, at no cost), then one probe tells whether it is back.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::config::ExternalCheck;
use crate::outbound::{Breakers, HttpClient};
use crate::text::redact_url;

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
    /// Not called: its circuit breaker is open.
    pub skipped: bool,
}

/// A client for probing external endpoints, built once and reused for every probe.
pub struct ExternalProbe {
    client: HttpClient,
    breakers: Breakers,
}

impl ExternalProbe {
    /// A probe whose checks each get `timeout` (a zero `timeout` means [`DEFAULT_TIMEOUT`]),
    /// each behind its breaker from `breakers`.
    pub fn new(timeout: Duration, breakers: Breakers) -> ExternalProbe {
        let timeout = if timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            timeout
        };
        ExternalProbe {
            client: HttpClient::new(timeout, false),
            breakers,
        }
    }

    /// Probe every check concurrently; the results are in the order of `checks`. Takes the
    /// slowest check's time: at most the timeout, not the sum of the checks' times.
    pub async fn probe(&self, checks: &[ExternalCheck]) -> Vec<ExternalResult> {
        join_all(checks.iter().map(|check| self.probe_one(check))).await
    }

    async fn probe_one(&self, check: &ExternalCheck) -> ExternalResult {
        let url = redact_url(&check.url);
        let breaker = self.breakers.get(&format!("external:{}", check.name));
        let permit = match breaker.acquire() {
            Ok(p) => p,
            Err(rejected) => {
                return ExternalResult {
                    name: check.name.clone(),
                    url,
                    up: false,
                    status: None,
                    elapsed_ms: 0.0,
                    error: Some(rejected.to_string()),
                    skipped: true,
                }
            }
        };
        let started = Instant::now();
        let answer = self.client.get_status(check.url.as_str()).await;
        let elapsed = started.elapsed();
        let (up, status, error) = match answer {
            Ok(code) => {
                let up = (200..300).contains(&code);
                (up, Some(code), (!up).then(|| format!("answered {code}")))
            }
            Err(e) => (false, None, Some(e.message)),
        };
        match &error {
            Some(e) => permit.failure(e),
            None => permit.success(),
        }
        ExternalResult {
            name: check.name.clone(),
            url,
            up,
            status,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            error,
            skipped: false,
        }
    }
}
