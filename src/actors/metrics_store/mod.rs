//! `MetricsStore`: the in-memory time series every component records into, the query
//! statistics and the slow-request ring.
//!
//! Messages in: [`IngestApi`] (batches from the request tracer's per-worker buffers, with
//! their slow requests), `IngestQueries` (the query collector), [`RecordGauges`] (Monitor
//! samples); queries [`QueryMetrics`], [`GetRouteStats`],
//! [`GetRecentRouteStats`], [`GetStoreStats`], [`GetQueryReport`],
//! [`GetSlowRequests`]; [`PersistRollups`]. Events out: one `SLOW_REQUEST` per route and one
//! `SLOW_QUERY` per fingerprint each second that saw slow ones (with the count and the
//! slowest), never one per request.
//!
//! The parts: [`series`] (the series table, its rings and windows, the cardinality cap),
//! [`rollups`] (one-minute rollups to Postgres), [`slow`] (the slow-request ring).
//! [`GetRecentRouteStats`] merges the 10 s ring over a shorter span than a minute (the alert
//! rules' `API_ALERT_WINDOW_MS`), so a route that recovered stops looking bad sooner.
//!
//! Restart policy: a core actor (see [`crate::supervision`]). A restart keeps the
//! series, the query statistics, the slow ring and the rollup position: it loses at most the
//! message that crashed (a part of the current window).

pub mod rollups;
pub mod series;
pub mod slow;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

use crate::actors::event_bus::{EventBus, Publish};
use crate::actors::query_stats::{QueryExecution, QueryReport, QueryTable};
use crate::config::SupervisorSettings;
use crate::db::fingerprint::Fingerprint;
use crate::db::query_logger::{IngestQueries, QuerySample};
use crate::domain::event::{Event, Payload, SlowQuery};
use crate::domain::metric::{
    RouteStats, SeriesKey, SeriesStats, Unit, Window, API_RESPONSE_TIME, DB_QUERY_TIME,
    OTHER_METHOD, UNMATCHED_ROUTE,
};
use crate::supervision::{self as sv, Core, CoreSupervision, Guarded, Reporter};
pub use rollups::PersistOptions;
use rollups::Persister;
use series::now_secs;
pub use series::{status_class_label, Admission, Rollup, SeriesTable, StoreStats};
use slow::SlowRing;
pub use slow::{RouteSlow, SlowRequestView, SlowSample};

/// The store's name among the supervised actors.
pub const NAME: &str = "metrics_store";

/// How often slow requests and slow queries are summed up into events and log lines.
pub const SLOW_SUMMARY_EVERY: Duration = Duration::from_secs(1);

/// Least time between two log lines about refused series.
const CARDINALITY_LOG_EVERY: Duration = Duration::from_secs(60);

/// A request's series as the tracer aggregates it: method, route pattern, status class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKey {
    /// A standard method's name, or [`OTHER_METHOD`]: never what a client made up.
    pub method: &'static str,
    /// The route pattern, or [`UNMATCHED_ROUTE`].
    pub route: Arc<str>,
    /// 1..=5 for 1xx..5xx.
    pub status_class: u8,
}

