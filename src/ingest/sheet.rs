//! Spreadsheet rosters (`.xlsx`, `.xlsm`, `.ods`): one sheet read into rows of text, which
//! the roster reader then takes like CSV records.
//!
//! Owns choosing the sheet (the first, or the one `[files] sheet` names), turning each cell
//! into the text a CSV export of it would hold (a whole number without ".0", a date as
//! YYYY-MM-DD, an error cell as its `#N/A`), and the sheet's row numbers, which are what
//! rejects.csv names. It must never hold more than the limits below: an xlsx sheet is
//! streamed cell by cell (a zip of a few megabytes can unpack to gigabytes), and never
//! reorder or drop a non-empty cell.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result, bail};
use calamine::{Data, DataRef, Ods, Reader, Sheet, SheetType, SheetVisible, Xlsx};

use super::input::{Position, Record};

/// The most rows a sheet may hold: Excel's own limit.
pub const MAX_SHEET_ROWS: u32 = 1_048_576;
/// The most columns read: a roster has a dozen; past this the sheet is not a roster.
pub const MAX_SHEET_COLUMNS: u32 = 1_024;
/// The most text a sheet may hold once unpacked (what a million roster rows need).
pub const MAX_SHEET_TEXT: usize = 512 << 20;
/// The most cells kept (header width times rows): a million rows of 32 columns.
pub const MAX_SHEET_CELLS: usize = 32 << 20;
/// The largest `.ods` file accepted: it is read whole (no streaming reader exists for it).
pub const MAX_ODS_BYTES: u64 = 32 << 20;
/// The most a workbook's parts may unpack to, as its zip directory declares them: a zip of a
/// few megabytes can unpack to gigabytes, and the library holds some parts (xlsx's shared
/// strings) whole in memory.
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;
/// The most xlsx's shared strings may unpack to: the library holds them whole, at several
/// times their size. A million people's names and emails take well under this.
pub const MAX_SHARED_STRINGS_BYTES: u64 = 192 << 20;
/// The most of one cell kept: Excel's own limit is 32,767 characters, and the roster refuses
/// a field past 4 KiB anyway; what is past this is counted, not copied.
pub const MAX_CELL_BYTES: usize = 64 << 10;

/// The spreadsheet kinds read, by file name extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Xlsx,
    Ods,
}

impl Kind {
    /// The kind a path's extension names, if it is a spreadsheet rostersync reads.
    pub fn of(path: &Path) -> Option<Kind> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "xlsx" | "xlsm" => Some(Kind::Xlsx),
            "ods" => Some(Kind::Ods),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Xlsx => "xlsx",
            Kind::Ods => "ods",
        }
    }
}

/// A sheet's non-empty rows, held compactly: the text of every cell one after the other.
#[derive(Debug, Default)]
pub struct SheetRows {
    /// The sheet read.
    pub sheet: String,
    text: String,
    /// End of each cell's text in `text` (which is at most [`MAX_SHEET_TEXT`]).
    cell_ends: Vec<u32>,
    /// Each row: its 1-based row number in the sheet and the index of its first cell.
    rows: Vec<(u32, usize)>,
    next: usize,
}

impl SheetRows {
    /// Reads `sheet` (or the first) of the workbook at `path`; `label` names it in messages.
    pub fn read(path: &Path, kind: Kind, sheet: Option<&str>, label: &str) -> Result<SheetRows> {
        // Checked before the library reads it, as for a CSV file: no FIFO, no device; the
        // library is handed this very file, never the path again.
        let mut file = super::input::open_regular(path, "roster")?;
        check_workbook(&mut file, label)?;
        match kind {
            Kind::Xlsx => read_xlsx(file, sheet, label),
            Kind::Ods => read_ods(file, sheet, label),
        }
    }

