//! The roster: one row per person, streamed from CSV into desired users and rejects.
//!
//! Owns header mapping, per-row normalization and resolution against the catalogs, and the
//! cross-row rules (a key or an email used twice). A bad row is a reject with its line,
//! column and reason, never an abort; only a structurally broken file (empty, a required
//! header missing, the header itself unreadable) is fatal. A record that breaks the file (a
//! quote that never closes or swallows rows, a record past the size limit: see
//! [`super::input`]) ends the reading there: it becomes a reject, and the reader reports the
//! roster [`RosterReader::broken`] so that nobody is deactivated on its strength. It must
//! never drop a row silently: every data row read ends up either a desired user or a reject,
//! and never lets a control or bidi character through to the platform.

mod cross;
mod resolve;

pub use cross::{Conflicts, CrossRowCheck};
use resolve::{Positions, ResolvedDefaults, Resolver, map_headers};

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustc_hash::FxHashMap;

use super::catalog::Catalog;
use super::input;
pub use super::input::Record;
use super::normalize::{clean, fold, header_key, is_valid_email, split_multi};
use super::source::{self, Format, Opened, ReadOptions, ReadSeek, Records};
use crate::config::Defaults;
use crate::model::Grant;
pub use crate::model::fingerprint::fingerprint;

/// Every column a roster may have: [`COLUMNS`], then `groups`, what a target without
/// catalogs grants.
pub const ALL_COLUMNS: &[&str] = &[
    "external_id",
    "first_name",
    "last_name",
    "email",
    "role",
    "status",
    "client",
    "locations",
    "position",
    "program_type",
    "content",
    "groups",
];

/// The canonical roster columns of a target with catalogs, in the documented order.
pub const COLUMNS: &[&str] = ALL_COLUMNS.split_at(11).0;
const REQUIRED: &[&str] = &["external_id", "first_name", "last_name", "email"];
/// The kind of a grant read from the `groups` column.
pub const GROUP: &str = "group";
/// The column a reject names when the row could not be split into the header's fields.
pub const ROW_COLUMN: &str = "(row)";
/// Longest field accepted, in bytes: longer is a broken export, not a name.
pub const MAX_FIELD_BYTES: usize = 4096;

/// A person as the roster wants them on the platform, with every reference resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredUser {
    pub key: String,
    pub first_name: String,
    pub last_name: String,
    /// Lower-cased: the platform compares emails case-insensitively.
    pub email: String,
    /// The role, spelled as the target's role list spells it.
    pub role: &'static str,
    pub active: bool,
    pub client: Arc<str>,
    /// Location UUIDs, sorted.
    pub locations: Arc<[String]>,
    pub position: Option<String>,
    pub program_type: Option<String>,
    /// Content items, sorted by UUID.
    pub content: Arc<[Grant]>,
    pub line: u64,
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RejectReason {
    #[error("missing required value")]
    Missing,
    #[error("not a valid email address: {0:?}")]
    BadEmail(String),
    #[error("unknown role {0:?}; expected one of {1}")]
    UnknownRole(String, String),
    #[error("unknown status {0:?}; expected active or inactive")]
    UnknownStatus(String),
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    #[error("no client: the row names none and [defaults] client is empty")]
    NoClient,
    #[error("{0}")]
    Location(#[from] super::catalog::LocationMiss),
    #[error("unknown content {0:?} (expected a SKU or UUID from the content catalog)")]
    UnknownContent(String),
    #[error("external_id {0:?} appears on several rows (lines {1}); every one of them is rejected")]
    DuplicateKey(String, String),
    #[error(
        "email {0:?} is used by several external_ids ({1}); every one of those rows is rejected"
    )]
    SharedEmail(String, String),
    #[error("field is {0} bytes long; at most {MAX_FIELD_BYTES} are accepted")]
    TooLong(usize),
    #[error("expected {0} fields, found {1}")]
    FieldCount(usize, usize),
    #[error(
        "not valid UTF-8, although the rest of the file is: fix the row, or set [files] encoding if the file is in another encoding"
    )]
    NotUtf8,
    /// A spreadsheet's error value (`#N/A`, `#REF!`) where a value should be: a formula
    /// broke before the export.
    #[error(
        "{0:?} is a spreadsheet error, not a value: fix the formula in the sheet and export again"
    )]
    SpreadsheetError(String),
    /// The text names the character and the column, e.g. "control character U+001B in
    /// first_name".
    #[error("{0}; a cell must be plain text: remove the character and export again")]
    HiddenChar(String),
    /// The record that breaks the file (see [`super::input::Record::broken`]).
    #[error("{0}")]
    Broken(String),
}

