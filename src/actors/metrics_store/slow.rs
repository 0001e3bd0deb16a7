//! Slow requests: the ring `GET /api/v1/system/traces/slow` reads, and the per-route summary
//! the `SLOW_REQUEST` event carries.
//!
//! The tracer hands over, with each worker's batch, every route's slow requests of the flush
//! ([`RouteSlow`]: how many, the slowest, and the newest few). The store keeps the last
//! [`PER_ROUTE`] of each route (at most [`MAX_ROUTES`] routes, the least recently slow one
//! forgotten first), and sums up what arrived since the last summary, so that an incident
//! publishes one event and logs one line per route and second, not one per request.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::event::SlowTrace;

/// Slow requests kept per route.
pub const PER_ROUTE: usize = 32;
/// Routes with slow requests kept, at most.
pub const MAX_ROUTES: usize = 512;

/// One slow request as the tracer saw it.
#[derive(Debug, Clone)]
pub struct SlowSample {
    /// What `X-Trace-Id` carried back (the caller's id, or the trace id).
    pub trace_id: String,
    /// The W3C trace id the query logger recorded the request's queries under.
    pub w3c_trace_id: [u8; 32],
    pub method: &'static str,
    /// The route pattern, never the raw path.
    pub route: Arc<str>,
    pub status: u16,
    pub micros: u64,
    /// Queries the request ran (through a pool with the query logger), and their total time.
    pub queries: u32,
    pub query_micros: u64,
    pub at: DateTime<Utc>,
}

impl SlowSample {
    fn w3c(&self) -> &str {
        std::str::from_utf8(&self.w3c_trace_id).unwrap_or_default()
    }

    /// The event's view of it.
    pub fn trace(&self) -> SlowTrace {
        SlowTrace {
            trace_id: self.trace_id.clone(),
            method: self.method.to_owned(),
            route: self.route.to_string(),
            status: self.status,
            duration_ms: self.micros as f64 / 1000.0,
        }
    }
}

/// One route's slow requests in one flush of one tracer worker.
#[derive(Debug, Clone)]
pub struct RouteSlow {
    pub count: u64,
    pub worst: SlowSample,
    /// The newest, at most [`PER_ROUTE`].
    pub kept: Vec<SlowSample>,
}

impl RouteSlow {
    /// A route's first slow request of the flush.
    pub fn new(sample: SlowSample) -> Self {
        RouteSlow {
            count: 1,
            worst: sample.clone(),
            kept: vec![sample],
        }
    }

    /// Another one.
    pub fn add(&mut self, sample: SlowSample) {
        self.count += 1;
        if sample.micros > self.worst.micros {
            self.worst = sample.clone();
        }
        if self.kept.len() >= PER_ROUTE {
            self.kept.remove(0);
        }
        self.kept.push(sample);
    }
}

/// A slow request as `/traces/slow` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlowRequestView {
    pub trace_id: String,
    pub w3c_trace_id: String,
    pub method: &'static str,
    pub route: String,
    pub status: u16,
    pub duration_ms: f64,
    pub queries: u32,
    pub query_ms: f64,
    pub at: DateTime<Utc>,
    /// Where the request's logged queries are listed.
    pub queries_link: String,
}

/// A route's summary since the last one.
#[derive(Debug, Clone)]
pub struct Summary {
    pub count: u64,
    pub worst: SlowSample,
}

