//! The AlertManager's handlers, in message order. Every body runs under the supervision
//! guard: a panic is a crash and a restart, never a dead actor.

use actix::prelude::*;
use chrono::Utc;

use super::messages::*;
use super::rules::Transition;
use super::silences::{Silence, Suppression, Window};
use super::AlertManager;
use crate::domain::alert::Alert;
use crate::store::{Record, MAINTENANCE_WINDOWS_MAX, SILENCES_MAX};
use crate::supervision::{self as sv, ActorReport, Guarded};

impl Handler<ObserveRules> for AlertManager {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: ObserveRules, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let a = &act.settings.alerting;
            let transitions = act.tracker.observe(
                &msg.scopes,
                msg.observations,
                a.pending_ticks,
                a.resolve_ticks,
            );
            for t in transitions {
                match t {
                    Transition::Fire(signal) | Transition::Repeat(signal) => {
                        act.raise(signal);
                    }
                    Transition::Clear { fingerprint } => {
                        act.resolve(&fingerprint, "selfheal", None, true);
                    }
                }
            }
        })
    }
}

impl Handler<ActorReport> for AlertManager {
    type Result = Guarded<()>;

    fn handle(&mut self, msg: ActorReport, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.on_report(msg))
    }
}

impl Handler<AcknowledgeAlert> for AlertManager {
    type Result = Guarded<Result<Alert, AlertError>>;

    fn handle(&mut self, msg: AcknowledgeAlert, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            act.acknowledge(msg.id, msg.by, msg.comment)
        })
    }
}

impl Handler<ResolveAlert> for AlertManager {
    type Result = Guarded<Result<Alert, AlertError>>;

    fn handle(&mut self, msg: ResolveAlert, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            act.resolve_by_hand(msg.id, msg.by, msg.comment)
        })
    }
}

impl Handler<GetAlert> for AlertManager {
    type Result = Guarded<Option<Alert>>;

    fn handle(&mut self, msg: GetAlert, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.find_any(msg.0).cloned())
    }
}

impl Handler<GetRecentAlerts> for AlertManager {
    type Result = Guarded<MessageResult<GetRecentAlerts>>;

    fn handle(&mut self, _: GetRecentAlerts, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            MessageResult(
                act.open
                    .values()
                    .chain(act.recent.iter())
                    .cloned()
                    .collect(),
            )
        })
    }
}

impl Handler<GetAlertStats> for AlertManager {
    type Result = Guarded<AlertStats>;

    fn handle(&mut self, _: GetAlertStats, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| act.stats())
    }
}

impl Handler<ListSilences> for AlertManager {
    type Result = Guarded<MessageResult<ListSilences>>;

    fn handle(&mut self, _: ListSilences, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let now = Utc::now();
            let mut out: Vec<SilenceView> = act
                .silences
                .iter()
                .map(|s| SilenceView {
                    row: s.row.clone(),
                    active: s.active(now),
                })
                .collect();
            out.sort_by_key(|v| std::cmp::Reverse(v.row.created_at));
            MessageResult(out)
        })
    }
}

impl Handler<CreateSilence> for AlertManager {
    type Result = Guarded<Result<SilenceView, AlertError>>;

    fn handle(&mut self, msg: CreateSilence, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            if act.silences.len() >= SILENCES_MAX {
                return Err(AlertError::Conflict(format!(
                    "{SILENCES_MAX} silences are in force or pending: delete one first"
                )));
            }
            let row = msg.0;
            log::info!(
                "silence {} created by {}",
                row.id,
                crate::text::escape_for_log(&row.created_by)
            );
            act.store.write(Record::Silence(row.clone()));
            let s = Silence::new(row.clone());
            let active = s.active(Utc::now());
            act.silences.push(s);
            // Apply it to open alerts now rather than at the next housekeeping.
            act.housekeeping();
            Ok(SilenceView { row, active })
        })
    }
}

impl Handler<DeleteSilence> for AlertManager {
    type Result = Guarded<Result<SilenceView, AlertError>>;

    fn handle(&mut self, msg: DeleteSilence, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let pos = act
                .silences
                .iter()
                .position(|s| s.row.id == msg.id)
                .ok_or_else(|| {
                    AlertError::NotFound(format!("no active or pending silence {}", msg.id))
                })?;
            let now = Utc::now();
            let mut row = act.silences.remove(pos).row;
            row.deleted_at = Some(now);
            row.deleted_by = Some(msg.by.clone());
            row.updated_at = now;
            log::info!(
                "silence {} expired by {}",
                row.id,
                crate::text::escape_for_log(&msg.by)
            );
            act.store.write(Record::Silence(row.clone()));
            act.housekeeping();
            Ok(SilenceView { row, active: false })
        })
    }
}

impl Handler<ListMaintenance> for AlertManager {
    type Result = Guarded<MessageResult<ListMaintenance>>;

    fn handle(&mut self, _: ListMaintenance, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let now = Utc::now();
            MessageResult(
                act.windows
                    .iter()
                    .map(|w| WindowView {
                        row: w.row.clone(),
                        active: w.active(now),
                    })
                    .collect(),
            )
        })
    }
}

impl Handler<CreateMaintenance> for AlertManager {
    type Result = Guarded<Result<WindowView, AlertError>>;

    fn handle(&mut self, msg: CreateMaintenance, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            if act.windows.len() >= MAINTENANCE_WINDOWS_MAX {
                return Err(AlertError::Conflict(format!(
                    "{MAINTENANCE_WINDOWS_MAX} maintenance windows exist: delete one first"
                )));
            }
            let row = msg.0;
            log::info!(
                "maintenance window {} ({}) created by {}",
                row.id,
                crate::text::escape_for_log(&row.name),
                crate::text::escape_for_log(&row.created_by)
            );
            act.store.write(Record::Maintenance(row.clone()));
            let w = Window::new(row.clone());
            let active = w.active(Utc::now());
            act.windows.push(w);
            act.housekeeping();
            Ok(WindowView { row, active })
        })
    }
}

impl Handler<DeleteMaintenance> for AlertManager {
    type Result = Guarded<Result<WindowView, AlertError>>;

    fn handle(&mut self, msg: DeleteMaintenance, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let pos = act
                .windows
                .iter()
                .position(|w| w.row.id == msg.id)
                .ok_or_else(|| AlertError::NotFound(format!("no maintenance window {}", msg.id)))?;
            let now = Utc::now();
            let mut row = act.windows.remove(pos).row;
            row.deleted_at = Some(now);
            row.deleted_by = Some(msg.by.clone());
            row.updated_at = now;
            log::info!(
                "maintenance window {} ({}) removed by {}",
                row.id,
                crate::text::escape_for_log(&row.name),
                crate::text::escape_for_log(&msg.by)
            );
            act.store.write(Record::Maintenance(row.clone()));
            act.housekeeping();
            Ok(WindowView { row, active: false })
        })
    }
}

impl Handler<InMaintenance> for AlertManager {
    type Result = Guarded<Option<Suppression>>;

    fn handle(&mut self, msg: InMaintenance, ctx: &mut Self::Context) -> Self::Result {
        sv::guard(self, ctx, |act, _| {
            let now = Utc::now();
            act.windows
                .iter()
                .find(|w| {
                    w.active(now)
                        && w.covers(
                            &msg.alert_type,
                            &msg.component,
                            msg.severity.as_str(),
                            &msg.labels,
                        )
                })
                .map(|w| Suppression::Maintenance {
                    id: w.row.id,
                    name: w.row.name.clone(),
                })
        })
    }
}
