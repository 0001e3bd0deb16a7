//! `StoreWriter`: the write-behind queue in front of Postgres.
//!
//! Records are queued (bounded by `DB_WRITE_QUEUE_MAX`) and written in batches of up to
//! `DB_WRITE_BATCH` every `DB_WRITE_FLUSH_MS`, one batch at a time, in order. Every write is
//! idempotent (see [`Record`]), so a batch whose commit was lost in transit is written once
//! when replayed. A record that arrives when the queue is full is refused, counted in
//! `overflow` and logged, never dropped silently.
//!
//! Failures:
//! - **Postgres unreachable** (no connection, no answer in time): the batch goes back to the
//!   front of the queue and the writer retries with exponential backoff (up to 10 s); the
//!   state shows `down` with the error. While down, the queue is journaled to `DB_SPILL_FILE`
//!   (every record as it is queued), so a crash during the outage loses nothing; the next
//!   start queues the journal again, and it is removed once everything is written.
//! - **Postgres answers but refuses** a batch: it is written row by row, and for the rows
//!   refused a write of our own (`PgStore::accepts_writes`) tells the server from the data.
//!   If the server refuses writes (read-only after a failover, disk full, the schema gone),
//!   nothing is held against the rows: the state is `down` and the writer retries with backoff
//!   (the schema is checked again first). Otherwise each refused row is a suspect: it waits in
//!   a lane of its own (other records keep flowing), is retried after a growing delay, and is
//!   dropped (logged, counted in `rejected`) once refused [`MAX_REFUSALS`] times.
//!
//! The journal (`DB_SPILL_FILE`) is in [`journal`].
//!
//! Restart policy: a core actor (see [`crate::supervision`]); a restart keeps the
//! queue, the suspects, the batch in flight (queued again) and the journal.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

mod journal;

use super::model::Record;
use super::postgres::{PgStore, WriteOutcome};
use super::{StoreError, StoreOptions};
use crate::supervision::{self as sv, Core, CoreSupervision, Guarded, Reporter};
use journal::Journal;

/// The writer's name among the supervised actors.
pub const NAME: &str = "store_writer";

/// How often history past its retention is deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Longest wait between two attempts while Postgres is down.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Refusals of one record, by a server that accepts other writes, before it is dropped.
pub const MAX_REFUSALS: u8 = 3;

/// Whether the last attempt to reach Postgres worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterState {
    /// Nothing attempted yet.
    Unknown,
    Up,
    /// Unreachable, or refusing writes: an outage, retried with backoff.
    Down,
    /// Answering, but the configuration is wrong (no such database, login refused).
    Misconfigured,
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
    /// Records dropped because Postgres refused them as invalid (logged with the reason).
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

/// Just the state (no copy of the error text).
pub(crate) fn read_state(s: &SharedStatus) -> WriterState {
    s.lock().unwrap_or_else(|e| e.into_inner()).state
}

/// Queue records for writing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Record);

/// Resolves `true` once every record queued before it has been written (or dropped as
/// invalid), `false` on timeout.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain(pub Duration);

/// A queued record and how often Postgres refused it.
#[derive(Debug, Clone)]
struct Queued {
    record: Record,
    refusals: u8,
}

/// The write-behind actor.
pub struct StoreWriter {
    pg: Arc<PgStore>,
    /// Days of history kept: metric rollups, alert history (see [`PgStore::prune`]),
    /// patterns (`0`: forever).
    retention: (u32, u32, u32),
    queue: VecDeque<Queued>,
    /// Records Postgres refused while accepting other writes, each with when to retry it.
    suspects: VecDeque<(Queued, Instant)>,
    /// The batch being written (kept so that journaling includes it).
    in_flight: Option<Arc<Vec<Queued>>>,
    /// Where the queue is journaled while Postgres is down, and read back from at start.
    journal: Journal,
    /// A reachability check is running (queue empty, Postgres last seen down).
    probing: bool,
    /// A retention run is going (they never overlap).
    pruning: bool,
    cap: usize,
    batch: usize,
    every: Duration,
    backoff: Duration,
    next_attempt: Instant,
    status: SharedStatus,
    /// Records accepted into the queue, and records settled (written or dropped): a `Drain`
    /// waits for `settled` to reach what `accepted` was when it arrived.
    accepted: u64,
    settled: u64,
    drain_waiters: Vec<(u64, tokio::sync::oneshot::Sender<()>)>,
    sup: CoreSupervision,
}

