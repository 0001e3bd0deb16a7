//! Logging: the logger selfheal installs (env_logger, `RUST_LOG`, default `info`) and the log
//! ring, the last `DIAGNOSTIC_MAX_LOGS` WARN and ERROR lines with their time, target and trace
//! id, kept for diagnosis and read at `GET /api/v1/system/logs`.
//!
//! Every line is made safe on its way through: newlines and other control characters are
//! escaped and long lines are cut ([`crate::text::escape_for_log`]), so a value a client sent
//! (a name, a comment, a path) can never forge a log line.
//!
//! The ring is global, like the `log` crate's logger: [`init`] installs both. An app that
//! embeds selfheal and keeps its own logger can wrap it with [`RingLogger::wrapping`] to
//! feed the ring too; otherwise `/logs` says the ring is not capturing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Utc};
use log::{Level, LevelFilter, Log, Metadata, Record};
use serde::Serialize;

use crate::text::escape_for_log;
use crate::trace::TraceContext;

/// One WARN or ERROR line.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub level: &'static str,
    pub target: String,
    pub message: String,
    /// The W3C trace id of the request the line was logged in, when there was one.
    pub trace_id: Option<String>,
}

/// The ring of the last WARN and ERROR lines.
pub struct LogRing {
    lines: Mutex<VecDeque<LogLine>>,
    cap: AtomicUsize,
    /// Lines seen since start (the ring keeps the last `cap`).
    total: AtomicU64,
    capturing: AtomicBool,
}

/// What `/logs` answers.
#[derive(Debug, Clone, Serialize)]
pub struct LogsView {
    pub lines: Vec<LogLine>,
    /// Whether selfheal's logger feeds the ring (an embedding app with a logger of its own
    /// must wrap it with `selfheal::logging::RingLogger::wrapping`).
    pub capturing: bool,
    pub capacity: usize,
    pub total: u64,
}

impl LogRing {
    fn new(cap: usize) -> Self {
        LogRing {
            lines: Mutex::new(VecDeque::new()),
            cap: AtomicUsize::new(cap),
            total: AtomicU64::new(0),
            capturing: AtomicBool::new(false),
        }
    }

    /// Keep at most `cap` lines (`DIAGNOSTIC_MAX_LOGS`; 0 keeps none).
    pub fn set_capacity(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        while lines.len() > cap {
            lines.pop_front();
        }
    }

    fn push(&self, line: LogLine) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let cap = self.cap.load(Ordering::Relaxed);
        if cap == 0 {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        while lines.len() >= cap {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The newest `limit` lines of at least `level` (WARN: both), and of `trace_id` when
    /// given; oldest first.
    pub fn query(&self, level: Option<Level>, limit: usize, trace_id: Option<&str>) -> LogsView {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<LogLine> = lines
            .iter()
            .rev()
            .filter(|l| level.is_none_or(|want| l.level == want.as_str()))
            .filter(|l| trace_id.is_none_or(|t| l.trace_id.as_deref() == Some(t)))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        LogsView {
            lines: out,
            capturing: self.capturing.load(Ordering::Relaxed),
            capacity: self.cap.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }

    /// Lines held now.
    pub fn len(&self) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The process's log ring (1 000 lines until the settings say otherwise).
pub fn ring() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(|| LogRing::new(1_000))
}

/// A logger that keeps WARN and ERROR lines in the ring, escapes every line, and hands it to
/// the logger it wraps (filtered by that logger's own level).
pub struct RingLogger {
    inner: Box<dyn Log>,
    level: LevelFilter,
}

impl RingLogger {
    /// Wrap `inner`, which prints lines up to `level`.
    pub fn wrapping(inner: Box<dyn Log>, level: LevelFilter) -> Self {
        RingLogger { inner, level }
    }

    /// Install as the process's logger; false when one is installed already. Lines up to
    /// `level`, and every WARN and ERROR line for the ring, pass the `log` macros' filter.
    pub fn install(self) -> bool {
        let max = self.level.max(LevelFilter::Warn);
        if log::set_boxed_logger(Box::new(self)).is_err() {
            return false;
        }
        log::set_max_level(max);
        ring().capturing.store(true, Ordering::Relaxed);
        true
    }
}

impl Log for RingLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= Level::Warn || (m.level() <= self.level && self.inner.enabled(m))
    }

    fn log(&self, record: &Record<'_>) {
        let keep = record.level() <= Level::Warn;
        let print = record.level() <= self.level && self.inner.enabled(record.metadata());
        if !keep && !print {
            return;
        }
        let message = escape_for_log(&record.args().to_string());
        if keep {
            ring().push(LogLine {
                at: Utc::now(),
                level: record.level().as_str(),
                target: record.target().to_owned(),
                message: message.clone(),
                trace_id: TraceContext::current_trace_id()
                    .map(|t| String::from_utf8_lossy(&t).into_owned()),
            });
        }
        if print {
            self.inner.log(
                &Record::builder()
                    .args(format_args!("{message}"))
                    .level(record.level())
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Install env_logger (`RUST_LOG`, default `info`) behind the ring, keeping `max_logs` lines
/// (`DIAGNOSTIC_MAX_LOGS`). False when a logger was installed already (then the ring only
/// captures if that logger is a [`RingLogger`]).
pub fn init(max_logs: usize) -> bool {
    ring().set_capacity(max_logs);
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let level = logger.filter();
    RingLogger::wrapping(Box::new(logger), level).install()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_its_newest_lines_and_filters_by_level_and_trace() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(LogLine {
                at: Utc::now(),
                level: if i % 2 == 0 { "WARN" } else { "ERROR" },
                target: "t".into(),
                message: format!("line {i}"),
                trace_id: (i == 4).then(|| "abc".to_owned()),
            });
        }
        assert_eq!(ring.len(), 3);
        let all = ring.query(None, 10, None);
        let messages: Vec<_> = all.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["line 2", "line 3", "line 4"]);
        assert_eq!(all.total, 5);
        assert_eq!(ring.query(Some(Level::Error), 10, None).lines.len(), 1);
        assert_eq!(ring.query(None, 10, Some("abc")).lines.len(), 1);
        ring.set_capacity(1);
        assert_eq!(ring.len(), 1);
    }
}