    /// Data rows and header: rows that hold at least one non-empty cell.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Fills `record` with the next row; false after the last.
    pub fn read_row(&mut self, record: &mut Record) -> bool {
        let Some(&(line, first)) = self.rows.get(self.next) else {
            return false;
        };
        let end = self
            .rows
            .get(self.next + 1)
            .map_or(self.cell_ends.len(), |r| r.1);
        let end_of = |i: usize| self.cell_ends[i] as usize;
        let start_of = |i: usize| if i == 0 { 0 } else { end_of(i - 1) };
        let cells = (first..end).map(|i| self.text.get(start_of(i)..end_of(i)).unwrap_or(""));
        record.set_cells(u64::from(line), cells);
        self.next += 1;
        true
    }

    /// Where the next row is: `byte` holds the row's index.
    pub fn position(&self) -> Position {
        Position {
            byte: self.next as u64,
            line: self.rows.get(self.next).map_or(0, |r| u64::from(r.0)),
            after_cr: false,
        }
    }

    pub fn seek(&mut self, to: Position) {
        self.next = (to.byte as usize).min(self.rows.len());
    }
}

/// Collects cells, given in row order, into [`SheetRows`]: rows padded with empty cells up
/// to the header's width, trailing empty cells dropped, empty rows skipped.
struct Builder<'a> {
    out: SheetRows,
    label: &'a str,
    row: Option<u32>,
    /// Cells of the row being built, by column.
    cells: Vec<String>,
    header_width: Option<usize>,
    /// Bytes in `cells`, counted against [`MAX_SHEET_TEXT`] before the row is kept.
    pending: usize,
}

impl<'a> Builder<'a> {
    fn new(label: &'a str, sheet: String) -> Self {
        Builder {
            out: SheetRows {
                sheet,
                ..SheetRows::default()
            },
            label,
            row: None,
            cells: Vec::new(),
            header_width: None,
            pending: 0,
        }
    }

