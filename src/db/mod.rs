//! Postgres for host apps: the query logger ([`query_logger::QueryLogger`]), SQL
//! fingerprints, and the pools the Monitor watches.

pub mod fingerprint;
pub mod query_logger;

use std::sync::{Arc, Mutex};

use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::AsyncPgConnection;
use serde::Serialize;

pub use query_logger::{QueryLogger, QueryLoggerOptions};

/// A diesel-async deadpool pool of Postgres connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// The pools whose status the Monitor samples and `/queries` shows: selfheal's own, and any
/// the host app registers with [`crate::SelfHeal::watch_pool`].
#[derive(Clone, Default)]
pub struct PoolRegistry {
    pools: Arc<Mutex<Vec<(String, PgPool)>>>,
}

/// A pool's deadpool status.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub max_size: usize,
    /// Connections open.
    pub size: usize,
    /// Open and idle.
    pub available: usize,
    /// Checked out.
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// `in_use` as a percent of `max_size`.
    pub usage_percent: f64,
}

impl PoolRegistry {
    /// Watch `pool` under `name` (a second pool with the same name replaces the first).
    pub fn add(&self, name: &str, pool: PgPool) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|(n, _)| n != name);
        pools.push((name.to_owned(), pool));
    }

    /// The status of every watched pool.
    pub fn statuses(&self) -> Vec<PoolStatus> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .iter()
            .map(|(name, pool)| {
                let s = pool.status();
                let in_use = s.size.saturating_sub(s.available);
                PoolStatus {
                    name: name.clone(),
                    max_size: s.max_size,
                    size: s.size,
                    available: s.available,
                    in_use,
                    waiting: s.waiting,
                    usage_percent: if s.max_size == 0 {
                        0.0
                    } else {
                        in_use as f64 * 100.0 / s.max_size as f64
                    },
                }
            })
            .collect()
    }
}
