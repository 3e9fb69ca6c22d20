//! Recertification: when a completion expires, and which learners are due a re-enrollment.
//!
//! Owns the policy (`[[recertify]]`: a period and a lead time per SKU or content type), its
//! arithmetic (days, or calendar months: "12 months" after 31 January is the end of
//! January a year on, not 365 days) and the standing of a completion. Pure: the caller reads
//! the completions and what the ledger already answered. It must never call a completion
//! due before its period less the lead has passed, nor due again once a re-enrollment
//! answered it.

use std::collections::HashMap;

use chrono::{DateTime, Days, Months, TimeZone, Utc};

use crate::model::Grant;

/// A length of time as configured: days (weeks are 7) or calendar months (years are 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Days(u32),
    Months(u32),
}

impl Span {
    /// The longest span accepted: a hundred years. Beyond it a value is a typo.
    const MAX_DAYS: u32 = 36_525;
    const MAX_MONTHS: u32 = 1_200;

    /// Parses `"365d"`, `"12 months"`, `"2 weeks"`, `"1 year"`, `"0d"`.
    pub fn parse(raw: &str) -> Result<Span, String> {
        let text = raw.trim();
        let digits = text.chars().take_while(char::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        let expected = || {
            format!(
                "expected a number and a unit such as \"365d\", \"12 months\", \"2 weeks\" or \"1 year\", found {raw:?}"
            )
        };
        let n: u32 = number.parse().map_err(|_| expected())?;
        let span = match unit.trim().to_ascii_lowercase().as_str() {
            "d" | "day" | "days" => Span::Days(n),
            "w" | "wk" | "week" | "weeks" => Span::Days(n.checked_mul(7).ok_or_else(expected)?),
            "m" | "mo" | "month" | "months" => Span::Months(n),
            "y" | "yr" | "year" | "years" => Span::Months(n.checked_mul(12).ok_or_else(expected)?),
            _ => return Err(expected()),
        };
        match span {
            Span::Days(d) if d > Self::MAX_DAYS => Err(format!("{raw:?} is over a hundred years")),
            Span::Months(m) if m > Self::MAX_MONTHS => {
                Err(format!("{raw:?} is over a hundred years"))
            }
            span => Ok(span),
        }
    }

    fn is_zero(self) -> bool {
        matches!(self, Span::Days(0) | Span::Months(0))
    }

    /// `at` plus this span (`None` past the calendar's end).
    fn after(self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Span::Days(d) => at.checked_add_days(Days::new(d.into())),
            Span::Months(m) => at.checked_add_months(Months::new(m)),
        }
    }

    /// `at` less this span.
    fn before(self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Span::Days(d) => at.checked_sub_days(Days::new(d.into())),
            Span::Months(m) => at.checked_sub_months(Months::new(m)),
        }
    }
}

/// How long a completion holds, and how long before its expiry the learner is re-enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub period: Span,
    pub lead: Span,
}

/// When a completion's re-enrollment falls due, and when it expires (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub due_at: i64,
    pub expires_at: i64,
}

/// Where a completion stands on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Valid, and not yet within the lead time of its expiry.
    Current,
    /// Within the lead time: re-enrolled (or about to be), still valid.
    DueSoon,
    /// Expired.
    Overdue,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Current => "current",
            Standing::DueSoon => "due_soon",
            Standing::Overdue => "overdue",
        }
    }
}

impl Rule {
    /// Checks a rule as configured: a period of at least a day, a lead shorter than it.
    pub fn new(period: Span, lead: Span) -> Result<Rule, String> {
        if period.is_zero() {
            return Err("the period must be at least a day".to_owned());
        }
        let rule = Rule { period, lead };
        // Measured from a fixed day: months vary, and "1 month" with a lead of "30d" is
        // refused in every month the same way.
        let start = Utc.with_ymd_and_hms(2001, 1, 31, 0, 0, 0).unwrap();
        match rule.expiry(start.timestamp_millis()) {
            Some(expiry) if expiry.due_at > start.timestamp_millis() => Ok(rule),
            _ => Err("the lead must be shorter than the period".to_owned()),
        }
    }

