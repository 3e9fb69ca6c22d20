//! End to end (issue 10): one roster exported the ways HR systems and Excel export it (UTF-8
//! with LF, UTF-8 with a BOM and CRLF, Windows-1252, UTF-16 "Unicode Text" with tabs, `;`
//! with a BOM, xlsx) provisions the same people; after the first, every other format is a
//! night without a single write; and each rejects.csv names the bad row by the line (or
//! sheet row) an operator finds it on, with its text as it stands in the file.

use crate::util;

use std::collections::BTreeMap;

use serde_json::Value;
use util::*;

/// The roster's cells: accents, a quoted comma, a quoted line break, and a bad row (E4, an
/// invalid email) right after the multi-line field. 1042's key is a number in the xlsx.
fn cells() -> Vec<Vec<String>> {
    let header = rostersync::ingest::roster::COLUMNS
        .iter()
        .map(|c| c.to_string())
        .collect();
    vec![
        header,
        row(
            "E1",
            "Zoë",
            "Brontë",
            "zoe@example.com",
            "Lakeside Camp",
            "SAFE-101",
        ),
        row(
            "E2",
            "José",
            "García, Jr.",
            "jose@example.com",
            "Head Office",
            "",
        ),
        row(
            "E3",
            "Renée",
            "O'Neil",
            "renee@example.com",
            "Lakeside Camp;\nHead Office",
            "SAFE-201",
        ),
        row("E4", "Åsa", "Ødegård", "not-an-email", "", ""),
        row(
            "1042",
            "François",
            "Lefèvre",
            "francois@example.com",
            "",
            "",
        ),
    ]
}

/// Physical line (sheet row for the xlsx) of E4: the header is line 1, E3's locations span
/// lines 4 and 5.
const BAD_LINE: u64 = 6;
const BAD_ROW_IN_SHEET: u64 = 5;

fn render(delimiter: char, eol: &str) -> (String, String) {
    let field = |cell: &str| {
        if cell.contains([delimiter, '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.to_owned()
        }
    };
    let lines: Vec<String> = cells()
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| field(c))
                .collect::<Vec<_>>()
                .join(&delimiter.to_string())
        })
        .collect();
    let bad = lines[4].clone();
    (lines.join(eol) + eol, bad)
}

struct Export {
    name: &'static str,
    file: &'static str,
    /// What the plan output must say it was read as.
    read_as: &'static str,
    bytes: Vec<u8>,
    /// The bad row's line and its text as rejects.csv must show them.
    bad: (u64, String),
}

fn exports() -> Vec<Export> {
    let (lf, bad_comma) = render(',', "\n");
    let (crlf, _) = render(',', "\r\n");
    let (tabs, bad_tab) = render('\t', "\r\n");
    let (semi, bad_semi) = render(';', "\r\n");
    let bom = |text: &str| format!("\u{feff}{text}").into_bytes();
    let (cp1252, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&crlf);
    assert!(!unmappable);
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(tabs.encode_utf16().flat_map(u16::to_le_bytes));
    vec![
        Export {
            name: "UTF-8, LF",
            file: "roster-utf8.csv",
            read_as: "comma-separated, UTF-8",
            bytes: lf.into_bytes(),
            bad: (BAD_LINE, bad_comma.clone()),
        },
        Export {
            name: "UTF-8 with BOM, CRLF",
            file: "roster-bom.csv",
            read_as: "comma-separated, UTF-8 (byte order mark)",
            bytes: bom(&crlf),
            bad: (BAD_LINE, bad_comma.clone()),
        },
        Export {
            name: "Windows-1252, CRLF",
            file: "roster-1252.csv",
            read_as: "comma-separated, windows-1252 (detected",
            bytes: cp1252.into_owned(),
            bad: (BAD_LINE, bad_comma.clone()),
        },
        Export {
            name: "UTF-16 LE, tab",
            file: "roster-unicode.txt",
            read_as: "tab-separated, UTF-16LE (byte order mark)",
            bytes: utf16,
            bad: (BAD_LINE, bad_tab),
        },
        Export {
            name: "; with BOM",
            file: "roster-semicolon.csv",
            read_as: "semicolon-separated, UTF-8 (byte order mark)",
            bytes: bom(&semi),
            bad: (BAD_LINE, bad_semi),
        },
        Export {
            name: "xlsx",
            file: "roster.xlsx",
            read_as: "xlsx workbook, sheet \"Staff\"",
            bytes: xlsx(),
            bad: (BAD_ROW_IN_SHEET, bad_comma.clone()),
        },
        Export {
            name: "ods",
            file: "roster.ods",
            read_as: "ods workbook, sheet \"Staff\"",
            bytes: ods(),
            bad: (BAD_ROW_IN_SHEET, bad_comma),
        },
    ]
}

/// The roster as an Excel workbook: one sheet, the key 1042 typed as a number.
fn xlsx() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Staff").unwrap();
    for (r, row) in cells().iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let (r, c) = (r as u32, c as u16);
            match cell.parse::<f64>() {
                Ok(number) => sheet.write_number(r, c, number).unwrap(),
                Err(_) => sheet.write_string(r, c, cell.as_str()).unwrap(),
            };
        }
    }
    workbook.save_to_buffer().unwrap()
}

