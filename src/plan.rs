//! The plan: what must change on the platform so that it matches the roster.
//!
//! Owns the diff of desired users against the ledger's last confirmed state, the fingerprints
//! that make a no-change night cheap, and the safety thresholds (deactivations, updates). It reads rows
//! from the [`RosterReader`] it is handed and writes nothing itself: the caller's [`PlanIo`]
//! stores the ops. It must never plan a change for a key whose row was rejected, nor
//! deactivate one, nor deactivate anyone on the strength of a roster the reader found broken
//! (it was not read to its end, so it cannot say who left).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;

use crate::ingest::normalize::fold;
use crate::ingest::roster::{
    CrossRowCheck, DesiredUser, Mark, RawRow, Reject, RosterReader, protected_by,
};
use crate::model::fingerprint::ProfileFields;
pub use crate::model::fingerprint::{content_hash, fingerprint, state_hash};
use crate::model::{Grant, NewOp, OpKind, OpPayload, Profile, RowMemo};
use crate::safety::Safety;

/// The plan refused by a safety threshold (exit code 3): what went over which limit, and
/// where plan.csv lists who.
#[derive(Debug)]
pub struct ThresholdExceeded {
    pub breaches: Vec<Breach>,
    /// Active users in the ledger before the plan (what the percentages are of).
    pub active: usize,
    /// The refused plan's plan.csv, once written.
    pub plan_file: Option<std::path::PathBuf>,
}

/// One threshold a plan went over.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// [`OpKind::Deactivate`] or [`OpKind::Update`].
    pub kind: OpKind,
    pub planned: usize,
    pub limit: u64,
    /// The setting, as configured (`safety.max_deactivations = "10%", ...`).
    pub setting: String,
}

impl Breach {
    /// The option that accepts this many.
    pub fn allow_flag(&self) -> String {
        match self.kind {
            OpKind::Deactivate => format!("--allow-deactivations {}", self.planned),
            _ => format!("--allow-updates {}", self.planned),
        }
    }
}

impl std::fmt::Display for ThresholdExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refusing the plan: it ")?;
        for (i, breach) in self.breaches.iter().enumerate() {
            if i > 0 {
                f.write_str(", and ")?;
            }
            let verb = match breach.kind {
                OpKind::Deactivate => "deactivates",
                _ => "updates",
            };
            write!(
                f,
                "{verb} {} users, over the limit of {} ({} active in the ledger; {})",
                breach.planned, breach.limit, self.active, breach.setting
            )?;
        }
        if let Some(file) = &self.plan_file {
            write!(f, "; see who in {}", crate::human::path(file))?;
        }
        let flags: Vec<String> = self.breaches.iter().map(Breach::allow_flag).collect();
        write!(
            f,
            "; if this is intended, run again with {}",
            flags.join(" ")
        )
    }
}

impl std::error::Error for ThresholdExceeded {}

/// The ops of one plan and what they amount to.
#[derive(Debug, Default)]
pub struct Plan {
    pub counts: BTreeMap<OpKind, usize>,
    ops_pushed: usize,
    /// Active users with a platform UUID in the ledger before this plan.
    pub active_before: usize,
    /// Roster users that need nothing.
    pub unchanged: usize,
    /// New keys whose row says inactive: nobody to create.
    pub skipped_inactive: usize,
    /// Ledger users absent from the roster but kept because a rejected row names them.
    pub protected: usize,
    /// Ledger users absent from the roster but not deactivated because the roster is broken,
    /// or because rows that could not be split into fields may be theirs.
    pub withheld: usize,
    /// Lines of rows that could not be split into fields and name nobody the ledger knows:
    /// they may be anyone, so no one is deactivated tonight.
    pub unidentified: Vec<u64>,
    /// Changes the roster asks for that the target cannot make (a profile change on a
    /// platform without profile updates), by kind: reported, never planned.
    pub unsupported: BTreeMap<OpKind, Unsupported>,
}

/// The changes of one kind the target cannot make.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Unsupported {
    pub count: usize,
    /// The first keys, for the warning ([`Unsupported::SHOWN`] at most).
    pub keys: Vec<String>,
}

impl Unsupported {
    pub const SHOWN: usize = 20;
}

/// More rows than this that cannot be split into fields, and the file is not trusted to say
/// who left: an export in another layout, not a few stray rows.
const MAX_UNSPLIT_ROWS: usize = 50;

impl Plan {
    pub fn deactivations(&self) -> usize {
        self.counts.get(&OpKind::Deactivate).copied().unwrap_or(0)
    }

    fn count(&mut self, kind: OpKind, delta: isize) {
        let entry = self.counts.entry(kind).or_default();
        *entry = entry.saturating_add_signed(delta);
        if *entry == 0 {
            self.counts.remove(&kind);
        }
    }

    /// Ops in the plan.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Update ops (changed people and reactivations).
    pub fn updates(&self) -> usize {
        self.counts.get(&OpKind::Update).copied().unwrap_or(0)
    }

    /// Refuses a plan that deactivates or updates more than `safety` allows, unless the
    /// operator named at least that many with `--allow-deactivations` / `--allow-updates`.
    pub fn check_threshold(
        &self,
        safety: &Safety,
        allow_deactivations: Option<u64>,
        allow_updates: Option<u64>,
    ) -> Result<(), ThresholdExceeded> {
        let active = self.active_before as u64;
        let checks = [
            (
                OpKind::Deactivate,
                self.deactivations(),
                Some(safety.deactivation_limit(active)),
                allow_deactivations,
                safety.deactivations_shown(),
            ),
            (
                OpKind::Update,
                self.updates(),
                safety.update_limit(active),
                allow_updates,
                safety.updates_shown(),
            ),
        ];
        let mut breaches = Vec::new();
        for (kind, planned, limit, allow, setting) in checks {
            let Some(limit) = limit else { continue };
            let allowed = planned as u64 <= limit || allow.is_some_and(|n| planned as u64 <= n);
            if !allowed {
                breaches.push(Breach {
                    kind,
                    planned,
                    limit,
                    setting,
                });
            }
        }
        if breaches.is_empty() {
            Ok(())
        } else {
            Err(ThresholdExceeded {
                breaches,
                active: self.active_before,
                plan_file: None,
            })
        }
    }
}