    /// The expiry of a completion at `completed_at` (ms); `None` only for a time outside
    /// the calendar.
    pub fn expiry(&self, completed_at: i64) -> Option<Expiry> {
        let completed = DateTime::<Utc>::from_timestamp_millis(completed_at)?;
        let expires = self.period.after(completed)?;
        let due = self.lead.before(expires)?;
        Some(Expiry {
            due_at: due.timestamp_millis(),
            expires_at: expires.timestamp_millis(),
        })
    }
}

impl Expiry {
    pub fn standing(&self, now: i64) -> Standing {
        if now >= self.expires_at {
            Standing::Overdue
        } else if now >= self.due_at {
            Standing::DueSoon
        } else {
            Standing::Current
        }
    }
}

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One item, by its catalog SKU.
    Sku(String),
    /// Every item of a content type, in the API's spelling (`course`, `learning path`).
    Type(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Sku(sku) => write!(f, "sku {sku:?}"),
            Scope::Type(kind) => write!(f, "type {kind:?}"),
        }
    }
}

/// The policy as configured: rules in the order written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub rules: Vec<(Scope, Rule)>,
}

/// The policy resolved against a catalog: a rule per content UUID (an SKU's rule wins over
/// its type's) and per type, for items the catalog no longer lists.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    by_uuid: HashMap<String, Rule>,
    by_type: HashMap<String, Rule>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Resolves SKUs through `items` (each catalog item's UUID, SKU and type). An SKU the
    /// catalog does not list is an error naming it: a policy that silently applies to
    /// nothing would let a whole organisation's training lapse.
    pub fn resolve<'a>(
        &self,
        items: impl Iterator<Item = (&'a str, &'a str, &'a str)> + Clone,
    ) -> Result<Resolved, String> {
        let mut resolved = Resolved::default();
        for (scope, rule) in &self.rules {
            if let Scope::Type(kind) = scope {
                resolved.by_type.insert(kind.clone(), *rule);
                for (uuid, _, item_kind) in items.clone() {
                    if item_kind == kind {
                        resolved
                            .by_uuid
                            .entry(uuid.to_ascii_lowercase())
                            .or_insert(*rule);
                    }
                }
            }
        }
        for (scope, rule) in &self.rules {
            if let Scope::Sku(sku) = scope {
                let found = items
                    .clone()
                    .find(|(_, item_sku, _)| item_sku.eq_ignore_ascii_case(sku))
                    .ok_or_else(|| format!("sku {sku:?} is not in the content catalog"))?;
                resolved.by_uuid.insert(found.0.to_ascii_lowercase(), *rule);
            }
        }
        Ok(resolved)
    }
}

impl Resolved {
    pub fn is_empty(&self) -> bool {
        self.by_uuid.is_empty() && self.by_type.is_empty()
    }

    /// The latest completion time (ms) any rule could call due at `now`: what is newer is
    /// due under no rule (`None` when there is no rule).
    pub fn latest_due(&self, now: i64) -> Option<i64> {
        let at = DateTime::<Utc>::from_timestamp_millis(now)?;
        self.by_uuid
            .values()
            .chain(self.by_type.values())
            .filter_map(|rule| {
                // Completed at c, due at c + period - lead <= now  <=>  c <= now - period + lead.
                // Calendar months make that inexact by a few days; a day's margin each way
                // keeps every due completion in (the exact check is made on each).
                let back = rule.period.before(at)?;
                let forward = rule.lead.after(back)?;
                Some(forward.timestamp_millis().saturating_add(3 * 86_400_000))
            })
            .max()
    }

    /// The rule for an item (`uuid` in any case), falling back to its type's.
    pub fn rule_for(&self, uuid: &str, kind: &str) -> Option<Rule> {
        self.by_uuid
            .get(&uuid.to_ascii_lowercase())
            .or_else(|| self.by_type.get(kind))
            .copied()
    }
}

