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
//! Restart policy: infrastructure actor under actix's `Supervisor`; a restart keeps the queue.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::Record;
use super::postgres::{PgStore, WriteOutcome};
use super::StoreError;

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
    spill_file: Option<PathBuf>,
    /// The open journal, while journaling.
    journal: Option<std::fs::File>,
    /// The journal file exists and must be removed once the queue drains (tracked apart from
    /// the handle: a write error closes the handle, the file must still go).
    journal_on_disk: bool,
    /// Lines in the journal (it is compacted when mostly made of records already written).
    journal_lines: usize,
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
}

impl StoreWriter {
    pub fn new(
        pg: Arc<PgStore>,
        cap: usize,
        batch: usize,
        every: Duration,
        retention: (u32, u32, u32),
        spill_file: Option<PathBuf>,
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
            suspects: VecDeque::new(),
            in_flight: None,
            spill_file,
            journal: None,
            journal_on_disk: false,
            journal_lines: 0,
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

    /// Every pending record, oldest first as far as the lanes allow.
    fn pending(&self) -> impl Iterator<Item = &Record> {
        self.in_flight
            .iter()
            .flat_map(|b| b.iter())
            .chain(self.suspects.iter().map(|(q, _)| q))
            .chain(self.queue.iter())
            .map(|q| &q.record)
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
        ctx.spawn(work.into_actor(self).map(|(result, batch), act, ctx| {
            act.in_flight = None;
            let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
            act.finish(result, batch);
            act.release_drained();
            act.schedule(ctx);
        }));
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
                ctx.run_later(at - now, |act, ctx| act.flush(ctx));
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
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.probing = false;
            act.finish(result, Vec::new());
            act.schedule(ctx);
        }));
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
                self.went_down(e.to_string());
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
            self.went_down(format!("Postgres refuses writes: {why}"));
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
        let was_down = self.state() == WriterState::Down;
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
        self.compact_journal();
        self.close_journal_if_drained();
    }

    fn went_down(&mut self, message: String) {
        let was_down = self.state() == WriterState::Down;
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
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
        self.open_journal();
    }

    /// Queue what an earlier run could not write. The file stays, as the journal of these
    /// records, until they are written (a crash before then loses nothing).
    fn load_spill(&mut self) {
        let Some(path) = self.spill_file.clone() else {
            return;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                log::error!("database: cannot read the journal {}: {e}", path.display());
                return;
            }
        };
        let mut bad = 0usize;
        let mut records: Vec<Record> = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Record>(line) {
                Ok(record) => records.push(record),
                Err(_) => bad += 1,
            }
        }
        // Over the cap: keep the newest (the oldest lines are the likeliest to be written).
        let over = records
            .len()
            .saturating_sub(self.cap.saturating_sub(self.queue.len()));
        let loaded = records.len() - over;
        let over = over as u64;
        self.journal_lines = records.len() + bad;
        for record in records.into_iter().skip(over as usize) {
            self.queue.push_back(Queued {
                record,
                refusals: 0,
            });
        }
        self.accepted += loaded as u64;
        self.journal_on_disk = true;
        match std::fs::OpenOptions::new().append(true).open(&path) {
            Ok(file) => self.journal = Some(file),
            Err(e) => log::error!(
                "database: cannot reopen the journal {}: {e}",
                path.display()
            ),
        }
        if bad > 0 {
            log::error!("database: {bad} unreadable line(s) in the journal were skipped");
        }
        if over > 0 {
            log::error!(
                "database: {over} journaled record(s) did not fit in DB_WRITE_QUEUE_MAX ({}) and were refused",
                self.cap
            );
        }
        log::info!(
            "database: queued {loaded} record(s) an earlier run could not write ({})",
            path.display()
        );
        self.update(|s| s.overflow += over);
    }

    /// Start journaling the queue (Postgres is down): the queue now, then each new record.
    fn open_journal(&mut self) {
        if self.journal.is_some() {
            return;
        }
        let Some(path) = self.spill_file.clone() else {
            return;
        };
        let pending: Vec<&Record> = self.pending().collect();
        let lines = pending.len();
        let opened = (|| -> std::io::Result<std::fs::File> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let mut out = String::new();
            for r in pending {
                out.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
                out.push('\n');
            }
            std::io::Write::write_all(&mut file, out.as_bytes())?;
            Ok(file)
        })();
        self.journal_on_disk = true;
        match opened {
            Ok(file) => {
                log::info!(
                    "database: journaling queued records to {} until Postgres is back",
                    path.display()
                );
                self.journal = Some(file);
                self.journal_lines += lines;
            }
            Err(e) => log::error!(
                "database: cannot journal the queue to {} ({e}); a crash now would lose it",
                path.display()
            ),
        }
    }

    /// Append a newly queued record to the journal, if one is open.
    fn journal_append(&mut self, record: &Record) {
        let Some(file) = self.journal.as_mut() else {
            return;
        };
        let written = serde_json::to_string(record)
            .map_err(std::io::Error::other)
            .and_then(|mut line| {
                line.push('\n');
                std::io::Write::write_all(file, line.as_bytes())
            });
        match written {
            Ok(()) => self.journal_lines += 1,
            Err(e) => {
                log::error!("database: journal write failed ({e}); journaling stops");
                self.journal = None;
            }
        }
    }

    /// When the journal is mostly records already written, rewrite it with the pending ones
    /// only (to a temporary file, synced, then renamed over it).
    fn compact_journal(&mut self) {
        if self.journal.is_none() || self.journal_lines <= 2 * self.pending_len() + 64 {
            return;
        }
        let Some(path) = self.spill_file.clone() else {
            return;
        };
        let tmp = path.with_extension("compacting");
        let pending: Vec<&Record> = self.pending().collect();
        let lines = pending.len();
        let rewritten = (|| -> std::io::Result<std::fs::File> {
            let mut out = String::new();
            for r in pending {
                out.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
                out.push('\n');
            }
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, out.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::OpenOptions::new().append(true).open(&path)
        })();
        match rewritten {
            Ok(file) => {
                self.journal = Some(file);
                self.journal_lines = lines;
            }
            Err(e) => log::warn!(
                "database: could not compact the journal {} ({e}); it keeps growing until the queue drains",
                path.display()
            ),
        }
    }

    /// Everything is written: the journal is no longer needed.
    fn close_journal_if_drained(&mut self) {
        if !self.journal_on_disk || self.pending_len() > 0 {
            return;
        }
        self.journal = None;
        self.journal_on_disk = false;
        self.journal_lines = 0;
        if let Some(path) = &self.spill_file {
            match std::fs::remove_file(path) {
                Ok(()) => log::info!(
                    "database: queue written; journal {} removed",
                    path.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::error!(
                    "database: cannot remove the journal {}: {e}",
                    path.display()
                ),
            }
        }
    }

    /// At shutdown: make sure what is still queued is on disk. Answers how many records.
    fn spill(&mut self) -> Result<usize, String> {
        let Some(path) = self.spill_file.clone() else {
            return Ok(0);
        };
        let pending = self.pending_len();
        if pending == 0 {
            return Ok(0);
        }
        if self.journal.is_none() {
            self.open_journal();
        }
        match &self.journal {
            Some(file) => file
                .sync_all()
                .map(|()| pending)
                .map_err(|e| format!("{}: {e}", path.display())),
            None => Err(format!(
                "{}: the journal could not be written",
                path.display()
            )),
        }
    }
}