/// Fingerprint of everything an update sends except status (handled on its own).
pub fn profile_hash(user: &DesiredUser) -> i64 {
    crate::model::fingerprint::profile_hash(&ProfileFields {
        key: &user.key,
        first_name: &user.first_name,
        last_name: &user.last_name,
        email: &user.email,
        role: user.role,
        client: &user.client,
        locations: &user.locations,
        position: user.position.as_deref(),
        program_type: user.program_type.as_deref(),
    })
}

/// The profile a create or update sends for a desired user (taken apart: a first import
/// builds a million of these, and copying each text again costs more than reading it did).
pub fn profile_of(user: DesiredUser, grants: Option<Vec<Grant>>) -> Profile {
    Profile {
        key: user.key,
        first_name: user.first_name,
        last_name: user.last_name,
        email: user.email,
        role: user.role.to_owned(),
        active: true,
        client: user.client.to_string(),
        locations: user.locations.to_vec(),
        position: user.position,
        program_type: user.program_type,
        grants,
    }
}

/// What the ledger knows of a key: just what the diff needs, so that a million of these
/// fit in tens of megabytes. The rest ([`Remote`]) is fetched only for users that change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Known {
    pub profile_hash: i64,
    pub content_hash: i64,
    pub active: bool,
    /// Whether the platform acknowledged a create (a UUID is recorded).
    pub has_uuid: bool,
    /// The digest of the user's remembered roster row when that row asks for exactly what
    /// the platform holds (a row with this digest needs nothing), else 0.
    pub settled_digest: i64,
    /// The email of the remembered roster row (for the cross-row rule on settled rows).
    pub row_email: i64,
    /// Set when a valid roster row names the key.
    pub seen: bool,
    /// The first roster line naming the key (valid or not), 0 before any: finds a key that
    /// is on several rows without a second map of a million keys.
    pub first_line: u64,
}

impl Known {
    /// What the ledger holds of a user, as the planner keeps it.
    pub fn new(
        profile_hash: i64,
        content_hash: i64,
        active: bool,
        has_uuid: bool,
        row: Option<RowMemo>,
    ) -> Known {
        let settled = row.filter(|memo| {
            has_uuid && memo.state == state_hash(active, profile_hash, content_hash)
        });
        Known {
            profile_hash,
            content_hash,
            active,
            has_uuid,
            settled_digest: settled.map_or(0, |memo| memo.digest),
            row_email: row.map_or(0, |memo| memo.email),
            seen: false,
            first_line: 0,
        }
    }
}

/// The ledger's index: key fingerprint ([`fingerprint`]) → what is known. Fingerprints, not
/// keys, so the index needs no allocation per user. A fingerprint collision cannot go
/// unnoticed: the profile fingerprint includes the key, so a colliding key looks changed, and
/// every change is checked against the ledger by the exact key ([`PlanIo::remote`]).
pub type LedgerIndex = rustc_hash::FxHashMap<u64, Known>;

/// The keys of the ledger's users that a plan could deactivate (active, acknowledged), kept
/// as one buffer while the index is read: the people who left are found among them without
/// a second scan of a million ledger rows. Tens of bytes a user, two allocations in all.
#[derive(Debug, Default)]
pub struct KnownKeys {
    bytes: String,
    ends: Vec<usize>,
}

impl KnownKeys {
    pub fn with_capacity(keys: usize) -> KnownKeys {
        KnownKeys {
            bytes: String::with_capacity(keys.saturating_mul(12)),
            ends: Vec::with_capacity(keys),
        }
    }

    pub fn push(&mut self, key: &str) {
        self.bytes.push_str(key);
        self.ends.push(self.bytes.len());
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }

    /// The keys whose fingerprint is in `wanted`.
    pub fn of(&self, wanted: &HashSet<u64>) -> Vec<String> {
        self.iter()
            .filter(|key| wanted.contains(&fingerprint(key)))
            .map(str::to_owned)
            .collect()
    }
}

/// The rest of a ledger user.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    pub uuid: String,
    pub email: String,
    /// Content this tool enrolled.
    pub content: Vec<Grant>,
    /// The profile last sent and acknowledged, as the ledger stores it (JSON), unread: only
    /// plan.csv shows it, and it reads it on a thread of its own.
    pub profile: String,
    pub active: bool,
}

/// Where the planner reads the rest of a user and writes its ops: the ledger's plan
/// transaction in production, memory in tests.
pub trait PlanIo {
    /// The ledger's user with exactly this key, if any.
    fn remote(&mut self, key: &str) -> Result<Option<Remote>>;
    /// Keys of active, acknowledged users whose fingerprint is in `wanted`.
    fn keys_of(&mut self, wanted: &HashSet<u64>) -> Result<Vec<String>>;
    /// Keys of active, acknowledged users whose invitation was last sent before `before_ms`
    /// (milliseconds since the epoch) and is not known to be accepted.
    fn unaccepted_since(&mut self, before_ms: i64) -> Result<Vec<String>>;
    /// Stores an op; `before` is its user as the ledger holds it (`None` for a create), for
    /// plan.csv to show what the op changes.
    fn push_op(&mut self, op: NewOp, before: Option<&Remote>) -> Result<()>;
    /// Stores an op whose user the ledger does not hold.
    fn push(&mut self, op: NewOp) -> Result<()> {
        self.push_op(op, None)
    }
    /// Remembers what a ledger user's roster row normalized to.
    fn remember(&mut self, key: &str, row: RowMemo) -> Result<()>;
    /// Withdraws the ops already pushed for these keys (refused later by a cross-row rule);
    /// returns the kinds withdrawn, by key.
    fn retract(&mut self, keys: &[String]) -> Result<Vec<(String, OpKind)>>;
}

