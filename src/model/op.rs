//! The op: one change the plan asks of a platform, as the plan makes it and the ledger
//! journals it.
//!
//! Owns the kinds of change and what each carries. A target decides how an op becomes
//! requests; nothing here knows any request.

use serde::{Deserialize, Serialize};

use super::{Grant, Profile};

/// The kinds of change an op makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Creates the account (or invites the person, on a platform that invites).
    Create,
    /// Brings the profile (and status) to the roster's.
    Update,
    /// Grants items (enrolls in content).
    Enroll,
    /// Takes items back.
    Remove,
    /// Grants items again from the start (recertification).
    #[serde(rename = "reenroll")]
    ReEnroll,
    /// Ends the account: deactivates it, or deletes it on a platform that cannot deactivate.
    Deactivate,
    /// Sends a pending invitation again (a platform that invites): done without sending when
    /// the platform shows it accepted.
    Remind,
}

impl OpKind {
    pub const ALL: [OpKind; 7] = [
        OpKind::Create,
        OpKind::Update,
        OpKind::Enroll,
        OpKind::Remove,
        OpKind::ReEnroll,
        OpKind::Deactivate,
        OpKind::Remind,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Enroll => "enroll",
            OpKind::Remove => "remove",
            OpKind::ReEnroll => "reenroll",
            OpKind::Deactivate => "deactivate",
            OpKind::Remind => "remind",
        }
    }

    pub fn parse(raw: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// The order of a user's ops: the account first, its end last.
    pub fn seq(self) -> u32 {
        match self {
            OpKind::Create => 0,
            OpKind::Update => 1,
            OpKind::Enroll => 2,
            OpKind::Remove => 3,
            OpKind::ReEnroll => 4,
            OpKind::Deactivate => 5,
            OpKind::Remind => 6,
        }
    }
}

/// What an op carries: enough to send it and to record its effect once acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpPayload {
    /// The account's platform id (absent for a create). Serialized as `uuid`, the name the
    /// ledger has always stored it under.
    #[serde(rename = "uuid", default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The whole profile, for create and update (grants included for a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The items of an enroll, remove or re-enroll.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Grant>,
    /// Fingerprint of the profile the op sends (create, update).
    #[serde(default)]
    pub profile_hash: i64,
    /// What the roster row behind a create normalized to, recorded with the new user so that
    /// the next night recognizes the row unchanged without normalizing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<RowMemo>,
    /// For a re-enrollment, the completion each item's expiry was counted from (ms since
    /// the epoch), in the order of `items`: recorded as answered once the op is acknowledged,
    /// so that expiry is never answered twice. Empty for every other kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completions: Vec<i64>,
}

impl OpPayload {
    /// The payload of an op that names its account only (a deactivation).
    pub fn of_account(remote_id: &str) -> OpPayload {
        OpPayload {
            remote_id: Some(remote_id.to_owned()),
            profile: None,
            items: Vec::new(),
            profile_hash: 0,
            row: None,
            completions: Vec::new(),
        }
    }
}

/// What one roster row normalized to: a fingerprint of its raw cells (`digest`, never 0), of
/// the profile, content and status it asks for (`state`, see
/// [`super::fingerprint::state_hash`]) and of its email. A memo of what a row means, not of
/// what the platform holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowMemo {
    pub digest: i64,
    pub state: i64,
    pub email: i64,
}

/// An op to write into the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOp {
    pub key: String,
    pub seq: u32,
    pub kind: OpKind,
    pub payload: OpPayload,
}

/// An op read back from the journal.
#[derive(Debug, Clone)]
pub struct Op {
    pub id: i64,
    pub key: String,
    pub seq: u32,
    pub kind: OpKind,
    pub payload: OpPayload,
}