impl StoreWriter {
    /// A writer for `pg` with the queue, batch, flush, retention, journal and restart policy
    /// of `o`; failures are told to `reporter`.
    pub fn new(pg: Arc<PgStore>, o: &StoreOptions, reporter: Reporter) -> Self {
        let (cap, batch, every) = (o.queue_max, o.batch, o.flush_every);
        let (retention, spill_file) = (o.retention, o.spill_file.clone());
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
            suspects: VecDeque::new(),
            in_flight: None,
            journal: Journal::new(spill_file),
            probing: false,
            pruning: false,
            cap: cap.max(1),
            batch: batch.max(1),
            every,
            backoff: every,
            next_attempt: Instant::now(),
            status,
            accepted: 0,
            settled: 0,
            drain_waiters: Vec::new(),
            sup: CoreSupervision::new(NAME, &o.supervisor, reporter),
        }
    }

    /// The shared status (kept across restarts of the actor).
    pub fn status(&self) -> SharedStatus {
        self.status.clone()
    }

    fn in_flight_len(&self) -> usize {
        self.in_flight.as_ref().map_or(0, |b| b.len())
    }

    /// Records not yet settled: queued, suspects, and the batch in flight.
    fn pending_len(&self) -> usize {
        self.queue.len() + self.suspects.len() + self.in_flight_len()
    }

    /// Every pending record, oldest first as far as the lanes allow, and the journal (two
    /// borrows of distinct fields, so the journal can be written from the records).
    fn pending_and_journal(&mut self) -> (Vec<&Record>, &mut Journal) {
        let pending = self
            .in_flight
            .iter()
            .flat_map(|b| b.iter())
            .chain(self.suspects.iter().map(|(q, _)| q))
            .chain(self.queue.iter())
            .map(|q| &q.record)
            .collect();
        (pending, &mut self.journal)
    }

    fn update(&self, f: impl FnOnce(&mut WriterStatus)) {
        let queued = self.pending_len();
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        s.queued = queued;
    }

    fn state(&self) -> WriterState {
        read_state(&self.status)
    }

    fn release_drained(&mut self) {
        let settled = self.settled;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.drain_waiters)
            .into_iter()
            .partition(|(target, _)| *target <= settled);
        self.drain_waiters = waiting;
        for (_, w) in done {
            let _ = w.send(());
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() || self.probing || Instant::now() < self.next_attempt {
            return;
        }
        // Suspects whose delay is over go first, then the queue.
        let now = Instant::now();
        let mut records = Vec::new();
        while records.len() < self.batch && self.suspects.front().is_some_and(|(_, at)| *at <= now)
        {
            if let Some((q, _)) = self.suspects.pop_front() {
                records.push(q);
            }
        }
        let room = (self.batch - records.len()).min(self.queue.len());
        records.extend(self.queue.drain(..room));
        if records.is_empty() {
            // Nothing to write, but Postgres was last seen down (or never reached): check on
            // the same backoff, so the state shows the recovery without waiting for a write.
            if self.state() != WriterState::Up {
                self.probe(ctx);
            }
            return;
        }
        let batch: Arc<Vec<Queued>> = Arc::new(records);
        self.in_flight = Some(batch.clone());
        let pg = self.pg.clone();
        let work = async move {
            let records: Vec<&Record> = batch.iter().map(|q| &q.record).collect();
            let result = pg.write(&records).await;
            drop(records);
            (result, batch)
        };
        sv::guard_fut(self, ctx, work, |act, ctx, (result, batch)| {
            act.in_flight = None;
            let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
            act.finish(result, batch);
            act.release_drained();
            act.schedule(ctx);
        });
    }

    /// Run the next flush when there is something to do: at once when records wait and
    /// Postgres answers, else when the backoff or the first suspect's delay ends (so neither
    /// waits for the next `DB_WRITE_FLUSH_MS` tick).
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut at = None::<Instant>;
        if !self.queue.is_empty() {
            at = Some(self.next_attempt.max(now));
        }
        if let Some((_, due)) = self.suspects.front() {
            let due = (*due).max(self.next_attempt).max(now);
            at = Some(at.map_or(due, |a| a.min(due)));
        }
        match at {
            Some(at) if at <= now => self.flush(ctx),
            Some(at) => {
                ctx.run_later(at - now, |act, ctx| {
                    sv::guard(act, ctx, |a, c| a.flush(c));
                });
            }
            None => {}
        }
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        self.probing = true;
        let pg = self.pg.clone();
        let work = async move {
            pg.ensure_migrated().await?;
            pg.ping().await?;
            Ok(WriteOutcome::default())
        };
        sv::guard_fut(self, ctx, work, |act, ctx, result| {
            act.probing = false;
            act.finish(result, Vec::new());
            act.schedule(ctx);
        });
    }

    /// Back to the front of the queue, in their order.
    fn requeue(&mut self, records: Vec<Queued>) {
        for q in records.into_iter().rev() {
            self.queue.push_front(q);
        }
    }

    fn finish(&mut self, result: Result<WriteOutcome, StoreError>, batch: Vec<Queued>) {
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                self.requeue(batch);
                self.went_down(e);
                return;
            }
        };
        if outcome.server_refuses {
            // The server refuses writes of any kind: nothing is held against the rows.
            let why = outcome
                .refused
                .first()
                .map_or_else(String::new, |(_, why)| why.clone());
            self.requeue(batch);
            self.went_down(StoreError::Unavailable(format!(
                "Postgres refuses writes: {why}"
            )));
            return;
        }
        let now = Instant::now();
        let mut dropped = 0u64;
        let mut last_refusal = None;
        let mut refused = outcome.refused.iter().peekable();
        let mut settled = 0u64;
        for (i, mut q) in batch.into_iter().enumerate() {
            match refused.next_if(|(at, _)| *at == i) {
                None => settled += 1,
                Some((_, why)) => {
                    q.refusals += 1;
                    last_refusal = Some(format!("{}: {why}", q.record.table()));
                    if q.refusals >= MAX_REFUSALS {
                        log::error!(
                            "database: dropped a {} row Postgres refused {} times: {why}",
                            q.record.table(),
                            q.refusals
                        );
                        dropped += 1;
                        settled += 1;
                    } else {
                        let delay = (self.every * 2u32.pow(u32::from(q.refusals)))
                            .clamp(Duration::from_millis(200), MAX_BACKOFF);
                        self.suspects.push_back((q, now + delay));
                    }
                }
            }
        }
        self.settled += settled;
        let was_down = matches!(self.state(), WriterState::Down | WriterState::Misconfigured);
        self.backoff = self.every;
        self.next_attempt = now;
        self.update(|s| {
            s.state = WriterState::Up;
            s.written += outcome.written as u64;
            s.rejected += dropped;
            s.last_success_at = Some(Utc::now());
            s.down_since = None;
            if let Some(e) = last_refusal {
                s.last_error = Some(e);
            }
        });
        if was_down {
            log::info!(
                "database: writes work again; writing the {} pending record(s)",
                self.pending_len() + outcome.written
            );
        }
        let (pending, journal) = self.pending_and_journal();
        journal.compact(pending.into_iter());
        let left = self.pending_len();
        self.journal.close_if_drained(left);
    }

    /// Postgres could not take the writes: an outage (journal the queue, retry with backoff),
    /// or a configuration problem (say how to fix it, once; keep checking, slowly).
    fn went_down(&mut self, error: StoreError) {
        let misconfigured = matches!(error, StoreError::Misconfigured(_));
        let state = if misconfigured {
            WriterState::Misconfigured
        } else {
            WriterState::Down
        };
        let was = self.state();
        if misconfigured {
            // Nothing to wait out: someone must act. Check at the slowest pace meanwhile.
            self.backoff = MAX_BACKOFF;
        }
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if was != state {
            if misconfigured {
                log::error!(
                    "database: {error}; {} record(s) wait in memory meanwhile (DB_WRITE_QUEUE_MAX)",
                    self.queue.len()
                );
            } else {
                log::warn!(
                    "database: writes failing ({error}); {} record(s) queued, retrying with backoff (next try in {} ms)",
                    self.queue.len(),
                    self.next_attempt.saturating_duration_since(Instant::now()).as_millis()
                );
            }
        }
        let message = error.to_string();
        self.update(|s| {
            s.state = state;
            s.failures += 1;
            s.last_error = Some(message);
            s.down_since.get_or_insert_with(Utc::now);
        });
        // An outage is journaled (a crash during it loses nothing); a wrong configuration is
        // not an outage, and what waits is written to the journal at shutdown.
        if !misconfigured {
            let (pending, journal) = self.pending_and_journal();
            journal.open(pending.into_iter());
        }
    }

    /// Queue what an earlier run could not write. The file stays, as the journal of these
    /// records, until they are written (a crash before then loses nothing).
    fn load_spill(&mut self) {
        let room = self.cap.saturating_sub(self.queue.len());
        let Some(loaded) = self.journal.load(room) else {
            return;
        };
        let n = loaded.records.len();
        for record in loaded.records {
            self.queue.push_back(Queued {
                record,
                refusals: 0,
            });
        }
        self.accepted += n as u64;
        if loaded.bad > 0 {
            log::error!(
                "database: {} unreadable line(s) in the journal were skipped",
                loaded.bad
            );
        }
        if loaded.over > 0 {
            log::error!(
                "database: {} journaled record(s) did not fit in DB_WRITE_QUEUE_MAX ({}) and were refused",
                loaded.over,
                self.cap
            );
        }
        log::info!(
            "database: queued {n} record(s) an earlier run could not write ({})",
            self.journal
                .path()
                .map_or_else(String::new, |p| p.display().to_string())
        );
        let over = loaded.over as u64;
        self.update(|s| s.overflow += over);
    }

    /// At shutdown: make sure what is still queued is on disk. Answers how many records.
    fn spill(&mut self) -> Result<usize, String> {
        let (pending, journal) = self.pending_and_journal();
        journal.spill(pending.into_iter())
    }
}

