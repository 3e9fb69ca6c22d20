//! `rostersync status`: what the ledger says is left to do, what each recent run did, and
//! what the operator can do next. Sends nothing, needs no client secret, and reads the
//! ledger without its lock, so it works while a run is under way.
//!
//! Owns what is shown and the advice. Counting is the ledger's ([`crate::ledger::history`]):
//! the ops of the current plan, each person once, plus ops in doubt from older plans; a
//! failure of an older plan is shown on the run that had it, not again as work left. Must
//! never advise a command that would not help (`apply` does not send a failed op again: a
//! new plan does).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::commands::Finish;
use crate::config::Config;
use crate::human;
use crate::ledger::{Ledger, LedgerStatus, OpCount, RunRow};
use crate::report;

/// One run as `status` shows it.
#[derive(Debug, Clone, Serialize)]
struct RunView {
    id: i64,
    command: String,
    started_at: String,
    finished_at: Option<String>,
    outcome: String,
    /// Ops the run planned (plan, run, dry run, refused plan).
    planned: Option<u64>,
    /// Ops the run finished, by outcome: from its summary, or from the journal for a run
    /// killed before writing one.
    done: u64,
    failed: u64,
    in_doubt: u64,
    /// The run went on to apply (its counts above are of what it sent).
    applied: bool,
    /// Roster rows rejected, for a run that read a roster.
    rejected: Option<u64>,
    roster_broken: bool,
    /// Thresholds the plan went over (`op`, `planned`, `limit`, `allow`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    refused: Vec<Value>,
    /// The run's report folder; `None` once removed (see `[reports] keep_runs`).
    report_dir: Option<String>,
}

