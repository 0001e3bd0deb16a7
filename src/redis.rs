//! Redis through deadpool-redis: a monitored dependency and (in later work) shared state
//! between instances. Every key selfheal writes starts with `REDIS_KEY_PREFIX`.
//!
//! The pool connects lazily and reconnects by itself: a connection that fails is discarded
//! when it is returned, and the next checkout opens a new one. Every command has a timeout
//! (`REDIS_TIMEOUT_MS`), so an unreachable Redis costs one timeout per check, never a hang.

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use deadpool_redis::{Config, Pool, Runtime};
use serde::Serialize;

/// A Redis pool with the key prefix.
#[derive(Clone)]
pub struct RedisHandle {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    /// Where it connects, without credentials (for logs).
    address: String,
}

/// `INFO memory`: used memory and the configured limit (`0`: none).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RedisMemory {
    pub used_bytes: u64,
    pub max_bytes: u64,
}

impl RedisMemory {
    /// Used memory as a percent of `maxmemory`, when a limit is set.
    pub fn percent(&self) -> Option<f64> {
        (self.max_bytes > 0).then(|| self.used_bytes as f64 * 100.0 / self.max_bytes as f64)
    }
}

impl RedisHandle {
    /// A pool for `url` (not connected yet).
    pub fn new(
        url: &str,
        prefix: &str,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, String> {
        let pool = Config::from_url(url)
            .builder()
            .map_err(|e| format!("REDIS_URL: {e}"))?
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| format!("redis pool: {e}"))?;
        Ok(RedisHandle {
            pool,
            prefix: prefix.to_owned(),
            timeout,
            address: crate::text::redact_url(url),
        })
    }

    /// Where it connects, without credentials.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `suffix` with the configured prefix: the only way selfheal names a key.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Run `cmd` with the timeout.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let work = async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        match actix_web::rt::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    /// Time a `PING`.
    pub async fn ping(&self) -> Result<Duration, String> {
        let start = Instant::now();
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        Ok(start.elapsed())
    }

    /// `INFO memory`.
    pub async fn memory(&self) -> Result<RedisMemory, String> {
        let info: String = self.query(redis::cmd("INFO").arg("memory")).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Ok(RedisMemory {
            used_bytes: field("used_memory").ok_or("INFO memory has no used_memory")?,
            max_bytes: field("maxmemory").unwrap_or(0),
        })
    }

    /// `SET <prefix><suffix> value PX ttl`.
    pub async fn set_with_ttl(
        &self,
        suffix: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), String> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(suffix))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        self.query::<()>(&cmd).await
    }
}
