//! Silences (matchers with a start and an end) and recurring maintenance windows (matchers,
//! weekdays and a time of day): the second stage of the pipeline. A silenced alert is recorded
//! but not notified.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration as ChronoDuration, Timelike, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::alert::{all_match, Alert, Matcher};
use crate::store::{MaintenanceRow, SilenceRow};
use crate::text::has_forbidden_control;

/// Longest comment kept.
pub const COMMENT_MAX_CHARS: usize = 10_000;
/// Longest name of a person (`created_by`, `who`, `X-Admin-User`).
pub const WHO_MAX_CHARS: usize = 255;
/// Longest matcher value.
const MATCHER_VALUE_MAX_CHARS: usize = 255;

/// The longest silence: a year. Longer is a mistake, or a job for routing.
const MAX_SILENCE_DAYS: i64 = 366;

/// `POST /silences`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    pub matchers: Vec<Matcher>,
    /// Default: now.
    pub starts_at: Option<DateTime<Utc>>,
    /// Either `ends_at` or `duration_ms`.
    pub ends_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
}

/// `POST /maintenance-windows`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub name: String,
    /// Empty or absent: every alert.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// `mon`…`sun` (or `monday`…) or ISO numbers 1 (Monday) … 7 (Sunday).
    pub days: Vec<Value>,
    /// `HH:MM`, local to `utc_offset_minutes`.
    pub start: String,
    /// `HH:MM` (`24:00` for midnight); before `start` means the window ends the next day.
    pub end: String,
    #[serde(default)]
    pub utc_offset_minutes: i32,
    pub created_by: Option<String>,
    pub comment: Option<String>,
}

fn check_matchers(matchers: &[Matcher], allow_empty: bool) -> Result<(), String> {
    if matchers.is_empty() && !allow_empty {
        return Err(
            "matchers: at least one is required (a silence of everything is a mistake)".into(),
        );
    }
    if matchers.len() > 20 {
        return Err("matchers: at most 20".into());
    }
    matchers.iter().try_for_each(Matcher::validate)?;
    for m in matchers {
        if m.field.chars().count() > MATCHER_VALUE_MAX_CHARS
            || m.value.chars().count() > MATCHER_VALUE_MAX_CHARS
        {
            return Err(format!(
                "matchers: fields and values of at most {MATCHER_VALUE_MAX_CHARS} characters"
            ));
        }
        if has_forbidden_control(&m.field, false) || has_forbidden_control(&m.value, false) {
            return Err("matchers: control characters are not allowed".into());
        }
    }
    if !allow_empty && matchers.iter().all(|m| m.value == "*") {
        return Err("matchers: `*` alone matches everything; name what to silence".into());
    }
    Ok(())
}

fn who(raw: Option<String>, fallback: &str) -> Result<String, String> {
    let who = raw
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.to_owned());
    check_who("created_by", &who).map_err(TextError::into_message)?;
    Ok(who)
}

/// What is wrong with a text field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Over its length limit.
    TooLong(String),
    /// It holds a control character it may not.
    Control(String),
}

impl TextError {
    pub fn into_message(self) -> String {
        match self {
            TextError::TooLong(m) | TextError::Control(m) => m,
        }
    }
}

