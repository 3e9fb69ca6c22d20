//! The apply benchmark (issues 4 and 11): throughput under the API's rate limit, pacing above
//! it, rostersync's own ceiling, and the memory of a big import.
//!
//! Each phase runs the real binary (`rostersync run`, under /usr/bin/time for its peak RSS)
//! against a fresh simulator served by this process on loopback, with a generated roster of new
//! people (all creates), a fresh SQLite ledger, and reads the figures from the run's
//! summary.json:
//! 1. the simulator's limiter at R req/s (its burst R) and rostersync configured at R:
//!    achieved request rate and 429s;
//! 2. the same with rostersync configured at 2×R and at 5×R: total time against phase 1,
//!    429s, pauses, the rate the pacing settled at;
//! 3. the local ceiling: the limiter off and rostersync at its highest rate (10,000/s), on many more creates:
//!    ops per second that apply sustains;
//! 4. imports of BENCH_IMPORT_SIZES people (100,000 and 1,000,000), limiter off, 16 in flight:
//!    peak RSS and ops/s, and beside them the same with the binary BENCH_BEFORE (an older
//!    build, for a before/after in the same run) when it is set.
//!
//! Run: `cargo bench --bench apply_rate`. Env: BENCH_CREATES (5000), BENCH_RATE (50),
//! BENCH_CEILING_CREATES (100000), BENCH_IN_FLIGHT (16, phases 3 and 4),
//! BENCH_IMPORT_SIZES ("100000,1000000"; empty to skip), BENCH_BEFORE (a binary).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rostersync::targets::praesidium::sim::{Sim, SimOptions, start};
use serde_json::Value;

const ID: &str = "bench";
const SECRET: &str = "bench-secret";

/// What one phase measured.
struct Phase {
    wall_secs: f64,
    /// Peak RSS of the rostersync process, MB.
    rss_mb: u64,
    creates_done: u64,
    apply: Value,
    users_on_platform: usize,
}

fn main() {
    let creates = common::env_or("BENCH_CREATES", 5000);
    let rate: f64 = common::env_or("BENCH_RATE", 50.0);
    let ceiling_creates = common::env_or("BENCH_CEILING_CREATES", 100_000);
    let in_flight = common::env_or("BENCH_IN_FLIGHT", 16);
    // One core's worth of threads for the simulator; rostersync is another process.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    println!(
        "apply benchmark: {creates} creates, simulator limiter R = {rate} req/s (burst {})",
        rate.ceil()
    );
    let this = Path::new(env!("CARGO_BIN_EXE_rostersync"));
    let at_r = phase(&server, this, creates, Some(rate), rate, 4);
    report("(1) rostersync at R:  ", &at_r, Some(rate));
    for multiple in [2.0, 5.0] {
        let above = phase(&server, this, creates, Some(rate), multiple * rate, 4);
        report(
            &format!("(2) rostersync at {multiple}×R:"),
            &above,
            Some(rate),
        );
        println!(
            "    total time at {multiple}×R against R: {:+.1}% (apply {:.1} s against {:.1} s); pacing {}",
            (above.wall_secs / at_r.wall_secs - 1.0) * 100.0,
            secs(&above.apply, "elapsed_secs"),
            secs(&at_r.apply, "elapsed_secs"),
            above.apply["pacing"],
        );
    }

    println!(
        "local ceiling: {ceiling_creates} creates, limiter off, rostersync unthrottled, {in_flight} in flight"
    );
    let ceiling = phase(&server, this, ceiling_creates, None, 10_000.0, in_flight);
    report("(3) ceiling:          ", &ceiling, None);
    println!(
        "    apply sustained {:.0} ops/s",
        ceiling.creates_done as f64 / secs(&ceiling.apply, "elapsed_secs")
    );

    let sizes: Vec<usize> = std::env::var("BENCH_IMPORT_SIZES")
        .unwrap_or_else(|_| "100000,1000000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let before = std::env::var_os("BENCH_BEFORE").map(std::path::PathBuf::from);
    for people in sizes {
        println!("import of {people} people, limiter off, {in_flight} in flight:");
        let binaries = before
            .iter()
            .map(|b| ("before", b.as_path()))
            .chain([("this build", this)]);
        for (label, binary) in binaries {
            let import = phase(&server, binary, people, None, 10_000.0, in_flight);
            println!(
                "(4) {label:<10} {people} creates: peak RSS {:>5} MB, {:.0} s wall, apply {:.0} ops/s",
                import.rss_mb,
                import.wall_secs,
                import.creates_done as f64 / secs(&import.apply, "elapsed_secs"),
            );
        }
    }
}

