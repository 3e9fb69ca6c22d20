//! Completions as the engine sees them: each learner's latest completion of each item, read
//! from the events file, matched to a roster key through the ledger and to an SKU through
//! the catalog, and judged against the recertification policy.
//!
//! Owns the plan's list of re-enrollments due and the `completions` report (who completed
//! what when, who is due soon or overdue, and the events that match nobody). Reads only: it
//! must never write the ledger or the events file, and never drop an event from the report
//! because it matched nothing.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::ingest::catalog::{Catalog, ContentEntry};
use crate::ledger::Ledger;
use crate::ledger::events::{EventStore, LatestCompletion};
use crate::model::Grant;
use crate::plan::recertify::{self, Candidate, Due, Resolved};

/// The policy resolved against the catalog (an SKU it does not list is an error naming the
/// config file).
pub fn resolve_policy(config: &Config, catalog: &Catalog, label: &str) -> Result<Resolved> {
    config
        .recertify
        .resolve(
            catalog
                .content
                .iter()
                .map(|c| (c.uuid.as_str(), c.sku.as_str(), c.kind.as_api_str())),
        )
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))
}

/// The re-enrollments due at `now` (ms): learners the ledger holds as active whose latest
/// completion of an item under the policy is past its period less the lead, and whose
/// expiry no acknowledged re-enrollment has answered yet. Whether the roster still assigns
/// the item is the planner's to check.
pub fn due(
    config: &Config,
    ledger: &Ledger,
    catalog: &Catalog,
    now: i64,
    label: &str,
) -> Result<Vec<Due>> {
    if config.recertify.is_empty() {
        return Ok(Vec::new());
    }
    let policy = resolve_policy(config, catalog, label)?;
    let Some(store) = EventStore::open_read_only(&config.events.store)? else {
        return Ok(Vec::new());
    };
    // Only completions old enough to be due under the most lenient rule are read.
    let Some(until) = policy.latest_due(now) else {
        return Ok(Vec::new());
    };
    let mut candidates = Vec::new();
    store.each_latest_completion(Some(until), |completion| {
        let Some(item) = catalog.content_by_uuid(&completion.content_uuid) else {
            return Ok(());
        };
        let kind = item.kind.as_api_str();
        let Some(rule) = policy.rule_for(&item.uuid, kind) else {
            return Ok(());
        };
        // Only what is due is matched to a learner: on most nights that is a few of
        // millions of completions, and only those are kept.
        if !recertify::is_due(&rule, completion.completed_at, None, now) {
            return Ok(());
        }
        let Some((key, true)) = ledger.learner_of(&completion.user_uuid)? else {
            return Ok(());
        };
        // Answered expiries are dropped by `recertify::due`.
        candidates.push(Candidate {
            answered: ledger.recertified(&key, &item.uuid)?,
            key,
            item: Grant {
                id: item.uuid.clone(),
                kind: kind.to_owned(),
            },
            completed_at: completion.completed_at,
        });
        Ok(())
    })?;
    Ok(recertify::due(candidates, &policy, now))
}

/// `completions --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// The report's moment: completions from `since` (ms, all when `None`), judged at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct When {
    pub since: Option<i64>,
    pub now: i64,
}

/// One line of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Line {
    /// `current`, `due_soon`, `overdue`, `no_policy` (the item has no recertification rule),
    /// `unmatched` (see `note`) or `not_completed` (assigned under a rule, never completed).
    pub status: &'static str,
    pub key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub learner_active: Option<bool>,
    pub sku: String,
    pub content: String,
    pub content_type: String,
    /// The latest completion, UTC (`YYYY-MM-DD HH:MM:SS`).
    pub completed_at: String,
    /// How many completions of the item by the learner were received.
    pub completions: i64,
    pub due_at: String,
    pub expires_at: String,
    pub user_uuid: String,
    pub content_uuid: String,
    /// Why an event matched nothing.
    pub note: String,
}

/// What the report counted.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub completions: u64,
    pub current: u64,
    pub due_soon: u64,
    pub overdue: u64,
    pub no_policy: u64,
    pub unmatched: u64,
    /// Active learners assigned an item under a rule with no completion of it received.
    pub not_completed: u64,
}