    /// A cell at 0-based (row, column) with its text.
    fn cell(&mut self, row: u32, column: u32, text: String) -> Result<()> {
        if row >= MAX_SHEET_ROWS {
            bail!(
                "{}: row {} is past the most a sheet holds ({MAX_SHEET_ROWS})",
                self.label,
                u64::from(row) + 1
            );
        }
        match self.row {
            Some(current) if row < current => bail!(
                "{}: the sheet's cells are out of order (row {} after row {}); save it again from the spreadsheet program",
                self.label,
                row + 1,
                current + 1
            ),
            Some(current) if row == current => {}
            _ => {
                self.end_row();
                self.row = Some(row);
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        if column >= MAX_SHEET_COLUMNS {
            bail!(
                "{}: row {}: a value in column {} is past the {MAX_SHEET_COLUMNS} columns a roster may have",
                self.label,
                row + 1,
                column + 1
            );
        }
        self.pending += text.len();
        if self.out.text.len() + self.pending > MAX_SHEET_TEXT {
            return self.too_much_text();
        }
        let column = column as usize;
        if self.cells.len() <= column {
            self.cells.resize(column + 1, String::new());
        }
        self.cells[column] = text;
        Ok(())
    }

    fn end_row(&mut self) {
        let Some(row) = self.row.take() else {
            return;
        };
        let cells = std::mem::take(&mut self.cells);
        self.pending = 0;
        let used = cells
            .iter()
            .rposition(|c| !c.is_empty())
            .map_or(0, |i| i + 1);
        if used == 0 {
            return;
        }
        // The header's width decides every row's: a short row is padded (a sheet leaves
        // trailing empty cells out), a longer one keeps its extra values and is refused.
        let width = *self.header_width.get_or_insert(used);
        self.out.rows.push((row + 1, self.out.cell_ends.len()));
        for i in 0..used.max(width) {
            if let Some(text) = cells.get(i) {
                self.out.text.push_str(text);
            }
            // Past u32::MAX only beyond MAX_SHEET_TEXT, which check_size refuses.
            self.out
                .cell_ends
                .push(u32::try_from(self.out.text.len()).unwrap_or(u32::MAX));
        }
    }

    fn finish(mut self) -> Result<SheetRows> {
        self.end_row();
        self.check_size()?;
        Ok(self.out)
    }

    fn too_much_text(&self) -> Result<()> {
        bail!(
            "{}: the sheet holds more than {} MiB of text; a roster is expected to be smaller (is this the right file?)",
            self.label,
            MAX_SHEET_TEXT >> 20
        )
    }

    fn check_size(&self) -> Result<()> {
        if self.out.cell_ends.len() > MAX_SHEET_CELLS {
            bail!(
                "{}: the sheet holds more than {MAX_SHEET_CELLS} cells (rows times the header's columns); a roster is expected to be smaller (is this the right file?)",
                self.label
            );
        }
        if self.out.text.len() > MAX_SHEET_TEXT {
            return self.too_much_text();
        }
        Ok(())
    }
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// A zip archive: an .xlsx or .ods workbook.
    Zip,
    /// An OLE compound file: an old .xls, or any workbook saved with a password.
    Ole,
    /// Anything else (CSV text, say).
    Other,
}

/// Reads the first bytes of `file` and puts it back at its start.
pub fn container(file: &mut File) -> std::io::Result<Container> {
    use std::io::{Read, Seek, SeekFrom};
    let mut magic = [0u8; 4];
    let read = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(match &magic[..read] {
        b"PK\x03\x04" => Container::Zip,
        [0xD0, 0xCF, 0x11, 0xE0] => Container::Ole,
        _ => Container::Other,
    })
}

/// Refuses a file that is not a workbook (saying what it looks like) and a workbook whose
/// parts, as its zip directory declares them, unpack past [`MAX_UNPACKED_BYTES`] (or its
/// shared strings past [`MAX_SHARED_STRINGS_BYTES`]). Leaves `file` at its start.
fn check_workbook(file: &mut File, label: &str) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    match container(file).with_context(|| format!("cannot read roster {label}"))? {
        Container::Zip => {}
        Container::Ole => bail!(
            "{label}: this is a password-protected workbook or an old .xls file, which rostersync cannot read; save it as .xlsx without a password, or export it as CSV"
        ),
        Container::Other => bail!(
            "{label}: not a spreadsheet workbook (a workbook is a zip archive); is it a CSV file with the wrong name? Rename it .csv"
        ),
    }
    let mut archive = open_archive(file, label)?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let part = archive
            .by_index_raw(i)
            .with_context(|| format!("{label}: the workbook is damaged"))?;
        if part
            .name()
            .is_ok_and(|n| n.eq_ignore_ascii_case("xl/sharedStrings.xml"))
            && part.size() > MAX_SHARED_STRINGS_BYTES
        {
            bail!(
                "{label}: the workbook's shared strings unpack to {} MiB; at most {} MiB are read (is this the right file?)",
                part.size() >> 20,
                MAX_SHARED_STRINGS_BYTES >> 20
            );
        }
        total = total.saturating_add(part.size());
    }
    if total > MAX_UNPACKED_BYTES {
        bail!(
            "{label}: the workbook unpacks to {} MiB; at most {} MiB are read (is this the right file?)",
            total >> 20,
            MAX_UNPACKED_BYTES >> 20
        );
    }
    file.seek(SeekFrom::Start(0))
        .with_context(|| format!("cannot read roster {label}"))?;
    Ok(())
}

/// The sheet to read: the one named, else the first visible worksheet (a hidden first sheet
/// The workbook's zip directory, read through a second handle on the same open file. The
/// handles share one offset; a zip reader seeks before every read, so neither relies on it.
fn open_archive(file: &File, label: &str) -> Result<zip::ZipArchive<BufReader<File>>> {
    let copy = file
        .try_clone()
        .with_context(|| format!("cannot read roster {label}"))?;
    zip::ZipArchive::new(BufReader::new(copy))
        .with_context(|| format!("{label}: the workbook is damaged (not a readable zip archive)"))
}

