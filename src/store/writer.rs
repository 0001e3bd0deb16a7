//! `StoreWriter`: the write-behind queue in front of Postgres.
//!
//! Records are queued (bounded by `DB_WRITE_QUEUE_MAX`) and written in batches of up to
//! `DB_WRITE_BATCH` every `DB_WRITE_FLUSH_MS`, one batch at a time, in order. When Postgres is
//! unreachable the batch goes back to the front of the queue and the writer retries with
//! exponential backoff (up to 10 s); the state shows `down` with the error. Every write is
//! idempotent (see [`Record`]), so a batch whose commit was lost in transit is written once
//! when replayed. A record that arrives when the queue is full is refused, counted in
//! `overflow` and logged, never dropped silently.
//!
//! Restart policy: infrastructure actor under actix's `Supervisor`; it holds no state a
//! restart could not lose except the queue, so nothing in it panics on input.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::Record;
use super::postgres::PgStore;
use super::StoreError;

/// How often history past its retention is deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Longest wait between two attempts while Postgres is down.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Whether the last attempt to reach Postgres worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterState {
    /// Nothing attempted yet.
    Unknown,
    Up,
    Down,
}

/// The writer's figures, shared with readers (no message needed to read them).
#[derive(Debug, Clone, Serialize)]
pub struct WriterStatus {
    pub state: WriterState,
    /// Records waiting, including the batch being written.
    pub queued: usize,
    pub queue_max: usize,
    /// Records written since start.
    pub written: u64,
    /// Records refused because the queue was full.
    pub overflow: u64,
    /// Records Postgres refused as invalid (logged with the reason).
    pub rejected: u64,
    /// Failed attempts since start.
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub down_since: Option<DateTime<Utc>>,
}

/// Shared handle to the status.
pub type SharedStatus = Arc<Mutex<WriterStatus>>;

pub(crate) fn read_status(s: &SharedStatus) -> WriterStatus {
    s.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Queue records for writing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Record);

/// Resolves `true` once everything queued before it has been written, `false` on timeout.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain(pub Duration);

