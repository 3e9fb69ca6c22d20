//! The ledger: a SQLite file holding what the platform has for each roster key, the op
//! journal and the history of runs and rejects.
//!
//! Owns the file (mode 0600, WAL, migrations at open), the lock that keeps two runs apart,
//! and every read and write of it. It must never record a remote state the API did not
//! acknowledge, and never hold a secret or a token.

mod checkpoint;
mod effect;
pub mod events;
mod file;
mod history;
mod index_file;
pub mod migrate;
mod payload;
mod plan_writer;
mod replaced;

pub use effect::content_record;
pub use history::{LedgerStatus, OpCount, RunRow};
pub use index_file::{Keeping, UsersVersion};
pub use plan_writer::{Before, PlanTx, PlannedOp, PushedOp};

use effect::write_entry;
use file::{check_ledger_file, check_schema, create_new, private_file, sibling};

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::model::Grant;
use crate::model::fingerprint::fingerprint;
pub use crate::model::{NewOp, Op, OpKind, OpPayload, RowMemo};
use crate::plan::{Known, KnownKeys, LedgerIndex};

/// The ledger holds another platform's accounts than the config's target.
#[derive(Debug, thiserror::Error)]
#[error(
    "ledger {ledger} holds the accounts of a {holds} target, but the config's [target] kind is {wanted}; \
     a ledger serves one platform (its account ids mean nothing on another): give this config its own [ledger] path"
)]
pub struct WrongTarget {
    pub ledger: PathBuf,
    pub holds: String,
    pub wanted: String,
}

/// The ledger is held by another rostersync process (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error(
    "another rostersync run holds the ledger {0} (lock file {0}.lock); try again when it has finished"
)]
pub struct LedgerLocked(pub PathBuf);

/// A rejected roster row as recorded.
#[derive(Debug, Clone)]
pub struct RejectRow {
    pub line: u64,
    pub column: String,
    pub reason: String,
    pub original: String,
}

/// One change to the op journal (for `Done`, with the change to its user).
#[derive(Debug, Clone)]
pub enum Entry {
    /// The request is about to leave: committed before it does.
    Sending { op_id: i64 },
    /// Acknowledged: the op is done and its user's row holds its effect.
    Done { op: Box<Op>, effect: Effect },
    /// Done without a request: the ledger already held its effect.
    DoneUnchanged { op_id: i64, message: String },
    Failed {
        op_id: i64,
        http_status: Option<u16>,
        message: String,
    },
    /// Its outcome is unknown (timeout, dropped connection).
    InDoubt { op_id: i64, message: String },
    /// Taken for sending but never sent (the run is stopping): back where it was.
    Unsend { op_id: i64, was_in_doubt: bool },
}

/// The ledger's effect of an acknowledged op.
#[derive(Debug, Clone)]
pub struct Effect {
    /// The UUID the platform gave (or that was adopted) for a create.
    pub uuid: Option<String>,
    pub http_status: Option<u16>,
    pub message: Option<String>,
    /// The create found the email taken in our hierarchy and took that user over.
    pub adopted: bool,
    /// The account was deleted, not deactivated: the ledger forgets its id and grants, so a
    /// person who comes back is created (invited) again.
    pub deleted: bool,
    /// The platform showed the account's invitation accepted: it is never sent again.
    pub accepted: bool,
}

impl Effect {
    /// An op acknowledged with `status` that changes nothing beyond what it asked for (no id
    /// given, nothing adopted, deleted or accepted).
    pub fn acknowledged(status: u16, message: Option<String>) -> Effect {
        Effect {
            uuid: None,
            http_status: Some(status),
            message,
            adopted: false,
            deleted: false,
            accepted: false,
        }
    }
}

/// A ledger user as the completions report shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Learner {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub active: bool,
    /// Content this tool enrolled.
    pub content: Vec<Grant>,
}