fn secs(apply: &Value, field: &str) -> f64 {
    apply[field].as_f64().unwrap_or(f64::NAN)
}

fn report(label: &str, phase: &Phase, limit: Option<f64>) {
    let achieved = secs(&phase.apply, "achieved_rate");
    let share = limit
        .map(|r| format!(" = {:.1}% of R", achieved / r * 100.0))
        .unwrap_or_default();
    println!(
        "{label} {} creates done ({} users on the platform) in {:.1} s wall, apply {:.1} s: \
         {achieved:.1} req/s{share}; 429s {}, paused {:.1} s, retries {}; peak RSS {} MB",
        phase.creates_done,
        phase.users_on_platform,
        phase.wall_secs,
        secs(&phase.apply, "elapsed_secs"),
        phase.apply["rate_limited_429"],
        secs(&phase.apply, "rate_limit_pause_secs"),
        phase.apply["retries"],
        phase.rss_mb,
    );
}

/// One `rostersync run` of `creates` new people against a fresh simulator limited to `limit`
/// req/s (None: no limit), with rostersync at `rate` req/s and `in_flight` concurrent requests.
fn phase(
    server: &tokio::runtime::Runtime,
    binary: &Path,
    creates: usize,
    limit: Option<f64>,
    rate: f64,
    in_flight: usize,
) -> Phase {
    let catalog = rostersync::samples::catalog();
    let mut options = SimOptions::single_credential(&catalog, ID, SECRET);
    options.faults.rate_limit = limit.unwrap_or(0.0);
    options.log_capacity = 1000;
    let sim = Sim::new(catalog, options).unwrap();
    let running = server
        .block_on(start(sim.clone(), "127.0.0.1:0".parse().unwrap()))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    for (name, text) in rostersync::samples::FILES {
        std::fs::write(work.join(name), text).unwrap();
    }
    common::generate_roster(&work.join("roster.csv"), creates, 0);
    std::fs::write(
        work.join("bench.toml"),
        format!(
            "[api]\nbase_url = \"{}\"\nclient_id = \"{ID}\"\nclient_secret_env = \"BENCH_SECRET\"\n\
             requests_per_second = {rate:?}\nmax_in_flight = {in_flight}\ntimeout_secs = 30\n\
             [files]\nclients = \"clients.csv\"\nlocations = \"locations.csv\"\ncontent = \"content.csv\"\nroster = \"roster.csv\"\n\
             [defaults]\nclient = \"Northwind Camps\"\n",
            running.base_url()
        ),
    )
    .unwrap();

    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(binary)
        .args(["run", "--config", "bench.toml"])
        .current_dir(work)
        .env("BENCH_SECRET", SECRET)
        .env("ROSTERSYNC_LOG", "warn")
        .output()
        .unwrap();
    let wall_secs = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "rostersync run failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = last_summary(&work.join("runs"));
    let apply = summary["apply"].clone();
    let rss_kb: u64 = String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    Phase {
        wall_secs,
        rss_mb: rss_kb / 1024,
        creates_done: apply["ops"]["create"]["done"].as_u64().unwrap_or(0),
        apply,
        users_on_platform: sim.user_count(),
    }
}

fn last_summary(runs: &Path) -> Value {
    let mut dirs: Vec<_> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let last = dirs.pop().expect("a run folder");
    serde_json::from_slice(&std::fs::read(last.join("summary.json")).unwrap()).unwrap()
}
