//! Bounded reading of operator-supplied CSV files: which files are accepted at all, and the
//! record reader the roster is read with.
//!
//! Owns the input limits (a record's size and line span), physical line numbers and the raw
//! text of each record, and the rule that decides a file is broken (a quote that never
//! closes or swallows line breaks, a record past the size limit). It must never buffer more
//! than [`MAX_RECORD_BYTES`] of one record, never block on a file that is not a regular
//! file, and never guess where a broken record ends: everything after a break is unread.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The longest record accepted, in bytes. A real roster row is a few hundred bytes; a record
/// this long is a runaway quote, a binary file or several files glued together, and the
/// bytes after it cannot be trusted to split into the right rows.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The most line breaks one record may hold. A quoted address may run over a few lines; a
/// quoted field running over more is a quote that never closed and is eating real rows.
pub const MAX_RECORD_LINES: u64 = 20;

/// How much of a refused row is kept in the ledger and in rejects.csv: enough to find and
/// recognize it, bounded whatever the row.
pub const MAX_EXCERPT_BYTES: usize = 1024;

/// Opens a file rostersync reads as input (`what` names it in messages: "roster",
/// "catalog file"). Anything but a regular file is refused before it is opened: a directory
/// cannot be read as CSV, and opening a FIFO with no writer, or reading a device such as
/// /dev/zero, would block or never end while the run holds the ledger's lock.
pub fn open_regular(path: &Path, what: &str) -> Result<File> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    check_regular(path, what, &metadata)?;
    let file =
        open_nonblocking(path).with_context(|| format!("cannot open {what} {}", path.display()))?;
    // The path may have been swapped between the check and the open: check what was opened.
    let opened = file
        .metadata()
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    check_regular(path, what, &opened)?;
    Ok(file)
}

fn check_regular(path: &Path, what: &str, metadata: &std::fs::Metadata) -> Result<()> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let found = if kind.is_dir() {
        "a directory"
    } else {
        special_kind(&kind)
    };
    bail!(
        "{what} {} is {found}, expected a CSV file (a regular file)",
        path.display()
    )
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

/// Opens without waiting for a writer: if a FIFO replaced the checked file, `open` returns
/// at once instead of blocking (the check after opening then refuses it). O_NONBLOCK has no
/// effect on reads of a regular file.
#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// At most [`MAX_EXCERPT_BYTES`] of `text` (cut on a character boundary), marked as cut
/// with the full length, so that a 50 MB line costs a kilobyte wherever it is stored.
pub fn excerpt(text: &str) -> String {
    if text.len() <= MAX_EXCERPT_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_EXCERPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [cut: {} bytes in all]", &text[..end], text.len())
}

