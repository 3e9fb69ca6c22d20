//! The plan a new plan replaces: its pending ops deleted, or kept where the new plan makes
//! them again.
//!
//! Re-planning a pending plan nobody has applied yet (an operator planning again after
//! fixing a few rows, a plan refused by its thresholds planned again) used to delete a
//! million ops and insert a million identical ones. A user's ops that the new plan makes
//! again byte for byte now stay where they are ([`Keep`]); only the users whose ops differ
//! are deleted and written again. The old plan is read in plan order, a window at a time,
//! beside the new one: memory is bounded by the window, never by the plan.
//!
//! Owns which old ops stay and which are deleted. It must never keep an op an apply has
//! touched (only plans nobody applied are kept from, and each kept op is checked pending and
//! never attempted), never keep a user's ops out of their order (a user's ops are kept all
//! or none, and never after one of theirs was written anew), and never leave an old op that
//! was not kept behind a committed plan.

use std::collections::VecDeque;

use anyhow::Result;
use rusqlite::{Transaction, params};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::fingerprint::fingerprint;

/// Ids of the replaced plan's ops still to be deleted, as ranges.
///
/// Pending ops are the ones at or after the newest plan's first id (`PENDING`). A plan that
/// keeps nothing starts after every op there is, so the old ops are pending no more to
/// anyone reading inside the transaction the moment its first id is recorded; one that
/// keeps ops starts where the old plan started, and the old ops it does not keep are put
/// here as it goes. Deleting them is done while the planner is busy elsewhere, and always
/// before the commit: a committed plan never leaves them behind, and a plan not committed
/// leaves them as they were.
#[derive(Debug, Default)]
pub(super) struct Replaced {
    ranges: VecDeque<(i64, i64)>,
}

impl Replaced {
    /// Ids deleted at a time: a few milliseconds of work.
    const SLICE: i64 = 4096;

    /// Ids `from..to`, after every range already added.
    pub(super) fn add(&mut self, from: i64, to: i64) {
        if from >= to {
            return;
        }
        match self.ranges.back_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => self.ranges.push_back((from, to)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub(super) fn delete_some(&mut self, tx: &Transaction) -> Result<()> {
        let Some((from, to)) = self.ranges.front_mut() else {
            return Ok(());
        };
        let until = (*to).min(*from + Self::SLICE);
        // Only pending ops: an op an apply touched is history, never deleted.
        tx.prepare_cached("DELETE FROM ops WHERE id >= ?1 AND id < ?2 AND state = 'pending'")?
            .execute(params![*from, until])?;
        *from = until;
        if *from >= *to {
            self.ranges.pop_front();
        }
        Ok(())
    }

    pub(super) fn delete_all(&mut self, tx: &Transaction) -> Result<()> {
        while !self.is_empty() {
            self.delete_some(tx)?;
        }
        Ok(())
    }
}

/// One op of the new plan, as it would be stored.
pub(super) struct NewOpRow<'a> {
    pub key: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub payload: &'a [u8],
}

/// A user's consecutive ops in the old plan.
struct OldGroup {
    key: String,
    fingerprint: u64,
    /// Ids `first..end` (a withdrawn op may have left a gap; the ids between belong to
    /// nobody else).
    first: i64,
    end: i64,
    ops: Vec<OldOp>,
    /// Every op still pending and never attempted.
    untouched: bool,
    /// Kept, or deleted because the new plan makes other ops for the user.
    taken: bool,
}

struct OldOp {
    seq: i64,
    kind: String,
    payload: Vec<u8>,
}

/// The replaced plan read beside the new one, to keep the users' ops it makes again.
///
/// The old plan is read in id order into a window of users. A user of the new plan is looked
/// for in that window, a little behind and ahead of the last user found there: rows added,
/// edited, removed or moved a little are found around them. A user not found is written
/// anew; old users the window leaves behind without being found are deleted. When many
/// users in a row are not found (a block of rows removed), the window looks further ahead,
/// up to [`Keep::MAX_AHEAD`]; past that the rest is written anew, as without keeping, and
/// after twice as many the plan is taken for another altogether ([`Keep::hopeless`]).
pub(super) struct Keep {
    /// The next old id to read, and the end of the old plan's ids.
    read_from: i64,
    end: i64,
    window: VecDeque<OldGroup>,
    /// The number of the window's first group (groups are numbered in plan order).
    front: u64,
    /// Where the first not yet taken group of each key is in the window, by the key's
    /// fingerprint, and how many of that key's groups are there (a user with row ops and a
    /// reminder at the end has two: the map is mended by a scan of the window when the first
    /// is taken, for those keys only).
    by_key: FxHashMap<u64, (u64, u32)>,
    /// The group after the last one found, and how far ahead of it to look.
    found_upto: u64,
    ahead: u64,
    /// Users looked for and not found since the last one found.
    misses: u64,
    /// Users whose ops this plan wrote anew: a later op of theirs is never kept, or it would
    /// come before them.
    written: FxHashSet<u64>,
    kept: u64,
}

impl Keep {
    /// Users looked for behind the last one found (rows moved down a little)...
    const BEHIND: u64 = 1024;
    /// ...and ahead of it (rows removed, or moved up a little).
    const AHEAD: u64 = 1024;
    /// The furthest ahead the window looks after many users in a row were not found.
    const MAX_AHEAD: u64 = 65_536;
    /// Old ops read at a time.
    const READ: i64 = 1024;

