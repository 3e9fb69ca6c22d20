//! The simulator's record of every API request it received and what became of it.
//!
//! Tests read it through the admin endpoint to prove what a client sent: how many creates,
//! which change was swallowed by the duplicate window, which was processed and then had its
//! connection dropped. Owns what an entry says; numbering and the bound (the oldest entries
//! go first) are the shared `sim_kit::request_log`.

use serde::{Deserialize, Serialize};

use crate::targets::sim_kit::request_log::{self, Sequenced};

/// The log of a Praesidium simulator.
pub type RequestLog = request_log::RequestLog<LogEntry>;

/// Which API operation a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Login,
    Get,
    Create,
    Update,
    Deactivate,
    EnrollContent,
    RemoveContent,
    ReEnrollContent,
}

impl Endpoint {
    /// Change requests are the ones the duplicate window applies to.
    pub fn is_change(self) -> bool {
        !matches!(self, Endpoint::Login | Endpoint::Get)
    }
}

/// What the simulator did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A change (or a login) was made.
    Applied,
    /// A read was answered.
    Read,
    /// Identical to a change processed within the duplicate window: answered, not applied.
    IgnoredDuplicate,
    /// Refused with a 4xx (validation, auth, permission, not found).
    Rejected,
    /// Refused with 429 by the token bucket.
    RateLimited,
    /// Failed with an injected 5xx before processing.
    InjectedError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    /// The user the request was about (the new user's for a create).
    pub user: Option<String>,
    pub status: u16,
    pub outcome: Outcome,
    /// The connection was dropped after processing: the client never saw `status`.
    pub dropped: bool,
    /// The JSON body of a change request (login bodies are never kept: they hold secrets).
    pub body: Option<serde_json::Value>,
}

impl Sequenced for LogEntry {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}
