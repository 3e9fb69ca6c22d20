//! What the prancer simulator's request log says about each API request: tests read it to
//! prove exactly what a client sent (that nothing was sent, that no invitation went twice).
//!
//! Owns the entry's shape. Every request to the API's paths is kept, unknown routes
//! included (a client calling `api/user/roles` with one slash shows up as a 404 here); admin
//! requests are not. The token is never kept; a body is kept as JSON when it parses, as text
//! otherwise, and only up to [`BODY_KEPT`] bytes. Numbering and the bound are the shared
//! `sim_kit::request_log`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::targets::sim_kit::request_log::{self, Sequenced};

/// The log of a prancer simulator.
pub type RequestLog = request_log::RequestLog<LogEntry>;

/// The longest body kept in an entry, in bytes; a longer one is noted by its length. An
/// honest body is a few fields, well under this; the bound keeps a full log (200,000
/// entries by default) within a few hundred megabytes whatever clients send.
pub const BODY_KEPT: usize = 1024;

/// Which API operation a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Invite,
    Get,
    List,
    Delete,
    Roles,
    Tour,
}

/// What the simulator did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A change was made (an invitation sent or re-sent, groups set, a user deleted, a tour
    /// status set).
    Applied,
    /// A read was answered.
    Read,
    /// Refused with a 4xx (validation, auth, permission, not found, unknown route).
    Rejected,
    /// Refused with 429 by the token bucket.
    RateLimited,
    /// Failed with an injected 5xx before processing.
    InjectedError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// `None` for a path or method that is no endpoint of the API.
    pub endpoint: Option<Endpoint>,
    pub method: String,
    /// The path as received, the customer segment included.
    pub path: String,
    /// The email of the account whose token was accepted.
    pub caller: Option<String>,
    /// The body: its JSON when it parses, its text otherwise, `None` when empty.
    pub body: Option<Value>,
    pub status: u16,
    pub outcome: Outcome,
    /// The connection was dropped after processing: the client never saw `status`.
    pub dropped: bool,
}

impl Sequenced for LogEntry {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}

/// The body as an entry keeps it.
pub fn kept_body(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    if body.len() > BODY_KEPT {
        return Some(Value::String(format!("<{} bytes, not kept>", body.len())));
    }
    Some(
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_kept_as_json_or_text_and_never_long() {
        assert_eq!(kept_body(b""), None);
        assert_eq!(
            kept_body(br#"{"email":"a@b.c"}"#),
            Some(serde_json::json!({"email": "a@b.c"}))
        );
        assert_eq!(kept_body(b"{oops"), Some(Value::String("{oops".into())));
        let long = vec![b'x'; BODY_KEPT + 1];
        assert_eq!(
            kept_body(&long),
            Some(Value::String(format!(
                "<{} bytes, not kept>",
                BODY_KEPT + 1
            )))
        );
    }
}
