//! The event store: the learning events a platform published (completions), durably, in a
//! SQLite file of their own beside the ledger.
//!
//! Owns that file (mode 0600, WAL, every commit synced), its schema, receipt (idempotent: an
//! event is stored once however often it is sent) and the reads the plan and the
//! completions report make. A separate file and not a table of the ledger: a plan holds the
//! ledger's one write lock for the seconds it takes to read a million-row roster, and an
//! event must be stored (and acknowledged) within milliseconds at any hour, so the receiver
//! must never wait on a plan, nor a plan on it. It takes no run lock. It must never drop an
//! event it has acknowledged, nor hold a credential (the payload is stored as received,
//! and publishers send none in it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema this binary writes (in `PRAGMA user_version`).
const SCHEMA: i64 = 1;

const CREATE: &str = "
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    -- SHA-256 of what identifies the event (its type, timestamp and context, names
    -- normalized): a re-sent event has the same one and is stored once.
    digest        BLOB NOT NULL UNIQUE,
    received_at   INTEGER NOT NULL,
    event_type    TEXT NOT NULL,
    -- The event's own time (ms since the epoch, UTC): when the learner completed.
    occurred_at   INTEGER NOT NULL,
    -- Lower case; NULL when the payload named none.
    user_uuid     TEXT,
    content_uuid  TEXT,
    -- 'course' or 'learning path' for a completion, NULL for an event of another type.
    content_type  TEXT,
    -- Who and what it matched when received (the plan and the report match again: the
    -- ledger may have learned the user since).
    matched_key   TEXT,
    matched_sku   TEXT,
    -- The payload as received.
    body          TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (occurred_at);
-- Each learner's latest completion of each item, kept with every completion stored (same
-- transaction): the plan reads only the completions old enough to be due, through the
-- index on their time, instead of grouping millions of events every night.
CREATE TABLE latest (
    user_uuid     TEXT NOT NULL,
    content_uuid  TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    completed_at  INTEGER NOT NULL,
    -- Completions of this item by this learner received.
    times         INTEGER NOT NULL,
    PRIMARY KEY (user_uuid, content_uuid)
) WITHOUT ROWID;
CREATE INDEX latest_by_time ON latest (completed_at);
";

/// The events file that goes with the ledger at `ledger`: `rostersync.db` → `rostersync-events.db`.
pub fn default_path(ledger: &Path) -> PathBuf {
    let stem = ledger
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rostersync".to_owned());
    ledger.with_file_name(format!("{stem}-events.db"))
}

/// An event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub digest: [u8; 32],
    pub received_at: i64,
    pub event_type: String,
    pub occurred_at: i64,
    pub user_uuid: Option<String>,
    pub content_uuid: Option<String>,
    pub content_type: Option<String>,
    pub matched_key: Option<String>,
    pub matched_sku: Option<String>,
    pub body: String,
}

/// What receipt did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Stored now, with this id.
    Stored(i64),
    /// Stored before (a re-sent event), with this id.
    Duplicate(i64),
}

/// One stored event, as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub received_at: i64,
    pub event_type: String,
    pub occurred_at: i64,
    pub user_uuid: Option<String>,
    pub content_uuid: Option<String>,
    pub content_type: Option<String>,
    pub matched_key: Option<String>,
    pub matched_sku: Option<String>,
}

/// A learner's latest completion of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestCompletion {
    pub user_uuid: String,
    pub content_uuid: String,
    pub content_type: String,
    pub completed_at: i64,
    /// Completions of this item by this learner, this one included.
    pub times: i64,
}

pub struct EventStore {
    conn: Connection,
    path: PathBuf,
}