/// What `status --json` prints.
#[derive(Debug, Serialize)]
struct StatusView {
    ledger: String,
    users: i64,
    active: i64,
    run_under_way: bool,
    /// The run that stored the current plan and its plan.csv.
    plan_run: Option<i64>,
    plan_file: Option<String>,
    /// Ops of the current plan by state and kind (`users`: people), then ops sending or in
    /// doubt from older plans.
    ops: Vec<OpCount>,
    users_not_done: i64,
    runs: Vec<RunView>,
    /// What to do next, most pressing first.
    next: Vec<String>,
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn run_view(run: &RunRow, runs_dir: &Path, running: bool) -> RunView {
    let summary = run.summary.as_ref();
    let field = |pointer: &str| {
        summary
            .and_then(|s| s.pointer(pointer))
            .filter(|v| !v.is_null())
    };
    let planned = field("/plan/ops")
        .and_then(Value::as_object)
        .map(|ops| ops.values().map(count).sum());
    let (done, failed, in_doubt, applied) = match field("/apply/ops").and_then(Value::as_object) {
        Some(kinds) => {
            let sum = |state: &str| kinds.values().map(|k| count(&k[state])).sum::<u64>();
            (sum("done"), sum("failed"), sum("in_doubt"), true)
        }
        None => {
            let journal = &run.journal;
            let touched = journal.done + journal.failed + journal.in_doubt > 0;
            (
                journal.done as u64,
                journal.failed as u64,
                journal.in_doubt as u64,
                touched || field("/apply").is_some(),
            )
        }
    };
    let dir = report::run_dir(runs_dir, run.id);
    let outcome = match (&run.outcome, running) {
        (Some(outcome), _) => outcome.clone(),
        (None, true) => "running".to_owned(),
        // No run holds the lock: it was killed (the next run that opens the ledger records
        // it so).
        (None, false) => "interrupted".to_owned(),
    };
    RunView {
        id: run.id,
        command: run.command.clone(),
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
        outcome,
        planned,
        done,
        failed,
        in_doubt,
        applied,
        rejected: field("/roster/rejected").map(count),
        roster_broken: field("/roster/broken").is_some(),
        refused: field("/refused")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        report_dir: dir.is_dir().then(|| human::path(&dir)),
    }
}

/// The ops of `status` whose state starts with `state` (`in_doubt` takes in the ops a killed
/// run left sending), summed; of the current plan only when `current`.
fn ops_in(status: &LedgerStatus, state: &str, current: Option<bool>) -> (i64, i64) {
    status
        .ops
        .iter()
        .filter(|o| o.state.starts_with(state) && current.is_none_or(|c| o.current_plan == c))
        .fold((0, 0), |(ops, users), o| (ops + o.ops, users + o.users))
}

/// What the operator can do next, from the ledger's state and the last runs.
fn advice(
    status: &LedgerStatus,
    runs: &[RunView],
    running: bool,
    plan_file: Option<&str>,
) -> Vec<String> {
    let mut next = Vec::new();
    if running {
        next.push(
            "a run is under way: run `rostersync status` again when it has finished".to_owned(),
        );
    }
    // Ops a killed run left sending were renamed in doubt by the caller; ones still sending
    // belong to the run under way.
    let (doubt, _) = ops_in(status, "in_doubt", None);
    if doubt > 0 {
        next.push(format!(
            "{doubt} op(s) are in doubt (their answer was lost or the run was killed): \
             `rostersync apply` resolves them first (by reading the user back, or by sending \
             again once that is safe)"
        ));
    }
    let (pending, _) = ops_in(status, "pending", Some(true));
    if pending > 0 && !running {
        next.push(format!(
            "{pending} op(s) of the current plan are pending: `rostersync apply` sends them{}",
            plan_file.map_or_else(String::new, |f| format!(" (who and what: {f})"))
        ));
    }
    let (failed, failed_users) = ops_in(status, "failed", Some(true));
    if failed > 0 {
        let errors = runs
            .iter()
            .find(|r| r.failed > 0)
            .and_then(|r| r.report_dir.as_ref())
            .map_or_else(String::new, |d| format!(" (see errors.csv in {d})"));
        next.push(format!(
            "{failed} op(s) of the current plan failed for {failed_users} person(s){errors}: once the \
             cause is fixed, `rostersync run` plans them again (`apply` does not resend a failed op)"
        ));
    }
    // The newest run that read a roster says what is wrong with the roster or the plan.
    if let Some(last) = runs
        .iter()
        .find(|r| r.command.starts_with("plan") || r.command.starts_with("run"))
    {
        let folder = |file: &str| {
            last.report_dir
                .as_ref()
                .map_or_else(String::new, |d| format!(" (see {file} in {d})"))
        };
        if !last.refused.is_empty() {
            let flags: Vec<&str> = last
                .refused
                .iter()
                .filter_map(|b| b["allow"].as_str())
                .collect();
            next.push(format!(
                "run #{} was refused by a safety threshold{}: check who would be changed; if it \
                 is intended, run again with {}",
                last.id,
                folder("plan.csv"),
                flags.join(" ")
            ));
        }
        if last.roster_broken {
            next.push(format!(
                "the roster of run #{} was broken{}: fix the file; nobody is deactivated until it \
                 reads to its end",
                last.id,
                folder("rejects.csv")
            ));
        } else if let Some(rejected) = last.rejected.filter(|&n| n > 0) {
            next.push(format!(
                "{rejected} roster row(s) were rejected in run #{}{}: fix them in the roster; their \
                 people are left as they were until then",
                last.id,
                folder("rejects.csv")
            ));
        }
    }
    if next.is_empty() {
        next.push("nothing to do: the platform matches the last plan".to_owned());
    }
    next
}

/// A run's counts in a few words.
fn counts(run: &RunView) -> String {
    let mut parts = Vec::new();
    if !run.refused.is_empty() {
        let over: Vec<String> = run
            .refused
            .iter()
            .map(|b| {
                format!(
                    "{} {} over the limit of {}",
                    b["planned"],
                    b["op"].as_str().unwrap_or("?"),
                    b["limit"]
                )
            })
            .collect();
        parts.push(format!("refused: {}", over.join(", ")));
    } else if let Some(planned) = run.planned {
        parts.push(format!("{planned} ops planned"));
    }
    if run.applied {
        parts.push(format!(
            "{} done, {} failed, {} in doubt",
            run.done, run.failed, run.in_doubt
        ));
    }
    if let Some(rejected) = run.rejected {
        parts.push(format!(
            "{rejected} rejected{}",
            if run.roster_broken {
                ", roster broken"
            } else {
                ""
            }
        ));
    }
    parts.join("; ")
}

/// An RFC 3339 time as `2025-05-01 02:15:07 UTC` (the ledger keeps nanoseconds).
fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        },
    )
}

/// `rostersync status`.
pub fn status(config_path: &Path, json_output: bool) -> Result<Finish> {
    let config = Config::load_without_secret(config_path)?;
    let ledger = Ledger::open_read_only(&config.ledger.path)?;
    let mut status = ledger.status()?;
    let running = Ledger::held_by_a_run(&config.ledger.path);
    if !running {
        // Left `sending` by a killed run: in doubt, and the next run records them so.
        for op in status.ops.iter_mut().filter(|o| o.state == "sending") {
            op.state = "in_doubt (interrupted while sending)".to_owned();
        }
    }
    let runs_dir = config.runs_dir();
    let runs: Vec<RunView> = status
        .runs
        .iter()
        .map(|r| run_view(r, &runs_dir, running))
        .collect();
    let plan_file = status.plan_run.and_then(|id| {
        let file = report::run_dir(&runs_dir, id).join("plan.csv");
        file.is_file().then(|| human::path(&file))
    });
    let next = advice(&status, &runs, running, plan_file.as_deref());
    let view = StatusView {
        ledger: human::path(&config.ledger.path),
        users: status.users,
        active: status.active,
        run_under_way: running,
        plan_run: status.plan_run,
        plan_file,
        ops: status.ops,
        users_not_done: status.users_not_done,
        runs,
        next,
    };
    if json_output {
        crate::say!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print(&view);
    }
    Ok(Finish::Converged)
}