/// is an old copy or a lookup table, not what the operator sees when opening the file).
fn pick_sheet(sheets: &[Sheet], wanted: Option<&str>, label: &str) -> Result<String> {
    let names: Vec<String> = sheets.iter().map(|s| s.name.clone()).collect();
    let listed = || {
        let mut shown: Vec<String> = names
            .iter()
            .take(20)
            .map(|n| super::input::excerpt_chars(n, 40))
            .collect();
        if names.len() > 20 {
            shown.push(format!("... {} more", names.len() - 20));
        }
        format!("{shown:?}")
    };
    match wanted {
        Some(name) => names
            .iter()
            .find(|n| n.as_str() == name)
            .or_else(|| {
                names
                    .iter()
                    .find(|n| n.trim().eq_ignore_ascii_case(name.trim()))
            })
            .cloned()
            .with_context(|| {
                format!(
                    "{label}: no sheet named {:?} ([files] sheet); the workbook has {}",
                    super::input::excerpt_chars(name, 40),
                    listed()
                )
            }),
        None => sheets
            .iter()
            .find(|s| s.visible == SheetVisible::Visible && s.typ == SheetType::WorkSheet)
            .map(|s| s.name.clone())
            .with_context(|| {
                format!(
                    "{label}: the workbook has no visible worksheet (it has {}); name the sheet in [files] sheet",
                    listed()
                )
            }),
    }
}

fn read_xlsx(file: File, sheet: Option<&str>, label: &str) -> Result<SheetRows> {
    let mut workbook: Xlsx<BufReader<File>> = Xlsx::new(BufReader::new(file))
        .with_context(|| format!("{label}: cannot read it as an xlsx workbook"))?;
    let name = pick_sheet(workbook.sheets_metadata(), sheet, label)?;
    let mut cells = workbook
        .worksheet_cells_reader(&name)
        .with_context(|| format!("{label}: cannot read sheet {name:?}"))?;
    // Per style: the width a number is zero-padded to, as Excel shows and exports it.
    let widths: Vec<Option<usize>> = cells
        .styles()
        .iter()
        .map(|style| {
            style
                .number_format
                .as_ref()
                .and_then(|f| zero_padded_width(&f.format_code))
        })
        .collect();
    let mut builder = Builder::new(label, name.clone());
    let mut count: u64 = 0;
    while let Some((cell, style)) = cells
        .next_cell_with_style_id()
        .with_context(|| format!("{label}: sheet {name:?} is damaged"))?
    {
        let (row, column) = cell.get_position();
        let mut text = text_of_ref(cell.get_value());
        if let Some(width) = widths.get(style).copied().flatten()
            && matches!(cell.get_value(), DataRef::Int(_) | DataRef::Float(_))
            && text.bytes().all(|b| b.is_ascii_digit())
        {
            text = format!("{text:0>width$}");
        }
        builder.cell(row, column, text)?;
        count += 1;
        if count.is_multiple_of(4096) {
            builder.check_size()?;
        }
    }
    builder.finish()
}

fn read_ods(file: File, sheet: Option<&str>, label: &str) -> Result<SheetRows> {
    let size = file
        .metadata()
        .with_context(|| format!("cannot read roster {label}"))?
        .len();
    if size > MAX_ODS_BYTES {
        bail!(
            "{label}: the .ods file is {} MiB; at most {} MiB are read (save a roster this large as .xlsx or CSV)",
            size >> 20,
            MAX_ODS_BYTES >> 20
        );
    }
    // The library builds every sheet at once, each as a dense grid from its first to its
    // last value: a few kilobytes of repeated empty rows and one far cell would ask for
    // gigabytes. Measured first, from the XML.
    for (name, (rows, columns)) in ods_extents(&file, label)? {
        if rows.saturating_mul(columns) > MAX_SHEET_CELLS as u64 {
            bail!(
                "{label}: sheet {:?} spans {rows} rows by {columns} columns up to its last value; at most {MAX_SHEET_CELLS} cells are read (is there a stray value far below or right of the roster?)",
                super::input::excerpt_chars(&name, 40)
            );
        }
    }
    let mut workbook: Ods<BufReader<File>> = Ods::new(BufReader::new(file))
        .with_context(|| format!("{label}: cannot read it as an OpenDocument spreadsheet"))?;
    let name = pick_sheet(workbook.sheets_metadata(), sheet, label)?;
    let range = workbook
        .worksheet_range(&name)
        .with_context(|| format!("{label}: cannot read sheet {name:?}"))?;
    let mut builder = Builder::new(label, name);
    let (row0, column0) = range.start().unwrap_or((0, 0));
    for (r, row) in range.rows().enumerate() {
        for (c, value) in row.iter().enumerate() {
            builder.cell(row0 + r as u32, column0 + c as u32, text_of(value))?;
        }
        builder.check_size()?;
    }
    builder.finish()
}

