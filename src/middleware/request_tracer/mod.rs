//! `RequestTracer`: actix-web middleware that traces every request at next to no cost.
//!
//! Per request: resolve the trace id ([`TraceContext`]), make it the request task's current
//! trace ([`TraceContext::current`]) and put it on the response (`X-Trace-Id`, `traceparent`);
//! when sampled, list the request as in flight ([`in_flight`]) and, when it ends, add its
//! latency to the worker's local batch ([`batch`]) under (method, route pattern, status class).
//! Never the raw path: `/users/7` and `/users/8` are one series, `/users/{id}` ([`routes`]);
//! requests that match no route share `__unmatched__`; a method outside the standard nine is
//! `OTHER`, so a client cannot make up series.
//!
//! Hot-path rules: no actor message per request, no header captured but the trace ids, no
//! router run and no allocation to find a dynamic route's pattern. Each worker owns its batch
//! (an `Rc<RefCell<…>>`, no locking) and a timer hands it to the `MetricsStore` every
//! `TRACE_FLUSH_INTERVAL_MS` (sooner when it holds 8 192 samples). A request slower than
//! `TRACE_SLOW_THRESHOLD_MS` also goes into its route's slow summary in the batch (with the
//! number and total time of its queries, counted on its trace by the query logger): the
//! store keeps it for `/traces/slow` and sums each route up once a second, so an incident is
//! one log line and one event per route, not one per request.
//!
//! What keeps the per-request cost low (measured in docs/BENCHMARKS.md):
//! - two clock reads (start, end); an in-flight request's wall-clock start is derived from its
//!   age only when `/traces` asks;
//! - no `format!`: [`TraceContext`] holds fixed-size hex arrays and writes `traceparent` into a
//!   stack buffer; the response header values are carved out of a per-worker buffer (one
//!   allocation per ~700 requests instead of two per request), and a caller's `X-Trace-Id` is
//!   sent back as the very value it came in;
//! - the trace context is moved into a task-local scope: no clone, no boxed extension;
//! - route patterns are interned per worker; the in-flight entry and the batch share them;
//! - consecutive requests to the same series append to the batch without hashing the key.

mod batch;
mod in_flight;
mod routes;

use std::cell::RefCell;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::HeaderValue;
use actix_web::http::Method;
use actix_web::web::BytesMut;
use chrono::Utc;

use crate::actors::metrics_store::{IngestApi, MetricsStore, SlowSample};
use crate::config::TracerSettings;
use crate::domain::metric::OTHER_METHOD;
use crate::trace::{TraceContext, TRACEPARENT, X_TRACE_ID};
use batch::{Batch, SeriesId};
use in_flight::{InFlight, InlinePath, RouteOf, Table};
pub use in_flight::{InFlightRegistry, InFlightView, TraceStats};
use routes::Routes;

/// Size of the per-worker buffer response header values are carved out of.
const HEADER_ARENA: usize = 64 * 1024;

/// The method's label: one of the nine standard methods, or [`OTHER_METHOD`].
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => OTHER_METHOD,
    }
}

/// What the tracer needs, shared by every worker.
struct Shared {
    settings: TracerSettings,
    metrics: Addr<MetricsStore>,
    in_flight: InFlightRegistry,
}

/// The middleware factory: `.wrap(selfheal.tracer())`.
#[derive(Clone)]
pub struct RequestTracer {
    shared: Arc<Shared>,
}

impl RequestTracer {
    /// A tracer recording into `metrics` (latencies, and slow requests, which it sums up into
    /// events).
    pub fn new(
        settings: TracerSettings,
        metrics: Addr<MetricsStore>,
        in_flight: InFlightRegistry,
    ) -> Self {
        RequestTracer {
            shared: Arc::new(Shared {
                settings,
                metrics,
                in_flight,
            }),
        }
    }
}

