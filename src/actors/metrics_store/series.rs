//! The series table behind the `MetricsStore`: tagged series, each with three rings of time
//! slots (10 s × 8, 1 min × 7, 5 min × 14); a slot holds an HDR histogram (allocated on first
//! use, reused afterwards) plus count, sum, min and max. A window is served from the ring
//! whose slots fit it: 1 m from the 10 s ring, 5 m from the 1 min ring, 15 m and 1 h from the
//! 5 min ring, so a window covers its length plus at most one slot.
//!
//! Memory is bounded by `METRICS_MAX_SERIES` × 29 slots. A sample of a new series beyond the
//! cap is counted in `rejected_samples`, never stored; a quarter of the cap is reserved for
//! the app's matched routes ([`Admission::Limited`] series, requests to no route or with an
//! unknown method, stop short of it), so a flood of made-up paths or methods cannot crowd out
//! the routes that matter. Series idle for longer than the longest window are dropped on the
//! hourly sweep, freeing their place.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::domain::metric::{RouteStats, SeriesKey, SeriesStats, Unit, Window, API_RESPONSE_TIME};

/// How full the store is.
#[derive(Debug, Clone, serde::Serialize, actix::MessageResponse)]
pub struct StoreStats {
    pub series: usize,
    pub max_series: usize,
    /// Samples dropped because their series would have exceeded `max_series` (or, for
    /// requests to no route or with an unknown method, the part of it they may use).
    pub rejected_samples: u64,
    /// Series that requests to no route or with an unknown method may use.
    pub unrouted_max_series: usize,
    /// An example of a series refused most recently, for the log and the alert.
    pub last_rejected: Option<String>,
    /// Samples accepted since start.
    pub ingested_samples: u64,
}

/// One series over one minute.
#[derive(Debug, Clone)]
pub struct Rollup {
    pub key: SeriesKey,
    pub unit: Unit,
    /// Unix seconds.
    pub bucket_start: u64,
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// From this many samples, a batch is recorded once and added to the rings' slots.
const BATCH_VIA_SCRATCH: usize = 32;

/// Slot lengths (seconds) and slot counts of the three rings.
pub(super) const RINGS: [(u64, usize); 3] = [(10, 8), (60, 7), (300, 14)];

/// Which part of the series budget a new series may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The whole budget (gauges, matched routes, queries).
    Full,
    /// All but the quarter kept for matched routes (requests that matched no route, or came
    /// with a method outside the standard set): whatever a client can make up.
    Limited,
}

/// `value` in the histogram's integer unit (negative values count as 0).
fn scaled(unit: Unit, value: f64) -> u64 {
    (value * unit.scale()).round().max(0.0) as u64
}

/// The slots a query merges: in ring `ring`, the slot `now` falls in and the `back` slots
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    ring: usize,
    back: u64,
}

impl Span {
    /// A standard window, from the ring whose slots fit it: the window's length plus at most
    /// one slot.
    fn of(window: Window) -> Span {
        let ring = match window {
            Window::M1 => 0,
            Window::M5 => 1,
            Window::M15 | Window::H1 => 2,
        };
        Span {
            ring,
            back: window.secs() / RINGS[ring].0,
        }
    }

    /// At least the last `secs` seconds from the 10 s ring (see [`GetRecentRouteStats`]),
    /// capped at what the ring holds.
    fn recent(secs: u64) -> Span {
        let (slot_len, n) = RINGS[0];
        Span {
            ring: 0,
            back: secs.div_ceil(slot_len).min(n as u64 - 1),
        }
    }
}

pub(super) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Default)]
struct Slot {
    epoch: u64,
    hist: Option<Histogram<u32>>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Slot {
    fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        if let Some(h) = self.hist.as_mut() {
            h.reset();
        }
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
    }
}

/// One series: its rings of slots and the last sample.
#[derive(Debug)]
struct Series {
    unit: Unit,
    rings: [Vec<Slot>; 3],
    created: f64,
    last_at: f64,
    last: f64,
}

