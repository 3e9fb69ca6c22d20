//! The plan: what must change on the platform so that it matches the roster.
//!
//! Owns the diff of desired users against the ledger's last confirmed state (the fingerprints
//! that make a no-change night cheap are [`crate::model::fingerprint`]'s), the changes the
//! target cannot make, and the safety thresholds ([`threshold`]). It reads rows from the
//! [`RosterReader`] it is handed and writes nothing itself: the caller's [`PlanIo`] stores the
//! ops ([`port`]). It must never plan a change for a key whose row was rejected, nor
//! deactivate one, nor deactivate anyone on the strength of a roster the reader found broken
//! (it was not read to its end, so it cannot say who left).

mod early;
mod port;
pub mod recertify;
mod threshold;

pub use early::EarlyRows;
pub use port::{Known, KnownKeys, LedgerIndex, PlanIo, Remote};
pub use threshold::{Allowances, Breach, ThresholdExceeded};

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;

use crate::ingest::normalize::fold;
use crate::ingest::roster::{
    CrossRowCheck, DesiredUser, RawRow, Record, Reject, RosterReader, protected_by,
};
use crate::model::fingerprint::ProfileFields;
pub use crate::model::fingerprint::{content_hash, fingerprint, state_hash};
use crate::model::{Grant, NewOp, OpKind, OpPayload, Profile, RowMemo};

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

/// Rows read ahead of the diff, so that their index lookups overlap ([`Planner::read_roster`]).
const LOOKAHEAD: usize = 128;

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

    /// Re-enrollment ops (recertification).
    pub fn reenrollments(&self) -> usize {
        self.counts.get(&OpKind::ReEnroll).copied().unwrap_or(0)
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
    /// Re-enrollments the recertification policy asks for, by key fingerprint
    /// ([`Planner::recertify`]); taken out as their rows are diffed.
    due: rustc_hash::FxHashMap<u64, recertify::Due>,
    /// The row memos handed to the ledger, by key fingerprint: the index is brought up to
    /// them when the plan is finished ([`Outcome::index`]).
    remembered: Vec<(u64, RowMemo)>,
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
    /// The ledger's index as the plan leaves the ledger (with the row memos it stored), for
    /// the next plan to start from once this one is committed.
    pub index: LedgerIndex,
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
            due: Default::default(),
            remembered: Vec::new(),
        }
    }

    /// Plans a [`OpKind::ReEnroll`] of the items in `due` for each learner the roster still
    /// names as active and still assigns them (the items the platform holds through this
    /// tool). Planned with the learner's other ops, when the row is diffed, so that one
    /// user's ops stay together and in order.
    pub fn recertify(mut self, due: Vec<recertify::Due>) -> Self {
        self.due = due.into_iter().map(|d| (fingerprint(&d.key), d)).collect();
        self
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
        // Rows are taken a batch at a time and their keys looked up in the index in one tight
        // loop first: the lookups of a million-user index each miss the processor's caches,
        // and made one per row parsed they wait one after another (a third of a night's
        // plan); made together, the misses overlap. Each row is then settled or resolved, in
        // order, from its saved record.
        let mut saved: Vec<Record> = Vec::new();
        saved.resize_with(LOOKAHEAD, Record::default);
        let mut raws: Vec<RawRow> = Vec::with_capacity(LOOKAHEAD);
        loop {
            raws.clear();
            while raws.len() < LOOKAHEAD {
                let Some(raw) = reader.next_raw()? else {
                    break;
                };
                reader.swap_record(&mut saved[raws.len()]);
                raws.push(raw);
            }
            if raws.is_empty() {
                break;
            }
            for raw in &raws {
                if let Some(key_hash) = raw.key_hash {
                    std::hint::black_box(self.index.get(&key_hash).map(|k| k.settled_digest));
                }
            }
            for (raw, record) in raws.iter().zip(&saved) {
                if !self.settled(raw) {
                    self.row(reader.resolve_saved(record), Some(raw.digest))?;
                }
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
        // A learner due a re-enrollment is diffed from the row itself: whether the row still
        // assigns the item is the row's to say.
        if !self.due.is_empty() && self.due.contains_key(&key_hash) {
            return false;
        }
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
                    self.remembered.push((key_hash, memo));
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
        let due = self.due_for(&user);
        let key = due.as_ref().map(|_| user.key.clone());
        self.diff_changes(user, wanted, known, memo)?;
        if let (Some(key), Some(due)) = (key, due) {
            self.reenroll(key, due)?;
        }
        Ok(())
    }

    /// The items this row's learner is due to be re-enrolled in and that the row still
    /// assigns (none for a row that ends the account).
    fn due_for(&mut self, user: &DesiredUser) -> Option<Vec<(Grant, i64)>> {
        if self.due.is_empty() {
            return None;
        }
        let key_hash = fingerprint(&user.key);
        if self.due.get(&key_hash)?.key != user.key {
            return None;
        }
        let mut due = self.due.remove(&key_hash)?.items;
        if !user.active {
            return None;
        }
        due.retain(|(item, _)| user.content.iter().any(|c| c.id == item.id));
        (!due.is_empty()).then_some(due)
    }

    /// Plans the re-enrollment of the items of `due` the platform holds for the learner
    /// through this tool (an item enrolled tonight for the first time needs none).
    fn reenroll(&mut self, key: String, mut due: Vec<(Grant, i64)>) -> Result<()> {
        let Some(remote) = self.io.remote(&key)? else {
            return Ok(());
        };
        due.retain(|(item, _)| remote.content.iter().any(|c| c.id == item.id));
        if due.is_empty() {
            return Ok(());
        }
        let (items, completions) = due.into_iter().unzip();
        let payload = OpPayload {
            items,
            completions,
            ..OpPayload::of_account(&remote.uuid)
        };
        self.push(key, OpKind::ReEnroll, payload, Some(&remote))
    }

    fn diff_changes(
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
                    completions: Vec::new(),
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
                completions: Vec::new(),
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
        // What the ledger's index reads once the memos are stored (as `Known::new` reads a
        // user's row).
        for (key_hash, memo) in std::mem::take(&mut self.remembered) {
            if let Some(known) = self.index.get_mut(&key_hash) {
                let Known {
                    profile_hash,
                    content_hash,
                    active,
                    has_uuid,
                    ..
                } = *known;
                *known = Known::new(profile_hash, content_hash, active, has_uuid, Some(memo));
            }
        }
        Ok(Outcome {
            plan: self.plan,
            rejects: self.rejects,
            rows,
            valid: self.valid,
            broken: self.broken,
            index: self.index,
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
mod tests;