/// A worker's batch of latencies, handed to the `MetricsStore` on flush.
struct Worker {
    shared: Arc<Shared>,
    batch: RefCell<Batch>,
    routes: RefCell<Routes>,
    table: Table,
    /// Where response header values are carved from.
    arena: RefCell<BytesMut>,
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
        if !batch.is_empty() {
            let (samples, slow) = batch.into_parts();
            self.shared.metrics.do_send(IngestApi { samples, slow });
        }
    }

    /// A header value holding `bytes`, sharing the worker's buffer.
    fn header(&self, bytes: &[u8]) -> Option<HeaderValue> {
        let mut arena = self.arena.borrow_mut();
        if arena.capacity() - arena.len() < bytes.len() {
            *arena = BytesMut::with_capacity(HEADER_ARENA.max(bytes.len()));
        }
        arena.extend_from_slice(bytes);
        HeaderValue::from_maybe_shared(arena.split().freeze()).ok()
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
            arena: RefCell::new(BytesMut::with_capacity(HEADER_ARENA)),
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
        let header_id = match trace.given_header() {
            // The caller's own value goes back as it came: no copy.
            Some(v) => Some(v.clone()),
            None => self.worker.header(trace.id_bytes()),
        };
        let header_parent = self.worker.header(&trace.traceparent_bytes());
        let w3c_trace_id = trace.trace_id_bytes();
        let sampled = settings.sample_rate >= 1.0
            || (settings.sample_rate > 0.0 && fastrand::f64() < settings.sample_rate);
        let started = Instant::now();
        let method = method_label(req.method());
        // Sampled: the in-flight entry owns the X-Trace-Id value until the request ends.
        let (header_id, guard) = if sampled {
            let route = match self.worker.routes.borrow().known_static(req.path()) {
                Some(r) => RouteOf::Known(r),
                None => InlinePath::new(req.path()).map_or(RouteOf::Unknown, RouteOf::Path),
            };
            let slot = self
                .worker
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(InFlight {
                    trace_id: header_id,
                    method,
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
        // cloned: the response headers are already built). The inner service is called inside
        // the scope too: middleware below us may do work at call time. The queries counted on
        // the trace are read before the scope ends.
        let service = self.service.clone();
        let fut = trace.scope(async move {
            let res = service.call(req).await;
            (res, TraceContext::current_queries())
        });
        Box::pin(async move {
            let (res, queries) = fut.await;
            // An error from inner middleware becomes its response here, so that it too counts
            // with its real status and carries the trace headers.
            let mut res = res.map_err(Answered::new);
            let mut header_id = header_id;
            if let Some(mut guard) = guard {
                let elapsed = started.elapsed();
                if let Some(done) = guard.finish() {
                    let worker = &guard.worker;
                    let (status, route) = match &res {
                        Ok(r) => (r.status(), worker.routes.borrow_mut().resolve(r.request())),
                        Err(a) => (a.response.status(), worker.routes.borrow_mut().unmatched()),
                    };
                    let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
                    let slow_ms = worker.shared.settings.slow_threshold_ms;
                    if slow_ms > 0 && elapsed > Duration::from_millis(slow_ms) {
                        let (queries, query_micros) = queries.unwrap_or_default();
                        worker.batch.borrow_mut().add_slow(SlowSample {
                            trace_id: done
                                .trace_id
                                .as_ref()
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned(),
                            w3c_trace_id,
                            method: done.method,
                            route: route.clone(),
                            status: status.as_u16(),
                            micros: u64::from(micros),
                            queries,
                            query_micros,
                            at: Utc::now(),
                        });
                    }
                    let class = (status.as_u16() / 100).clamp(1, 5) as u8;
                    worker.record(
                        SeriesId {
                            method: done.method,
                            route,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::metric::UNMATCHED_ROUTE;
    use actix::Actor;

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
                        let (r, s) = (r.clone(), s.clone());
                        async move {
                            let res = next.call(req).await?;
                            s.borrow_mut().push(r.borrow_mut().resolve(res.request()));
                            Ok::<_, actix_web::Error>(res)
                        }
                    },
                ))
                .route("/users/{id}", web::get().to(HttpResponse::Ok))
                .route(
                    "/users/{id}/orders/{order}",
                    web::get().to(HttpResponse::Ok),
                )
                .service(
                    web::scope("/v{version}")
                        .route("/items/{item}", web::get().to(HttpResponse::Ok)),
                )
                .route("/static", web::get().to(HttpResponse::Ok)),
        )
        .await;
        for path in [
            "/users/7",
            "/users/8",
            "/users/7/orders/9",
            "/static",
            "/static",
            "/nope",
            "/users/{id}",
            "/v2/items/x",
            "/v3/items/y",
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
                "/users/{id}/orders/{order}",
                "/static",
                "/static",
                UNMATCHED_ROUTE,
                "/users/{id}",
                "/v{version}/items/{item}",
                "/v{version}/items/{item}",
            ]
        );
        let routes = routes.borrow();
        // Only paths that are their own pattern are remembered by path: never /users/7 or
        // /nope; dynamic routes are remembered by shape, once each.
        assert_eq!(routes.cached_paths(), ["/static"]);
        assert_eq!(routes.shapes(), 3);
    }

    #[test]
    fn methods_outside_the_standard_nine_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), OTHER_METHOD);
    }

    #[test]
    fn an_in_flight_start_is_its_age_before_now() {
        let now = Utc::now();
        let at = in_flight::started_at(now, Duration::from_millis(1_500));
        assert_eq!((now - at).num_milliseconds(), 1_500);
        assert_eq!(in_flight::started_at(now, Duration::MAX), now);
    }

    #[actix_web::test]
    async fn an_error_from_inner_middleware_is_counted_with_its_status_and_keeps_the_trace_headers()
    {
        use crate::actors::metrics_store::GetRouteStats;
        use crate::domain::metric::Window;
        use actix_web::{error::ErrorForbidden, middleware::from_fn, test, web, App, HttpResponse};

        let metrics = MetricsStore::standalone(10).start();
        let mut settings = crate::config::Settings::for_tests().tracer;
        settings.flush_interval_ms = 5;
        let tracer = RequestTracer::new(settings, metrics.clone(), InFlightRegistry::default());
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
            // Refused before routing: it matched no route.
            if let Some(r) = routes.iter().find(|r| r.route == UNMATCHED_ROUTE) {
                assert_eq!((r.count, r.client_errors, r.errors), (1, 1, 0));
                break;
            }
            assert!(Instant::now() < deadline, "never recorded: {routes:?}");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix_web::test]
    async fn a_handler_sees_its_request_s_trace_as_the_current_one() {
        use actix_web::{test, web, App, HttpResponse};

        let tracer = RequestTracer::new(
            crate::config::Settings::for_tests().tracer,
            MetricsStore::standalone(10).start(),
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
