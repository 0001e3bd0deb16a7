//! Per-fingerprint query statistics, kept by the `MetricsStore` (see `db::query_logger`).
//!
//! Cardinality is bounded like the series table: at most `QUERY_MAX_FINGERPRINTS` entries;
//! samples of a new fingerprint beyond that are counted in `rejected_samples`. Entries not
//! seen for a day are swept. Latency percentiles come from one HDR histogram per fingerprint
//! (microseconds, 2 significant digits), cumulative since the entry was created, as
//! `pg_stat_statements` reports them.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::db::fingerprint::Fingerprint;
use crate::db::query_logger::IngestQueries;

/// Recent executions kept for trace lookups.
const RECENT: usize = 2_000;
/// Slow and failed executions kept.
const NOTABLE: usize = 100;
/// Texts kept per fingerprint slot: statements idle long enough to be swept keep their text
/// for when they come back.
const TEXTS_PER_FINGERPRINT: usize = 4;
/// Entries idle this long are swept.
const IDLE_SECS: i64 = 86_400;

#[derive(Debug)]
struct Entry {
    calls: u64,
    errors: u64,
    total_us: u64,
    max_us: u64,
    hist: Option<Histogram<u32>>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// One fingerprint's figures.
#[derive(Debug, Clone, Serialize)]
pub struct QueryStat {
    pub id: String,
    pub query: Option<Arc<str>>,
    pub calls: u64,
    pub errors: u64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One execution (slow, failed, or looked up by trace).
#[derive(Debug, Clone, Serialize)]
pub struct QueryExecution {
    pub id: String,
    pub query: Option<Arc<str>>,
    pub duration_ms: f64,
    pub error: Option<Box<str>>,
    pub trace_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Size of the table.
#[derive(Debug, Clone, Serialize)]
pub struct QueryTableStats {
    pub fingerprints: usize,
    pub max_fingerprints: usize,
    /// Samples of new fingerprints refused because the table was full.
    pub rejected_samples: u64,
    /// Samples the logger's buffer dropped (the collector fell behind).
    pub dropped_samples: u64,
    pub total_queries: u64,
}

/// The answer to a query-statistics request.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    /// Busiest by total time first.
    pub top: Vec<QueryStat>,
    /// Newest first.
    pub slow: Vec<QueryExecution>,
    /// Newest first.
    pub errors: Vec<QueryExecution>,
    /// The executions recorded for the trace asked for, oldest first.
    pub trace: Option<Vec<QueryExecution>>,
    pub table: QueryTableStats,
}

#[derive(Debug, Clone)]
struct Recent {
    fingerprint: u64,
    micros: u64,
    error: Option<Box<str>>,
    trace_id: Option<[u8; 32]>,
    at: DateTime<Utc>,
}

/// Per-fingerprint statistics.
#[derive(Debug)]
pub struct QueryTable {
    entries: FxHashMap<u64, Entry>,
    /// Statement texts by fingerprint (at most `max` × [`TEXTS_PER_FINGERPRINT`]).
    texts: FxHashMap<u64, Arc<str>>,
    max: usize,
    slow_us: u64,
    rejected: u64,
    dropped: u64,
    total: u64,
    recent: VecDeque<Recent>,
    slow: VecDeque<Recent>,
    failed: VecDeque<Recent>,
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, cap: usize) {
    if q.len() >= cap {
        q.pop_front();
    }
    q.push_back(item);
}

impl QueryTable {
    /// A table of at most `max` fingerprints; executions from `slow_ms` on are kept as slow
    /// (`0`: none).
    pub fn new(max: usize, slow_ms: u64) -> Self {
        QueryTable {
            entries: FxHashMap::default(),
            texts: FxHashMap::default(),
            max,
            slow_us: slow_ms.saturating_mul(1000),
            rejected: 0,
            dropped: 0,
            total: 0,
            recent: VecDeque::new(),
            slow: VecDeque::new(),
            failed: VecDeque::new(),
        }
    }