impl Series {
    fn new(unit: Unit, now: f64) -> Self {
        let ring = |n: usize| (0..n).map(|_| Slot::default()).collect::<Vec<_>>();
        Series {
            unit,
            rings: [ring(RINGS[0].1), ring(RINGS[1].1), ring(RINGS[2].1)],
            created: now,
            last_at: now,
            last: 0.0,
        }
    }

    fn new_hist(unit: Unit) -> Option<Histogram<u32>> {
        Histogram::new_with_bounds(1, unit.highest(), 2).ok()
    }

    /// The slot of each ring that `now` falls in, reset if it held an older period.
    fn current_slots(&mut self, now: f64) -> impl Iterator<Item = &mut Slot> {
        let unit = self.unit;
        self.rings
            .iter_mut()
            .zip(RINGS.iter())
            .map(move |(ring, &(slot_len, n))| {
                let epoch = now as u64 / slot_len;
                let slot = &mut ring[(epoch % n as u64) as usize];
                if slot.epoch != epoch || slot.count == 0 {
                    slot.reset(epoch);
                }
                if slot.hist.is_none() {
                    slot.hist = Self::new_hist(unit);
                }
                slot
            })
    }

    /// Record samples already in the histogram's integer unit (see [`Unit::scale`]), taken
    /// at `now`. A large batch is recorded once into `scratch` (a histogram of the same unit)
    /// and then added to each ring's slot: one histogram update per sample instead of one per
    /// ring. Sum, min and max are kept unclamped, so `max` reports outliers the histogram
    /// saturates.
    fn record<T: Copy + Into<u64>>(
        &mut self,
        scaled: &[T],
        now: f64,
        scratch: &mut Option<Histogram<u32>>,
    ) {
        let Some(&last) = scaled.last() else {
            return;
        };
        let (mut sum, mut min, mut max) = (0u64, u64::MAX, 0u64);
        for &v in scaled {
            let v: u64 = v.into();
            sum = sum.saturating_add(v);
            min = min.min(v);
            max = max.max(v);
        }
        let unit = self.unit;
        let batch = if scaled.len() >= BATCH_VIA_SCRATCH {
            if scratch.is_none() {
                *scratch = Self::new_hist(unit);
            }
            scratch.as_mut().map(|h| {
                h.reset();
                for &v in scaled {
                    h.saturating_record(v.into());
                }
                &*h
            })
        } else {
            None
        };
        let scale = unit.scale();
        let (sum, min, max) = (sum as f64 / scale, min as f64 / scale, max as f64 / scale);
        for slot in self.current_slots(now) {
            if let Some(h) = slot.hist.as_mut() {
                match batch {
                    // Same unit, same bounds: `add` cannot fail.
                    Some(b) => {
                        let _ = h.add(b);
                    }
                    None => scaled.iter().for_each(|&v| h.saturating_record(v.into())),
                }
            }
            slot.count += scaled.len() as u64;
            slot.sum += sum;
            slot.min = slot.min.min(min);
            slot.max = slot.max.max(max);
        }
        self.last = last.into() as f64 / scale;
        self.last_at = now;
    }

    /// Merge the slots that fall inside `span`; `None` when they hold no sample.
    fn window(&self, span: Span, now: f64) -> Option<Merged> {
        let r = span.ring;
        let (slot_len, _) = RINGS[r];
        let cur = now as u64 / slot_len;
        let oldest = cur.saturating_sub(span.back);
        let mut merged = Merged {
            hist: Self::new_hist(self.unit)?,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            count_secs: 1.0,
        };
        for slot in &self.rings[r] {
            if slot.count == 0 || slot.epoch < oldest || slot.epoch > cur {
                continue;
            }
            if let Some(h) = &slot.hist {
                // Same bounds on both sides, so `add` cannot fail.
                let _ = merged.hist.add(h);
            }
            merged.count += slot.count;
            merged.sum += slot.sum;
            merged.min = merged.min.min(slot.min);
            merged.max = merged.max.max(slot.max);
        }
        if merged.count == 0 {
            return None;
        }
        let covered = (now - (oldest * slot_len) as f64).min(now - self.created);
        merged.count_secs = covered.max(1.0);
        Some(merged)
    }
}

