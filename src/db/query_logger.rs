//! The query logger: a diesel [`Instrumentation`] for diesel-async connections.
//!
//! A host app installs it on its own pool with one call,
//! `Pool::builder(selfheal.query_logger().manager(&url))`, or on a single connection with
//! `conn.set_instrumentation(logger.instrumentation())`. Per query it records the SQL
//! fingerprint ([`Fingerprint`]), the duration, the error if any, and the W3C trace id of the
//! request it ran in (from the request tracer's task-local trace), so later analyses can see
//! N+1 patterns.
//!
//! Hot path: diesel reports `StartQuery` and `FinishQuery` without a duration, so the
//! connection's instrumentation keeps the start instants in order and pairs each finish with
//! the oldest start (right for sequential and pipelined queries). `StartQuery` is not
//! formatted at all; `FinishQuery` carries the bare SQL, which is hashed in place, and only a
//! statement the connection has not seen before is normalised. The sample goes into a shared
//! buffer (one short mutex section), and counted on the request's trace (how many queries,
//! how long in all). The `QueryCollector` actor hands the buffer to the `MetricsStore` every
//! `TRACE_FLUSH_INTERVAL_MS`, which keeps the statistics and sums up slow queries, off the
//! request path.
//!
//! A query whose future is dropped before it finishes (a client that went away, a timeout)
//! leaves an unmatched start. The pool's recycle step (at the next checkout) clears them, so
//! they never reach another request's queries; within one checkout, a later query on the same
//! connection would be paired with it (the pending starts are capped at 64).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::Message;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::FutureExt;
use rustc_hash::FxHashMap;

use super::fingerprint::Fingerprint;
use crate::trace::TraceContext;

/// Samples held between two flushes; more are counted as dropped.
const MAX_BUFFERED: usize = 100_000;
/// New statement texts held between two flushes.
const MAX_TEXTS_BUFFERED: usize = 10_000;
/// Statements a connection remembers the fingerprint of.
const CONNECTION_CACHE: usize = 512;
/// Starts a connection keeps waiting for their finish.
const MAX_PENDING: usize = 64;

/// The original's `createQueryLogger` options. (Slow queries, `DB_SLOW_QUERY_MS`, are
/// summed up by the `MetricsStore`: one log line and event per fingerprint and second.)
#[derive(Debug, Clone)]
pub struct QueryLoggerOptions {
    /// `DB_LOG_ALL_QUERIES`: log every query at debug level.
    pub log_all_queries: bool,
}

/// One query execution.
#[derive(Debug, Clone)]
pub struct QuerySample {
    pub fingerprint: u64,
    pub micros: u64,
    pub error: Option<Box<str>>,
    /// W3C trace id (hex) of the request the query ran in.
    pub trace_id: Option<[u8; 32]>,
}

/// What connections write into and the collector drains.
#[derive(Debug)]
struct Sink {
    options: QueryLoggerOptions,
    samples: Mutex<Vec<QuerySample>>,
    /// Fingerprints first seen by some connection since the last flush.
    texts: Mutex<Vec<(u64, String)>>,
    dropped: AtomicU64,
}

/// A batch handed to the `MetricsStore`.
#[derive(Message, Debug, Default)]
#[rtype(result = "()")]
pub struct IngestQueries {
    pub samples: Vec<QuerySample>,
    pub texts: Vec<(u64, String)>,
    /// Samples dropped because the buffer was full, since the last batch.
    pub dropped: u64,
    /// When the samples were taken (the flush time; within one flush interval).
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The logger: cheap to clone; every clone feeds the same collector.
#[derive(Debug, Clone)]
pub struct QueryLogger {
    sink: Arc<Sink>,
}

impl QueryLogger {
    /// A logger with `options`. Its samples reach the `MetricsStore` once a
    /// `QueryCollector` drains it ([`crate::SelfHeal`] starts one).
    pub fn new(options: QueryLoggerOptions) -> Self {
        QueryLogger {
            sink: Arc::new(Sink {
                options,
                samples: Mutex::new(Vec::new()),
                texts: Mutex::new(Vec::new()),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// An instrumentation for one connection: `conn.set_instrumentation(logger.instrumentation())`.
    pub fn instrumentation(&self) -> ConnectionLogger {
        ConnectionLogger {
            sink: self.sink.clone(),
            pending: VecDeque::new(),
            cache: FxHashMap::default(),
            hasher: RawHasher::default(),
        }
    }

    /// A pool manager config that installs the logger on every new connection. Recycling
    /// sends no query (like `RecyclingMethod::Fast`); it forgets the starts of queries whose
    /// futures were dropped during the previous checkout (a client that went away, a timeout),
    /// so they cannot be paired with the next checkout's queries.
    pub fn manager_config(&self) -> ManagerConfig<AsyncPgConnection> {
        let logger = self.clone();
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
            forget_unfinished(conn);
            async { Ok(()) }.boxed()
        }));
        config.custom_setup = Box::new(move |url| {
            let logger = logger.clone();
            let url = url.to_owned();
            async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                conn.set_instrumentation(logger.instrumentation());
                Ok(conn)
            }
            .boxed()
        });
        config
    }

