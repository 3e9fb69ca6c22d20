//! Writing a plan into the ledger while it is being made.
//!
//! A first import writes a million ops; done inline, SQLite's inserts and the roster's parsing
//! took turns on one core. Here the planner's thread hands ops over in batches to a writer
//! thread that owns the plan's transaction and encodes and inserts them, while reads of the
//! users table go through a second, read-only connection (the plan writes only the users'
//! row memo, which those reads never look at, so they see exactly what the transaction
//! would). The writer passes each batch it stored on to whoever shows the plan (plan.csv, on
//! a thread of its own), so the plan is never read back from the ledger to be shown, except
//! after an op was withdrawn ([`PlanTx::withdrew_ops`]). Owns that hand-over, and reading the
//! plan back from inside the transaction (for plan.csv, also of a plan that is refused or a
//! dry run and so never committed); it must never commit a plan the caller did not commit,
//! nor lose an op it accepted.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::replaced::{Keep, NewOpRow, Replaced};
use super::{NewOp, OpKind, OpPayload, RejectRow, RowMemo, now_ms, payload};
use crate::model::fingerprint::fingerprint;
use crate::model::{Grant, Profile};
use crate::plan::{PlanIo, Remote};

/// Planned ops handed back at a time while a plan is read back...
const EXPORT_BATCH: usize = 512;
/// ...and batches on their way: the reader never holds more than these.
const EXPORT_BATCHES: usize = 2;

/// An op of the plan being written, with what the ledger last confirmed of its user.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedOp {
    pub key: String,
    pub kind: OpKind,
    pub payload: OpPayload,
    /// The user's row in the ledger; `None` for a key the platform does not hold yet.
    pub before: Option<Before>,
}

/// A user as the ledger last confirmed it: the platform's state after the last op that was
/// acknowledged, not necessarily what the platform holds now (someone may have changed it
/// there since).
#[derive(Debug, Clone, PartialEq)]
pub struct Before {
    /// The profile last sent and acknowledged; `None` when the stored one cannot be read.
    pub profile: Option<Profile>,
    pub active: bool,
    /// Content this tool enrolled.
    pub content: Vec<Grant>,
}

/// Ops handed to the writer at a time: large enough that the channel costs nothing per op.
const BATCH: usize = 4096;

/// An op as the planner pushed it, with its user as the ledger holds it (`None` for a
/// create), for plan.csv.
#[derive(Debug, Clone)]
pub struct PushedOp {
    pub op: NewOp,
    pub before: Option<Remote>,
}

impl PushedOp {
    /// The op as plan.csv shows it (the stored profile is read here, on the caller's thread).
    pub fn planned(self) -> PlannedOp {
        PlannedOp {
            key: self.op.key,
            kind: self.op.kind,
            payload: self.op.payload,
            before: self.before.map(|remote| Before {
                profile: serde_json::from_str(&remote.profile).ok(),
                active: remote.active,
                content: remote.content,
            }),
        }
    }
}

type Reply<T> = SyncSender<Result<T>>;

enum Command {
    Insert(Vec<PushedOp>),
    /// Passes every batch stored from now on to this channel; `None` stops (closing it).
    Forward(Option<SyncSender<Vec<PushedOp>>>),
    Remember(Vec<(String, RowMemo)>),
    Retract(Vec<String>, Reply<Vec<(String, OpKind)>>),
    Rejects(Vec<RejectRow>),
    /// Reads the plan's ops back, in plan order, into the channel (closed at the end).
    Export(SyncSender<Result<Vec<PlannedOp>>>),
    Commit(Reply<()>),
    /// Deletes the replaced plan's ops now rather than when idle (for tests that need them
    /// gone before the next op is stored).
    #[cfg(test)]
    DeleteReplaced(Reply<()>),
}

