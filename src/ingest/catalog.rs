//! The provider's reference catalogs: clients, locations and content, with their UUIDs.
//!
//! Owns reading `clients.csv` (`uuid,name`), `locations.csv` (`uuid,name[,client]`) and
//! `content.csv` (`uuid,name,content_type,sku`) and answering "which UUID does this name,
//! SKU or UUID mean". A catalog is small and must be entirely right before anything is
//! provisioned, so every problem is fatal here and names the file and line; a catalog is
//! never partially accepted.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::normalize::{clean, fold, header_key, looks_like_uuid};

/// A client organisation (the top of a permission hierarchy in the academy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Lower-cased UUID.
    pub uuid: String,
    pub name: String,
}

/// A location; `client` is the owning client's UUID when the catalog names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub uuid: String,
    pub name: String,
    pub client: Option<String>,
}

/// The two kinds of content the API accepts in enrollment listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentType {
    Course,
    LearningPath,
}

impl ContentType {
    /// The exact spelling the API expects in `{uuid, type}` items.
    pub fn as_api_str(self) -> &'static str {
        match self {
            ContentType::Course => "course",
            ContentType::LearningPath => "learning path",
        }
    }

    /// Parses the API / catalog spelling; case and `_`/space differences are tolerated.
    pub fn parse(raw: &str) -> Option<ContentType> {
        match header_key(raw).as_str() {
            "course" => Some(ContentType::Course),
            "learningpath" => Some(ContentType::LearningPath),
            _ => None,
        }
    }
}

/// A course or learning path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentEntry {
    pub uuid: String,
    pub name: String,
    pub kind: ContentType,
    pub sku: String,
}

/// Why a location reference did not resolve; the roster reader turns it into a reject reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationMiss {
    #[error("unknown location {0:?}")]
    Unknown(String),
    #[error("location {0:?} belongs to another client")]
    OtherClient(String),
    #[error("location name {0:?} is ambiguous: it exists under several clients; use its UUID")]
    Ambiguous(String),
}

/// All three catalogs with their lookup indexes.
#[derive(Debug, Default)]
pub struct Catalog {
    pub clients: Vec<Client>,
    pub locations: Vec<Location>,
    pub content: Vec<ContentEntry>,
    client_by_key: HashMap<String, usize>,
    location_by_uuid: HashMap<String, usize>,
    locations_by_name: HashMap<String, Vec<usize>>,
    content_by_key: HashMap<String, usize>,
    /// The roles the target knows, in its spelling (see [`Catalog::with_roles`]).
    pub roles: &'static [&'static str],
    /// Rows grant the groups of their `groups` column, not catalog content, and name no
    /// client or location (see [`Catalog::of_groups`]).
    pub groups: bool,
}

/// One catalog file's content with the label used in messages (usually its path).
pub struct Source<R> {
    pub label: String,
    pub reader: R,
}

impl Source<std::io::Take<File>> {
    /// Opens a catalog file: a regular file only (see [`super::input::open_regular`]), read
    /// up to [`MAX_CATALOG_BYTES`] so that a wrong file cannot fill the memory.
    pub fn open(path: &Path) -> Result<Source<std::io::Take<File>>> {
        let file = super::input::open_regular(path, "catalog file")?;
        let size = file
            .metadata()
            .with_context(|| format!("cannot read catalog file {}", path.display()))?
            .len();
        if size > MAX_CATALOG_BYTES {
            bail!(
                "catalog file {} is {size} bytes long; a catalog is expected to hold at most {} MiB (is this the right file?)",
                path.display(),
                MAX_CATALOG_BYTES >> 20
            );
        }
        Ok(Source {
            label: path.display().to_string(),
            // A file that grows after the check is read only up to the limit.
            reader: file.take(MAX_CATALOG_BYTES),
        })
    }
}

/// The largest catalog accepted: hundreds of thousands of entries; a catalog is read whole.
pub const MAX_CATALOG_BYTES: u64 = 64 << 20;

impl Catalog {
    /// Reads the three catalog files.
    pub fn load(clients: &Path, locations: &Path, content: &Path) -> Result<Catalog> {
        Catalog::from_sources(
            Source::open(clients)?,
            Source::open(locations)?,
            Source::open(content)?,
        )
    }

    /// Reads the three catalogs from any readers (files, embedded samples, test buffers).
    pub fn from_sources(
        clients: Source<impl Read>,
        locations: Source<impl Read>,
        content: Source<impl Read>,
    ) -> Result<Catalog> {
        let mut catalog = Catalog::default();
        catalog.read_clients(clients)?;
        catalog.read_locations(locations)?;
        catalog.read_content(content)?;
        Ok(catalog)
    }