/// At most `chars` characters of `text`, with "…" when cut: for names quoted in messages.
pub fn excerpt_chars(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// One CSV record: its fields, its raw text and where it stands in the file.
#[derive(Debug, Default, Clone)]
pub struct Record {
    fields: Vec<u8>,
    ends: Vec<usize>,
    len: usize,
    /// The record's bytes as they are in the file, without the line break that ends it (at
    /// most [`MAX_RECORD_BYTES`] + 1: past that the record is broken anyway).
    raw: Vec<u8>,
    line: u64,
    /// Line breaks inside the record (quoted fields spanning lines).
    inner_lines: u64,
    /// The record ended at the end of the file rather than at a line break.
    at_eof: bool,
    /// Past the limits: the record is broken (see [`Record::broken`]).
    overflow: Option<Overflow>,
    /// The field separator it was read with (to find where a quote opened).
    delimiter: u8,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Overflow {
    Bytes,
    Lines,
}

impl Record {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The field at `i`, unquoted.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.fields.get(start..self.ends[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// Every field's bytes, one after the other (as `csv::ByteRecord::as_slice`).
    pub fn as_slice(&self) -> &[u8] {
        &self.fields[..self
            .ends
            .get(self.len.wrapping_sub(1))
            .copied()
            .unwrap_or(0)]
    }

    /// The physical line the record starts on (the header is line 1), whatever the line
    /// ends (LF, CRLF) and however many quoted line breaks came before.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The record as it is in the file (invalid UTF-8 shown with replacement characters),
    /// cut to an [`excerpt`].
    pub fn original(&self) -> String {
        if self.raw.len() > MAX_RECORD_BYTES {
            // Only the start of it was kept: its full length is unknown.
            let text = excerpt(&String::from_utf8_lossy(&self.raw[..MAX_EXCERPT_BYTES]));
            return format!("{text}… [cut: over {} KiB]", MAX_RECORD_BYTES / 1024);
        }
        excerpt(&String::from_utf8_lossy(&self.raw))
    }

    /// Fills the record with the cells of a spreadsheet row: `line` is the sheet's row
    /// number, and the original text is the cells as one CSV line.
    pub fn set_cells<'c>(&mut self, line: u64, cells: impl IntoIterator<Item = &'c str>) {
        self.fields.clear();
        self.ends.clear();
        self.raw.clear();
        self.len = 0;
        for cell in cells {
            self.fields.extend_from_slice(cell.as_bytes());
            self.ends.push(self.fields.len());
            self.len += 1;
            if self.len > 1 {
                self.raw.push(b',');
            }
            if cell.contains([',', '"', '\n', '\r']) {
                self.raw.push(b'"');
                self.raw
                    .extend_from_slice(cell.replace('"', "\"\"").as_bytes());
                self.raw.push(b'"');
            } else {
                self.raw.extend_from_slice(cell.as_bytes());
            }
        }
        self.raw.truncate(MAX_RECORD_BYTES + 1);
        self.line = line;
        self.inner_lines = 0;
        self.at_eof = false;
        self.overflow = None;
        self.delimiter = b',';
    }

    /// Why this record makes the file unreadable from here on, if it does. `width` is the
    /// header's field count (0 for the header itself).
    pub fn broken(&self, width: usize) -> Option<String> {
        // Nearly every record: one line, ended by a line break. Scanning for quotes is only
        // for the others.
        if self.overflow.is_none() && self.inner_lines == 0 && !self.at_eof {
            return None;
        }
        let line = self.line;
        let quote = open_quote(&self.raw, line, self.delimiter);
        match self.overflow {
            Some(Overflow::Bytes) => Some(match quote {
                Some(q) if q.open => format!(
                    "a quote opened on line {} (field {}) never closes: the record starting on line {line} runs past {} KiB",
                    q.line,
                    q.field,
                    MAX_RECORD_BYTES / 1024
                ),
                _ => format!(
                    "the record starting on line {line} is longer than {} KiB; expected a CSV row of a few hundred bytes (is this a binary or corrupted file?)",
                    MAX_RECORD_BYTES / 1024
                ),
            }),
            Some(Overflow::Lines) => Some(match quote {
                Some(q) => format!(
                    "a quote opened on line {} (field {}) is still open {MAX_RECORD_LINES} lines later; a quoted field may span at most {MAX_RECORD_LINES} lines",
                    q.line, q.field
                ),
                None => format!(
                    "the record starting on line {line} spans more than {MAX_RECORD_LINES} lines"
                ),
            }),
            None => match quote {
                Some(q) if q.open && self.at_eof => Some(format!(
                    "a quote opened on line {} (field {}) never closes: it runs to the end of the file",
                    q.line, q.field
                )),
                // A quote that swallowed a line break and left the row with the wrong number
                // of fields took the next row(s) with it: those people were not read.
                Some(q) if self.inner_lines > 0 && width > 0 && self.len != width => Some(format!(
                    "a quote opened on line {} (field {}) runs over {} line break(s) and leaves the record with {} fields instead of {width}: it swallowed the rows after it",
                    q.line, q.field, self.inner_lines, self.len
                )),
                // The last row, cut short: no line break after it and too few or too many
                // fields. A file truncated in a copy or a transfer, whose tail is lost.
                _ if self.at_eof && width > 0 && self.len != width => Some(format!(
                    "the last row (line {line}) ends without a line break and has {} fields instead of {width}: the file looks cut short",
                    self.len
                )),
                _ => None,
            },
        }
    }
}

/// Where a quoted field that spans lines (or never closes) opened.
struct OpenQuote {
    line: u64,
    /// 1-based field number.
    field: usize,
    /// Still open at the end of the record's text.
    open: bool,
}

/// Finds the first quoted field in `raw` that holds a line break or never closes, following
/// the quoting rules of the parser (a quote opens only at the start of a field; `""` inside
/// quotes is a quote). Only called on records already suspect, so it needs no speed.
fn open_quote(raw: &[u8], first_line: u64, delimiter: u8) -> Option<OpenQuote> {
    #[derive(Clone, Copy)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let (mut state, mut line, mut field) = (State::FieldStart, first_line, 1usize);
    let mut opened: Option<(u64, usize, bool)> = None;
    for &b in raw {
        state = match (state, b) {
            (State::FieldStart, b'"') => {
                opened = Some((line, field, false));
                State::Quoted
            }
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, b'\n') => {
                if let Some(o) = opened.as_mut() {
                    o.2 = true;
                }
                State::Quoted
            }
            (State::Quoted, _) => State::Quoted,
            (State::QuoteInQuoted, b'"') => State::Quoted,
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b) if b == delimiter => {
                if let Some((line, field, true)) = opened {
                    return Some(OpenQuote {
                        line,
                        field,
                        open: false,
                    });
                }
                field += 1;
                State::FieldStart
            }
            (_, b'\n') => {
                if let Some((line, field, true)) = opened {
                    return Some(OpenQuote {
                        line,
                        field,
                        open: false,
                    });
                }
                field = 1;
                State::FieldStart
            }
            _ => State::Unquoted,
        };
        if b == b'\n' {
            line += 1;
        }
    }
    match (state, opened) {
        (State::Quoted, Some((line, field, _))) => Some(OpenQuote {
            line,
            field,
            open: true,
        }),
        (_, Some((line, field, true))) => Some(OpenQuote {
            line,
            field,
            open: false,
        }),
        _ => None,
    }
}

/// Where a record starts: a byte offset to seek to and the physical line there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub byte: u64,
    pub line: u64,
    /// The byte before `byte` is a CR: an LF there ends the same line (CRLF), not another.
    pub after_cr: bool,
}

