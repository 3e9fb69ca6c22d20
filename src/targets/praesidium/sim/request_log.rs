//! The simulator's record of every API request it received and what became of it.
//!
//! Tests read it through the admin endpoint to prove what a client sent: how many creates,
//! which change was swallowed by the duplicate window, which was processed and then had its
//! connection dropped. Bounded: the oldest entries go first, so a million-request benchmark
//! cannot exhaust memory.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

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

pub struct RequestLog {
    entries: VecDeque<LogEntry>,
    capacity: usize,
    next_seq: u64,
}

impl RequestLog {
    pub fn new(capacity: usize) -> RequestLog {
        RequestLog {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
        }
    }

    pub fn push(&mut self, mut entry: LogEntry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Entries with `seq > since`, oldest first, at most `limit`.
    pub fn since(&self, since: u64, limit: usize) -> Vec<LogEntry> {
        let start = self.entries.partition_point(|e| e.seq <= since);
        self.entries.range(start..).take(limit).cloned().collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LogEntry {
        LogEntry {
            seq: 0,
            at_ms: 0,
            endpoint: Endpoint::Get,
            method: "GET".into(),
            path: "/".into(),
            user: None,
            status: 200,
            outcome: Outcome::Read,
            dropped: false,
            body: None,
        }
    }

    #[test]
    fn keeps_the_newest_entries_and_pages_by_sequence() {
        let mut log = RequestLog::new(3);
        for _ in 0..5 {
            log.push(entry());
        }
        let seqs: Vec<u64> = log.since(0, 10).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        let seqs: Vec<u64> = log.since(3, 1).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![4]);
    }
}