/// A refused row: where, why, and the row as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub line: u64,
    pub column: String,
    pub reason: String,
    pub original: String,
    /// The row's external_id when it could be read: this user must be left alone.
    pub key: Option<String>,
    /// The row's email (folded) when it could be read: used to protect a user whose key
    /// could not be read.
    pub email: Option<String>,
}

/// Everything read from one roster file.
#[derive(Debug, Default)]
pub struct Roster {
    pub users: Vec<DesiredUser>,
    pub rejects: Vec<Reject>,
    /// Data rows read (users + rejected rows).
    pub rows: u64,
}

/// Keys and (folded) emails of refused rows: their users must be neither changed nor
/// deactivated, whatever the rest of the roster says.
pub fn protected_by(rejects: &[Reject]) -> (HashSet<&str>, HashSet<&str>) {
    (
        rejects.iter().filter_map(|r| r.key.as_deref()).collect(),
        rejects.iter().filter_map(|r| r.email.as_deref()).collect(),
    )
}

/// Reads a whole roster file into memory (desired users and rejects, cross-row rules
/// applied). The planner streams instead; this is for small rosters and tests.
pub fn read_roster(
    path: &Path,
    catalog: &Catalog,
    defaults: &Defaults,
    columns: &HashMap<String, String>,
    options: &ReadOptions,
) -> Result<Roster> {
    let reader = RosterReader::open(path, catalog, defaults, columns, options)?;
    read_all(reader)
}

/// Reads a whole CSV roster from any re-readable source; `label` names it in messages.
pub fn read_roster_from(
    label: &str,
    source: impl ReadSeek + 'static,
    catalog: &Catalog,
    defaults: &Defaults,
    columns: &HashMap<String, String>,
) -> Result<Roster> {
    let reader = RosterReader::new(label, source, catalog, defaults, columns)?;
    read_all(reader)
}

fn read_all(mut reader: RosterReader<'_>) -> Result<Roster> {
    let mut roster = Roster::default();
    let mut cross = CrossRowCheck::default();
    while let Some(row) = reader.next_row()? {
        match row {
            Ok(user) => {
                cross.observe(&user.key, Some(&user.email), user.line);
                roster.users.push(user);
            }
            Err(reject) => {
                if let Some(key) = &reject.key {
                    cross.observe(key, None, reject.line);
                }
                roster.rejects.push(reject);
            }
        }
    }
    roster.rows = reader.rows();
    let mut conflicts = cross.finish();
    if !conflicts.is_empty() {
        let originals = reader.originals(&conflicts.lines())?;
        let users = std::mem::take(&mut roster.users);
        let mut refused = Vec::new();
        for user in users {
            match conflicts.reason(&user.key, &user.email) {
                None => roster.users.push(user),
                Some((column, reason)) => refused.push((user, column, reason)),
            }
        }
        // Built after every reason is known, so each message names all the keys involved.
        for (user, column, reason) in refused {
            let original = originals
                .get(&user.line)
                .map(|o| o.0.clone())
                .unwrap_or_default();
            let mut reject = conflicts.reject(&user, column, reason);
            reject.original = original;
            roster.rejects.push(reject);
        }
        roster.rejects.sort_by_key(|r| r.line);
    }
    Ok(roster)
}

/// Bump when normalization or resolution changes what a row means: every row memo written
/// before then is ignored and each row is normalized again once.
// 2: control and bidi characters are rejected (rows that held one were accepted before).
// 3: U+FFFD and spreadsheet error values (`#N/A`) are rejected.
// 4: the soft hyphen U+00AD is rejected.
const ROW_MEMO_VERSION: u32 = 4;

/// A data row as read, before it is normalized: enough for the planner to recognize a row
/// the ledger remembers ([`crate::ledger::RowMemo`]) and skip normalizing it.
#[derive(Debug, Clone, Copy)]
pub struct RawRow {
    pub line: u64,
    /// Fingerprint of the raw cells under the reader's context (header, catalogs, defaults,
    /// rostersync version); never 0.
    pub digest: i64,
    /// Fingerprint of the key as normalizing would make it, when the cell has one.
    pub key_hash: Option<u64>,
}

/// A place in the roster to read again from.
#[derive(Debug, Clone)]
pub struct Mark {
    position: input::Position,
    rows: u64,
}

/// Streams a roster row by row: each data row becomes a desired user or a reject. The
/// cross-row rules (one key per person, one email per key) are the caller's, through
/// [`CrossRowCheck`], because they can only be settled once the whole file is read.
pub struct RosterReader<'a> {
    label: String,
    records: Records,
    /// What the file was read as.
    format: Format,
    /// Where the first data row starts.
    start: input::Position,
    positions: Positions,
    width: usize,
    resolver: Resolver<'a>,
    record: Record,
    rows: u64,
    /// Why the file is broken, once the record that breaks it was read: nothing after it is.
    broken: Option<String>,
    /// Everything besides a row's own cells that decides what it means.
    context: u64,
}

