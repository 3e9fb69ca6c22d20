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

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustc_hash::FxHashMap;

use super::catalog::Catalog;
use super::input::{self, Record};
use super::normalize::{clean, fold, header_key, is_valid_email, split_multi};
use super::source::{self, Format, Opened, ReadOptions, ReadSeek, Records};
use crate::config::Defaults;
use crate::model::Grant;
pub use crate::model::fingerprint::fingerprint;

/// The canonical roster columns, in the documented order.
pub const COLUMNS: &[&str] = &[
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
];

/// Every column a roster may have: [`COLUMNS`], and `groups`, what a target without
/// catalogs grants (prancer).
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
        let record = &self.record;
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

/// The cross-row rules: an external_id on several rows, or an email under several
/// external_ids, is an error in the export that rostersync cannot settle by picking one, so
/// every row involved is rejected. Keeps 64-bit fingerprints, not the strings, so a million
/// rows cost tens of megabytes.
#[derive(Default)]
pub struct CrossRowCheck {
    first_line_by_key: FxHashMap<u64, u64>,
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
            first_line_by_key: FxHashMap::default(),
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
        match self.first_line_by_key.get(&key_hash) {
            Some(&first) => self.key_repeated(key_hash, first, line),
            None => {
                self.first_line_by_key.insert(key_hash, line);
            }
        }
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

/// Column index of each canonical column (`None` when the file lacks it).
struct Positions {
    index: [Option<usize>; ALL_COLUMNS.len()],
    /// Original rows are kept for rejects only, so the header's own text is kept as well.
    header: Vec<String>,
    /// Per field of a row: the canonical column it maps to, if any (unmapped columns are
    /// never sent, so their text is not checked).
    kinds: Vec<Option<&'static str>>,
}

impl Positions {
    fn of(&self, column: &str) -> Option<usize> {
        ALL_COLUMNS
            .iter()
            .position(|c| *c == column)
            .and_then(|i| self.index[i])
    }
}

fn map_headers(
    label: &str,
    header: &Record,
    columns: &HashMap<String, String>,
) -> Result<Positions> {
    let aliases: HashMap<String, &str> = columns
        .iter()
        .map(|(from, to)| (header_key(from), to.as_str()))
        .collect();
    for to in aliases.values() {
        if !ALL_COLUMNS.contains(to) {
            bail!(
                "[columns] maps a header to {to:?}, which is not a roster column; expected one of {}",
                ALL_COLUMNS.join(", ")
            );
        }
    }
    let line = header.line();
    let mut index = [None; ALL_COLUMNS.len()];
    let mut texts = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let text = std::str::from_utf8(raw).map_err(|_| {
            anyhow::anyhow!(
                "{label}:{line}: column {}: the header is not valid UTF-8; set [files] encoding to the file's encoding, or export it as UTF-8",
                i + 1
            )
        })?;
        texts.push(text.to_owned());
        let key = header_key(text);
        let canonical = aliases
            .get(&key)
            .copied()
            .or_else(|| ALL_COLUMNS.iter().copied().find(|c| header_key(c) == key));
        if let Some(canonical) = canonical {
            let slot = ALL_COLUMNS
                .iter()
                .position(|c| *c == canonical)
                .expect("canonical column");
            if let Some(first) = index[slot] {
                bail!(
                    "{label}:{line}: columns {} and {} both map to {canonical}",
                    first + 1,
                    i + 1
                );
            }
            index[slot] = Some(i);
        }
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| {
            index[ALL_COLUMNS
                .iter()
                .position(|x| x == c)
                .expect("required is canonical")]
            .is_none()
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "{label}:{line}: missing required column(s) {}; found columns {:?}{} (map other names in [columns])",
            missing.join(", "),
            // Bounded: a header may be a binary file's first 64 KiB.
            texts
                .iter()
                .take(30)
                .map(|t| input::excerpt_chars(t, 40))
                .collect::<Vec<_>>(),
            if texts.len() > 30 {
                format!(" and {} more", texts.len() - 30)
            } else {
                String::new()
            }
        );
    }
    let mut kinds = vec![None; texts.len()];
    for (slot, i) in index.iter().enumerate() {
        if let Some(i) = *i {
            kinds[i] = Some(ALL_COLUMNS[slot]);
        }
    }
    Ok(Positions {
        index,
        header: texts,
        kinds,
    })
}

