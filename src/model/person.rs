//! The person as rostersync wants them on a platform, in no platform's words.
//!
//! Owns the shape only. What a platform calls these fields, and which of them it can hold,
//! is the target's business (see [`crate::targets::Capabilities`]).

use serde::{Deserialize, Serialize};

/// One thing granted to a person: a content item (a course, a learning path). `id` is the
/// item's platform id, `kind` its kind as the content catalog names it.
///
/// Serialized as `{"uuid": ..., "type": ...}`: that is how the ledger has stored enrolled
/// content since its first version, and a ledger must read back what it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "uuid")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What a create or an update asks the platform to hold for one person; the ledger keeps
/// the last one acknowledged (as JSON, in `users.profile`) so plan.csv can show what changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The roster key (`external_id`).
    pub key: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// Lower-cased.
    #[serde(default)]
    pub email: String,
    /// The role, spelled as the target's role list spells it.
    #[serde(default)]
    pub role: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// The client (organisation unit) id.
    #[serde(default)]
    pub client: String,
    /// Location ids, sorted.
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_type: Option<String>,
    /// What a create grants with the account (sorted by id); `None` on an update, whose
    /// grants are ops of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<Grant>>,
}

fn yes() -> bool {
    true
}

/// An empty profile of an active person (as one read with no status is).
impl Default for Profile {
    fn default() -> Profile {
        Profile {
            key: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            role: String::new(),
            active: true,
            client: String::new(),
            locations: Vec::new(),
            position: None,
            program_type: None,
            grants: None,
        }
    }
}
