//! `MetricsStore`: the in-memory time series every component records into.
//!
//! Messages in: [`IngestApi`] (batches from the request tracer's per-worker buffers),
//! [`RecordGauges`] (Monitor samples), [`RecordHealth`]; queries [`QueryMetrics`],
//! [`GetRouteStats`], [`GetRecentRouteStats`], [`GetHealth`], [`GetStoreStats`].
//!
//! Each series keeps three rings of time slots (10 s × 8, 1 min × 7, 5 min × 14); a slot
//! holds an HDR histogram (allocated on first use, reused afterwards) plus count, sum, min and
//! max. A window is served from the ring whose slots fit it: 1 m from the 10 s ring, 5 m from
//! the 1 min ring, 15 m and 1 h from the 5 min ring, so a window covers its length plus at
//! most one slot. [`GetRecentRouteStats`] merges the 10 s ring over a shorter span (the alert
//! rules' `API_ALERT_WINDOW_MS`), so a route that recovered stops looking bad sooner. Memory
//! is bounded by `METRICS_MAX_SERIES` × 29 slots; samples for a new series beyond the cap are
//! counted in `rejected_samples`, never stored. Series idle for longer than the longest window
//! are dropped on the hourly sweep, freeing their place.
//!
//! Restart policy: infrastructure actor, supervised by actix's `Supervisor`; nothing in it
//! panics on input (histogram errors saturate), so a restart only happens if the arbiter dies.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use hdrhistogram::Histogram;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actors::event_bus::{EventBus, Publish};
use crate::actors::query_stats::{QueryReport, QueryTable};
use crate::db::fingerprint::Fingerprint;
use crate::db::query_logger::{IngestQueries, QuerySample};
use crate::domain::event::{Event, Payload, SlowQuery};
use crate::domain::health::HealthReport;
use crate::domain::metric::{
    RouteStats, SeriesKey, SeriesStats, Unit, Window, API_RESPONSE_TIME, DB_QUERY_TIME,
    UNMATCHED_ROUTE,
};
use crate::store::{HealthMetricRow, Record, Store};

/// A request's series as the tracer aggregates it: method, route pattern, status class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKey {
    pub method: actix_web::http::Method,
    pub route: String,
    /// 1..=5 for 1xx..5xx.
    pub status_class: u8,
}

/// A batch of request latencies (microseconds) from one tracer worker.
#[derive(Message, Debug, Default)]
#[rtype(result = "()")]
pub struct IngestApi {
    pub samples: HashMap<ApiKey, Vec<u32>>,
}

/// One gauge sample.
#[derive(Debug, Clone)]
pub struct Gauge {
    pub key: SeriesKey,
    pub unit: Unit,
    pub value: f64,
}

/// Record gauge samples (Monitor).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RecordGauges(pub Vec<Gauge>);

/// Replace the latest health report (Monitor).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RecordHealth(pub HealthReport);

/// The latest health report.
#[derive(Message, Debug)]
#[rtype(result = "HealthReport")]
pub struct GetHealth;

/// Series statistics, per-route statistics and the store's size, filtered, taken together so
/// that one answer never mixes data from before and after an ingest.
#[derive(Message, Debug, Clone)]
#[rtype(result = "MetricsView")]
pub struct QueryMetrics {
    pub window: Window,
    /// Exact metric name.
    pub name: Option<String>,
    /// Exact route pattern (matches the `route` tag).
    pub route: Option<String>,
}

/// The answer to [`QueryMetrics`].
#[derive(Debug, Clone, serde::Serialize, actix::MessageResponse)]
pub struct MetricsView {
    pub window: Window,
    /// Per-route statistics (only when the query's name is absent or `api_response_time`).
    pub routes: Vec<RouteStats>,
    pub series: Vec<SeriesStats>,
    pub store: StoreStats,
}

/// Per-route request statistics over a window.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<RouteStats>")]
pub struct GetRouteStats(pub Window);

