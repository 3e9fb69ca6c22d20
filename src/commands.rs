//! The commands: plan, apply, run, status and demo, each a short sequence of the flow's
//! steps (ingest → ledger → plan → apply → report).
//!
//! Owns the order of those steps and what is printed. Everything fatal is found before the
//! first write: config, catalogs and the roster's structure are read before the plan is
//! stored, and the plan is stored before any request is sent.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use crate::apply::ApplyStats;
use crate::config::Config;
use crate::ingest::catalog::Catalog;
use crate::ingest::roster::RosterReader;
use crate::ingest::source::Format;
use crate::ledger::{Keeping, Ledger, OpKind, RejectRow};
use crate::plan::{
    self, Allowances, EarlyRows, KnownKeys, LedgerIndex, Plan, Planner, ThresholdExceeded,
};
use crate::plan_csv::{self, PlanFile};
use crate::{human, report};

/// How a command that did not fail ended (exit codes 0 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Everything converged.
    Converged,
    /// Finished, but rows were rejected or ops failed or are in doubt: see the reports.
    Incomplete,
}

/// Options of `plan` and `run`.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub roster: Option<PathBuf>,
    /// `--allow-deactivations N`, `--allow-updates N`, `--allow-reenrollments N`.
    pub allow: Allowances,
    pub dry_run: bool,
    pub json: bool,
    /// The policy clock (ms since the epoch) recertification and reminders are judged by,
    /// instead of `ROSTERSYNC_NOW` or the real time (the demo lets a year pass with it).
    pub now: Option<i64>,
}

struct Planned {
    outcome: plan::Outcome,
    roster_path: PathBuf,
    /// What the roster was read as (encoding and delimiter, or sheet).
    format: Format,
    /// plan.csv: who the plan affects.
    who: PlanFile,
}

/// The catalog rows resolve against: the config's three files for a target that has
/// catalogs, the `groups` column's for one that has none; with the target's roles.
fn catalog_of(config: &Config) -> Result<Catalog> {
    let capabilities = config.target.kind().capabilities();
    let catalog = if capabilities.catalogs {
        Catalog::load(
            &config.files.clients,
            &config.files.locations,
            &config.files.content,
        )?
    } else {
        Catalog::of_groups()
    };
    Ok(catalog.with_roles(capabilities.roles))
}

/// ingest + diff + threshold, streamed: the roster is read row by row against the ledger's
/// index and the ops go straight into the plan transaction, which is committed only when
/// the whole file was read and the threshold holds (never for a dry run).
fn plan_step(
    config: &Config,
    ledger: &mut Ledger,
    command: &str,
    options: &PlanOptions,
) -> Result<(i64, Planned)> {
    let catalog = catalog_of(config)?;
    let roster_path = options
        .roster
        .clone()
        .unwrap_or_else(|| config.files.roster.clone());
    // The plan's pages stay in the WAL until a command sends requests (see
    // `ledger::checkpoint`); an earlier plan's are copied out meanwhile.
    ledger.defer_checkpoints()?;
    let checkpointing = ledger.checkpoint_in_background();
    let planned = plan_steps(config, ledger, command, options, &catalog, roster_path);
    if let Some(checkpointing) = checkpointing {
        // The thread logs its own failure; a panic there is no reason to fail the plan.
        let _ = checkpointing.join();
    }
    planned
}

