//! The planning benchmark (issues 3 and 11): a 1,000,000-person roster.
//!
//! (a) a first plan: 1M creates written to an empty ledger (plan.csv included);
//! (a2) replacing that plan while its 1M ops are still pending: the same roster planned again
//! on the unapplied ledger (its ops are kept where they are);
//! (a3) replacing it with the plan of the next night's roster (1% changed, 0.5% gone, 0.5%
//! new): the users whose ops differ are written anew, the others kept;
//! (b) a no-change re-plan against a ledger that holds all 1M as provisioned;
//! (d) the next night against that ledger: a roster with 1% of the rows changed (half
//! renamed, half with other content), 0.5% gone and 0.5% new people, beside `qsv diff` of the
//! two roster files as the reference (`QSV`: the qsv or qsvlite binary; else `qsvlite` or `qsv`
//! on the PATH, else the qsvlite built in /work/qsv);
//! (c) the first and no-change plans on the same roster exported as Windows-1252 and as
//! UTF-16 (LE, with a byte order mark), which are decoded into a temporary copy before they
//! are parsed;
//! and, as a reference in the same run, a sqlite3 CLI diff of two 1M-row rosters.
//! Wall time and peak RSS of each are measured on the real binary with /usr/bin/time.
//!
//! Seeding for (b) and (d): every create of plan (a) is marked acknowledged through the
//! ledger's own `complete_many`, with the effect a 201 from the API has (a new UUID, and the
//! row memo the create carries, as a real apply records it), in batches. The HTTP path itself
//! is measured by the apply benchmark; here it would only add minutes.
//!
//! Run: `cargo bench --bench plan_1m` (BENCH_USERS to change the size, BENCH_DIR to keep
//! the files, BENCH_PARTS to run only some parts, e.g. `a,a2,b,d`; ROSTERSYNC_BIN to measure
//! another build of rostersync, e.g. the one before a change, against the same files).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rostersync::ledger::{Effect, Ledger};

/// Runs of each measurement that is repeated: the figures are noisy on a shared machine.
const RUNS: usize = 5;

fn main() {
    let users: usize = common::env_or("BENCH_USERS", 1_000_000);
    let parts: String = common::env_or("BENCH_PARTS", "a,a2,a3,b,d,c,sqlite".to_owned());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    let dir = tempfile::tempdir().unwrap();
    // BENCH_DIR keeps the files (roster, seeded ledger) for profiling afterwards.
    let kept = std::env::var_os("BENCH_DIR").map(PathBuf::from);
    let work = kept.as_deref().unwrap_or(dir.path());
    std::fs::create_dir_all(work).unwrap();
    // A kept folder may hold an earlier run's ledger: every run starts from an empty one.
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(work.join(format!("rostersync.db{suffix}")));
    }
    let _ = std::fs::remove_dir_all(work.join("runs"));
    for (name, text) in rostersync::samples::FILES {
        std::fs::write(work.join(name), text).unwrap();
    }
    let started = Instant::now();
    common::generate_roster(&work.join("roster.csv"), users, 0);
    common::generate_roster(&work.join("roster-changed.csv"), users, 100);
    common::generate_night(&work.join("roster-next.csv"), users, common::Night::NEXT);
    let size = std::fs::metadata(work.join("roster.csv")).unwrap().len();
    println!(
        "plan benchmark: {users} users, roster {:.0} MB, generated in {:.1} s; rostersync {}",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        common::binary().display()
    );
    std::fs::write(
        work.join("bench.toml"),
        "[api]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"bench\"\nclient_secret_env = \"BENCH_SECRET\"\n\
         [files]\nclients = \"clients.csv\"\nlocations = \"locations.csv\"\ncontent = \"content.csv\"\nroster = \"roster.csv\"\n\
         [defaults]\nclient = \"Northwind Camps\"\n",
    )
    .unwrap();
    let plan = ["plan", "--json", "--config", "bench.toml"];

    let (secs, rss, out) = measure(work, &plan);
    println!(
        "(a) first plan:            {secs:>6.2} s, peak RSS {rss:>5} MB  ({} creates written)",
        ops(&out)["create"]
    );

    if part("a2") {
        // The first plan again, its 1M ops still pending: each run replaces the last one's.
        let mut times = Vec::new();
        for attempt in 1..=3 {
            let (secs, rss, out) = measure(work, &plan);
            let replaced = ops(&out)["create"].clone();
            println!(
                "(a2) replacing the pending plan #{attempt}: {secs:>6.2} s, peak RSS {rss:>5} MB  ({replaced} creates planned)"
            );
            times.push(secs);
        }
        println!("    (a2) median {:.2} s", median(&mut times));
    }

    if part("a3") {
        // The next night's roster over the pending plan, then the first roster again: each
        // replaces a plan that differs from it by 2% of its users.
        let mut times = Vec::new();
        for attempt in 1..=3 {
            for roster in ["roster-next.csv", "roster.csv"] {
                let (secs, rss, out) =
                    measure(work, &[&plan[..], &["--roster", roster][..]].concat());
                println!(
                    "(a3) replacing the pending plan with {roster:<15} #{attempt}: {secs:>6.2} s, peak RSS {rss:>5} MB  ({} creates planned)",
                    ops(&out)["create"]
                );
                times.push(secs);
            }
        }
        println!("    (a3) median {:.2} s", median(&mut times));
    }

    let seeding = Instant::now();
    seed(&work.join("rostersync.db"));
    println!(
        "    seeding: all creates acknowledged in the ledger in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    if part("b") {
        // Only the first of these follows the seeding (the ledger's pages may still be in
        // the WAL).
        let mut times = Vec::new();
        for attempt in 1..=RUNS {
            let (secs, rss, out) = measure(work, &plan);
            println!(
                "(b) no-change re-plan #{attempt}:  {secs:>6.2} s, peak RSS {rss:>5} MB  (ops: {})",
                ops(&out)
            );
            times.push(secs);
        }
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "    (b) median {:.2} s, best {best:.2} s",
            median(&mut times)
        );
    }

    if part("d") {
        next_night(work, users);
    }

    if part("c") {
        encodings(work);
    }

    if part("sqlite") {
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
}