fn time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Writes the report to `out`: a line per learner and item (the latest completion at or
/// after `since`), then a line per stored event that is no completion of anything this
/// ledger and catalog know. Lines are written as they are made: a report of millions of
/// completions is never held in memory. With no events file (`store` is `None`: nothing
/// received yet) the report is still written, empty: a header, or a JSON object with no
/// lines, so that whatever reads it need not tell that case apart.
pub fn report(
    config: &Config,
    catalog: &Catalog,
    ledger: Option<&Ledger>,
    store: Option<&EventStore>,
    when: When,
    format: Format,
    out: &mut dyn Write,
) -> Result<Counts> {
    let When { since, now } = when;
    let policy = resolve_policy(config, catalog, "[[recertify]]")?;
    let mut counts = Counts::default();
    let mut sink = Sink::new(format, out, now)?;
    let Some(store) = store else {
        if since.is_none()
            && let Some(ledger) = ledger
        {
            not_completed(ledger, None, catalog, &policy, &mut counts, &mut sink)?;
        }
        sink.finish(&counts)?;
        return Ok(counts);
    };
    store.each_latest_completion(None, |completion| {
        if since.is_some_and(|since| completion.completed_at < since) {
            return Ok(());
        }
        let line = line_of(&completion, catalog, ledger, &policy, now)?;
        counts.completions += 1;
        match line.status {
            "current" => counts.current += 1,
            "due_soon" => counts.due_soon += 1,
            "overdue" => counts.overdue += 1,
            "no_policy" => counts.no_policy += 1,
            _ => counts.unmatched += 1,
        }
        sink.line(&line)
    })?;
    // Events that are no completion at all (another type, no learner or item named).
    store.each_since(since.unwrap_or(i64::MIN), |event| {
        // Completions naming both were reported above, matched or not.
        let Some(note) = unmatched(
            event
                .content_type
                .is_none()
                .then_some(event.event_type.as_str()),
            event.user_uuid.as_deref().map(|u| (u, true)),
            event.content_uuid.as_deref().map(|c| (c, true)),
        ) else {
            return Ok(());
        };
        counts.unmatched += 1;
        sink.line(&Line {
            status: "unmatched",
            key: event.matched_key.unwrap_or_default(),
            sku: event.matched_sku.unwrap_or_default(),
            content_type: event.content_type.unwrap_or_default(),
            completed_at: time(event.occurred_at),
            completions: 1,
            user_uuid: event.user_uuid.unwrap_or_default(),
            content_uuid: event.content_uuid.unwrap_or_default(),
            note: format!("{note} (event {})", event.id),
            ..Line::default()
        })
    })?;
    // The whole picture only: a report from a date lists what happened since.
    if since.is_none()
        && let Some(ledger) = ledger
    {
        not_completed(
            ledger,
            Some(store),
            catalog,
            &policy,
            &mut counts,
            &mut sink,
        )?;
    }
    sink.finish(&counts)?;
    Ok(counts)
}

/// A `not_completed` line for each active learner holding (through this tool) an item under
/// a rule with no completion of it received: the people a compliance report is about.
fn not_completed(
    ledger: &Ledger,
    store: Option<&EventStore>,
    catalog: &Catalog,
    policy: &Resolved,
    counts: &mut Counts,
    sink: &mut Sink<'_>,
) -> Result<()> {
    if policy.is_empty() {
        return Ok(());
    }
    ledger.each_active_learner(|key, uuid, learner| {
        for item in &learner.content {
            if policy.rule_for(&item.id, &item.kind).is_none() {
                continue;
            }
            if let Some(store) = store
                && store.has_completion(uuid, &item.id)?
            {
                continue;
            }
            let entry = catalog.content_by_uuid(&item.id);
            counts.not_completed += 1;
            sink.line(&Line {
                status: "not_completed",
                key: key.to_owned(),
                email: learner.email.clone(),
                first_name: learner.first_name.clone(),
                last_name: learner.last_name.clone(),
                learner_active: Some(true),
                sku: entry.map(|e| e.sku.clone()).unwrap_or_default(),
                content: entry.map(|e| e.name.clone()).unwrap_or_default(),
                content_type: item.kind.clone(),
                user_uuid: uuid.to_owned(),
                content_uuid: item.id.clone(),
                note: "assigned under a recertification rule; no completion received".to_owned(),
                ..Line::default()
            })?;
        }
        Ok(())
    })
}

/// Why an event matches nothing, or `None` when it is a completion of a known learner and
/// item. `other_type` is the event's type when it is no completion; then come the learner's
/// UUID and the item's, each with whether the ledger or the catalog knows it (`None`: the
/// event names none). The receiver answers with it and the report prints it.
pub fn unmatched(
    other_type: Option<&str>,
    learner: Option<(&str, bool)>,
    item: Option<(&str, bool)>,
) -> Option<String> {
    if let Some(event_type) = other_type {
        return Some(format!("event type {event_type} is not a completion"));
    }
    let mut misses = Vec::new();
    match learner {
        None => misses.push("the event names no learner UUID".to_owned()),
        Some((uuid, false)) => misses.push(format!("no learner in the ledger has UUID {uuid}")),
        Some((_, true)) => {}
    }
    match item {
        None => misses.push("the event names no course or learning path UUID".to_owned()),
        Some((uuid, false)) => misses.push(format!("content {uuid} is not in the catalog")),
        Some((_, true)) => {}
    }
    (!misses.is_empty()).then(|| misses.join("; "))
}

fn line_of(
    completion: &LatestCompletion,
    catalog: &Catalog,
    ledger: Option<&Ledger>,
    policy: &Resolved,
    now: i64,
) -> Result<Line> {
    let item: Option<&ContentEntry> = catalog.content_by_uuid(&completion.content_uuid);
    let learner = match ledger {
        Some(ledger) => ledger.learner_by_uuid(&completion.user_uuid)?,
        None => None,
    };
    let person = learner.as_ref().map(|(_, person)| person);
    let mut line = Line {
        status: "unmatched",
        key: learner.as_ref().map(|(k, _)| k.clone()).unwrap_or_default(),
        email: person.map(|p| p.email.clone()).unwrap_or_default(),
        first_name: person.map(|p| p.first_name.clone()).unwrap_or_default(),
        last_name: person.map(|p| p.last_name.clone()).unwrap_or_default(),
        learner_active: person.map(|p| p.active),
        sku: item.map(|i| i.sku.clone()).unwrap_or_default(),
        content: item.map(|i| i.name.clone()).unwrap_or_default(),
        content_type: item
            .map(|i| i.kind.as_api_str().to_owned())
            .unwrap_or_else(|| completion.content_type.clone()),
        completed_at: time(completion.completed_at),
        completions: completion.times,
        user_uuid: completion.user_uuid.clone(),
        content_uuid: completion.content_uuid.clone(),
        ..Line::default()
    };
    if let Some(why) = unmatched(
        None,
        Some((&completion.user_uuid, learner.is_some())),
        Some((&completion.content_uuid, item.is_some())),
    ) {
        line.note = why;
        return Ok(line);
    }
    let rule = policy.rule_for(&completion.content_uuid, &line.content_type);
    line.status = match rule.and_then(|rule| rule.expiry(completion.completed_at)) {
        None => "no_policy",
        Some(expiry) => {
            line.due_at = time(expiry.due_at);
            line.expires_at = time(expiry.expires_at);
            expiry.standing(now).as_str()
        }
    };
    Ok(line)
}

/// Where lines go: CSV rows, or the `lines` array of one JSON object.
enum Sink<'a> {
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
    Json { out: &'a mut dyn Write, first: bool },
}

const HEADER: [&str; 16] = [
    "status",
    "key",
    "email",
    "first_name",
    "last_name",
    "learner_active",
    "sku",
    "content",
    "content_type",
    "completed_at",
    "completions",
    "due_at",
    "expires_at",
    "user_uuid",
    "content_uuid",
    "note",
];

impl<'a> Sink<'a> {
    fn new(format: Format, out: &'a mut dyn Write, now: i64) -> Result<Sink<'a>> {
        Ok(match format {
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                csv.write_record(HEADER)?;
                Sink::Csv(Box::new(csv))
            }
            Format::Json => {
                write!(
                    out,
                    "{{\"as_of\":{},\"lines\":[",
                    serde_json::to_string(&time(now))?
                )?;
                Sink::Json { out, first: true }
            }
        })
    }

    fn line(&mut self, line: &Line) -> Result<()> {
        match self {
            Sink::Csv(csv) => {
                let active = match line.learner_active {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "",
                };
                let completions = line.completions.to_string();
                let cells = [
                    line.status,
                    &line.key,
                    &line.email,
                    &line.first_name,
                    &line.last_name,
                    active,
                    &line.sku,
                    &line.content,
                    &line.content_type,
                    &line.completed_at,
                    &completions,
                    &line.due_at,
                    &line.expires_at,
                    &line.user_uuid,
                    &line.content_uuid,
                    &line.note,
                ];
                csv.write_record(cells.iter().map(|c| crate::report::guarded(c).into_owned()))?;
            }
            Sink::Json { out, first } => {
                if !*first {
                    out.write_all(b",")?;
                }
                *first = false;
                out.write_all(b"\n")?;
                serde_json::to_writer(&mut **out, line)?;
            }
        }
        Ok(())
    }

    fn finish(self, counts: &Counts) -> Result<()> {
        match self {
            Sink::Csv(mut csv) => csv.flush()?,
            Sink::Json { out, .. } => {
                write!(out, "\n],\"counts\":{}}}\n", serde_json::to_string(counts)?)?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// Opens what the report reads: the ledger (none yet: every event is unmatched) and the
/// events file (none yet: an empty report).
pub fn open(config: &Config) -> Result<(Option<Ledger>, Option<EventStore>)> {
    let ledger = if config.ledger.path.exists() {
        Some(Ledger::open_read_only(&config.ledger.path)?)
    } else {
        None
    };
    let store = EventStore::open_read_only(&config.events.store)
        .with_context(|| "cannot read the events file ([events] store)".to_string())?;
    Ok((ledger, store))
}
