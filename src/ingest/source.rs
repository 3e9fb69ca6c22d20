//! What an input file is, settled before its first row is read: a spreadsheet or CSV, and
//! for CSV its encoding and its delimiter.
//!
//! Owns the choices and how they are said: the delimiter is the one (`,`, `;` or tab) that
//! splits the header line into the columns the caller needs, and when none does, the message
//! says which it tried and which the header seems to use. It hands the caller a [`Records`]
//! reader standing after the header. It must never guess row by row: a file has one format,
//! and every row is read in it.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result, bail};
use encoding_rs::Encoding;

use super::encoding::{self, Detected};
use super::input::{self, Position, Record, RecordReader};
use super::sheet::{Kind, SheetRows};

/// Anything a CSV file can be read from again and again: the file itself, its decoded copy,
/// a buffer in a test.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// `[files]` settings that say how to read the roster instead of detecting it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// `[files] encoding`; `None` detects.
    pub encoding: Option<&'static Encoding>,
    /// `[files] delimiter`; `None` detects.
    pub delimiter: Option<u8>,
    /// `[files] sheet`; `None` reads a workbook's first sheet.
    pub sheet: Option<String>,
}

/// The delimiters tried, in this order, when none is configured.
pub const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// How `[files] delimiter` and the messages spell a delimiter.
pub fn delimiter_name(delimiter: u8) -> String {
    match delimiter {
        b',' => "comma".to_owned(),
        b';' => "semicolon".to_owned(),
        b'\t' => "tab".to_owned(),
        b'|' => "pipe".to_owned(),
        other => format!("{:?}", char::from(other)),
    }
}

/// Parses `[files] delimiter`: "auto", one character (",", ";", "|"), or a name ("tab",
/// "comma", "semicolon", "pipe").
pub fn parse_delimiter(raw: &str) -> Result<Option<u8>> {
    let delimiter = match raw.to_ascii_lowercase().as_str() {
        "" | "auto" => return Ok(None),
        "tab" | "\t" | "\\t" => b'\t',
        "comma" => b',',
        "semicolon" => b';',
        "pipe" => b'|',
        one if one.len() == 1 => one.as_bytes()[0],
        _ => bail!("expected \"auto\", one character such as \";\", or \"tab\", found {raw:?}"),
    };
    // A quote, a line break or a letter cannot separate fields of a CSV file.
    if !delimiter.is_ascii_punctuation() && delimiter != b'\t' || delimiter == b'"' {
        bail!("{raw:?} cannot separate fields; expected \",\", \";\", \"tab\" or \"|\"");
    }
    Ok(Some(delimiter))
}

/// What a file was read as, said in the output and in summary.json.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Csv { encoding: Detected, delimiter: u8 },
    Sheet { kind: Kind, sheet: String },
}

impl Format {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Format::Csv {
                encoding,
                delimiter,
            } => serde_json::json!({
                "format": "csv",
                "encoding": encoding.name(),
                "encoding_basis": basis_json(encoding.basis),
                "delimiter": char::from(*delimiter).to_string(),
            }),
            Format::Sheet { kind, sheet } => serde_json::json!({
                "format": kind.name(),
                "sheet": sheet,
            }),
        }
    }
}

/// How the encoding was settled, for summary.json: a word, and the counts of a guess.
fn basis_json(basis: encoding::Basis) -> serde_json::Value {
    use encoding::Basis;
    match basis {
        Basis::Bom => serde_json::json!({"by": "byte order mark"}),
        Basis::Configured => serde_json::json!({"by": "[files] encoding"}),
        Basis::Valid => serde_json::json!({"by": "every byte valid"}),
        Basis::ZeroBytes => serde_json::json!({"by": "zero bytes"}),
        Basis::Guessed { not_utf8, utf8 } => serde_json::json!({
            "by": "byte counts",
            "not_utf8_sequences": not_utf8,
            "utf8_characters": utf8,
        }),
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Csv {
                encoding,
                delimiter,
            } => write!(
                f,
                "CSV, {}-separated, {encoding}",
                delimiter_name(*delimiter)
            ),
            Format::Sheet { kind, sheet } => write!(f, "{} workbook, sheet {sheet:?}", kind.name()),
        }
    }
}

/// The records of a file, CSV or sheet, read one at a time and read again from a
/// [`Position`] they gave.
pub enum Records {
    // Boxed: the parser's tables make it five times the size of the other.
    Csv(Box<RecordReader<Box<dyn ReadSeek>>>),
    Sheet(SheetRows),
}

impl Records {
    /// Reads the next record; false at the end.
    pub fn read(&mut self, record: &mut Record) -> std::io::Result<bool> {
        match self {
            Records::Csv(reader) => reader.read(record),
            Records::Sheet(rows) => Ok(rows.read_row(record)),
        }
    }

    pub fn position(&self) -> Position {
        match self {
            Records::Csv(reader) => reader.position(),
            Records::Sheet(rows) => rows.position(),
        }
    }

    pub fn seek(&mut self, to: Position) -> std::io::Result<()> {
        match self {
            Records::Csv(reader) => reader.seek(to),
            Records::Sheet(rows) => {
                rows.seek(to);
                Ok(())
            }
        }
    }
}

