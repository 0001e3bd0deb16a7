//! `RequestTracer`: actix-web middleware that traces every request at next to no cost.
//!
//! Per request: resolve the trace id ([`TraceContext`]), make it the request task's current
//! trace ([`TraceContext::current`]) and put it on the response (`X-Trace-Id`, `traceparent`); when sampled, list the request as in flight
//! and, when it ends, add its latency to the worker's local batch under
//! (method, route pattern, status class). Never the raw path: `/users/7` and `/users/8` are
//! one series, `/users/{id}`; requests that match no route share `__unmatched__`.
//!
//! Hot-path rules: no actor message per request, no header captured but the trace ids. Each
//! worker owns its batch (an `Rc<RefCell<…>>`, no locking) and a timer hands it to the
//! `MetricsStore` every `TRACE_FLUSH_INTERVAL_MS` (sooner when it holds 8 192 samples). The
//! in-flight table is a per-worker `Mutex<Slab>`: uncontended on the hot path, read by
//! `/traces` across workers. Slow requests (over `TRACE_SLOW_THRESHOLD_MS`) log a warning and
//! publish a `SLOW_REQUEST` event: rare by definition, so worth a message.
//!
//! What keeps the per-request cost low (measured in docs/BENCHMARKS.md):
//! - two clock reads (start, end); an in-flight request's wall-clock start is derived from its
//!   age only when `/traces` asks;
//! - no `format!` and no heap for new ids: [`TraceContext`] holds fixed-size hex arrays and
//!   writes `traceparent` into a stack buffer; the header names are constants;
//! - the trace context is moved into a task-local scope: no clone, no boxed extension;
//! - route patterns are interned per worker: a path that is its own pattern (a static route)
//!   is looked up without re-running the router, and the in-flight entry and the batch share
//!   the interned pattern; the `ApiKey` strings are built once per series per flush;
//! - nothing is cloned for the in-flight entry: the tracer takes it back when the request ends
//!   and reuses its parts; consecutive requests to the same series append to the batch without
//!   hashing the key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::HeaderValue;
use actix_web::http::Method;
use chrono::{DateTime, Utc};
use serde::Serialize;
use slab::Slab;

use crate::actors::event_bus::{EventBus, Publish};
use crate::actors::metrics_store::{status_class_label, ApiKey, IngestApi, MetricsStore};
use crate::config::TracerSettings;
use crate::domain::event::{Event, Payload, SlowTrace};
use crate::domain::metric::UNMATCHED_ROUTE;
use crate::middleware::trace_context::{TraceContext, TRACEPARENT, X_TRACE_ID};

/// Samples a worker buffers before it flushes without waiting for the timer.
const MAX_BUFFERED: usize = 8_192;

/// Cap on each per-worker route intern table. Only route patterns (and paths equal to one) are
/// ever inserted, so a real route table never gets near it; it only bounds a pathological one.
const MAX_INTERNED: usize = 4_096;

/// A request in flight, as `/traces` shows it. When the request ends the tracer takes the
/// entry back and reuses its parts (the `X-Trace-Id` value for the response, method and route
/// for the series key), so nothing is copied for the table. The wall-clock start is derived
/// from `started` when the entry is shown, which saves a clock read per request.
#[derive(Debug, Clone)]
struct InFlight {
    /// The `X-Trace-Id` response header (`None` only if the id were not header-safe, which
    /// [`TraceContext`] never produces).
    trace_id: Option<HeaderValue>,
    method: Method,
    route: Arc<str>,
    started: Instant,
}

/// One in-flight request in `/traces`.
#[derive(Debug, Clone, Serialize)]
pub struct InFlightView {
    pub trace_id: String,
    pub method: String,
    pub route: String,
    pub age_ms: f64,
    pub started_at: DateTime<Utc>,
}

/// Summary of the requests in flight.
#[derive(Debug, Clone, Serialize)]
pub struct TraceStats {
    pub active: usize,
    pub by_method: HashMap<String, usize>,
    pub by_route: HashMap<String, usize>,
    pub avg_age_ms: f64,
}

type Table = Arc<Mutex<Slab<InFlight>>>;
type WeakTable = std::sync::Weak<Mutex<Slab<InFlight>>>;

/// Every worker's in-flight table; read by `/traces`.
#[derive(Clone, Default)]
pub struct InFlightRegistry {
    tables: Arc<Mutex<Vec<WeakTable>>>,
}

impl InFlightRegistry {
    fn register(&self) -> Table {
        let table: Table = Arc::default();
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        tables.retain(|t| t.strong_count() > 0);
        tables.push(Arc::downgrade(&table));
        table
    }

