//! The ledger's history as `status` and the pruning of report folders read it: the ops of the
//! current plan by state (each user counted once), what each run did, and which runs sent
//! nothing.
//!
//! Owns these reads and what they count. Ops of older plans that failed are history (the run
//! that failed them says so), not work left: a failed op leaves its user's state as it was,
//! so the next plan plans the change again, and counting both would show one person's
//! failure twice. Ops still sending or in doubt count whichever plan they came from: apply
//! resolves them first. Never writes.

use anyhow::{Context, Result};
use rusqlite::params;
use serde::Serialize;

use super::Ledger;

/// The first op id of the current plan (the newest stored one), as [`super::PENDING`] has it.
const CURRENT_PLAN_FROM: &str = "(SELECT coalesce(max(ops_from), 0) FROM runs)";

/// The current plan: the newest stored, and of plans with no ops, the later.
pub(super) struct CurrentPlan {
    /// Its first op id (`runs.ops_from`).
    pub ops_from: i64,
    /// The run that stored it.
    pub run: i64,
}

pub(super) fn current_plan(conn: &rusqlite::Connection) -> rusqlite::Result<Option<CurrentPlan>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT ops_from, id FROM runs WHERE ops_from IS NOT NULL ORDER BY ops_from DESC, id DESC LIMIT 1",
        [],
        |r| {
            Ok(CurrentPlan {
                ops_from: r.get(0)?,
                run: r.get(1)?,
            })
        },
    )
    .optional()
}

/// Runs shown by `status`, newest first.
const RUNS_SHOWN: usize = 10;

/// Ops of one kind in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpCount {
    pub state: String,
    pub kind: String,
    pub ops: i64,
    /// Distinct people those ops are for.
    pub users: i64,
    /// Whether they belong to the current plan (else: sending or in doubt from an older one).
    pub current_plan: bool,
}

/// Ops a run finished, by state, as the journal has them now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub done: i64,
    pub failed: i64,
    pub in_doubt: i64,
}

/// One run as the ledger recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
    /// The run stored the current plan.
    pub stored_current_plan: bool,
    /// Ops whose last journal entry this run wrote (an op in doubt resolved by a later run
    /// counts there).
    pub journal: Tally,
    /// The run's summary.json as written at its end (`None` for a run that was killed).
    #[serde(skip)]
    pub summary: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerStatus {
    /// Users the platform holds (a UUID is recorded) and how many of them are active.
    pub users: i64,
    pub active: i64,
    /// The run that stored the current plan, if any plan was stored.
    pub plan_run: Option<i64>,
    /// Ops of the current plan by state and kind, then ops sending or in doubt left by older
    /// plans.
    pub ops: Vec<OpCount>,
    /// People with an op of the current plan not done, or an op in doubt from an older plan.
    pub users_not_done: i64,
    /// The last runs, newest first.
    pub runs: Vec<RunRow>,
}

impl Ledger {
    /// What `status` shows.
    pub fn status(&self) -> Result<LedgerStatus> {
        self.read_status().with_context(|| self.named())
    }

