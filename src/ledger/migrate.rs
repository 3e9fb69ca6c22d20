//! Schema migrations: numbered SQL files in `migrations/`, applied in order inside one
//! exclusive transaction, with the schema version in `PRAGMA user_version`.
//!
//! Append-only: a shipped migration is never edited or reordered (cargo's sqlite.rs does the
//! same). A ledger newer than this binary is refused rather than misread.

use anyhow::{Context, Result, bail};
use rusqlite::Connection;

/// Every migration, in order; the schema version is the number applied.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "001_initial.sql",
        include_str!("../../migrations/001_initial.sql"),
    ),
    (
        "002_lean_op_indexes.sql",
        include_str!("../../migrations/002_lean_op_indexes.sql"),
    ),
    (
        "003_row_memo.sql",
        include_str!("../../migrations/003_row_memo.sql"),
    ),
    (
        "004_users_by_uuid.sql",
        include_str!("../../migrations/004_users_by_uuid.sql"),
    ),
    (
        "005_neutral_profile.sql",
        include_str!("../../migrations/005_neutral_profile.sql"),
    ),
    (
        "006_reminders.sql",
        include_str!("../../migrations/006_reminders.sql"),
    ),
    (
        "007_ledger_target.sql",
        include_str!("../../migrations/007_ledger_target.sql"),
    ),
    (
        "008_recertified.sql",
        include_str!("../../migrations/008_recertified.sql"),
    ),
    (
        "009_users_version.sql",
        include_str!("../../migrations/009_users_version.sql"),
    ),
];

/// The schema version this binary writes.
pub fn latest() -> usize {
    MIGRATIONS.len()
}

/// Brings the schema up to date; returns the version now in force.
pub fn migrate(conn: &mut Connection) -> Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        bail!(
            "the ledger has schema version {version}, newer than this rostersync knows ({}); use a newer rostersync",
            MIGRATIONS.len()
        );
    }
    for (number, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)
            .with_context(|| format!("migration {name} failed"))?;
        tx.pragma_update(None, "user_version", (number + 1) as i64)?;
    }
    tx.commit()?;
    Ok(MIGRATIONS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len());
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
    }

    #[test]
    fn a_newer_ledger_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(migrate(&mut conn).is_err());
    }
}
