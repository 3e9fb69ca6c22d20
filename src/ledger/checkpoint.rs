//! When the ledger's write-ahead log is copied into the database file (a checkpoint) and
//! synced: not when a plan is committed, but before the first request that depends on it.
//!
//! A first import commits a million ops, a few hundred megabytes of pages. SQLite's automatic
//! checkpoint would copy them from the WAL into the database file and sync both inside the
//! plan's commit, about a second of a three-second plan, and then again for every plan
//! replaced before it was applied. So a plan defers the checkpoint ([`Ledger::defer_checkpoints`]):
//! its commit appends its pages to the WAL and syncs the WAL (`synchronous = FULL` for that
//! commit: the plan survives a power loss once committed, as it did when the checkpoint
//! synced it), and neither a later commit of the same process nor closing the ledger copies
//! them. The command that sends requests checkpoints first ([`Ledger::make_durable`], in
//! `commands::execute`), so apply starts from a ledger whose pages are all in the database
//! file, and the WAL is truncated. A plan that finds the WAL holding an earlier plan's pages
//! (plans made one after another, never applied) copies them in the background while it
//! reads the roster ([`Ledger::checkpoint_in_background`]), so the WAL holds at most about
//! two plans.
//!
//! Crash safety is SQLite's own: a checkpoint only copies committed pages, a plan killed
//! before its commit leaves no committed page in the WAL (the old plan stays as it was), and
//! a database whose WAL was not checkpointed is read through the WAL by every connection,
//! so nothing reads a stale page. Owns only the timing of checkpoints: it must never skip
//! the sync before a request is sent, nor checkpoint from a read-only view.

use std::path::Path;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::config::DbConfig;

use super::{Ledger, sibling};

/// A WAL smaller than this is left to the next checkpoint: copying it costs nothing worth a
/// thread.
const BACKGROUND_FROM_BYTES: u64 = 16 << 20;

/// SQLite's default: a checkpoint once the WAL holds this many pages, at the commit that
/// grows it past them.
const AUTOCHECKPOINT_PAGES: i64 = 1000;

impl Ledger {
    /// Leaves this process's commits in the WAL: no automatic checkpoint at commit, none
    /// when the ledger is closed. For `plan` and the plan step of `run`, until
    /// [`Ledger::make_durable`].
    pub fn defer_checkpoints(&self) -> Result<()> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .and_then(|_| {
                self.conn
                    .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            })
            .with_context(|| self.named())?;
        Ok(())
    }

    /// Copies every committed page into the database file, syncs it and truncates the WAL,
    /// then checkpoints automatically again (apply's commits are small, and many). Called
    /// before the first request of a run: whatever the plan committed is then on disk.
    pub fn make_durable(&self) -> Result<()> {
        let started = std::time::Instant::now();
        // (busy, WAL pages, pages copied); busy when a reader held pages back, which only a
        // `status` reading at that moment can: the WAL was synced all the same (SQLite syncs
        // it before copying anything), so the plan is durable either way.
        let (busy, pages, copied): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .with_context(|| format!("cannot checkpoint {}", self.named()))?;
        if busy != 0 {
            tracing::debug!(pages, copied, "checkpoint held back by a reader");
        }
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            pages,
            "ledger checkpointed"
        );
        self.conn
            .pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)
            .and_then(|_| {
                self.conn
                    .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
            })
            .with_context(|| self.named())?;
        Ok(())
    }

    /// Copies the pages an earlier plan left in the WAL into the database file, on a thread
    /// of its own with its own connection (SQLite's passive checkpoint: it never waits for,
    /// nor blocks, this process's reads and writes). `None` when there is little to copy.
    /// Join the handle before the ledger is closed; a failure is only logged: the pages stay
    /// in the WAL, read from there, for the next checkpoint.
    pub fn checkpoint_in_background(&self) -> Option<JoinHandle<()>> {
        let wal = sibling(&self.path, "-wal");
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if size < BACKGROUND_FROM_BYTES {
            return None;
        }
        let path = self.path.clone();
        Some(std::thread::spawn(move || {
            let started = std::time::Instant::now();
            match passive_checkpoint(&path) {
                Ok(pages) => tracing::debug!(
                    secs = started.elapsed().as_secs_f64(),
                    pages,
                    "earlier plan checkpointed in the background"
                ),
                Err(error) => tracing::debug!("background checkpoint: {error:#}"),
            }
        }))
    }
}

fn passive_checkpoint(path: &Path) -> Result<i64> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // This connection must never be the one that closes the database last and checkpoints
    // (or deletes the WAL) on the way: the ledger's own connection is open until it is
    // joined, but say so anyway.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    let copied: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(2))?;
    Ok(copied)
}