/// A person's name: at most [`WHO_MAX_CHARS`] characters, no control characters.
pub fn check_who(field: &str, who: &str) -> Result<(), TextError> {
    if who.chars().count() > WHO_MAX_CHARS {
        return Err(TextError::TooLong(format!(
            "{field}: at most {WHO_MAX_CHARS} characters"
        )));
    }
    if has_forbidden_control(who, false) {
        return Err(TextError::Control(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(())
}

/// A comment: at most [`COMMENT_MAX_CHARS`] characters; line breaks and tabs are fine, other
/// control characters (NUL above all, which Postgres refuses) are not.
pub fn check_comment(comment: Option<&str>) -> Result<(), TextError> {
    let Some(c) = comment else { return Ok(()) };
    if c.chars().count() > COMMENT_MAX_CHARS {
        return Err(TextError::TooLong(format!(
            "comment: at most {COMMENT_MAX_CHARS} characters"
        )));
    }
    if has_forbidden_control(c, true) {
        return Err(TextError::Control(
            "comment: control characters other than line breaks and tabs are not allowed".into(),
        ));
    }
    Ok(())
}

impl SilenceRequest {
    /// A row, or what is wrong with the request.
    pub fn into_row(self, now: DateTime<Utc>, actor: &str) -> Result<SilenceRow, String> {
        check_matchers(&self.matchers, false)?;
        check_comment(self.comment.as_deref()).map_err(TextError::into_message)?;
        let created_by = who(self.created_by, actor)?;
        let starts_at = self.starts_at.unwrap_or(now);
        if starts_at > now + ChronoDuration::days(MAX_SILENCE_DAYS) {
            return Err("starts_at: at most a year from now".into());
        }
        let ends_at = match (self.ends_at, self.duration_ms) {
            (Some(_), Some(_)) => return Err("give ends_at or duration_ms, not both".into()),
            (Some(e), None) => e,
            (None, Some(ms)) if ms > 0 && ms <= (MAX_SILENCE_DAYS * 86_400_000) as u64 => starts_at
                .checked_add_signed(ChronoDuration::milliseconds(ms as i64))
                .ok_or("starts_at + duration_ms is out of range")?,
            (None, Some(_)) => {
                return Err(format!(
                    "duration_ms: expected 1 to {} (a year)",
                    MAX_SILENCE_DAYS * 86_400_000
                ))
            }
            (None, None) => return Err("ends_at or duration_ms is required".into()),
        };
        if ends_at <= starts_at {
            return Err("ends_at must be after starts_at".into());
        }
        if ends_at <= now {
            return Err("ends_at is in the past".into());
        }
        if ends_at - starts_at > ChronoDuration::days(MAX_SILENCE_DAYS) {
            return Err("a silence lasts at most a year".into());
        }
        Ok(SilenceRow {
            id: Uuid::new_v4(),
            matchers: serde_json::to_value(&self.matchers).unwrap_or(Value::Null),
            starts_at,
            ends_at,
            created_by,
            comment: self.comment,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            deleted_by: None,
        })
    }
}

fn parse_day(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().filter(|d| (1..=7).contains(d)).map(|d| d as u32),
        Value::String(s) => {
            let s = s.to_ascii_lowercase();
            const NAMES: [(&str, &str); 7] = [
                ("mon", "monday"),
                ("tue", "tuesday"),
                ("wed", "wednesday"),
                ("thu", "thursday"),
                ("fri", "friday"),
                ("sat", "saturday"),
                ("sun", "sunday"),
            ];
            NAMES
                .iter()
                .position(|(short, long)| s == *short || s == *long)
                .map(|i| i as u32 + 1)
        }
        _ => None,
    }
}

/// `HH:MM` as minutes after midnight (`24:00` is 1440).
fn parse_time(s: &str) -> Option<i32> {
    let (h, m) = s.trim().split_once(':')?;
    let digits = |t: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    let ok = (0..24).contains(&h) && (0..60).contains(&m) || (h == 24 && m == 0);
    ok.then_some(h * 60 + m)
}

impl MaintenanceRequest {
    /// A row, or what is wrong with the request.
    pub fn into_row(self, now: DateTime<Utc>, actor: &str) -> Result<MaintenanceRow, String> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err("name: 1 to 100 characters".into());
        }
        if has_forbidden_control(&name, false) {
            return Err("name: control characters are not allowed".into());
        }
        check_matchers(&self.matchers, true)?;
        check_comment(self.comment.as_deref()).map_err(TextError::into_message)?;
        let created_by = who(self.created_by, actor)?;
        if self.days.is_empty() {
            return Err("days: at least one day (mon…sun or 1…7)".into());
        }
        let mut days = Vec::new();
        for d in &self.days {
            let day = parse_day(d)
                .ok_or_else(|| format!("days: {d} is not a day (mon…sun, monday…sunday or 1…7)"))?;
            if !days.contains(&day) {
                days.push(day);
            }
        }
        days.sort_unstable();
        let start = parse_time(&self.start)
            .filter(|m| *m < 1440)
            .ok_or_else(|| format!("start: {:?} is not a time HH:MM", self.start))?;
        let end = parse_time(&self.end).ok_or_else(|| {
            format!(
                "end: {:?} is not a time HH:MM (24:00 for midnight)",
                self.end
            )
        })?;
        if start == end {
            return Err("start and end are the same time: the window would be empty".into());
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err("utc_offset_minutes: expected -840 to 840".into());
        }
        Ok(MaintenanceRow {
            id: Uuid::new_v4(),
            name,
            matchers: serde_json::to_value(&self.matchers).unwrap_or(Value::Null),
            days: serde_json::to_value(&days).unwrap_or(Value::Null),
            start_minute: start,
            end_minute: end,
            utc_offset_minutes: self.utc_offset_minutes,
            created_by,
            comment: self.comment,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            deleted_by: None,
        })
    }
}