/// Slots merged over a window.
#[derive(Debug)]
struct Merged {
    hist: Histogram<u32>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    count_secs: f64,
}

impl Merged {
    fn quantile(&self, q: f64, unit: Unit) -> f64 {
        let v = self.hist.value_at_quantile(q) as f64 / unit.scale();
        // The histogram reports bucket edges; never beyond what was really seen.
        v.clamp(self.min, self.max)
    }

    fn merge(&mut self, other: &Merged) {
        let _ = self.hist.add(&other.hist);
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count_secs = self.count_secs.max(other.count_secs);
    }
}

/// The series table: pure data structure behind the actor, usable in tests.
#[derive(Debug)]
pub struct SeriesTable {
    series: HashMap<SeriesKey, Series>,
    /// Reusable histograms for batch recording, one per unit.
    scratch: [Option<Histogram<u32>>; 3],
    max_series: usize,
    rejected: u64,
    last_rejected: Option<String>,
    ingested: u64,
}

/// `name{tag=value,…}`, cut to a readable length.
fn describe(key: &SeriesKey) -> String {
    let tags: Vec<String> = key.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    crate::text::clip_chars(&format!("{}{{{}}}", key.name, tags.join(",")), 200)
}

impl SeriesTable {
    /// An empty table holding at most `max_series` series.
    pub fn new(max_series: usize) -> Self {
        SeriesTable {
            series: HashMap::new(),
            scratch: [None, None, None],
            max_series,
            rejected: 0,
            last_rejected: None,
            ingested: 0,
        }
    }

    /// Record `values` into the series `key`, created if there is room. `now` is in Unix
    /// seconds. Returns false when the series would exceed the cap (the values are counted).
    pub fn record(&mut self, key: &SeriesKey, unit: Unit, values: &[f64], now: f64) -> bool {
        let scaled: Vec<u64> = values.iter().map(|&v| scaled(unit, v)).collect();
        self.record_scaled(key, unit, &scaled, now, Admission::Full)
    }

    /// How many series an [`Admission::Limited`] series may join: all but a quarter of the cap.
    pub fn limited_max(&self) -> usize {
        self.max_series - self.max_series / 4
    }

    /// Like [`SeriesTable::record`], with values already in the histogram's integer unit
    /// (microseconds for [`Unit::Ms`]): the tracer's batches take this path.
    pub fn record_scaled<T: Copy + Into<u64>>(
        &mut self,
        key: &SeriesKey,
        unit: Unit,
        scaled: &[T],
        now: f64,
        admission: Admission,
    ) -> bool {
        if !self.series.contains_key(key) {
            let cap = match admission {
                Admission::Full => self.max_series,
                Admission::Limited => self.limited_max(),
            };
            if self.series.len() >= cap {
                self.rejected += scaled.len() as u64;
                self.last_rejected = Some(describe(key));
                return false;
            }
            self.series.insert(key.clone(), Series::new(unit, now));
        }
        if let Some(series) = self.series.get_mut(key) {
            let scratch = &mut self.scratch[series.unit as usize];
            series.record(scaled, now, scratch);
            self.ingested += scaled.len() as u64;
        }
        true
    }