impl EventStore {
    /// Opens (creating if needed, 0600) the events file to receive into.
    pub fn open(path: &Path) -> Result<EventStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::fsmode::create_private_dir_all(parent)?;
        }
        check_file(path)?;
        // Created 0600 before SQLite sees it; its -wal and -shm take the same mode.
        drop(crate::fsmode::open_private(path)?);
        for suffix in ["-wal", "-shm"] {
            crate::fsmode::tighten_existing(&super::file::sibling(path, suffix))?;
        }
        let named = || format!("events file {}", path.display());
        let conn = Connection::open(path).with_context(named)?;
        conn.busy_timeout(Duration::from_secs(5))
            .with_context(named)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(named)?;
        // FULL: an acknowledged event must survive a power loss too, not just a killed
        // process; receipt commits in groups, so the sync is paid once per group.
        conn.pragma_update(None, "synchronous", "FULL")
            .with_context(named)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .with_context(named)?;
        match version {
            0 => {
                let tables: i64 = conn
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                    .with_context(named)?;
                if tables > 0 {
                    bail!(
                        "{} is a SQLite database but not a rostersync events file (no schema version); is [events] store right?",
                        path.display()
                    );
                }
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {CREATE} PRAGMA user_version = {SCHEMA}; COMMIT;"
                ))
                .with_context(named)?;
            }
            SCHEMA => {}
            other => bail!(
                "events file {} has schema version {other}; this rostersync knows version {SCHEMA}; run the rostersync that wrote it",
                path.display()
            ),
        }
        Ok(EventStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens the events file to read only, or `None` when there is none yet (no event was
    /// ever received). Never waits on, nor blocks, the receiver.
    pub fn open_read_only(path: &Path) -> Result<Option<EventStore>> {
        if !path.exists() {
            return Ok(None);
        }
        check_file(path)?;
        let named = || format!("events file {}", path.display());
        let conn =
            Connection::open_with_flags(path, super::read_only_flags()).with_context(named)?;
        conn.busy_timeout(Duration::from_secs(5))
            .with_context(named)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .with_context(named)?;
        if version != SCHEMA {
            bail!(
                "events file {} has schema version {version}, expected {SCHEMA}; is [events] store right?",
                path.display()
            );
        }
        Ok(Some(EventStore {
            conn,
            path: path.to_path_buf(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores events in one transaction, synced before it returns: all of them or none.
    /// An event stored before (same digest) is not stored again.
    pub fn store(&mut self, events: &[NewEvent]) -> Result<Vec<Receipt>> {
        let named = || format!("events file {}", self.path.display());
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .with_context(named)?;
        let mut receipts = Vec::with_capacity(events.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (digest, received_at, event_type, occurred_at, user_uuid, content_uuid,
                                     content_type, matched_key, matched_sku, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (digest) DO NOTHING",
            )?;
            let mut existing = tx.prepare_cached("SELECT id FROM events WHERE digest = ?1")?;
            let mut latest = tx.prepare_cached(
                "INSERT INTO latest (user_uuid, content_uuid, content_type, completed_at, times)
                 VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (user_uuid, content_uuid) DO UPDATE SET
                     content_type = CASE WHEN excluded.completed_at >= completed_at
                                         THEN excluded.content_type ELSE content_type END,
                     completed_at = max(completed_at, excluded.completed_at),
                     times = times + 1",
            )?;
            for event in events {
                let inserted = insert.execute(params![
                    &event.digest[..],
                    event.received_at,
                    event.event_type,
                    event.occurred_at,
                    event.user_uuid,
                    event.content_uuid,
                    event.content_type,
                    event.matched_key,
                    event.matched_sku,
                    event.body,
                ])?;
                receipts.push(if inserted == 1 {
                    let id = tx.last_insert_rowid();
                    if let (Some(user), Some(content), Some(kind)) =
                        (&event.user_uuid, &event.content_uuid, &event.content_type)
                    {
                        latest.execute(params![user, content, kind, event.occurred_at])?;
                    }
                    Receipt::Stored(id)
                } else {
                    Receipt::Duplicate(existing.query_row([&event.digest[..]], |r| r.get(0))?)
                });
            }
        }
        tx.commit().with_context(named)?;
        Ok(receipts)
    }

    /// How many events are stored.
    #[cfg(test)]
    pub fn count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
    }

    /// Every learner's latest completion of every item (completions only: events that name
    /// a learner, an item and its type) at or before `until` (ms; all when `None`); `f` is
    /// called with each (there may be millions: never collected here).
    pub fn each_latest_completion(
        &self,
        until: Option<i64>,
        f: impl FnMut(LatestCompletion) -> Result<()>,
    ) -> Result<()> {
        let mut statement = self.conn.prepare(
            "SELECT user_uuid, content_uuid, content_type, completed_at, times
             FROM latest INDEXED BY latest_by_time WHERE completed_at <= ?1
             ORDER BY completed_at",
        )?;
        let rows = statement.query([until.unwrap_or(i64::MAX)])?;
        each(
            rows,
            |r| {
                Ok(LatestCompletion {
                    user_uuid: r.get(0)?,
                    content_uuid: r.get(1)?,
                    content_type: r.get(2)?,
                    completed_at: r.get(3)?,
                    times: r.get(4)?,
                })
            },
            f,
        )
    }

    /// Whether any completion of `content_uuid` by `user_uuid` (either in any case) is stored.
    pub fn has_completion(&self, user_uuid: &str, content_uuid: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM latest WHERE user_uuid = lower(?1) AND content_uuid = lower(?2)",
            )?
            .query_row([user_uuid, content_uuid], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// [`EventStore::each_latest_completion`], collected.
    #[cfg(test)]
    pub fn latest_completions(&self) -> Result<Vec<LatestCompletion>> {
        let mut all = Vec::new();
        self.each_latest_completion(None, |c| {
            all.push(c);
            Ok(())
        })
        .with_context(|| format!("events file {}", self.path.display()))?;
        Ok(all)
    }

    /// Events whose own time is at or after `since_ms`, oldest first; `f` is called with
    /// each (the file may hold millions: never collected here).
    pub fn each_since(
        &self,
        since_ms: i64,
        f: impl FnMut(StoredEvent) -> Result<()>,
    ) -> Result<()> {
        let mut statement = self.conn.prepare(
            "SELECT id, received_at, event_type, occurred_at, user_uuid, content_uuid, content_type,
                    matched_key, matched_sku
             FROM events WHERE occurred_at >= ?1 ORDER BY occurred_at, id",
        )?;
        let rows = statement.query([since_ms])?;
        each(
            rows,
            |r| {
                Ok(StoredEvent {
                    id: r.get(0)?,
                    received_at: r.get(1)?,
                    event_type: r.get(2)?,
                    occurred_at: r.get(3)?,
                    user_uuid: r.get(4)?,
                    content_uuid: r.get(5)?,
                    content_type: r.get(6)?,
                    matched_key: r.get(7)?,
                    matched_sku: r.get(8)?,
                })
            },
            f,
        )
    }
}

/// Calls `f` with each row of `rows`, read by `read`, as it comes.
fn each<T>(
    mut rows: rusqlite::Rows<'_>,
    read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    mut f: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    while let Some(row) = rows.next()? {
        f(read(row)?)?;
    }
    Ok(())
}

/// Refuses a file that exists but is no SQLite database (an empty or truncated one would be
/// taken for a new store, and the completions it held lost from every report).
fn check_file(path: &Path) -> Result<()> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read events file {}", path.display()));
        }
    };
    if !metadata.is_file() {
        bail!("events file {} is not a regular file", path.display());
    }
    let sqlite = super::file::starts_as_sqlite(path)
        .with_context(|| format!("cannot read events file {}", path.display()))?;
    // Empty is a store created and killed before its schema was written: begun again.
    if metadata.len() > 0 && !sqlite {
        bail!(
            "events file {} is not a SQLite database; is [events] store right? (restore it from a backup: it holds the completions)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8, user: &str, content: &str, at: i64) -> NewEvent {
        NewEvent {
            digest: [n; 32],
            received_at: 1,
            event_type: "COURSE_COMPLETED".into(),
            occurred_at: at,
            user_uuid: Some(user.into()),
            content_uuid: Some(content.into()),
            content_type: Some("course".into()),
            matched_key: None,
            matched_sku: None,
            body: "{}".into(),
        }
    }

    #[test]
    fn an_event_is_stored_once_and_the_latest_completion_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.db");
        let mut store = EventStore::open(&path).unwrap();
        let first = store
            .store(&[event(1, "u", "c", 10), event(2, "u", "c", 30)])
            .unwrap();
        assert!(matches!(
            first[..],
            [Receipt::Stored(_), Receipt::Stored(_)]
        ));
        let again = store
            .store(&[event(1, "u", "c", 10), event(3, "v", "c", 5)])
            .unwrap();
        assert_eq!(
            again[0],
            Receipt::Duplicate(match first[0] {
                Receipt::Stored(id) => id,
                _ => unreachable!(),
            })
        );
        assert!(matches!(again[1], Receipt::Stored(_)));
        assert_eq!(store.count().unwrap(), 3);
        let mut latest = EventStore::open_read_only(&path)
            .unwrap()
            .unwrap()
            .latest_completions()
            .unwrap();
        latest.sort_by(|a, b| a.user_uuid.cmp(&b.user_uuid));
        assert_eq!(latest.len(), 2);
        assert_eq!((latest[0].completed_at, latest[0].times), (30, 2));
        assert_eq!((latest[1].completed_at, latest[1].times), (5, 1));
    }

    #[test]
    fn a_foreign_or_empty_file_is_refused_and_a_missing_one_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            EventStore::open_read_only(&dir.path().join("none.db"))
                .unwrap()
                .is_none()
        );
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, "not sqlite at all, not at all").unwrap();
        assert!(EventStore::open(&junk).is_err());
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let error = EventStore::open(&other).err().unwrap().to_string();
        assert!(error.contains("not a rostersync events file"), "{error}");
    }

    #[test]
    fn the_default_file_sits_beside_the_ledger() {
        assert_eq!(
            default_path(Path::new("/var/lib/rs/rostersync.db")),
            Path::new("/var/lib/rs/rostersync-events.db")
        );
    }
}