/// A plan being written. Dropped without [`PlanTx::commit`], it leaves the ledger as it was.
pub struct PlanTx {
    reader: Connection,
    to_writer: SyncSender<Command>,
    batch: Vec<PushedOp>,
    memos: Vec<(String, RowMemo)>,
    /// Ops withdrawn after they were stored (and so perhaps already shown).
    withdrawn: usize,
    committed: bool,
    /// The deactivatable keys read with the index, when the caller has them.
    known_keys: Option<crate::plan::KnownKeys>,
}

pub(super) fn write_plan<T>(
    conn: &mut Connection,
    path: &Path,
    run_id: i64,
    produce: impl FnOnce(&mut PlanTx) -> Result<T>,
) -> Result<T> {
    let reader = Connection::open_with_flags(path, super::read_only_flags())
        .with_context(|| format!("cannot open ledger {} to read", path.display()))?;
    reader.busy_timeout(std::time::Duration::from_secs(5))?;
    // The users a night changes are scattered over the whole table: with the default 2 MB
    // cache, each lookup read the b-tree's inner pages again from the file as well.
    reader.pragma_update(None, "cache_size", -32768)?;
    // Two batches in flight at most: the planner never runs far ahead of the disk.
    let (to_writer, commands) = sync_channel::<Command>(2);
    let (started_tx, started) = sync_channel::<Result<()>>(1);
    let (stop_syncing, syncing) = sync_channel::<()>(0);
    std::thread::scope(|scope| {
        scope.spawn(move || sync_wal_while_writing(path, &syncing));
        let writer = scope.spawn(move || {
            let written = writer(conn, run_id, commands, started_tx);
            drop(stop_syncing);
            written
        });
        let outcome = (|| {
            started
                .recv()
                .map_err(|_| anyhow!("the plan writer stopped before starting"))??;
            let mut tx = PlanTx {
                reader,
                to_writer,
                batch: Vec::with_capacity(BATCH),
                memos: Vec::new(),
                withdrawn: 0,
                committed: false,
                known_keys: None,
            };
            produce(&mut tx)
            // `tx` is dropped here, closing the channel: the writer rolls back unless the plan
            // was committed.
        })();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the plan writer panicked")));
        // The writer's own error explains a closed channel better than the send that saw it.
        match (outcome, written) {
            (Err(_), Err(cause)) => Err(cause),
            (outcome, _) => outcome,
        }
    })
}

/// Ops written after which the writer's page cache shrinks to 16 MB: a plan this big is mostly
/// appending to the ops table, whose inner pages and right edge that holds, and a bigger cache
/// only held dirty pages back for the commit to write, after everything else (spilled as they
/// come, [`sync_wal_while_writing`] gets them onto the disk meanwhile).
const APPENDING_FROM: usize = 32_768;

/// How often the WAL is synced while a plan is written.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Syncs the ledger's WAL to disk every [`SYNC_EVERY`] until `stop` is closed, while the plan
/// writer fills it. The commit must sync the WAL (a stored plan survives a power loss); a
/// first import's plan writes some 300 MB there, which the commit then waited a quarter of
/// a second to get onto the disk, everything else done. Synced as it is written (as
/// RocksDB's `wal_bytes_per_sync` does), the disk works while the roster is read, and the
/// commit syncs only the last part. An extra sync changes nothing else; one that fails is
/// left to the commit's own, which says why.
fn sync_wal_while_writing(ledger: &Path, stop: &Receiver<()>) {
    let wal = super::file::sibling(ledger, "-wal");
    let mut file = None;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(SYNC_EVERY) {
        if file.is_none() {
            file = std::fs::File::open(&wal).ok();
        }
        if let Some(file) = &file {
            let _ = file.sync_data();
        }
    }
}

/// The writer thread: owns the transaction, runs commands in order.
fn writer(
    conn: &mut Connection,
    run_id: i64,
    commands: Receiver<Command>,
    started: SyncSender<Result<()>>,
) -> Result<()> {
    // A bigger page cache for the plan: a night's row memos are scattered over the users
    // table, and with less its inner pages were read again and again (see also
    // `APPENDING_FROM`).
    conn.pragma_update(None, "cache_size", -65536)?;
    // The commit syncs the WAL: the checkpoint that used to sync a plan is deferred (see
    // `super::checkpoint`), and a committed plan must survive a power loss as it did.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let written = write(conn, run_id, commands, started);
    // Apply's many small commits are left to the checkpoint to sync, as before.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    written
}