/// (d) The next night against the seeded ledger, each plan replacing the last one's pending
/// ops as a night whose apply failed would, alternated with `qsv diff` of the two rosters.
fn next_night(work: &Path, users: usize) {
    let qsv = qsv();
    let night = [
        "plan",
        "--json",
        "--config",
        "bench.toml",
        "--roster",
        "roster-next.csv",
    ];
    let (mut planned, mut diffed) = (Vec::new(), Vec::new());
    for attempt in 1..=RUNS {
        let (secs, rss, out) = measure(work, &night);
        println!(
            "(d) next night #{attempt}:        {secs:>6.2} s, peak RSS {rss:>5} MB  (ops: {})",
            ops(&out)
        );
        planned.push(secs);
        if let Some(qsv) = &qsv {
            let started = Instant::now();
            let status = Command::new(qsv)
                .args(["diff", "--key", "0", "--output"])
                .arg(work.join("diff.csv"))
                .args(["roster.csv", "roster-next.csv"])
                .current_dir(work)
                .status();
            let secs = started.elapsed().as_secs_f64();
            match status {
                Ok(status) if status.success() => {
                    let lines = std::fs::read_to_string(work.join("diff.csv"))
                        .map_or(0, |text| text.lines().count().saturating_sub(1));
                    println!(
                        "    reference: qsv diff #{attempt}: {secs:>6.2} s  ({lines} diff rows)"
                    );
                    diffed.push(secs);
                }
                other => println!("    reference: qsv diff failed: {other:?}"),
            }
        }
    }
    print!("    (d) median {:.2} s", median(&mut planned));
    match qsv {
        Some(qsv) if !diffed.is_empty() => println!(
            "; reference: qsv diff of the two {users}-row rosters, median {:.2} s ({})",
            median(&mut diffed),
            qsv.display()
        ),
        _ => println!("; reference not available: no qsv (set QSV to a qsv or qsvlite binary)"),
    }
}

/// (c) The other encodings: a first plan into a ledger of its own, and a no-change re-plan
/// against the seeded ledger (the same people, so it must plan nothing).
fn encodings(work: &Path) {
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
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let _ = std::fs::remove_file(work.join(format!("{file}.db{suffix}")));
        }
        let (secs, rss, out) = measure(work, &["plan", "--json", "--config", &config]);
        println!(
            "(c) {name:<12} first plan: {secs:>6.2} s, peak RSS {rss:>5} MB  ({} creates written)",
            ops(&out)["create"]
        );
        let mut times = Vec::new();
        for _ in 0..3 {
            let (secs, rss, out) = measure(
                work,
                &["plan", "--json", "--config", "bench.toml", "--roster", file],
            );
            println!(
                "(c) {name:<12} no-change:  {secs:>6.2} s, peak RSS {rss:>5} MB  (ops: {})",
                ops(&out)
            );
            times.push(secs);
        }
        println!(
            "    (c) {name} no-change median {:.2} s",
            median(&mut times)
        );
    }
}

/// The qsv binary for the reference: QSV, else `qsvlite` or `qsv` on the PATH, else the
/// qsvlite built beside the project; `None` when none of them runs.
fn qsv() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("QSV") {
        Some(qsv) => vec![PathBuf::from(qsv)],
        None => vec![
            "qsvlite".into(),
            "qsv".into(),
            "/work/qsv/qsv-16.1.0/target/release/qsvlite".into(),
        ],
    };
    candidates.into_iter().find(|qsv| {
        Command::new(qsv)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The op counts of a `plan --json` answer (null when it was not one).
fn ops(out: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(out)
        .map(|v| v["plan"]["ops"].clone())
        .unwrap_or_default()
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs the binary under /usr/bin/time; returns wall seconds, peak RSS in MB and stdout.
fn measure(dir: &Path, args: &[&str]) -> (f64, u64, String) {
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(common::binary())
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
                    deleted: false,
                    accepted: false,
                };
                (op.clone(), effect)
            })
            .collect();
        ledger.complete_many(run, &done).unwrap();
    }
}