    /// Summary plus the `limit` oldest requests in flight.
    pub fn snapshot(&self, limit: usize) -> (TraceStats, Vec<InFlightView>) {
        let now = Instant::now();
        let wall_now = Utc::now();
        let mut all = Vec::new();
        let tables: Vec<Table> = self
            .tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|t| t.upgrade())
            .collect();
        for table in tables {
            let table = table.lock().unwrap_or_else(PoisonError::into_inner);
            all.extend(table.iter().map(|(_, f)| {
                let age = now.saturating_duration_since(f.started);
                InFlightView {
                    trace_id: f
                        .trace_id
                        .as_ref()
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    method: f.method.to_string(),
                    route: f.route.to_string(),
                    age_ms: age.as_secs_f64() * 1e3,
                    started_at: started_at(wall_now, age),
                }
            }));
        }
        let mut by_method = HashMap::new();
        let mut by_route = HashMap::new();
        for f in &all {
            *by_method.entry(f.method.clone()).or_insert(0) += 1;
            *by_route.entry(f.route.clone()).or_insert(0) += 1;
        }
        let avg_age_ms = if all.is_empty() {
            0.0
        } else {
            all.iter().map(|f| f.age_ms).sum::<f64>() / all.len() as f64
        };
        let stats = TraceStats {
            active: all.len(),
            by_method,
            by_route,
            avg_age_ms,
        };
        all.sort_by(|a, b| b.age_ms.total_cmp(&a.age_ms));
        all.truncate(limit);
        (stats, all)
    }
}

/// The wall-clock time `age` before `now`.
fn started_at(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(now)
}

/// What the tracer needs, shared by every worker.
struct Shared {
    settings: TracerSettings,
    metrics: Addr<MetricsStore>,
    bus: Addr<EventBus>,
    in_flight: InFlightRegistry,
}

/// The middleware factory: `.wrap(selfheal.tracer())`.
#[derive(Clone)]
pub struct RequestTracer {
    shared: Arc<Shared>,
}

impl RequestTracer {
    /// A tracer recording into `metrics` and publishing slow requests on `bus`.
    pub fn new(
        settings: TracerSettings,
        metrics: Addr<MetricsStore>,
        bus: Addr<EventBus>,
        in_flight: InFlightRegistry,
    ) -> Self {
        RequestTracer {
            shared: Arc::new(Shared {
                settings,
                metrics,
                bus,
                in_flight,
            }),
        }
    }
}

/// A series as the worker batches it: [`ApiKey`] with the interned route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesId {
    method: Method,
    route: Arc<str>,
    status_class: u8,
}

impl SeriesId {
    /// Equal to `other`, comparing the interned route by address first.
    fn same(&self, other: &SeriesId) -> bool {
        self.status_class == other.status_class
            && (Arc::ptr_eq(&self.route, &other.route) || self.route == other.route)
            && self.method == other.method
    }
}

/// A worker's latencies since the last flush, by series. Consecutive requests to the same
/// series (the common case) append without hashing the key: `last` is checked first.
#[derive(Default)]
struct Batch {
    series: Vec<(SeriesId, Vec<u32>)>,
    index: HashMap<SeriesId, usize>,
    last: usize,
    samples: usize,
}

impl Batch {
    /// Add a sample; true when the batch is full.
    fn add(&mut self, key: SeriesId, micros: u32) -> bool {
        let i = match self.series.get(self.last) {
            Some((k, _)) if k.same(&key) => self.last,
            _ => match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    self.index.insert(key.clone(), self.series.len());
                    self.series.push((key, Vec::new()));
                    self.series.len() - 1
                }
            },
        };
        if let Some((_, v)) = self.series.get_mut(i) {
            v.push(micros);
        }
        self.last = i;
        self.samples += 1;
        self.samples >= MAX_BUFFERED
    }

    /// The samples as the `MetricsStore` takes them.
    fn into_samples(self) -> HashMap<ApiKey, Vec<u32>> {
        self.series
            .into_iter()
            .map(|(k, v)| {
                let key = ApiKey {
                    method: k.method,
                    route: k.route.to_string(),
                    status_class: k.status_class,
                };
                (key, v)
            })
            .collect()
    }
}

/// Keyed with the Fx hash (`rustc-hash`), several times cheaper than SipHash on a short path.
/// It is not collision-resistant, which is safe here: only route patterns from the app's own
/// route table are ever inserted, never a client's path.
type RouteTable = rustc_hash::FxHashMap<Box<str>, Arc<str>>;