impl Actor for StoreWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        sv::started(self, ctx);
    }
}

impl Supervised for StoreWriter {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The queue is kept: a restart must not lose what was waiting. The batch in flight
        // goes back to the front (writes are idempotent, so a batch that did commit is
        // harmless to write again).
        if let Some(batch) = self.in_flight.take() {
            let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
            self.requeue(batch);
        }
        self.probing = false;
        self.pruning = false;
    }
}

impl Core for StoreWriter {
    fn supervision(&mut self) -> &mut CoreSupervision {
        &mut self.sup
    }

    fn start(&mut self, ctx: &mut Context<Self>) {
        self.load_spill();
        sv::guard_interval(ctx, self.every, |act, ctx| act.flush(ctx));
        sv::guard_interval(ctx, PRUNE_EVERY, |act, ctx| {
            if act.pruning {
                return; // the last run is still going
            }
            act.pruning = true;
            let (pg, (m, a, p)) = (act.pg.clone(), act.retention);
            sv::guard_fut(
                act,
                ctx,
                async move {
                    match pg.prune(m, a, p).await {
                        Ok(0) => {}
                        Ok(n) => log::info!("database: pruned {n} row(s) past their retention"),
                        Err(e) => log::warn!("database: pruning failed ({e}); next try in an hour"),
                    }
                },
                |act, _, ()| act.pruning = false,
            );
        });
        // Migrate as soon as Postgres answers, so the schema exists before the first write.
        let pg = self.pg.clone();
        sv::guard_fut(
            self,
            ctx,
            async move { pg.ensure_migrated().await },
            |act, _, result| match result {
                Err(e) => {
                    act.went_down(e);
                    // The first attempt comes at once, not after the backoff.
                    act.next_attempt = Instant::now();
                }
                Ok(()) => {
                    if act.state() == WriterState::Unknown {
                        act.update(|s| s.state = WriterState::Up);
                    }
                }
            },
        );
        // Whatever was queued while the actor was down (a crash) goes out now.
        self.schedule(ctx);
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(read_status(&self.status)).unwrap_or_default()
    }
}