impl Learner {
    /// Reads `email, profile, active, content` from `row`, starting at column `at`.
    fn read(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Learner> {
        let profile: Option<crate::model::Profile> =
            serde_json::from_str(&row.get::<_, String>(at + 1)?).ok();
        let (first_name, last_name) = profile
            .map(|p| (p.first_name, p.last_name))
            .unwrap_or_default();
        Ok(Learner {
            email: row.get(at)?,
            first_name,
            last_name,
            active: row.get(at + 2)?,
            content: serde_json::from_str(&row.get::<_, String>(at + 3)?).unwrap_or_default(),
        })
    }
}

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    // Held for the life of the ledger: the OS releases it when the process ends, however.
    // `None` for a read-only view, which never writes and so needs no lock.
    _lock: Option<File>,
}

/// Pending ops: every one belongs to the newest stored plan, whose ops start at its
/// `runs.ops_from`, so they are a rowid range and need no index written with each op.
const PENDING: &str = "state = 'pending' AND id >= (SELECT coalesce(max(ops_from), 0) FROM runs)";

/// Ops sending or in doubt: the exact WHERE clause of the partial index `ops_unsettled`.
const UNSETTLED: &str = "(state = 'sending' OR state = 'in_doubt')";

/// The user with a platform id, given by [`uuid_spellings`] (an active one first): the id as
/// written and in lower and upper case, since the index on ids is case-sensitive and
/// platforms differ in how they write a UUID.
const BY_UUID: &str = "uuid = ?1 OR uuid = ?2 OR uuid = ?3 ORDER BY active DESC LIMIT 1";

fn uuid_spellings(uuid: &str) -> [String; 3] {
    [
        uuid.to_owned(),
        uuid.to_ascii_lowercase(),
        uuid.to_ascii_uppercase(),
    ]
}

