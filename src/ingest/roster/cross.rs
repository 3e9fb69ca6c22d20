//! The cross-row rules of a roster: an external_id on several rows, or an email under several
//! external_ids, rejects every row involved.
//!
//! Owns the bookkeeping by fingerprint (keys already in the ledger are tracked in its index;
//! only new ones here) and the rejects it gives; it must never let one of two conflicting
//! rows through.

use super::*;

/// The cross-row rules: an external_id on several rows, or an email under several
/// external_ids, is an error in the export that rostersync cannot settle by picking one, so
/// every row involved is rejected. Keeps 64-bit fingerprints, not the strings, so a million
/// rows cost tens of megabytes.
#[derive(Default)]
pub struct CrossRowCheck {
    /// (key, line) of every row whose key the caller does not track: sorted once at the end,
    /// like the emails (a first import's million keys spent more in a growing map).
    keys: Vec<(u64, u64)>,
    /// (email, key, line) of every valid row: sorted once at the end, which costs a fraction
    /// of a million random inserts into a map.
    emails: Vec<(u64, u64, u64)>,
    conflicts: Conflicts,
}

/// Keys and emails found on conflicting rows, with their lines.
#[derive(Default)]
pub struct Conflicts {
    keys: HashMap<u64, Vec<u64>>,
    emails: HashMap<u64, Vec<u64>>,
    keys_of_email: HashMap<u64, Vec<String>>,
}

impl CrossRowCheck {
    /// A check sized for about `rows` rows, so its maps do not grow row by row.
    pub fn with_capacity(rows: usize) -> CrossRowCheck {
        CrossRowCheck {
            // Keys already in the ledger are tracked in its index; only new ones land here.
            keys: Vec::new(),
            emails: Vec::with_capacity(rows),
            conflicts: Conflicts::default(),
        }
    }

    /// Records a row's key (and email, for valid rows).
    pub fn observe(&mut self, key: &str, email: Option<&str>, line: u64) {
        let key_hash = fingerprint(key);
        self.observe_key(key_hash, line);
        if let Some(email) = email {
            self.observe_email(key_hash, email, line);
        }
    }

    /// Records a key by its fingerprint.
    pub fn observe_key(&mut self, key_hash: u64, line: u64) {
        self.keys.push((key_hash, line));
    }

    /// Records a key seen again on `line`, first seen on `first`: for callers that track
    /// first lines themselves (the planner does, in the ledger's index).
    pub fn key_repeated(&mut self, key_hash: u64, first: u64, line: u64) {
        let lines = self
            .conflicts
            .keys
            .entry(key_hash)
            .or_insert_with(|| vec![first]);
        lines.push(line);
    }

    /// Records a valid row's email under its key's fingerprint.
    pub fn observe_email(&mut self, key_hash: u64, email: &str, line: u64) {
        self.observe_email_hash(key_hash, fingerprint(email), line);
    }

    /// Records a valid row's email by its fingerprint.
    pub fn observe_email_hash(&mut self, key_hash: u64, email_hash: u64, line: u64) {
        self.emails.push((email_hash, key_hash, line));
    }

    /// The conflicts found. An email's conflict lists its first row and every row whose key
    /// differs from that row's (rows repeating the first row's key are the key rule's).
    pub fn finish(mut self) -> Conflicts {
        let mut keys = std::mem::take(&mut self.keys);
        keys.sort_unstable();
        for group in keys.chunk_by(|a, b| a.0 == b.0) {
            let (key, first) = group[0];
            for &(_, line) in &group[1..] {
                self.key_repeated(key, first, line);
            }
        }
        self.emails
            .sort_unstable_by_key(|&(email, _, line)| (email, line));
        for group in self.emails.chunk_by(|a, b| a.0 == b.0) {
            let (email, first_key, first_line) = group[0];
            let others = group.iter().filter(|&&(_, key, _)| key != first_key);
            let mut lines: Vec<u64> = others.map(|&(_, _, line)| line).collect();
            if !lines.is_empty() {
                lines.insert(0, first_line);
                self.conflicts.emails.insert(email, lines);
            }
        }
        self.conflicts
    }
}

impl Conflicts {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.emails.is_empty()
    }

    /// Every line involved in a conflict.
    pub fn lines(&self) -> HashSet<u64> {
        self.keys
            .values()
            .chain(self.emails.values())
            .flatten()
            .copied()
            .collect()
    }

    /// Whether a key is refused because it is on several rows (its user must be left alone).
    pub fn has_key(&self, key: &str) -> bool {
        self.keys.contains_key(&fingerprint(key))
    }

    /// Why a valid row is refused after all, if it is.
    pub fn reason(&mut self, key: &str, email: &str) -> Option<(&'static str, RejectReason)> {
        if let Some(lines) = self.keys.get(&fingerprint(key)) {
            let mut sorted = lines.clone();
            sorted.sort_unstable();
            let list = sorted
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Some((
                "external_id",
                RejectReason::DuplicateKey(key.to_owned(), list),
            ));
        }
        let email_hash = fingerprint(email);
        if self.emails.contains_key(&email_hash) {
            let keys = self.keys_of_email.entry(email_hash).or_default();
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
                keys.sort();
            }
            return Some((
                "email",
                RejectReason::SharedEmail(email.to_owned(), String::new()),
            ));
        }
        None
    }

    /// The reject for a valid row refused by a cross-row rule; call once every refused row's
    /// [`Conflicts::reason`] has been asked, so that messages name all the keys involved.
    pub fn reject(&self, user: &DesiredUser, column: &str, reason: RejectReason) -> Reject {
        let reason = match reason {
            RejectReason::SharedEmail(email, _) => {
                let keys = self
                    .keys_of_email
                    .get(&fingerprint(&email))
                    .map(|k| k.join(", "))
                    .unwrap_or_default();
                format!(
                    "email {email:?} is used by several external_ids ({keys}); every one of those rows is rejected"
                )
            }
            other => other.to_string(),
        };
        Reject {
            line: user.line,
            column: column.to_owned(),
            reason,
            original: String::new(),
            key: Some(user.key.clone()),
            email: Some(user.email.clone()),
        }
    }
}
