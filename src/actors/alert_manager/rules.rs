//! Anti-flap: the first stage of the pipeline. A rule fires after `ALERT_PENDING_TICKS`
//! consecutive breaching ticks and resolves after `ALERT_RESOLVE_TICKS` consecutive clear ones
//! (clear means under the threshold by the hysteresis margin; the band between is a hold).

use std::collections::{HashMap, HashSet};

use crate::domain::alert::{AlertSignal, Level, Observation};

/// What a tick's observations change.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The rule has breached for the pending ticks: raise it.
    Fire(AlertSignal),
    /// A firing rule breached again: a repeat of the same alert.
    Repeat(AlertSignal),
    /// A firing rule has been clear for the resolve ticks: resolve its alert.
    Clear { fingerprint: String },
}

#[derive(Debug)]
struct RuleState {
    scope: String,
    breaches: u32,
    clears: u32,
    firing: bool,
}

/// Per-fingerprint counters of the Monitor's rules.
#[derive(Debug, Default)]
pub struct Tracker {
    rules: HashMap<String, RuleState>,
}

impl Tracker {
    /// Whether no rule is firing or pending.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules that are breaching but not yet firing.
    pub fn pending(&self) -> usize {
        self.rules.values().filter(|r| !r.firing).count()
    }

    /// Treat `fingerprint` as firing (an open alert found at start, or raised directly), so the
    /// rule's clear ticks resolve it.
    pub fn seed_firing(&mut self, fingerprint: &str, scope: &str) {
        self.rules.insert(
            fingerprint.to_owned(),
            RuleState {
                scope: scope.to_owned(),
                breaches: 0,
                clears: 0,
                firing: true,
            },
        );
    }

    /// Forget a rule (its alert was resolved by hand: it must breach for the pending ticks
    /// again before a new alert fires).
    pub fn forget(&mut self, fingerprint: &str) {
        self.rules.remove(fingerprint);
    }