    /// The catalog with the roles a row may name: the target's list
    /// ([`crate::targets::Capabilities::roles`]), since roles are a platform's, not a file's.
    pub fn with_roles(mut self, roles: &'static [&'static str]) -> Catalog {
        self.roles = roles;
        self
    }

    /// The catalog of a target without catalogs, whose rows grant the groups they name
    /// (see [`crate::targets::Capabilities::catalogs`]): nothing to resolve against.
    pub fn of_groups() -> Catalog {
        Catalog {
            groups: true,
            ..Catalog::default()
        }
    }

    fn read_clients(&mut self, source: Source<impl Read>) -> Result<()> {
        let label = source.label.clone();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for row in read_table(source, &["uuid", "name"], &[])? {
            let (line, uuid, name) = (row.line, fold(&row.values[0]), clean(&row.values[1]));
            check_uuid(&label, line, &uuid)?;
            check_unique(&label, &mut first_line, "uuid", &uuid, line)?;
            check_unique(&label, &mut first_line, "name", &fold(&name), line)?;
            let index = self.clients.len();
            self.client_by_key.insert(uuid.clone(), index);
            self.client_by_key.insert(fold(&name), index);
            self.clients.push(Client { uuid, name });
        }
        if self.clients.is_empty() {
            bail!("{label}: the clients catalog lists no client");
        }
        Ok(())
    }

    fn read_locations(&mut self, source: Source<impl Read>) -> Result<()> {
        let label = source.label.clone();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for row in read_table(source, &["uuid", "name"], &["client"])? {
            let (line, uuid, name) = (row.line, fold(&row.values[0]), clean(&row.values[1]));
            check_uuid(&label, line, &uuid)?;
            let client = match row.values[2].trim() {
                "" => None,
                reference => Some(
                    self.client(reference)
                        .map(|c| c.uuid.clone())
                        .with_context(|| {
                            format!(
                                "{label}:{line}: column client: expected a client name or UUID \
                                 from the clients catalog, found {reference:?}"
                            )
                        })?,
                ),
            };
            check_unique(&label, &mut first_line, "uuid", &uuid, line)?;
            // Two clients may each have a "Head Office"; one client may not have two.
            let scoped_name = format!("{}\u{0}{}", client.as_deref().unwrap_or(""), fold(&name));
            check_unique(&label, &mut first_line, "name", &scoped_name, line)?;
            let index = self.locations.len();
            self.location_by_uuid.insert(uuid.clone(), index);
            self.locations_by_name
                .entry(fold(&name))
                .or_default()
                .push(index);
            self.locations.push(Location { uuid, name, client });
        }
        Ok(())
    }

    fn read_content(&mut self, source: Source<impl Read>) -> Result<()> {
        let label = source.label.clone();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for row in read_table(source, &["uuid", "name", "content_type", "sku"], &[])? {
            let line = row.line;
            let uuid = fold(&row.values[0]);
            check_uuid(&label, line, &uuid)?;
            let kind = ContentType::parse(&row.values[2]).with_context(|| {
                format!(
                    "{label}:{line}: column content_type: expected \"course\" or \"learning path\", \
                     found {:?}",
                    row.values[2]
                )
            })?;
            let sku = clean(&row.values[3]);
            if sku.is_empty() {
                bail!("{label}:{line}: column sku: expected a SKU, found an empty value");
            }
            check_unique(&label, &mut first_line, "uuid", &uuid, line)?;
            check_unique(&label, &mut first_line, "sku", &fold(&sku), line)?;
            let index = self.content.len();
            self.content_by_key.insert(uuid.clone(), index);
            self.content_by_key.insert(fold(&sku), index);
            self.content.push(ContentEntry {
                uuid,
                name: clean(&row.values[1]),
                kind,
                sku,
            });
        }
        Ok(())
    }

    /// The client a name or UUID refers to (case-insensitive).
    pub fn client(&self, name_or_uuid: &str) -> Option<&Client> {
        self.client_by_key
            .get(&fold(name_or_uuid))
            .map(|&i| &self.clients[i])
    }

    /// The content item a SKU or UUID refers to (case-insensitive).
    pub fn content_item(&self, sku_or_uuid: &str) -> Option<&ContentEntry> {
        self.content_by_key
            .get(&fold(sku_or_uuid))
            .map(|&i| &self.content[i])
    }

    /// The content item with exactly this UUID (the API never accepts SKUs).
    pub fn content_by_uuid(&self, uuid: &str) -> Option<&ContentEntry> {
        self.content_item(uuid).filter(|c| c.uuid == fold(uuid))
    }

    /// The location with exactly this UUID.
    pub fn location_by_uuid(&self, uuid: &str) -> Option<&Location> {
        self.location_by_uuid
            .get(&fold(uuid))
            .map(|&i| &self.locations[i])
    }

    /// Resolves a location name or UUID for a user of `client` (a client UUID). A location
    /// tied to another client is refused: the API would refuse it too.
    pub fn location(&self, name_or_uuid: &str, client: &str) -> Result<&Location, LocationMiss> {
        let usable = |l: &Location| l.client.as_deref().is_none_or(|c| c == client);
        if let Some(location) = self.location_by_uuid(name_or_uuid) {
            return if usable(location) {
                Ok(location)
            } else {
                Err(LocationMiss::OtherClient(name_or_uuid.to_owned()))
            };
        }
        let Some(candidates) = self.locations_by_name.get(&fold(name_or_uuid)) else {
            return Err(LocationMiss::Unknown(name_or_uuid.to_owned()));
        };
        let mut matching = candidates
            .iter()
            .map(|&i| &self.locations[i])
            .filter(|l| usable(l));
        match (matching.next(), matching.next()) {
            (Some(location), None) => Ok(location),
            (Some(_), Some(_)) => Err(LocationMiss::Ambiguous(name_or_uuid.to_owned())),
            (None, _) => Err(LocationMiss::OtherClient(name_or_uuid.to_owned())),
        }
    }
}