impl Position {
    /// The start of a file: line 1.
    pub const START: Position = Position {
        byte: 0,
        line: 1,
        after_cr: false,
    };
}

/// A CSV reader (RFC 4180 quoting, any one-byte delimiter, any line end) that keeps each record within
/// [`MAX_RECORD_BYTES`] and [`MAX_RECORD_LINES`], counts physical lines itself and keeps the
/// raw text of each record. Past a limit the record comes back marked (see
/// [`Record::broken`]) and nothing more is read from the source: the caller stops there.
pub struct RecordReader<R> {
    source: R,
    core: csv_core::Reader,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    eof: bool,
    /// Offset and physical line of `buf[pos]`.
    at: Position,
    delimiter: u8,
}

/// Read in pieces this big: large enough that the parser's per-call cost vanishes.
const CHUNK: usize = 256 * 1024;

impl<R: Read + Seek> RecordReader<R> {
    /// A `,`-separated reader from the start of `source`.
    pub fn new(source: R) -> Self {
        RecordReader::with_delimiter(source, b',', Position::START)
    }

    /// A reader splitting fields on `delimiter`, reading `source` from `start` (past a
    /// byte order mark, say: the source must already stand there).
    pub fn with_delimiter(source: R, delimiter: u8, start: Position) -> Self {
        RecordReader {
            source,
            core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            buf: vec![0; CHUNK].into_boxed_slice(),
            pos: 0,
            filled: 0,
            eof: false,
            at: start,
            delimiter,
        }
    }

    /// The field separator.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Gives the source back (to read it again with another delimiter).
    pub fn into_inner(self) -> R {
        self.source
    }

    /// Where the next record starts (give to [`RecordReader::seek`] to read it again).
    pub fn position(&self) -> Position {
        self.at
    }

    /// Reads again from a position [`RecordReader::position`] gave. A position inside what
    /// is buffered is read from the buffer: reading scattered rows again (a night's changed
    /// rows, a few in every chunk) seeks to each of them.
    pub fn seek(&mut self, to: Position) -> io::Result<()> {
        // `at` is the position of `buf[pos]`, so `buf` holds the bytes from `base` on.
        let base = self.at.byte - self.pos as u64;
        if (base..base + self.filled as u64).contains(&to.byte) {
            self.pos = (to.byte - base) as usize;
        } else {
            self.source.seek(SeekFrom::Start(to.byte))?;
            self.pos = 0;
            self.filled = 0;
        }
        self.core.reset();
        self.eof = false;
        self.at = to;
        Ok(())
    }