/// Per-route request statistics over the last `secs` seconds, from the 10 s ring: the slot
/// `now` falls in plus the `ceil(secs / 10)` slots before it (at most 7: `secs` is capped at
/// 70). The span covers at least the last `secs` seconds and less than `ceil(secs / 10) * 10
/// + 10`, so a sample stops counting at most that long after it was recorded. `secs = 60`
/// answers exactly what `GetRouteStats(Window::M1)` does.
///
/// The answers' `window` field says `1m`: it names the ring the span comes from (the
/// shortest standard window); the caller knows the span it asked for.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<RouteStats>")]
pub struct GetRecentRouteStats {
    pub secs: u64,
}

/// Size of the store.
#[derive(Message, Debug)]
#[rtype(result = "StoreStats")]
pub struct GetStoreStats;

/// How full the store is.
#[derive(Debug, Clone, serde::Serialize, actix::MessageResponse)]
pub struct StoreStats {
    pub series: usize,
    pub max_series: usize,
    /// Samples dropped because their series would have exceeded `max_series`.
    pub rejected_samples: u64,
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
const RINGS: [(u64, usize); 3] = [(10, 8), (60, 7), (300, 14)];

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

fn now_secs() -> f64 {
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
    ingested: u64,
}

impl SeriesTable {
    /// An empty table holding at most `max_series` series.
    pub fn new(max_series: usize) -> Self {
        SeriesTable {
            series: HashMap::new(),
            scratch: [None, None, None],
            max_series,
            rejected: 0,
            ingested: 0,
        }
    }

    /// Record `values` into the series `key`, created if there is room. `now` is in Unix
    /// seconds. Returns false when the series would exceed the cap (the values are counted).
    pub fn record(&mut self, key: &SeriesKey, unit: Unit, values: &[f64], now: f64) -> bool {
        let scaled: Vec<u64> = values.iter().map(|&v| scaled(unit, v)).collect();
        self.record_scaled(key, unit, &scaled, now)
    }