impl<'a> RosterReader<'a> {
    /// Opens the roster at `path`: a spreadsheet by its extension, else CSV in the encoding
    /// and with the delimiter detected (or configured); reads and checks the header.
    pub fn open(
        path: &Path,
        catalog: &'a Catalog,
        defaults: &Defaults,
        columns: &HashMap<String, String>,
        options: &ReadOptions,
    ) -> Result<Self> {
        let label = path.display().to_string();
        let opened = source::open(path, "roster", options, |header| {
            map_headers(&label, header, columns)
        })?;
        RosterReader::from_opened(label, opened, catalog, defaults)
    }

    /// Reads a CSV roster from any re-readable source (encoding and delimiter detected);
    /// a structurally broken file fails here.
    pub fn new(
        label: &str,
        source: impl ReadSeek + 'static,
        catalog: &'a Catalog,
        defaults: &Defaults,
        columns: &HashMap<String, String>,
    ) -> Result<Self> {
        let opened = source::read_header(
            Box::new(source),
            label,
            "roster",
            &ReadOptions::default(),
            |header| map_headers(label, header, columns),
        )?;
        RosterReader::from_opened(label.to_owned(), opened, catalog, defaults)
    }

    fn from_opened(
        label: String,
        opened: Opened<Positions>,
        catalog: &'a Catalog,
        defaults: &Defaults,
    ) -> Result<Self> {
        let Opened {
            records,
            format,
            header,
            accepted: positions,
        } = opened;
        // Vecs and arrays only: their Debug text is a stable function of their content.
        // The file's format is not part of it: the same cells mean the same row whether
        // they came from UTF-16, a `;` file or a sheet.
        // The `groups` column and the groups mode count only when present, so that a roster
        // read before they existed keeps its context, and its memos, across the upgrade
        // (a slice prints as the array of [`COLUMNS`] did).
        let (columns, groups) = positions.index.split_at(COLUMNS.len());
        let groups = match (catalog.groups, groups[0]) {
            (false, None) => String::new(),
            (mode, column) => format!("|groups {mode} {column:?}"),
        };
        let context = xxhash_rust::xxh3::xxh3_64(
            format!(
                "{ROW_MEMO_VERSION}|{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}{groups}",
                env!("CARGO_PKG_VERSION"),
                catalog.clients,
                catalog.locations,
                catalog.content,
                columns,
                header.len(),
                defaults.client,
                defaults.role,
            )
            .as_bytes(),
        );
        let defaults = ResolvedDefaults::new(defaults, catalog)
            .with_context(|| format!("{label}: [defaults]"))?;
        Ok(RosterReader {
            label,
            start: records.position(),
            records,
            format,
            width: header.len(),
            positions,
            resolver: Resolver::new(catalog, defaults),
            record: Record::default(),
            rows: 0,
            broken: None,
            context,
        })
    }

    /// What the file was read as: CSV with its encoding and delimiter, or a sheet.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// The roster's name in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Data rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Why the roster is broken, when the reader met a record that breaks it (the message
    /// names the file and the line). Every row before it was read; none after it was, so
    /// the roster cannot say who is absent from it.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Where the next row starts, to come back to with [`RosterReader::rewind`].
    pub fn mark(&self) -> Mark {
        Mark {
            position: self.records.position(),
            rows: self.rows,
        }
    }

    /// Reads again from a [`Mark`]: the rows after it come back with the same lines.
    pub fn rewind(&mut self, mark: &Mark) -> Result<()> {
        self.records
            .seek(mark.position)
            .with_context(|| format!("{}: cannot read the roster again", self.label))?;
        self.rows = mark.rows;
        // Met again if it comes after the mark.
        self.broken = None;
        Ok(())
    }

