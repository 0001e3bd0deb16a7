//! The requests in flight, as `/traces` lists them.
//!
//! Each worker has its own table (a `Mutex<Slab>`, uncontended on the hot path); the registry
//! holds every worker's, for `/traces`. The route of a static path is known when the request
//! starts; a dynamic route is known only once the app's router has run, so the entry keeps a
//! copy of the path (inline, at most [`INLINE_PATH`] bytes: no heap) that `/traces` resolves to
//! its pattern with the app's route table when it is asked. The raw path is never shown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ResourceMap;
use actix_web::http::header::HeaderValue;
use chrono::{DateTime, Utc};
use serde::Serialize;
use slab::Slab;

/// Longest path an in-flight entry keeps for `/traces` to resolve its route.
pub const INLINE_PATH: usize = 128;

/// A path copied into a fixed buffer (no allocation); `None` when longer.
#[derive(Debug, Clone, Copy)]
pub(super) struct InlinePath {
    len: u8,
    bytes: [u8; INLINE_PATH],
}

impl InlinePath {
    pub(super) fn new(path: &str) -> Option<InlinePath> {
        let len = u8::try_from(path.len())
            .ok()
            .filter(|l| usize::from(*l) <= INLINE_PATH)?;
        let mut bytes = [0u8; INLINE_PATH];
        bytes[..path.len()].copy_from_slice(path.as_bytes());
        Some(InlinePath { len, bytes })
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// What is known of an in-flight request's route.
#[derive(Debug, Clone)]
pub(super) enum RouteOf {
    /// A static route, known from the start.
    Known(Arc<str>),
    /// Resolved when shown (the path, kept inline).
    Path(InlinePath),
    /// A path too long to keep: shown without a route.
    Unknown,
}

/// A request in flight. When the request ends the tracer takes the entry back and reuses its
/// `X-Trace-Id` value for the response, so nothing is copied for the table. The wall-clock
/// start is derived from `started` when the entry is shown, which saves a clock read per
/// request.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    /// The `X-Trace-Id` response header.
    pub(super) trace_id: Option<HeaderValue>,
    pub(super) method: &'static str,
    pub(super) route: RouteOf,
    pub(super) started: Instant,
}

/// One in-flight request in `/traces`.
#[derive(Debug, Clone, Serialize)]
pub struct InFlightView {
    pub trace_id: String,
    pub method: String,
    /// The route pattern (`null` when the path was too long to keep, or matched none).
    pub route: Option<String>,
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

pub(super) type Table = Arc<Mutex<Slab<InFlight>>>;
type WeakTable = std::sync::Weak<Mutex<Slab<InFlight>>>;

/// Every worker's in-flight table; read by `/traces`.
#[derive(Clone, Default)]
pub struct InFlightRegistry {
    tables: Arc<Mutex<Vec<WeakTable>>>,
}

impl InFlightRegistry {
    pub(super) fn register(&self) -> Table {
        let table: Table = Arc::default();
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        tables.retain(|t| t.strong_count() > 0);
        tables.push(Arc::downgrade(&table));
        table
    }

    /// Summary plus the `limit` oldest requests in flight. Dynamic routes are resolved with
    /// `routes` (the app's route table, from the request asking); without it they show no
    /// route.
    pub fn snapshot(
        &self,
        limit: usize,
        routes: Option<&ResourceMap>,
    ) -> (TraceStats, Vec<InFlightView>) {
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
            // Copied out under the lock; resolved outside it (the hot path takes this lock).
            let entries: Vec<InFlight> = table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(_, f)| f.clone())
                .collect();
            all.extend(entries.into_iter().map(|f| {
                let age = now.saturating_duration_since(f.started);
                let route = match &f.route {
                    RouteOf::Known(r) => Some(r.to_string()),
                    RouteOf::Path(p) => routes.and_then(|m| m.match_pattern(p.as_str())),
                    RouteOf::Unknown => None,
                };
                InFlightView {
                    trace_id: f
                        .trace_id
                        .as_ref()
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    method: f.method.to_owned(),
                    route,
                    age_ms: age.as_secs_f64() * 1e3,
                    started_at: started_at(wall_now, age),
                }
            }));
        }
        let mut by_method = HashMap::new();
        let mut by_route = HashMap::new();
        for f in &all {
            *by_method.entry(f.method.clone()).or_insert(0) += 1;
            let route = f.route.clone().unwrap_or_else(|| "(unknown)".to_owned());
            *by_route.entry(route).or_insert(0) += 1;
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
pub(super) fn started_at(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(now)
}
