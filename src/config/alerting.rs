//! Alerting: the rules' thresholds, the rules' anti-flap and windows, the external checks,
//! and the notification channels.

use super::knobs::{Knobs, Section};
use crate::domain::alert::SeverityRoutes;

/// Alerting thresholds (seed defaults). `0` turns the rule off.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// `API_RESPONSE_THRESHOLD_MS`: p95 latency per route.
    pub api_response_ms: u64,
    /// `API_ERROR_RATE_THRESHOLD`: percent of 5xx answers per route.
    pub api_error_rate_percent: f64,
    /// `DB_QUERY_THRESHOLD_MS`: timed `SELECT 1`.
    pub db_query_ms: u64,
    /// `DB_POOL_THRESHOLD`: percent of the pool in use.
    pub db_pool_percent: f64,
    /// `DB_SLOW_QUERY_MS`: a query slower than this is a slow query.
    pub db_slow_query_ms: u64,
    /// `MEMORY_THRESHOLD_PERCENT`: host memory in use.
    pub memory_percent: f64,
    /// `HEAP_THRESHOLD_PERCENT`: this process's resident memory as a percent of host memory.
    pub heap_percent: f64,
    /// `CPU_THRESHOLD_PERCENT`: host CPU over the last interval.
    pub cpu_percent: f64,
    /// `DISK_THRESHOLD_PERCENT`: the disk holding the working directory.
    pub disk_percent: f64,
    /// `REDIS_RESPONSE_THRESHOLD_MS`: timed `PING`.
    pub redis_response_ms: u64,
    /// `REDIS_MEMORY_THRESHOLD`: used memory as a percent of `maxmemory`.
    pub redis_memory_percent: f64,
}

impl Section for Thresholds {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Thresholds (0 = rule off)");
        Thresholds {
            api_response_ms: k.ms(
                "API_RESPONSE_THRESHOLD_MS",
                500,
                "p95 latency per route over the last minute, ms.",
            ),
            api_error_rate_percent: k.percent(
                "API_ERROR_RATE_THRESHOLD",
                1.0,
                "5xx answers per route over the last minute, percent.",
            ),
            db_query_ms: k.ms("DB_QUERY_THRESHOLD_MS", 100, "Timed SELECT 1, ms."),
            db_pool_percent: k.percent(
                "DB_POOL_THRESHOLD",
                80.0,
                "Connection pool in use (busiest watched pool), percent.",
            ),
            db_slow_query_ms: k.ms(
                "DB_SLOW_QUERY_MS",
                500,
                "An instrumented query slower than this is logged and published as a slow query, ms.",
            ),
            memory_percent: k.percent(
                "MEMORY_THRESHOLD_PERCENT",
                85.0,
                "Host memory in use, percent.",
            ),
            heap_percent: k.percent(
                "HEAP_THRESHOLD_PERCENT",
                90.0,
                "This process's resident memory as a percent of host memory.",
            ),
            cpu_percent: k.percent(
                "CPU_THRESHOLD_PERCENT",
                80.0,
                "Host CPU over the last Monitor interval, percent.",
            ),
            disk_percent: k.percent(
                "DISK_THRESHOLD_PERCENT",
                90.0,
                "Disk holding the working directory, percent.",
            ),
            redis_response_ms: k.ms(
                "REDIS_RESPONSE_THRESHOLD_MS",
                50,
                "Timed Redis PING, ms.",
            ),
            redis_memory_percent: k.percent(
                "REDIS_MEMORY_THRESHOLD",
                80.0,
                "Redis used memory as a percent of maxmemory (when maxmemory is set).",
            ),
        }
    }
}

/// An external endpoint the Monitor probes (`EXTERNAL_CHECKS=name=url,…`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalCheck {
    pub name: String,
    pub url: String,
}

/// Alert rules.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `ALERT_PENDING_TICKS`: consecutive breaching ticks before a rule fires.
    pub pending_ticks: u32,
    /// `ALERT_RESOLVE_TICKS`: consecutive clear ticks before a firing rule resolves.
    pub resolve_ticks: u32,
    /// `ALERT_HYSTERESIS_PERCENT`: a firing rule is clear only this far under its threshold.
    pub hysteresis_percent: f64,
    /// `ALERT_REPEAT_INTERVAL_MS`: re-notify a firing, unacknowledged alert this often; 0: never.
    pub repeat_interval_ms: u64,
    /// `API_ALERT_WINDOW_MS`: the API rules look at the requests of this last stretch.
    pub api_window_ms: u64,
    /// `API_ALERT_MIN_REQUESTS`: fewer requests in the window are not judged.
    pub api_min_requests: u64,
    /// `EXTERNAL_CHECKS`: `name=url` pairs.
    pub external_checks: Vec<ExternalCheck>,
}