impl Actor for StoreWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.load_spill();
        ctx.run_interval(self.every, |act, ctx| act.flush(ctx));
        ctx.run_interval(PRUNE_EVERY, |act, ctx| {
            if act.pruning {
                return; // the last run is still going
            }
            act.pruning = true;
            let (pg, (m, a, p)) = (act.pg.clone(), act.retention);
            ctx.spawn(
                async move {
                    match pg.prune(m, a, p).await {
                        Ok(0) => {}
                        Ok(n) => log::info!("database: pruned {n} row(s) past their retention"),
                        Err(e) => log::warn!("database: pruning failed ({e}); next try in an hour"),
                    }
                }
                .into_actor(act)
                .map(|(), act, _| act.pruning = false),
            );
        });
        // Migrate as soon as Postgres answers, so the schema exists before the first write.
        let pg = self.pg.clone();
        ctx.spawn(
            async move { pg.ensure_migrated().await }
                .into_actor(self)
                .map(|result, act, _| match result {
                    Err(e) => {
                        log::warn!(
                            "database: unreachable at start ({e}); writes are queued until it answers"
                        );
                        act.went_down(e.to_string());
                        // The first attempt comes at once, not after the backoff.
                        act.next_attempt = Instant::now();
                    }
                    Ok(()) => {
                        if act.state() == WriterState::Unknown {
                            act.update(|s| s.state = WriterState::Up);
                        }
                    }
                }),
        );
    }
}

impl Supervised for StoreWriter {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The queue is kept: a restart must not lose what was waiting.
        if let Some(batch) = self.in_flight.take() {
            let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
            self.requeue(batch);
        }
        self.probing = false;
    }
}

impl Handler<Enqueue> for StoreWriter {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
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
            return;
        }
        self.journal_append(&msg.0);
        self.queue.push_back(Queued {
            record: msg.0,
            refusals: 0,
        });
        self.accepted += 1;
        self.update(|_| {});
        if self.queue.len() >= self.batch {
            self.flush(ctx);
        }
    }
}

impl Handler<Drain> for StoreWriter {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        if self.settled >= self.accepted {
            return Box::pin(async { true });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drain_waiters.push((self.accepted, tx));
        // Try now rather than after the backoff.
        self.next_attempt = Instant::now();
        self.flush(ctx);
        Box::pin(async move { matches!(actix_web::rt::time::timeout(msg.0, rx).await, Ok(Ok(()))) })
    }
}

/// At shutdown, after a [`Drain`] that timed out: make sure what is still queued is in the
/// journal (`DB_SPILL_FILE`), to be queued again at the next start. Answers how many records.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Spill;

impl Handler<Spill> for StoreWriter {
    type Result = Result<usize, String>;

    fn handle(&mut self, _: Spill, _: &mut Self::Context) -> Self::Result {
        self.spill()
    }
}