/// A learner's latest completion of an item, with the completion a re-enrollment last
/// answered for it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub key: String,
    pub item: Grant,
    pub completed_at: i64,
    pub answered: Option<i64>,
}

/// The items a learner is due to be re-enrolled in, each with the completion it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub key: String,
    pub items: Vec<(Grant, i64)>,
}

/// Whether a completion is due a re-enrollment at `now`: its period less the lead has
/// passed, and no re-enrollment answered it (nor a later one).
pub fn is_due(rule: &Rule, completed_at: i64, answered: Option<i64>, now: i64) -> bool {
    let answered = answered.is_some_and(|answered| answered >= completed_at);
    !answered && rule.expiry(completed_at).is_some_and(|e| now >= e.due_at)
}

/// The re-enrollments due at `now`, by learner (keys and items in order).
pub fn due(
    candidates: impl IntoIterator<Item = Candidate>,
    policy: &Resolved,
    now: i64,
) -> Vec<Due> {
    let mut by_key: std::collections::BTreeMap<String, Vec<(Grant, i64)>> = Default::default();
    for candidate in candidates {
        let Some(rule) = policy.rule_for(&candidate.item.id, &candidate.item.kind) else {
            continue;
        };
        if is_due(&rule, candidate.completed_at, candidate.answered, now) {
            by_key
                .entry(candidate.key)
                .or_default()
                .push((candidate.item, candidate.completed_at));
        }
    }
    by_key
        .into_iter()
        .map(|(key, mut items)| {
            items.sort_by(|a, b| a.0.id.cmp(&b.0.id));
            Due { key, items }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn spans_read_as_written() {
        assert_eq!(Span::parse("365d"), Ok(Span::Days(365)));
        assert_eq!(Span::parse(" 12 months "), Ok(Span::Months(12)));
        assert_eq!(Span::parse("2 weeks"), Ok(Span::Days(14)));
        assert_eq!(Span::parse("1 Year"), Ok(Span::Months(12)));
        assert_eq!(Span::parse("0d"), Ok(Span::Days(0)));
        for bad in [
            "",
            "d",
            "365",
            "twelve months",
            "-1d",
            "1.5y",
            "99999999999d",
            "200 years",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn months_are_calendar_months_and_the_lead_comes_off_the_expiry() {
        let rule = Rule::new(Span::Months(12), Span::Days(30)).unwrap();
        let expiry = rule.expiry(ms(2025, 1, 31)).unwrap();
        assert_eq!(expiry.expires_at, ms(2026, 1, 31));
        assert_eq!(expiry.due_at, ms(2026, 1, 1));
        assert_eq!(expiry.standing(ms(2025, 12, 31)), Standing::Current);
        assert_eq!(expiry.standing(ms(2026, 1, 1)), Standing::DueSoon);
        assert_eq!(expiry.standing(ms(2026, 1, 31)), Standing::Overdue);
        // 31 March + 1 month is 30 April (the month's end), not 1 May.
        let monthly = Rule::new(Span::Months(1), Span::Days(0)).unwrap();
        assert_eq!(
            monthly.expiry(ms(2025, 3, 31)).unwrap().expires_at,
            ms(2025, 4, 30)
        );
    }

    #[test]
    fn a_rule_needs_a_period_and_a_lead_shorter_than_it() {
        assert!(Rule::new(Span::Days(0), Span::Days(0)).is_err());
        assert!(Rule::new(Span::Days(30), Span::Days(30)).is_err());
        assert!(Rule::new(Span::Months(1), Span::Days(31)).is_err());
        assert!(Rule::new(Span::Days(365), Span::Days(364)).is_ok());
    }

    #[test]
    fn a_completion_is_due_once_its_time_comes_and_never_again_once_answered() {
        let rule = Rule::new(Span::Days(365), Span::Days(0)).unwrap();
        let done = ms(2025, 1, 1);
        assert!(!is_due(&rule, done, None, ms(2025, 12, 31)));
        assert!(is_due(&rule, done, None, ms(2026, 1, 1)));
        assert!(!is_due(&rule, done, Some(done), ms(2027, 6, 1)), "answered");
        // Completed again after the re-enrollment: a new expiry, a year on.
        let again = ms(2026, 2, 1);
        assert!(!is_due(&rule, again, Some(done), ms(2026, 6, 1)));
        assert!(is_due(&rule, again, Some(done), ms(2027, 2, 1)));
    }

    #[test]
    fn an_sku_rule_wins_over_its_type_and_an_unknown_sku_is_an_error() {
        let yearly = Rule::new(Span::Months(12), Span::Days(0)).unwrap();
        let two_years = Rule::new(Span::Months(24), Span::Days(0)).unwrap();
        let policy = Policy {
            rules: vec![
                (Scope::Sku("SG-101".into()), yearly),
                (Scope::Type("course".into()), two_years),
            ],
        };
        let items = [
            ("AAAA-1", "SG-101", "course"),
            ("bbbb-2", "FA-1", "course"),
            ("cccc-3", "LP-1", "learning path"),
        ];
        let resolved = policy.resolve(items.iter().copied()).unwrap();
        assert_eq!(resolved.rule_for("aaaa-1", "course"), Some(yearly));
        assert_eq!(resolved.rule_for("BBBB-2", "course"), Some(two_years));
        assert_eq!(resolved.rule_for("cccc-3", "learning path"), None);
        assert_eq!(resolved.rule_for("gone-9", "course"), Some(two_years));
        let unknown = Policy {
            rules: vec![(Scope::Sku("NOPE".into()), yearly)],
        };
        assert!(
            unknown
                .resolve(items.iter().copied())
                .unwrap_err()
                .contains("NOPE")
        );
    }

    #[test]
    fn no_due_completion_is_newer_than_the_cutoff_the_plan_reads_up_to() {
        let day = 86_400_000;
        for (period, lead) in [
            (Span::Months(1), Span::Days(0)),
            (Span::Months(12), Span::Days(30)),
            (Span::Months(1), Span::Days(20)),
            (Span::Days(365), Span::Months(1)),
        ] {
            let rule = Rule::new(period, lead).unwrap();
            let policy = Policy {
                rules: vec![(Scope::Type("course".into()), rule)],
            }
            .resolve(std::iter::empty())
            .unwrap();
            // Every day of two years, judged on month ends and ordinary days.
            for now in [
                ms(2026, 3, 31),
                ms(2026, 2, 28),
                ms(2028, 2, 29),
                ms(2026, 7, 15),
            ] {
                let cutoff = policy.latest_due(now).unwrap();
                for d in 0..730 {
                    let completed = now - d * day;
                    if is_due(&rule, completed, None, now) {
                        assert!(completed <= cutoff, "{period:?} {lead:?} {d}");
                    }
                }
            }
        }
        assert_eq!(Resolved::default().latest_due(0), None);
    }

    #[test]
    fn due_groups_items_by_learner_and_skips_what_has_no_rule() {
        let policy = Policy {
            rules: vec![(
                Scope::Type("course".into()),
                Rule::new(Span::Days(10), Span::Days(0)).unwrap(),
            )],
        }
        .resolve(std::iter::empty())
        .unwrap();
        let item = |id: &str, kind: &str| Grant {
            id: id.into(),
            kind: kind.into(),
        };
        let candidate = |key: &str, item: Grant, at: i64| Candidate {
            key: key.into(),
            item,
            completed_at: at,
            answered: None,
        };
        let day = 86_400_000;
        let due = due(
            [
                candidate("k2", item("c2", "course"), 0),
                candidate("k1", item("c9", "course"), 0),
                candidate("k1", item("c1", "course"), 0),
                candidate("k1", item("lp", "learning path"), 0),
                candidate("k3", item("c1", "course"), 5 * day),
            ],
            &policy,
            10 * day,
        );
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].key, "k1");
        assert_eq!(
            due[0].items,
            vec![(item("c1", "course"), 0), (item("c9", "course"), 0)]
        );
        assert_eq!(due[1].key, "k2");
    }
}