struct ResolvedDefaults {
    client: Option<Arc<str>>,
    role: &'static str,
}

impl ResolvedDefaults {
    fn new(defaults: &Defaults, catalog: &Catalog) -> Result<ResolvedDefaults> {
        let client = match defaults.client.trim() {
            // A target without catalogs has no clients: the default means nothing to it.
            _ if catalog.groups => None,
            "" => None,
            reference => Some(
                catalog
                    .client(reference)
                    .with_context(|| {
                        format!("client: {reference:?} is not a client of the catalog")
                    })?
                    .uuid
                    .as_str()
                    .into(),
            ),
        };
        if catalog.roles.is_empty() {
            // The target has no roles: the column and the default mean nothing to it.
            return Ok(ResolvedDefaults { client, role: "" });
        }
        let role = canonical_role(catalog.roles, &defaults.role).with_context(|| {
            format!(
                "role: {:?} is not a known role; expected one of {}",
                defaults.role,
                catalog.roles.join(", ")
            )
        })?;
        Ok(ResolvedDefaults { client, role })
    }
}

fn canonical_role(roles: &'static [&'static str], raw: &str) -> Option<&'static str> {
    let wanted = fold(raw);
    roles.iter().copied().find(|r| fold(r) == wanted)
}

type RowError = (String, RejectReason);

/// Resolves a row's cells against the catalogs, remembering the answers: a roster has
/// millions of rows but only a handful of distinct clients, location lists and course lists,
/// so each distinct cell is normalized and looked up once.
struct Resolver<'a> {
    catalog: &'a Catalog,
    defaults: ResolvedDefaults,
    clients: CellCache<Arc<str>>,
    /// Per client: a location name is resolved within its user's client.
    locations: FxHashMap<Arc<str>, CellCache<Arc<[String]>>>,
    content: CellCache<Arc<[Grant]>>,
}

/// Resolutions by raw cell text.
type CellCache<V> = FxHashMap<Box<str>, Result<V, RejectReason>>;

/// Distinct cells remembered per column; past this a roster is unusual and cells are
/// resolved each time rather than growing memory without bound.
const CACHE_LIMIT: usize = 20_000;

fn remember<V: Clone>(
    cache: &mut FxHashMap<Box<str>, V>,
    raw: &str,
    value: impl FnOnce() -> V,
) -> V {
    if let Some(found) = cache.get(raw) {
        return found.clone();
    }
    let value = value();
    if cache.len() < CACHE_LIMIT {
        cache.insert(raw.into(), value.clone());
    }
    value
}

impl<'a> Resolver<'a> {
    fn new(catalog: &'a Catalog, defaults: ResolvedDefaults) -> Self {
        Resolver {
            catalog,
            defaults,
            clients: FxHashMap::default(),
            locations: FxHashMap::default(),
            content: FxHashMap::default(),
        }
    }

    fn client(&mut self, raw: &str) -> Result<Arc<str>, RejectReason> {
        let catalog = self.catalog;
        let default = &self.defaults.client;
        remember(&mut self.clients, raw, || match clean(raw) {
            cleaned if cleaned.is_empty() => default.clone().ok_or(RejectReason::NoClient),
            cleaned => catalog
                .client(&cleaned)
                .map(|c| Arc::from(c.uuid.as_str()))
                .ok_or(RejectReason::UnknownClient(cleaned)),
        })
    }

    fn locations(&mut self, client: &Arc<str>, raw: &str) -> Result<Arc<[String]>, RejectReason> {
        let catalog = self.catalog;
        let per_client = self.locations.entry(client.clone()).or_default();
        remember(per_client, raw, || {
            let mut locations = Vec::new();
            for reference in split_multi(raw) {
                locations.push(catalog.location(&reference, client)?.uuid.clone());
            }
            locations.sort();
            locations.dedup();
            Ok(locations.into())
        })
    }