/// Rows read ahead while the ledger's index loads (the two long steps of a big night, which
/// need nothing from each other), with a mark every [`EarlyRows::MARK_EVERY`] rows to read
/// them again from, and one after the last.
#[derive(Default)]
pub struct EarlyRows {
    rows: Vec<RawRow>,
    marks: Vec<Mark>,
    end: Option<Mark>,
}

impl EarlyRows {
    /// Close together: a night's changed rows are scattered all over the file (1% of a
    /// million rows is one in a hundred), and only the rows between a mark and a changed row
    /// are parsed again. A mark is a few dozen bytes.
    const MARK_EVERY: usize = 16;

    /// Reads rows while `more()` says so and rows remain.
    pub fn read(reader: &mut RosterReader<'_>, more: impl Fn() -> bool) -> Result<EarlyRows> {
        let mut early = EarlyRows::default();
        while more() {
            if early.rows.len() % Self::MARK_EVERY == 0 {
                early.marks.push(reader.mark());
            }
            match reader.next_raw()? {
                Some(raw) => early.rows.push(raw),
                None => break,
            }
        }
        early.end = Some(reader.mark());
        Ok(early)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Diffs a roster, streamed row by row, against the ledger's index.
pub struct Planner<'io, Io: PlanIo> {
    index: LedgerIndex,
    io: &'io mut Io,
    plan: Plan,
    cross: CrossRowCheck,
    rejects: Vec<Reject>,
    valid: u64,
    /// Lines of valid rows that produced ops (ascending: rows are read in order).
    lines_with_ops: Vec<u64>,
    /// Why the roster is broken ([`RosterReader::broken`]): then nobody is deactivated.
    broken: Option<String>,
    /// The kinds of op the target can execute ([`crate::targets::Capabilities::ops`]).
    can: &'static [OpKind],
    /// Invitations last sent before this instant (ms since the epoch) and not accepted are
    /// sent again, for a target that invites ([`Planner::remind_before`]).
    remind_before: Option<i64>,
}

/// The fingerprints of what a valid row asks for, computed once per row.
#[derive(Clone, Copy)]
struct Wanted {
    profile_hash: i64,
    content_hash: i64,
}

/// A finished plan with the rows it refused.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub rejects: Vec<Reject>,
    pub rows: u64,
    pub valid: u64,
    /// The roster is broken (the message names the file and line): no deactivation planned.
    pub broken: Option<String>,
}

impl<'io, Io: PlanIo> Planner<'io, Io> {
    pub fn new(index: LedgerIndex, io: &'io mut Io) -> Self {
        let rows_expected = index.len();
        let active_before = index.values().filter(|k| k.has_uuid && k.active).count();
        Planner {
            index,
            io,
            plan: Plan {
                active_before,
                ..Plan::default()
            },
            // The roster is usually about as long as the ledger.
            cross: CrossRowCheck::with_capacity(rows_expected),
            rejects: Vec::new(),
            valid: 0,
            lines_with_ops: Vec::new(),
            broken: None,
            can: &OpKind::ALL,
            remind_before: None,
        }
    }

    /// Plans a [`OpKind::Remind`] for every person still on the roster whose invitation was
    /// last sent before `before_ms` and is not known to be accepted.
    pub fn remind_before(mut self, before_ms: Option<i64>) -> Self {
        self.remind_before = before_ms;
        self
    }

    /// Plans only the kinds of op in `can`; a change that needs another is counted in
    /// [`Plan::unsupported`] instead.
    pub fn able_to(mut self, can: &'static [OpKind]) -> Self {
        self.can = can;
        self
    }

    /// Plans no deactivation at all: the roster could not be read to its end (`why` names
    /// the file and line), so a key missing from it may only be missing from what was read.
    pub fn roster_broken(&mut self, why: &str) {
        self.broken = Some(why.to_owned());
    }

    /// Diffs every row of a roster: first the rows read ahead, then the rest of `reader`. A
    /// row is normalized only when the ledger cannot settle it from its fingerprints; rows
    /// read ahead that need it are read again, each from the mark before it (the rows in
    /// between are parsed again, not the whole file).
    pub fn read_roster(&mut self, reader: &mut RosterReader<'_>, early: EarlyRows) -> Result<()> {
        let unsettled: Vec<usize> = (0..early.rows.len())
            .filter(|&i| !self.settled(&early.rows[i]))
            .collect();
        if !unsettled.is_empty() {
            // The row the reader gives next, by its place among the rows read ahead.
            let mut next = early.rows.len();
            let label = reader.label().to_owned();
            let changed = || anyhow::anyhow!("{label}: the roster changed while it was being read");
            for &wanted in &unsettled {
                let mark = wanted / EarlyRows::MARK_EVERY;
                if next > wanted || next / EarlyRows::MARK_EVERY < mark {
                    reader.rewind(&early.marks[mark])?;
                    next = mark * EarlyRows::MARK_EVERY;
                }
                loop {
                    let raw = reader.next_raw()?.ok_or_else(changed)?;
                    let expected = &early.rows[next];
                    next += 1;
                    if (raw.line, raw.digest) != (expected.line, expected.digest) {
                        return Err(changed());
                    }
                    if next > wanted {
                        self.row(reader.resolve(), Some(raw.digest))?;
                        break;
                    }
                }
            }
            // On after the last row read ahead. A broken row ends what is read ahead and is
            // never settled, so the reader stands after it already, knowing the file broken.
            if next < early.rows.len() {
                let end = early.end.as_ref().ok_or_else(changed)?;
                reader.rewind(end)?;
            }
        }
        while let Some(raw) = reader.next_raw()? {
            if !self.settled(&raw) {
                self.row(reader.resolve(), Some(raw.digest))?;
            }
        }
        if let Some(why) = reader.broken() {
            self.roster_broken(why);
        }
        Ok(())
    }

