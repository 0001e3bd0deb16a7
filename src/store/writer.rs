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
use std::path::PathBuf;
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
    /// The batch being written (kept so a spill at shutdown includes it; writes are
    /// idempotent, so a record both written and spilled is stored once).
    in_flight_batch: Option<Arc<Vec<Record>>>,
    /// Where the queue goes when it cannot be written before shutdown, and is read back from.
    spill_file: Option<PathBuf>,
    /// While Postgres is down: the spill file, open, holding every queued record (appended as
    /// it arrives), so even a crash during an outage loses nothing. Removed once drained.
    journal: Option<std::fs::File>,
    /// A reachability check is running (queue empty, Postgres last seen down).
    probing: bool,
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
            in_flight: 0,
            in_flight_batch: None,
            spill_file,
            journal: None,
            probing: false,
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
        if self.in_flight > 0 || self.probing || Instant::now() < self.next_attempt {
            return;
        }
        if self.queue.is_empty() {
            // Nothing to write, but Postgres was last seen down (or never reached): check on
            // the same backoff, so the state shows the recovery without waiting for a write.
            if read_status(&self.status).state != WriterState::Up {
                self.probe(ctx);
            }
            return;
        }
        let n = self.batch.min(self.queue.len());
        let batch: Arc<Vec<Record>> = Arc::new(self.queue.drain(..n).collect());
        self.in_flight = n;
        self.in_flight_batch = Some(batch.clone());
        let pg = self.pg.clone();
        let work = async move {
            let result = pg.write(&batch).await;
            (result, batch)
        };
        ctx.spawn(work.into_actor(self).map(|(result, batch), act, ctx| {
            act.in_flight = 0;
            act.in_flight_batch = None;
            let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
            act.finish(result, batch);
            act.release_waiters_if_empty();
            // More waiting and Postgres answers: keep going without waiting for the timer.
            if !act.queue.is_empty() && Instant::now() >= act.next_attempt {
                act.flush(ctx);
            }
        }));
    }

    /// Queue what an earlier shutdown could not write (then remove the file).
    fn load_spill(&mut self) {
        let Some(path) = &self.spill_file else {
            return;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                log::error!(
                    "database: cannot read the spill file {}: {e}",
                    path.display()
                );
                return;
            }
        };
        let (mut loaded, mut bad) = (0usize, 0usize);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Record>(line) {
                Ok(r) => {
                    self.queue.push_back(r);
                    loaded += 1;
                }
                Err(_) => bad += 1,
            }
        }
        // The file stays, as the journal of these records, until they are written (a crash
        // before then loses nothing); it is removed once the queue drains.
        match std::fs::OpenOptions::new().append(true).open(path) {
            Ok(file) => self.journal = Some(file),
            Err(e) => log::error!(
                "database: cannot reopen the spill file {}: {e}",
                path.display()
            ),
        }
        if bad > 0 {
            log::error!("database: {bad} unreadable line(s) in the spill file were skipped");
        }
        log::info!(
            "database: queued {loaded} record(s) an earlier run could not write ({})",
            path.display()
        );
        self.update(|_| {});
    }

    /// Write the queue (and the batch in flight) to the spill file, one JSON record per line.
    fn spill(&mut self) -> Result<usize, String> {
        let Some(path) = self.spill_file.clone() else {
            return Ok(0);
        };
        if let Some(file) = &self.journal {
            // Already on disk, record by record: make it durable and stop.
            file.sync_all()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(self.queue.len() + self.in_flight_batch.as_ref().map_or(0, |b| b.len()));
        }
        let mut records: Vec<&Record> = Vec::new();
        if let Some(b) = &self.in_flight_batch {
            records.extend(b.iter());
        }
        records.extend(self.queue.iter());
        if records.is_empty() {
            return Ok(0);
        }
        let mut out = String::new();
        for r in &records {
            let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
            out.push_str(&line);
            out.push('\n');
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        // Appending keeps an older spill that was not read back (a start without Postgres
        // configured, say).
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::io::Write::write_all(&mut file, out.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(records.len())
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        self.probing = true;
        let pg = self.pg.clone();
        let work = async move {
            pg.ensure_migrated().await?;
            pg.ping().await?;
            Ok(super::postgres::WriteOutcome::default())
        };
        ctx.spawn(work.into_actor(self).map(|result, act, _| {
            act.probing = false;
            act.finish(result, Vec::new());
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
                self.close_journal_if_drained();
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
                self.open_journal();
            }
        }
    }

    /// Start journaling the queue to the spill file (Postgres is down).
    fn open_journal(&mut self) {
        if self.journal.is_some() {
            return;
        }
        let Some(path) = self.spill_file.clone() else {
            return;
        };
        let opened = (|| -> std::io::Result<std::fs::File> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let mut out = String::new();
            for r in &self.queue {
                out.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
                out.push('\n');
            }
            std::io::Write::write_all(&mut file, out.as_bytes())?;
            Ok(file)
        })();
        match opened {
            Ok(file) => {
                log::info!(
                    "database: journaling queued records to {} until Postgres is back",
                    path.display()
                );
                self.journal = Some(file);
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
        if let Err(e) = written {
            log::error!("database: journal write failed ({e}); journaling stops");
            self.journal = None;
        }
    }

    /// Everything is written: the journal is no longer needed.
    fn close_journal_if_drained(&mut self) {
        if self.journal.is_none() || !self.queue.is_empty() || self.in_flight > 0 {
            return;
        }
        self.journal = None;
        if let Some(path) = &self.spill_file {
            match std::fs::remove_file(path) {
                Ok(()) => log::info!(
                    "database: queue written; journal {} removed",
                    path.display()
                ),
                Err(e) => log::error!(
                    "database: cannot remove the journal {}: {e}",
                    path.display()
                ),
            }
        }
    }
}

impl Actor for StoreWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.load_spill();
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
                        act.open_journal();
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
        self.probing = false;
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
        self.journal_append(&msg.0);
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

/// At shutdown, after a [`Drain`] that timed out: save what is still queued to the spill file
/// (`DB_SPILL_FILE`), to be queued again at the next start. Answers how many were saved.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Spill;

impl Handler<Spill> for StoreWriter {
    type Result = Result<usize, String>;

    fn handle(&mut self, _: Spill, _: &mut Self::Context) -> Self::Result {
        self.spill()
    }
}