    /// Reads the old plan's ops `from..end`.
    pub(super) fn new(from: i64, end: i64) -> Keep {
        Keep {
            read_from: from,
            end,
            window: VecDeque::new(),
            front: 0,
            by_key: FxHashMap::default(),
            found_upto: 0,
            ahead: Self::AHEAD,
            misses: 0,
            written: FxHashSet::default(),
            kept: 0,
        }
    }

    /// Ops kept so far.
    pub(super) fn kept(&self) -> u64 {
        self.kept
    }

    /// Whether the new plan has gone so long without a user of the old one that it is
    /// another plan altogether: then nothing more is looked for.
    pub(super) fn hopeless(&self) -> bool {
        self.misses >= 2 * Self::MAX_AHEAD
    }

    /// Whether the new plan's ops for one user (`ops`, all of one key, in their order) are
    /// the old plan's: then they stay, and nothing is to be written. Otherwise the old
    /// plan's ops of that user, if any, go to `replaced`, and the caller writes `ops`.
    pub(super) fn keep(
        &mut self,
        tx: &Transaction,
        ops: &[NewOpRow<'_>],
        replaced: &mut Replaced,
    ) -> Result<bool> {
        let Some(first) = ops.first() else {
            return Ok(true);
        };
        let key = first.key;
        let fingerprint = fingerprint(key);
        if self.written.contains(&fingerprint) {
            return Ok(false);
        }
        let kept = match self.find(tx, fingerprint, key)? {
            Some(number) => {
                let group = self.take(number);
                let same = group.untouched
                    && group.ops.len() == ops.len()
                    && group.ops.iter().zip(ops).all(|(old, new)| {
                        old.seq == new.seq && old.kind == new.kind && old.payload == new.payload
                    });
                if !same {
                    replaced.add(group.first, group.end);
                }
                self.found_upto = self.found_upto.max(number + 1);
                self.ahead = Self::AHEAD;
                self.misses = 0;
                self.leave_behind(replaced);
                same
            }
            None => {
                self.misses += 1;
                if self.misses >= self.ahead && self.ahead < Self::MAX_AHEAD {
                    self.ahead *= 2;
                }
                false
            }
        };
        if kept {
            self.kept += ops.len() as u64;
        } else {
            self.written.insert(fingerprint);
        }
        Ok(kept)
    }

    /// Hands every old op not kept to `replaced` (the new plan is complete, or about to be
    /// read back, which must see only its own ops).
    pub(super) fn finish(mut self, replaced: &mut Replaced) {
        while let Some(group) = self.window.pop_front() {
            if !group.taken {
                replaced.add(group.first, group.end);
            }
        }
        replaced.add(self.read_from, self.end);
    }

    /// The number of the first untaken group of `key` within reach, reading ahead as needed.
    fn find(&mut self, tx: &Transaction, fingerprint: u64, key: &str) -> Result<Option<u64>> {
        let reach = self.found_upto + self.ahead;
        while self.front + (self.window.len() as u64) < reach && self.read_from < self.end {
            self.read(tx)?;
        }
        let Some(&(number, _)) = self.by_key.get(&fingerprint) else {
            return Ok(None);
        };
        // The last group read may go on in the ops not read yet: read until it is whole.
        while number + 1 == self.front + self.window.len() as u64 && self.read_from < self.end {
            self.read(tx)?;
        }
        let group = &self.window[(number - self.front) as usize];
        Ok((group.key == key && !group.taken).then_some(number))
    }

    /// Reads the next old ops into the window.
    fn read(&mut self, tx: &Transaction) -> Result<()> {
        let mut statement = tx.prepare_cached(
            "SELECT id, key, seq, kind, payload, state = 'pending' AND attempts = 0 FROM ops
             WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3",
        )?;
        let mut rows = statement.query(params![self.read_from, self.end, Self::READ])?;
        let mut read = 0;
        while let Some(row) = rows.next()? {
            read += 1;
            let id: i64 = row.get(0)?;
            let key = row.get_ref(1)?.as_str()?;
            let op = OldOp {
                seq: row.get(2)?,
                kind: row.get(3)?,
                payload: row.get_ref(4)?.as_bytes()?.to_vec(),
            };
            let untouched: bool = row.get(5)?;
            self.read_from = id + 1;
            if let Some(last) = self.window.back_mut()
                && last.key == key
                && !last.taken
            {
                last.end = id + 1;
                last.untouched &= untouched;
                last.ops.push(op);
                continue;
            }
            let fingerprint = fingerprint(key);
            let number = self.front + self.window.len() as u64;
            self.by_key.entry(fingerprint).or_insert((number, 0)).1 += 1;
            self.window.push_back(OldGroup {
                key: key.to_owned(),
                fingerprint,
                first: id,
                end: id + 1,
                ops: vec![op],
                untouched,
                taken: false,
            });
        }
        if read < Self::READ {
            self.read_from = self.end;
        }
        Ok(())
    }

    /// Takes group `number` out of the window, leaving a taken place behind.
    fn take(&mut self, number: u64) -> OldGroup {
        let place = OldGroup {
            key: String::new(),
            fingerprint: 0,
            first: 0,
            end: 0,
            ops: Vec::new(),
            untouched: false,
            taken: true,
        };
        let group = std::mem::replace(&mut self.window[(number - self.front) as usize], place);
        self.forget(group.fingerprint, number);
        group
    }

    /// Group `number` of `fingerprint` was taken or left behind: counts it out of the map,
    /// and points the map at the next untaken group of that key when it was the first.
    fn forget(&mut self, fingerprint: u64, number: u64) {
        let Some((first, count)) = self.by_key.get_mut(&fingerprint) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.by_key.remove(&fingerprint);
            return;
        }
        if *first != number {
            return;
        }
        let next = self
            .window
            .iter()
            .enumerate()
            .find(|(_, g)| !g.taken && g.fingerprint == fingerprint)
            .map(|(i, _)| self.front + i as u64);
        match next {
            Some(next) => *first = next,
            None => {
                self.by_key.remove(&fingerprint);
            }
        }
    }

    /// Deletes the groups too far behind the last one found to be found still.
    fn leave_behind(&mut self, replaced: &mut Replaced) {
        while self.front + Self::BEHIND < self.found_upto {
            let Some(group) = self.window.pop_front() else {
                break;
            };
            let number = self.front;
            self.front += 1;
            if !group.taken {
                replaced.add(group.first, group.end);
                self.forget(group.fingerprint, number);
            }
        }
    }
}