    /// The groups a row names, as grants: their names as written (cleaned), sorted, each
    /// once. A target that knows no such group refuses it when it is sent.
    fn groups(&mut self, raw: &str) -> Arc<[Grant]> {
        let found = remember(&mut self.content, raw, || {
            let mut groups: Vec<Grant> = split_multi(raw)
                .into_iter()
                .map(|name| Grant {
                    id: name,
                    kind: GROUP.to_owned(),
                })
                .collect();
            groups.sort();
            groups.dedup();
            Ok(groups.into())
        });
        found.unwrap_or_else(|_| Arc::from([]))
    }

    fn content(&mut self, raw: &str) -> Result<Arc<[Grant]>, RejectReason> {
        let catalog = self.catalog;
        remember(&mut self.content, raw, || {
            let mut content = Vec::new();
            for reference in split_multi(raw) {
                let item = catalog
                    .content_item(&reference)
                    .ok_or(RejectReason::UnknownContent(reference))?;
                content.push(Grant {
                    id: item.uuid.clone(),
                    kind: item.kind.as_api_str().to_owned(),
                });
            }
            content.sort();
            content.dedup();
            Ok(content.into())
        })
    }

    fn row(
        &mut self,
        record: &Record,
        width: usize,
        positions: &Positions,
        line: u64,
    ) -> Result<DesiredUser, RowError> {
        if record.len() != width {
            return Err((
                ROW_COLUMN.to_owned(),
                RejectReason::FieldCount(width, record.len()),
            ));
        }
        // Check every field's size and encoding once, before looking at any of them.
        let mut cells: Vec<&str> = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            let column = || {
                positions
                    .header
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("#{}", i + 1))
            };
            if raw.len() > MAX_FIELD_BYTES {
                return Err((column(), RejectReason::TooLong(raw.len())));
            }
            let text = std::str::from_utf8(raw).map_err(|_| (column(), RejectReason::NotUtf8))?;
            if let Some(canonical) = positions.kinds.get(i).copied().flatten() {
                if let Some(c) = hidden_char(text, canonical) {
                    return Err((column(), RejectReason::HiddenChar(describe(c, canonical))));
                }
                if is_spreadsheet_error(text) {
                    return Err((
                        column(),
                        RejectReason::SpreadsheetError(text.trim().to_owned()),
                    ));
                }
            }
            cells.push(text);
        }
        let cell = |column: &'static str| {
            positions
                .of(column)
                .and_then(|i| cells.get(i).copied())
                .unwrap_or("")
        };
        let required = |column: &'static str| -> Result<String, RowError> {
            let value = clean(cell(column));
            if value.is_empty() {
                Err((column.to_owned(), RejectReason::Missing))
            } else {
                Ok(value)
            }
        };
        let key = required("external_id")?;
        let first_name = required("first_name")?;
        let last_name = required("last_name")?;
        let email = fold(&required("email")?);
        if !is_valid_email(&email) {
            return Err(("email".to_owned(), RejectReason::BadEmail(email)));
        }
        let role = match cell("role").trim() {
            _ if self.catalog.roles.is_empty() => "",
            "" => self.defaults.role,
            raw => canonical_role(self.catalog.roles, raw).ok_or_else(|| {
                let roles = self.catalog.roles.join(", ");
                (
                    "role".to_owned(),
                    RejectReason::UnknownRole(clean(raw), roles),
                )
            })?,
        };
        let active = match cell("status").trim() {
            "" => true,
            raw if raw.eq_ignore_ascii_case("active") => true,
            raw if raw.eq_ignore_ascii_case("inactive") => false,
            other => {
                return Err((
                    "status".to_owned(),
                    RejectReason::UnknownStatus(fold(other)),
                ));
            }
        };
        let (client, locations, content) = if self.catalog.groups {
            (Arc::from(""), Arc::from([]), self.groups(cell("groups")))
        } else {
            let client = self
                .client(cell("client"))
                .map_err(|r| ("client".to_owned(), r))?;
            let locations = self
                .locations(&client, cell("locations"))
                .map_err(|r| ("locations".to_owned(), r))?;
            let content = self
                .content(cell("content"))
                .map_err(|r| ("content".to_owned(), r))?;
            (client, locations, content)
        };
        let optional = |column| Some(clean(cell(column))).filter(|v| !v.is_empty());
        Ok(DesiredUser {
            key,
            first_name,
            last_name,
            email,
            role,
            active,
            client,
            locations,
            position: optional("position"),
            program_type: optional("program_type"),
            content,
            line,
        })
    }
}