    /// Like [`SeriesTable::record`], with values already in the histogram's integer unit
    /// (microseconds for [`Unit::Ms`]): the tracer's batches take this path.
    pub fn record_scaled<T: Copy + Into<u64>>(
        &mut self,
        key: &SeriesKey,
        unit: Unit,
        scaled: &[T],
        now: f64,
    ) -> bool {
        if !self.series.contains_key(key) {
            if self.series.len() >= self.max_series {
                self.rejected += scaled.len() as u64;
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

/// What the `MetricsStore` is built from (kept for restarts).
#[derive(Clone)]
pub struct MetricsOptions {
    pub max_series: usize,
    pub max_fingerprints: usize,
    /// Executions from this long on are listed as slow queries (`0`: none).
    pub slow_query_ms: u64,
    /// Where slow queries are published (`SLOW_QUERY` on `metric`); `None`: not published.
    pub events: Option<Addr<EventBus>>,
    /// Where one-minute rollups go, and how often; `None` keeps them in memory only.
    pub persist: Option<PersistOptions>,
}

/// Rollup persistence.
#[derive(Clone)]
pub struct PersistOptions {
    pub store: Store,
    /// Identifies this process's rows (with the series and the minute).
    pub instance_id: Uuid,
    pub every: Duration,
}

/// The actor owning the [`SeriesTable`], the query statistics and the latest health report.
pub struct MetricsStore {
    table: SeriesTable,
    queries: QueryTable,
    health: HealthReport,
    options: MetricsOptions,
    /// Minutes before this one (minute number since the epoch) have been persisted.
    persisted_until: u64,
}

impl MetricsStore {
    /// A store holding at most `max_series` series, nothing persisted.
    pub fn new(max_series: usize) -> Self {
        Self::with_options(MetricsOptions {
            max_series,
            max_fingerprints: 1_000,
            slow_query_ms: 500,
            events: None,
            persist: None,
        })
    }

    /// A store built from `options`.
    pub fn with_options(options: MetricsOptions) -> Self {
        MetricsStore {
            table: SeriesTable::new(options.max_series),
            queries: QueryTable::new(options.max_fingerprints, options.slow_query_ms),
            health: HealthReport::unknown(),
            options,
            persisted_until: 0,
        }
    }

    /// Write the rollups of the minutes not yet persisted; with `include_current`, the
    /// running minute too (at shutdown: nothing later will be recorded). Returns the rows.
    fn persist(&mut self, include_current: bool) -> usize {
        let Some(p) = self.options.persist.as_ref().filter(|p| !p.every.is_zero()) else {
            return 0;
        };
        let minute = now_secs() as u64 / RINGS[1].0;
        let to = if include_current { minute + 1 } else { minute };
        if to <= self.persisted_until {
            return 0;
        }
        let rollups = self.table.rollups(self.persisted_until, to);
        let n = rollups.len();
        for r in rollups {
            p.store
                .write(Record::HealthMetric(rollup_row(&r, p.instance_id)));
        }
        self.persisted_until = to;
        n
    }
}

/// The component a metric belongs to (the original's `component` column).
fn component_of(name: &str) -> &'static str {
    match name.split('_').next().unwrap_or("") {
        "api" => "api",
        "db" => "database",
        "redis" => "redis",
        "process" => "process",
        "external" => "external",
        _ => "system",
    }
}

fn rollup_row(r: &Rollup, instance_id: Uuid) -> HealthMetricRow {
    let tags: serde_json::Map<String, serde_json::Value> = r
        .key
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    HealthMetricRow {
        id: Uuid::new_v4(),
        metric_name: r.key.name.clone(),
        metric_value: r.mean,
        metric_unit: Some(r.unit.label().to_owned()),
        component: component_of(&r.key.name).to_owned(),
        severity: "normal".to_owned(),
        tags: serde_json::Value::Object(tags),
        bucket_start: DateTime::<Utc>::from_timestamp(r.bucket_start as i64, 0).unwrap_or_default(),
        bucket_seconds: RINGS[1].0 as i32,
        sample_count: r.count as i64,
        min_value: r.min,
        max_value: r.max,
        p50: r.p50,
        p95: r.p95,
        p99: r.p99,
        instance_id,
        created_at: Utc::now(),
    }
}

impl Actor for MetricsStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(60), |act, _| {
            act.table.sweep(now_secs());
            act.queries.sweep(Utc::now());
        });
        if let Some(p) = &self.options.persist {
            if !p.every.is_zero() {
                ctx.run_interval(p.every, |act, _| {
                    act.persist(false);
                });
            }
        }
    }
}

impl Supervised for MetricsStore {
    fn restarting(&mut self, _: &mut Self::Context) {
        *self = MetricsStore::with_options(self.options.clone());
    }
}

/// Persist rollups now (the timer does it every `METRICS_PERSIST_INTERVAL_MS`; shutdown
/// does it with `include_current`). Answers the number of rows queued for writing.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "usize")]
pub struct PersistRollups {
    pub include_current: bool,
}

impl Handler<PersistRollups> for MetricsStore {
    type Result = usize;

    fn handle(&mut self, msg: PersistRollups, _: &mut Self::Context) -> usize {
        self.persist(msg.include_current)
    }
}

impl Handler<IngestQueries> for MetricsStore {
    type Result = ();

