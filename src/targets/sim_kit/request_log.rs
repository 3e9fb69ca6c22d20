//! A simulator's bounded record of the requests it received, numbered in arrival order.
//!
//! Tests read it through the admin endpoints to prove what a client sent. Owns numbering and
//! the bound only; each simulator defines its own entry type (what an entry says is specific
//! to its API). Bounded: the oldest entries go first, so a million-request benchmark cannot
//! exhaust memory.

use std::collections::VecDeque;

/// An entry that carries its sequence number, given by the log when it is pushed.
pub trait Sequenced {
    fn seq(&self) -> u64;
    fn set_seq(&mut self, seq: u64);
}

pub struct RequestLog<T> {
    entries: VecDeque<T>,
    capacity: usize,
    next_seq: u64,
}

impl<T: Sequenced + Clone> RequestLog<T> {
    pub fn new(capacity: usize) -> RequestLog<T> {
        RequestLog {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
        }
    }

    /// Numbers `entry` (from 1, never reused, not even after [`RequestLog::clear`]) and keeps
    /// it, dropping the oldest entry when full.
    pub fn push(&mut self, mut entry: T) {
        entry.set_seq(self.next_seq);
        self.next_seq += 1;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Entries with `seq > since`, oldest first, at most `limit`.
    pub fn since(&self, since: u64, limit: usize) -> Vec<T> {
        let start = self.entries.partition_point(|e| e.seq() <= since);
        self.entries.range(start..).take(limit).cloned().collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The query of `GET /admin/requests`: entries after `since`, at most `limit`.
#[derive(Debug, serde::Deserialize)]
pub struct Page {
    #[serde(default)]
    pub since: u64,
    #[serde(default = "every_entry")]
    pub limit: usize,
}

fn every_entry() -> usize {
    usize::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Entry(u64);

    impl Sequenced for Entry {
        fn seq(&self) -> u64 {
            self.0
        }
        fn set_seq(&mut self, seq: u64) {
            self.0 = seq;
        }
    }

    #[test]
    fn keeps_the_newest_entries_and_pages_by_sequence() {
        let mut log = RequestLog::new(3);
        for _ in 0..5 {
            log.push(Entry(0));
        }
        let seqs: Vec<u64> = log.since(0, 10).iter().map(|e| e.0).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        let seqs: Vec<u64> = log.since(3, 1).iter().map(|e| e.0).collect();
        assert_eq!(seqs, vec![4]);
        log.clear();
        log.push(Entry(0));
        assert_eq!(log.since(0, 10)[0].0, 6, "numbers are never reused");
    }
}