    /// Reads the next record into `record`; false at the end of the file. A record past a
    /// limit comes back with what was read of it, marked broken; the caller must not read on.
    pub fn read(&mut self, record: &mut Record) -> io::Result<bool> {
        use csv_core::ReadRecordResult as R;
        record.len = 0;
        record.raw.clear();
        record.inner_lines = 0;
        record.at_eof = false;
        record.overflow = None;
        record.delimiter = self.delimiter;
        record.line = self.at.line;
        if record.fields.len() < 256 {
            record.fields.resize(256, 0);
        }
        if record.ends.len() < 16 {
            record.ends.resize(16, 0);
        }
        let (mut nfields, mut nends) = (0, 0);
        // Line breaks before the record's first byte (blank lines, the LF of a CRLF) are not
        // part of it: they move its line on.
        let mut started = false;
        loop {
            if self.pos == self.filled && !self.eof {
                self.filled = read_some(&mut self.source, &mut self.buf)?;
                self.pos = 0;
                self.eof = self.filled == 0;
            }
            let input = &self.buf[self.pos..self.filled];
            let (result, nin, nout, nend) = self.core.read_record(
                input,
                &mut record.fields[nfields..],
                &mut record.ends[nends..],
            );
            let mut consumed = &input[..nin];
            let mut lead_lines = 0;
            if !started {
                let lead = consumed
                    .iter()
                    .position(|b| !matches!(b, b'\n' | b'\r'))
                    .unwrap_or(consumed.len());
                lead_lines = count_line_breaks(&consumed[..lead], &mut self.at.after_cr);
                record.line += lead_lines;
                started = lead < consumed.len();
                consumed = &consumed[lead..];
            }
            let newlines = count_line_breaks(consumed, &mut self.at.after_cr);
            record.inner_lines += newlines;
            let room = (MAX_RECORD_BYTES + 1).saturating_sub(record.raw.len());
            record
                .raw
                .extend_from_slice(&consumed[..consumed.len().min(room)]);
            let ended_at_eof = input.is_empty();
            self.pos += nin;
            self.at.byte += nin as u64;
            self.at.line += lead_lines + newlines;
            nfields += nout;
            nends += nend;
            let ended = match result {
                R::Record => {
                    record.at_eof = ended_at_eof;
                    // The line break that ends the record is not inside it.
                    while let Some(last @ (b'\n' | b'\r')) = record.raw.last().copied() {
                        record.raw.pop();
                        // Counted as [`count_line_breaks`] counts: a CR, or an LF alone.
                        if last == b'\r' || record.raw.last() != Some(&b'\r') {
                            record.inner_lines = record.inner_lines.saturating_sub(1);
                        }
                    }
                    true
                }
                R::End => return Ok(false),
                R::InputEmpty => false,
                R::OutputFull => {
                    let grown = (record.fields.len() * 2).min(MAX_RECORD_BYTES + 1);
                    record.fields.resize(grown.max(record.fields.len() + 1), 0);
                    false
                }
                R::OutputEndsFull => {
                    record.ends.resize(record.ends.len() * 2, 0);
                    false
                }
            };
            // Checked as the record grows, so that memory and time stay bounded: a record
            // past a limit is given back as it stands and nothing more is read. While the
            // record is open, one extra line may be the break that will end it.
            let slack = u64::from(!ended);
            record.overflow = if record.raw.len() > MAX_RECORD_BYTES || nfields > MAX_RECORD_BYTES {
                Some(Overflow::Bytes)
            } else if record.inner_lines > MAX_RECORD_LINES + slack {
                Some(Overflow::Lines)
            } else {
                None
            };
            if ended || record.overflow.is_some() {
                record.len = nends;
                return Ok(true);
            }
        }
    }
}