/// The ring and the pending summaries.
#[derive(Debug, Default)]
pub struct SlowRing {
    routes: HashMap<(&'static str, Arc<str>), VecDeque<SlowSample>>,
    pending: HashMap<(&'static str, Arc<str>), Summary>,
    /// Slow requests seen since start.
    pub total: u64,
}

impl SlowRing {
    /// Keep a route's slow requests of one flush.
    pub fn add(&mut self, slow: RouteSlow) {
        let key = (slow.worst.method, slow.worst.route.clone());
        self.total += slow.count;
        match self.pending.get_mut(&key) {
            Some(p) => {
                p.count += slow.count;
                if slow.worst.micros > p.worst.micros {
                    p.worst = slow.worst.clone();
                }
            }
            None => {
                self.pending.insert(
                    key.clone(),
                    Summary {
                        count: slow.count,
                        worst: slow.worst.clone(),
                    },
                );
            }
        }
        if !self.routes.contains_key(&key) && self.routes.len() >= MAX_ROUTES {
            // Forget the route whose newest slow request is the oldest.
            if let Some(stale) = self
                .routes
                .iter()
                .min_by_key(|(_, q)| q.back().map(|s| s.at))
                .map(|(k, _)| k.clone())
            {
                self.routes.remove(&stale);
            }
        }
        let ring = self.routes.entry(key).or_default();
        for s in slow.kept {
            if ring.len() >= PER_ROUTE {
                ring.pop_front();
            }
            ring.push_back(s);
        }
    }

    /// The summaries since the last call, one per route.
    pub fn take_summaries(&mut self) -> Vec<Summary> {
        self.pending.drain().map(|(_, s)| s).collect()
    }

    /// The newest `limit` slow requests (of `route` only, when given), newest first.
    pub fn list(&self, route: Option<&str>, limit: usize) -> Vec<&SlowSample> {
        let mut all: Vec<&SlowSample> = self
            .routes
            .iter()
            .filter(|((_, r), _)| route.is_none_or(|want| &**r == want))
            .flat_map(|(_, q)| q.iter())
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.at));
        all.truncate(limit);
        all
    }

    /// Entries kept, and routes.
    pub fn size(&self) -> (usize, usize) {
        (
            self.routes.values().map(VecDeque::len).sum(),
            self.routes.len(),
        )
    }
}

/// The `/traces/slow` view of `s`.
pub fn view(s: &SlowSample) -> SlowRequestView {
    let w3c = s.w3c().to_owned();
    SlowRequestView {
        queries_link: format!("/api/v1/system/queries?trace_id={w3c}"),
        trace_id: s.trace_id.clone(),
        w3c_trace_id: w3c,
        method: s.method,
        route: s.route.to_string(),
        status: s.status,
        duration_ms: s.micros as f64 / 1000.0,
        queries: s.queries,
        query_ms: s.query_micros as f64 / 1000.0,
        at: s.at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(route: &str, micros: u64, at: i64) -> SlowSample {
        SlowSample {
            trace_id: format!("t{micros}"),
            w3c_trace_id: [b'a'; 32],
            method: "GET",
            route: Arc::from(route),
            status: 200,
            micros,
            queries: 2,
            query_micros: 10,
            at: DateTime::from_timestamp(at, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn routes_keep_their_newest_and_summaries_come_once_per_route() {
        let mut ring = SlowRing::default();
        let mut batch = RouteSlow::new(sample("/a", 900, 1));
        for i in 0..(PER_ROUTE as i64 + 5) {
            batch.add(sample("/a", 600 + i as u64, 2 + i));
        }
        assert_eq!(batch.kept.len(), PER_ROUTE);
        ring.add(batch);
        ring.add(RouteSlow::new(sample("/b", 700, 100)));
        let (entries, routes) = ring.size();
        assert_eq!((entries, routes), (PER_ROUTE + 1, 2));
        let mut summaries = ring.take_summaries();
        summaries.sort_by_key(|s| s.worst.micros);
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[1].count, PER_ROUTE as u64 + 6);
        assert_eq!(summaries[1].worst.micros, 900);
        assert!(
            ring.take_summaries().is_empty(),
            "each summary is published once"
        );
        let newest = ring.list(None, 1);
        assert_eq!(&*newest[0].route, "/b");
        assert_eq!(ring.list(Some("/a"), 100).len(), PER_ROUTE);
    }

    #[test]
    fn the_ring_forgets_the_stalest_route_beyond_the_cap() {
        let mut ring = SlowRing::default();
        for i in 0..=MAX_ROUTES {
            ring.add(RouteSlow::new(sample(
                &format!("/r{i}"),
                600,
                i as i64 + 10,
            )));
        }
        assert_eq!(ring.size().1, MAX_ROUTES);
        assert!(ring.list(Some("/r0"), 10).is_empty());
    }
}