fn write(
    conn: &mut Connection,
    run_id: i64,
    commands: Receiver<Command>,
    started: SyncSender<Result<()>>,
) -> Result<()> {
    let begin = begin_plan(conn, run_id);
    let (
        tx,
        mut replaced,
        mut keep,
        Ids {
            first: ops_from,
            next,
        },
    ) = match begin {
        Ok(begun) => {
            let _ = started.send(Ok(()));
            begun
        }
        Err(e) => {
            let _ = started.send(Err(anyhow!("cannot start writing the plan: {e:#}")));
            return Err(e);
        }
    };
    let now = now_ms();
    // Ids are given, not left to SQLite: it would number after the highest id left, and the
    // replaced ops deleted meanwhile may leave that below this plan's first id.
    let mut next_id = next;
    let mut encoder = payload::Encoder::default();
    let mut encoded = Encoded::default();
    let mut written_ops = 0;
    let mut forward: Option<SyncSender<Vec<PushedOp>>> = None;
    loop {
        // The replaced plan's ops are deleted a slice at a time whenever the planner has
        // nothing for this thread: its thread reading the roster is the longer job.
        let command = if replaced.is_empty() {
            match commands.recv() {
                Ok(command) => command,
                Err(_) => break,
            }
        } else {
            match commands.try_recv() {
                Ok(command) => command,
                Err(TryRecvError::Empty) => {
                    replaced.delete_some(&tx)?;
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        };
        match command {
            Command::Insert(ops) => {
                encoded.encode(&ops, &mut encoder);
                let written = match keep.as_mut() {
                    Some(keep) => keep_same(&tx, &ops, &encoded, keep, &mut replaced)?,
                    None => vec![true; ops.len()],
                };
                // Another roster altogether: the old ops are deleted while the planner is
                // busy, as without keeping, not all at the commit.
                if keep.as_ref().is_some_and(Keep::hopeless)
                    && let Some(keep) = keep.take()
                {
                    keep.finish(&mut replaced);
                }
                let rows: Vec<(&NewOp, &[u8])> = ops
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| written[*i])
                    .map(|(i, pushed)| (&pushed.op, encoded.payload(i)))
                    .collect();
                for rows in rows.chunks(ROWS_PER_INSERT) {
                    insert_ops(&tx, rows, run_id, now, &mut next_id)?;
                }
                if written_ops < APPENDING_FROM && written_ops + rows.len() >= APPENDING_FROM {
                    tx.pragma_update(None, "cache_size", -16384)?;
                }
                written_ops += rows.len();
                // Shown only once stored. A reader that hung up has failed on its own and
                // says why when it is joined; the plan itself goes on.
                if let Some(to) = &forward
                    && to.send(ops).is_err()
                {
                    forward = None;
                }
            }
            Command::Forward(to) => forward = to,
            Command::Remember(memos) => {
                let mut update = tx.prepare_cached(
                    "UPDATE users SET row_digest = ?2, row_state = ?3, row_email = ?4 WHERE key = ?1",
                )?;
                for (key, row) in memos {
                    update.execute(params![key, row.digest, row.state, row.email])?;
                }
            }
            Command::Retract(keys, reply) => {
                let retracted = stop_keeping(&tx, &mut keep, &mut replaced)
                    .and_then(|()| retract(&tx, ops_from, &keys));
                let _ = reply.send(retracted);
            }
            Command::Rejects(rejects) => {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO rejects (run_id, line, column_name, reason, original) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for row in rejects {
                    insert.execute(params![
                        run_id,
                        row.line as i64,
                        row.column,
                        row.reason,
                        row.original
                    ])?;
                }
            }
            Command::Export(out) => {
                let exported = stop_keeping(&tx, &mut keep, &mut replaced)
                    .and_then(|()| export(&tx, ops_from, &out));
                if let Err(error) = exported {
                    let _ = out.send(Err(error));
                }
            }
            #[cfg(test)]
            Command::DeleteReplaced(reply) => {
                let _ = reply.send(stop_keeping(&tx, &mut keep, &mut replaced));
            }
            Command::Commit(reply) => {
                let kept = keep.as_ref().map_or(0, Keep::kept);
                let committed = stop_keeping(&tx, &mut keep, &mut replaced)
                    .and_then(|()| Ok(tx.commit()?))
                    .context("cannot commit the plan");
                if committed.is_ok() && kept > 0 {
                    tracing::debug!(kept, "ops of the replaced plan kept as they were");
                }
                let _ = reply.send(committed);
                return Ok(());
            }
        }
    }
    // The planner gave up (or refused the plan): `tx` rolls back as it drops.
    Ok(())
}

/// Ops inserted by one statement: a million single-row inserts spent a third of their time
/// starting and ending statements; many rows a statement share that cost.
const ROWS_PER_INSERT: usize = 32;

/// The insert of `rows` ops: `?1` the run, `?2` the time, then five parameters an op.
fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let at = 3 + i * 5;
            format!(
                "(?{}, ?1, ?{}, ?{}, ?{}, ?{}, 'pending', ?2)",
                at,
                at + 1,
                at + 2,
                at + 3,
                at + 4
            )
        })
        .collect();
    format!(
        "INSERT INTO ops (id, run_id, key, seq, kind, payload, state, updated_at) VALUES {}",
        values.join(", ")
    )
}