fn read_some(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match source.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Line breaks in `bytes`: CRLF, LF or a CR alone (old Mac exports) each end one line.
/// `after_cr` carries whether the byte before was a CR across calls, so a CRLF split between
/// two reads counts once.
fn count_line_breaks(bytes: &[u8], after_cr: &mut bool) -> u64 {
    let mut breaks = 0;
    for &byte in bytes {
        match byte {
            b'\r' => breaks += 1,
            b'\n' if !*after_cr => breaks += 1,
            _ => {}
        }
        *after_cr = byte == b'\r';
    }
    breaks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &[u8]) -> Vec<(u64, Vec<String>, Option<String>)> {
        let mut reader = RecordReader::new(io::Cursor::new(text.to_vec()));
        let mut record = Record::default();
        let mut out = Vec::new();
        while reader.read(&mut record).unwrap() {
            let fields = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            let broken = record.broken(3);
            let stop = broken.is_some();
            out.push((record.line(), fields, broken));
            if stop {
                break;
            }
        }
        out
    }

    #[test]
    fn lines_are_physical_lines_whatever_the_line_ends() {
        let got = records(b"a,b,c\r\n1,\"x\r\ny\",3\r\n\r\n4,5,6\r\n7,8,9");
        let lines: Vec<u64> = got.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![1, 2, 5, 6]);
        assert_eq!(got[1].1, vec!["1", "x\r\ny", "3"]);
        assert!(got.iter().all(|r| r.2.is_none()), "{got:?}");
    }

    #[test]
    fn line_numbers_for_each_kind_of_line_end() {
        // (case, file, the line each record starts on)
        let cases: &[(&str, &[u8], &[u64])] = &[
            ("LF", b"a,b,c\n1,2,3\n4,5,6\n", &[1, 2, 3]),
            ("CRLF", b"a,b,c\r\n1,2,3\r\n4,5,6\r\n", &[1, 2, 3]),
            ("CR", b"a,b,c\r1,2,3\r4,5,6\r", &[1, 2, 3]),
            ("blank lines LF", b"a,b,c\n\n1,2,3\n\n\n4,5,6\n", &[1, 3, 6]),
            (
                "blank lines CRLF",
                b"a,b,c\r\n\r\n1,2,3\r\n\r\n4,5,6",
                &[1, 3, 5],
            ),
            (
                "multi-line LF",
                b"a,b,c\n1,\"x\ny\nz\",3\n4,5,6\n",
                &[1, 2, 5],
            ),
            (
                "multi-line CRLF",
                b"a,b,c\r\n1,\"x\r\ny\",3\r\n4,5,6\r\n",
                &[1, 2, 4],
            ),
            (
                "multi-line LF in CRLF",
                b"a,b,c\r\n1,\"x\ny\",3\r\n4,5,6\r\n",
                &[1, 2, 4],
            ),
            ("no final line end", b"a,b,c\r\n1,2,3\r\n4,5,6", &[1, 2, 3]),
        ];
        for (case, text, lines) in cases {
            let got: Vec<u64> = records(text).iter().map(|r| r.0).collect();
            assert_eq!(&got, lines, "{case}");
        }
        // A BOM is skipped by the caller, which starts the reader past it on line 1.
        let text = b"\xEF\xBB\xBFa,b,c\r\n1,2,3\r\n";
        let mut source = io::Cursor::new(text.to_vec());
        source.set_position(3);
        let start = Position {
            byte: 3,
            ..Position::START
        };
        let mut reader = RecordReader::with_delimiter(source, b',', start);
        let mut record = Record::default();
        let mut got = Vec::new();
        while reader.read(&mut record).unwrap() {
            got.push((record.line(), record.original()));
        }
        assert_eq!(got, vec![(1, "a,b,c".to_owned()), (2, "1,2,3".to_owned())]);
    }

    #[test]
    fn a_cr_alone_ends_a_line_and_a_crlf_split_between_reads_counts_once() {
        let got = records(b"a,b,c\r1,2,3\r\r4,\"x\ry\",6\r7,8,9");
        let lines: Vec<u64> = got.iter().map(|r| r.0).collect();
        assert_eq!(lines, vec![1, 2, 4, 6]);
        assert!(got.iter().all(|r| r.2.is_none()), "{got:?}");
        let mut after_cr = false;
        assert_eq!(count_line_breaks(b"x\r", &mut after_cr), 1);
        assert_eq!(count_line_breaks(b"\ny\n", &mut after_cr), 1);
    }

    #[test]
    fn a_last_row_cut_short_breaks_the_file_but_a_complete_one_does_not() {
        let cut = records(b"a,b,c\n1,2,3\n4,Fir");
        assert!(
            cut[2].2.as_deref().unwrap().contains("cut short"),
            "{cut:?}"
        );
        let whole = records(b"a,b,c\n1,2,3\n4,5,6");
        assert!(whole.iter().all(|r| r.2.is_none()), "{whole:?}");
    }

    #[test]
    fn a_quote_that_never_closes_names_its_line() {
        let got = records(b"a,b,c\n1,2,3\n4,\"Quinn,5\n6,7,8\n9,10,11\n");
        let broken = got.last().unwrap().2.as_deref().unwrap();
        assert!(broken.contains("opened on line 3 (field 2)"), "{broken}");
        assert!(broken.contains("never closes"), "{broken}");
    }

    #[test]
    fn a_quote_closed_by_a_later_row_is_caught_by_the_field_count() {
        let got = records(b"a,b,c\n4,\"Quinn,5\n6,7,\"x\"\n9,10,11\n");
        let broken = got[1].2.as_deref().unwrap();
        assert!(broken.contains("opened on line 2"), "{broken}");
    }

    #[test]
    fn records_are_bounded_in_bytes_and_lines() {
        let mut text = b"a,b,c\n".to_vec();
        text.extend(std::iter::repeat_n(0u8, 3 * MAX_RECORD_BYTES));
        let got = records(&text);
        assert!(got[1].2.as_deref().unwrap().contains("longer than 64 KiB"));
        let mut text = b"a,b,c\n1,\"".to_vec();
        text.extend(std::iter::repeat_n(b"x\n"[..].iter().copied(), 100).flatten());
        text.extend(b"\",2\n");
        let got = records(&text);
        assert!(
            got[1]
                .2
                .as_deref()
                .unwrap()
                .contains("still open 20 lines later")
        );
    }

    #[test]
    fn seeking_back_reads_the_same_records_with_the_same_lines() {
        let text = b"a,b,c\r\n1,2,3\r\n4,5,6\r\n";
        let mut reader = RecordReader::new(io::Cursor::new(text.to_vec()));
        let mut record = Record::default();
        assert!(reader.read(&mut record).unwrap());
        let mark = reader.position();
        assert!(reader.read(&mut record).unwrap());
        let first = (record.line(), record.as_slice().to_vec());
        assert!(reader.read(&mut record).unwrap());
        reader.seek(mark).unwrap();
        assert!(reader.read(&mut record).unwrap());
        assert_eq!((record.line(), record.as_slice().to_vec()), first);
        assert_eq!(first.0, 2);
        assert_eq!(record.original(), "1,2,3");
    }

    #[test]
    fn seeking_within_the_buffer_and_beyond_it_reads_the_same_records() {
        // Records of 100 bytes or so, far more than one chunk of them.
        let text: String = (0..10_000)
            .map(|i| format!("{i},{}\n", "x".repeat(90)))
            .collect();
        let mut reader = RecordReader::new(io::Cursor::new(text.into_bytes()));
        let mut record = Record::default();
        let mut marks = Vec::new();
        loop {
            let mark = reader.position();
            if !reader.read(&mut record).unwrap() {
                break;
            }
            marks.push((mark, record.line(), record.as_slice().to_vec()));
        }
        // Forward a little (in the buffer), back a little, far back, far forward.
        for i in [0, 3, 2, 5_000, 4_999, 5_001, 9_999, 10, 7_777] {
            let (mark, line, ref cells) = marks[i];
            reader.seek(mark).unwrap();
            assert!(reader.read(&mut record).unwrap());
            assert_eq!(
                (record.line(), record.as_slice()),
                (line, &cells[..]),
                "row {i}"
            );
            assert_eq!(line, i as u64 + 1);
        }
    }

    #[test]
    fn excerpts_are_bounded_and_marked() {
        let long = "é".repeat(10_000);
        let cut = excerpt(&long);
        assert!(cut.len() < MAX_EXCERPT_BYTES + 64);
        assert!(cut.ends_with("[cut: 20000 bytes in all]"));
        assert_eq!(excerpt("short"), "short");
    }
}