fn plan_steps(
    config: &Config,
    ledger: &mut Ledger,
    command: &str,
    options: &PlanOptions,
    catalog: &Catalog,
    roster_path: PathBuf,
) -> Result<(i64, Planned)> {
    let started = Instant::now();
    let (mut reader, (index, keys), early) = read_index_and_roster(ledger, || {
        RosterReader::open(
            &roster_path,
            catalog,
            &config.defaults,
            &config.columns,
            &config.read,
        )
    })?;
    tracing::debug!(
        secs = started.elapsed().as_secs_f64(),
        users = index.len(),
        rows_read_meanwhile = early.len(),
        "ledger index read"
    );
    // The policy clock (see `crate::clock`): recertification and reminders are judged by it.
    let now = match options.now {
        Some(now) => now,
        None => crate::clock::now_ms()?,
    };
    let due = crate::completions::due(config, ledger, catalog, now, "[[recertify]]")?;
    let run_id = ledger.begin_run(command)?;
    let started = Instant::now();
    let plan_file = report::run_dir(&config.runs_dir(), run_id).join("plan.csv");
    // The index this plan leaves is written while it commits, for the next plan.
    let ledger_id = ledger.users_version()?.ledger_id;
    let ledger_path = ledger.path().to_owned();
    let (planned, refusal, kept) = ledger.write_plan(run_id, |tx| {
        // plan.csv is written while the plan is made, op by op as the ledger stores them; it
        // is written before the threshold is checked: a refused plan's file says who it would
        // have deactivated.
        report::prepare_run_dir(plan_file.parent().unwrap_or(Path::new(".")))?;
        tx.use_known_keys(keys);
        let (mut outcome, who) = plan_csv::write_while(&plan_file, catalog, tx, |tx| {
            let can = config.target.kind().capabilities().ops;
            let remind = config.target.remind_before(now);
            let mut planner = Planner::new(index, tx)
                .able_to(can)
                .remind_before(remind)
                .recertify(due);
            planner.read_roster(&mut reader, early)?;
            let rows = reader.rows();
            planner.finish(|lines| reader.originals(lines), rows)
        })?;
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            ops = outcome.plan.total(),
            rewritten = tx.withdrew_ops(),
            "roster read and diffed, plan.csv written"
        );
        let index = std::mem::take(&mut outcome.index);
        let planned = Planned {
            outcome,
            roster_path,
            format: reader.format().clone(),
            who,
        };
        let refusal = planned
            .outcome
            .plan
            .check_threshold(&config.safety, &options.allow)
            .err()
            .map(|refusal| ThresholdExceeded {
                plan_file: Some(plan_file.clone()),
                ..refusal
            });
        if refusal.is_none() && !options.dry_run {
            let rejects = planned
                .outcome
                .rejects
                .iter()
                .map(|r| RejectRow {
                    line: r.line,
                    column: r.column.clone(),
                    reason: r.reason.clone(),
                    original: r.original.clone(),
                })
                .collect();
            let started = Instant::now();
            tx.write_rejects(rejects)?;
            let keeping = tx
                .take_known_keys()
                .map(|keys| Keeping::start(&ledger_path, ledger_id, index, keys));
            if let Err(e) = tx.commit() {
                if let Some(keeping) = keeping {
                    let _ = keeping.finish(None);
                }
                return Err(e);
            }
            tracing::debug!(secs = started.elapsed().as_secs_f64(), "plan committed");
            return Ok((planned, refusal, keeping));
        }
        Ok((planned, refusal, None))
    })?;
    // The ledger's index as this plan left it, for the next plan (see `ledger::index_file`).
    if let Some(keeping) = kept {
        let started = Instant::now();
        ledger.keep_index(keeping);
        tracing::debug!(secs = started.elapsed().as_secs_f64(), "ledger index kept");
    }
    if let Some(refusal) = refusal {
        if options.json {
            let summary = summary_json(run_id, "refused", &planned, None, Some(&refusal));
            crate::say!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print_plan(&planned);
        }
        finish_without_apply(config, ledger, run_id, "refused", &planned, Some(&refusal))?;
        return Err(refusal.into());
    }
    Ok((run_id, planned))
}

/// Loads the ledger's index on a second thread, through its own read-only connection, while
/// this one reads roster rows: on a big night those are the two long steps, and neither needs
/// the other until the rows are diffed.
/// The roster is opened on this thread too, once the index is loading: settling its
/// encoding reads the whole file once.
fn read_index_and_roster<'c>(
    ledger: &Ledger,
    open: impl FnOnce() -> Result<RosterReader<'c>>,
) -> Result<(RosterReader<'c>, (LedgerIndex, KnownKeys), EarlyRows)> {
    let path = ledger.path().to_owned();
    std::thread::scope(|scope| {
        let loading = scope.spawn(move || Ledger::open_read_only(&path)?.index_and_keys());
        let mut reader = open()?;
        let early = EarlyRows::read(&mut reader, || !loading.is_finished())?;
        let index = loading
            .join()
            .map_err(|_| anyhow::anyhow!("the ledger index reader panicked"))??;
        Ok((reader, index, early))
    })
}