impl Section for AlertSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Alert rules");
        AlertSettings {
            pending_ticks: k.int(
                "ALERT_PENDING_TICKS",
                2,
                1,
                10_000,
                "Consecutive breaching Monitor ticks before a rule fires.",
            ) as u32,
            resolve_ticks: k.int(
                "ALERT_RESOLVE_TICKS",
                2,
                1,
                10_000,
                "Consecutive clear ticks before a firing rule resolves itself.",
            ) as u32,
            hysteresis_percent: k.float(
                "ALERT_HYSTERESIS_PERCENT",
                10.0,
                0.0,
                99.0,
                "A firing rule counts as clear only this many percent under its threshold.",
            ),
            repeat_interval_ms: k.ms(
                "ALERT_REPEAT_INTERVAL_MS",
                14_400_000,
                "Re-notify a firing, unacknowledged alert this often, ms (4 h); 0 = never.",
            ),
            // The 10-second ring holds 80 s: a longer window would need the coarse ring.
            api_window_ms: k.int(
                "API_ALERT_WINDOW_MS",
                60_000,
                10_000,
                60_000,
                "The API rules judge the requests of this last stretch, ms (10000-60000).",
            ),
            api_min_requests: k.int(
                "API_ALERT_MIN_REQUESTS",
                5,
                1,
                1_000_000,
                "Routes with fewer requests in the window are not judged.",
            ),
            external_checks: external_checks(k),
        }
    }
}

/// `EXTERNAL_CHECKS`: `name=url,…` with http(s) URLs and distinct names.
fn external_checks(k: &mut Knobs<'_>) -> Vec<ExternalCheck> {
    const KEY: &str = "EXTERNAL_CHECKS";
    let Some(v) = k.raw(
        KEY,
        "",
        "External endpoints to probe: name=url,... (non-2xx or timeout is a failure).",
    ) else {
        return Vec::new();
    };
    let mut out: Vec<ExternalCheck> = Vec::new();
    for (i, part) in v
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let parsed = part.split_once('=').and_then(|(name, url)| {
            let (name, url) = (name.trim(), url.trim());
            let scheme_ok = url
                .split_once("://")
                .is_some_and(|(s, rest)| matches!(s, "http" | "https") && !rest.is_empty());
            (!name.is_empty() && scheme_ok).then(|| ExternalCheck {
                name: name.to_owned(),
                url: url.to_owned(),
            })
        });
        // Never echo the entry: its URL may carry a password or a token.
        let name = part.split_once('=').map_or("", |(n, _)| n.trim());
        let entry = i + 1;
        match parsed {
            Some(c) if out.iter().any(|o| o.name == c.name) => k.problem_hidden(
                KEY,
                &format!("entry {entry}: the check name {name:?} is used twice"),
            ),
            Some(c) => out.push(c),
            None => k.problem_hidden(KEY, &format!("entry {entry}: expected name=http(s)://…")),
        }
    }
    out
}

/// Notification channels.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `SLACK_WEBHOOK_URL`: Slack is on when set.
    pub slack_webhook_url: Option<String>,
    /// `SLACK_CHANNEL`.
    pub slack_channel: String,
    /// `SLACK_MENTION`: added on critical alerts.
    pub slack_mention: String,
    /// `PAGERDUTY_API_KEY`: the Events v2 routing key; PagerDuty is on when set.
    pub pagerduty_api_key: Option<String>,
    /// `PAGERDUTY_EVENTS_URL`: the Events API v2 endpoint.
    pub pagerduty_events_url: String,
    /// `SMTP_URL`: `smtp://host:port` (`smtps://` for TLS); email needs it and `ALERT_EMAIL_TO`.
    pub smtp_url: Option<String>,
    /// `ALERT_EMAIL_TO`: email is on when set.
    pub alert_email_to: Option<String>,
    /// `ALERT_EMAIL_FROM`.
    pub alert_email_from: String,
    /// `ALERT_ROUTES`: which channels each severity goes to.
    pub routes: SeverityRoutes,
    /// `ALERT_LINK_BASE_URL`: prefix of the alert link in messages.
    pub link_base_url: String,
    /// `NOTIFY_TIMEOUT_MS`: per attempt.
    pub timeout_ms: u64,
    /// `NOTIFY_MAX_ATTEMPTS`: attempts per notification before it is given up.
    pub max_attempts: u32,
    /// `NOTIFY_BACKOFF_INITIAL_MS`: delay before the first retry (doubled each time, jittered).
    pub backoff_initial_ms: u64,
    /// `NOTIFY_BACKOFF_MAX_MS`: longest delay between retries.
    pub backoff_max_ms: u64,
    /// `NOTIFY_QUEUE_MAX`: notifications waiting per channel; more are refused and logged.
    pub queue_max: usize,
}

