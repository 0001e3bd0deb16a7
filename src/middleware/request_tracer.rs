//! `RequestTracer`: actix-web middleware that traces every request at next to no cost.
//!
//! Per request: resolve the trace id ([`TraceContext`]), put it in the request extensions and
//! on the response (`X-Trace-Id`, `traceparent`); when sampled, list the request as in flight
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

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::HttpMessage;
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

/// A request in flight, as `/traces` shows it.
#[derive(Debug, Clone)]
struct InFlight {
    trace_id: String,
    method: Method,
    route: String,
    started: Instant,
    started_at: DateTime<Utc>,
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
            all.extend(table.iter().map(|(_, f)| InFlightView {
                trace_id: f.trace_id.clone(),
                method: f.method.to_string(),
                route: f.route.clone(),
                age_ms: now.duration_since(f.started).as_secs_f64() * 1e3,
                started_at: f.started_at,
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

/// A worker's batch of latencies, handed to the `MetricsStore` on flush.
struct Worker {
    shared: Arc<Shared>,
    batch: RefCell<(HashMap<ApiKey, Vec<u32>>, usize)>,
    table: Table,
}

impl Worker {
    fn record(&self, key: ApiKey, micros: u32) {
        let full = {
            let mut batch = self.batch.borrow_mut();
            let (map, n) = &mut *batch;
            match map.get_mut(&key) {
                Some(v) => v.push(micros),
                None => {
                    map.insert(key, vec![micros]);
                }
            }
            *n += 1;
            *n >= MAX_BUFFERED
        };
        if full {
            self.flush();
        }
    }

    fn flush(&self) {
        let (samples, _) = std::mem::take(&mut *self.batch.borrow_mut());
        if !samples.is_empty() {
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
    table: Table,
    slot: usize,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.contains(self.slot) {
            table.remove(self.slot);
        }
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
        let sampled = settings.sample_rate >= 1.0
            || (settings.sample_rate > 0.0 && fastrand::f64() < settings.sample_rate);
        let record = sampled.then(|| {
            let method = req.method().clone();
            let route = req
                .match_pattern()
                .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
            let guard = InFlightGuard {
                table: self.worker.table.clone(),
                slot: self
                    .worker
                    .table
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(InFlight {
                        trace_id: trace.id.clone(),
                        method: method.clone(),
                        route: route.clone(),
                        started: Instant::now(),
                        started_at: Utc::now(),
                    }),
            };
            (method, route, guard)
        });
        let started = Instant::now();
        let header_id = HeaderValue::from_str(&trace.id).ok();
        let header_parent = HeaderValue::from_str(&trace.traceparent()).ok();
        req.extensions_mut().insert(trace.clone());
        let fut = self.service.call(req);
        let worker = self.worker.clone();
        Box::pin(async move {
            let result = fut.await;
            if let Some((method, route, guard)) = record {
                drop(guard);
                let elapsed = started.elapsed();
                let status = match &result {
                    Ok(res) => res.status(),
                    Err(e) => e.as_response_error().status_code(),
                };
                let class = (status.as_u16() / 100).clamp(1, 5) as u8;
                let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
                let slow_ms = worker.shared.settings.slow_threshold_ms;
                if slow_ms > 0 && elapsed > Duration::from_millis(slow_ms) {
                    slow_request(
                        &worker.shared,
                        &trace,
                        &method,
                        &route,
                        status.as_u16(),
                        elapsed,
                    );
                }
                worker.record(
                    ApiKey {
                        method,
                        route,
                        status_class: class,
                    },
                    micros,
                );
            }
            let mut res = result?;
            let headers = res.headers_mut();
            if let Some(v) = header_id {
                headers.insert(HeaderName::from_static(X_TRACE_ID), v);
            }
            if let Some(v) = header_parent {
                headers.insert(HeaderName::from_static(TRACEPARENT), v);
            }
            Ok(res)
        })
    }
}

fn slow_request(
    shared: &Shared,
    trace: &TraceContext,
    method: &Method,
    route: &str,
    status: u16,
    elapsed: Duration,
) {
    let duration_ms = elapsed.as_secs_f64() * 1e3;
    log::warn!(
        "slow request: {method} {route} -> {status} in {duration_ms:.1} ms (over {} ms; trace {}, class {})",
        shared.settings.slow_threshold_ms,
        trace.id,
        status_class_label((status / 100) as u8),
    );
    shared.bus.do_send(Publish(Event::new(
        "RequestTracer",
        Payload::slow_request(SlowTrace {
            trace_id: trace.id.clone(),
            method: method.to_string(),
            route: route.to_owned(),
            status,
            duration_ms,
        }),
    )));
}