    /// Settles a row from its fingerprints alone when the ledger remembers the same raw row
    /// for its key and the state that row asks for is the state the platform holds: the row
    /// needs nothing, and normalizing it again would give nothing new. Returns false when the
    /// caller must resolve the row and hand it to [`Planner::row`].
    pub fn settled(&mut self, raw: &RawRow) -> bool {
        let Some(key_hash) = raw.key_hash else {
            return false;
        };
        // A key that merely shares a fingerprint has other cells, so another digest.
        let Some(email) = self
            .index
            .get(&key_hash)
            .filter(|known| known.settled_digest == raw.digest)
            .map(|known| known.row_email)
        else {
            return false;
        };
        self.observe_key(key_hash, raw.line, true);
        self.cross
            .observe_email_hash(key_hash, email as u64, raw.line);
        self.valid += 1;
        true
    }

    /// Takes one roster row; `digest` is its raw fingerprint ([`RawRow::digest`]), when known,
    /// for the ledger to remember what the row normalized to.
    pub fn row(&mut self, row: Result<DesiredUser, Reject>, digest: Option<i64>) -> Result<()> {
        match row {
            Err(reject) => {
                if let Some(key) = &reject.key {
                    self.observe_key(fingerprint(key), reject.line, false);
                }
                self.rejects.push(reject);
            }
            Ok(user) => {
                let (key_hash, known) = self.observe_key(fingerprint(&user.key), user.line, true);
                let email_hash = fingerprint(&user.email);
                self.cross
                    .observe_email_hash(key_hash, email_hash, user.line);
                self.valid += 1;
                let wanted = Wanted {
                    profile_hash: profile_hash(&user),
                    content_hash: content_hash(&user.content),
                };
                let memo = digest.map(|digest| RowMemo {
                    digest,
                    state: state_hash(user.active, wanted.profile_hash, wanted.content_hash),
                    email: email_hash as i64,
                });
                if let Some(memo) = memo
                    && known.is_some_and(|k| k.settled_digest != memo.digest)
                {
                    self.io.remember(&user.key, memo)?;
                }
                let before = self.plan.ops_pushed;
                let line = user.line;
                self.diff_one(user, wanted, known, memo)?;
                if self.plan.ops_pushed > before {
                    self.lines_with_ops.push(line);
                }
            }
        }
        Ok(())
    }

    /// Notes a row's key for the duplicate-key rule: in the ledger's index when the key is
    /// known there, in the cross-row check otherwise. Returns the key's fingerprint and what
    /// the ledger knows of it.
    fn observe_key(&mut self, key_hash: u64, line: u64, valid: bool) -> (u64, Option<Known>) {
        let Some(known) = self.index.get_mut(&key_hash) else {
            self.cross.observe_key(key_hash, line);
            return (key_hash, None);
        };
        if known.first_line == 0 {
            known.first_line = line;
        } else {
            self.cross.key_repeated(key_hash, known.first_line, line);
        }
        known.seen |= valid;
        (key_hash, Some(*known))
    }

    fn push(
        &mut self,
        key: String,
        kind: OpKind,
        payload: OpPayload,
        before: Option<&Remote>,
    ) -> Result<()> {
        if !self.can.contains(&kind) {
            let unsupported = self.plan.unsupported.entry(kind).or_default();
            unsupported.count += 1;
            if unsupported.keys.len() < Unsupported::SHOWN {
                unsupported.keys.push(key);
            }
            return Ok(());
        }
        self.plan.count(kind, 1);
        self.plan.ops_pushed += 1;
        self.io.push_op(
            NewOp {
                key,
                seq: kind.seq(),
                kind,
                payload,
            },
            before,
        )
    }

    fn diff_one(
        &mut self,
        user: DesiredUser,
        wanted: Wanted,
        known: Option<Known>,
        memo: Option<RowMemo>,
    ) -> Result<()> {
        let known = known.filter(|k| k.has_uuid);
        // Only a changed user is looked up; a key that merely shares a fingerprint with a
        // ledger user is not in the ledger, so it is new.
        let unchanged = known.is_some_and(|k| {
            user.active == k.active
                && (!user.active
                    || (wanted.profile_hash == k.profile_hash
                        && wanted.content_hash == k.content_hash))
        });
        if unchanged {
            return Ok(());
        }
        let remote = match known {
            Some(_) => self.io.remote(&user.key)?,
            None => None,
        };
        let (Some(known), Some(remote)) = (known, remote) else {
            if user.active {
                let key = user.key.clone();
                let content = user.content.to_vec();
                let payload = OpPayload {
                    remote_id: None,
                    profile: Some(profile_of(user, Some(content))),
                    items: vec![],
                    profile_hash: wanted.profile_hash,
                    row: memo,
                };
                self.push(key, OpKind::Create, payload, None)?;
            } else {
                self.plan.skipped_inactive += 1;
            }
            return Ok(());
        };
        if !user.active {
            if known.active {
                self.push(
                    user.key,
                    OpKind::Deactivate,
                    OpPayload::of_account(&remote.uuid),
                    Some(&remote),
                )?;
            }
            return Ok(());
        }
        let hash = wanted.profile_hash;
        let profile_changed = hash != known.profile_hash || !known.active;
        let content_changed = wanted.content_hash != known.content_hash;
        if !profile_changed && !content_changed {
            return Ok(());
        }
        // Worked out before the user is taken apart for the update; sent after it.
        let content_ops = if content_changed {
            [
                (OpKind::Enroll, missing_from(&user.content, &remote.content)),
                (OpKind::Remove, missing_from(&remote.content, &user.content)),
            ]
        } else {
            [(OpKind::Enroll, Vec::new()), (OpKind::Remove, Vec::new())]
        };
        let key = user.key.clone();
        if profile_changed {
            let payload = OpPayload {
                remote_id: Some(remote.uuid.clone()),
                profile: Some(profile_of(user, None)),
                items: vec![],
                profile_hash: hash,
                row: None,
            };
            self.push(key.clone(), OpKind::Update, payload, Some(&remote))?;
        }
        for (kind, items) in content_ops {
            if !items.is_empty() {
                self.push(
                    key.clone(),
                    kind,
                    OpPayload {
                        items,
                        ..OpPayload::of_account(&remote.uuid)
                    },
                    Some(&remote),
                )?;
            }
        }
        Ok(())
    }