/// The payloads of a batch of ops, encoded one after another.
#[derive(Default)]
struct Encoded {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Encoded {
    fn encode(&mut self, ops: &[PushedOp], encoder: &mut payload::Encoder) {
        self.bytes.clear();
        self.ends.clear();
        for pushed in ops {
            self.bytes
                .extend_from_slice(encoder.encode(&pushed.op.payload));
            self.ends.push(self.bytes.len());
        }
    }

    fn payload(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// Which ops of a batch must be written: not those of a user whose ops the replaced plan
/// holds already, identical ([`Keep`]). A batch ends between two users
/// ([`PlanTx::push_op`]), so each user's ops are judged together.
fn keep_same(
    tx: &Transaction,
    ops: &[PushedOp],
    encoded: &Encoded,
    keep: &mut Keep,
    replaced: &mut Replaced,
) -> Result<Vec<bool>> {
    let mut written = vec![true; ops.len()];
    let mut start = 0;
    while start < ops.len() {
        let key = &ops[start].op.key;
        let end = ops[start..]
            .iter()
            .position(|p| &p.op.key != key)
            .map_or(ops.len(), |n| start + n);
        let rows: Vec<NewOpRow<'_>> = (start..end)
            .map(|i| NewOpRow {
                key,
                seq: i64::from(ops[i].op.seq),
                kind: ops[i].op.kind.as_str(),
                payload: encoded.payload(i),
            })
            .collect();
        if keep.keep(tx, &rows, replaced)? {
            written[start..end].fill(false);
        }
        start = end;
    }
    Ok(written)
}

/// Ends keeping: every old op not kept is deleted now (the plan is about to be committed or
/// read back, and must hold only its own ops).
fn stop_keeping(tx: &Transaction, keep: &mut Option<Keep>, replaced: &mut Replaced) -> Result<()> {
    if let Some(keep) = keep.take() {
        keep.finish(replaced);
    }
    replaced.delete_all(tx)
}

/// Inserts `rows` (at most [`ROWS_PER_INSERT`], each an op and its encoded payload) with ids
/// from `next_id` on.
fn insert_ops(
    tx: &Transaction,
    rows: &[(&NewOp, &[u8])],
    run_id: i64,
    now: i64,
    next_id: &mut i64,
) -> Result<()> {
    static FULL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| insert_sql(ROWS_PER_INSERT));
    let mut insert = if rows.len() == ROWS_PER_INSERT {
        tx.prepare_cached(&FULL)?
    } else {
        tx.prepare_cached(&insert_sql(rows.len()))?
    };
    insert.raw_bind_parameter(1, run_id)?;
    insert.raw_bind_parameter(2, now)?;
    for (i, (op, payload)) in rows.iter().enumerate() {
        let at = 3 + i * 5;
        insert.raw_bind_parameter(at, *next_id)?;
        insert.raw_bind_parameter(at + 1, &op.key)?;
        insert.raw_bind_parameter(at + 2, op.seq)?;
        insert.raw_bind_parameter(at + 3, op.kind.as_str())?;
        insert.raw_bind_parameter(at + 4, *payload)?;
        *next_id += 1;
    }
    insert.raw_execute()?;
    Ok(())
}

/// This plan's first op id (where its ops start, recorded as `runs.ops_from`) and the id its
/// first op written gets.
struct Ids {
    first: i64,
    next: i64,
}

/// Opens the plan's transaction. A plan replaces the pending ops of the plan before it. When
/// nobody applied that plan, this one starts where it started and keeps the users' ops it
/// makes again ([`Keep`]); otherwise this plan's ops start after every op there is, which
/// withdraws the last plan's pending ops (see [`Replaced`]). Returns the transaction, the ops
/// to delete, what to keep from, and this plan's ids.
fn begin_plan(
    conn: &mut Connection,
    run_id: i64,
) -> Result<(Transaction<'_>, Replaced, Option<Keep>, Ids)> {
    let tx = conn.transaction()?;
    let last_plan = super::history::current_plan(&tx)?;
    let pending_from = last_plan.as_ref().map_or(0, |plan| plan.ops_from);
    // Never below the last plan's first id: its ops may all be gone (a plan of none replaced
    // them, or kept none), and ids numbered again below it would never be pending.
    let next: i64 = tx
        .query_row("SELECT coalesce(max(id), 0) + 1 FROM ops", [], |r| r.get(0))
        .map(|next: i64| next.max(pending_from))?;
    // Only ops nobody could have touched are kept: every run since that plan's (itself
    // included) only planned. Each op kept is checked pending and never attempted as well.
    let untouched = match last_plan {
        Some(plan) if plan.ops_from < next => !tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE id >= ?1 AND id <> ?2 AND command <> 'plan')",
            params![plan.run, run_id],
            |r| r.get::<_, bool>(0),
        )?,
        _ => false,
    };
    let mut replaced = Replaced::default();
    let (first, keep) = if untouched {
        (pending_from, Some(Keep::new(pending_from, next)))
    } else {
        replaced.add(pending_from, next);
        (next, None)
    };
    tx.execute(
        "UPDATE runs SET ops_from = ?2 WHERE id = ?1",
        params![run_id, first],
    )?;
    Ok((tx, replaced, keep, Ids { first, next }))
}