    fn read_status(&self) -> Result<LedgerStatus> {
        let mut ops = Vec::new();
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT state, kind, count(*), count(DISTINCT key), 1 FROM ops
              WHERE id >= {CURRENT_PLAN_FROM} GROUP BY state, kind
             UNION ALL
             SELECT state, kind, count(*), count(DISTINCT key), 0 FROM ops
              WHERE (state = 'sending' OR state = 'in_doubt') AND id < {CURRENT_PLAN_FROM}
              GROUP BY state, kind
             ORDER BY 5 DESC, 1, 2"
        ))?;
        let rows = statement.query_map([], |r| {
            Ok(OpCount {
                state: r.get(0)?,
                kind: r.get(1)?,
                ops: r.get(2)?,
                users: r.get(3)?,
                current_plan: r.get(4)?,
            })
        })?;
        for row in rows {
            ops.push(row?);
        }
        let users_not_done: i64 = self.conn.query_row(
            &format!(
                "SELECT count(DISTINCT key) FROM ops
                  WHERE (id >= {CURRENT_PLAN_FROM} AND state <> 'done')
                     OR ((state = 'sending' OR state = 'in_doubt') AND id < {CURRENT_PLAN_FROM})"
            ),
            [],
            |r| r.get(0),
        )?;
        let (users, active): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(active), 0) FROM users WHERE uuid IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let plan_run = self.current_plan_run()?;
        let mut runs = Vec::new();
        let mut statement = self.conn.prepare_cached(
            "SELECT id, command, started_at, finished_at, outcome, summary FROM runs
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([RUNS_SHOWN as i64], |r| {
            let summary: Option<String> = r.get(5)?;
            let id: i64 = r.get(0)?;
            Ok(RunRow {
                id,
                command: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                outcome: r.get(4)?,
                stored_current_plan: plan_run == Some(id),
                journal: Tally::default(),
                summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
            })
        })?;
        for row in rows {
            runs.push(row?);
        }
        for run in &mut runs {
            run.journal = self.tally(run.id)?;
        }
        Ok(LedgerStatus {
            users,
            active,
            plan_run,
            ops,
            users_not_done,
            runs,
        })
    }

    /// The run whose plan is the current one.
    fn current_plan_run(&self) -> Result<Option<i64>> {
        Ok(current_plan(&self.conn)?.map(|plan| plan.run))
    }

    fn tally(&self, run_id: i64) -> Result<Tally> {
        let mut tally = Tally::default();
        let mut statement = self.conn.prepare_cached(
            "SELECT state, count(*) FROM ops WHERE done_run_id = ?1 GROUP BY state",
        )?;
        let rows = statement.query_map(params![run_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (state, count) = row?;
            match state.as_str() {
                "done" => tally.done = count,
                "failed" => tally.failed = count,
                "in_doubt" | "sending" => tally.in_doubt += count,
                _ => {}
            }
        }
        Ok(tally)
    }

    /// Finished runs that sent nothing and changed nothing, oldest first: plans, dry runs,
    /// refused plans, nights without a change, runs that failed before sending. Their report
    /// folders may be removed; the folders of runs that sent requests are the audit trail
    /// and are never listed, nor is a run killed before it wrote its summary, nor the run
    /// whose plan is the current one (its plan.csv says what `apply` will send).
    pub fn quiet_runs(&self) -> Result<Vec<i64>> {
        let plan_run = self.current_plan_run().with_context(|| self.named())?;
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT r.id FROM runs r
                  WHERE r.outcome IS NOT NULL AND r.summary IS NOT NULL
                    AND CASE WHEN json_valid(r.summary)
                             THEN coalesce(json_extract(r.summary, '$.apply.requests'), 0) = 0
                             ELSE 0 END
                    AND NOT EXISTS (SELECT 1 FROM ops o WHERE o.done_run_id = r.id)
                    AND r.id <> ?1
                  ORDER BY r.id",
            )
            .with_context(|| self.named())?;
        let ids = statement
            .query_map([plan_run.unwrap_or(-1)], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()
            .with_context(|| self.named())?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Entry, NewOp, OpKind, OpPayload};
    use crate::plan::PlanIo;

    fn create(key: &str) -> NewOp {
        NewOp {
            key: key.into(),
            seq: 0,
            kind: OpKind::Create,
            payload: OpPayload {
                remote_id: None,
                profile: Some(Default::default()),
                items: vec![],
                profile_hash: 1,
                row: None,
                completions: Vec::new(),
            },
        }
    }

    /// Stores a plan of creates for `keys` as a `run`, and fails all of them.
    fn plan_and_fail(ledger: &mut Ledger, keys: &[&str]) -> i64 {
        let run = ledger.begin_run("run").unwrap();
        ledger
            .write_plan(run, |tx| {
                for key in keys {
                    tx.push(create(key))?;
                }
                tx.commit()
            })
            .unwrap();
        let entries: Vec<Entry> = ledger
            .pending_ops()
            .unwrap()
            .iter()
            .map(|op| Entry::Failed {
                op_id: op.id,
                http_status: Some(400),
                message: "refused".into(),
            })
            .collect();
        ledger.journal(run, &entries).unwrap();
        ledger
            .finish_run(
                run,
                "incomplete",
                &serde_json::json!({"apply": {"requests": 2}}),
            )
            .unwrap();
        run
    }

    /// Issue 10: two creates failed on two nights showed as "4 create failed".
    #[test]
    fn a_user_failed_on_two_nights_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        plan_and_fail(&mut ledger, &["A", "B"]);
        let second = plan_and_fail(&mut ledger, &["A", "B"]);
        let status = ledger.status().unwrap();
        assert_eq!(
            status.ops,
            vec![OpCount {
                state: "failed".into(),
                kind: "create".into(),
                ops: 2,
                users: 2,
                current_plan: true,
            }]
        );
        assert_eq!(status.users_not_done, 2);
        assert_eq!(status.plan_run, Some(second));
        assert_eq!(status.runs[0].journal.failed, 2);
        assert_eq!(status.runs[1].journal.failed, 2);
    }

    #[test]
    fn only_finished_runs_that_sent_nothing_are_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let dry = ledger.begin_run("run --dry-run").unwrap();
        ledger
            .finish_run(dry, "dry-run", &serde_json::json!({"plan": {}}))
            .unwrap();
        let sent = plan_and_fail(&mut ledger, &["A"]);
        let quiet_night = ledger.begin_run("run").unwrap();
        ledger
            .finish_run(
                quiet_night,
                "converged",
                &serde_json::json!({"apply": {"requests": 0}}),
            )
            .unwrap();
        let _killed = ledger.begin_run("run").unwrap();
        let unreadable = ledger.begin_run("run").unwrap();
        ledger
            .conn
            .execute(
                "UPDATE runs SET outcome = 'converged', summary = '{not json' WHERE id = ?1",
                [unreadable],
            )
            .unwrap();
        // The current plan's run (`sent`) is never listed, it sent requests anyway; nor is a
        // run whose summary cannot be read.
        assert_eq!(ledger.quiet_runs().unwrap(), vec![dry, quiet_night]);
        let _ = sent;
    }
}
