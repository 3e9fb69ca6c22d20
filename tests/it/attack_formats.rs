//! Hostile tests of the input formats (issue 10), each written to fail on the defect it
//! names: a row that another delimiter broke, a Windows-1252 file holding a few UTF-8 rows,
//! number formats of a workbook, a hidden first sheet, cells whose text is far larger than
//! the file, an .ods whose one far cell unpacks to gigabytes, an invisible soft hyphen. Each runs the real binary against the simulator, and the
//! memory-hungry ones under an address-space limit, so that a blow-up is an abort here and
//! not an exhausted machine.

use crate::util;

use std::io::Write;
use std::os::unix::process::CommandExt;

use serde_json::Value;
use util::*;

/// 20 people of the sample catalog, some with accents.
fn people() -> Vec<Vec<String>> {
    (1..=20)
        .map(|i| {
            let first = match i {
                2 => "Zoë",
                3 => "José",
                4 => "Renée",
                _ => "Ann",
            };
            row(
                &format!("E{i}"),
                first,
                "Müller",
                &format!("p{i}@example.com"),
                "Lakeside Camp",
                "SAFE-101",
            )
        })
        .collect()
}

/// A simulator and a workdir whose ledger holds `people()` after a first night.
async fn provisioned() -> (rostersync::targets::praesidium::sim::RunningSim, Workdir) {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &people());
    let out = work.run(&["run"]).await;
    assert_eq!(out.code, 0, "first night\n{}{}", out.stdout, out.stderr);
    (running, work)
}