/// Each sheet of an .ods file and the rows and columns it spans up to its last value (an
/// upper bound of the grid the library will build), read from content.xml as a stream.
fn ods_extents(file: &File, label: &str) -> Result<std::collections::HashMap<String, (u64, u64)>> {
    use quick_xml::events::{BytesStart, Event};
    let mut archive = open_archive(file, label)?;
    let content = archive
        .by_name("content.xml")
        .with_context(|| format!("{label}: not an OpenDocument spreadsheet (no content.xml)"))?;
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(content));
    let repeat = |e: &BytesStart<'_>, name: &str| -> u64 {
        e.try_get_attribute(name)
            .ok()
            .flatten()
            .and_then(|a| a.value.trim().parse().ok())
            .unwrap_or(1)
    };
    let mut extents = std::collections::HashMap::new();
    let mut table: Option<String> = None;
    let (mut row, mut column, mut row_repeat) = (0u64, 0u64, 1u64);
    let (mut last_row, mut last_column, mut row_has_value) = (0u64, 0u64, false);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let event = xml
            .read_event_into(&mut buf)
            .with_context(|| format!("{label}: the spreadsheet's content is damaged"))?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                "table:table" => {
                    let name = e
                        .try_get_attribute("table:name")
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned())
                        .unwrap_or_default();
                    table = Some(name);
                    (row, last_row, last_column) = (0, 0, 0);
                }
                "table:table-row" => {
                    row_repeat = repeat(&e, "table:number-rows-repeated");
                    (column, row_has_value) = (0, false);
                    if empty {
                        row = row.saturating_add(row_repeat);
                    }
                }
                "table:table-cell" | "table:covered-table-cell" => {
                    let columns = repeat(&e, "table:number-columns-repeated");
                    // A cell with a type or with content holds a value.
                    let valued = !empty
                        || e.try_get_attribute("office:value-type")
                            .ok()
                            .flatten()
                            .is_some();
                    column = column.saturating_add(columns);
                    if valued {
                        last_column = last_column.max(column);
                        row_has_value = true;
                    }
                }
                _ => {}
            },
            Event::End(e) => match e.name().as_ref() {
                "table:table-row" => {
                    row = row.saturating_add(row_repeat);
                    if row_has_value {
                        last_row = row;
                    }
                }
                "table:table" => {
                    if let Some(name) = table.take() {
                        extents.insert(name, (last_row, last_column));
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(extents)
}

/// A cell as a CSV export of it would show it.
fn text_of(value: &Data) -> String {
    match value {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => bounded(s),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Data::DateTime(d) => date(d),
        Data::Error(e) => e.to_string(),
    }
}

fn text_of_ref(value: &DataRef<'_>) -> String {
    match value {
        // A shared string may be referenced by every cell: copied at most once per cell, and
        // only as much as a cell can hold.
        DataRef::SharedString(s) => bounded(s),
        DataRef::String(s) => bounded(s),
        DataRef::Empty => String::new(),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => bounded(s),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number(*f),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(d) => date(d),
        DataRef::Error(e) => e.to_string(),
    }
}

/// At most [`MAX_CELL_BYTES`] of a cell's text (cut on a character boundary): a longer cell
/// is refused by the roster for its length whatever its end holds.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_CELL_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_CELL_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A whole number as an integer (an employee number typed as a number is stored as 1042.0),
/// anything else in the shortest form that reads back the same.
fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The width of a number format that pads whole numbers with zeros ("000000": employee
/// number 1042 shows, and exports to CSV, as 001042); `None` for any other format.
fn zero_padded_width(code: &str) -> Option<usize> {
    let code = code.trim();
    (code.len() > 1 && code.len() <= 32 && code.bytes().all(|b| b == b'0')).then_some(code.len())
}

/// A date as YYYY-MM-DD, with the time when it has one.
fn date(d: &calamine::ExcelDateTime) -> String {
    match d.as_datetime() {
        Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        None => number(d.as_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(sheet: &SheetRows) -> Vec<(u64, Vec<String>)> {
        let mut copy = SheetRows {
            sheet: sheet.sheet.clone(),
            text: sheet.text.clone(),
            cell_ends: sheet.cell_ends.clone(),
            rows: sheet.rows.clone(),
            next: 0,
        };
        let mut record = Record::default();
        let mut out = Vec::new();
        while copy.read_row(&mut record) {
            let cells = record
                .iter()
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            out.push((record.line(), cells));
        }
        out
    }

    #[test]
    fn rows_keep_their_sheet_numbers_and_the_header_width() {
        let mut b = Builder::new("t.xlsx", "Staff".into());
        for (r, c, t) in [
            (1, 0, "id"),
            (1, 1, "name"),
            (1, 2, "email"),
            (2, 0, "1"),
            (2, 1, "Zoë"),
            // Row 4 empty but present; row 5 has a value past the header.
            (3, 0, ""),
            (4, 0, "2"),
            (4, 3, "extra"),
        ] {
            b.cell(r, c, t.to_owned()).unwrap();
        }
        let sheet = b.finish().unwrap();
        assert_eq!(
            rows(&sheet),
            vec![
                (2, vec!["id".into(), "name".into(), "email".into()]),
                (3, vec!["1".into(), "Zoë".into(), String::new()]),
                (
                    5,
                    vec!["2".into(), String::new(), String::new(), "extra".into()]
                ),
            ]
        );
    }

    #[test]
    fn cells_out_of_order_and_past_the_limits_are_refused() {
        let mut b = Builder::new("t.xlsx", "S".into());
        b.cell(5, 0, "x".into()).unwrap();
        assert!(b.cell(2, 0, "y".into()).is_err());
        let mut b = Builder::new("t.xlsx", "S".into());
        assert!(b.cell(0, MAX_SHEET_COLUMNS, "y".into()).is_err());
        assert!(b.cell(MAX_SHEET_ROWS, 0, "y".into()).is_err());
    }

    #[test]
    fn zero_padded_formats_are_recognised() {
        assert_eq!(zero_padded_width("000000"), Some(6));
        assert_eq!(zero_padded_width("0"), None);
        assert_eq!(zero_padded_width("0.00"), None);
        assert_eq!(zero_padded_width("General"), None);
        assert_eq!(format!("{:0>6}", "1042"), "001042");
    }

    #[test]
    fn numbers_read_as_a_csv_export_shows_them() {
        assert_eq!(number(1042.0), "1042");
        assert_eq!(number(-3.0), "-3");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(1e20), "100000000000000000000");
        assert_eq!(text_of(&Data::Bool(true)), "TRUE");
    }

    #[test]
    fn the_sheet_is_picked_by_name_or_first_visible() {
        let sheet = |name: &str, visible| Sheet {
            name: name.to_owned(),
            typ: SheetType::WorkSheet,
            visible,
        };
        let names = vec![
            sheet("Old", SheetVisible::Hidden),
            sheet("Summary", SheetVisible::Visible),
            sheet("Staff", SheetVisible::Visible),
        ];
        assert_eq!(pick_sheet(&names, None, "t").unwrap(), "Summary");
        assert_eq!(pick_sheet(&names, Some("staff"), "t").unwrap(), "Staff");
        assert_eq!(pick_sheet(&names, Some("Old"), "t").unwrap(), "Old");
        let err = pick_sheet(&names, Some("People"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no sheet named \"People\""), "{err}");
        assert!(err.contains("Summary"), "{err}");
    }
}
