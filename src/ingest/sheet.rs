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
use calamine::{Data, DataRef, Ods, Reader, Xlsx, open_workbook};

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
        // Checked before the library opens it, as for a CSV file: no FIFO, no device.
        let file = super::input::open_regular(path, "roster")?;
        check_unpacked_size(file, label)?;
        match kind {
            Kind::Xlsx => read_xlsx(path, sheet, label),
            Kind::Ods => read_ods(path, sheet, label),
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
        Ok(self.out)
    }

    fn check_size(&self) -> Result<()> {
        if self.out.cell_ends.len() > MAX_SHEET_CELLS {
            bail!(
                "{}: the sheet holds more than {MAX_SHEET_CELLS} cells (rows times the header's columns); a roster is expected to be smaller (is this the right file?)",
                self.label
            );
        }
        if self.out.text.len() > MAX_SHEET_TEXT {
            bail!(
                "{}: the sheet holds more than {} MiB of text; a roster is expected to be smaller (is this the right file?)",
                self.label,
                MAX_SHEET_TEXT >> 20
            );
        }
        Ok(())
    }
}

/// Refuses a workbook whose parts, as its zip directory declares them, unpack past
/// [`MAX_UNPACKED_BYTES`].
fn check_unpacked_size(file: File, label: &str) -> Result<()> {
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).with_context(|| {
        format!("{label}: not a spreadsheet workbook (a workbook is a zip archive); is it a CSV file with the wrong name?")
    })?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let part = archive
            .by_index_raw(i)
            .with_context(|| format!("{label}: the workbook is damaged"))?;
        total = total.saturating_add(part.size());
    }
    if total > MAX_UNPACKED_BYTES {
        bail!(
            "{label}: the workbook unpacks to {} MiB; at most {} MiB are read (is this the right file?)",
            total >> 20,
            MAX_UNPACKED_BYTES >> 20
        );
    }
    Ok(())
}

fn pick_sheet(names: &[String], wanted: Option<&str>, label: &str) -> Result<String> {
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
                    "{label}: no sheet named {name:?} ([files] sheet); the workbook has {names:?}"
                )
            }),
        None => names
            .first()
            .cloned()
            .with_context(|| format!("{label}: the workbook has no sheet")),
    }
}

fn read_xlsx(path: &Path, sheet: Option<&str>, label: &str) -> Result<SheetRows> {
    let mut workbook: Xlsx<BufReader<File>> = open_workbook(path)
        .with_context(|| format!("{label}: cannot read it as an xlsx workbook"))?;
    let name = pick_sheet(&workbook.sheet_names(), sheet, label)?;
    let mut cells = workbook
        .worksheet_cells_reader(&name)
        .with_context(|| format!("{label}: cannot read sheet {name:?}"))?;
    let mut builder = Builder::new(label, name.clone());
    let mut count: u64 = 0;
    while let Some(cell) = cells
        .next_cell()
        .with_context(|| format!("{label}: sheet {name:?} is damaged"))?
    {
        let (row, column) = cell.get_position();
        builder.cell(row, column, text_of_ref(cell.get_value()))?;
        count += 1;
        if count.is_multiple_of(4096) {
            builder.check_size()?;
        }
    }
    builder.check_size()?;
    builder.finish()
}

fn read_ods(path: &Path, sheet: Option<&str>, label: &str) -> Result<SheetRows> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot open roster {label}"))?
        .len();
    if size > MAX_ODS_BYTES {
        bail!(
            "{label}: the .ods file is {} MiB; at most {} MiB are read (save a roster this large as .xlsx or CSV)",
            size >> 20,
            MAX_ODS_BYTES >> 20
        );
    }
    let mut workbook: Ods<BufReader<File>> = open_workbook(path)
        .with_context(|| format!("{label}: cannot read it as an OpenDocument spreadsheet"))?;
    let name = pick_sheet(&workbook.sheet_names(), sheet, label)?;
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

/// A cell as a CSV export of it would show it.
fn text_of(value: &Data) -> String {
    match value {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Data::DateTime(d) => date(d),
        Data::Error(e) => e.to_string(),
    }
}

fn text_of_ref(value: &DataRef<'_>) -> String {
    match value {
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Empty => String::new(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number(*f),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(d) => date(d),
        DataRef::Error(e) => e.to_string(),
    }
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
    fn numbers_read_as_a_csv_export_shows_them() {
        assert_eq!(number(1042.0), "1042");
        assert_eq!(number(-3.0), "-3");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(1e20), "100000000000000000000");
        assert_eq!(text_of(&Data::Bool(true)), "TRUE");
    }

    #[test]
    fn the_sheet_is_picked_by_name_or_first() {
        let names = vec!["Summary".to_owned(), "Staff".to_owned()];
        assert_eq!(pick_sheet(&names, None, "t").unwrap(), "Summary");
        assert_eq!(pick_sheet(&names, Some("staff"), "t").unwrap(), "Staff");
        let err = pick_sheet(&names, Some("People"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no sheet named \"People\""), "{err}");
        assert!(err.contains("Summary"), "{err}");
    }
}