    /// Statistics of the matching series over `window`.
    pub fn query(
        &self,
        window: Window,
        name: Option<&str>,
        route: Option<&str>,
        now: f64,
    ) -> Vec<SeriesStats> {
        let mut out: Vec<SeriesStats> = self
            .series
            .iter()
            .filter(|(k, _)| name.is_none_or(|n| k.name == n))
            .filter(|(k, _)| route.is_none_or(|r| k.tag("route") == Some(r)))
            .filter_map(|(k, s)| {
                let m = s.window(Span::of(window), now)?;
                Some(SeriesStats {
                    name: k.name.clone(),
                    tags: k
                        .tags
                        .iter()
                        .map(|(a, b)| (a.clone(), serde_json::Value::String(b.clone())))
                        .collect(),
                    unit: s.unit,
                    window,
                    count: m.count,
                    rate: m.count as f64 / m.count_secs,
                    mean: m.sum / m.count as f64,
                    min: m.min,
                    max: m.max,
                    p50: m.quantile(0.50, s.unit),
                    p95: m.quantile(0.95, s.unit),
                    p99: m.quantile(0.99, s.unit),
                    last: s.last,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| b.count.cmp(&a.count)));
        out
    }

    /// Per-route request statistics over `window`, merged across status classes, busiest first.
    pub fn routes(&self, window: Window, now: f64) -> Vec<RouteStats> {
        self.routes_over(Span::of(window), window, now)
    }

    /// Per-route request statistics over the last `secs` seconds (see
    /// [`GetRecentRouteStats`]); their `window` field says [`Window::M1`].
    pub fn recent_routes(&self, secs: u64, now: f64) -> Vec<RouteStats> {
        self.routes_over(Span::recent(secs), Window::M1, now)
    }

    /// Per-route statistics over `span`, labelled `window`.
    fn routes_over(&self, span: Span, window: Window, now: f64) -> Vec<RouteStats> {
        struct Acc {
            merged: Merged,
            client_errors: u64,
            errors: u64,
        }
        let mut by_route: HashMap<(&str, &str), Acc> = HashMap::new();
        for (k, s) in &self.series {
            if k.name != API_RESPONSE_TIME {
                continue;
            }
            let (Some(method), Some(route)) = (k.tag("method"), k.tag("route")) else {
                continue;
            };
            let Some(m) = s.window(span, now) else {
                continue;
            };
            let class = k.tag("status_class").unwrap_or("");
            let (client, server) = match class {
                "4xx" => (m.count, 0),
                "5xx" => (0, m.count),
                _ => (0, 0),
            };
            match by_route.get_mut(&(method, route)) {
                Some(acc) => {
                    acc.merged.merge(&m);
                    acc.client_errors += client;
                    acc.errors += server;
                }
                None => {
                    by_route.insert(
                        (method, route),
                        Acc {
                            merged: m,
                            client_errors: client,
                            errors: server,
                        },
                    );
                }
            }
        }
        let mut out: Vec<RouteStats> = by_route
            .into_iter()
            .map(|((method, route), acc)| {
                let m = &acc.merged;
                RouteStats {
                    method: method.to_owned(),
                    route: route.to_owned(),
                    window,
                    count: m.count,
                    rate: m.count as f64 / m.count_secs,
                    mean_ms: m.sum / m.count as f64,
                    max_ms: m.max,
                    p50_ms: m.quantile(0.50, Unit::Ms),
                    p95_ms: m.quantile(0.95, Unit::Ms),
                    p99_ms: m.quantile(0.99, Unit::Ms),
                    client_errors: acc.client_errors,
                    errors: acc.errors,
                    error_rate: acc.errors as f64 * 100.0 / m.count as f64,
                }
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.route.cmp(&b.route)));
        out
    }

    /// One-minute rollups of every series for the minutes in `from..to` (minute numbers since
    /// the Unix epoch), from the one-minute ring (which holds the last 7 minutes).
    pub fn rollups(&self, from: u64, to: u64) -> Vec<Rollup> {
        let (slot_len, _) = RINGS[1];
        let mut out = Vec::new();
        for (k, s) in &self.series {
            for slot in &s.rings[1] {
                if slot.count == 0 || slot.epoch < from || slot.epoch >= to {
                    continue;
                }
                let q = |p: f64| {
                    slot.hist
                        .as_ref()
                        .map(|h| {
                            (h.value_at_quantile(p) as f64 / s.unit.scale())
                                .clamp(slot.min, slot.max)
                        })
                        .unwrap_or(slot.max)
                };
                out.push(Rollup {
                    key: k.clone(),
                    unit: s.unit,
                    bucket_start: slot.epoch * slot_len,
                    count: slot.count,
                    mean: slot.sum / slot.count as f64,
                    min: slot.min,
                    max: slot.max,
                    p50: q(0.50),
                    p95: q(0.95),
                    p99: q(0.99),
                });
            }
        }
        out.sort_by(|a, b| {
            a.bucket_start
                .cmp(&b.bucket_start)
                .then_with(|| a.key.name.cmp(&b.key.name))
        });
        out
    }

    /// Drop series with no sample newer than the longest window.
    pub fn sweep(&mut self, now: f64) {
        let horizon = Window::H1.secs() as f64 + RINGS[2].0 as f64;
        self.series.retain(|_, s| now - s.last_at <= horizon);
    }

    /// How full the table is.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            series: self.series.len(),
            max_series: self.max_series,
            rejected_samples: self.rejected,
            unrouted_max_series: self.limited_max(),
            last_rejected: self.last_rejected.clone(),
            ingested_samples: self.ingested,
        }
    }
}

