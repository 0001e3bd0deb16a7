//! The host and this process: memory, CPU over the tick (not since boot: sysinfo compares two
//! refreshes), the disk holding the working directory, this process's RSS and CPU.

use std::path::{Path, PathBuf};

use sysinfo::{DiskRefreshKind, Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::actors::agent::AgentError;
use crate::actors::metrics_store::Gauge;
use crate::domain::metric::{
    SeriesKey, Unit, CPU_USAGE, DISK_USAGE, MEMORY_USAGE, PROCESS_CPU_USAGE, PROCESS_MEMORY_RSS,
};

/// One tick's host and process measurements.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HostSample {
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_percent: f64,
    pub cpu_percent: f64,
    pub disk_mount: Option<String>,
    pub disk_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub rss_percent: Option<f64>,
    pub process_cpu_percent: Option<f64>,
}

/// The sysinfo handles (CPU usage needs the previous refresh) and what they are pointed at.
pub struct Host {
    system: System,
    disks: Disks,
    disk_index: Option<usize>,
    pid: Option<Pid>,
}

impl Host {
    /// Handles for this host and process; the disk is the one holding the working directory.
    pub fn new() -> Result<Host, AgentError> {
        let mut system =
            System::new().map_err(|e| AgentError::new(format!("sysinfo unavailable: {e}")))?;
        // The baseline the first tick's CPU figure is measured against.
        system.refresh_cpu_usage();
        let disks = Disks::new_with_refreshed_list().ok();
        let cwd = std::env::current_dir()
            .and_then(|d| d.canonicalize())
            .unwrap_or_else(|_| PathBuf::from("/"));
        let disk_index = disks.as_ref().and_then(|d| disk_holding(d, &cwd));
        let disks = match disks {
            Some(d) => d,
            None => Disks::new().map_err(|e| AgentError::new(format!("disks unavailable: {e}")))?,
        };
        let pid = sysinfo::get_current_pid().ok();
        if let Some(pid) = pid {
            system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu(),
            );
        }
        Ok(Host {
            system,
            disks,
            disk_index,
            pid,
        })
    }

    /// Measure now (CPU: since the last call).
    pub fn sample(&mut self) -> HostSample {
        self.system.refresh_memory();
        self.system.refresh_cpu_usage();
        let total = self.system.total_memory();
        let used = self.system.used_memory();
        let percent = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        let mut sample = HostSample {
            memory_total_bytes: total,
            memory_used_bytes: used,
            memory_percent: percent(used, total),
            cpu_percent: f64::from(self.system.global_cpu_usage()),
            ..HostSample::default()
        };
        if let Some(i) = self.disk_index {
            self.disks
                .refresh_specifics(false, DiskRefreshKind::nothing().with_storage());
            if let Some(disk) = self.disks.get(i) {
                let total = disk.total_space();
                sample.disk_mount = Some(disk.mount_point().display().to_string());
                sample.disk_percent =
                    Some(percent(total.saturating_sub(disk.available_space()), total));
            }
        }
        if let Some(pid) = self.pid {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_memory().with_cpu(),
            );
            if let Some(p) = self.system.process(pid) {
                sample.rss_bytes = Some(p.memory());
                sample.rss_percent = Some(percent(p.memory(), total));
                sample.process_cpu_percent = Some(f64::from(p.cpu_usage()));
            }
        }
        sample
    }
}

impl HostSample {
    /// The sample as gauges for the metrics store.
    pub fn gauges(&self) -> Vec<Gauge> {
        let gauge = |name: &str, unit, value| Gauge {
            key: SeriesKey::new(name, Vec::new()),
            unit,
            value,
        };
        let mut out = vec![
            gauge(MEMORY_USAGE, Unit::Percent, self.memory_percent),
            gauge(CPU_USAGE, Unit::Percent, self.cpu_percent),
        ];
        if let Some(d) = self.disk_percent {
            out.push(gauge(DISK_USAGE, Unit::Percent, d));
        }
        if let Some(rss) = self.rss_bytes {
            out.push(gauge(PROCESS_MEMORY_RSS, Unit::Bytes, rss as f64));
        }
        if let Some(c) = self.process_cpu_percent {
            out.push(gauge(PROCESS_CPU_USAGE, Unit::Percent, c));
        }
        out
    }
}

/// The disk whose mount point is the longest prefix of `dir`.
fn disk_holding(disks: &Disks, dir: &Path) -> Option<usize> {
    disks
        .iter()
        .enumerate()
        .filter(|(_, d)| dir.starts_with(d.mount_point()))
        .max_by_key(|(_, d)| d.mount_point().as_os_str().len())
        .map(|(i, _)| i)
}