/// A worker's interned route patterns.
struct Routes {
    /// Paths that are their own route pattern (static routes), to their pattern. Only such paths
    /// are inserted, so the table is bounded by the route table, whatever the traffic.
    by_path: RouteTable,
    /// Route patterns, to their shared copy.
    by_pattern: RouteTable,
    unmatched: Arc<str>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            by_path: RouteTable::default(),
            by_pattern: RouteTable::default(),
            unmatched: Arc::from(UNMATCHED_ROUTE),
        }
    }
}

impl Routes {
    /// The route pattern `req` matches (what `match_pattern` gives), interned.
    fn resolve(&mut self, req: &ServiceRequest) -> Arc<str> {
        let path = req.path();
        if let Some(route) = self.by_path.get(path) {
            return route.clone();
        }
        let Some(pattern) = req.match_pattern() else {
            return self.unmatched.clone();
        };
        let route = match self.by_pattern.get(pattern.as_str()) {
            Some(route) => route.clone(),
            None => {
                let route: Arc<str> = Arc::from(pattern.as_str());
                if self.by_pattern.len() < MAX_INTERNED {
                    self.by_pattern
                        .insert(Box::from(pattern.as_str()), route.clone());
                }
                route
            }
        };
        if pattern == path && self.by_path.len() < MAX_INTERNED {
            self.by_path.insert(pattern.into_boxed_str(), route.clone());
        }
        route
    }
}

/// A worker's batch of latencies, handed to the `MetricsStore` on flush.
struct Worker {
    shared: Arc<Shared>,
    batch: RefCell<Batch>,
    routes: RefCell<Routes>,
    table: Table,
}

impl Worker {
    fn record(&self, key: SeriesId, micros: u32) {
        let full = self.batch.borrow_mut().add(key, micros);
        if full {
            self.flush();
        }
    }

    fn flush(&self) {
        let batch = std::mem::take(&mut *self.batch.borrow_mut());
        if !batch.series.is_empty() {
            let samples = batch.into_samples();
            self.shared.metrics.do_send(IngestApi { samples });
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker shutting down hands over what it still holds.
        self.flush();
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestTracer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = TracerService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let worker = Rc::new(Worker {
            shared: self.shared.clone(),
            batch: RefCell::default(),
            routes: RefCell::default(),
            table: self.shared.in_flight.register(),
        });
        let every = Duration::from_millis(self.shared.settings.flush_interval_ms.max(1));
        let weak: Weak<Worker> = Rc::downgrade(&worker);
        // Runs on this worker's arbiter; ends when the worker's service is dropped.
        actix_web::rt::spawn(async move {
            let mut timer = actix_web::rt::time::interval(every);
            loop {
                timer.tick().await;
                match weak.upgrade() {
                    Some(w) => w.flush(),
                    None => break,
                }
            }
        });
        ready(Ok(TracerService {
            service: Rc::new(service),
            worker,
        }))
    }
}

/// The per-worker service.
pub struct TracerService<S> {
    service: Rc<S>,
    worker: Rc<Worker>,
}

/// Removes the request from the in-flight table however the request ends (aborts included).
struct InFlightGuard {
    worker: Rc<Worker>,
    slot: Option<usize>,
}

impl InFlightGuard {
    /// Take the entry out of the table.
    fn finish(&mut self) -> Option<InFlight> {
        let slot = self.slot.take()?;
        self.worker
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_remove(slot)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<S, B> Service<ServiceRequest> for TracerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let settings = &self.worker.shared.settings;
        if settings
            .exclude_paths
            .iter()
            .any(|p| req.path().starts_with(p.as_str()))
        {
            return Box::pin(self.service.call(req));
        }
        let trace = TraceContext::from_headers(req.headers());
        let header_id = HeaderValue::from_bytes(trace.id_bytes()).ok();
        let header_parent = HeaderValue::from_bytes(&trace.traceparent_bytes()).ok();
        let sampled = settings.sample_rate >= 1.0
            || (settings.sample_rate > 0.0 && fastrand::f64() < settings.sample_rate);
        let started = Instant::now();
        // Sampled: the in-flight entry owns the X-Trace-Id value until the request ends.
        let (header_id, guard) = if sampled {
            let route = self.worker.routes.borrow_mut().resolve(&req);
            let slot = self
                .worker
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(InFlight {
                    trace_id: header_id,
                    method: req.method().clone(),
                    route,
                    started,
                });
            let guard = InFlightGuard {
                worker: self.worker.clone(),
                slot: Some(slot),
            };
            (None, Some(guard))
        } else {
            (header_id, None)
        };
        // The rest of the request runs with its trace as the task's current one (moved, not
        // cloned: the response headers are already built).
        // The inner service is called inside the scope too: middleware below us may do work
        // at call time.
        let service = self.service.clone();
        let fut = trace.scope(async move { service.call(req).await });
        Box::pin(async move {
            // An error from inner middleware becomes its response here, so that it too counts
            // with its real status and carries the trace headers.
            let mut res = fut.await.map_err(Answered::new);
            let mut header_id = header_id;
            if let Some(mut guard) = guard {
                let elapsed = started.elapsed();
                if let Some(done) = guard.finish() {
                    let status = match &res {
                        Ok(r) => r.status(),
                        Err(a) => a.response.status(),
                    };
                    let worker = &guard.worker;
                    let slow_ms = worker.shared.settings.slow_threshold_ms;
                    if slow_ms > 0 && elapsed > Duration::from_millis(slow_ms) {
                        slow_request(&worker.shared, &done, status.as_u16(), elapsed);
                    }
                    let class = (status.as_u16() / 100).clamp(1, 5) as u8;
                    let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
                    worker.record(
                        SeriesId {
                            method: done.method,
                            route: done.route,
                            status_class: class,
                        },
                        micros,
                    );
                    header_id = done.trace_id;
                }
            }
            let headers = match &mut res {
                Ok(r) => r.headers_mut(),
                Err(a) => a.response.headers_mut(),
            };
            if let Some(v) = header_id {
                headers.insert(X_TRACE_ID, v);
            }
            if let Some(v) = header_parent {
                headers.insert(TRACEPARENT, v);
            }
            res.map_err(Answered::into_error)
        })
    }
}

/// An error from inner middleware with the response it stands for, so the tracer can decorate
/// the response before the error travels on (the request is gone by then, so it cannot be
/// turned into a `ServiceResponse` here).
struct Answered {
    error: actix_web::Error,
    response: actix_web::HttpResponse,
}

impl Answered {
    fn new(error: actix_web::Error) -> Self {
        let response = error.error_response();
        Answered { error, response }
    }