/// A silence with its matchers parsed.
#[derive(Debug, Clone)]
pub struct Silence {
    pub row: SilenceRow,
    matchers: Vec<Matcher>,
}

impl Silence {
    pub fn new(row: SilenceRow) -> Self {
        let matchers = serde_json::from_value(row.matchers.clone()).unwrap_or_default();
        Silence { row, matchers }
    }

    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.row.deleted_at.is_none() && self.row.starts_at <= now && now < self.row.ends_at
    }

    fn covers(&self, a: &Alert) -> bool {
        // A row whose matchers could not be read silences nothing.
        !self.matchers.is_empty()
            && all_match(
                &self.matchers,
                &a.alert_type,
                &a.component,
                a.severity.as_str(),
                &a.labels,
            )
    }
}

/// A maintenance window with its matchers and days parsed.
#[derive(Debug, Clone)]
pub struct Window {
    pub row: MaintenanceRow,
    matchers: Vec<Matcher>,
    days: Vec<u32>,
}

impl Window {
    pub fn new(row: MaintenanceRow) -> Self {
        let matchers = serde_json::from_value(row.matchers.clone()).unwrap_or_default();
        let days = serde_json::from_value(row.days.clone()).unwrap_or_default();
        Window {
            row,
            matchers,
            days,
        }
    }

    /// Whether the window is open at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        if self.row.deleted_at.is_some() {
            return false;
        }
        let local = now + ChronoDuration::minutes(i64::from(self.row.utc_offset_minutes));
        let day = local.weekday().number_from_monday();
        let yesterday = if day == 1 { 7 } else { day - 1 };
        let minute = (local.hour() * 60 + local.minute()) as i32;
        let (start, end) = (self.row.start_minute, self.row.end_minute);
        if start < end {
            self.days.contains(&day) && start <= minute && minute < end
        } else {
            // Over midnight: from `start` on a listed day to `end` the day after.
            (self.days.contains(&day) && minute >= start)
                || (self.days.contains(&yesterday) && minute < end)
        }
    }

    pub fn covers(
        &self,
        alert_type: &str,
        component: &str,
        severity: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        all_match(&self.matchers, alert_type, component, severity, labels)
    }
}

/// Why an alert is not notified right now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Suppression {
    Silence { id: Uuid },
    Maintenance { id: Uuid, name: String },
}

