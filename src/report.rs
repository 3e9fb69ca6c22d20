//! The files of a run, in `runs/<run-id>/` beside the ledger: `summary.json`, `success.csv`,
//! `errors.csv` and `rejects.csv`, plus the human summary printed at the end.
//!
//! Owns their formats. Every CSV cell is guarded against spreadsheet formula injection (a
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
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// The folder of one run.
pub fn run_dir(runs: &Path, run_id: i64) -> PathBuf {
    runs.join(format!("run-{run_id:06}"))
}

fn write_csv(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<()> {
    let mut writer = csv::Writer::from_writer(fsmode::create_private_new(path)?);
    let context = || format!("cannot write {}", path.display());
    writer.write_record(header).with_context(context)?;
    for row in rows {
        writer
            .write_record(row.iter().map(|c| guard(c)))
            .with_context(context)?;
    }
    writer
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes the run's files; returns the folder.
pub fn write_run(
    dir: &Path,
    summary: &serde_json::Value,
    rejects: &[Reject],
    finished: &[FinishedOp],
) -> Result<PathBuf> {
    // runs/ first: an older rostersync (or a umask of 022) may have left it open, and it
    // holds every earlier run's reports.
    if let Some(runs) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsmode::ensure_private_dir(runs)?;
    }
    fsmode::ensure_private_dir(dir)?;
    let json = serde_json::to_string_pretty(summary)?;
    let summary_path = dir.join("summary.json");
    fsmode::create_private_new(&summary_path)?
        .write_all((json + "\n").as_bytes())
        .with_context(|| format!("cannot write {}", summary_path.display()))?;
    write_csv(
        &dir.join("rejects.csv"),
        &["line", "column", "reason", "original_row"],
        rejects.iter().map(|r| {
            vec![
                r.line.to_string(),
                r.column.clone(),
                r.reason.clone(),
                r.original.clone(),
            ]
        }),
    )?;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    write_csv(
        &dir.join("success.csv"),
        &["external_id", "op", "uuid", "http_status", "note"],
        finished.iter().filter(|o| o.state == "done").map(|o| {
            vec![
                o.key.clone(),
                o.kind.clone(),
                opt(&o.uuid),
                o.http_status.map(|s| s.to_string()).unwrap_or_default(),
                opt(&o.message),
            ]
        }),
    )?;
    write_csv(
        &dir.join("errors.csv"),
        &["external_id", "op", "state", "http_status", "message"],
        finished.iter().filter(|o| o.state != "done").map(|o| {
            vec![
                o.key.clone(),
                o.kind.clone(),
                o.state.clone(),
                o.http_status.map(|s| s.to_string()).unwrap_or_default(),
                opt(&o.message),
            ]
        }),
    )?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(guard("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(guard("+1"), "'+1");
        assert_eq!(guard("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(guard("Ana"), "Ana");
        assert_eq!(guard(""), "");
    }
}