/// The status class label of a class number.
pub fn status_class_label(class: u8) -> &'static str {
    match class {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SeriesKey {
        SeriesKey::new(name, vec![("route".into(), "/users/{id}".into())])
    }

    #[test]
    fn percentiles_match_a_known_uniform_distribution() {
        let mut t = SeriesTable::new(10);
        let now = 1_000_000.0;
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert!(t.record(&key("lat"), Unit::Ms, &values, now));
        for window in Window::ALL {
            let s = &t.query(window, Some("lat"), None, now + 1.0)[0];
            assert_eq!(s.count, 1000);
            assert_eq!(s.min, 1.0);
            assert_eq!(s.max, 1000.0);
            assert!((s.mean - 500.5).abs() < 1e-9);
            // HDR with 2 significant digits: within 1 % of the exact rank value.
            for (got, want) in [(s.p50, 500.0), (s.p95, 950.0), (s.p99, 990.0)] {
                assert!((got - want).abs() / want < 0.01, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn windows_forget_old_samples() {
        let mut t = SeriesTable::new(10);
        let start = 1_000_000.0;
        t.record(&key("lat"), Unit::Ms, &[100.0], start);
        t.record(&key("lat"), Unit::Ms, &[200.0], start + 120.0);
        let now = start + 121.0;
        let m1 = &t.query(Window::M1, None, None, now)[0];
        assert_eq!(m1.count, 1);
        assert_eq!(m1.max, 200.0);
        let m5 = &t.query(Window::M5, None, None, now)[0];
        assert_eq!(m5.count, 2);
        // Nothing in the last hour and a bit: the sweep drops the series.
        t.sweep(start + 120.0 + 3_600.0 + 301.0);
        assert_eq!(t.stats().series, 0);
    }

    #[test]
    fn series_beyond_the_cap_are_counted_not_stored() {
        let mut t = SeriesTable::new(2);
        assert!(t.record(&key("a"), Unit::Ms, &[1.0], 10.0));
        assert!(t.record(&key("b"), Unit::Ms, &[1.0], 10.0));
        assert!(!t.record(&key("c"), Unit::Ms, &[1.0, 2.0], 10.0));
        assert!(t.record(&key("a"), Unit::Ms, &[3.0], 10.0));
        let s = t.stats();
        assert_eq!(
            (s.series, s.rejected_samples, s.ingested_samples),
            (2, 2, 3)
        );
        assert_eq!(s.last_rejected.as_deref(), Some("c{route=/users/{id}}"));
    }

    #[test]
    fn a_quarter_of_the_budget_is_kept_for_matched_routes() {
        let mut t = SeriesTable::new(8);
        for i in 0..10 {
            t.record_scaled(
                &key(&format!("junk{i}")),
                Unit::Ms,
                &[1u64],
                10.0,
                Admission::Limited,
            );
        }
        assert_eq!(t.stats().series, 6, "made-up series stop at three quarters");
        assert!(t.record_scaled(&key("route"), Unit::Ms, &[1u64], 10.0, Admission::Full));
        assert!(t.record_scaled(&key("route2"), Unit::Ms, &[1u64], 10.0, Admission::Full));
        assert!(!t.record_scaled(&key("route3"), Unit::Ms, &[1u64], 10.0, Admission::Full));
        assert_eq!(t.stats().rejected_samples, 5);
    }

    #[test]
    fn route_stats_merge_status_classes_and_count_only_5xx_as_errors() {
        let mut t = SeriesTable::new(10);
        let k = |class: &str| {
            SeriesKey::new(
                API_RESPONSE_TIME,
                vec![
                    ("method".into(), "GET".into()),
                    ("route".into(), "/x".into()),
                    ("status_class".into(), class.into()),
                ],
            )
        };
        t.record(&k("2xx"), Unit::Ms, &[10.0; 90], 100.0);
        t.record(&k("4xx"), Unit::Ms, &[10.0; 5], 100.0);
        t.record(&k("5xx"), Unit::Ms, &[30.0; 5], 100.0);
        let r = &t.routes(Window::M1, 101.0)[0];
        assert_eq!((r.count, r.client_errors, r.errors), (100, 5, 5));
        assert!((r.error_rate - 5.0).abs() < 1e-9);
        assert_eq!(r.max_ms, 30.0);
    }

    fn api_key(route: &str, class: &str) -> SeriesKey {
        SeriesKey::new(
            API_RESPONSE_TIME,
            vec![
                ("method".into(), "GET".into()),
                ("route".into(), route.into()),
                ("status_class".into(), class.into()),
            ],
        )
    }

    #[test]
    fn recent_route_stats_drop_a_sample_older_than_the_span_and_keep_one_inside() {
        let mut t = SeriesTable::new(10);
        // 5 s into a 10 s slot; 20 s back means this slot and the two before it (25 s).
        let now = 1_000_005.0;
        t.record(&api_key("/old", "2xx"), Unit::Ms, &[900.0], now - 26.0);
        t.record(&api_key("/inside", "2xx"), Unit::Ms, &[15.0], now - 24.0);
        let recent = t.recent_routes(20, now);
        let routes: Vec<&str> = recent.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(routes, ["/inside"]);
        assert_eq!(recent[0].count, 1);
        assert_eq!(recent[0].max_ms, 15.0);
        // The minute still sees both.
        assert_eq!(t.routes(Window::M1, now).len(), 2);
    }

    #[test]
    fn recent_route_stats_cover_the_last_secs_and_forget_within_a_slot_more() {
        // Every span the alert rules may ask for, at every phase of the current slot: a sample
        // exactly `secs` old counts, one `ceil(secs / 10) * 10 + 10` old does not.
        for secs in (10..=60u64).step_by(5) {
            let reach = secs.div_ceil(10) as f64 * 10.0 + 10.0;
            for phase in 0..10 {
                let now = 1_000_000.0 + f64::from(phase) + 0.5;
                let mut t = SeriesTable::new(10);
                t.record(
                    &api_key("/edge", "5xx"),
                    Unit::Ms,
                    &[1.0],
                    now - secs as f64,
                );
                t.record(&api_key("/gone", "5xx"), Unit::Ms, &[1.0], now - reach);
                let recent = t.recent_routes(secs, now);
                let routes: Vec<&str> = recent.iter().map(|r| r.route.as_str()).collect();
                assert_eq!(routes, ["/edge"], "secs {secs}, now {now}");
            }
        }
    }

    #[test]
    fn recent_route_stats_over_60_s_equal_the_one_minute_window() {
        let mut t = SeriesTable::new(10);
        let now = 1_000_007.0;
        // One sample every 3 s over the last 90 s, on two routes and two status classes.
        for i in 0..30u32 {
            let at = now - f64::from(i) * 3.0;
            let (route, class) = if i % 2 == 0 {
                ("/a", "2xx")
            } else {
                ("/b", "5xx")
            };
            t.record(
                &api_key(route, class),
                Unit::Ms,
                &[f64::from(i + 1) * 10.0],
                at,
            );
        }
        let json = |r: Vec<RouteStats>| serde_json::to_value(r).unwrap();
        let m1 = json(t.routes(Window::M1, now));
        assert_eq!(json(t.recent_routes(60, now)), m1);
        // And a shorter span is really shorter.
        assert_ne!(json(t.recent_routes(30, now)), m1);
    }
}
