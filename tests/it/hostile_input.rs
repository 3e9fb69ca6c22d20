//! Hostile input (issue 9, "safe to leave alone"): rosters, catalogs and ledgers that are
//! broken, huge, not files at all, or full of characters that make names lie. Each test runs
//! the real binary against the simulator, and every run is bounded: a child still running
//! after its deadline is killed and the test fails, so no test waits on an outer timeout.

use crate::util;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::*;

/// What a bounded run of the binary did.
struct Bounded {
    code: i32,
    out: String,
    elapsed: Duration,
    /// Peak resident memory of the child, in bytes (from wait4's rusage).
    max_rss: u64,
}

/// Runs the binary with `args`, killing it after `deadline`, and measures its peak memory.
async fn run_bounded(work: &Workdir, args: &[&str], deadline: Duration) -> Bounded {
    let mut command = work.command(args);
    tokio::task::spawn_blocking(move || {
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let started = Instant::now();
        // Reaped below by wait4, which also gives its peak memory.
        #[allow(clippy::zombie_processes)]
        let mut child = command.spawn().unwrap();
        let pid = child.id() as libc::pid_t;
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let mut killed = false;
        loop {
            // SAFETY: pid is our own child, not yet reaped; status and usage are valid.
            let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if reaped == pid {
                break;
            }
            assert!(reaped >= 0, "wait4 failed");
            if started.elapsed() > deadline && !killed {
                child.kill().unwrap();
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let elapsed = started.elapsed();
        let out = format!("{}{}", stdout.join().unwrap(), stderr.join().unwrap());
        assert!(!killed, "still running after {deadline:?}; killed\n{out}");
        Bounded {
            code: if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            },
            out,
            elapsed,
            // Kilobytes on Linux.
            max_rss: usage.ru_maxrss as u64 * 1024,
        }
    })
    .await
    .unwrap()
}

const LIMIT: Duration = Duration::from_secs(60);
const MEMORY_BOUND: u64 = 200 << 20;

fn ledger_path(work: &Workdir) -> std::path::PathBuf {
    work.path("state/rostersync.db")
}

/// (runs, ops, rejects) rows in the ledger: "unchanged" means these did not move.
fn ledger_counts(path: &Path) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = |table: &str| {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    (count("runs"), count("ops"), count("rejects"))
}

fn statuses(users: &[Value]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = users
        .iter()
        .map(|u| {
            (
                u["user"]["principal"]["client_external_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                u["user"]["system"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

/// A threshold loose enough that only the broken-file rule can keep people from being
/// deactivated (the issue's night deactivated nine people under its threshold).
const LOOSE: &str = "[safety]\nmax_deactivations = 100\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_an_unterminated_quote_deactivates_nobody_and_names_its_line() {
    let running = sim().await;
    let work = Workdir::with_settings(&running.base_url(), LOOSE);
    let people: Vec<Vec<String>> = (191..=200).map(person).collect();
    work.write_roster("roster.csv", &people);
    let night1 = work.run(&["run"]).await;
    assert_eq!(night1.code, 0, "{}{}", night1.stdout, night1.stderr);

    // Row 1 of 10 opens a quote that never closes: the rest of the file is one record.
    let text = roster_text(&people, b',').replacen("E0191,Quinn,", "E0191,\"Quinn,", 1);
    std::fs::write(work.path("roster.csv"), text).unwrap();
    let seq = last_seq(&work.base_url).await;
    let night2 = work.run(&["run"]).await;
    let out = format!("{}{}", night2.stdout, night2.stderr);
    assert_eq!(night2.code, 2, "{out}");
    assert!(
        out.contains("roster.csv:2: a quote opened on line 2 (field 2) never closes"),
        "{out}"
    );
    assert!(out.contains("no one is deactivated tonight"), "{out}");
    let sent = requests_since(&work.base_url, seq).await;
    assert!(
        endpoint_counts(&sent).is_empty(),
        "nothing is sent: {sent:?}"
    );
    let users = sim_users(&work.base_url).await;
    assert!(
        statuses(&users).iter().all(|(_, s)| s == "active"),
        "{:?}",
        statuses(&users)
    );
    let rejects = work.last_report("rejects.csv");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(&rejects[0][0], "2");
    assert!(
        rejects[0][2].contains("quote opened on line 2"),
        "{rejects:?}"
    );
    // All ten: the broken record's key cannot be trusted, so it protects no one by itself.
    assert_eq!(work.last_summary()["plan"]["withheld_deactivations"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_quote_closed_rows_later_keeps_the_rows_before_and_deactivates_nobody() {
    let running = sim().await;
    let work = Workdir::with_settings(&running.base_url(), LOOSE);
    let people: Vec<Vec<String>> = (1..=10).map(person).collect();
    work.write_roster("roster.csv", &people);
    assert_eq!(work.run(&["run"]).await.code, 0);

    // A new hire before the break is created; the quote opened on row 5 closes on row 7's
    // quoted field, swallowing rows 6 and 7 into a record of the wrong width.
    let mut rows = vec![person(11)];
    rows.extend((1..=10).map(person));
    rows[7][8] = "Lead, Senior".into();
    let text = roster_text(&rows, b',').replacen("E0005,Quinn,", "E0005,\"Quinn,", 1);
    assert!(text.contains("\"Lead, Senior\""), "{text}");
    std::fs::write(work.path("roster.csv"), text).unwrap();
    let night2 = work.run(&["run"]).await;
    let out = format!("{}{}", night2.stdout, night2.stderr);
    assert_eq!(night2.code, 2, "{out}");
    assert!(out.contains("a quote opened on line 7 (field 2)"), "{out}");
    let users = sim_users(&work.base_url).await;
    let found = statuses(&users);
    assert_eq!(found.len(), 11, "the new hire before the break is created");
    assert!(found.iter().all(|(_, s)| s == "active"), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_roster_that_is_dev_zero_or_a_fifo_is_refused_at_once() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &[person(1)]);
    assert_eq!(work.run(&["run"]).await.code, 0);
    let before = ledger_counts(&ledger_path(&work));

    std::fs::remove_file(work.path("roster.csv")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", work.path("roster.csv")).unwrap();
    let zero = run_bounded(&work, &["plan"], LIMIT).await;
    assert_eq!(zero.code, 1, "{}", zero.out);
    assert!(
        zero.out
            .contains("roster.csv is a character device, expected a CSV file"),
        "{}",
        zero.out
    );
    assert!(zero.max_rss < MEMORY_BOUND, "peak {} bytes", zero.max_rss);

    std::fs::remove_file(work.path("roster.csv")).unwrap();
    let fifo = std::ffi::CString::new(work.path("roster.csv").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let piped = run_bounded(&work, &["run"], LIMIT).await;
    assert_eq!(piped.code, 1, "{}", piped.out);
    assert!(
        piped
            .out
            .contains("is a FIFO (named pipe), expected a CSV file"),
        "{}",
        piped.out
    );

    // A catalog is held to the same rule. (The FIFO goes first: opening it to write would
    // wait for a reader.)
    std::fs::remove_file(work.path("roster.csv")).unwrap();
    work.write_roster("roster.csv", &[person(1)]);
    std::fs::remove_file(work.path("clients.csv")).unwrap();
    let fifo = std::ffi::CString::new(work.path("clients.csv").to_str().unwrap()).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let catalog = run_bounded(&work, &["plan"], LIMIT).await;
    assert_eq!(catalog.code, 1, "{}", catalog.out);
    assert!(catalog.out.contains("catalog file"), "{}", catalog.out);
    assert!(
        catalog.out.contains("clients.csv is a FIFO"),
        "{}",
        catalog.out
    );
    assert_eq!(
        ledger_counts(&ledger_path(&work)),
        before,
        "ledger unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_directory_as_the_roster_is_named_as_such() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    std::fs::remove_file(work.path("roster.csv")).unwrap();
    std::fs::create_dir(work.path("roster.csv")).unwrap();
    let output = work.run(&["plan"]).await;
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("roster.csv is a directory, expected a CSV file"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("Os {"), "{}", output.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_large_file_of_nul_bytes_is_refused_quickly_in_bounded_memory() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &[person(1)]);
    assert_eq!(work.run(&["run"]).await.code, 0);
    let before = ledger_counts(&ledger_path(&work));

    // Sparse: reads as 400 MB of NULs without taking the disk.
    let file = std::fs::File::create(work.path("roster.csv")).unwrap();
    file.set_len(400 << 20).unwrap();
    drop(file);
    let output = run_bounded(&work, &["run"], LIMIT).await;
    assert_eq!(output.code, 1, "{}", output.out);
    assert!(
        output
            .out
            .contains("roster.csv:1: the header is unreadable")
            && output.out.contains("longer than 64 KiB"),
        "{}",
        output.out
    );
    assert!(
        output.max_rss < MEMORY_BOUND,
        "peak {} bytes",
        output.max_rss
    );
    assert!(
        output.elapsed < Duration::from_secs(10),
        "{:?}",
        output.elapsed
    );
    assert_eq!(
        ledger_counts(&ledger_path(&work)),
        before,
        "ledger unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_50_mb_line_and_a_long_field_are_stored_as_excerpts() {
    let running = sim().await;
    let work = Workdir::with_settings(&running.base_url(), LOOSE);
    work.write_roster("roster.csv", &[person(1), person(9)]);
    assert_eq!(work.run(&["run"]).await.code, 0);

    // A row with a 10 KB field (rejected, reading goes on), a good row, then a 50 MB line
    // (the file is broken there), then a row that is never read.
    let mut long = person(2);
    long[2] = "L".repeat(10_000);
    let mut text = roster_text(&[person(1), long, person(3)], b',');
    text.push_str("E0004,");
    text.push_str(&"x".repeat(50 << 20));
    text.push('\n');
    text.push_str(roster_text(&[person(5)], b',').lines().nth(1).unwrap());
    text.push('\n');
    std::fs::write(work.path("roster.csv"), text).unwrap();
    let output = run_bounded(&work, &["run"], LIMIT).await;
    assert_eq!(output.code, 2, "{}", output.out);
    assert!(
        output
            .out
            .contains("roster.csv:5: the record starting on line 5 is longer than 64 KiB"),
        "{}",
        output.out
    );
    assert!(
        output.max_rss < MEMORY_BOUND,
        "peak {} bytes",
        output.max_rss
    );

    let found = statuses(&sim_users(&work.base_url).await);
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["E0001", "E0003", "E0009"],
        "E0003 before the break is created"
    );
    assert!(
        found.iter().all(|(_, s)| s == "active"),
        "E0009 is not deactivated: {found:?}"
    );

    let report = std::fs::metadata(work.last_run_dir().join("rejects.csv"))
        .unwrap()
        .len();
    assert!(report < 8 * 1024, "rejects.csv is {report} bytes");
    let rejects = work.last_report("rejects.csv");
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert!(
        rejects.iter().all(|r| r[3].contains("[cut: ")),
        "{rejects:?}"
    );
    let conn = rusqlite::Connection::open(ledger_path(&work)).unwrap();
    let longest: i64 = conn
        .query_row("SELECT max(length(original)) FROM rejects", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        longest < 1200,
        "a reject keeps {longest} bytes in the ledger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_control_and_bidi_characters_are_rejected_never_sent() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let mut escape = person(1);
    escape[1] = "Ana\u{1b}[2J".into();
    let mut bidi = person(2);
    bidi[2] = "Lima\u{202e}moc.live".into();
    let mut nul = person(3);
    nul[8] = "Coun\0selor".into();
    let mut bell = person(4);
    bell[1] = "Bo\u{7}".into();
    let mut isolate = person(5);
    isolate[2] = "\u{2066}Li".into();
    work.write_roster("roster.csv", &[escape, bidi, nul, bell, isolate, person(6)]);
    let output = work.run(&["run"]).await;
    assert_eq!(output.code, 2, "{}{}", output.stdout, output.stderr);
    let rejects = work.last_report("rejects.csv");
    let got: Vec<(String, String)> = rejects
        .iter()
        .map(|r| (r[0].to_owned(), r[2].to_owned()))
        .collect();
    let expect = [
        ("2", "control character U+001B in first_name"),
        ("3", "invisible formatting character U+202E in last_name"),
        ("4", "control character U+0000 in position"),
        ("5", "control character U+0007 in first_name"),
        ("6", "invisible formatting character U+2066 in last_name"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(expect) {
        assert_eq!(line, want_line);
        assert!(reason.contains(want), "{reason} should name {want}");
    }
    let found = statuses(&sim_users(&work.base_url).await);
    assert_eq!(found, [("E0006".to_owned(), "active".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_an_empty_ledger_file_is_refused_not_started_over() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &[person(1), person(2)]);
    assert_eq!(work.run(&["run"]).await.code, 0);

    // Truncated by a full disk or an operator.
    std::fs::File::create(ledger_path(&work)).unwrap();
    let seq = last_seq(&work.base_url).await;
    for command in ["plan", "run", "apply", "status"] {
        let output = work.run(&[command]).await;
        assert_eq!(
            output.code, 1,
            "{command}: {}{}",
            output.stdout, output.stderr
        );
        assert!(
            output
                .stderr
                .contains("rostersync.db exists but is empty (0 bytes)")
                && output.stderr.contains("restore it from a backup"),
            "{command}: {}",
            output.stderr
        );
    }
    assert!(requests_since(&work.base_url, seq).await.is_empty());
    assert_eq!(std::fs::metadata(ledger_path(&work)).unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_ledger_that_is_not_ours_or_is_corrupt_is_named() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    std::fs::create_dir_all(work.path("state")).unwrap();
    std::fs::write(ledger_path(&work), "uuid,name\n").unwrap();
    let output = work.run(&["plan"]).await;
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("rostersync.db is not a SQLite database"),
        "{}",
        output.stderr
    );

    std::fs::remove_file(ledger_path(&work)).unwrap();
    let conn = rusqlite::Connection::open(ledger_path(&work)).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER)")
        .unwrap();
    drop(conn);
    let output = work.run(&["plan"]).await;
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("rostersync.db is a SQLite database but not a rostersync ledger"),
        "{}",
        output.stderr
    );

    // A real ledger whose pages after the first are garbage.
    std::fs::remove_file(ledger_path(&work)).unwrap();
    let people: Vec<Vec<String>> = (1..=300).map(person).collect();
    work.write_roster("roster.csv", &people);
    assert_eq!(work.run(&["run"]).await.code, 0);
    let mut bytes = std::fs::read(ledger_path(&work)).unwrap();
    for b in bytes.iter_mut().skip(4096) {
        *b = 0xA5;
    }
    std::fs::write(ledger_path(&work), bytes).unwrap();
    for command in ["plan", "status"] {
        let output = work.run(&[command]).await;
        assert_eq!(output.code, 1, "{command}: {}", output.stderr);
        assert!(
            output.stderr.contains("rostersync.db"),
            "{command}: the error names the ledger: {}",
            output.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_ledger_from_a_newer_rostersync_is_left_untouched() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &[person(1)]);
    assert_eq!(work.run(&["run"]).await.code, 0);
    let conn = rusqlite::Connection::open(ledger_path(&work)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    for command in ["status", "plan", "run", "apply"] {
        let output = work.run(&[command]).await;
        assert_eq!(output.code, 1, "{command}: {}", output.stderr);
        assert!(
            output
                .stderr
                .contains("was written by a newer rostersync (schema version 99"),
            "{command}: {}",
            output.stderr
        );
        assert!(!output.stderr.contains("run plan"), "{}", output.stderr);
    }
    let conn = rusqlite::Connection::open(ledger_path(&work)).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}