/// A file opened, its header read and accepted by the caller.
pub struct Opened<T> {
    /// Standing after the header.
    pub records: Records,
    pub format: Format,
    pub header: Record,
    /// What the caller made of the header.
    pub accepted: T,
}

/// Opens the file at `path` (a spreadsheet by its extension, else CSV) and reads its header
/// with `accept`, which says whether the header has the columns needed (see [`read_header`]).
pub fn open<T>(
    path: &Path,
    what: &str,
    options: &ReadOptions,
    accept: impl FnMut(&Record) -> Result<T>,
) -> Result<Opened<T>> {
    let label = path.display().to_string();
    if let Some(kind) = Kind::of(path) {
        let rows = SheetRows::read(path, kind, options.sheet.as_deref(), &label)?;
        let sheet = rows.sheet.clone();
        return sheet_header(rows, &label, Format::Sheet { kind, sheet }, accept);
    }
    let mut file = input::open_regular(path, what)?;
    // A workbook under a CSV name would be read as binary garbage: say what it is.
    let container = super::sheet::container(&mut file)
        .with_context(|| format!("cannot read {what} {label}"))?;
    if container != super::sheet::Container::Other {
        bail!(
            "{label}: this is a spreadsheet workbook, not CSV text; name it .xlsx (or .ods), or export it as CSV"
        );
    }
    read_header(Box::new(file), &label, what, options, accept)
}

fn sheet_header<T>(
    mut rows: SheetRows,
    label: &str,
    format: Format,
    mut accept: impl FnMut(&Record) -> Result<T>,
) -> Result<Opened<T>> {
    let mut header = Record::default();
    if !rows.read_row(&mut header) {
        bail!("{label}: the sheet is empty; expected a header row");
    }
    let accepted = accept(&header)?;
    Ok(Opened {
        records: Records::Sheet(rows),
        format,
        header,
        accepted,
    })
}

/// Settles the encoding of a CSV `source`, then the delimiter: each candidate (or the one
/// configured) splits the header line, and the first whose split `accept` takes wins.
pub fn read_header<T>(
    mut source: Box<dyn ReadSeek>,
    label: &str,
    what: &str,
    options: &ReadOptions,
    mut accept: impl FnMut(&Record) -> Result<T>,
) -> Result<Opened<T>> {
    let detected = encoding::detect(&mut source, options.encoding)
        .with_context(|| format!("cannot read {what} {label}"))?;
    let (mut source, start): (Box<dyn ReadSeek>, Position) = if detected.is_utf8() {
        let start = Position {
            byte: detected.bom_len,
            ..Position::START
        };
        (source, start)
    } else {
        let decoded = encoding::decode_to_temp(&mut source, detected.encoding)
            .with_context(|| format!("{label}: cannot decode it from {}", detected.name()))?;
        (Box::new(decoded), Position::START)
    };
    let candidates: Vec<u8> = match options.delimiter {
        Some(d) => vec![d],
        None => DELIMITERS.to_vec(),
    };
    let mut refused: Vec<(u8, usize, anyhow::Error)> = Vec::new();
    let mut first_line = String::new();
    for &delimiter in &candidates {
        source
            .seek(SeekFrom::Start(start.byte))
            .with_context(|| format!("cannot read {what} {label}"))?;
        let mut reader = RecordReader::with_delimiter(source, delimiter, start);
        let mut header = Record::default();
        if !reader
            .read(&mut header)
            .with_context(|| format!("cannot read {what} {label}"))?
        {
            bail!("{label}: the file is empty; expected a header line");
        }
        if first_line.is_empty() {
            first_line = header.original();
        }
        let outcome = match header.broken(0) {
            Some(why) => Err(anyhow::anyhow!(
                "{label}:{}: the header is unreadable: {why}",
                header.line()
            )),
            None => accept(&header),
        };
        match outcome {
            Ok(accepted) => {
                return Ok(Opened {
                    records: Records::Csv(Box::new(reader)),
                    format: Format::Csv {
                        encoding: detected,
                        delimiter,
                    },
                    header,
                    accepted,
                });
            }
            Err(e) => refused.push((delimiter, header.len(), e)),
        }
        source = reader.into_inner();
    }
    Err(no_delimiter_fits(
        refused,
        &first_line,
        options.delimiter.is_some(),
        &detected,
    ))
}