    /// A pool manager for `url` with the logger installed: the one call a host app makes,
    /// `Pool::builder(logger.manager(&url)).max_size(n).build()`.
    pub fn manager(&self, url: &str) -> AsyncDieselConnectionManager<AsyncPgConnection> {
        AsyncDieselConnectionManager::new_with_config(url, self.manager_config())
    }

    /// Take what was recorded since the last drain.
    pub fn drain(&self) -> IngestQueries {
        // The next buffer starts at the size this one reached, so a steady load does not
        // regrow it (under the lock) after every flush.
        let samples = {
            let mut guard = lock(&self.sink.samples);
            let size = guard.len().min(MAX_BUFFERED);
            std::mem::replace(&mut *guard, Vec::with_capacity(size))
        };
        let texts = std::mem::take(&mut *lock(&self.sink.texts));
        IngestQueries {
            samples,
            texts,
            dropped: self.sink.dropped.swap(0, Ordering::Relaxed),
            at: chrono::Utc::now(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hashes what is written to it (the SQL of a `FinishQuery`), with no allocation.
#[derive(Default)]
struct RawHasher(rustc_hash::FxHasher);

impl std::fmt::Write for RawHasher {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        std::hash::Hasher::write(&mut self.0, s.as_bytes());
        Ok(())
    }
}

/// The instrumentation installed on one connection.
pub struct ConnectionLogger {
    sink: Arc<Sink>,
    pending: VecDeque<Instant>,
    /// Hash of the raw SQL → fingerprint id.
    cache: FxHashMap<u64, u64>,
    hasher: RawHasher,
}

impl ConnectionLogger {
    fn finish(
        &mut self,
        query: &dyn diesel::connection::DebugQuery,
        error: Option<&diesel::result::Error>,
    ) {
        let Some(started) = self.pending.pop_front() else {
            return;
        };
        let micros = started.elapsed().as_micros() as u64;
        self.hasher = RawHasher::default();
        let _ = write!(self.hasher, "{query}");
        let raw = std::hash::Hasher::finish(&self.hasher.0);
        let id = match self.cache.get(&raw) {
            Some(&id) => id,
            None => {
                let fp = Fingerprint::of(&query.to_string());
                if self.cache.len() >= CONNECTION_CACHE {
                    self.cache.clear();
                }
                let mut texts = lock(&self.sink.texts);
                if texts.len() < MAX_TEXTS_BUFFERED {
                    texts.push((fp.id, fp.text));
                    drop(texts);
                    self.cache.insert(raw, fp.id);
                }
                // (Not cached when the buffer is full: the text is sent on a later execution.)
                fp.id
            }
        };
        let options = &self.sink.options;
        if options.log_all_queries {
            log::debug!(
                "query {} {:.3} ms: {query}",
                Fingerprint::hex(id),
                micros as f64 / 1000.0
            );
        }
        let sample = QuerySample {
            fingerprint: id,
            micros,
            error: error.map(|e| e.to_string().into_boxed_str()),
            // Counted on the request's trace too (its slow-request entry shows them).
            trace_id: TraceContext::record_query(micros),
        };
        let mut samples = lock(&self.sink.samples);
        if samples.len() < MAX_BUFFERED {
            samples.push(sample);
        } else {
            drop(samples);
            self.sink.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Instrumentation for ConnectionLogger {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => {
                if self.pending.len() >= MAX_PENDING {
                    self.pending.pop_front();
                }
                self.pending.push_back(Instant::now());
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => self.finish(query, error),
            _ => {}
        }
    }
}

/// Clear the pending starts of `conn`'s logger (at checkout: no query of the connection can
/// still be running then, since every future borrowing it has ended).
fn forget_unfinished(conn: &mut AsyncPgConnection) {
    // diesel-async panics if a query future still shares the instrumentation; none can at
    // checkout, but a pool recycle must never fail on that account.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(logger) = conn.instrumentation().downcast_mut::<ConnectionLogger>() {
            logger.pending.clear();
        }
    }));
}
