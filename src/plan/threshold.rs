//! The safety thresholds of a plan: how many deactivations and updates a night may make, and
//! the refusal when it would make more.
//!
//! Owns the check and what the refusal says (what went over which limit, where plan.csv lists
//! who, and the options that accept it). It must never let a plan over a limit through
//! without the operator naming at least that many.

use super::Plan;
use crate::model::OpKind;
use crate::safety::Safety;

/// The plan refused by a safety threshold (exit code 3): what went over which limit, and
/// where plan.csv lists who.
#[derive(Debug)]
pub struct ThresholdExceeded {
    pub breaches: Vec<Breach>,
    /// Active users in the ledger before the plan (what the percentages are of).
    pub active: usize,
    /// The refused plan's plan.csv, once written.
    pub plan_file: Option<std::path::PathBuf>,
}

/// What the operator accepted beyond the thresholds for one run (`--allow-deactivations N`,
/// `--allow-updates N`, `--allow-reenrollments N`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowances {
    pub deactivations: Option<u64>,
    pub updates: Option<u64>,
    pub reenrollments: Option<u64>,
}

/// One threshold a plan went over.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// [`OpKind::Deactivate`], [`OpKind::Update`] or [`OpKind::ReEnroll`].
    pub kind: OpKind,
    pub planned: usize,
    pub limit: u64,
    /// The setting, as configured (`safety.max_deactivations = "10%", ...`).
    pub setting: String,
}

impl Breach {
    /// The option that accepts this many.
    pub fn allow_flag(&self) -> String {
        match self.kind {
            OpKind::Deactivate => format!("--allow-deactivations {}", self.planned),
            OpKind::ReEnroll => format!("--allow-reenrollments {}", self.planned),
            _ => format!("--allow-updates {}", self.planned),
        }
    }
}

impl std::fmt::Display for ThresholdExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refusing the plan: it ")?;
        for (i, breach) in self.breaches.iter().enumerate() {
            if i > 0 {
                f.write_str(", and ")?;
            }
            let verb = match breach.kind {
                OpKind::Deactivate => "deactivates",
                OpKind::ReEnroll => "re-enrolls",
                _ => "updates",
            };
            write!(
                f,
                "{verb} {} users, over the limit of {} ({} active in the ledger; {})",
                breach.planned, breach.limit, self.active, breach.setting
            )?;
        }
        if let Some(file) = &self.plan_file {
            write!(f, "; see who in {}", crate::human::path(file))?;
        }
        let flags: Vec<String> = self.breaches.iter().map(Breach::allow_flag).collect();
        write!(
            f,
            "; if this is intended, run again with {}",
            flags.join(" ")
        )
    }
}

impl std::error::Error for ThresholdExceeded {}

impl Plan {
    /// Refuses a plan that deactivates, updates or re-enrolls more than `safety` allows,
    /// unless the operator named at least that many with `--allow-deactivations`,
    /// `--allow-updates` or `--allow-reenrollments`.
    pub fn check_threshold(
        &self,
        safety: &Safety,
        allow: &Allowances,
    ) -> Result<(), ThresholdExceeded> {
        let active = self.active_before as u64;
        let checks = [
            (
                OpKind::Deactivate,
                self.deactivations(),
                Some(safety.deactivation_limit(active)),
                allow.deactivations,
                safety.deactivations_shown(),
            ),
            (
                OpKind::Update,
                self.updates(),
                safety.update_limit(active),
                allow.updates,
                safety.updates_shown(),
            ),
            (
                OpKind::ReEnroll,
                self.reenrollments(),
                safety.reenrollment_limit(active),
                allow.reenrollments,
                safety.reenrollments_shown(),
            ),
        ];
        let mut breaches = Vec::new();
        for (kind, planned, limit, allow, setting) in checks {
            let Some(limit) = limit else { continue };
            let allowed = planned as u64 <= limit || allow.is_some_and(|n| planned as u64 <= n);
            if !allowed {
                breaches.push(Breach {
                    kind,
                    planned,
                    limit,
                    setting,
                });
            }
        }
        if breaches.is_empty() {
            Ok(())
        } else {
            Err(ThresholdExceeded {
                breaches,
                active: self.active_before,
                plan_file: None,
            })
        }
    }
}