    /// Settles the cross-row rules and plans the deactivation of keys the roster no longer
    /// names. `reread` gives the original text, key and email of rows by line (the roster is
    /// read again only when a cross-row conflict was found).
    pub fn finish(
        mut self,
        reread: impl FnOnce(&HashSet<u64>) -> Result<HashMap<u64, (String, String, String)>>,
        rows: u64,
    ) -> Result<Outcome> {
        let mut conflicts = std::mem::take(&mut self.cross).finish();
        if !conflicts.is_empty() {
            let rejected_lines: HashSet<u64> = self.rejects.iter().map(|r| r.line).collect();
            let mut lines: Vec<u64> = conflicts
                .lines()
                .into_iter()
                .filter(|l| !rejected_lines.contains(l))
                .collect();
            lines.sort_unstable();
            let originals = reread(&lines.iter().copied().collect())?;
            let mut refused = Vec::new();
            for line in lines {
                let Some((original, key, email)) = originals.get(&line) else {
                    continue;
                };
                if let Some((column, reason)) = conflicts.reason(key, email) {
                    refused.push((
                        line,
                        original.clone(),
                        key.clone(),
                        email.clone(),
                        column,
                        reason,
                    ));
                }
            }
            let mut keys = Vec::new();
            for (line, original, key, email, column, reason) in refused {
                let stub = DesiredUser {
                    key: key.clone(),
                    email: email.clone(),
                    line,
                    ..DesiredUser::default()
                };
                let mut reject = conflicts.reject(&stub, column, reason);
                reject.original = original;
                self.rejects.push(reject);
                self.valid -= 1;
                if let Ok(i) = self.lines_with_ops.binary_search(&line) {
                    self.lines_with_ops.remove(i);
                }
                keys.push(key);
            }
            keys.sort();
            keys.dedup();
            let withdrawn = self.io.retract(&keys)?;
            for (_, kind) in &withdrawn {
                self.plan.count(*kind, -1);
            }
            self.rejects.sort_by_key(|r| r.line);
        }
        let (protected_keys, protected_emails) = protected_by(&self.rejects);
        let unseen: HashSet<u64> = self
            .index
            .iter()
            .filter(|(_, k)| !k.seen && k.active && k.has_uuid)
            .map(|(fingerprint, _)| *fingerprint)
            .collect();
        let mut absent = if unseen.is_empty() {
            Vec::new()
        } else {
            self.io.keys_of(&unseen)?
        };
        absent.sort_unstable();
        // Rows refused for their field count (a row typed with another delimiter, a comma
        // lost): their key and email columns cannot be trusted, so anyone whose key or email
        // appears anywhere in such a row's text is kept.
        let unsplit: Vec<(u64, String)> = self
            .rejects
            .iter()
            .filter(|r| r.column == crate::ingest::roster::ROW_COLUMN)
            .map(|r| (r.line, fold(&r.original)))
            .collect();
        let mut named = vec![false; unsplit.len()];
        let mut deactivations = Vec::new();
        for key in absent {
            if protected_keys.contains(key.as_str()) {
                self.plan.protected += 1;
                continue;
            }
            let Some(remote) = self.io.remote(&key)? else {
                continue;
            };
            if protected_emails.contains(remote.email.as_str()) {
                self.plan.protected += 1;
                continue;
            }
            if unsplit.len() <= MAX_UNSPLIT_ROWS {
                let folded_key = fold(&key);
                let mut kept = false;
                for ((_, text), named) in unsplit.iter().zip(named.iter_mut()) {
                    if text.contains(&folded_key)
                        || (!remote.email.is_empty() && text.contains(remote.email.as_str()))
                    {
                        *named = true;
                        kept = true;
                    }
                }
                if kept {
                    self.plan.protected += 1;
                    continue;
                }
            }
            deactivations.push((key, remote));
        }
        // A row that cannot be split and names nobody who would be deactivated may still be
        // one of them (its key mistyped as well): none of them is certain.
        self.plan.unidentified = if unsplit.len() > MAX_UNSPLIT_ROWS {
            unsplit.iter().map(|(line, _)| *line).collect()
        } else {
            unsplit
                .iter()
                .zip(&named)
                .filter(|(_, named)| !**named)
                .map(|((line, _), _)| *line)
                .collect()
        };
        if !self.plan.unidentified.is_empty() && !deactivations.is_empty() {
            self.plan.withheld = deactivations.len();
            deactivations.clear();
        }
        if self.broken.is_some() {
            // Counted, for the warning, and dropped: not one of them is certain.
            self.plan.withheld = deactivations.len();
            deactivations.clear();
        }
        for (key, remote) in deactivations {
            self.push(
                key,
                OpKind::Deactivate,
                OpPayload::of_account(&remote.uuid),
                Some(&remote),
            )?;
        }
        if let Some(before) = self.remind_before {
            for key in self.io.unaccepted_since(before)? {
                // Only people the roster still names as active.
                let still_here = self
                    .index
                    .get(&fingerprint(&key))
                    .is_some_and(|k| k.seen && k.active && k.has_uuid);
                if !still_here {
                    continue;
                }
                let Some(remote) = self.io.remote(&key)? else {
                    continue;
                };
                self.push(
                    key,
                    OpKind::Remind,
                    OpPayload::of_account(&remote.uuid),
                    Some(&remote),
                )?;
            }
        }
        self.plan.unchanged =
            self.valid as usize - self.lines_with_ops.len() - self.plan.skipped_inactive;
        Ok(Outcome {
            plan: self.plan,
            rejects: self.rejects,
            rows,
            valid: self.valid,
            broken: self.broken,
        })
    }
}