/// `plan` with `file` as the roster, under an address-space limit of `limit_mb` (0: none).
async fn plan_with(work: &Workdir, file: &str, limit_mb: u64) -> RunOutput {
    let mut command = work.command(&["plan", "--roster", work.path(file).to_str().unwrap()]);
    if limit_mb > 0 {
        let bytes = limit_mb << 20;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    run_command(command).await
}

fn ops(work: &Workdir) -> Value {
    work.last_summary()["plan"]["ops"].clone()
}

/// A minimal xlsx: `sheet` is the worksheet's `<sheetData>` content, `shared` the shared
/// strings (stored, not compressed: the tests need no compression).
fn xlsx(sheet: &str, shared: &[&str]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    let rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let sst: String = shared
        .iter()
        .map(|s| format!("<si><t>{s}</t></si>"))
        .collect();
    let parts = [
        (
            "[Content_Types].xml",
            "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
             <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
             <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
             <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
             <Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
             <Override PartName=\"/xl/sharedStrings.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml\"/>\
             </Types>"
                .to_owned(),
        ),
        (
            "_rels/.rels",
            format!(
                "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
                 <Relationship Id=\"rId1\" Type=\"{rel}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/workbook.xml",
            format!(
                "<?xml version=\"1.0\"?><workbook xmlns=\"{main}\" xmlns:r=\"{rel}\"><sheets>\
                 <sheet name=\"Staff\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            format!(
                "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
                 <Relationship Id=\"rId1\" Type=\"{rel}/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
                 <Relationship Id=\"rId2\" Type=\"{rel}/sharedStrings\" Target=\"sharedStrings.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/worksheets/sheet1.xml",
            format!(
                "<?xml version=\"1.0\"?><worksheet xmlns=\"{main}\"><sheetData>{sheet}</sheetData></worksheet>"
            ),
        ),
        (
            "xl/sharedStrings.xml",
            format!("<?xml version=\"1.0\"?><sst xmlns=\"{main}\">{sst}</sst>"),
        ),
    ];
    for (name, text) in parts {
        zip.start_file(name, stored).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

/// Column letters of a 0-based column under 26*27.
fn col(c: usize) -> String {
    if c < 26 {
        char::from(b'A' + c as u8).to_string()
    } else {
        format!("{}{}", col(c / 26 - 1), col(c % 26))
    }
}

/// `<row>` of inline strings.
fn inline_row(r: usize, cells: &[String]) -> String {
    let cells: String = cells
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(c, v)| {
            format!(
                "<c r=\"{}{r}\" t=\"inlineStr\"><is><t>{v}</t></is></c>",
                col(c)
            )
        })
        .collect();
    format!("<row r=\"{r}\">{cells}</row>")
}

fn header() -> Vec<String> {
    rostersync::ingest::roster::COLUMNS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A row typed with `;` in a `,` file (pasted from another export) is refused for its field
/// count, and its reject carries the whole line as its "external_id": the person is not
/// protected and is deactivated, although only their row was malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_in_another_delimiter_deactivates_nobody() {
    let (running, work) = provisioned().await;
    let mut text = roster_text(&people(), b',');
    let e5 = roster_text(&people()[4..5], b',');
    let e5 = e5.lines().nth(1).unwrap();
    text = text.replace(e5, &e5.replace(',', ";"));
    std::fs::write(work.path("night2.csv"), text).unwrap();
    let out = plan_with(&work, "night2.csv", 0).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(work.last_summary()["roster"]["rejected"], 1);
    assert_eq!(
        ops(&work)["deactivate"],
        0,
        "E5's row was malformed, E5 did not leave\n{}",
        out.stdout
    );
    running.stop().await;
}

/// A Windows-1252 export with two rows pasted in from a UTF-8 file: the file is decoded as
/// 1252 and those two rows' UTF-8 bytes become mojibake ("ZoÃ«", "MÃ¼ller"), which pass every
/// check and are sent as updates. Rows whose bytes are not text in the file's encoding must
/// be refused, as they are the other way round (a UTF-8 file with a few 1252 bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_rows_in_a_windows_1252_file_are_not_sent_as_mojibake() {
    let (running, work) = provisioned().await;
    let text = roster_text(&people(), b',');
    let mut bytes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // Lines 3 and 4 (E2 Zoë, E3 José) stay UTF-8; the rest is 1252.
        if i == 2 || i == 3 {
            bytes.extend(line.as_bytes());
        } else {
            bytes.extend(encoding_rs::WINDOWS_1252.encode(line).0.iter());
        }
        bytes.extend(b"\r\n");
    }
    std::fs::write(work.path("mixed.csv"), bytes).unwrap();
    let out = plan_with(&work, "mixed.csv", 0).await;
    assert!(out.stdout.contains("windows-1252"), "{}", out.stdout);
    assert_eq!(
        ops(&work)["update"],
        0,
        "no name may change: the same people, two rows in another encoding\n{}",
        out.stdout
    );
    running.stop().await;
}

/// HR keys such as 001042 are numbers shown with the format "000000" in Excel: a CSV export
/// holds "001042", the xlsx holds 1042 and its format. Read as "1042", the same people
/// become a create and a deactivation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_padded_number_format_is_read_as_the_sheet_shows_it() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let rows = vec![row(
        "001042",
        "Ann",
        "One",
        "ann@example.com",
        "Lakeside Camp",
        "",
    )];
    work.write_roster("roster.csv", &rows);
    let out = work.run(&["run"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Staff").unwrap();
    let padded = rust_xlsxwriter::Format::new().set_num_format("000000");
    for (c, name) in header().iter().enumerate() {
        sheet.write_string(0, c as u16, name).unwrap();
    }
    sheet
        .write_number_with_format(1, 0, 1042.0, &padded)
        .unwrap();
    for (c, value) in rows[0].iter().enumerate().skip(1) {
        sheet.write_string(1, c as u16, value).unwrap();
    }
    workbook.save(work.path("roster.xlsx")).unwrap();
    let out = plan_with(&work, "roster.xlsx", 0).await;
    assert_eq!(
        (
            ops(&work)["create"].clone(),
            ops(&work)["deactivate"].clone()
        ),
        (Value::from(0), Value::from(0)),
        "the same person in an xlsx\n{}{}",
        out.stdout,
        out.stderr
    );
    running.stop().await;
}

/// A workbook whose first sheet is hidden (an old copy kept out of sight): the roster is
/// what the operator sees, not the hidden sheet, whose absent people would be deactivated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_first_sheet_is_not_read_as_the_roster() {
    let (running, work) = provisioned().await;
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let write = |sheet: &mut rust_xlsxwriter::Worksheet, rows: &[Vec<String>]| {
        for (c, name) in header().iter().enumerate() {
            sheet.write_string(0, c as u16, name).unwrap();
        }
        for (r, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                sheet.write_string(r as u32 + 1, c as u16, value).unwrap();
            }
        }
    };
    let old = workbook.add_worksheet();
    old.set_name("Old").unwrap();
    write(old, &people()[..19]);
    old.set_hidden(true);
    let staff = workbook.add_worksheet();
    staff.set_name("Staff").unwrap();
    write(staff, &people());
    staff.set_active(true);
    workbook.save(work.path("roster.xlsx")).unwrap();
    let out = plan_with(&work, "roster.xlsx", 0).await;
    assert!(
        !out.stdout.contains("sheet \"Old\""),
        "the hidden sheet was read\n{}",
        out.stdout
    );
    if out.code != 1 {
        assert_eq!(ops(&work)["deactivate"], 0, "{}", out.stdout);
    }
    running.stop().await;
}

