//! What the AlertManager is asked and answers.

use std::collections::{BTreeMap, HashMap};

use actix::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::silences::Suppression;
use crate::domain::alert::{Alert, AlertId, Observation, Severity};
use crate::store::{MaintenanceRow, SilenceRow};

/// One Monitor tick's rule readings (`scopes`: the probes that ran on this tick).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ObserveRules {
    pub scopes: Vec<&'static str>,
    pub observations: Vec<Observation>,
}

/// Why an acknowledge or resolve was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The open alerts are not loaded from the store yet.
    #[error("{0}")]
    NotReady(String),
}

/// Acknowledge a firing alert (`by`, with an optional comment).
#[derive(Message, Debug)]
#[rtype(result = "Result<Alert, AlertError>")]
pub struct AcknowledgeAlert {
    pub id: AlertId,
    pub by: String,
    pub comment: Option<String>,
}

/// Resolve a firing or acknowledged alert by hand.
#[derive(Message, Debug)]
#[rtype(result = "Result<Alert, AlertError>")]
pub struct ResolveAlert {
    pub id: AlertId,
    pub by: String,
    pub comment: Option<String>,
}

/// The freshest copy of an alert this process holds (open, or resolved recently); `None`
/// when only the store may know it.
#[derive(Message, Debug)]
#[rtype(result = "Option<Alert>")]
pub struct GetAlert(pub AlertId);

/// Open alerts and the recently resolved ones, fresher than the store.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Alert>")]
pub struct GetRecentAlerts;

/// Counts for `/alerts` and `/health/detailed`.
#[derive(Message, Debug)]
#[rtype(result = "AlertStats")]
pub struct GetAlertStats;

/// Silences that are active or pending, newest first.
#[derive(Message, Debug)]
#[rtype(result = "Vec<SilenceView>")]
pub struct ListSilences;

/// Add a validated silence (refused beyond `SILENCES_MAX` in force or pending: no more are
/// loaded at start).
#[derive(Message, Debug)]
#[rtype(result = "Result<SilenceView, AlertError>")]
pub struct CreateSilence(pub SilenceRow);

/// Expire a silence now.
#[derive(Message, Debug)]
#[rtype(result = "Result<SilenceView, AlertError>")]
pub struct DeleteSilence {
    pub id: uuid::Uuid,
    pub by: String,
}

/// Every maintenance window, with whether it is open now.
#[derive(Message, Debug)]
#[rtype(result = "Vec<WindowView>")]
pub struct ListMaintenance;

/// Add a validated maintenance window (refused beyond `MAINTENANCE_WINDOWS_MAX`).
#[derive(Message, Debug)]
#[rtype(result = "Result<WindowView, AlertError>")]
pub struct CreateMaintenance(pub MaintenanceRow);

/// Remove a maintenance window.
#[derive(Message, Debug)]
#[rtype(result = "Result<WindowView, AlertError>")]
pub struct DeleteMaintenance {
    pub id: uuid::Uuid,
    pub by: String,
}

/// Whether an open maintenance window covers an alert of this type and component (and
/// labels): for agents that must not act during maintenance (repairs).
#[derive(Message, Debug)]
#[rtype(result = "Option<Suppression>")]
pub struct InMaintenance {
    pub alert_type: String,
    pub component: String,
    pub severity: Severity,
    pub labels: BTreeMap<String, String>,
}

/// A silence and whether it is in force now.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct SilenceView {
    #[serde(flatten)]
    pub row: SilenceRow,
    pub active: bool,
}

/// A maintenance window and whether it is open now.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct WindowView {
    #[serde(flatten)]
    pub row: MaintenanceRow,
    pub active: bool,
}

/// The manager's counters.
#[derive(Debug, Clone, Default, Serialize, MessageResponse)]
pub struct AlertStats {
    pub open: usize,
    pub firing: usize,
    pub acknowledged: usize,
    pub silenced: usize,
    pub by_severity: HashMap<&'static str, usize>,
    pub pending_rules: usize,
    pub raised_total: u64,
    pub repeats_total: u64,
    pub resolved_total: u64,
    pub auto_resolved_total: u64,
    pub notifications_dispatched_total: u64,
    pub notifications_suppressed_total: u64,
    pub notifications_refused_total: u64,
    /// Whether the open alerts, silences and windows were read from the store.
    pub loaded: bool,
    pub channels: Value,
}