fn plan_json(plan: &Plan, who: &PlanFile) -> serde_json::Value {
    let mut ops = serde_json::Map::new();
    for kind in OpKind::ALL {
        ops.insert(
            kind.as_str().to_owned(),
            json!(plan.counts.get(&kind).copied().unwrap_or(0)),
        );
    }
    json!({
        "ops": ops,
        "unchanged": plan.unchanged,
        "protected_from_deactivation": plan.protected,
        "skipped_inactive_new": plan.skipped_inactive,
        "active_before": plan.active_before,
        "withheld_deactivations": plan.withheld,
        "unidentified_rows": plan.unidentified,
        "unsupported": plan.unsupported.iter().map(|(kind, u)| {
            (kind.as_str().to_owned(), json!({ "count": u.count, "first": u.keys }))
        }).collect::<serde_json::Map<_, _>>(),
        "file": human::path(&who.path),
        "first": who.first,
    })
}

fn summary_json(
    run_id: i64,
    outcome: &str,
    planned: &Planned,
    apply: Option<&ApplyStats>,
    refusal: Option<&ThresholdExceeded>,
) -> serde_json::Value {
    let roster = &planned.outcome;
    let mut summary = json!({
        "run_id": run_id,
        "outcome": outcome,
        "finished_at": chrono::Utc::now().to_rfc3339(),
        "roster": {
            "file": human::path(&planned.roster_path),
            "rows": roster.rows,
            "valid": roster.valid,
            "rejected": roster.rejects.len(),
            "broken": roster.broken,
            "read_as": planned.format.to_json(),
        },
        "plan": plan_json(&roster.plan, &planned.who),
        "apply": apply,
    });
    if let Some(refusal) = refusal {
        summary["refused"] = refusal
            .breaches
            .iter()
            .map(|b| {
                json!({
                    "op": b.kind.as_str(),
                    "planned": b.planned,
                    "limit": b.limit,
                    "setting": b.setting,
                    "allow": b.allow_flag(),
                })
            })
            .collect();
    }
    summary
}