/// The error when no delimiter gave a header with the needed columns: the one from the
/// delimiter that split the header best, with what was tried and what the header seems to
/// use.
fn no_delimiter_fits(
    mut refused: Vec<(u8, usize, anyhow::Error)>,
    first_line: &str,
    configured: bool,
    detected: &Detected,
) -> anyhow::Error {
    // The most columns wins; on a tie, the earlier candidate.
    let best = refused
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, columns, _))| (*columns, usize::MAX - i))
        .map_or(0, |(i, _)| i);
    let (delimiter, columns, error) = refused.swap_remove(best);
    let seen = most_frequent_delimiter(first_line);
    let how = if configured {
        let hint = match seen {
            Some(s) if s != delimiter => format!(
                "; the header line holds more {}s: set [files] delimiter to \"{}\" or \"auto\"",
                delimiter_name(s),
                if s == b'\t' {
                    "tab".to_owned()
                } else {
                    char::from(s).to_string()
                }
            ),
            _ => String::new(),
        };
        format!(
            "split on {} as [files] delimiter says: {columns} column(s){hint}",
            delimiter_name(delimiter)
        )
    } else {
        format!(
            "tried comma, semicolon and tab; the header splits best on {} ({columns} column(s)){}",
            delimiter_name(delimiter),
            match seen {
                Some(s) if s != delimiter => format!(
                    ", and it holds most {}s: set [files] delimiter if the file uses them",
                    delimiter_name(s)
                ),
                _ => String::new(),
            }
        )
    };
    error.context(format!("read as {}: {how}", detected.name()))
}

/// The candidate delimiter (or `|`) found most often outside quotes in `line`.
fn most_frequent_delimiter(line: &str) -> Option<u8> {
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for b in line.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            b'|' if !quoted => counts[3] += 1,
            _ => {}
        }
    }
    let (i, &n) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, 3 - i))?;
    (n > 0).then(|| [b',', b';', b'\t', b'|'][i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(columns: &'static [&'static str]) -> impl FnMut(&Record) -> Result<usize> {
        move |header: &Record| {
            let names: Vec<String> = header
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            for c in columns {
                if !names.iter().any(|n| n == c) {
                    bail!("missing required column {c}; found columns {names:?}");
                }
            }
            Ok(names.len())
        }
    }

    fn open_bytes(bytes: &[u8], options: &ReadOptions) -> Result<Opened<usize>> {
        read_header(
            Box::new(std::io::Cursor::new(bytes.to_vec())),
            "r.csv",
            "roster",
            options,
            needs(&["id", "name"]),
        )
    }

    fn rest(opened: &mut Opened<usize>) -> Vec<(u64, Vec<String>)> {
        let mut record = Record::default();
        let mut out = Vec::new();
        while opened.records.read(&mut record).unwrap() {
            out.push((
                record.line(),
                record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
            ));
        }
        out
    }

    #[test]
    fn the_delimiter_is_the_one_that_yields_the_columns() {
        for (text, delimiter) in [
            ("id,name\n1,Zoë\n", b','),
            ("id;name\n1;Zoë\n", b';'),
            ("id\tname\n1\tZoë\n", b'\t'),
            // A comma inside a field of a ;-separated file does not fool it.
            ("id;name\n1;Doe, Jr\n", b';'),
        ] {
            let mut opened = open_bytes(text.as_bytes(), &ReadOptions::default()).unwrap();
            assert!(
                matches!(opened.format, Format::Csv { delimiter: d, .. } if d == delimiter),
                "{text:?}: {:?}",
                opened.format
            );
            assert_eq!(rest(&mut opened)[0].0, 2);
        }
    }

    #[test]
    fn a_bom_is_skipped_and_the_header_stays_line_1() {
        let mut opened = open_bytes(
            "\u{feff}id;name\r\n1;Zoë\r\n2;Bo\r\n".as_bytes(),
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(opened.header.original(), "id;name");
        assert_eq!(opened.header.line(), 1);
        let rows = rest(&mut opened);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn utf16_and_windows_1252_are_read_as_text() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(
            "id\tname\r\n1\tZoë\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        let mut opened = open_bytes(&bytes, &ReadOptions::default()).unwrap();
        assert_eq!(rest(&mut opened), vec![(2, vec!["1".into(), "Zoë".into()])]);
        let mut opened = open_bytes(b"id,name\r\n1,Zo\xEB\r\n", &ReadOptions::default()).unwrap();
        assert_eq!(rest(&mut opened), vec![(2, vec!["1".into(), "Zoë".into()])]);
        assert!(
            opened.format.to_string().contains("windows-1252"),
            "{}",
            opened.format
        );
    }

    #[test]
    fn when_no_delimiter_fits_the_message_says_what_was_tried_and_seen() {
        let err = open_bytes(b"ident;nom\n1;x\n", &ReadOptions::default())
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("tried comma, semicolon and tab"), "{text}");
        assert!(
            text.contains("splits best on semicolon (2 column(s))"),
            "{text}"
        );
        let options = ReadOptions {
            delimiter: Some(b','),
            ..ReadOptions::default()
        };
        let err = open_bytes(b"id;name\n1;x\n", &options).err().unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("as [files] delimiter says: 1 column(s)"),
            "{text}"
        );
        assert!(text.contains("more semicolons"), "{text}");
    }

    #[test]
    fn delimiters_parse_from_config() {
        assert_eq!(parse_delimiter("auto").unwrap(), None);
        assert_eq!(parse_delimiter("tab").unwrap(), Some(b'\t'));
        assert_eq!(parse_delimiter(";").unwrap(), Some(b';'));
        assert_eq!(parse_delimiter("|").unwrap(), Some(b'|'));
        assert!(parse_delimiter("\"").is_err());
        assert!(parse_delimiter("x").is_err());
        assert!(parse_delimiter(";;").is_err());
    }
}