/// Sends every op of the plan, with its user's row, to `out` in batches; stops early when
/// the reader hung up.
fn export(tx: &Transaction, ops_from: i64, out: &SyncSender<Result<Vec<PlannedOp>>>) -> Result<()> {
    let mut statement = tx.prepare(
        "SELECT o.id, o.key, o.kind, o.payload, u.profile, u.active, u.content FROM ops o
         LEFT JOIN users u ON u.key = o.key WHERE o.id >= ?1 ORDER BY o.id",
    )?;
    let mut rows = statement.query([ops_from])?;
    let mut batch = Vec::with_capacity(EXPORT_BATCH);
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let kind: String = row.get(2)?;
        let kind = OpKind::parse(&kind)
            .with_context(|| format!("op {id}: unknown kind {kind:?} in the ledger"))?;
        let payload =
            payload::decode(row.get_ref(3)?).with_context(|| format!("op {id} in the ledger"))?;
        let profile: Option<String> = row.get(4)?;
        let before = match profile {
            None => None,
            Some(profile) => Some(Before {
                profile: serde_json::from_str(&profile).ok(),
                active: row.get(5)?,
                content: serde_json::from_str(&row.get::<_, String>(6)?).unwrap_or_default(),
            }),
        };
        batch.push(PlannedOp {
            key: row.get(1)?,
            kind,
            payload,
            before,
        });
        if batch.len() == EXPORT_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
            if out.send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = out.send(Ok(batch));
    }
    Ok(())
}