/// The write-behind actor.
pub struct StoreWriter {
    pg: Arc<PgStore>,
    /// Days of history kept: metric rollups, resolved alerts, patterns (`0`: forever).
    retention: (u32, u32, u32),
    queue: VecDeque<Record>,
    in_flight: usize,
    cap: usize,
    batch: usize,
    every: Duration,
    backoff: Duration,
    next_attempt: Instant,
    status: SharedStatus,
    drain_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl StoreWriter {
    pub fn new(
        pg: Arc<PgStore>,
        cap: usize,
        batch: usize,
        every: Duration,
        retention: (u32, u32, u32),
    ) -> Self {
        let status = Arc::new(Mutex::new(WriterStatus {
            state: WriterState::Unknown,
            queued: 0,
            queue_max: cap,
            written: 0,
            overflow: 0,
            rejected: 0,
            failures: 0,
            last_error: None,
            last_success_at: None,
            down_since: None,
        }));
        StoreWriter {
            pg,
            retention,
            queue: VecDeque::new(),
            in_flight: 0,
            cap: cap.max(1),
            batch: batch.max(1),
            every,
            backoff: every,
            next_attempt: Instant::now(),
            status,
            drain_waiters: Vec::new(),
        }
    }

    /// The shared status (kept across restarts of the actor).
    pub fn status(&self) -> SharedStatus {
        self.status.clone()
    }

    fn update(&self, f: impl FnOnce(&mut WriterStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        s.queued = self.queue.len() + self.in_flight;
    }

    fn release_waiters_if_empty(&mut self) {
        if self.queue.is_empty() && self.in_flight == 0 {
            for w in self.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight > 0 || self.queue.is_empty() || Instant::now() < self.next_attempt {
            return;
        }
        let n = self.batch.min(self.queue.len());
        let batch: Vec<Record> = self.queue.drain(..n).collect();
        self.in_flight = n;
        let pg = self.pg.clone();
        let work = async move {
            let result = pg.write(&batch).await;
            (result, batch)
        };
        ctx.spawn(work.into_actor(self).map(|(result, batch), act, ctx| {
            act.in_flight = 0;
            act.finish(result, batch);
            act.release_waiters_if_empty();
            // More waiting and Postgres answers: keep going without waiting for the timer.
            if !act.queue.is_empty() && Instant::now() >= act.next_attempt {
                act.flush(ctx);
            }
        }));
    }

    fn finish(
        &mut self,
        result: Result<super::postgres::WriteOutcome, StoreError>,
        batch: Vec<Record>,
    ) {
        match result {
            Ok(outcome) => {
                let was_down = read_status(&self.status).state == WriterState::Down;
                self.backoff = self.every;
                self.next_attempt = Instant::now();
                self.update(|s| {
                    s.state = WriterState::Up;
                    s.written += outcome.written as u64;
                    s.rejected += outcome.rejected.len() as u64;
                    s.last_success_at = Some(Utc::now());
                    s.down_since = None;
                    if let Some(e) = outcome.rejected.last() {
                        s.last_error = Some(e.clone());
                    }
                });
                if was_down {
                    log::info!(
                        "database: reachable again; writing the {} queued record(s)",
                        self.queue.len() + outcome.written
                    );
                }
            }
            Err(e) => {
                // Back to the front, in order: nothing is lost, nothing reordered.
                for record in batch.into_iter().rev() {
                    self.queue.push_front(record);
                }
                let was_down = read_status(&self.status).state == WriterState::Down;
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                let message = e.to_string();
                if !was_down {
                    log::warn!(
                        "database: writes failing ({message}); {} record(s) queued, retrying with backoff",
                        self.queue.len()
                    );
                }
                self.update(|s| {
                    s.state = WriterState::Down;
                    s.failures += 1;
                    s.last_error = Some(message);
                    s.down_since.get_or_insert_with(Utc::now);
                });
            }
        }
    }
}

impl Actor for StoreWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |act, ctx| act.flush(ctx));
        ctx.run_interval(PRUNE_EVERY, |act, ctx| {
            let (pg, (m, a, p)) = (act.pg.clone(), act.retention);
            ctx.spawn(
                async move {
                    match pg.prune(m, a, p).await {
                        Ok(0) => {}
                        Ok(n) => log::info!("database: pruned {n} row(s) past their retention"),
                        Err(e) => log::warn!("database: pruning failed ({e}); next try in an hour"),
                    }
                }
                .into_actor(act),
            );
        });
        // Migrate as soon as Postgres answers, so the schema exists before the first write.
        let pg = self.pg.clone();
        ctx.spawn(
            async move { pg.ensure_migrated().await }
                .into_actor(self)
                .map(|result, act, _| {
                    if let Err(e) = result {
                        log::warn!("database: unreachable at start ({e}); writes are queued until it answers");
                        act.update(|s| {
                            s.state = WriterState::Down;
                            s.last_error = Some(e.to_string());
                            s.down_since.get_or_insert_with(Utc::now);
                        });
                    } else {
                        act.update(|s| s.state = WriterState::Up);
                    }
                }),
        );
    }
}

impl Supervised for StoreWriter {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The queue is kept: a restart must not lose what was waiting.
        self.in_flight = 0;
    }
}

impl Handler<Enqueue> for StoreWriter {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        if self.queue.len() + self.in_flight >= self.cap {
            let overflow = {
                let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
                s.overflow += 1;
                s.overflow
            };
            if overflow == 1 || overflow % 1000 == 0 {
                log::error!(
                    "database: write queue full ({} records, DB_WRITE_QUEUE_MAX); refused a {} record ({overflow} refused so far)",
                    self.cap,
                    msg.0.table()
                );
            }
            return;
        }
        self.queue.push_back(msg.0);
        self.update(|_| {});
        if self.queue.len() >= self.batch {
            self.flush(ctx);
        }
    }
}

impl Handler<Drain> for StoreWriter {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        if self.queue.is_empty() && self.in_flight == 0 {
            return Box::pin(async { true });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drain_waiters.push(tx);
        self.next_attempt = Instant::now().min(self.next_attempt);
        self.flush(ctx);
        Box::pin(async move { matches!(actix_web::rt::time::timeout(msg.0, rx).await, Ok(Ok(()))) })
    }
}
