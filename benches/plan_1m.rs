//! The planning benchmark (issue 3): a 1,000,000-person roster.
//!
//! (a) a first plan: 1M creates written to an empty ledger;
//! (b) a no-change re-plan against a ledger that holds all 1M as provisioned;
//! (c) the same two plans on the same roster exported as Windows-1252 and as UTF-16 (LE, with
//! a byte order mark), which are decoded into a temporary copy before they are parsed;
//! and, as a reference in the same run, a sqlite3 CLI diff of two 1M-row rosters.
//! Wall time and peak RSS of each are measured on the real binary with /usr/bin/time.
//!
//! Seeding for (b): every create of plan (a) is marked acknowledged through the ledger's own
//! `complete_many`, with the effect a 201 from the API has (a new UUID), in batches. The HTTP
//! path itself is measured by the apply benchmark; here it would only add minutes.
//!
//! Run: `cargo bench --bench plan_1m` (BENCH_USERS to change the size, BENCH_DIR to keep
//! the files).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rostersync::ledger::{Effect, Ledger};

fn main() {
    let users: usize = common::env_or("BENCH_USERS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    // BENCH_DIR keeps the files (roster, seeded ledger) for profiling afterwards.
    let kept = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from);
    let work = kept.as_deref().unwrap_or(dir.path());
    std::fs::create_dir_all(work).unwrap();
    for (name, text) in rostersync::samples::FILES {
        std::fs::write(work.join(name), text).unwrap();
    }
    let started = Instant::now();
    common::generate_roster(&work.join("roster.csv"), users, 0);
    common::generate_roster(&work.join("roster-changed.csv"), users, 100);
    let size = std::fs::metadata(work.join("roster.csv")).unwrap().len();
    println!(
        "plan benchmark: {users} users, roster {:.0} MB, generated in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    std::fs::write(
        work.join("bench.toml"),
        "[api]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"bench\"\nclient_secret_env = \"BENCH_SECRET\"\n\
         [files]\nclients = \"clients.csv\"\nlocations = \"locations.csv\"\ncontent = \"content.csv\"\nroster = \"roster.csv\"\n\
         [defaults]\nclient = \"Northwind Camps\"\n",
    )
    .unwrap();

    let (secs, rss, out) = measure(work, &["plan", "--json", "--config", "bench.toml"]);
    let creates = serde_json::from_str::<serde_json::Value>(&out)
        .map(|v| v["plan"]["ops"]["create"].clone())
        .unwrap_or_default();
    println!(
        "(a) first plan:            {secs:>6.2} s, peak RSS {rss:>5} MB  ({creates} creates written)"
    );

    let seeding = Instant::now();
    seed(&work.join("rostersync.db"));
    println!(
        "    seeding: all creates acknowledged in the ledger in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    // Several times: the figure is noisy on a shared machine, and only the first of these
    // follows the seeding (the ledger's pages may still be in the WAL).
    let mut times = Vec::new();
    for attempt in 1..=5 {
        let (secs, rss, out) = measure(work, &["plan", "--json", "--config", "bench.toml"]);
        let ops = serde_json::from_str::<serde_json::Value>(&out)
            .map(|v| v["plan"]["ops"].clone())
            .unwrap_or_default();
        println!(
            "(b) no-change re-plan #{attempt}:  {secs:>6.2} s, peak RSS {rss:>5} MB  (ops: {ops})"
        );
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "    (b) median {:.2} s, best {:.2} s",
        times[times.len() / 2],
        times[0]
    );

    // (c) The other encodings: a first plan into a ledger of its own, and a no-change re-plan
    // against the seeded ledger (the same people, so it must plan nothing).
    let utf8 = std::fs::read(work.join("roster.csv")).unwrap();
    let text = String::from_utf8(utf8).unwrap();
    let (cp1252, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable, "the generated names are all in Windows-1252");
    std::fs::write(work.join("roster-1252.csv"), &cp1252).unwrap();
    drop(cp1252);
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(work.join("roster-utf16.csv"), &utf16).unwrap();
    drop((utf16, text));
    for (name, file) in [
        ("Windows-1252", "roster-1252.csv"),
        ("UTF-16LE", "roster-utf16.csv"),
    ] {
        let config = format!("bench-{file}.toml");
        let own = std::fs::read_to_string(work.join("bench.toml"))
            .unwrap()
            .replace("roster.csv", file)
            + &format!("[ledger]\npath = \"{file}.db\"\n");
        std::fs::write(work.join(&config), own).unwrap();
        let (secs, rss, out) = measure(work, &["plan", "--json", "--config", &config]);
        let creates = serde_json::from_str::<serde_json::Value>(&out)
            .map(|v| v["plan"]["ops"]["create"].clone())
            .unwrap_or_default();
        println!(
            "(c) {name:<12} first plan: {secs:>6.2} s, peak RSS {rss:>5} MB  ({creates} creates written)"
        );
        let mut times = Vec::new();
        for _ in 0..3 {
            let (secs, rss, out) = measure(
                work,
                &["plan", "--json", "--config", "bench.toml", "--roster", file],
            );
            let ops = serde_json::from_str::<serde_json::Value>(&out)
                .map(|v| v["plan"]["ops"].clone())
                .unwrap_or_default();
            println!(
                "(c) {name:<12} no-change:  {secs:>6.2} s, peak RSS {rss:>5} MB  (ops: {ops})"
            );
            times.push(secs);
        }
        times.sort_by(f64::total_cmp);
        println!("    (c) {name} no-change median {:.2} s", times[1]);
    }

    let sql = ".mode csv\n.import roster.csv a\n.import roster-changed.csv b\n\
               SELECT count(*) FROM (SELECT * FROM a EXCEPT SELECT * FROM b);\n";
    std::fs::write(work.join("diff.sql"), sql).unwrap();
    let started = Instant::now();
    let diff = Command::new("sqlite3")
        .arg(":memory:")
        .stdin(std::fs::File::open(work.join("diff.sql")).unwrap())
        .current_dir(work)
        .output();
    match diff {
        Ok(output) if output.status.success() => println!(
            "    reference: sqlite3 CLI diff of two {users}-row rosters: {:.2} s ({} rows differ)",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&output.stdout).trim()
        ),
        _ => println!("    reference: sqlite3 CLI not available"),
    }
}

/// Runs the binary under /usr/bin/time; returns wall seconds, peak RSS in MB and stdout.
fn measure(dir: &Path, args: &[&str]) -> (f64, u64, String) {
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_rostersync"))
        .args(args)
        .current_dir(dir)
        .env("BENCH_SECRET", "unused")
        .env("ROSTERSYNC_LOG", "warn")
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let kb: u64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (
        secs,
        kb / 1024,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn seed(ledger_path: &Path) {
    let mut ledger = Ledger::open(ledger_path).unwrap();
    let run = ledger.begin_run("bench-seed").unwrap();
    let ops = ledger.pending_ops().unwrap();
    for chunk in ops.chunks(50_000) {
        let done: Vec<_> = chunk
            .iter()
            .map(|op| {
                let effect = Effect {
                    uuid: Some(uuid::Uuid::new_v4().to_string()),
                    http_status: Some(201),
                    message: None,
                    adopted: false,
                };
                (op.clone(), effect)
            })
            .collect();
        ledger.complete_many(run, &done).unwrap();
    }
}