    /// Add a batch from the query logger.
    pub fn ingest(&mut self, batch: IngestQueries) {
        self.dropped += batch.dropped;
        // Texts are kept apart from the entries and never swept: a connection sends a
        // statement's text once, so a text dropped here would be gone for good.
        let cap = self.max.saturating_mul(TEXTS_PER_FINGERPRINT);
        for (id, text) in batch.texts {
            if self.texts.len() >= cap && !self.texts.contains_key(&id) {
                // Full: forget the texts of statements no longer tracked (swept, or refused
                // when the table was full) before giving up on this one.
                let entries = &self.entries;
                self.texts.retain(|id, _| entries.contains_key(id));
            }
            if self.texts.len() < cap || self.texts.contains_key(&id) {
                self.texts.entry(id).or_insert_with(|| Arc::from(text));
            }
        }
        for s in batch.samples {
            let len = self.entries.len();
            let entry = match self.entries.entry(s.fingerprint) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(_) if len >= self.max => {
                    self.rejected += 1;
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Self::entry(batch.at)),
            };
            entry.calls += 1;
            entry.total_us = entry.total_us.saturating_add(s.micros);
            entry.max_us = entry.max_us.max(s.micros);
            entry.last_seen = batch.at;
            if let Some(h) = entry.hist.as_mut() {
                h.saturating_record(s.micros.max(1));
            }
            if s.error.is_some() {
                entry.errors += 1;
            }
            self.note(s, batch.at);
        }
    }

    fn entry(at: DateTime<Utc>) -> Entry {
        Entry {
            calls: 0,
            errors: 0,
            total_us: 0,
            max_us: 0,
            hist: Histogram::new_with_bounds(1, 60_000_000, 2).ok(),
            first_seen: at,
            last_seen: at,
        }
    }

    /// Keep a notable execution: slow, failed, or part of a trace.
    fn note(&mut self, s: crate::db::query_logger::QuerySample, at: DateTime<Utc>) {
        self.total += 1;
        let slow = self.slow_us > 0 && s.micros >= self.slow_us;
        let failed = s.error.is_some();
        if !slow && !failed && s.trace_id.is_none() {
            return;
        }
        let r = Recent {
            fingerprint: s.fingerprint,
            micros: s.micros,
            error: s.error,
            trace_id: s.trace_id,
            at,
        };
        if slow {
            push_bounded(&mut self.slow, r.clone(), NOTABLE);
        }
        if failed {
            push_bounded(&mut self.failed, r.clone(), NOTABLE);
        }
        if r.trace_id.is_some() {
            push_bounded(&mut self.recent, r, RECENT);
        }
    }

    /// The statement text of fingerprint `id`, when known.
    pub fn text(&self, id: u64) -> Option<&Arc<str>> {
        self.texts.get(&id)
    }

    /// Drop fingerprints idle for a day.
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        self.entries
            .retain(|_, e| (now - e.last_seen).num_seconds() <= IDLE_SECS);
    }

    fn execution(&self, r: &Recent) -> QueryExecution {
        QueryExecution {
            id: Fingerprint::hex(r.fingerprint),
            query: self.texts.get(&r.fingerprint).cloned(),
            duration_ms: r.micros as f64 / 1000.0,
            error: r.error.clone(),
            trace_id: r.trace_id.map(|t| String::from_utf8_lossy(&t).into_owned()),
            at: r.at,
        }
    }

    /// The executions recorded for W3C trace id `trace_id`, oldest first.
    pub fn trace(&self, trace_id: &[u8; 32]) -> Vec<QueryExecution> {
        self.recent
            .iter()
            .filter(|r| r.trace_id.as_ref() == Some(trace_id))
            .map(|r| self.execution(r))
            .collect()
    }