/// A batch of request latencies (microseconds) and slow requests from one tracer worker.
#[derive(Message, Debug, Default)]
#[rtype(result = "()")]
pub struct IngestApi {
    pub samples: HashMap<ApiKey, Vec<u32>>,
    /// Each route's slow requests of the flush.
    pub slow: Vec<RouteSlow>,
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

/// Persist rollups now (the timer does it every `METRICS_PERSIST_INTERVAL_MS`; shutdown
/// does it with `include_current`). Answers the number of rows queued for writing.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "usize")]
pub struct PersistRollups {
    pub include_current: bool,
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

/// The newest `limit` slow requests (of one route pattern, when given), newest first, each
/// with the queries logged under its trace id.
#[derive(Message, Debug, Clone)]
#[rtype(result = "SlowRequests")]
pub struct GetSlowRequests {
    pub route: Option<String>,
    pub limit: usize,
}

/// A slow request and its queries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlowRequestWithQueries {
    #[serde(flatten)]
    pub request: SlowRequestView,
    /// The queries the query logger recorded under the request's trace id (the newest 2 000
    /// traced executions are kept, so an old request's may be gone).
    pub logged_queries: Vec<QueryExecution>,
}

/// The answer to [`GetSlowRequests`].
#[derive(Debug, Clone, serde::Serialize, actix::MessageResponse)]
pub struct SlowRequests {
    pub requests: Vec<SlowRequestWithQueries>,
    /// Entries kept, routes, and slow requests seen since start.
    pub kept: usize,
    pub routes: usize,
    pub total: u64,
    pub per_route: usize,
    pub max_routes: usize,
}

/// What the `MetricsStore` is built from.
#[derive(Clone)]
pub struct MetricsOptions {
    pub max_series: usize,
    pub max_fingerprints: usize,
    /// Executions from this long on are listed as slow queries (`0`: none).
    pub slow_query_ms: u64,
    /// The tracer's slow threshold (for the events' `threshold_ms`).
    pub slow_request_ms: u64,
    /// Where slow requests and queries are published (`SLOW_REQUEST`, `SLOW_QUERY` on
    /// `metric`); `None`: not published.
    pub events: Option<Addr<EventBus>>,
    /// Where one-minute rollups go, and how often; `None` keeps them in memory only.
    pub persist: Option<PersistOptions>,
}

/// Slow queries of one fingerprint since the last summary.
struct SlowQueries {
    count: u64,
    worst: QuerySample,
}

/// The actor owning the [`SeriesTable`], the query statistics and the slow-request ring.
pub struct MetricsStore {
    table: SeriesTable,
    queries: QueryTable,
    slow: SlowRing,
    slow_queries: HashMap<u64, SlowQueries>,
    options: MetricsOptions,
    persister: Persister,
    /// Refused samples when the last log line about them was written, and when.
    rejected_logged: (u64, Option<Instant>),
    sup: CoreSupervision,
}

impl MetricsStore {
    /// A store built from `options`, supervised by `policy` with failures told to `reporter`.
    pub fn new(options: MetricsOptions, policy: &SupervisorSettings, reporter: Reporter) -> Self {
        MetricsStore {
            table: SeriesTable::new(options.max_series),
            queries: QueryTable::new(options.max_fingerprints, options.slow_query_ms),
            slow: SlowRing::default(),
            slow_queries: HashMap::new(),
            persister: Persister::new(options.persist.clone()),
            options,
            rejected_logged: (0, None),
            sup: CoreSupervision::new(NAME, policy, reporter),
        }
    }

    /// A store holding at most `max_series` series, nothing persisted or published, with the
    /// default policy (unit tests, benchmarks).
    pub fn standalone(max_series: usize) -> Self {
        Self::new(
            MetricsOptions {
                max_series,
                max_fingerprints: 1_000,
                slow_query_ms: 500,
                slow_request_ms: 500,
                events: None,
                persist: None,
            },
            &crate::config::knobs::defaults(),
            Reporter::default(),
        )
    }

    fn ingest_api(&mut self, msg: IngestApi) {
        let now = now_secs();
        for (key, micros) in msg.samples {
            let admission = if &*key.route == UNMATCHED_ROUTE || key.method == OTHER_METHOD {
                Admission::Limited
            } else {
                Admission::Full
            };
            let series = SeriesKey::new(
                API_RESPONSE_TIME,
                vec![
                    ("method".to_owned(), key.method.to_owned()),
                    ("route".to_owned(), key.route.to_string()),
                    (
                        "status_class".to_owned(),
                        status_class_label(key.status_class).to_owned(),
                    ),
                ],
            );
            // Microseconds are the integer unit of a latency series.
            self.table
                .record_scaled(&series, Unit::Ms, &micros, now, admission);
        }
        for route in msg.slow {
            self.slow.add(route);
        }
    }