/// The first character of a cell that would make what the platform shows lie or misbehave:
/// a control character (NUL, ESC for terminal escapes, BEL, DEL, the C1 range), a line break
/// inside a single value, or an invisible character that reorders or hides text (the bidi
/// embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069, the direction marks,
/// zero-width space, word joiner, soft hyphen, BOM). TAB is let through (trimmed or
/// harmless); line breaks are let through in the `;` lists, which split on white space
/// anyway. ZWJ and ZWNJ are let through too: some scripts and emoji need them.
fn hidden_char(text: &str, column: &str) -> Option<char> {
    let list = matches!(column, "locations" | "content" | "groups");
    let text = text.trim();
    if text.is_ascii() {
        // The common case, byte by byte.
        return text
            .bytes()
            .find(|&b| match b {
                b'\t' => false,
                b'\r' | b'\n' => !list,
                b => b < 0x20 || b == 0x7f,
            })
            .map(char::from);
    }
    text.chars().find(|&c| match c {
        '\t' => false,
        '\r' | '\n' => !list,
        // U+00AD: the soft hyphen (byte 0xAD in Windows-1252), invisible where no line breaks.
        '\u{00AD}' | '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' => true,
        '\u{2028}'..='\u{202E}' => true,
        '\u{2060}'..='\u{2069}' | '\u{FEFF}' => true,
        // What a decoder leaves where bytes did not decode: the text is not what was meant.
        '\u{FFFD}' => true,
        c => c.is_control(),
    })
}

/// The values a spreadsheet shows for a formula that failed; exported as text, they would
/// become someone's name.
fn is_spreadsheet_error(text: &str) -> bool {
    let text = text.trim();
    text.starts_with('#')
        && matches!(
            text.to_ascii_uppercase().as_str(),
            "#N/A"
                | "#REF!"
                | "#VALUE!"
                | "#DIV/0!"
                | "#NAME?"
                | "#NULL!"
                | "#NUM!"
                | "#SPILL!"
                | "#CALC!"
                | "#GETTING_DATA"
                | "#FIELD!"
                | "#BLOCKED!"
                | "#CONNECT!"
                | "#BUSY!"
                | "#UNKNOWN!"
        )
}