/// Items of `items` whose UUID is not in `other`.
fn missing_from(items: &[Grant], other: &[Grant]) -> Vec<Grant> {
    items
        .iter()
        .filter(|c| !other.iter().any(|o| o.id == c.id))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::content_record;

    /// An in-memory ledger for the planner.
    #[derive(Default)]
    struct Memory {
        remote: HashMap<String, Remote>,
        ops: Vec<NewOp>,
        memos: HashMap<String, RowMemo>,
        unaccepted: Vec<String>,
    }

    impl PlanIo for Memory {
        fn remote(&mut self, key: &str) -> Result<Option<Remote>> {
            Ok(self.remote.get(key).cloned())
        }
        fn unaccepted_since(&mut self, _before_ms: i64) -> Result<Vec<String>> {
            Ok(self.unaccepted.clone())
        }
        fn keys_of(&mut self, wanted: &HashSet<u64>) -> Result<Vec<String>> {
            Ok(self
                .remote
                .keys()
                .filter(|k| wanted.contains(&fingerprint(k)))
                .cloned()
                .collect())
        }
        fn push_op(&mut self, op: NewOp, _before: Option<&Remote>) -> Result<()> {
            self.ops.push(op);
            Ok(())
        }
        fn remember(&mut self, key: &str, row: RowMemo) -> Result<()> {
            self.memos.insert(key.to_owned(), row);
            Ok(())
        }
        fn retract(&mut self, keys: &[String]) -> Result<Vec<(String, OpKind)>> {
            let withdrawn = self
                .ops
                .iter()
                .filter(|o| keys.contains(&o.key))
                .map(|o| (o.key.clone(), o.kind))
                .collect();
            self.ops.retain(|o| !keys.contains(&o.key));
            Ok(withdrawn)
        }
    }

    fn desired(key: &str) -> DesiredUser {
        DesiredUser {
            key: key.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            email: format!("{key}@example.com").to_lowercase(),
            role: "Learner",
            active: true,
            client: "c".into(),
            locations: vec!["l1".into()].into(),
            position: None,
            program_type: None,
            content: vec![Grant {
                id: "c1".into(),
                kind: "course".into(),
            }]
            .into(),
            line: 2,
        }
    }

    /// A ledger holding `users` exactly as they are.
    fn ledger_of(users: &[DesiredUser]) -> (LedgerIndex, Memory) {
        let mut index = LedgerIndex::default();
        let mut memory = Memory::default();
        for user in users {
            let (content_hash, _) = content_record(&user.content);
            index.insert(
                fingerprint(&user.key),
                Known::new(profile_hash(user), content_hash, user.active, true, None),
            );
            memory.remote.insert(
                user.key.clone(),
                Remote {
                    uuid: format!("uuid-{}", user.key),
                    email: user.email.clone(),
                    content: user.content.to_vec(),
                    profile: String::new(),
                    active: user.active,
                },
            );
        }
        (index, memory)
    }

    fn run(
        index: LedgerIndex,
        memory: &mut Memory,
        rows: Vec<Result<DesiredUser, Reject>>,
    ) -> Outcome {
        let count = rows.len() as u64;
        let mut planner = Planner::new(index, memory);
        for row in rows {
            planner.row(row, None).unwrap();
        }
        planner.finish(|_| Ok(HashMap::new()), count).unwrap()
    }

    fn kinds(memory: &Memory) -> Vec<(String, OpKind)> {
        let mut kinds: Vec<_> = memory.ops.iter().map(|o| (o.key.clone(), o.kind)).collect();
        kinds.sort();
        kinds
    }

    #[test]
    fn known_keys_give_back_exactly_the_keys_whose_fingerprint_is_wanted() {
        let mut keys = KnownKeys::with_capacity(0);
        for key in ["A1", "", "B22", "Zoë", "A1x"] {
            keys.push(key);
        }
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            ["A1", "", "B22", "Zoë", "A1x"]
        );
        let wanted: HashSet<u64> = ["Zoë", "A1", "missing"]
            .iter()
            .map(|k| fingerprint(k))
            .collect();
        assert_eq!(keys.of(&wanted), ["A1", "Zoë"]);
        assert!(KnownKeys::default().of(&wanted).is_empty());
    }

    #[test]
    fn converged_users_need_nothing() {
        let users = vec![desired("A"), desired("B")];
        let (index, mut memory) = ledger_of(&users);
        let outcome = run(index, &mut memory, users.into_iter().map(Ok).collect());
        assert!(memory.ops.is_empty());
        assert_eq!(outcome.plan.unchanged, 2);
    }

    #[test]
    fn one_change_of_every_kind_gives_exactly_one_op_each() {
        let base: Vec<DesiredUser> = ["NEW", "CHG", "ADD", "DEL", "OFF", "BACK", "GONE"]
            .iter()
            .map(|k| desired(k))
            .collect();
        let known: Vec<DesiredUser> = base.iter().filter(|u| u.key != "NEW").cloned().collect();
        let (mut index, mut memory) = ledger_of(&known);
        index.get_mut(&fingerprint("BACK")).unwrap().active = false;
        let mut now = base.clone();
        now.retain(|u| u.key != "GONE");
        for user in &mut now {
            match user.key.as_str() {
                "CHG" => user.last_name = "Changed".into(),
                "ADD" => {
                    let mut content = user.content.to_vec();
                    content.push(Grant {
                        id: "c2".into(),
                        kind: "course".into(),
                    });
                    user.content = content.into();
                }
                "DEL" => user.content = Vec::new().into(),
                "OFF" => user.active = false,
                _ => {}
            }
        }
        let outcome = run(index, &mut memory, now.into_iter().map(Ok).collect());
        let mut expected = vec![
            ("NEW".to_owned(), OpKind::Create),
            ("CHG".to_owned(), OpKind::Update),
            ("ADD".to_owned(), OpKind::Enroll),
            ("DEL".to_owned(), OpKind::Remove),
            ("OFF".to_owned(), OpKind::Deactivate),
            ("BACK".to_owned(), OpKind::Update),
            ("GONE".to_owned(), OpKind::Deactivate),
        ];
        expected.sort();
        assert_eq!(kinds(&memory), expected);
        assert_eq!(outcome.plan.total(), 7);
        let enroll = memory
            .ops
            .iter()
            .find(|o| o.kind == OpKind::Enroll)
            .unwrap();
        assert_eq!(
            enroll.payload.items,
            vec![Grant {
                id: "c2".into(),
                kind: "course".into()
            }]
        );
        let back = memory.ops.iter().find(|o| o.key == "BACK").unwrap();
        assert!(back.payload.profile.as_ref().unwrap().active);
        assert_eq!(back.payload.remote_id.as_deref(), Some("uuid-BACK"));
    }

    #[test]
    fn rejected_rows_protect_their_users_from_deactivation() {
        let users = [desired("A"), desired("B"), desired("C")];
        let (index, mut memory) = ledger_of(&users);
        let reject = |line: u64, key: Option<&str>, email: Option<&str>| Reject {
            line,
            column: "email".into(),
            reason: "bad".into(),
            original: String::new(),
            key: key.map(Into::into),
            email: email.map(Into::into),
        };
        let rows = vec![
            Ok(desired("A")),
            Err(reject(3, Some("B"), None)),
            Err(reject(4, None, Some("c@example.com"))),
        ];
        let outcome = run(index, &mut memory, rows);
        assert!(memory.ops.is_empty(), "{:?}", kinds(&memory));
        assert_eq!(outcome.plan.protected, 2);
    }

    /// A roster of `n` people for the sample catalog; `last_name` names person `i`.
    fn roster_text(n: usize, last_name: impl Fn(usize) -> String) -> String {
        let mut text = crate::ingest::roster::COLUMNS.join(",") + "\n";
        for i in 0..n {
            text += &format!(
                "E{i:03},Ana,{},ana{i}@example.com,,,,Lakeside Camp,,,SAFE-201\n",
                last_name(i)
            );
        }
        text
    }

    /// Plans `text` against `index`/`memory`, reading the first `ahead` rows ahead.
    fn plan_text(
        text: &str,
        index: LedgerIndex,
        memory: &mut Memory,
        ahead: usize,
    ) -> (Outcome, usize) {
        let catalog = crate::samples::catalog();
        let defaults = crate::config::Defaults {
            client: "Northwind Camps".into(),
            role: "Learner".into(),
        };
        let columns = HashMap::new();
        let mut reader = RosterReader::new(
            "roster.csv",
            std::io::Cursor::new(text.as_bytes().to_vec()),
            &catalog,
            &defaults,
            &columns,
        )
        .unwrap();
        let read = std::cell::Cell::new(0);
        let early = EarlyRows::read(&mut reader, || {
            read.set(read.get() + 1);
            read.get() <= ahead
        })
        .unwrap();
        let early_rows = early.len();
        let mut planner = Planner::new(index, memory);
        planner.read_roster(&mut reader, early).unwrap();
        let rows = reader.rows();
        (
            planner.finish(|_| Ok(HashMap::new()), rows).unwrap(),
            early_rows,
        )
    }

    /// The ledger after every op of `memory` was acknowledged (creates only).
    fn provisioned(memory: &Memory) -> (LedgerIndex, Memory) {
        let mut index = LedgerIndex::default();
        let mut ledger = Memory::default();
        for op in &memory.ops {
            assert_eq!(op.kind, OpKind::Create);
            let user = op.payload.profile.as_ref().unwrap();
            let content = user.grants.clone().unwrap();
            let row = op.payload.row;
            assert!(row.is_some(), "a create carries its row memo");
            index.insert(
                fingerprint(&op.key),
                Known::new(
                    op.payload.profile_hash,
                    content_hash(&content),
                    true,
                    true,
                    row,
                ),
            );
            ledger.remote.insert(
                op.key.clone(),
                Remote {
                    uuid: format!("uuid-{}", op.key),
                    email: user.email.clone(),
                    content,
                    profile: String::new(),
                    active: true,
                },
            );
        }
        (index, ledger)
    }

    #[test]
    fn remembered_rows_are_settled_and_changed_ones_diffed_however_many_were_read_ahead() {
        let first = roster_text(10_000, |_| "Smith".into());
        let (outcome, _) = plan_text(&first, LedgerIndex::default(), &mut Memory::default(), 0);
        assert_eq!(outcome.plan.counts.get(&OpKind::Create), Some(&10_000));
        let mut created = Memory::default();
        plan_text(&first, LedgerIndex::default(), &mut created, 0);

        let changed = |i: usize| i == 3 || i == 4_500 || i == 9_000;
        let second = roster_text(10_000, |i| {
            if changed(i) { "Jones" } else { "Smith" }.into()
        });
        // Nothing read ahead, everything, and part of it (the rewind lands on a mark before
        // the first changed row, and the stream goes on after the last row read ahead).
        for ahead in [0, 10_000, 6_000] {
            let (index, mut ledger) = provisioned(&created);
            let (outcome, early) = plan_text(&second, index, &mut ledger, ahead);
            assert_eq!(early, ahead, "rows read ahead");
            assert_eq!(
                kinds(&ledger),
                vec![
                    ("E003".to_owned(), OpKind::Update),
                    ("E4500".to_owned(), OpKind::Update),
                    ("E9000".to_owned(), OpKind::Update),
                ],
                "ahead {ahead}"
            );
            assert_eq!(outcome.plan.unchanged, 9_997, "ahead {ahead}");
            assert_eq!((outcome.rows, outcome.valid), (10_000, 10_000));
            // Only the changed rows' memos are written again.
            let mut remembered: Vec<&String> = ledger.memos.keys().collect();
            remembered.sort();
            assert_eq!(remembered, ["E003", "E4500", "E9000"], "ahead {ahead}");
        }
    }

    #[test]
    fn a_remembered_row_the_platform_does_not_hold_yet_is_planned_again() {
        let text = roster_text(3, |_| "Smith".into());
        let mut created = Memory::default();
        plan_text(&text, LedgerIndex::default(), &mut created, 0);
        // The roster asked for "Jones" last night (remembered) but that update failed: the
        // platform still holds "Smith".
        let wanted = roster_text(3, |i| if i == 1 { "Jones" } else { "Smith" }.into());
        let (index, mut ledger) = provisioned(&created);
        plan_text(&wanted, index, &mut ledger, 0);
        let asked = ledger.memos["E001"];
        let (mut index, mut ledger) = provisioned(&created);
        let known = index.get_mut(&fingerprint("E001")).unwrap();
        *known = Known::new(
            known.profile_hash,
            known.content_hash,
            true,
            true,
            Some(asked),
        );
        assert_eq!(
            known.settled_digest, 0,
            "a memo the platform does not match"
        );
        plan_text(&wanted, index, &mut ledger, 3);
        assert_eq!(kinds(&ledger), vec![("E001".to_owned(), OpKind::Update)]);
    }

    #[test]
    fn a_key_found_twice_withdraws_its_ops_and_rejects_every_row() {
        let (index, mut memory) = ledger_of(&[]);
        let mut second = desired("D");
        second.line = 5;
        let mut planner = Planner::new(index, &mut memory);
        for row in [desired("D"), desired("E"), second] {
            planner.row(Ok(row), None).unwrap();
        }
        let outcome = planner
            .finish(
                |lines| {
                    assert_eq!(lines.len(), 2, "both rows of D are read again");
                    Ok(lines
                        .iter()
                        .map(|&l| {
                            (
                                l,
                                (
                                    format!("row {l}"),
                                    "D".to_owned(),
                                    "d@example.com".to_owned(),
                                ),
                            )
                        })
                        .collect())
                },
                3,
            )
            .unwrap();
        assert_eq!(kinds(&memory), vec![("E".to_owned(), OpKind::Create)]);
        assert_eq!(outcome.plan.counts.get(&OpKind::Create), Some(&1));
        assert_eq!(outcome.rejects.len(), 2);
        assert_eq!(outcome.valid, 1);
    }

    #[test]
    fn a_known_key_found_twice_is_refused_and_left_alone() {
        let (index, mut memory) = ledger_of(&[desired("K"), desired("L")]);
        let mut changed = desired("K");
        changed.last_name = "Changed".into();
        let mut again = desired("K");
        again.line = 7;
        let mut planner = Planner::new(index, &mut memory);
        for row in [changed, desired("L"), again] {
            planner.row(Ok(row), None).unwrap();
        }
        let outcome = planner
            .finish(
                |lines| {
                    let mut sorted: Vec<u64> = lines.iter().copied().collect();
                    sorted.sort_unstable();
                    assert_eq!(sorted, vec![2, 7], "both rows of K are read again");
                    Ok(lines
                        .iter()
                        .map(|&l| {
                            (
                                l,
                                (
                                    format!("row {l}"),
                                    "K".to_owned(),
                                    "k@example.com".to_owned(),
                                ),
                            )
                        })
                        .collect())
                },
                3,
            )
            .unwrap();
        assert!(
            memory.ops.is_empty(),
            "the update of K is withdrawn: {:?}",
            kinds(&memory)
        );
        assert_eq!(outcome.rejects.len(), 2);
        assert_eq!(
            outcome.plan.deactivations(),
            0,
            "K is not deactivated either"
        );
    }

    #[test]
    fn the_threshold_refuses_unless_allowed() {
        use crate::safety::Threshold;
        let users: Vec<DesiredUser> = (0..10).map(|i| desired(&format!("U{i}"))).collect();
        let (index, mut memory) = ledger_of(&users);
        let outcome = run(
            index,
            &mut memory,
            users[..5].iter().cloned().map(Ok).collect(),
        );
        let plan = outcome.plan;
        assert_eq!(plan.deactivations(), 5);
        let strict = Safety {
            max_deactivations: Threshold::Percent(10.0),
            max_deactivations_floor: 0,
            ..Safety::default()
        };
        let refused = plan.check_threshold(&strict, None, None).unwrap_err();
        assert_eq!(
            refused.breaches,
            vec![Breach {
                kind: OpKind::Deactivate,
                planned: 5,
                limit: 1,
                setting: strict.deactivations_shown(),
            }]
        );
        assert!(
            refused
                .to_string()
                .ends_with("run again with --allow-deactivations 5"),
            "{refused}"
        );
        assert!(plan.check_threshold(&strict, Some(4), None).is_err());
        assert!(plan.check_threshold(&strict, Some(5), None).is_ok());
        let counted = Safety {
            max_deactivations: Threshold::Count(5),
            ..Safety::default()
        };
        assert!(plan.check_threshold(&counted, None, None).is_ok());
        // Half of the 10 leave: the default floor (3) never lets half go.
        assert!(
            plan.check_threshold(&Safety::default(), None, None)
                .is_err()
        );
    }

    #[test]
    fn updates_over_max_updates_are_refused_unless_allowed() {
        use crate::safety::Threshold;
        let users: Vec<DesiredUser> = (0..20).map(|i| desired(&format!("U{i}"))).collect();
        let (index, mut memory) = ledger_of(&users);
        let shifted: Vec<_> = users
            .iter()
            .map(|u| {
                let mut u = u.clone();
                u.first_name = std::mem::take(&mut u.last_name);
                u
            })
            .map(Ok)
            .collect();
        let plan = run(index, &mut memory, shifted).plan;
        assert_eq!(plan.updates(), 20);
        let refused = plan
            .check_threshold(&Safety::default(), None, None)
            .unwrap_err();
        assert_eq!(
            (refused.breaches[0].kind, refused.breaches[0].limit),
            (OpKind::Update, 15)
        );
        assert!(refused.to_string().contains("--allow-updates 20"));
        assert!(
            plan.check_threshold(&Safety::default(), None, Some(20))
                .is_ok()
        );
        let off = Safety {
            max_updates: None,
            ..Safety::default()
        };
        assert!(plan.check_threshold(&off, None, None).is_ok());
        let counted = Safety {
            max_updates: Some(Threshold::Count(19)),
            ..Safety::default()
        };
        assert!(plan.check_threshold(&counted, None, None).is_err());
    }
}
