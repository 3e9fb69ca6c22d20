//! The plan's port: what the planner knows of the ledger (the index it diffs against), and
//! the trait through which it reads the rest of a user and stores its ops.
//!
//! The plan owns this port and the ledger implements it ([`crate::ledger::PlanTx`]), so the
//! plan never names the ledger. Owns the shapes only; no I/O.

use std::collections::HashSet;

use anyhow::Result;

use crate::model::fingerprint::{fingerprint, state_hash};
use crate::model::{Grant, NewOp, OpKind, RowMemo};

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

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
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