    /// The next data row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Result<DesiredUser, Reject>>> {
        if self.next_raw()?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.resolve()))
    }

    /// Reads the next data row without normalizing it; [`RosterReader::resolve`] does that
    /// for the row just read, if the caller needs more than its fingerprints.
    pub fn next_raw(&mut self) -> Result<Option<RawRow>> {
        loop {
            // Nothing after the record that broke the file can be trusted to be split into
            // the right rows.
            if self.broken.is_some() {
                return Ok(None);
            }
            if !self
                .records
                .read(&mut self.record)
                .with_context(|| format!("cannot read roster {}", self.label))?
            {
                return Ok(None);
            }
            let record = &self.record;
            if let Some(why) = record.broken(self.width) {
                self.broken = Some(format!("{}:{}: {why}", self.label, record.line()));
                self.rows += 1;
                return Ok(Some(RawRow {
                    line: record.line(),
                    digest: raw_digest(record, self.context),
                    // Not a key anyone can rely on: the record is not a row.
                    key_hash: None,
                }));
            }
            if record.len() == 1
                && record
                    .get(0)
                    .is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))
            {
                continue;
            }
            self.rows += 1;
            let key_hash = self
                .positions
                .of("external_id")
                .and_then(|i| record.get(i))
                .and_then(|raw| std::str::from_utf8(raw).ok())
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(|key| {
                    // The same value `clean` gives, without its allocation for ASCII keys.
                    if key.is_ascii() {
                        fingerprint(key)
                    } else {
                        fingerprint(&clean(key))
                    }
                });
            return Ok(Some(RawRow {
                line: record.line(),
                digest: raw_digest(record, self.context),
                key_hash,
            }));
        }
    }

    /// Normalizes and resolves the row [`RosterReader::next_raw`] returned last.
    // A reject is one of a row's two outcomes, as large as the other, not an error to bubble.
    #[allow(clippy::result_large_err)]
    pub fn resolve(&mut self) -> Result<DesiredUser, Reject> {
        let record = std::mem::take(&mut self.record);
        let resolved = self.resolve_saved(&record);
        self.record = record;
        resolved
    }

    /// Trades the record of the row [`RosterReader::next_raw`] returned last for `other`
    /// (whose buffers the reader reuses): rows can be read ahead and resolved later, each
    /// from its saved record, by [`RosterReader::resolve_saved`].
    pub fn swap_record(&mut self, other: &mut Record) {
        std::mem::swap(&mut self.record, other);
    }

    /// [`RosterReader::resolve`] for a row whose record was saved by
    /// [`RosterReader::swap_record`].
    #[allow(clippy::result_large_err)]
    pub fn resolve_saved(&mut self, record: &Record) -> Result<DesiredUser, Reject> {
        let line = record.line();
        if let Some(why) = record.broken(self.width) {
            return Err(Reject {
                line,
                column: "(file)".to_owned(),
                reason: RejectReason::Broken(format!(
                    "{why}; the file is broken here: no row from line {line} on was read, and nobody is deactivated on the strength of this file; fix the export and run again"
                ))
                .to_string(),
                original: record.original(),
                key: None,
                email: None,
            });
        }
        self.resolver
            .row(record, self.width, &self.positions, line)
            .map_err(|(column, reason)| {
                reject(record, &self.positions, line, column, reason.to_string())
            })
    }

    /// The original text, key and (folded) email of the rows on `lines`, read again from the
    /// start of the source (only needed when cross-row conflicts were found, which is rare).
    pub fn originals(
        &mut self,
        lines: &HashSet<u64>,
    ) -> Result<HashMap<u64, (String, String, String)>> {
        let mut found = HashMap::new();
        self.records
            .seek(self.start)
            .with_context(|| format!("{}: cannot read the roster again", self.label))?;
        let mut record = Record::default();
        while self
            .records
            .read(&mut record)
            .with_context(|| format!("cannot read roster {}", self.label))?
        {
            if record.broken(self.width).is_some() {
                break;
            }
            let line = record.line();
            if lines.contains(&line) {
                let field = |column: &str| {
                    self.positions
                        .of(column)
                        .and_then(|i| record.get(i))
                        .map(|raw| clean(&String::from_utf8_lossy(raw)))
                        .unwrap_or_default()
                };
                let (key, email) = (field("external_id"), fold(&field("email")));
                found.insert(line, (record.original(), key, email));
            }
        }
        Ok(found)
    }
}

/// Fingerprint of a record's cells under `context`. The cells are hashed as one run of bytes
/// with their lengths folded into the seed, so that moving a byte from one cell to the next
/// changes the digest.
fn raw_digest(record: &Record, context: u64) -> i64 {
    let lengths = record.iter().fold(record.len() as u64, |acc, cell| {
        acc.wrapping_mul(0x0000_0100_0000_01b3)
            .wrapping_add(cell.len() as u64 + 1)
    });
    match xxhash_rust::xxh3::xxh3_64_with_seed(record.as_slice(), context ^ lengths) as i64 {
        // 0 is kept for "no digest".
        0 => 1,
        digest => digest,
    }
}

fn reject(
    record: &Record,
    positions: &Positions,
    line: u64,
    column: String,
    reason: String,
) -> Reject {
    let lossy = |column: &str| {
        positions
            .of(column)
            .and_then(|i| record.get(i))
            .map(|raw| clean(&String::from_utf8_lossy(raw)))
            .filter(|v| !v.is_empty())
    };
    Reject {
        line,
        column,
        reason,
        original: record.original(),
        key: lossy("external_id"),
        email: lossy("email").map(|e| fold(&e)),
    }
}

#[cfg(test)]
mod tests;