/// "control character U+001B in first_name".
fn describe(c: char, column: &str) -> String {
    if c == '\u{FFFD}' {
        return format!(
            "undecodable character U+FFFD in {column} (bytes that are not text in the file's encoding)"
        );
    }
    let kind = if c.is_control() {
        "control character"
    } else {
        "invisible formatting character"
    };
    format!("{kind} U+{:04X} in {column}", u32::from(c))
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
mod tests {
    use super::*;

    fn read(text: &str) -> Roster {
        read_with(text, &HashMap::new()).unwrap()
    }

    fn read_with(text: &str, columns: &HashMap<String, String>) -> Result<Roster> {
        let defaults = Defaults {
            client: "Northwind Camps".into(),
            role: "Learner".into(),
        };
        read_roster_from(
            "roster.csv",
            std::io::Cursor::new(text.as_bytes().to_vec()),
            &crate::samples::catalog(),
            &defaults,
            columns,
        )
    }

    const HEADER: &str = "external_id,first_name,last_name,email,role,status,client,locations,position,program_type,content\n";

    #[test]
    fn a_roster_without_groups_keeps_the_context_of_the_release_before_them() {
        // The release before the `groups` column hashed the positions of the 11 columns as
        // an array; its ledgers' row memos stay valid only if this is the same text.
        let catalog = crate::samples::catalog();
        let defaults = Defaults {
            client: "Northwind Camps".into(),
            role: "Learner".into(),
        };
        let columns = HashMap::new();
        let reader = RosterReader::new(
            "roster.csv",
            std::io::Cursor::new(HEADER.as_bytes().to_vec()),
            &catalog,
            &defaults,
            &columns,
        )
        .unwrap();
        let before: [Option<usize>; 11] = std::array::from_fn(Some);
        let expected = xxhash_rust::xxh3::xxh3_64(
            format!(
                "{ROW_MEMO_VERSION}|{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
                env!("CARGO_PKG_VERSION"),
                catalog.clients,
                catalog.locations,
                catalog.content,
                before,
                11,
                defaults.client,
                defaults.role,
            )
            .as_bytes(),
        );
        assert_eq!(reader.context, expected);
        // A groups roster is another context.
        let groups = Catalog::of_groups();
        let with_groups = RosterReader::new(
            "roster.csv",
            std::io::Cursor::new(b"external_id,first_name,last_name,email,groups\n".to_vec()),
            &groups,
            &defaults,
            &columns,
        )
        .unwrap();
        assert_ne!(with_groups.context, expected);
    }

    #[test]
    fn valid_rows_are_normalized_and_resolved() {
        let roster = read(&format!(
            "{HEADER}E1, Ana ,Lima,ANA@Example.com,supervisor,,,Lakeside Camp;head office;lakeside camp,Lead,day,SAFE-101;lp-onboard;SAFE-101\n"
        ));
        assert!(roster.rejects.is_empty(), "{:?}", roster.rejects);
        let user = &roster.users[0];
        assert_eq!(
            (user.first_name.as_str(), user.email.as_str(), user.role),
            ("Ana", "ana@example.com", "Supervisor")
        );
        assert!(user.active);
        assert_eq!(user.locations.len(), 2);
        assert_eq!(user.content.len(), 2);
        assert!(user.content.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(user.line, 2);
    }

    #[test]
    fn each_kind_of_bad_row_is_rejected_with_line_and_column() {
        let roster = read(&format!(
            "{HEADER}\
             E1,Ana,Lima,ana@example.com,,,,,,,\n\
             E2,,Lima,b@example.com,,,,,,,\n\
             E3,Bo,Li,not-an-email,,,,,,,\n\
             E4,Bo,Li,e4@example.com,Wizard,,,,,,\n\
             E5,Bo,Li,e5@example.com,,retired,,,,,\n\
             E6,Bo,Li,e6@example.com,,,Nowhere Inc,,,,\n\
             E7,Bo,Li,e7@example.com,,,,Atlantis,,,\n\
             E8,Bo,Li,e8@example.com,,,,,,,NOPE-1\n\
             E9,Bo,Li,e9@example.com\n"
        ));
        assert_eq!(roster.users.len(), 1);
        let got: Vec<(u64, &str)> = roster
            .rejects
            .iter()
            .map(|r| (r.line, r.column.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "first_name"),
                (4, "email"),
                (5, "role"),
                (6, "status"),
                (7, "client"),
                (8, "locations"),
                (9, "content"),
                (10, "(row)")
            ]
        );
        assert_eq!(roster.rejects[0].key.as_deref(), Some("E2"));
        assert!(
            roster.rejects[7]
                .reason
                .contains("expected 11 fields, found 4")
        );
    }

    #[test]
    fn duplicate_keys_and_shared_emails_reject_every_row_involved() {
        let roster = read(&format!(
            "{HEADER}\
             E1,A,A,a@example.com,,,,,,,\n\
             E1,A,A,a2@example.com,,,,,,,\n\
             E2,B,B,shared@example.com,,,,,,,\n\
             E3,C,C,SHARED@example.com,,,,,,,\n\
             E4,D,D,d@example.com,,,,,,,\n"
        ));
        assert_eq!(
            roster
                .users
                .iter()
                .map(|u| u.key.as_str())
                .collect::<Vec<_>>(),
            vec!["E4"]
        );
        assert_eq!(
            roster.rejects.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![2, 3, 4, 5]
        );
        assert!(roster.rejects[0].reason.contains("lines 2, 3"));
        assert!(
            roster.rejects[2].reason.contains("E2, E3"),
            "{}",
            roster.rejects[2].reason
        );
        assert!(
            roster.rejects[0].original.contains("a@example.com"),
            "the original row is kept"
        );
    }

    #[test]
    fn long_fields_and_invalid_utf8_are_rejected_not_fatal() {
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        // A UTF-8 file (its accents are UTF-8) with one row that is not.
        let mut bytes = format!(
            "{HEADER}E1,A,{long},a@example.com,,,,,,,\nE0,Zoë,Brontë,z@example.com,,,,,,,\n"
        )
        .into_bytes();
        bytes
            .extend_from_slice(b"E2,Jos\xe9,B,b@example.com,,,,,,,\nE3,C,C,c@example.com,,,,,,,\n");
        let roster = read_bytes(bytes);
        assert_eq!(roster.users.len(), 2);
        assert_eq!(roster.rejects[0].column, "last_name");
        assert!(roster.rejects[0].reason.contains("bytes long"));
        assert_eq!(
            (roster.rejects[1].line, roster.rejects[1].column.as_str()),
            (4, "first_name")
        );
        assert!(roster.rejects[1].reason.contains("not valid UTF-8"));
        assert_eq!(roster.rejects[1].key.as_deref(), Some("E2"));
        assert_eq!(
            roster.rejects[1].original,
            "E2,Jos\u{FFFD},B,b@example.com,,,,,,,"
        );
    }

    fn read_bytes(bytes: Vec<u8>) -> Roster {
        read_roster_from(
            "r.csv",
            std::io::Cursor::new(bytes),
            &crate::samples::catalog(),
            &Defaults {
                client: "Northwind Camps".into(),
                role: "Learner".into(),
            },
            &HashMap::new(),
        )
        .unwrap()
    }

    #[test]
    fn a_windows_1252_file_is_read_whole() {
        let roster = read_bytes(
            format!("{HEADER}E2,Jos\u{e9},B,b@example.com,,,,,,,\nE3,Ren\u{e9}e,C,c@example.com,,,,,,,\n")
                .chars()
                .map(|c| c as u32 as u8)
                .collect(),
        );
        assert!(roster.rejects.is_empty(), "{:?}", roster.rejects);
        assert_eq!(roster.users[0].first_name, "José");
        assert_eq!(roster.users[1].first_name, "Renée");
    }

    #[test]
    fn spreadsheet_errors_and_undecodable_characters_are_refused() {
        let roster = read(&format!(
            "{HEADER}E1,#N/A,B,b@example.com,,,,,,,\nE2,Ann,B\u{FFFD},c@example.com,,,,,,,\nE3,Ann,#ok,d@example.com,,,,,,,\n"
        ));
        let got: Vec<(u64, &str)> = roster
            .rejects
            .iter()
            .map(|r| (r.line, r.column.as_str()))
            .collect();
        assert_eq!(got, vec![(2, "first_name"), (3, "last_name")]);
        assert!(roster.rejects[0].reason.contains("spreadsheet error"));
        assert!(roster.rejects[1].reason.contains("U+FFFD"));
        assert_eq!(roster.users.len(), 1);
    }

    #[test]
    fn spreadsheet_exports_and_mapped_headers_are_read() {
        let text = "\u{feff}Employee ID,First Name,LAST_NAME,E-mail,Locations\r\n\
                    7,\"Zoë\",\"O'Neil, Jr.\",zoe@example.com,\"Lakeside Camp;\r\nHead Office\"\r\n";
        let columns = HashMap::from([
            ("Employee ID".to_owned(), "external_id".to_owned()),
            ("E-mail".to_owned(), "email".to_owned()),
        ]);
        let roster = read_with(text, &columns).unwrap();
        assert!(roster.rejects.is_empty(), "{:?}", roster.rejects);
        let user = &roster.users[0];
        assert_eq!(
            (
                user.key.as_str(),
                user.first_name.as_str(),
                user.last_name.as_str()
            ),
            ("7", "Zoë", "O'Neil, Jr.")
        );
        assert_eq!(user.locations.len(), 2);
    }

    #[test]
    fn structurally_broken_files_are_fatal() {
        assert!(format!("{:#}", read_with("", &HashMap::new()).unwrap_err()).contains("empty"));
        let err = read_with("id,name\n1,x\n", &HashMap::new()).unwrap_err();
        assert!(
            format!("{err:#}").contains("missing required column(s) external_id"),
            "{err:#}"
        );
    }
}
