//! `QueryCollector`: hands what the query logger recorded to the `MetricsStore` every
//! `TRACE_FLUSH_INTERVAL_MS` (which keeps the statistics and publishes slow queries), so no
//! actor message is sent per query.
//!
//! Messages out: `IngestQueries` to the `MetricsStore`. Restart policy: a core actor (see
//! [`crate::supervision`]); it holds no state of its own, the logger's buffer
//! survives a restart.

use std::time::Duration;

use actix::prelude::*;

use crate::actors::metrics_store::MetricsStore;
use crate::config::SupervisorSettings;
use crate::db::QueryLogger;
use crate::supervision::{self as sv, Core, CoreSupervision, Reporter};

/// The collector's name among the supervised actors.
pub const NAME: &str = "query_collector";

/// Drains a [`QueryLogger`] into the `MetricsStore` on a timer (which keeps the statistics
/// and sums up slow queries).
pub struct QueryCollector {
    logger: QueryLogger,
    metrics: Addr<MetricsStore>,
    every: Duration,
    batches: u64,
    sup: CoreSupervision,
}

impl QueryCollector {
    pub fn new(
        logger: QueryLogger,
        metrics: Addr<MetricsStore>,
        every: Duration,
        policy: &SupervisorSettings,
        reporter: Reporter,
    ) -> Self {
        QueryCollector {
            logger,
            metrics,
            every,
            batches: 0,
            sup: CoreSupervision::new(NAME, policy, reporter),
        }
    }

    fn flush(&mut self) {
        let batch = self.logger.drain();
        if batch.samples.is_empty() && batch.texts.is_empty() && batch.dropped == 0 {
            return;
        }
        self.batches += 1;
        self.metrics.do_send(batch);
    }
}

impl Actor for QueryCollector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        sv::started(self, ctx);
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if !self.sup.is_failed() {
            self.flush();
        }
        Running::Stop
    }
}

impl Supervised for QueryCollector {}

impl Core for QueryCollector {
    fn supervision(&mut self) -> &mut CoreSupervision {
        &mut self.sup
    }

    fn start(&mut self, ctx: &mut Context<Self>) {
        sv::guard_interval(ctx, self.every, |act, _| act.flush());
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({ "batches": self.batches })
    }
}

crate::core_handlers!(QueryCollector);