/// A header cell of 8 MB (a 10 KB zip can hold it) is quoted whole in the "missing required
/// column" message: megabytes in the cron mail. Messages must stay short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_header_cell_gives_a_short_message() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let big = "A".repeat(8 << 20);
    std::fs::write(
        work.path("roster.xlsx"),
        xlsx(
            "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c></row>",
            &[&big],
        ),
    )
    .unwrap();
    let out = plan_with(&work, "roster.xlsx", 2048).await;
    assert_eq!(out.code, 1, "{}", &out.stderr[..out.stderr.len().min(500)]);
    assert!(
        out.stderr.len() < 16 << 10,
        "stderr is {} bytes long",
        out.stderr.len()
    );
    // The same for CSV: a header line of control characters is escaped six-fold.
    let line: Vec<u8> = std::iter::repeat_n(&b"\x01\x01\x01\x01\x01\x01\x01\x01\x01,"[..], 6000)
        .flatten()
        .copied()
        .collect();
    std::fs::write(work.path("binary.csv"), [&line[..], b"\n1,2\n"].concat()).unwrap();
    let out = plan_with(&work, "binary.csv", 0).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.len() < 16 << 10,
        "stderr is {} bytes long",
        out.stderr.len()
    );
    running.stop().await;
}

/// One shared string of 8 MB referenced by 400 cells of a row: each cell copies it, and
/// nothing counts a row's cells before the row ends (nor the last row at all), so a 10 KB
/// file asks for 3.2 GB. It must be refused within bounds (under 2 GiB of address space
/// here), not abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cells_repeating_a_big_shared_string_are_refused_within_bounds() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let big = "B".repeat(8 << 20);
    let mut sheet = inline_row(1, &header());
    sheet.push_str("<row r=\"2\">");
    for c in 0..400 {
        sheet.push_str(&format!("<c r=\"{}2\" t=\"s\"><v>0</v></c>", col(c)));
    }
    sheet.push_str("</row>");
    std::fs::write(work.path("roster.xlsx"), xlsx(&sheet, &[&big])).unwrap();
    let out = plan_with(&work, "roster.xlsx", 2048).await;
    assert!(
        out.code == 1 || out.code == 2,
        "exit {} (an abort is -1 or 134)\n{}",
        out.code,
        &out.stderr[..out.stderr.len().min(500)]
    );
    assert!(!out.stderr.contains("memory allocation"), "{}", out.stderr);
    running.stop().await;
}

/// An 8 KB .ods with one value 97,000 rows down and 1,000 columns right: calamine builds
/// the dense range (97 million cells, 3 GB) before any of rostersync's limits is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ods_with_one_far_cell_is_read_within_bounds() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let cell = |v: &str| {
        format!(
            "<table:table-cell office:value-type=\"string\"><text:p>{v}</text:p></table:table-cell>"
        )
    };
    let mut rows = String::new();
    for row in std::iter::once(header()).chain(people()) {
        rows.push_str("<table:table-row>");
        for v in &row {
            rows.push_str(&if v.is_empty() {
                "<table:table-cell/>".to_owned()
            } else {
                cell(v)
            });
        }
        rows.push_str("</table:table-row>");
    }
    rows.push_str(
        "<table:table-row table:number-rows-repeated=\"97000\"><table:table-cell/></table:table-row>\
         <table:table-row><table:table-cell table:number-columns-repeated=\"1000\"/>",
    );
    rows.push_str(&cell("x"));
    rows.push_str("</table:table-row>");
    std::fs::write(work.path("roster.ods"), ods_workbook("Staff", &rows)).unwrap();
    let out = plan_with(&work, "roster.ods", 2048).await;
    assert!(
        !out.stderr.contains("cannot read it as"),
        "the test's .ods must be readable: {}",
        out.stderr
    );
    assert!(
        out.code == 1 || out.code == 2,
        "exit {} (an abort is -1 or 134)\n{}",
        out.code,
        &out.stderr[..out.stderr.len().min(500)]
    );
    assert!(!out.stderr.contains("memory allocation"), "{}", out.stderr);
    running.stop().await;
}

/// A soft hyphen (U+00AD, byte 0xAD in Windows-1252) is invisible like U+200B, which is
/// refused: a key "\u{AD}E5" looks like E5 but is another person, so E5 is deactivated and a
/// new account created for the same email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_hyphen_in_a_key_is_refused_like_other_invisible_characters() {
    let (running, work) = provisioned().await;
    let mut rows = people();
    rows[4][0] = "\u{AD}E5".to_owned();
    work.write_roster("night2.csv", &rows);
    let out = plan_with(&work, "night2.csv", 0).await;
    assert_eq!(
        work.last_summary()["roster"]["rejected"],
        1,
        "{}",
        out.stdout
    );
    assert_eq!(ops(&work)["deactivate"], 0, "{}", out.stdout);
    running.stop().await;
}