    fn handle(&mut self, msg: IngestQueries, _: &mut Self::Context) {
        // The overall query latency is a series too (windows, rollups, forecasts).
        let micros: Vec<u64> = msg.samples.iter().map(|s| s.micros).collect();
        if !micros.is_empty() {
            let key = SeriesKey::new(DB_QUERY_TIME, vec![("source".to_owned(), "app".to_owned())]);
            self.table
                .record_scaled(&key, Unit::Ms, &micros, now_secs());
        }
        let limit_us = self.options.slow_query_ms.saturating_mul(1000);
        let slow: Vec<QuerySample> = match &self.options.events {
            Some(_) if limit_us > 0 => msg
                .samples
                .iter()
                .filter(|s| s.micros >= limit_us)
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        self.queries.ingest(msg);
        if let Some(bus) = &self.options.events {
            for s in slow {
                bus.do_send(Publish(Event::new(
                    "QueryLogger",
                    Payload::SlowQuery {
                        kind: "SLOW_QUERY",
                        query: SlowQuery {
                            id: Fingerprint::hex(s.fingerprint),
                            sql: self.queries.text(s.fingerprint).map(|t| t.to_string()),
                            duration_ms: s.micros as f64 / 1000.0,
                            threshold_ms: self.options.slow_query_ms,
                            trace_id: s.trace_id.map(|t| String::from_utf8_lossy(&t).into_owned()),
                            error: s.error.as_deref().map(str::to_owned),
                        },
                    },
                )));
            }
        }
    }
}

/// Query statistics: the top `limit` fingerprints, slow and failed executions, and those of
/// one trace.
#[derive(Message, Debug, Clone)]
#[rtype(result = "QueryReport")]
pub struct GetQueryReport {
    pub limit: usize,
    /// W3C trace id (32 hex digits).
    pub trace_id: Option<String>,
}

impl Handler<GetQueryReport> for MetricsStore {
    type Result = MessageResult<GetQueryReport>;

    fn handle(&mut self, q: GetQueryReport, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.queries.report(q.limit, q.trace_id.as_deref()))
    }
}

impl Handler<IngestApi> for MetricsStore {
    type Result = ();

    fn handle(&mut self, msg: IngestApi, _: &mut Self::Context) {
        let now = now_secs();
        for (key, micros) in msg.samples {
            let route = if key.route.is_empty() {
                UNMATCHED_ROUTE.to_owned()
            } else {
                key.route
            };
            let series = SeriesKey::new(
                API_RESPONSE_TIME,
                vec![
                    ("method".to_owned(), key.method.as_str().to_owned()),
                    ("route".to_owned(), route),
                    (
                        "status_class".to_owned(),
                        status_class_label(key.status_class).to_owned(),
                    ),
                ],
            );
            // Microseconds are the integer unit of a latency series.
            self.table.record_scaled(&series, Unit::Ms, &micros, now);
        }
    }
}

impl Handler<RecordGauges> for MetricsStore {
    type Result = ();

    fn handle(&mut self, msg: RecordGauges, _: &mut Self::Context) {
        let now = now_secs();
        for g in msg.0 {
            self.table.record(&g.key, g.unit, &[g.value], now);
        }
    }
}

impl Handler<RecordHealth> for MetricsStore {
    type Result = ();

    fn handle(&mut self, msg: RecordHealth, _: &mut Self::Context) {
        self.health = msg.0;
    }
}

impl Handler<GetHealth> for MetricsStore {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.health.clone())
    }
}

impl Handler<QueryMetrics> for MetricsStore {
    type Result = MetricsView;

    fn handle(&mut self, q: QueryMetrics, _: &mut Self::Context) -> MetricsView {
        let now = now_secs();
        let series = self
            .table
            .query(q.window, q.name.as_deref(), q.route.as_deref(), now);
        let routes = if q.name.as_deref().is_none_or(|n| n == API_RESPONSE_TIME) {
            let mut routes = self.table.routes(q.window, now);
            if let Some(route) = &q.route {
                routes.retain(|r| &r.route == route);
            }
            routes
        } else {
            Vec::new()
        };
        MetricsView {
            window: q.window,
            routes,
            series,
            store: self.table.stats(),
        }
    }
}

impl Handler<GetRouteStats> for MetricsStore {
    type Result = MessageResult<GetRouteStats>;

    fn handle(&mut self, q: GetRouteStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.table.routes(q.0, now_secs()))
    }
}

impl Handler<GetRecentRouteStats> for MetricsStore {
    type Result = MessageResult<GetRecentRouteStats>;

    fn handle(&mut self, q: GetRecentRouteStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.table.recent_routes(q.secs, now_secs()))
    }
}

impl Handler<GetStoreStats> for MetricsStore {
    type Result = StoreStats;

    fn handle(&mut self, _: GetStoreStats, _: &mut Self::Context) -> StoreStats {
        self.table.stats()
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