    /// Apply one tick. `scopes` are the scopes evaluated on this tick: a tracked rule of one of
    /// them that is not in `observations` counts as clear.
    pub fn observe(
        &mut self,
        scopes: &[&str],
        observations: Vec<Observation>,
        pending_ticks: u32,
        resolve_ticks: u32,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for o in observations {
            let fp = o.signal.fingerprint();
            seen.insert(fp.clone());
            self.step(
                fp,
                o.scope,
                o.level,
                Some(o.signal),
                o.pending_ticks.unwrap_or(pending_ticks).max(pending_ticks),
                resolve_ticks,
                &mut out,
            );
        }
        let vanished: Vec<(String, String)> = self
            .rules
            .iter()
            .filter(|(fp, r)| !seen.contains(*fp) && scopes.contains(&r.scope.as_str()))
            .map(|(fp, r)| (fp.clone(), r.scope.clone()))
            .collect();
        for (fp, scope) in vanished {
            self.step(
                fp,
                &scope,
                Level::Clear,
                None,
                pending_ticks,
                resolve_ticks,
                &mut out,
            );
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        fp: String,
        scope: &str,
        level: Level,
        signal: Option<AlertSignal>,
        pending_ticks: u32,
        resolve_ticks: u32,
        out: &mut Vec<Transition>,
    ) {
        match level {
            Level::Breach => {
                let Some(signal) = signal else { return };
                let r = self.rules.entry(fp).or_insert_with(|| RuleState {
                    scope: scope.to_owned(),
                    breaches: 0,
                    clears: 0,
                    firing: false,
                });
                r.breaches = r.breaches.saturating_add(1);
                r.clears = 0;
                if r.firing {
                    out.push(Transition::Repeat(signal));
                } else if r.breaches >= pending_ticks.max(1) {
                    r.firing = true;
                    out.push(Transition::Fire(signal));
                }
            }
            Level::Hold => {
                if let Some(r) = self.rules.get_mut(&fp) {
                    if r.firing {
                        r.clears = 0;
                    } else {
                        self.rules.remove(&fp);
                    }
                }
            }
            Level::Clear => {
                let Some(r) = self.rules.get_mut(&fp) else {
                    return;
                };
                if !r.firing {
                    self.rules.remove(&fp);
                    return;
                }
                r.breaches = 0;
                r.clears = r.clears.saturating_add(1);
                if r.clears >= resolve_ticks.max(1) {
                    self.rules.remove(&fp);
                    out.push(Transition::Clear { fingerprint: fp });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{types, Severity};

    fn obs(route: &str, level: Level) -> Observation {
        Observation {
            scope: "api",
            level,
            signal: AlertSignal::new(types::API_SLOW, "api", Severity::High, "slow")
                .label("route", route),
            pending_ticks: None,
        }
    }

    fn kinds(t: &[Transition]) -> Vec<&'static str> {
        t.iter()
            .map(|t| match t {
                Transition::Fire(_) => "fire",
                Transition::Repeat(_) => "repeat",
                Transition::Clear { .. } => "clear",
            })
            .collect()
    }

    #[test]
    fn a_rule_fires_after_the_pending_ticks_and_then_repeats() {
        let mut t = Tracker::default();
        assert!(t
            .observe(&["api"], vec![obs("/a", Level::Breach)], 2, 2)
            .is_empty());
        assert_eq!(t.pending(), 1);
        let out = t.observe(&["api"], vec![obs("/a", Level::Breach)], 2, 2);
        assert_eq!(kinds(&out), ["fire"]);
        let out = t.observe(&["api"], vec![obs("/a", Level::Breach)], 2, 2);
        assert_eq!(kinds(&out), ["repeat"]);
    }

    #[test]
    fn a_breach_interrupted_before_firing_starts_over() {
        let mut t = Tracker::default();
        t.observe(&["api"], vec![obs("/a", Level::Breach)], 3, 2);
        t.observe(&["api"], vec![obs("/a", Level::Hold)], 3, 2);
        t.observe(&["api"], vec![obs("/a", Level::Breach)], 3, 2);
        assert!(t
            .observe(&["api"], vec![obs("/a", Level::Breach)], 3, 2)
            .is_empty());
        assert_eq!(
            kinds(&t.observe(&["api"], vec![obs("/a", Level::Breach)], 3, 2)),
            ["fire"]
        );
    }

    #[test]
    fn a_firing_rule_resolves_only_after_consecutive_clear_ticks_and_holds_reset_them() {
        let mut t = Tracker::default();
        t.observe(&["api"], vec![obs("/a", Level::Breach)], 1, 2);
        assert!(t
            .observe(&["api"], vec![obs("/a", Level::Clear)], 1, 2)
            .is_empty());
        // In the hysteresis band: still firing, and the clear count starts over.
        assert!(t
            .observe(&["api"], vec![obs("/a", Level::Hold)], 1, 2)
            .is_empty());
        assert!(t
            .observe(&["api"], vec![obs("/a", Level::Clear)], 1, 2)
            .is_empty());
        let out = t.observe(&["api"], vec![obs("/a", Level::Clear)], 1, 2);
        assert_eq!(kinds(&out), ["clear"]);
        assert!(t.is_empty());
    }

    #[test]
    fn a_rule_that_vanishes_from_an_evaluated_scope_clears_and_other_scopes_are_untouched() {
        let mut t = Tracker::default();
        t.observe(&["api"], vec![obs("/a", Level::Breach)], 1, 1);
        // A tick that did not evaluate `api` (say, only the external probe ran).
        assert!(t.observe(&["external"], vec![], 1, 1).is_empty());
        let out = t.observe(&["api"], vec![], 1, 1);
        assert_eq!(kinds(&out), ["clear"]);
    }

    #[test]
    fn a_seeded_rule_clears_when_its_condition_is_gone() {
        let mut t = Tracker::default();
        let fp = obs("/a", Level::Breach).signal.fingerprint();
        t.seed_firing(&fp, "api");
        let out = t.observe(&["api"], vec![obs("/a", Level::Clear)], 2, 1);
        assert_eq!(out, [Transition::Clear { fingerprint: fp }]);
    }
}