    /// An error that answers with the decorated response.
    fn into_error(self) -> actix_web::Error {
        actix_web::error::InternalError::from_response(self.error, self.response).into()
    }
}

fn slow_request(shared: &Shared, request: &InFlight, status: u16, elapsed: Duration) {
    let (method, route) = (&request.method, &*request.route);
    let trace_id = request
        .trace_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let duration_ms = elapsed.as_secs_f64() * 1e3;
    log::warn!(
        "slow request: {method} {route} -> {status} in {duration_ms:.1} ms (over {} ms; trace {trace_id}, class {})",
        shared.settings.slow_threshold_ms,
        status_class_label((status / 100) as u8),
    );
    shared.bus.do_send(Publish(Event::new(
        "RequestTracer",
        Payload::slow_request(SlowTrace {
            trace_id: trace_id.to_owned(),
            method: method.to_string(),
            route: route.to_owned(),
            status,
            duration_ms,
        }),
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(route: &str, status_class: u8) -> SeriesId {
        SeriesId {
            method: Method::GET,
            route: Arc::from(route),
            status_class,
        }
    }

    fn api_key(route: &str, status_class: u8) -> ApiKey {
        ApiKey {
            method: Method::GET,
            route: route.to_owned(),
            status_class,
        }
    }

    #[test]
    fn the_batch_groups_samples_by_series_whatever_their_order() {
        let mut b = Batch::default();
        for (i, (route, class)) in [("/a", 2), ("/a", 2), ("/b", 2), ("/a", 5), ("/a", 2)]
            .into_iter()
            .enumerate()
        {
            assert!(!b.add(key(route, class), i as u32));
        }
        let map = b.into_samples();
        assert_eq!(map.len(), 3);
        assert_eq!(map[&api_key("/a", 2)], vec![0, 1, 4]);
        assert_eq!(map[&api_key("/b", 2)], vec![2]);
        assert_eq!(map[&api_key("/a", 5)], vec![3]);
    }

    #[test]
    fn the_batch_reports_full_at_the_cap() {
        let mut b = Batch::default();
        let full = (0..MAX_BUFFERED).map(|i| b.add(key("/a", 2), i as u32));
        assert_eq!(full.filter(|f| *f).count(), 1);
    }

    #[actix_web::test]
    async fn routes_resolve_to_their_pattern_and_only_static_paths_are_cached() {
        use actix_web::{middleware::from_fn, test, web, App, HttpResponse};
        let routes = Rc::new(RefCell::new(Routes::default()));
        let seen = Rc::new(RefCell::new(Vec::<Arc<str>>::new()));
        let (r, s) = (routes.clone(), seen.clone());
        let app = test::init_service(
            App::new()
                .wrap(from_fn(
                    move |req: ServiceRequest, next: actix_web::middleware::Next<_>| {
                        s.borrow_mut().push(r.borrow_mut().resolve(&req));
                        next.call(req)
                    },
                ))
                .route("/users/{id}", web::get().to(HttpResponse::Ok))
                .route("/static", web::get().to(HttpResponse::Ok)),
        )
        .await;
        for path in [
            "/users/7",
            "/users/8",
            "/static",
            "/static",
            "/nope",
            "/users/{id}",
        ] {
            let req = test::TestRequest::get().uri(path).to_request();
            test::call_service(&app, req).await;
        }
        let seen = seen.borrow();
        let seen: Vec<&str> = seen.iter().map(|r| &**r).collect();
        assert_eq!(
            seen,
            [
                "/users/{id}",
                "/users/{id}",
                "/static",
                "/static",
                UNMATCHED_ROUTE,
                "/users/{id}"
            ]
        );
        let routes = routes.borrow();
        // Only paths that are their own pattern are remembered: never /users/7 or /nope.
        let mut cached: Vec<&str> = routes.by_path.keys().map(|k| &**k).collect();
        cached.sort_unstable();
        assert_eq!(cached, ["/static", "/users/{id}"]);
        assert_eq!(routes.by_pattern.len(), 2);
    }

    #[test]
    fn an_in_flight_start_is_its_age_before_now() {
        let now = Utc::now();
        let at = started_at(now, Duration::from_millis(1_500));
        assert_eq!((now - at).num_milliseconds(), 1_500);
        assert_eq!(started_at(now, Duration::MAX), now);
    }

    #[actix_web::test]
    async fn an_error_from_inner_middleware_is_counted_with_its_status_and_keeps_the_trace_headers()
    {
        use crate::actors::metrics_store::GetRouteStats;
        use crate::domain::metric::Window;
        use actix::Actor;
        use actix_web::{error::ErrorForbidden, middleware::from_fn, test, web, App, HttpResponse};

        let metrics = MetricsStore::new(10).start();
        let bus = EventBus::new(10).start();
        let mut settings = crate::config::Settings::for_tests().tracer;
        settings.flush_interval_ms = 5;
        let tracer =
            RequestTracer::new(settings, metrics.clone(), bus, InFlightRegistry::default());
        let app = test::init_service(
            App::new()
                .wrap(from_fn(
                    |_: ServiceRequest, _: actix_web::middleware::Next<_>| async {
                        Err::<ServiceResponse, _>(ErrorForbidden("nope"))
                    },
                ))
                .wrap(tracer)
                .route("/guarded", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let req = test::TestRequest::get()
            .uri("/guarded")
            .insert_header(("x-trace-id", "req-7"))
            .to_request();
        let err = test::try_call_service(&app, req)
            .await
            .expect_err("the inner middleware refused");
        let res = err.error_response();
        assert_eq!(res.status(), 403);
        assert_eq!(res.headers().get("x-trace-id").unwrap(), "req-7");
        assert!(res.headers().contains_key("traceparent"));

        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let routes = metrics.send(GetRouteStats(Window::M1)).await.unwrap();
            if let Some(r) = routes.iter().find(|r| r.route == "/guarded") {
                assert_eq!((r.count, r.client_errors, r.errors), (1, 1, 0));
                break;
            }
            assert!(Instant::now() < deadline, "never recorded: {routes:?}");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix_web::test]
    async fn a_handler_sees_its_request_s_trace_as_the_current_one() {
        use actix::Actor;
        use actix_web::{test, web, App, HttpResponse};

        let tracer = RequestTracer::new(
            crate::config::Settings::for_tests().tracer,
            MetricsStore::new(10).start(),
            EventBus::new(10).start(),
            InFlightRegistry::default(),
        );
        let app = test::init_service(App::new().wrap(tracer).route(
            "/whoami",
            web::get().to(|| async {
                actix_web::rt::task::yield_now().await;
                let id = TraceContext::current().map(|t| t.id().to_owned());
                HttpResponse::Ok().body(id.unwrap_or_default())
            }),
        ))
        .await;
        for given in [None, Some("req-99")] {
            let mut req = test::TestRequest::get().uri("/whoami");
            if let Some(id) = given {
                req = req.insert_header(("x-trace-id", id));
            }
            let res = test::call_service(&app, req.to_request()).await;
            let header = res
                .headers()
                .get("x-trace-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let body = test::read_body(res).await;
            assert_eq!(std::str::from_utf8(&body).unwrap(), header);
            if let Some(id) = given {
                assert_eq!(header, id);
            }
        }
    }
}