/// The first silence or open maintenance window that covers `a` at `now`.
pub fn suppression(
    a: &Alert,
    silences: &[Silence],
    windows: &[Window],
    now: DateTime<Utc>,
) -> Option<Suppression> {
    if let Some(s) = silences.iter().find(|s| s.active(now) && s.covers(a)) {
        return Some(Suppression::Silence { id: s.row.id });
    }
    windows
        .iter()
        .find(|w| {
            w.active(now) && w.covers(&a.alert_type, &a.component, a.severity.as_str(), &a.labels)
        })
        .map(|w| Suppression::Maintenance {
            id: w.row.id,
            name: w.row.name.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn window(days: Value, start: &str, end: &str, offset: i32) -> Window {
        let req: MaintenanceRequest = serde_json::from_value(json!({
            "name": "nightly", "days": days, "start": start, "end": end,
            "utc_offset_minutes": offset,
        }))
        .unwrap();
        Window::new(req.into_row(Utc::now(), "t").unwrap())
    }

    // 2026-11-30 is a Monday.
    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn a_window_is_open_on_its_days_between_its_hours() {
        let w = window(json!(["mon", 3]), "02:00", "04:00", 0);
        assert!(w.active(at(30, 2, 0)));
        assert!(w.active(at(30, 3, 59)));
        assert!(!w.active(at(30, 4, 0)));
        assert!(!w.active(at(30, 1, 59)));
        // Tuesday is not listed; Wednesday (3) is.
        assert!(!w.active(Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap()));
        assert!(w.active(Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap()));
    }

    #[test]
    fn a_window_over_midnight_runs_into_the_next_day_and_offsets_apply() {
        let w = window(json!(["sunday"]), "23:00", "01:00", 0);
        // Sunday 2026-11-29 23:30, Monday 00:30.
        assert!(w.active(at(29, 23, 30)));
        assert!(w.active(at(30, 0, 30)));
        assert!(!w.active(at(30, 1, 0)));
        assert!(!w.active(at(30, 23, 30)));
        // 02:00-04:00 at UTC+2 is 00:00-02:00 UTC.
        let w = window(json!([1]), "02:00", "04:00", 120);
        assert!(w.active(at(30, 0, 30)));
        assert!(!w.active(at(30, 2, 30)));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let bad = |v: Value| {
            serde_json::from_value::<MaintenanceRequest>(v)
                .map_err(|e| e.to_string())
                .and_then(|r| r.into_row(Utc::now(), "t"))
                .unwrap_err()
        };
        assert!(
            bad(json!({"name":"x","days":["funday"],"start":"01:00","end":"02:00"}))
                .contains("days")
        );
        assert!(
            bad(json!({"name":"x","days":[1],"start":"25:00","end":"02:00"})).contains("start")
        );
        assert!(bad(json!({"name":"x","days":[1],"start":"01:00","end":"01:00"})).contains("same"));
        assert!(bad(json!({"name":"x","days":[],"start":"01:00","end":"02:00"})).contains("days"));
        assert!(
            bad(json!({"name":"x","days":["satday"],"start":"01:00","end":"02:00"}))
                .contains("days")
        );
        assert!(bad(json!({"name":"x","days":[1],"start":"1:-0","end":"02:00"})).contains("start"));
        assert!(bad(json!({"name":"x","days":[1],"start":"01:0","end":"02:00"})).contains("start"));
        let s = |v: Value| {
            serde_json::from_value::<SilenceRequest>(v)
                .unwrap()
                .into_row(Utc::now(), "t")
        };
        assert!(s(json!({"matchers":[], "duration_ms": 1000})).is_err());
        assert!(
            s(json!({"matchers":[{"field":"type","value":"*"}], "duration_ms": 1000})).is_err()
        );
        // Far-future starts are refused instead of overflowing.
        assert!(s(json!({"matchers":[{"field":"type","value":"A"}],
            "starts_at":"+262142-12-31T23:59:59Z", "duration_ms": 31536000000u64}))
        .is_err());
        assert!(s(json!({"matchers":[{"field":"type","value":"API_SLOW"}]})).is_err());
        assert!(
            s(json!({"matchers":[{"field":"type","value":"API_SLOW"}], "duration_ms": 0})).is_err()
        );
        let row =
            s(json!({"matchers":[{"field":"type","value":"API_SLOW"}], "duration_ms": 60000}))
                .unwrap();
        assert!(Silence::new(row).active(Utc::now()));
    }
}
