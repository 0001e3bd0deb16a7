//! The dependencies: a timed `SELECT 1` and the watched pools (Postgres), a timed `PING` and
//! `INFO memory` (Redis), each bounded by its timeout, probed concurrently.

use crate::actors::agent::AgentContext;
use crate::actors::metrics_store::Gauge;
use crate::db::PoolStatus;
use crate::domain::metric::{
    SeriesKey, Unit, DB_POOL_USAGE, DB_QUERY_TIME, REDIS_MEMORY_USAGE, REDIS_RESPONSE_TIME,
};
use crate::redis::RedisMemory;
use crate::store::WriterStatus;

/// One tick's probe of Postgres (when `DATABASE_URL` is set).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DbProbe {
    /// The timed `SELECT 1`, when it answered.
    pub query_ms: Option<f64>,
    pub error: Option<String>,
    /// Postgres answers but the configuration is wrong (no such database, login refused):
    /// shown in health with how to fix it, not alerted as an outage.
    pub misconfigured: bool,
    pub pools: Vec<PoolStatus>,
    pub writer: Option<WriterStatus>,
}

/// One tick's probe of Redis (when `REDIS_URL` is set).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RedisProbe {
    /// The timed `PING`, when it answered.
    pub ping_ms: Option<f64>,
    pub error: Option<String>,
    pub memory: Option<RedisMemory>,
}

/// The dependencies' probes; `None` when not configured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Dependencies {
    pub database: Option<DbProbe>,
    pub redis: Option<RedisProbe>,
}

/// Probe Postgres and Redis (each bounded by its timeout), concurrently.
pub async fn probe_dependencies(cx: &AgentContext) -> Dependencies {
    let database = async {
        let (query_ms, error, misconfigured) = match cx.store.ping().await? {
            Ok(d) => (Some(d.as_secs_f64() * 1000.0), None, false),
            Err(e) => (
                None,
                Some(e.to_string()),
                matches!(e, crate::store::StoreError::Misconfigured(_)),
            ),
        };
        Some(DbProbe {
            query_ms,
            error,
            misconfigured,
            pools: cx.pools.statuses(),
            writer: cx.store.status().writer,
        })
    };
    let redis = async {
        let r = cx.redis.as_ref()?;
        Some(match r.ping().await {
            Ok(d) => RedisProbe {
                ping_ms: Some(d.as_secs_f64() * 1000.0),
                error: None,
                memory: r.memory().await.ok(),
            },
            Err(e) => RedisProbe {
                ping_ms: None,
                error: Some(e),
                memory: None,
            },
        })
    };
    let (database, redis) = futures_util::future::join(database, redis).await;
    Dependencies { database, redis }
}

pub fn dependency_gauges(deps: &Dependencies) -> Vec<Gauge> {
    let mut out = Vec::new();
    if let Some(db) = &deps.database {
        if let Some(ms) = db.query_ms {
            out.push(Gauge {
                key: SeriesKey::new(
                    DB_QUERY_TIME,
                    vec![("source".into(), "health_check".into())],
                ),
                unit: Unit::Ms,
                value: ms,
            });
        }
        for p in &db.pools {
            out.push(Gauge {
                key: SeriesKey::new(DB_POOL_USAGE, vec![("pool".into(), p.name.clone())]),
                unit: Unit::Percent,
                value: p.usage_percent,
            });
        }
    }
    if let Some(r) = &deps.redis {
        if let Some(ms) = r.ping_ms {
            out.push(Gauge {
                key: SeriesKey::new(REDIS_RESPONSE_TIME, Vec::new()),
                unit: Unit::Ms,
                value: ms,
            });
        }
        if let Some(m) = r.memory.and_then(|m| m.percent()) {
            out.push(Gauge {
                key: SeriesKey::new(REDIS_MEMORY_USAGE, Vec::new()),
                unit: Unit::Percent,
                value: m,
            });
        }
    }
    out
}