/// The roster as an OpenDocument spreadsheet (what LibreOffice saves): the line break of
/// E3's locations is two paragraphs, as LibreOffice writes it.
fn ods() -> Vec<u8> {
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut body = String::new();
    for row in cells() {
        body.push_str("<table:table-row>");
        for cell in row {
            if cell.is_empty() {
                body.push_str("<table:table-cell/>");
            } else if let Ok(number) = cell.parse::<f64>() {
                body.push_str(&format!(
                    "<table:table-cell office:value-type=\"float\" office:value=\"{number}\"><text:p>{number}</text:p></table:table-cell>"
                ));
            } else {
                let paragraphs: String = cell
                    .split('\n')
                    .map(|p| format!("<text:p>{}</text:p>", escape(p)))
                    .collect();
                body.push_str(&format!(
                    "<table:table-cell office:value-type=\"string\">{paragraphs}</table:table-cell>"
                ));
            }
        }
        body.push_str("</table:table-row>");
    }
    ods_workbook("Staff", &body)
}

/// Who the simulator holds: key → (first, last, email, number of locations, content).
fn people(users: &[Value]) -> BTreeMap<String, Value> {
    actual_from_sim(users, false)
        .into_iter()
        .map(|(key, u)| {
            let summary = serde_json::json!([
                u["first"],
                u["last"],
                u["email"],
                u["locations"].as_array().unwrap().len(),
                u["content"].as_array().unwrap().len(),
            ]);
            (key, summary)
        })
        .collect()
}

fn expected_people() -> BTreeMap<String, Value> {
    [
        ("E1", "Zoë", "Brontë", "zoe@example.com", 1, 1),
        ("E2", "José", "García, Jr.", "jose@example.com", 1, 0),
        ("E3", "Renée", "O'Neil", "renee@example.com", 2, 1),
        ("1042", "François", "Lefèvre", "francois@example.com", 0, 0),
    ]
    .into_iter()
    .map(|(k, f, l, e, loc, con)| (k.to_owned(), serde_json::json!([f, l, e, loc, con])))
    .collect()
}

fn check_reject(work: &Workdir, export: &Export) {
    let rejects = work.last_report("rejects.csv");
    assert_eq!(rejects.len(), 1, "{}: {rejects:?}", export.name);
    let (line, original) = &export.bad;
    assert_eq!(
        (&rejects[0][0], &rejects[0][1], &rejects[0][3]),
        (line.to_string().as_str(), "email", original.as_str()),
        "{}: the bad row's line, column and text",
        export.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_format_provisions_the_same_people() {
    for export in exports() {
        let running = sim().await;
        let work = Workdir::new(&running.base_url());
        std::fs::write(work.path(export.file), &export.bytes).unwrap();
        let out = work
            .run(&["run", "--roster", work.path(export.file).to_str().unwrap()])
            .await;
        assert_eq!(
            out.code, 2,
            "{}: one rejected row makes exit 2\n{}{}",
            export.name, out.stdout, out.stderr
        );
        assert!(
            out.stdout.contains(export.read_as),
            "{}: the output says how the file was read ({:?})\n{}",
            export.name,
            export.read_as,
            out.stdout
        );
        assert_eq!(
            people(&sim_users(&work.base_url).await),
            expected_people(),
            "{}",
            export.name
        );
        check_reject(&work, &export);
        let read_as = &work.last_summary()["roster"]["read_as"];
        assert!(read_as["format"].is_string(), "{}: {read_as}", export.name);
        if export.file == "roster-1252.csv" {
            assert_eq!(read_as["encoding"], "windows-1252", "{read_as}");
            assert_eq!(read_as["encoding_basis"]["by"], "byte counts", "{read_as}");
            assert_eq!(read_as["encoding_basis"]["utf8_characters"], 0, "{read_as}");
        }
        running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_people_in_another_format_is_a_night_without_writes() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    for (i, export) in exports().into_iter().enumerate() {
        std::fs::write(work.path(export.file), &export.bytes).unwrap();
        let seq = last_seq(&work.base_url).await;
        let out = work
            .run(&["run", "--roster", work.path(export.file).to_str().unwrap()])
            .await;
        assert_eq!(out.code, 2, "{}\n{}{}", export.name, out.stdout, out.stderr);
        let sent = endpoint_counts(&requests_since(&work.base_url, seq).await);
        if i == 0 {
            assert_eq!(sent.get("create"), Some(&4), "{}: {sent:?}", export.name);
        } else {
            assert!(
                sent.is_empty(),
                "{}: the same people must send nothing, sent {sent:?}\n{}",
                export.name,
                out.stdout
            );
        }
        check_reject(&work, &export);
    }
    assert_eq!(people(&sim_users(&work.base_url).await), expected_people());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_no_delimiter_splits_says_what_was_tried() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    std::fs::write(
        work.path("odd.csv"),
        "Employee|First|Last|Mail\n1|A|B|c@d.e\n",
    )
    .unwrap();
    let out = work
        .run(&["plan", "--roster", work.path("odd.csv").to_str().unwrap()])
        .await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("tried comma, semicolon and tab"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("missing required column(s)"),
        "{}",
        out.stderr
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_bytes_contradict_its_name_says_what_it_is() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let mut ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    ole.resize(4096, 0);
    let (csv, _) = render(',', "\n");
    for (file, bytes, says) in [
        (
            "workbook.csv",
            xlsx(),
            "a spreadsheet workbook, not CSV text",
        ),
        ("text.xlsx", csv.into_bytes(), "not a spreadsheet workbook"),
        (
            "locked.xlsx",
            ole,
            "password-protected workbook or an old .xls",
        ),
    ] {
        std::fs::write(work.path(file), bytes).unwrap();
        let out = work
            .run(&["plan", "--roster", work.path(file).to_str().unwrap()])
            .await;
        assert_eq!(out.code, 1, "{file}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{file}: {}", out.stderr);
        assert!(out.stderr.len() < 2000, "{file}: a short message");
    }
    running.stop().await;
}
