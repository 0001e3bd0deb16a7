//! The write-behind queue's journal (`DB_SPILL_FILE`): while Postgres is down, every queued
//! record is appended to it as a JSON line, so a crash or a shutdown during an outage loses
//! nothing. The next start queues what it finds (newest first when over the cap) and keeps the
//! file, as the journal of those records, until they are written.
//!
//! The file is created `0600` in a folder created `0700`: the records are the system's
//! history (alerts, audit rows) and may name people and hosts.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::super::model::Record;

/// What a load found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records that fit, oldest first.
    pub records: Vec<Record>,
    /// Unreadable lines, skipped.
    pub bad: usize,
    /// Records that did not fit in the queue (the oldest), refused.
    pub over: usize,
}

/// The journal file and what is known of it.
#[derive(Debug)]
pub struct Journal {
    path: Option<PathBuf>,
    /// The open journal, while journaling.
    file: Option<File>,
    /// The file exists and must be removed once the queue drains (tracked apart from the
    /// handle: a write error closes the handle, the file must still go).
    on_disk: bool,
    /// Lines in the file (it is compacted when mostly made of records already written).
    lines: usize,
    /// The journal of an earlier run was read (once per process: a restart of the writer must
    /// not queue it twice).
    loaded: bool,
}

impl Journal {
    /// A journal at `path` (`None`: memory only).
    pub fn new(path: Option<PathBuf>) -> Self {
        Journal {
            path,
            file: None,
            on_disk: false,
            lines: 0,
            loaded: false,
        }
    }

    /// The path, for logs.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether records are being appended now.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Read what an earlier run could not write, keeping at most `room` records (the newest).
    /// Only the first call reads the file.
    pub fn load(&mut self, room: usize) -> Option<Loaded> {
        if std::mem::replace(&mut self.loaded, true) {
            return None;
        }
        let path = self.path.clone()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::error!("database: cannot read the journal {}: {e}", path.display());
                return None;
            }
        };
        let mut out = Loaded::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Record>(line) {
                Ok(record) => out.records.push(record),
                Err(_) => out.bad += 1,
            }
        }
        self.lines = out.records.len() + out.bad;
        // Over the cap: keep the newest (the oldest lines are the likeliest to be written).
        out.over = out.records.len().saturating_sub(room);
        out.records.drain(..out.over);
        self.on_disk = true;
        match OpenOptions::new().append(true).open(&path) {
            Ok(file) => self.file = Some(file),
            Err(e) => log::error!(
                "database: cannot reopen the journal {}: {e}",
                path.display()
            ),
        }
        Some(out)
    }

    /// Start journaling (Postgres is down): `pending` now, then each new record.
    pub fn open<'a>(&mut self, pending: impl Iterator<Item = &'a Record>) {
        if self.file.is_some() {
            return;
        }
        let Some(path) = self.path.clone() else {
            return;
        };
        let mut lines = 0usize;
        let opened = (|| -> std::io::Result<File> {
            let mut out = String::new();
            for r in pending {
                out.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
                out.push('\n');
                lines += 1;
            }
            let mut file = create_private(&path, false)?;
            file.write_all(out.as_bytes())?;
            Ok(file)
        })();
        self.on_disk = true;
        match opened {
            Ok(file) => {
                log::info!(
                    "database: journaling queued records to {} until Postgres is back",
                    path.display()
                );
                self.file = Some(file);
                self.lines += lines;
            }
            Err(e) => log::error!(
                "database: cannot journal the queue to {} ({e}); a crash now would lose it",
                path.display()
            ),
        }
    }

    /// Append a newly queued record, if journaling.
    pub fn append(&mut self, record: &Record) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let written = serde_json::to_string(record)
            .map_err(std::io::Error::other)
            .and_then(|mut line| {
                line.push('\n');
                file.write_all(line.as_bytes())
            });
        match written {
            Ok(()) => self.lines += 1,
            Err(e) => {
                log::error!("database: journal write failed ({e}); journaling stops");
                self.file = None;
            }
        }
    }

    /// When the journal is mostly records already written, rewrite it with the `pending` ones
    /// only (to a temporary file, synced, then renamed over it).
    pub fn compact<'a>(&mut self, pending: impl ExactSizeIterator<Item = &'a Record>) {
        let pending_len = pending.len();
        if self.file.is_none() || self.lines <= 2 * pending_len + 64 {
            return;
        }
        let Some(path) = self.path.clone() else {
            return;
        };
        let tmp = path.with_extension("compacting");
        let rewritten = (|| -> std::io::Result<File> {
            let mut out = String::new();
            for r in pending {
                out.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
                out.push('\n');
            }
            let mut file = create_private(&tmp, true)?;
            file.write_all(out.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            OpenOptions::new().append(true).open(&path)
        })();
        match rewritten {
            Ok(file) => {
                self.file = Some(file);
                self.lines = pending_len;
            }
            Err(e) => log::warn!(
                "database: could not compact the journal {} ({e}); it keeps growing until the queue drains",
                path.display()
            ),
        }
    }

    /// Everything is written: the journal is no longer needed.
    pub fn close_if_drained(&mut self, pending_len: usize) {
        if !self.on_disk || pending_len > 0 {
            return;
        }
        self.file = None;
        self.on_disk = false;
        self.lines = 0;
        if let Some(path) = &self.path {
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

    /// At shutdown: make sure `pending` is on disk. Answers how many records.
    pub fn spill<'a>(
        &mut self,
        pending: impl ExactSizeIterator<Item = &'a Record>,
    ) -> Result<usize, String> {
        let Some(path) = self.path.clone() else {
            return Ok(0);
        };
        let n = pending.len();
        if n == 0 {
            return Ok(0);
        }
        if self.file.is_none() {
            self.open(pending);
        }
        match &self.file {
            Some(file) => file
                .sync_all()
                .map(|()| n)
                .map_err(|e| format!("{}: {e}", path.display())),
            None => Err(format!(
                "{}: the journal could not be written",
                path.display()
            )),
        }
    }
}

/// Open `path` for appending (or truncated, with `truncate`), created `0600`, its folder
/// created `0700` when missing.
fn create_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir)?;
        }
    }
    let mut options = OpenOptions::new();
    options.create(true);
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // A file that existed keeps its old mode on open; make sure it is 0600.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_journal_is_private_to_its_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("selfheal-journal-{}", uuid::Uuid::new_v4()));
        let path = dir.join("sub").join("pending.jsonl");
        let mut j = Journal::new(Some(path.clone()));
        j.open(std::iter::empty());
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode(&path).ok(), Some(0o600));
        assert_eq!(mode(path.parent().unwrap_or(&dir)).ok(), Some(0o700));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