fn retract(tx: &Transaction, ops_from: i64, keys: &[String]) -> Result<Vec<(String, OpKind)>> {
    tx.execute(
        "CREATE TEMP TABLE IF NOT EXISTS retracted (key TEXT PRIMARY KEY)",
        [],
    )?;
    tx.execute("DELETE FROM temp.retracted", [])?;
    for key in keys {
        tx.prepare_cached("INSERT OR IGNORE INTO temp.retracted (key) VALUES (?1)")?
            .execute([key])?;
    }
    let mut statement = tx.prepare(
        "DELETE FROM ops WHERE id >= ?1 AND state = 'pending' AND key IN (SELECT key FROM temp.retracted) RETURNING key, kind",
    )?;
    let rows = statement.query_map([ops_from], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut withdrawn = Vec::new();
    for row in rows {
        let (key, kind) = row?;
        withdrawn.push((
            key,
            OpKind::parse(&kind).context("unknown op kind in the ledger")?,
        ));
    }
    Ok(withdrawn)
}

impl PlanTx {
    /// The keys read with the planner's index ([`super::Ledger::index_and_keys`]): the people who
    /// left are then found among them, not by a second scan of the users.
    pub fn use_known_keys(&mut self, keys: crate::plan::KnownKeys) {
        self.known_keys = Some(keys);
    }

    /// Takes back the keys handed in with [`PlanTx::use_known_keys`] (the plan changes none
    /// of them: they are kept with the index for the next plan).
    pub fn take_known_keys(&mut self) -> Option<crate::plan::KnownKeys> {
        self.known_keys.take()
    }

    fn send(&self, command: Command) -> Result<()> {
        self.to_writer
            .send(command)
            .map_err(|_| anyhow!("the plan writer stopped"))
    }

    /// Whether ops were withdrawn after they were stored: batches passed on
    /// ([`PlanTx::forward_ops`]) then include ops the plan no longer holds.
    pub fn withdrew_ops(&self) -> bool {
        self.withdrawn > 0
    }

    /// Passes every op stored from now on to `to`, in plan order, batch by batch, with what
    /// the ledger holds of its user: plan.csv is written from these while the plan is made.
    /// Blocks when `to` is full: whoever reads it must keep up.
    pub fn forward_ops(&mut self, to: SyncSender<Vec<PushedOp>>) -> Result<()> {
        self.flush()?;
        self.send(Command::Forward(Some(to)))
    }

    /// Passes on the ops pushed so far and closes the channel of [`PlanTx::forward_ops`].
    pub fn stop_forwarding(&mut self) -> Result<()> {
        self.flush()?;
        self.send(Command::Forward(None))
    }

    fn flush(&mut self) -> Result<()> {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.send(Command::Insert(batch))?;
        }
        if !self.memos.is_empty() {
            let memos = std::mem::take(&mut self.memos);
            self.send(Command::Remember(memos))?;
        }
        Ok(())
    }

    /// Records the rows the roster reader refused.
    pub fn write_rejects(&mut self, rejects: Vec<RejectRow>) -> Result<()> {
        self.send(Command::Rejects(rejects))
    }

    /// Hands every op of the plan so far to `each`, in plan order, with what the ledger last
    /// confirmed of its user: from inside the transaction, so a plan that is never committed
    /// (a dry run, a refused plan) can be shown too. Streams: memory does not grow with the
    /// plan.
    pub fn for_each_op(&mut self, mut each: impl FnMut(PlannedOp) -> Result<()>) -> Result<()> {
        self.flush()?;
        let (out, batches) = sync_channel(EXPORT_BATCHES);
        self.send(Command::Export(out))?;
        for batch in batches {
            for op in batch? {
                each(op)?;
            }
        }
        Ok(())
    }

    /// Waits until the replaced plan's ops are deleted.
    #[cfg(test)]
    pub fn delete_replaced(&mut self) -> Result<()> {
        self.flush()?;
        let (reply, answer) = sync_channel(1);
        self.send(Command::DeleteReplaced(reply))?;
        answer
            .recv()
            .map_err(|_| anyhow!("the plan writer stopped"))?
    }

    /// Stores the plan: every op pushed and every reject written, or nothing.
    pub fn commit(&mut self) -> Result<()> {
        anyhow::ensure!(!self.committed, "the plan is already committed");
        self.flush()?;
        let (reply, answer) = sync_channel(1);
        self.send(Command::Commit(reply))?;
        answer
            .recv()
            .map_err(|_| anyhow!("the plan writer stopped before committing"))??;
        self.committed = true;
        Ok(())
    }
}