fn print_plan(planned: &Planned) {
    let (plan, outcome) = (&planned.outcome.plan, &planned.outcome);
    if let Some(why) = &outcome.broken {
        // On stderr, so that cron mails it even when stdout is discarded.
        eprintln!(
            "WARNING: the roster is broken: {why}.\n\
             WARNING: rows after that point were not read; no one is deactivated tonight \
             ({} deactivation(s) withheld). Fix the file and run again.",
            plan.withheld
        );
    }
    for (kind, unsupported) in &plan.unsupported {
        eprintln!(
            "WARNING: {} {} change(s) the roster asks for cannot be made on this platform (it has no {} operation); not planned: {}{}",
            unsupported.count,
            kind.as_str(),
            kind.as_str(),
            unsupported.keys.join(", "),
            if unsupported.count > unsupported.keys.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    if outcome.broken.is_none() && plan.withheld > 0 {
        let lines: Vec<String> = plan
            .unidentified
            .iter()
            .take(10)
            .map(u64::to_string)
            .collect();
        eprintln!(
            "WARNING: {} deactivation(s) withheld: the row(s) on line(s) {}{} could not be split into \
             the header's fields and may be people who are still here. Fix them and run again.",
            plan.withheld,
            lines.join(", "),
            if plan.unidentified.len() > 10 {
                ", ..."
            } else {
                ""
            }
        );
    }
    crate::say!(
        "roster {}: {} rows, {} valid, {} rejected",
        human::path(&planned.roster_path),
        outcome.rows,
        outcome.valid,
        outcome.rejects.len()
    );
    crate::say!("       read as {}", planned.format);
    let parts: Vec<String> = OpKind::ALL
        .iter()
        .filter_map(|k| plan.counts.get(k).map(|n| format!("{n} {}", k.as_str())))
        .collect();
    crate::say!(
        "plan: {} ({} unchanged{})",
        if parts.is_empty() {
            "nothing to do".to_owned()
        } else {
            parts.join(", ")
        },
        plan.unchanged,
        if plan.protected > 0 {
            format!(", {} kept because their row was rejected", plan.protected)
        } else {
            String::new()
        }
    );
    let who = &planned.who;
    for kind in OpKind::ALL {
        let Some(first) = who.first.get(kind.as_str()) else {
            continue;
        };
        for line in first {
            crate::say!("  {}", line.shown());
        }
        let written = who.written.get(kind.as_str()).copied().unwrap_or(0);
        let more = written.saturating_sub(first.len() as u64);
        if more > 0 {
            crate::say!("  ... and {more} more {}", kind.as_str());
        }
    }
    if plan.total() > 0 {
        crate::say!("who and what: {}", human::path(&who.path));
    }
}

fn print_apply(stats: &ApplyStats) {
    crate::say!(
        "apply: {} done, {} failed, {} in doubt; {} requests in {:.1} s ({})",
        stats.count("done"),
        stats.count("failed"),
        stats.count("in_doubt"),
        stats.requests,
        stats.elapsed_secs,
        human::rate(stats.achieved_rate),
    );
    let notes = [
        (stats.adopted, "existing users adopted"),
        (
            stats.retries,
            "requests retried after 5xx or connection errors",
        ),
        (stats.rate_limited_429, "answered 429 (rate limited)"),
        (
            stats.window_deferrals,
            "changes deferred by the duplicate window",
        ),
        (
            stats.interrupted_found,
            "ops found interrupted by a killed run",
        ),
        (stats.in_doubt_resolved, "ops in doubt resolved"),
        (
            stats.already_applied,
            "ops already applied (no request needed)",
        ),
        (stats.left_pending, "ops left pending: run apply again"),
        (
            stats.abandoned_in_flight,
            "ops abandoned in flight by the stop: in doubt, resolved by the next run",
        ),
    ];
    for (n, what) in notes.into_iter().filter(|(n, _)| *n > 0) {
        crate::say!("       {n} {what}");
    }
    if let Some(signal) = stats.stopped_by_signal {
        crate::say!("       stopped by {signal}");
    }
    if let Some(reason) = &stats.gave_up {
        crate::say!("       gave up: {reason}");
    }
    if stats.rate_limit_pause_secs > 0.0 {
        crate::say!(
            "       paused {:.1} s in total after 429s",
            stats.rate_limit_pause_secs
        );
    }
    let pacing = &stats.pacing;
    if pacing.slowdowns > 0 && pacing.settled_rate <= 0.0 {
        // No request passed after the first 429: no rate is known to avoid them, and one
        // derived from the pacing's own cuts would be a guess presented as a finding.
        crate::say!(
            "       paced down {} times by 429s (configured {}, lowest {}); the API accepted no \
             request after its first 429, so no requests_per_second can be advised",
            pacing.slowdowns,
            human::rate(pacing.configured_rate),
            human::rate(pacing.lowest_rate),
        );
    } else if pacing.slowdowns > 0 {
        // What the operator needs to stop the 429s: the rate the API took, not ours.
        // A little under the settled rate: the pacing probed above the limit to find it.
        let advice = pacing.settled_rate * 0.95;
        let advice = if advice >= 1.0 {
            advice.floor()
        } else {
            (advice * 100.0).floor().max(1.0) / 100.0
        };
        crate::say!(
            "       paced down {} times by 429s: settled at {} (configured {}, lowest {}); \
             requests_per_second = {advice} would avoid them",
            pacing.slowdowns,
            human::rate(pacing.settled_rate),
            human::rate(pacing.configured_rate),
            human::rate(pacing.lowest_rate),
        );
    }
}

/// Records a run that sent nothing (plan, dry run, refusal) and writes its reports.
fn finish_without_apply(
    config: &Config,
    ledger: &Ledger,
    run_id: i64,
    outcome: &str,
    planned: &Planned,
    refusal: Option<&ThresholdExceeded>,
) -> Result<(serde_json::Value, PathBuf)> {
    let summary = summary_json(run_id, outcome, planned, None, refusal);
    ledger.finish_run(run_id, outcome, &summary)?;
    let dir = report::write_run(
        &report::run_dir(&config.runs_dir(), run_id),
        &summary,
        &planned.outcome.rejects,
        &mut |_| Ok(()),
    )?;
    prune(config, ledger);
    Ok((summary, dir))
}

/// Removes the report folders of runs that sent nothing beyond `[reports] keep_runs`. A
/// failure is a warning: a report folder too many must not fail a night.
fn prune(config: &Config, ledger: &Ledger) {
    let quiet = match ledger.quiet_runs() {
        Ok(quiet) => quiet,
        Err(error) => {
            tracing::warn!("old report folders not removed: {error:#}");
            return;
        }
    };
    let removed = report::prune_runs(&config.runs_dir(), &quiet, config.reports.keep_runs);
    if !removed.is_empty() {
        tracing::info!(
            "removed {} report folder(s) of runs that sent nothing (reports.keep_runs = {}), the oldest {}",
            removed.len(),
            config.reports.keep_runs,
            human::path(&removed[0])
        );
    }
}

/// Opens (and locks, and migrates) the config's ledger, bound to the config's target.
fn open_ledger(config: &Config) -> Result<Ledger> {
    let ledger = Ledger::open(&config.ledger.path)?;
    ledger.bind_target(config.target.kind().name())?;
    Ok(ledger)
}

/// `rostersync plan`.
pub fn plan(config_path: &Path, options: &PlanOptions) -> Result<Finish> {
    // Sends nothing, so the client secret is not asked for.
    let config = Config::load_without_secret(config_path)?;
    let mut ledger = open_ledger(&config)?;
    let (run_id, planned) = plan_step(&config, &mut ledger, "plan", options)?;
    let (summary, dir) = finish_without_apply(&config, &ledger, run_id, "planned", &planned, None)?;
    if options.json {
        crate::say!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_plan(&planned);
        crate::say!("reports: {}", human::path(&dir));
    }
    Ok(if planned.outcome.rejects.is_empty() {
        Finish::Converged
    } else {
        Finish::Incomplete
    })
}

/// `rostersync apply`.
pub async fn apply(config_path: &Path) -> Result<Finish> {
    let config = Config::load(config_path)?;
    let ledger = open_ledger(&config)?;
    let run_id = ledger.begin_run("apply")?;
    let ledger = Arc::new(Mutex::new(ledger));
    execute(&config, ledger, run_id, None).await
}

/// `rostersync run`: plan and apply in one go, the cron entry point.
pub async fn run(config_path: &Path, options: &PlanOptions) -> Result<Finish> {
    // A dry run sends nothing, so the client secret is not asked for.
    let config = if options.dry_run {
        Config::load_without_secret(config_path)?
    } else {
        Config::load(config_path)?
    };
    run_with(&config, options).await
}

/// `run` on an already loaded configuration (the demo builds its own).
pub async fn run_with(config: &Config, options: &PlanOptions) -> Result<Finish> {
    let mut ledger = open_ledger(config)?;
    let command = if options.dry_run {
        "run --dry-run"
    } else {
        "run"
    };
    let (run_id, planned) = plan_step(config, &mut ledger, command, options)?;
    print_plan(&planned);
    if options.dry_run {
        let (_, dir) = finish_without_apply(config, &ledger, run_id, "dry-run", &planned, None)?;
        crate::say!("dry run: nothing sent; reports: {}", human::path(&dir));
        return Ok(if planned.outcome.rejects.is_empty() {
            Finish::Converged
        } else {
            Finish::Incomplete
        });
    }
    execute(config, Arc::new(Mutex::new(ledger)), run_id, Some(planned)).await
}

async fn execute(
    config: &Config,
    ledger: Arc<Mutex<Ledger>>,
    run_id: i64,
    planned: Option<Planned>,
) -> Result<Finish> {
    // Before the first request: every page the plan committed goes into the database file,
    // synced, and SQLite checkpoints on its own again during apply.
    ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .make_durable()?;
    let stats = config
        .target
        .apply(&config.api, ledger.clone(), run_id)
        .await?;
    print_apply(&stats);
    let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
    let rejected = planned.as_ref().map_or(0, |p| p.outcome.rejects.len());
    // `apply` after a run that left failures: nothing new failed, but the plan it resumes
    // has not converged, and saying "converged" (exit 0) would hide it.
    let left_over = if planned.is_none() {
        ledger.unsettled_in_current_plan()?
    } else {
        0
    };
    if left_over > 0 {
        crate::say!(
            "       {left_over} ops of the current plan are failed or in doubt (see errors.csv of the earlier runs and `status`)"
        );
    }
    let incomplete = rejected > 0
        || left_over > 0
        || stats.count("failed") > 0
        || stats.count("in_doubt") > 0
        || stats.left_pending > 0
        || stats.abandoned_in_flight > 0
        || stats.interrupted_by_signal
        || stats.gave_up.is_some();
    let outcome = if stats.fatal.is_some() {
        "failed"
    } else if stats.interrupted_by_signal || stats.gave_up.is_some() {
        "stopped"
    } else if incomplete {
        "incomplete"
    } else {
        "converged"
    };
    let summary = match &planned {
        Some(p) => summary_json(run_id, outcome, p, Some(&stats), None),
        None => {
            json!({"run_id": run_id, "outcome": outcome, "finished_at": chrono::Utc::now().to_rfc3339(), "apply": stats})
        }
    };
    ledger.finish_run(run_id, outcome, &summary)?;
    let rejects = planned.as_ref().map_or(&[][..], |p| &p.outcome.rejects[..]);
    let dir = report::write_run(
        &report::run_dir(&config.runs_dir(), run_id),
        &summary,
        rejects,
        &mut |write| ledger.for_each_finished(run_id, write),
    )?;
    crate::say!("reports: {}", human::path(&dir));
    prune(config, &ledger);
    // The next night's plan starts from the index file rather than reading every user (a
    // stopped run leaves that to the next plan: it is told to end within seconds).
    if !stats.interrupted_by_signal {
        ledger.refresh_index();
    }
    if let Some(fatal) = &stats.fatal {
        // The run is recorded and reported; the command still fails (exit 1).
        anyhow::bail!(
            "{fatal} (API {}); the ops not sent stay pending for the next run",
            config.api.base_url
        );
    }
    Ok(if incomplete {
        Finish::Incomplete
    } else {
        Finish::Converged
    })
}

pub use crate::status::status;

/// `rostersync events serve`: see [`crate::targets::serve_events`]. Needs no client secret
/// (it calls no API), only the credentials the publisher sends.
pub async fn events_serve(
    config_path: &Path,
    options: crate::targets::ServeOptions,
) -> Result<Finish> {
    let config = Config::load_without_secret(config_path)?;
    crate::targets::serve_events(&config, options).await?;
    Ok(Finish::Converged)
}

/// `rostersync completions`: see [`crate::completions::report`].
pub fn completions(
    config_path: &Path,
    since: Option<&str>,
    format: crate::completions::Format,
) -> Result<Finish> {
    let config = Config::load_without_secret(config_path)?;
    let since = since
        .map(|raw| crate::clock::parse(raw).map(|at| at.timestamp_millis()))
        .transpose()
        .map_err(|e| e.context("--since"))?;
    let catalog = catalog_of(&config)?;
    let now = crate::clock::now_ms()?;
    let (ledger, store) = crate::completions::open(&config)?;
    if store.is_none() {
        eprintln!(
            "no learning event received yet ({} does not exist)",
            human::path(&config.events.store)
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let counts = match crate::completions::report(
        &config,
        &catalog,
        ledger.as_ref(),
        store.as_ref(),
        crate::completions::When { since, now },
        format,
        &mut out,
    ) {
        Ok(counts) => counts,
        // The reader went away (`| head`): not an error of ours.
        Err(e) if human::is_broken_pipe(&e) => return Ok(Finish::Converged),
        Err(e) => return Err(e),
    };
    eprintln!(
        "{} completion(s): {} current, {} due soon, {} overdue, {} without a recertification rule; {} assigned and never completed; {} event(s) matching nobody",
        counts.completions,
        counts.current,
        counts.due_soon,
        counts.overdue,
        counts.no_policy,
        counts.not_completed,
        counts.unmatched
    );
    Ok(Finish::Converged)
}

/// `rostersync demo`: see [`crate::targets::demo`].
pub use crate::targets::demo;