fn print(view: &StatusView) {
    crate::say!(
        "ledger {}: {} users on the platform, {} active",
        view.ledger,
        view.users,
        view.active
    );
    match view.plan_run {
        Some(id) => crate::say!(
            "current plan: stored by run #{id}; {} person(s) with an op not done{}",
            view.users_not_done,
            view.plan_file
                .as_ref()
                .map_or_else(String::new, |f| format!(" (who and what: {f})"))
        ),
        None => crate::say!("current plan: none stored yet"),
    }
    for op in view.ops.iter().filter(|o| o.state != "done") {
        crate::say!(
            "  {:>8} {} {} ({} person(s){})",
            op.ops,
            op.kind,
            op.state,
            op.users,
            if op.current_plan {
                ""
            } else {
                ", from an older plan"
            }
        );
    }
    let done: i64 = view
        .ops
        .iter()
        .filter(|o| o.state == "done" && o.current_plan)
        .map(|o| o.ops)
        .sum();
    if done > 0 {
        crate::say!("  {done:>8} done");
    }
    crate::say!("last runs:");
    for run in &view.runs {
        crate::say!(
            "  #{:<5} {:<14} {}  {:<12} {}",
            run.id,
            run.command,
            when(&run.started_at),
            run.outcome,
            counts(run)
        );
        match &run.report_dir {
            Some(dir) => crate::say!("         reports: {dir}"),
            None => crate::say!("         reports: removed (over [reports] keep_runs)"),
        }
    }
    crate::say!("next:");
    for line in &view.next {
        crate::say!("  - {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(command: &str, summary: Value) -> RunView {
        let row = RunRow {
            id: 7,
            command: command.into(),
            started_at: "2025-05-01T02:15:07.123456789+00:00".into(),
            finished_at: None,
            outcome: Some("x".into()),
            stored_current_plan: false,
            journal: Default::default(),
            summary: Some(summary),
        };
        run_view(&row, Path::new("/nonexistent/runs"), false)
    }

    fn status(ops: Vec<OpCount>) -> LedgerStatus {
        LedgerStatus {
            users: 3,
            active: 3,
            plan_run: Some(7),
            ops,
            users_not_done: 0,
            runs: vec![],
        }
    }

    fn ops(state: &str, n: i64) -> OpCount {
        OpCount {
            state: state.into(),
            kind: "create".into(),
            ops: n,
            users: n,
            current_plan: true,
        }
    }

    #[test]
    fn a_run_shows_its_counts_from_its_summary() {
        let run = view(
            "run",
            serde_json::json!({
                "roster": {"rejected": 1, "broken": null},
                "plan": {"ops": {"create": 3, "update": 0}},
                "apply": {"ops": {"create": {"done": 1, "failed": 2}}},
            }),
        );
        assert_eq!(
            (run.planned, run.done, run.failed, run.in_doubt),
            (Some(3), 1, 2, 0)
        );
        assert_eq!(
            counts(&run),
            "3 ops planned; 1 done, 2 failed, 0 in doubt; 1 rejected"
        );
        assert_eq!(run.report_dir, None, "no folder there");
        assert_eq!(when(&run.started_at), "2025-05-01 02:15:07 UTC");
    }

    #[test]
    fn advice_names_the_command_that_helps() {
        let failed = view(
            "run",
            serde_json::json!({"roster": {"rejected": 0}, "apply": {"ops": {"create": {"failed": 2}}}}),
        );
        let next = advice(&status(vec![ops("failed", 2)]), &[failed], false, None);
        assert_eq!(next.len(), 1, "{next:?}");
        assert!(
            next[0].contains("`rostersync run` plans them again"),
            "{next:?}"
        );

        let refused = view(
            "run",
            serde_json::json!({"roster": {"rejected": 0}, "refused": [
                {"op": "deactivate", "planned": 4, "limit": 3, "allow": "--allow-deactivations 4"}
            ]}),
        );
        assert_eq!(
            counts(&refused),
            "refused: 4 deactivate over the limit of 3; 0 rejected"
        );
        let next = advice(&status(vec![]), &[refused], false, None);
        assert!(next[0].contains("--allow-deactivations 4"), "{next:?}");

        let killed = OpCount {
            state: "in_doubt (interrupted while sending)".into(),
            ..ops("x", 1)
        };
        let next = advice(&status(vec![killed]), &[], false, None);
        assert!(next[0].contains("1 op(s) are in doubt"), "{next:?}");

        let pending = advice(
            &status(vec![ops("pending", 5)]),
            &[],
            false,
            Some("runs/run-000007/plan.csv"),
        );
        assert!(
            pending[0].contains("`rostersync apply` sends them"),
            "{pending:?}"
        );

        let rejected = view(
            "plan",
            serde_json::json!({"roster": {"rejected": 2, "broken": null}}),
        );
        let next = advice(&status(vec![]), &[rejected], false, None);
        assert!(
            next[0].contains("2 roster row(s) were rejected"),
            "{next:?}"
        );

        let quiet = advice(&status(vec![ops("done", 5)]), &[], false, None);
        assert!(quiet[0].starts_with("nothing to do"), "{quiet:?}");
    }
}
