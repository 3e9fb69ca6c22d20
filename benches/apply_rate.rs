//! The apply benchmark (issue 4): throughput under the API's rate limit, and rostersync's own
//! ceiling.
//!
//! Each phase runs the real binary (`rostersync run`) against a fresh simulator served by this
//! process on loopback, with a generated roster of new people (all creates), a fresh SQLite
//! ledger, and reads the figures from the run's summary.json:
//! 1. the simulator's limiter at R req/s (its burst R) and rostersync configured at R:
//!    achieved request rate and 429s;
//! 2. the same with rostersync configured at 2×R: total time against phase 1, 429s, pauses;
//! 3. the local ceiling: the limiter off and rostersync unthrottled, on many more creates:
//!    ops per second that apply sustains.
//!
//! Run: `cargo bench --bench apply_rate`. Env: BENCH_CREATES (5000), BENCH_RATE (50),
//! BENCH_CEILING_CREATES (100000), BENCH_IN_FLIGHT (16, phase 3).

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
    let at_r = phase(&server, creates, Some(rate), rate, 4);
    report("(1) rostersync at R:  ", &at_r, Some(rate));
    let at_2r = phase(&server, creates, Some(rate), 2.0 * rate, 4);
    report("(2) rostersync at 2×R:", &at_2r, Some(rate));
    println!(
        "    total time at 2×R against R: {:+.1}% (apply {:.1} s against {:.1} s)",
        (at_2r.wall_secs / at_r.wall_secs - 1.0) * 100.0,
        secs(&at_2r.apply, "elapsed_secs"),
        secs(&at_r.apply, "elapsed_secs"),
    );

    println!(
        "local ceiling: {ceiling_creates} creates, limiter off, rostersync unthrottled, {in_flight} in flight"
    );
    let ceiling = phase(&server, ceiling_creates, None, 1_000_000.0, in_flight);
    report("(3) ceiling:          ", &ceiling, None);
    println!(
        "    apply sustained {:.0} ops/s",
        ceiling.creates_done as f64 / secs(&ceiling.apply, "elapsed_secs")
    );
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
         {achieved:.1} req/s{share}; 429s {}, paused {:.1} s, retries {}",
        phase.creates_done,
        phase.users_on_platform,
        phase.wall_secs,
        secs(&phase.apply, "elapsed_secs"),
        phase.apply["rate_limited_429"],
        secs(&phase.apply, "rate_limit_pause_secs"),
        phase.apply["retries"],
    );
}

/// One `rostersync run` of `creates` new people against a fresh simulator limited to `limit`
/// req/s (None: no limit), with rostersync at `rate` req/s and `in_flight` concurrent requests.
fn phase(
    server: &tokio::runtime::Runtime,
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
    let output = Command::new(env!("CARGO_BIN_EXE_rostersync"))
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
    Phase {
        wall_secs,
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