impl PlanIo for PlanTx {
    fn remote(&mut self, key: &str) -> Result<Option<Remote>> {
        type Row = (Option<String>, String, String, String, bool);
        let found: Option<Row> = self
            .reader
            .prepare_cached(
                "SELECT uuid, email, content, profile, active FROM users WHERE key = ?1",
            )?
            .query_row([key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        Ok(found.and_then(|(uuid, email, content, profile, active)| {
            Some(Remote {
                uuid: uuid?,
                email,
                content: serde_json::from_str(&content).unwrap_or_default(),
                profile,
                active,
            })
        }))
    }

    fn keys_of(&mut self, wanted: &HashSet<u64>) -> Result<Vec<String>> {
        if let Some(keys) = &self.known_keys {
            return Ok(keys.of(wanted));
        }
        let mut statement = self.reader.prepare_cached(
            "SELECT key FROM users INDEXED BY users_digest WHERE active AND uuid IS NOT NULL",
        )?;
        let mut rows = statement.query([])?;
        let mut keys = Vec::new();
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_str()?;
            if wanted.contains(&fingerprint(key)) {
                keys.push(key.to_owned());
            }
        }
        Ok(keys)
    }

    fn unaccepted_since(&mut self, before_ms: i64) -> Result<Vec<String>> {
        let mut statement = self.reader.prepare_cached(
            "SELECT key FROM users WHERE active AND uuid IS NOT NULL AND NOT accepted
             AND coalesce(last_remind_at, created_at) < ?1",
        )?;
        let keys = statement
            .query_map([before_ms], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(keys)
    }

    fn push_op(&mut self, op: NewOp, before: Option<&Remote>) -> Result<()> {
        // A full batch goes between two users, never inside one's ops: the writer judges
        // each user's ops together (see `keep_same`).
        if self.batch.len() >= BATCH && self.batch.last().is_some_and(|last| last.op.key != op.key)
        {
            self.flush()?;
        }
        // Encoded on the writer's thread: this one reads and diffs the roster, the longer job.
        self.batch.push(PushedOp {
            op,
            before: before.cloned(),
        });
        Ok(())
    }

    fn remember(&mut self, key: &str, row: RowMemo) -> Result<()> {
        self.memos.push((key.to_owned(), row));
        if self.memos.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn retract(&mut self, keys: &[String]) -> Result<Vec<(String, OpKind)>> {
        self.flush()?;
        let (reply, answer) = sync_channel(1);
        self.send(Command::Retract(keys.to_vec(), reply))?;
        let withdrawn = answer
            .recv()
            .map_err(|_| anyhow!("the plan writer stopped"))??;
        self.withdrawn += withdrawn.len();
        Ok(withdrawn)
    }
}
