//! One roster row resolved: the header mapped to the canonical columns, each cell cleaned and
//! checked (control, bidi and spreadsheet-error cells refused), and names resolved against
//! the catalogs (or groups read) with each distinct cell resolved once.
//!
//! Owns the per-row rules; it must never let a control or bidi character through to the
//! platform, nor resolve a location in another client.

use super::*;

/// Column index of each canonical column (`None` when the file lacks it).
pub(super) struct Positions {
    pub(super) index: [Option<usize>; ALL_COLUMNS.len()],
    /// Original rows are kept for rejects only, so the header's own text is kept as well.
    pub(super) header: Vec<String>,
    /// Per field of a row: the canonical column it maps to, if any (unmapped columns are
    /// never sent, so their text is not checked).
    pub(super) kinds: Vec<Option<&'static str>>,
}

impl Positions {
    pub(super) fn of(&self, column: &str) -> Option<usize> {
        ALL_COLUMNS
            .iter()
            .position(|c| *c == column)
            .and_then(|i| self.index[i])
    }
}

pub(super) fn map_headers(
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

pub(super) struct ResolvedDefaults {
    client: Option<Arc<str>>,
    role: &'static str,
}

impl ResolvedDefaults {
    pub(super) fn new(defaults: &Defaults, catalog: &Catalog) -> Result<ResolvedDefaults> {
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
pub(super) struct Resolver<'a> {
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
    pub(super) fn new(catalog: &'a Catalog, defaults: ResolvedDefaults) -> Self {
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

    pub(super) fn row(
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
