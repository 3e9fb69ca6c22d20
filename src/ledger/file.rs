//! The ledger as a file: what makes a file a ledger this binary may open, and how a new one
//! comes into being.
//!
//! Owns the checks made before SQLite sees the file (a regular, non-empty SQLite file, a
//! schema this binary knows) and its creation, complete or not at all, mode 0600. It must
//! never let an empty or foreign file be taken for a new ledger: the plan would then create
//! everyone again.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::migrate;

/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Refuses a ledger file that exists but cannot be a ledger: not a regular file, empty, or
/// not a SQLite database. SQLite would take an empty file for a new database, and the plan
/// would then create every user again; a truncated ledger (disk full, a failed copy) must
/// be restored, or removed on purpose, never silently started over. A missing file is fine:
/// [`Ledger::open`] creates it.
pub(super) fn check_ledger_file(path: &Path) -> Result<()> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read ledger {}", path.display())),
    };
    let shown = path.display();
    let start_over = "restore it from a backup; or, to start a new ledger deliberately \
                      (rostersync then knows no one and plans to create everyone again), \
                      delete it with its -wal and -shm files";
    if !metadata.is_file() {
        anyhow::bail!(
            "ledger {shown} is not a regular file; expected a SQLite file (is [ledger] path right?)"
        );
    }
    if metadata.len() == 0 {
        anyhow::bail!(
            "ledger {shown} exists but is empty (0 bytes): it was probably truncated (a full disk, a failed copy); {start_over}"
        );
    }
    if !starts_as_sqlite(path).with_context(|| format!("cannot read ledger {shown}"))? {
        anyhow::bail!(
            "ledger {shown} is not a SQLite database (expected it to start with \"SQLite format 3\"); is [ledger] path right? If it is, {start_over}"
        );
    }
    Ok(())
}

/// Whether the file at `path` begins as every SQLite database does.
pub(super) fn starts_as_sqlite(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 16];
    let read = File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read(&mut magic)
    })?;
    Ok(read == magic.len() && &magic == SQLITE_MAGIC)
}

/// The ledger's schema version, refusing one this binary must not touch: written by a newer
/// rostersync (migrating or reading it could misread or damage it), or a SQLite database
/// that holds tables but none of ours. Reads only, so that nothing is changed before it.
pub(super) fn check_schema(conn: &Connection, path: &Path) -> Result<usize> {
    let shown = path.display();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .with_context(|| format!("cannot read ledger {shown}"))?;
    if version < 0 || version as usize > migrate::latest() {
        anyhow::bail!(
            "ledger {shown} was written by a newer rostersync (schema version {version}; this rostersync {} knows versions up to {}); \
             run that newer rostersync: this one leaves the ledger untouched",
            env!("CARGO_PKG_VERSION"),
            migrate::latest()
        );
    }
    if version == 0 {
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 5")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .with_context(|| format!("cannot read ledger {shown}"))?;
        if !tables.is_empty() {
            anyhow::bail!(
                "ledger {shown} is a SQLite database but not a rostersync ledger (no schema version; tables {}); is [ledger] path right?",
                tables.join(", ")
            );
        }
    }
    Ok(version as usize)
}

/// Opens a ledger file, creating it 0600, or tightening it to 0600 if it is open to others.
/// Creates a new, migrated ledger at `path` (called under the lock, when nothing is there).
/// It is built beside it and renamed into place complete: a run killed while creating it
/// must not leave an empty file, which the next run would refuse as a truncated ledger.
pub(super) fn create_new(path: &Path) -> Result<()> {
    let building = sibling(path, ".new");
    let named = || format!("cannot create ledger {}", path.display());
    // Left by a run killed while creating: never renamed, so never used.
    for suffix in ["", "-journal"] {
        match std::fs::remove_file(sibling(&building, suffix)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(named),
        }
    }
    drop(private_file(&building)?);
    {
        // Rollback-journal mode while building: everything is in the one file once closed.
        let mut conn = Connection::open(&building).with_context(named)?;
        migrate::migrate(&mut conn).with_context(named)?;
        conn.close().map_err(|(_, e)| e).with_context(named)?;
    }
    std::fs::rename(&building, path).with_context(named)?;
    Ok(())
}

pub(super) fn private_file(path: &Path) -> Result<File> {
    crate::fsmode::open_private(path)
}

/// `path` with `suffix` appended to its file name (`x.db` → `x.db-wal`), for the files SQLite
/// and the lock put beside the ledger; appended as an OsString so a non-UTF-8 path survives.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