crate::core_handlers!(StoreWriter);

impl Handler<Enqueue> for StoreWriter {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) -> Self::Result {
        if self.sup.is_failed() {
            // Failed: nothing is written until an admin restart, but nothing is lost either:
            // the record waits in the queue, and in the journal.
            let kept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.keep_while_failed(msg)
            }));
            if kept.is_err() {
                log::error!("database: a record could not be kept while the writer is failed");
            }
            return Guarded(Some(()));
        }
        sv::guard(self, ctx, |act, ctx| act.enqueue(msg, ctx))
    }
}

impl StoreWriter {
    /// While failed: queue and journal the record, write nothing.
    fn keep_while_failed(&mut self, msg: Enqueue) {
        if !self.journal.is_open() {
            let (pending, journal) = self.pending_and_journal();
            journal.open(pending.into_iter());
        }
        self.accept(msg);
    }

    fn enqueue(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        if self.accept(msg) && self.queue.len() >= self.batch {
            self.flush(ctx);
        }
    }

    /// Queue (and journal, when the journal is open) a record; refuse it when the queue is
    /// full (counted, and logged at the first refusal and every thousandth).
    fn accept(&mut self, msg: Enqueue) -> bool {
        if self.pending_len() >= self.cap {
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
            return false;
        }
        self.journal.append(&msg.0);
        self.queue.push_back(Queued {
            record: msg.0,
            refusals: 0,
        });
        self.accepted += 1;
        self.update(|_| {});
        true
    }
}

impl Handler<Drain> for StoreWriter {
    type Result = Guarded<ResponseFuture<bool>>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, ctx| -> ResponseFuture<bool> {
            if act.settled >= act.accepted {
                return Box::pin(async { true });
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            act.drain_waiters.push((act.accepted, tx));
            // Try now rather than after the backoff.
            act.next_attempt = Instant::now();
            act.flush(ctx);
            Box::pin(
                async move { matches!(actix_web::rt::time::timeout(msg.0, rx).await, Ok(Ok(()))) },
            )
        })
    }
}

/// At shutdown, after a [`Drain`] that timed out: make sure what is still queued is in the
/// journal (`DB_SPILL_FILE`), to be queued again at the next start. Answers how many records.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Spill;

impl Handler<Spill> for StoreWriter {
    type Result = Guarded<Result<usize, String>>;

    fn handle(&mut self, _: Spill, ctx: &mut Self::Context) -> Self::Result {
        if self.sup.is_failed() {
            // Shutdown with a failed writer: its queue still goes to the journal.
            let spilled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spill()));
            return Guarded(Some(spilled.unwrap_or_else(|_| {
                Err("the journal could not be written".to_owned())
            })));
        }
        sv::guard(self, ctx, |act, _| act.spill())
    }
}