    fn ingest_queries(&mut self, msg: IngestQueries) {
        // The overall query latency is a series too (windows, rollups, forecasts).
        let micros: Vec<u64> = msg.samples.iter().map(|s| s.micros).collect();
        if !micros.is_empty() {
            let key = SeriesKey::new(DB_QUERY_TIME, vec![("source".to_owned(), "app".to_owned())]);
            self.table
                .record_scaled(&key, Unit::Ms, &micros, now_secs(), Admission::Full);
        }
        let limit_us = self.options.slow_query_ms.saturating_mul(1000);
        if limit_us > 0 {
            for s in msg.samples.iter().filter(|s| s.micros >= limit_us) {
                match self.slow_queries.get_mut(&s.fingerprint) {
                    Some(q) => {
                        q.count += 1;
                        if s.micros > q.worst.micros {
                            q.worst = s.clone();
                        }
                    }
                    None => {
                        self.slow_queries.insert(
                            s.fingerprint,
                            SlowQueries {
                                count: 1,
                                worst: s.clone(),
                            },
                        );
                    }
                }
            }
        }
        self.queries.ingest(msg);
    }

    /// One log line and one event per route (and per query fingerprint) that had slow ones
    /// since the last summary; and a line about refused series, at most once a minute.
    fn summarise(&mut self) {
        let interval_ms = SLOW_SUMMARY_EVERY.as_millis() as u64;
        for s in self.slow.take_summaries() {
            let w = &s.worst;
            log::warn!(
                "slow requests: {} on {} {} in the last {interval_ms} ms (over {} ms); slowest \
                 {:.1} ms -> {} (trace {})",
                s.count,
                w.method,
                w.route,
                self.options.slow_request_ms,
                w.micros as f64 / 1000.0,
                w.status,
                w.trace_id
            );
            if let Some(bus) = &self.options.events {
                bus.do_send(Publish(Event::new(
                    "RequestTracer",
                    Payload::SlowRequest {
                        kind: "SLOW_REQUEST",
                        trace: w.trace(),
                        count: s.count,
                        interval_ms,
                        threshold_ms: self.options.slow_request_ms,
                    },
                )));
            }
        }
        for (fingerprint, q) in std::mem::take(&mut self.slow_queries) {
            let sql = self.queries.text(fingerprint).map(|t| t.to_string());
            log::warn!(
                "slow queries: {} of {} in the last {interval_ms} ms (over {} ms); slowest {:.1} ms: {}",
                q.count,
                Fingerprint::hex(fingerprint),
                self.options.slow_query_ms,
                q.worst.micros as f64 / 1000.0,
                sql.as_deref().unwrap_or("(statement text not known yet)")
            );
            if let Some(bus) = &self.options.events {
                bus.do_send(Publish(Event::new(
                    "QueryLogger",
                    Payload::SlowQuery {
                        kind: "SLOW_QUERY",
                        query: SlowQuery {
                            id: Fingerprint::hex(fingerprint),
                            sql,
                            duration_ms: q.worst.micros as f64 / 1000.0,
                            threshold_ms: self.options.slow_query_ms,
                            trace_id: q
                                .worst
                                .trace_id
                                .map(|t| String::from_utf8_lossy(&t).into_owned()),
                            error: q.worst.error.as_deref().map(str::to_owned),
                            count: q.count,
                        },
                    },
                )));
            }
        }
        let stats = self.table.stats();
        let (logged, at) = self.rejected_logged;
        if stats.rejected_samples > logged
            && at.is_none_or(|t| t.elapsed() >= CARDINALITY_LOG_EVERY)
        {
            log::error!(
                "metrics: {} sample(s) of new series refused since the last report: the store \
                 holds {} of METRICS_MAX_SERIES {} series ({} for requests to no route or with \
                 an unknown method); last refused: {}",
                stats.rejected_samples - logged,
                stats.series,
                stats.max_series,
                stats.unrouted_max_series,
                stats.last_rejected.as_deref().unwrap_or("-")
            );
            self.rejected_logged = (stats.rejected_samples, Some(Instant::now()));
        }
    }

