//! The safety thresholds: how many deactivations, updates and re-enrollments one plan may
//! hold before it is refused (exit 3) unless the run names `--allow-deactivations N`,
//! `--allow-updates N` or `--allow-reenrollments N`.
//!
//! Owns `[safety]` (reading and checking it) and the limits it gives for a number of active
//! users. Pure: the plan counts its ops and asks. The floor must never allow more than half
//! of the active users to be deactivated (a count or a percentage is taken as written).

use anyhow::{Context, Result};
use serde::Deserialize;

/// The most changes of one kind one plan may contain, before any floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// A share of the ledger's active users, in percent.
    Percent(f64),
    Count(u64),
}

impl Threshold {
    pub fn parse(raw: &str) -> Option<Threshold> {
        let raw = raw.trim();
        if let Some(percent) = raw.strip_suffix('%') {
            let value: f64 = percent.trim().parse().ok()?;
            (0.0..=100.0)
                .contains(&value)
                .then_some(Threshold::Percent(value))
        } else {
            raw.parse().ok().map(Threshold::Count)
        }
    }

    /// The allowed number given how many users are active.
    pub fn limit(self, active: u64) -> u64 {
        match self {
            Threshold::Percent(p) => (active as f64 * p / 100.0).floor() as u64,
            Threshold::Count(n) => n,
        }
    }

    /// The form it is written in the config (`10%`, `25`).
    pub fn shown(self) -> String {
        match self {
            Threshold::Percent(p) => format!("{p}%"),
            Threshold::Count(n) => n.to_string(),
        }
    }

    /// Reads a config value: a count, or a percentage written as a string.
    fn from_toml(value: &toml::Value) -> Option<Threshold> {
        match value {
            toml::Value::Integer(n) if *n >= 0 => Some(Threshold::Count(*n as u64)),
            toml::Value::String(s) => Threshold::parse(s),
            _ => None,
        }
    }
}

/// `[safety]`: how big a plan may be before it is refused (exit 3) unless the run names
/// `--allow-deactivations N` / `--allow-updates N`.
///
/// A percentage alone fails small organisations: 10% of 5 active users is 0, so the first
/// leaver would be refused every night. A percentage therefore has a floor, a count that is
/// always allowed; but the floor never lets more than half of the active users go, so a
/// truncated or half-empty roster is refused at every size. A count is taken as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Safety {
    /// Most deactivations (default `10%`).
    pub max_deactivations: Threshold,
    /// Deactivations always allowed when `max_deactivations` is a percentage, capped at half
    /// of the active users (default 3).
    pub max_deactivations_floor: u64,
    /// Most updates (changed people, reactivations), `None` when off (default `75%`).
    pub max_updates: Option<Threshold>,
    /// Updates always allowed when `max_updates` is a percentage (default 10).
    pub max_updates_floor: u64,
    /// Most re-enrollments (recertification resets a learner's progress in the item), `None`
    /// when off (default `10%`): a policy typed wrong ("12 days" for "12 months") must not
    /// send the whole organisation back to the start of its training in one night.
    pub max_reenrollments: Option<Threshold>,
    /// Re-enrollments always allowed when `max_reenrollments` is a percentage (default 10).
    pub max_reenrollments_floor: u64,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_deactivations: Threshold::Percent(10.0),
            max_deactivations_floor: 3,
            max_updates: Some(Threshold::Percent(75.0)),
            max_updates_floor: 10,
            max_reenrollments: Some(Threshold::Percent(10.0)),
            max_reenrollments_floor: 10,
        }
    }
}

impl Safety {
    /// Deactivations a plan may hold given `active` users in the ledger.
    pub fn deactivation_limit(&self, active: u64) -> u64 {
        let share = self.max_deactivations.limit(active);
        match self.max_deactivations {
            Threshold::Percent(_) => share.max(self.max_deactivations_floor.min(active / 2)),
            Threshold::Count(_) => share,
        }
    }

    /// Updates a plan may hold given `active` users in the ledger; `None` when unlimited.
    pub fn update_limit(&self, active: u64) -> Option<u64> {
        let threshold = self.max_updates?;
        let share = threshold.limit(active);
        Some(match threshold {
            Threshold::Percent(_) => share.max(self.max_updates_floor),
            Threshold::Count(_) => share,
        })
    }

    /// Re-enrollments a plan may hold given `active` users in the ledger; `None` when
    /// unlimited.
    pub fn reenrollment_limit(&self, active: u64) -> Option<u64> {
        let threshold = self.max_reenrollments?;
        let share = threshold.limit(active);
        Some(match threshold {
            Threshold::Percent(_) => share.max(self.max_reenrollments_floor),
            Threshold::Count(_) => share,
        })
    }