/// Default PagerDuty Events API v2 endpoint.
const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl Section for NotifySettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Notifications");
        NotifySettings {
            slack_webhook_url: k.url(
                "SLACK_WEBHOOK_URL",
                &["http", "https"],
                "",
                "Slack incoming webhook; Slack is on when set.",
            ),
            slack_channel: k.string(
                "SLACK_CHANNEL",
                "#system-alerts",
                "Channel named in Slack messages.",
            ),
            slack_mention: k.string(
                "SLACK_MENTION",
                "@channel",
                "Mention on critical alerts (@channel, @here, @everyone, or a Slack user/group id like U123).",
            ),
            pagerduty_api_key: k.optional(
                "PAGERDUTY_API_KEY",
                "PagerDuty Events v2 routing key; PagerDuty is on when set.",
            ),
            pagerduty_events_url: k
                .url(
                    "PAGERDUTY_EVENTS_URL",
                    &["http", "https"],
                    PAGERDUTY_EVENTS_URL,
                    "PagerDuty Events API v2 endpoint.",
                )
                .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_owned()),
            smtp_url: k.url(
                "SMTP_URL",
                &["smtp", "smtps"],
                "",
                "SMTP server for alert e-mail, smtp://host:port (smtps:// for TLS, smtp://user:pass@host:587?tls=required for STARTTLS).",
            ),
            alert_email_to: k.optional(
                "ALERT_EMAIL_TO",
                "Alert e-mail recipients, comma-separated; e-mail is on when this and SMTP_URL are set.",
            ),
            alert_email_from: k.string(
                "ALERT_EMAIL_FROM",
                "alerts@leadsite.ai",
                "Sender of alert e-mails.",
            ),
            routes: routes(k),
            link_base_url: k.string(
                "ALERT_LINK_BASE_URL",
                "",
                "Prefix of the alert link in messages, e.g. https://ops.example.com (the link is <prefix>/api/v1/system/alerts/<id>).",
            ),
            timeout_ms: k.int(
                "NOTIFY_TIMEOUT_MS",
                10_000,
                1,
                600_000,
                "Timeout of one notification attempt, ms.",
            ),
            max_attempts: k.int(
                "NOTIFY_MAX_ATTEMPTS",
                5,
                1,
                100,
                "Attempts per notification before it is given up.",
            ) as u32,
            backoff_initial_ms: k.int(
                "NOTIFY_BACKOFF_INITIAL_MS",
                1_000,
                1,
                3_600_000,
                "Delay before the first retry, ms (doubled per attempt, with jitter).",
            ),
            backoff_max_ms: k.int(
                "NOTIFY_BACKOFF_MAX_MS",
                60_000,
                1,
                3_600_000,
                "Longest delay between retries, ms.",
            ),
            queue_max: k.int(
                "NOTIFY_QUEUE_MAX",
                1_000,
                1,
                1_000_000,
                "Notifications waiting per channel; more are refused and logged.",
            ) as usize,
        }
    }
}

/// `ALERT_ROUTES`: `severity=channel+channel,…` (see [`SeverityRoutes::parse`]).
fn routes(k: &mut Knobs<'_>) -> SeverityRoutes {
    const KEY: &str = "ALERT_ROUTES";
    let fallback = || {
        SeverityRoutes::parse(SeverityRoutes::DEFAULT).unwrap_or(SeverityRoutes(Default::default()))
    };
    let Some(v) = k.raw(
        KEY,
        SeverityRoutes::DEFAULT,
        "Channels per severity: severity=channel+channel,... (slack, pagerduty, email, none).",
    ) else {
        return fallback();
    };
    match SeverityRoutes::parse(&v) {
        Ok(r) => r,
        Err(e) => {
            k.problem(KEY, &v, &e);
            fallback()
        }
    }
}
