//! The files of a run, in `runs/<run-id>/` beside the ledger: `summary.json`, `success.csv`,
//! `errors.csv` and `rejects.csv` (`plan.csv` is [`crate::plan_csv`]'s), and which run
//! folders are removed once there are more than `[reports] keep_runs` of them.
//!
//! Owns their formats and the folders' lifetime: only folders of runs that sent nothing are
//! ever removed, and only ones named `run-NNNNNN` that are real folders (never a symlink). Every CSV cell is guarded against spreadsheet formula injection (a
//! roster is operator data that someone will open in Excel). Never writes a secret: nothing
//! that reaches this module holds one. Never lets another account read them: the reports
//! hold names, emails and raw roster rows, so `runs/` and each run folder are 0700 and every
//! file is created 0600 (see [`crate::fsmode`]), never through a symlink found in its place.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsmode;
use crate::ingest::roster::Reject;
use crate::ledger::FinishedOp;

/// A cell that a spreadsheet would run as a formula gets a leading apostrophe.
pub fn guard(cell: &str) -> String {
    guarded(cell).into_owned()
}

/// [`guard`] without a copy of the cells that need none (nearly all of them).
pub fn guarded(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The folder of one run.
pub fn run_dir(runs: &Path, run_id: i64) -> PathBuf {
    runs.join(format!("run-{run_id:06}"))
}

fn csv_writer(path: &Path, header: &[&str]) -> Result<csv::Writer<std::fs::File>> {
    let mut writer = csv::Writer::from_writer(fsmode::create_private_new(path)?);
    writer
        .write_record(header)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(writer)
}

fn write_row(writer: &mut csv::Writer<std::fs::File>, path: &Path, row: &[&str]) -> Result<()> {
    writer
        .write_record(row.iter().map(|c| guard(c)))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn finish_csv(mut writer: csv::Writer<std::fs::File>, path: &Path) -> Result<()> {
    writer
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Creates the run's folder (and `runs/`) 0700, or tightens them.
pub fn prepare_run_dir(dir: &Path) -> Result<()> {
    // runs/ first: an older rostersync (or a umask of 022) may have left it open, and it
    // holds every earlier run's reports.
    if let Some(runs) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsmode::ensure_private_dir(runs)?;
    }
    fsmode::ensure_private_dir(dir)
}

/// Removes the folders of the runs `quiet` (runs that sent nothing, oldest first) but the
/// newest `keep`. A folder that is not there is skipped; one that is not a real folder (a
/// symlink, a file) is left alone; a folder that cannot be removed is named in a warning and
/// the run goes on (a report folder too many must not fail a night). Returns the folders
/// removed.
pub fn prune_runs(runs: &Path, quiet: &[i64], keep: u64) -> Vec<PathBuf> {
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let doomed = &quiet[..quiet.len().saturating_sub(keep)];
    let mut removed = Vec::new();
    for &run_id in doomed {
        let dir = run_dir(runs, run_id);
        match std::fs::symlink_metadata(&dir) {
            Ok(metadata) if metadata.is_dir() => match std::fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(dir),
                Err(error) => tracing::warn!(
                    "cannot remove the old report folder {}: {error}",
                    crate::human::path(&dir)
                ),
            },
            _ => {}
        }
    }
    removed
}

/// The finished ops of a run, handed one at a time to the writer it is given.
pub type FinishedOps<'a> =
    &'a mut dyn FnMut(&mut dyn FnMut(&FinishedOp) -> Result<()>) -> Result<()>;

/// Writes the run's files; returns the folder. The finished ops are streamed into
/// success.csv and errors.csv, never held.
pub fn write_run(
    dir: &Path,
    summary: &serde_json::Value,
    rejects: &[Reject],
    finished: FinishedOps<'_>,
) -> Result<PathBuf> {
    prepare_run_dir(dir)?;
    let json = serde_json::to_string_pretty(summary)?;
    let summary_path = dir.join("summary.json");
    fsmode::create_private_new(&summary_path)?
        .write_all((json + "\n").as_bytes())
        .with_context(|| format!("cannot write {}", summary_path.display()))?;
    let rejects_path = dir.join("rejects.csv");
    let mut writer = csv_writer(&rejects_path, &["line", "column", "reason", "original_row"])?;
    for r in rejects {
        let line = r.line.to_string();
        write_row(
            &mut writer,
            &rejects_path,
            &[&line, &r.column, &r.reason, &r.original],
        )?;
    }
    finish_csv(writer, &rejects_path)?;
    let success_path = dir.join("success.csv");
    let errors_path = dir.join("errors.csv");
    let mut success = csv_writer(
        &success_path,
        &["external_id", "op", "uuid", "http_status", "note"],
    )?;
    let mut errors = csv_writer(
        &errors_path,
        &["external_id", "op", "state", "http_status", "message"],
    )?;
    finished(&mut |o: &FinishedOp| {
        let status = o.http_status.map(|s| s.to_string()).unwrap_or_default();
        let message = o.message.as_deref().unwrap_or_default();
        if o.state == "done" {
            let uuid = o.uuid.as_deref().unwrap_or_default();
            write_row(
                &mut success,
                &success_path,
                &[&o.key, &o.kind, uuid, &status, message],
            )
        } else {
            write_row(
                &mut errors,
                &errors_path,
                &[&o.key, &o.kind, &o.state, &status, message],
            )
        }
    })?;
    finish_csv(success, &success_path)?;
    finish_csv(errors, &errors_path)?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_oldest_quiet_run_folders_go_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        for id in 1..=6 {
            prepare_run_dir(&run_dir(&runs, id)).unwrap();
            std::fs::write(run_dir(&runs, id).join("summary.json"), "{}").unwrap();
        }
        // Run 2 is a symlink to a folder that must survive.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("keep.txt"), "x").unwrap();
        std::fs::remove_dir_all(run_dir(&runs, 2)).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&elsewhere, run_dir(&runs, 2)).unwrap();
        // Runs 1, 2, 4, 5 and 6 sent nothing (3 did); keep the newest 2.
        let removed = prune_runs(&runs, &[1, 2, 4, 5, 6], 2);
        assert_eq!(removed, vec![run_dir(&runs, 1), run_dir(&runs, 4)]);
        for (id, there) in [(1, false), (3, true), (4, false), (5, true), (6, true)] {
            assert_eq!(run_dir(&runs, id).exists(), there, "run {id}");
        }
        assert!(elsewhere.join("keep.txt").exists());
        assert!(prune_runs(&runs, &[5, 6], 30).is_empty());
    }

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(guard("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(guard("+1"), "'+1");
        assert_eq!(guard("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(guard("Ana"), "Ana");
        assert_eq!(guard(""), "");
    }
}