/// Milliseconds since the Unix epoch.
/// Read-only, and without SQLite's own per-call mutex (rusqlite's default for its other
/// connections too): a `Connection` is used by one thread at a time, and the mutex cost a
/// sixth of the planner's index read.
pub(crate) fn read_only_flags() -> rusqlite::OpenFlags {
    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Ledger {
    /// Opens (creating if needed) and locks the ledger, and migrates its schema.
    pub fn open(path: &Path) -> Result<Ledger> {
        // File modes (0700 folder, 0600 files, tightening a ledger found open): see
        // `crate::fsmode`. The ledger holds names and emails of everyone on the roster.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::fsmode::create_private_dir_all(parent)?;
        }
        let lock_path = sibling(path, ".lock");
        let lock = private_file(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LedgerLocked(crate::human::clean_path(path)).into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        // Checked under the lock: another run may be creating it.
        check_ledger_file(path)?;
        if !path.exists() {
            create_new(path)?;
        }
        // Created 0600 before SQLite sees it; SQLite gives its -wal and -shm files the
        // database file's permissions. Ones left over from a crash keep the mode they were
        // made with, so they are checked too (under the lock: no other run has them open).
        drop(private_file(path)?);
        for suffix in ["-wal", "-shm"] {
            crate::fsmode::tighten_existing(&sibling(path, suffix))?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("cannot open ledger {}", path.display()))?;
        let version = check_schema(&conn, path)?;
        let named = || format!("ledger {}", path.display());
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(named)?;
        // NORMAL in WAL mode survives a killed process (the case we design for); only a power
        // loss can take the last commits back.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .with_context(named)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .with_context(named)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .with_context(named)?;
        // Apply cycles through a few dozen statements per op; none should be parsed twice.
        conn.set_prepared_statement_cache_capacity(64);
        migrate::migrate(&mut conn)
            .with_context(|| format!("cannot migrate ledger {}", path.display()))?;
        if version < migrate::latest() {
            // A migration may rewrite every row (005, 006): its pages would stay in the WAL,
            // and every read of the next nights would look them up there. Copied into the
            // database once, now, and the WAL emptied.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .with_context(named)?;
        }
        let ledger = Ledger {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
        };
        ledger
            .close_interrupted_runs()
            .with_context(|| format!("ledger {}", path.display()))?;
        Ok(ledger)
    }

    /// Ops of the newest stored plan that ended failed or are in doubt (any run): the plan
    /// has not converged while there are any.
    pub fn unsettled_in_current_plan(&self) -> Result<u64> {
        let count: i64 = self.conn.query_row(
            "SELECT count(*) FROM ops WHERE id >= (SELECT coalesce(max(ops_from), 0) FROM runs)
             AND (state = 'failed' OR state = 'in_doubt')",
            [],
            |r| r.get(0),
        )?;
        Ok(count.max(0) as u64)
    }

    /// Whether a run holds the ledger's lock right now (tried without waiting, and released
    /// at once). `status` uses it to tell a run under way from one that was killed.
    pub fn held_by_a_run(path: &Path) -> bool {
        let Ok(lock) = File::open(sibling(path, ".lock")) else {
            return false;
        };
        matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Opens the ledger to read only, without the lock, so that `status` works while a run
    /// is under way. Refuses a missing ledger or one whose schema is not this binary's.
    pub fn open_read_only(path: &Path) -> Result<Ledger> {
        if !path.exists() {
            anyhow::bail!(
                "no ledger at {}: nothing has been planned with this config yet",
                path.display()
            );
        }
        check_ledger_file(path)?;
        let conn = Connection::open_with_flags(path, read_only_flags())
            .with_context(|| format!("cannot open ledger {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .with_context(|| format!("ledger {}", path.display()))?;
        let version = check_schema(&conn, path)?;
        if version != migrate::latest() {
            // Older (newer ones were refused above): plan or apply migrate it.
            anyhow::bail!(
                "ledger {} has schema version {version}, this rostersync expects {}; run plan or apply once to migrate it",
                path.display(),
                migrate::latest()
            );
        }
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "ledger <path>": the context every ledger error carries, so that a message such as
    /// "database disk image is malformed" says which file.
    fn named(&self) -> String {
        format!("ledger {}", crate::human::path(&self.path))
    }

    /// Binds the ledger to the platform `target` (a [`crate::targets::Kind`] name) on its
    /// first use, and refuses another one after: the account ids it holds mean nothing on
    /// another platform, and a plan against them would end everyone's account there.
    pub fn bind_target(&self, target: &str) -> Result<()> {
        let bound: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM ledger_meta WHERE name = 'target'",
                [],
                |r| r.get(0),
            )
            .optional()
            .with_context(|| self.named())?;
        match bound {
            Some(bound) if bound == target => Ok(()),
            Some(bound) => Err(WrongTarget {
                ledger: crate::human::clean_path(&self.path),
                holds: bound,
                wanted: target.to_owned(),
            }
            .into()),
            None => {
                self.conn
                    .execute(
                        "INSERT INTO ledger_meta (name, value) VALUES ('target', ?1)",
                        [target],
                    )
                    .with_context(|| self.named())?;
                Ok(())
            }
        }
    }

    /// The roster key of the account the platform knows by `uuid` (in any case, see
    /// [`BY_UUID`]), and whether it is active: how a learning event's learner is matched.
    pub fn learner_of(&self, uuid: &str) -> Result<Option<(String, bool)>> {
        self.conn
            .prepare_cached(&format!("SELECT key, active FROM users WHERE {BY_UUID}"))
            .and_then(|mut s| {
                s.query_row(uuid_spellings(uuid), |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .with_context(|| self.named())
    }

    /// The roster key and what the completions report shows of the learner the platform
    /// knows by `uuid` (in any case, see [`BY_UUID`]): the profile last
    /// acknowledged (a ledger older than the neutral profile shows an empty one), its status
    /// and the content this tool enrolled. One lookup for both.
    pub fn learner_by_uuid(&self, uuid: &str) -> Result<Option<(String, Learner)>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT key, email, profile, active, content FROM users WHERE {BY_UUID}"
            ))
            .and_then(|mut s| {
                s.query_row(uuid_spellings(uuid), |r| {
                    Ok((r.get(0)?, Learner::read(r, 1)?))
                })
                .optional()
            })
            .with_context(|| self.named())
    }

    /// Every active learner the platform acknowledged, with their key and platform id, in
    /// key order; `f` is called with each (a million are never collected).
    pub fn each_active_learner(
        &self,
        mut f: impl FnMut(&str, &str, Learner) -> Result<()>,
    ) -> Result<()> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT key, uuid, email, profile, active, content FROM users
                 WHERE active = 1 AND uuid IS NOT NULL ORDER BY key",
            )
            .with_context(|| self.named())?;
        let mut rows = statement.query([]).with_context(|| self.named())?;
        while let Some(row) = rows.next().with_context(|| self.named())? {
            let (key, uuid): (String, String) = (row.get(0)?, row.get(1)?);
            f(&key, &uuid, Learner::read(row, 2)?)?;
        }
        Ok(())
    }

    /// The completion (ms) whose expiry the last acknowledged re-enrollment of `content_uuid`
    /// for `key` answered.
    pub fn recertified(&self, key: &str, content_uuid: &str) -> Result<Option<i64>> {
        self.conn
            .prepare_cached(
                "SELECT completed_at FROM recertified WHERE key = ?1 AND content_uuid = lower(?2)",
            )
            .and_then(|mut s| {
                s.query_row(params![key, content_uuid], |r| r.get(0))
                    .optional()
            })
            .with_context(|| self.named())
    }

    /// Records the start of a run; returns its id.
    pub fn begin_run(&self, command: &str) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (command, started_at) VALUES (?1, ?2)",
                params![command, chrono::Utc::now().to_rfc3339()],
            )
            .with_context(|| self.named())?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &self,
        run_id: i64,
        outcome: &str,
        summary: &serde_json::Value,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, summary = ?4 WHERE id = ?1",
                params![
                    run_id,
                    chrono::Utc::now().to_rfc3339(),
                    outcome,
                    summary.to_string()
                ],
            )
            .with_context(|| self.named())?;
        Ok(())
    }

    /// The index the planner diffs against: every key with its fingerprints and status.
    pub fn index(&self) -> Result<LedgerIndex> {
        self.index_and_keys().map(|(index, _)| index)
    }

    /// The index, and the keys of the users a plan could deactivate ([`KnownKeys`]).
    /// The planner's index and the deactivatable keys: from the index file kept beside the
    /// ledger ([`index_file`]) when it is certainly this ledger's as it stands, else read from
    /// the ledger itself.
    pub fn index_and_keys(&self) -> Result<(LedgerIndex, KnownKeys)> {
        let version = UsersVersion::of(&self.conn).with_context(|| self.named())?;
        match index_file::read(&self.path, &version) {
            Ok(Some(kept)) => {
                tracing::debug!(
                    users = kept.0.len(),
                    "ledger index read from its index file"
                );
                return Ok(kept);
            }
            Ok(None) => {}
            // A cache, so never a reason to fail: said, and the ledger read instead.
            Err(e) => tracing::warn!("{e:#}; reading the ledger's users instead"),
        }
        self.read_index().with_context(|| self.named())
    }

    /// The ledger's id and the version of its users ([`index_file`]).
    pub fn users_version(&self) -> Result<UsersVersion> {
        UsersVersion::of(&self.conn).with_context(|| self.named())
    }

    /// Puts in place the index file a committed plan wrote ([`Keeping`]), under the users
    /// version the commit left. Best effort: a failure is logged, and the next plan reads
    /// the ledger.
    pub fn keep_index(&self, keeping: Keeping) {
        let kept = UsersVersion::of(&self.conn).and_then(|version| keeping.finish(Some(&version)));
        if let Err(e) = kept {
            index_file::remove(&self.path);
            tracing::warn!("cannot keep the ledger's index for the next plan: {e:#}");
        }
    }

    /// Brings the index file up to date after users changed (an apply): read from the ledger
    /// and kept, so that the next night's plan need not read it. Nothing to do when the file
    /// is still the ledger's.
    pub fn refresh_index(&self) {
        let started = std::time::Instant::now();
        let refreshed = UsersVersion::of(&self.conn).and_then(|version| {
            if index_file::is_current(&self.path, &version) {
                return Ok(false);
            }
            let (index, keys) = self.read_index()?;
            index_file::write(&self.path, &version, &index, &keys)?;
            Ok(true)
        });
        match refreshed {
            Ok(refreshed) => tracing::debug!(
                refreshed,
                secs = started.elapsed().as_secs_f64(),
                "ledger index file"
            ),
            Err(e) => {
                index_file::remove(&self.path);
                tracing::warn!("cannot keep the ledger's index for the next plan: {e:#}");
            }
        }
    }

    fn read_index(&self) -> Result<(LedgerIndex, KnownKeys)> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
        let mut index = LedgerIndex::with_capacity_and_hasher(count as usize, Default::default());
        let mut keys = KnownKeys::with_capacity(count as usize);
        let mut statement = self.conn.prepare_cached(
            "SELECT key, profile_hash, content_hash, active, uuid IS NOT NULL, row_digest, row_state, row_email
             FROM users INDEXED BY users_digest",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_str()?;
            let row_memo = match (row.get(5)?, row.get(6)?, row.get(7)?) {
                (Some(digest), Some(state), Some(email)) => Some(RowMemo {
                    digest,
                    state,
                    email,
                }),
                _ => None,
            };
            let (active, has_uuid) = (row.get(3)?, row.get(4)?);
            if active && has_uuid {
                keys.push(key);
            }
            index.insert(
                fingerprint(key),
                Known::new(row.get(1)?, row.get(2)?, active, has_uuid, row_memo),
            );
        }
        Ok((index, keys))
    }

    /// Writes a plan: `produce` pushes ops into a [`PlanTx`] while a second thread inserts
    /// them, so that parsing the roster and SQLite's writes overlap. The pending ops of any
    /// earlier plan are replaced. Nothing is kept unless `produce` calls [`PlanTx::commit`].
    pub fn write_plan<T>(
        &mut self,
        run_id: i64,
        produce: impl FnOnce(&mut PlanTx) -> Result<T>,
    ) -> Result<T> {
        plan_writer::write_plan(&mut self.conn, &self.path, run_id, produce)
    }

    /// Pending ops in the order planned: one user's ops are consecutive and in their order.
    /// All of them at once: for tests and tools; apply reads them in batches
    /// ([`Ledger::pending_ops_after`]).
    pub fn pending_ops(&self) -> Result<Vec<Op>> {
        self.read_ops(
            &format!("SELECT id, key, seq, kind, payload FROM ops WHERE {PENDING} ORDER BY id"),
            [],
        )
    }

    /// At most `limit` pending ops with ids above `after`, in plan order: one batch of apply's
    /// stream (a rowid range, so each batch costs its own rows only).
    pub fn pending_ops_after(&self, after: i64, limit: usize) -> Result<Vec<Op>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_ops(
            &format!(
                "SELECT id, key, seq, kind, payload FROM ops WHERE {PENDING} AND id > ?1 ORDER BY id LIMIT ?2"
            ),
            params![after, limit],
        )
    }

    /// The pending ops of the users that have an op in doubt, in plan order: apply runs them
    /// after the op in doubt is resolved (and streams everyone else's).
    pub fn pending_ops_of_users_in_doubt(&self) -> Result<Vec<Op>> {
        self.read_ops(
            &format!(
                "SELECT id, key, seq, kind, payload FROM ops WHERE {PENDING}
                 AND key IN (SELECT key FROM ops WHERE {UNSETTLED} AND state = 'in_doubt') ORDER BY id"
            ),
            [],
        )
    }

    /// How many ops are pending and how many in doubt.
    pub fn waiting_ops(&self) -> Result<(u64, u64)> {
        let count = |sql: &str| -> Result<u64> {
            let n: i64 = self.conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        Ok((
            count(&format!("SELECT count(*) FROM ops WHERE {PENDING}"))?,
            count(&format!(
                "SELECT count(*) FROM ops WHERE {UNSETTLED} AND state = 'in_doubt'"
            ))?,
        ))
    }

    /// Ops a killed run left `sending`: their outcome is unknown, so they become `in_doubt`,
    /// to be resolved before anything else is sent for their users.
    pub fn set_interrupted_in_doubt(&self, run_id: i64) -> Result<u64> {
        let changed = self.conn.execute(
            &format!(
                "UPDATE ops SET state = 'in_doubt', message = 'interrupted while sending', done_run_id = ?1, updated_at = ?2
                 WHERE {UNSETTLED} AND state = 'sending'"
            ),
            params![run_id, now_ms()],
        )?;
        Ok(changed as u64)
    }

    /// Ops whose outcome is unknown (a lost answer, a killed run), oldest first: apply
    /// resolves them before it sends anything else for their users.
    pub fn in_doubt_ops(&self) -> Result<Vec<Op>> {
        self.read_ops(
            &format!(
                "SELECT id, key, seq, kind, payload FROM ops WHERE {UNSETTLED} AND state = 'in_doubt' ORDER BY id"
            ),
            [],
        )
    }

    fn read_ops(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Op>> {
        let mut statement = self.conn.prepare_cached(sql)?;
        let mut rows = statement.query(params)?;
        let mut ops = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let kind: String = row.get(3)?;
            let kind = OpKind::parse(&kind)
                .with_context(|| format!("op {id}: unknown kind {kind:?} in the ledger"))?;
            let payload = payload::decode(row.get_ref(4)?)
                .with_context(|| format!("op {id} in the ledger"))?;
            ops.push(Op {
                id,
                key: row.get(1)?,
                seq: row.get(2)?,
                kind,
                payload,
            });
        }
        Ok(ops)
    }

    /// When each endpoint last changed this user, in milliseconds: acknowledged changes from
    /// the users table, and changes that may have happened (ops in doubt or sending, at the
    /// time they were last touched). The duplicate window is measured from these.
    pub fn last_changes(&self, key: &str) -> Result<Vec<(OpKind, i64)>> {
        let mut changes = Vec::new();
        let row = self
            .conn
            .prepare_cached(
                "SELECT created_at, last_update_at, last_deactivate_at, last_enroll_at, last_remove_at, last_reenroll_at,
                        last_remind_at
                 FROM users WHERE key = ?1",
            )?
            .query_row([key], |r| {
                let mut at = [None; 7];
                for (i, slot) in at.iter_mut().enumerate() {
                    *slot = r.get::<_, Option<i64>>(i)?;
                }
                Ok(at)
            })
            .optional()?;
        let kinds = [
            OpKind::Create,
            OpKind::Update,
            OpKind::Deactivate,
            OpKind::Enroll,
            OpKind::Remove,
            OpKind::ReEnroll,
            OpKind::Remind,
        ];
        if let Some(at) = row {
            for (kind, at) in kinds.into_iter().zip(at) {
                if let Some(at) = at {
                    changes.push((kind, at));
                }
            }
        }
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT kind, max(updated_at) FROM ops WHERE {UNSETTLED} AND key = ?1 GROUP BY kind"
        ))?;
        let rows =
            statement.query_map([key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (kind, at) = row?;
            if let Some(kind) = OpKind::parse(&kind) {
                changes.push((kind, at));
            }
        }
        Ok(changes)
    }

    /// The roster key the ledger records for a platform user id, other than `key`: one
    /// account must never stand for two people.
    pub fn other_key_of_uuid(&self, uuid: &str, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT key FROM users WHERE uuid = ?1 AND key <> ?2 LIMIT 1")?
            .query_row([uuid, key], |r| r.get(0))
            .optional()?)
    }

    /// Runs left unfinished (no outcome) by a process that was killed: called under the lock,
    /// so none of them is still running. Returns how many were marked `interrupted`.
    fn close_interrupted_runs(&self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at = ?1 WHERE outcome IS NULL",
            [chrono::Utc::now().to_rfc3339()],
        )?)
    }

    /// Whether the ledger already holds what this op would do (an earlier op whose outcome
    /// was in doubt turned out to have done it): sending it again would be a wasted change,
    /// or for a create a second account.
    pub fn already_applied(&self, op: &Op) -> Result<bool> {
        let row: Option<(Option<String>, i64, bool, String)> = self
            .conn
            .prepare_cached("SELECT uuid, profile_hash, active, content FROM users WHERE key = ?1")?
            .query_row([&op.key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((uuid, profile_hash, active, content)) = row else {
            return Ok(false);
        };
        let content: Vec<Grant> = serde_json::from_str(&content).unwrap_or_default();
        let enrolled = |item: &Grant| content.iter().any(|c| c.id == item.id);
        Ok(match op.kind {
            OpKind::Create => uuid.is_some(),
            OpKind::Update => active && profile_hash == op.payload.profile_hash,
            OpKind::Deactivate => !active,
            OpKind::Enroll => op.payload.items.iter().all(enrolled),
            OpKind::Remove => !op.payload.items.iter().any(enrolled),
            OpKind::ReEnroll | OpKind::Remind => false,
        })
    }

    /// Writes journal entries in one transaction: all of them or none. Apply group-commits
    /// through this; each entry's own guarantees hold as if it were committed alone.
    pub fn journal(&mut self, run_id: i64, entries: &[Entry]) -> Result<()> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        for entry in entries {
            write_entry(&tx, run_id, entry, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks many ops done with their effects in one transaction (each op's state and its
    /// user's row change together).
    pub fn complete_many(&mut self, run_id: i64, done: &[(Op, Effect)]) -> Result<()> {
        let entries: Vec<Entry> = done
            .iter()
            .map(|(op, effect)| Entry::Done {
                op: Box::new(op.clone()),
                effect: effect.clone(),
            })
            .collect();
        self.journal(run_id, &entries)
    }

    /// Ops finished (done, failed, in doubt) by a run, for its reports: handed to `each` one
    /// at a time, in op order, so a million-op run is reported in constant memory.
    pub fn for_each_finished(
        &self,
        run_id: i64,
        each: &mut dyn FnMut(&FinishedOp) -> Result<()>,
    ) -> Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT o.key, o.kind, o.state, o.http_status, o.message, u.uuid FROM ops o
             LEFT JOIN users u ON u.key = o.key WHERE o.done_run_id = ?1 ORDER BY o.id",
        )?;
        let mut rows = statement.query([run_id])?;
        while let Some(row) = rows.next()? {
            each(&FinishedOp {
                key: row.get(0)?,
                kind: row.get(1)?,
                state: row.get(2)?,
                http_status: row.get(3)?,
                message: row.get(4)?,
                uuid: row.get(5)?,
            })?;
        }
        Ok(())
    }
}

/// An op as reported after a run.
#[derive(Debug, Clone, Serialize)]
pub struct FinishedOp {
    pub key: String,
    pub kind: String,
    pub state: String,
    pub http_status: Option<u16>,
    pub message: Option<String>,
    pub uuid: Option<String>,
}

#[cfg(test)]
mod tests;