    fn slow_requests(&self, q: &GetSlowRequests) -> SlowRequests {
        let requests = self
            .slow
            .list(q.route.as_deref(), q.limit)
            .into_iter()
            .map(|s| SlowRequestWithQueries {
                request: slow::view(s),
                logged_queries: self.queries.trace(&s.w3c_trace_id),
            })
            .collect();
        let (kept, routes) = self.slow.size();
        SlowRequests {
            requests,
            kept,
            routes,
            total: self.slow.total,
            per_route: slow::PER_ROUTE,
            max_routes: slow::MAX_ROUTES,
        }
    }
}

impl Actor for MetricsStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        sv::started(self, ctx);
    }
}

impl Supervised for MetricsStore {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The series, query statistics and slow ring are plain data and stay; what the
        // crashed message was doing is lost with it.
    }
}

impl Core for MetricsStore {
    fn supervision(&mut self) -> &mut CoreSupervision {
        &mut self.sup
    }

    fn start(&mut self, ctx: &mut Context<Self>) {
        sv::guard_interval(ctx, Duration::from_secs(60), |act, _| {
            act.table.sweep(now_secs());
            act.queries.sweep(Utc::now());
        });
        sv::guard_interval(ctx, SLOW_SUMMARY_EVERY, |act, _| act.summarise());
        if let Some(every) = self.persister.every() {
            sv::guard_interval(ctx, every, |act, _| {
                act.persister.persist(&act.table, false);
            });
        }
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(self.table.stats()).unwrap_or_default()
    }
}

crate::core_handlers!(MetricsStore);

impl Handler<PersistRollups> for MetricsStore {
    type Result = Guarded<usize>;

    fn handle(&mut self, msg: PersistRollups, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            act.persister.persist(&act.table, msg.include_current)
        })
    }
}

impl Handler<IngestQueries> for MetricsStore {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: IngestQueries, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.ingest_queries(msg))
    }
}

impl Handler<GetQueryReport> for MetricsStore {
    type Result = Guarded<MessageResult<GetQueryReport>>;

    fn handle(&mut self, q: GetQueryReport, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            MessageResult(act.queries.report(q.limit, q.trace_id.as_deref()))
        })
    }
}

impl Handler<GetSlowRequests> for MetricsStore {
    type Result = Guarded<SlowRequests>;

    fn handle(&mut self, q: GetSlowRequests, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.slow_requests(&q))
    }
}

impl Handler<IngestApi> for MetricsStore {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: IngestApi, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.ingest_api(msg))
    }
}

impl Handler<RecordGauges> for MetricsStore {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: RecordGauges, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let now = now_secs();
            for g in msg.0 {
                act.table.record(&g.key, g.unit, &[g.value], now);
            }
        })
    }
}

impl Handler<QueryMetrics> for MetricsStore {
    type Result = Guarded<MetricsView>;

    fn handle(&mut self, q: QueryMetrics, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let now = now_secs();
            let series = act
                .table
                .query(q.window, q.name.as_deref(), q.route.as_deref(), now);
            let routes = if q.name.as_deref().is_none_or(|n| n == API_RESPONSE_TIME) {
                let mut routes = act.table.routes(q.window, now);
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
                store: act.table.stats(),
            }
        })
    }
}

impl Handler<GetRouteStats> for MetricsStore {
    type Result = Guarded<MessageResult<GetRouteStats>>;

    fn handle(&mut self, q: GetRouteStats, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            MessageResult(act.table.routes(q.0, now_secs()))
        })
    }
}

impl Handler<GetRecentRouteStats> for MetricsStore {
    type Result = Guarded<MessageResult<GetRecentRouteStats>>;

    fn handle(&mut self, q: GetRecentRouteStats, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            MessageResult(act.table.recent_routes(q.secs, now_secs()))
        })
    }
}

impl Handler<GetStoreStats> for MetricsStore {
    type Result = Guarded<StoreStats>;

    fn handle(&mut self, _: GetStoreStats, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.table.stats())
    }
}