/// A data row of a catalog: its line and its values in the order the caller named the columns
/// (missing optional columns read as empty).
struct Row {
    line: u64,
    values: Vec<String>,
}

fn read_table(source: Source<impl Read>, required: &[&str], optional: &[&str]) -> Result<Vec<Row>> {
    let label = source.label;
    let mut bytes = Vec::new();
    source
        .reader
        .take(MAX_CATALOG_BYTES)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read catalog file {label}"))?;
    // Encoding and delimiter are detected as for the roster; the header must name the
    // required columns under one of the delimiters.
    let opened = super::source::read_header(
        Box::new(std::io::Cursor::new(bytes)),
        &label,
        "catalog file",
        &super::source::ReadOptions::default(),
        |header| {
            let names: Vec<String> = header
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            let keys: Vec<String> = names.iter().map(|n| header_key(n)).collect();
            let mut positions = Vec::new();
            for name in required.iter().chain(optional) {
                let position = keys.iter().position(|k| *k == header_key(name));
                if position.is_none() && required.contains(name) {
                    bail!(
                        "{label}:{}: missing required column {name:?}; expected columns {}, found {}",
                        header.line(),
                        required.join(","),
                        names.join(",")
                    );
                }
                positions.push(position);
            }
            Ok(positions)
        },
    )?;
    let width = opened.header.len();
    let positions = opened.accepted;
    let mut records = opened.records;
    let mut record = super::input::Record::default();
    let mut rows = Vec::new();
    while records
        .read(&mut record)
        .with_context(|| format!("cannot read catalog file {label}"))?
    {
        let line = record.line();
        if let Some(why) = record.broken(width) {
            bail!("{label}:{line}: {why}");
        }
        let mut values = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            let text = std::str::from_utf8(raw).map_err(|_| {
                anyhow::anyhow!(
                    "{label}:{line}: field {}: not valid UTF-8, although the rest of the file is; fix the line",
                    i + 1
                )
            })?;
            values.push(text);
        }
        if values.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        if values.len() != width {
            bail!(
                "{label}:{line}: expected {width} fields, found {}",
                values.len()
            );
        }
        let values = positions
            .iter()
            .map(|p| {
                p.and_then(|i| values.get(i))
                    .copied()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        rows.push(Row { line, values });
    }
    Ok(rows)
}

fn check_uuid(label: &str, line: u64, uuid: &str) -> Result<()> {
    if !looks_like_uuid(uuid) {
        bail!("{label}:{line}: column uuid: expected a UUID, found {uuid:?}");
    }
    Ok(())
}

fn check_unique(
    label: &str,
    first_line: &mut HashMap<String, u64>,
    column: &str,
    value: &str,
    line: u64,
) -> Result<()> {
    let key = format!("{column}\u{0}{value}");
    if let Some(first) = first_line.get(&key) {
        let shown = value.rsplit('\u{0}').next().unwrap_or(value);
        bail!("{label}:{line}: column {column}: duplicate {shown:?}, first seen on line {first}");
    }
    first_line.insert(key, line);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(label: &str, text: &'static str) -> Source<&'static [u8]> {
        Source {
            label: label.to_owned(),
            reader: text.as_bytes(),
        }
    }

    const CLIENTS: &str = "uuid,name\n\
        11111111-1111-4111-8111-111111111111,Acme Camps\n\
        22222222-2222-4222-8222-222222222222,Bravo Schools\n";
    const LOCATIONS: &str = "UUID,Name,Client\n\
        aaaaaaaa-0000-4000-8000-000000000001,Head Office,Acme Camps\n\
        aaaaaaaa-0000-4000-8000-000000000002,Head Office,22222222-2222-4222-8222-222222222222\n\
        aaaaaaaa-0000-4000-8000-000000000003,Lakeside,Acme Camps\n\
        aaaaaaaa-0000-4000-8000-000000000004,Remote,\n";
    const CONTENT: &str = "uuid,name,content_type,sku\n\
        cccccccc-0000-4000-8000-000000000001,Safety 101,course,SAF-101\n\
        cccccccc-0000-4000-8000-000000000002,Onboarding,Learning Path,LP-ONB\n";

    fn catalog() -> Catalog {
        Catalog::from_sources(
            source("clients.csv", CLIENTS),
            source("locations.csv", LOCATIONS),
            source("content.csv", CONTENT),
        )
        .unwrap()
    }

    #[test]
    fn resolves_names_skus_and_uuids_case_insensitively() {
        let c = catalog();
        assert_eq!(c.client("acme camps").unwrap().name, "Acme Camps");
        assert_eq!(
            c.client("22222222-2222-4222-8222-222222222222")
                .unwrap()
                .name,
            "Bravo Schools"
        );
        assert_eq!(c.content_item("saf-101").unwrap().kind, ContentType::Course);
        assert_eq!(
            c.content_item("LP-ONB").unwrap().kind,
            ContentType::LearningPath
        );
        assert!(c.content_by_uuid("SAF-101").is_none());
    }

    #[test]
    fn location_names_resolve_within_the_users_client() {
        let c = catalog();
        let acme = "11111111-1111-4111-8111-111111111111";
        let bravo = "22222222-2222-4222-8222-222222222222";
        assert!(
            c.location("head office", acme)
                .unwrap()
                .uuid
                .ends_with("01")
        );
        assert!(
            c.location("Head Office", bravo)
                .unwrap()
                .uuid
                .ends_with("02")
        );
        assert!(c.location("Remote", bravo).is_ok());
        assert_eq!(
            c.location("Lakeside", bravo),
            Err(LocationMiss::OtherClient("Lakeside".into()))
        );
        assert_eq!(
            c.location("aaaaaaaa-0000-4000-8000-000000000003", bravo),
            Err(LocationMiss::OtherClient(
                "aaaaaaaa-0000-4000-8000-000000000003".into()
            ))
        );
        assert_eq!(
            c.location("Nowhere", acme),
            Err(LocationMiss::Unknown("Nowhere".into()))
        );
    }

    #[test]
    fn duplicates_name_both_lines() {
        let err = Catalog::from_sources(
            source(
                "clients.csv",
                "uuid,name\n11111111-1111-4111-8111-111111111111,A\n\
                 22222222-2222-4222-8222-222222222222,a\n",
            ),
            source("locations.csv", "uuid,name\n"),
            source("content.csv", "uuid,name,content_type,sku\n"),
        )
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "clients.csv:3: column name: duplicate \"a\", first seen on line 2"
        );
    }

    #[test]
    fn bad_content_type_and_missing_header_are_explained() {
        let err = Catalog::from_sources(
            source("clients.csv", CLIENTS),
            source("locations.csv", LOCATIONS),
            source(
                "content.csv",
                "uuid,name,content_type,sku\ncccccccc-0000-4000-8000-000000000001,X,video,V1\n",
            ),
        )
        .unwrap_err();
        assert!(format!("{err:#}").starts_with("content.csv:2: column content_type"));
        let err = Catalog::from_sources(
            source("clients.csv", "id,name\n"),
            source("locations.csv", LOCATIONS),
            source("content.csv", CONTENT),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("missing required column \"uuid\""));
    }
}