    /// `safety.max_reenrollments` as configured, for messages.
    pub fn reenrollments_shown(&self) -> String {
        match self.max_reenrollments {
            None => "safety.max_reenrollments = \"off\"".to_owned(),
            Some(Threshold::Percent(p)) => format!(
                "safety.max_reenrollments = \"{p}%\", floor {}",
                self.max_reenrollments_floor
            ),
            Some(Threshold::Count(n)) => format!("safety.max_reenrollments = {n}"),
        }
    }

    /// `safety.max_deactivations` as configured, for messages.
    pub fn deactivations_shown(&self) -> String {
        match self.max_deactivations {
            Threshold::Percent(_) => format!(
                "safety.max_deactivations = \"{}\", floor {} but at most half",
                self.max_deactivations.shown(),
                self.max_deactivations_floor
            ),
            Threshold::Count(n) => format!("safety.max_deactivations = {n}"),
        }
    }

    /// `safety.max_updates` as configured, for messages.
    pub fn updates_shown(&self) -> String {
        match self.max_updates {
            None => "safety.max_updates = \"off\"".to_owned(),
            Some(Threshold::Percent(p)) => format!(
                "safety.max_updates = \"{p}%\", floor {}",
                self.max_updates_floor
            ),
            Some(Threshold::Count(n)) => format!("safety.max_updates = {n}"),
        }
    }
}

/// `[safety]` as written, checked by [`RawSafety::check`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSafety {
    max_deactivations: Option<toml::Value>,
    max_deactivations_floor: Option<u64>,
    max_updates: Option<toml::Value>,
    max_updates_floor: Option<u64>,
    max_reenrollments: Option<toml::Value>,
    max_reenrollments_floor: Option<u64>,
}

impl RawSafety {
    /// The thresholds, or an error naming the key (`label` names the config file).
    pub(crate) fn check(self, label: &str) -> Result<Safety> {
        let defaults = Safety::default();
        let max_deactivations = match &self.max_deactivations {
            None => defaults.max_deactivations,
            Some(value) => Threshold::from_toml(value).with_context(|| {
                format!("{label}: safety.max_deactivations: expected a count or a percentage like \"10%\", found {value}")
            })?,
        };
        let max_updates = match &self.max_updates {
            None => defaults.max_updates,
            Some(toml::Value::String(s)) if s.trim().eq_ignore_ascii_case("off") => None,
            Some(value) => Some(Threshold::from_toml(value).with_context(|| {
                format!("{label}: safety.max_updates: expected a count, a percentage like \"75%\" or \"off\", found {value}")
            })?),
        };
        let max_reenrollments = match &self.max_reenrollments {
            None => defaults.max_reenrollments,
            Some(toml::Value::String(s)) if s.trim().eq_ignore_ascii_case("off") => None,
            Some(value) => Some(Threshold::from_toml(value).with_context(|| {
                format!("{label}: safety.max_reenrollments: expected a count, a percentage like \"10%\" or \"off\", found {value}")
            })?),
        };
        Ok(Safety {
            max_reenrollments,
            max_reenrollments_floor: self
                .max_reenrollments_floor
                .unwrap_or(defaults.max_reenrollments_floor),
            max_deactivations,
            max_deactivations_floor: self
                .max_deactivations_floor
                .unwrap_or(defaults.max_deactivations_floor),
            max_updates,
            max_updates_floor: self.max_updates_floor.unwrap_or(defaults.max_updates_floor),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: 10% of 5 active users was a limit of 0, so a small organisation's first
    /// leaver was refused every night. The floor lets a few through at any size, but never
    /// half of the users.
    #[test]
    fn the_deactivation_floor_lets_small_organisations_lose_a_few_but_never_half() {
        let safety = Safety::default();
        assert_eq!(safety.deactivation_limit(5), 2);
        assert_eq!(safety.deactivation_limit(6), 3, "1 of 6 leaving is allowed");
        assert!(safety.deactivation_limit(6) < 4, "6 cut to 2 is refused");
        assert_eq!(safety.deactivation_limit(1), 0);
        assert_eq!(safety.deactivation_limit(0), 0);
        assert_eq!(safety.deactivation_limit(40), 4, "10% above the floor");
        assert_eq!(safety.deactivation_limit(1000), 100);
        for active in 0..500 {
            assert!(
                safety.deactivation_limit(active) <= (active / 2).max(active / 10),
                "{active}"
            );
        }
        let counted = Safety {
            max_deactivations: Threshold::Count(1),
            ..Safety::default()
        };
        assert_eq!(counted.deactivation_limit(6), 1, "a count is exact");
        assert_eq!(safety.update_limit(4), Some(10));
        assert_eq!(safety.update_limit(1000), Some(750));
    }

    #[test]
    fn thresholds_are_counts_or_shares() {
        assert_eq!(Threshold::parse("10%").unwrap().limit(205), 20);
        assert_eq!(Threshold::parse("7").unwrap().limit(1000), 7);
        assert!(Threshold::parse("110%").is_none());
    }
}