    /// The top `limit` fingerprints by total time, slow and failed executions, and the
    /// executions of `trace_id` (32 hex digits) when given.
    pub fn report(&self, limit: usize, trace_id: Option<&str>) -> QueryReport {
        let mut top: Vec<QueryStat> = self
            .entries
            .iter()
            .filter(|(_, e)| e.calls > 0)
            .map(|(&id, e)| QueryStat {
                id: Fingerprint::hex(id),
                query: self.texts.get(&id).cloned(),
                calls: e.calls,
                errors: e.errors,
                total_ms: e.total_us as f64 / 1000.0,
                mean_ms: e.total_us as f64 / 1000.0 / e.calls as f64,
                p95_ms: e
                    .hist
                    .as_ref()
                    .map(|h| (h.value_at_quantile(0.95).min(e.max_us)) as f64 / 1000.0)
                    .unwrap_or(0.0),
                max_ms: e.max_us as f64 / 1000.0,
                first_seen: e.first_seen,
                last_seen: e.last_seen,
            })
            .collect();
        top.sort_by(|a, b| {
            b.total_ms
                .total_cmp(&a.total_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        top.truncate(limit);
        let newest = |q: &VecDeque<Recent>| {
            q.iter()
                .rev()
                .take(limit)
                .map(|r| self.execution(r))
                .collect::<Vec<_>>()
        };
        let trace = trace_id.map(|t| match <[u8; 32]>::try_from(t.as_bytes()) {
            Ok(id) => self.trace(&id),
            Err(_) => Vec::new(),
        });
        QueryReport {
            top,
            slow: newest(&self.slow),
            errors: newest(&self.failed),
            trace,
            table: QueryTableStats {
                fingerprints: self.entries.len(),
                max_fingerprints: self.max,
                rejected_samples: self.rejected,
                dropped_samples: self.dropped,
                total_queries: self.total,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::query_logger::QuerySample;

    fn sample(fingerprint: u64, micros: u64, error: bool) -> QuerySample {
        QuerySample {
            fingerprint,
            micros,
            error: error.then(|| "boom".into()),
            trace_id: Some([b'a'; 32]),
        }
    }

    #[test]
    fn stats_per_fingerprint_and_the_cap_counts_what_it_refuses() {
        let mut t = QueryTable::new(2, 10);
        t.ingest(IngestQueries {
            samples: vec![
                sample(1, 1_000, false),
                sample(1, 3_000, true),
                sample(2, 20_000, false),
                sample(3, 500, false),
            ],
            texts: vec![(1, "SELECT ?".into()), (2, "UPDATE t SET a = ?".into())],
            dropped: 7,
            at: Utc::now(),
        });
        let r = t.report(10, Some(&"a".repeat(32)));
        assert_eq!(r.table.fingerprints, 2);
        assert_eq!(r.table.rejected_samples, 1, "fingerprint 3 is over the cap");
        assert_eq!(r.table.dropped_samples, 7);
        // Busiest by total time first.
        assert_eq!(r.top[0].id, Fingerprint::hex(2));
        let one = &r.top[1];
        assert_eq!((one.calls, one.errors), (2, 1));
        assert!((one.total_ms - 4.0).abs() < 1e-9 && (one.mean_ms - 2.0).abs() < 1e-9);
        assert_eq!(one.max_ms, 3.0);
        assert_eq!(one.query.as_deref(), Some("SELECT ?"));
        assert_eq!(r.slow.len(), 1, "20 ms against the 10 ms threshold");
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.trace.map(|t| t.len()), Some(3));
    }

    #[test]
    fn texts_of_statements_no_longer_tracked_make_room_for_new_ones() {
        let mut t = QueryTable::new(1, 0);
        let batch = |samples: Vec<QuerySample>, texts: Vec<(u64, String)>| IngestQueries {
            samples,
            texts,
            dropped: 0,
            at: Utc::now(),
        };
        t.ingest(batch(
            vec![sample(1, 10, false)],
            (1..=4).map(|i| (i, format!("SELECT {i}"))).collect(),
        ));
        assert!(
            t.text(4).is_some(),
            "room for 4 texts per tracked statement"
        );
        t.ingest(batch(Vec::new(), vec![(5, "SELECT 5".into())]));
        assert_eq!(t.text(5).map(|t| &**t), Some("SELECT 5"));
        assert_eq!(
            t.text(1).map(|t| &**t),
            Some("SELECT 1"),
            "a tracked one is kept"
        );
        assert!(t.text(2).is_none(), "untracked ones made room");
    }
}
