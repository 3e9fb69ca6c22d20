//! The event receiver benchmark: learning events stored durably per second by the real
//! `rostersync events serve`, and their latency, alone and with a 1M-user nightly plan
//! running beside it (target: at least 2,000 events/s on the 2-core machine).
//!
//! Phases (BENCH_PARTS, default `fsync,alone,beside`):
//! - `fsync`, the reference measured in the same run: sequential single-row INSERT
//!   transactions into a scratch SQLite file in WAL mode with synchronous=FULL, on the disk
//!   the events file is on, 2 s each on a growing WAL, on a reused one, and on a reused one
//!   with a core kept busy (a sync's latency on this VM depends on whether the CPUs are
//!   idle): what one durable commit costs, and so what the receiver's group commit buys;
//! - `alone`: the receiver with nothing else running;
//! - `beside`: the receiver while `rostersync plan` of a BENCH_USERS-person roster
//!   (1,000,000) runs in a loop for the whole window, each plan replacing the last one's
//!   pending ops.
//!
//! Both receiver phases run against the same ledger (one first plan of the roster is made
//! before them, so the receiver matches each event against a 1M-row ledger either way), with
//! a fresh events file each. The load generator lives in this process: BENCH_CONCURRENCY
//! (32) senders on one tokio thread, each with its own keep-alive connection, POST distinct
//! valid COURSE_COMPLETED events (a random learner UUID, a course of the sample catalog) for
//! BENCH_SECS (15) seconds; a request times out after 10 s. Afterwards the events file must
//! hold exactly the events acknowledged as stored.
//!
//! Run: `cargo bench --bench events_receiver` (BENCH_USERS, BENCH_SECS, BENCH_CONCURRENCY,
//! BENCH_PARTS; BENCH_DIR to keep the files and the receiver's logs; ROSTERSYNC_BIN to
//! measure another build).

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The target of the issue, events stored durably per second.
const TARGET: f64 = 2000.0;
const USER: &str = "praesidium-bench";
const PASSWORD: &str = "a-long-bench-events-password-7Kq";
/// Every request's bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let users: usize = common::env_or("BENCH_USERS", 1_000_000);
    let secs: f64 = common::env_or("BENCH_SECS", 15.0);
    let concurrency: usize = common::env_or("BENCH_CONCURRENCY", 32);
    let parts: String = common::env_or("BENCH_PARTS", "fsync,alone,beside".to_owned());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    let dir = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("BENCH_DIR").map(PathBuf::from);
    let work = kept.as_deref().unwrap_or(dir.path());
    std::fs::create_dir_all(work).unwrap();
    println!(
        "events receiver benchmark: {concurrency} senders for {secs} s per phase, plans of {users} users beside; rostersync {}",
        common::binary().display()
    );

    // The machine may be shared: what else ran shows in the load average.
    println!("    load average before: {}", load_average());
    if part("fsync") {
        fsync_reference(work);
    }
    if !part("alone") && !part("beside") {
        return;
    }

    // Every run starts from an empty ledger and no events.
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(work.join(format!("rostersync.db{suffix}")));
    }
    let _ = std::fs::remove_dir_all(work.join("runs"));
    for (name, text) in rostersync::samples::FILES {
        std::fs::write(work.join(name), text).unwrap();
    }
    let started = Instant::now();
    common::generate_roster(&work.join("roster.csv"), users, 0);
    std::fs::write(
        work.join("bench.toml"),
        "[api]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"bench\"\nclient_secret_env = \"BENCH_SECRET\"\n\
         [files]\nclients = \"clients.csv\"\nlocations = \"locations.csv\"\ncontent = \"content.csv\"\nroster = \"roster.csv\"\n\
         [defaults]\nclient = \"Northwind Camps\"\n[ledger]\npath = \"rostersync.db\"\n",
    )
    .unwrap();
    let first = plan(work, &AtomicBool::new(false));
    println!(
        "    setup: roster of {users} generated and a first plan into the ledger in {:.1} s (that plan {:.2} s, {})",
        started.elapsed().as_secs_f64(),
        first.secs,
        first.outcome
    );

    let courses: Vec<String> = rostersync::samples::catalog()
        .content
        .iter()
        .filter(|c| c.kind == rostersync::ingest::catalog::ContentType::Course)
        .map(|c| c.uuid.clone())
        .collect();
    let load = Load {
        secs,
        concurrency,
        courses: Arc::new(courses),
    };
    if part("alone") {
        phase(work, "A alone", &load, false);
    }
    if part("beside") {
        phase(work, "B beside plans", &load, true);
    }
}

/// The load: how long, how many senders, what they send.
struct Load {
    secs: f64,
    concurrency: usize,
    courses: Arc<Vec<String>>,
}

/// One phase: a fresh events file, the receiver, the load (and the plan loop), the check.
fn phase(work: &Path, name: &str, load: &Load, beside: bool) {
    let store = work.join("rostersync-events.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let log = work.join(format!(
        "receiver-{}.log",
        if beside { "beside" } else { "alone" }
    ));
    let receiver = Receiver::spawn(work, &log);

    let stop = Arc::new(AtomicBool::new(false));
    let plans = beside.then(|| {
        let (work, stop) = (work.to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                runs.push(plan(&work, &stop));
            }
            runs
        })
    });
    let cpu_before = (cpu_secs(receiver.child.id()), own_cpu_secs());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tally, elapsed, max_queued) = runtime.block_on(drive(&receiver.url, load));
    let cpu = (
        cpu_secs(receiver.child.id()) - cpu_before.0,
        own_cpu_secs() - cpu_before.1,
    );
    stop.store(true, Ordering::SeqCst);
    let plans = plans.map(|handle| handle.join().unwrap());
    let exit = receiver.terminate();
    let stored: i64 = rusqlite::Connection::open(&store)
        .and_then(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get(0)))
        .unwrap_or(-1);

    let rate = tally.stored as f64 / elapsed;
    let mut latencies = tally.latencies_us;
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1] as f64 / 1000.0
    };
    let non_200: u64 = tally
        .statuses
        .iter()
        .filter(|(status, _)| **status != 200)
        .map(|(_, n)| n)
        .sum();
    println!(
        "({name}) {} events acknowledged as stored in {elapsed:.2} s: {rate:>7.0} events/s  (target >= {TARGET:.0}/s: {})",
        tally.stored,
        if rate >= TARGET { "met" } else { "MISSED" }
    );
    println!(
        "    latency ms: p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}  ({} requests)",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        latencies.len()
    );
    println!(
        "    answers: {:?}; non-200 {non_200}, duplicates {}, failed requests {}{}",
        tally.statuses,
        tally.duplicates,
        tally.failures,
        if tally.first_problems.is_empty() {
            String::new()
        } else {
            format!(" (first: {:?})", tally.first_problems)
        }
    );
    let (check, verdict) = if stored == tally.stored as i64 {
        ("ok", "exactly the acknowledged events")
    } else {
        ("MISMATCH", "not the number acknowledged")
    };
    println!(
        "    events file: {stored} events, {verdict} [{check}]; receiver {exit}; writer queue peak {max_queued} (from /health)"
    );
    println!(
        "    CPU over the window: receiver {:.1} s ({:.0}% of one core), load generator {:.1} s; load average after: {}",
        cpu.0,
        100.0 * cpu.0 / elapsed,
        cpu.1,
        load_average()
    );
    summarise_log(&log);
    if let Some(plans) = plans {
        let durations: Vec<String> = plans
            .iter()
            .map(|p| format!("{:.2} s {}", p.secs, p.outcome))
            .collect();
        println!(
            "    plans beside it: {} ({})",
            plans.len(),
            durations.join("; ")
        );
    }
}

/// What the senders saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// 200s that said "stored".
    stored: u64,
    duplicates: u64,
    statuses: BTreeMap<u16, u64>,
    /// Requests with no answer (timeouts, connection errors).
    failures: u64,
    first_problems: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.stored += other.stored;
        self.duplicates += other.duplicates;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.failures += other.failures;
        for problem in other.first_problems {
            if self.first_problems.len() < 5 {
                self.first_problems.push(problem);
            }
        }
    }

    fn problem(&mut self, text: String) {
        if self.first_problems.len() < 5 {
            self.first_problems.push(text);
        }
    }
}

/// Runs the senders for the window (and a /health poller beside them); returns what they saw,
/// the seconds until the last answer, and the deepest writer queue /health reported.
async fn drive(base: &str, load: &Load) -> (Tally, f64, u64) {
    let url = format!("{base}/events");
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(load.secs);
    let done = Arc::new(AtomicBool::new(false));
    let max_queued = Arc::new(AtomicU64::new(0));
    let poller = {
        let (health, done, max_queued) =
            (format!("{base}/health"), done.clone(), max_queued.clone());
        tokio::spawn(async move {
            let client = client();
            while !done.load(Ordering::SeqCst) {
                if let Ok(response) = client.get(&health).send().await
                    && let Ok(value) = response.json::<serde_json::Value>().await
                {
                    let queued = value["queued"].as_u64().unwrap_or(0);
                    max_queued.fetch_max(queued, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let senders: Vec<_> = (0..load.concurrency)
        .map(|_| {
            let (url, auth, courses) = (url.clone(), auth.clone(), load.courses.clone());
            tokio::spawn(send(url, auth, courses, deadline))
        })
        .collect();
    let mut tally = Tally::default();
    for sender in senders {
        tally.merge(sender.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let _ = poller.await;
    (tally, elapsed, max_queued.load(Ordering::SeqCst))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

/// One sender: its own keep-alive connection, one request at a time until the deadline.
async fn send(url: String, auth: String, courses: Arc<Vec<String>>, deadline: Instant) -> Tally {
    let client = client();
    let mut tally = Tally::default();
    let mut n = 0usize;
    // An hour ago: well inside what the receiver accepts. The learner UUID makes each
    // event distinct.
    let at = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    while Instant::now() < deadline {
        let body = serde_json::json!({
            "version": "1.0",
            "event_type": "COURSE_COMPLETED",
            "event_timestamp": at,
            "event_context": {
                "user_uuid": uuid::Uuid::new_v4().to_string(),
                "course_uuid": courses[n % courses.len()],
            },
            "event_specific_detail": {"first_name": "Bench", "last_name": "Sender"},
        })
        .to_string();
        n += 1;
        let sent = Instant::now();
        let answer = client
            .post(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                tally.failures += 1;
                tally.problem(format!("{error}"));
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await;
        tally
            .latencies_us
            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        *tally.statuses.entry(status).or_default() += 1;
        match (status, text) {
            (200, Ok(text)) if text.contains("\"status\":\"stored\"") => tally.stored += 1,
            (200, Ok(text)) if text.contains("\"status\":\"duplicate\"") => tally.duplicates += 1,
            (_, Ok(text)) => tally.problem(format!("{status}: {text}")),
            (_, Err(error)) => {
                tally.failures += 1;
                tally.problem(format!("{status}, body unread: {error}"));
            }
        }
    }
    tally
}

/// A running `events serve` (the real binary), its log in a file; killed when dropped.
struct Receiver {
    child: Child,
    url: String,
}

impl Receiver {
    fn spawn(work: &Path, log: &Path) -> Receiver {
        let mut child = Command::new(common::binary())
            .args([
                "events",
                "serve",
                "--config",
                "bench.toml",
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(work)
            .env("ROSTERSYNC_EVENTS_USER", USER)
            .env("ROSTERSYNC_EVENTS_PASSWORD", PASSWORD)
            .env_remove("ROSTERSYNC_LOG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("the rostersync binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the receiver did not say where it listens; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Receiver {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// SIGTERM, then its exit status; killed if it has not stopped within 15 s.
    fn terminate(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid, which has not been waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("exited: {status}");
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return "HUNG on SIGTERM, killed".to_owned();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plan run of the loop beside the receiver.
struct PlanRun {
    secs: f64,
    outcome: String,
}

/// `rostersync plan` of the roster, replacing any pending plan; cut short (SIGTERM, then
/// SIGKILL after 10 s) once `stop` is set.
fn plan(work: &Path, stop: &AtomicBool) -> PlanRun {
    let started = Instant::now();
    let mut child = Command::new(common::binary())
        .args(["plan", "--json", "--config", "bench.toml"])
        .current_dir(work)
        .env("BENCH_SECRET", "unused")
        .env("ROSTERSYNC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the rostersync binary runs");
    let mut signalled: Option<Instant> = None;
    let outcome = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break match (signalled, status.success()) {
                (None, true) => "ok".to_owned(),
                (None, false) => format!("FAILED: {status}"),
                (Some(_), _) => "cut short at the end of the phase".to_owned(),
            };
        }
        match signalled {
            None if stop.load(Ordering::SeqCst) => {
                // SAFETY: kill(2) on our own child's pid, which has not been waited for.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                signalled = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(10) => {
                let _ = child.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    PlanRun {
        secs: started.elapsed().as_secs_f64(),
        outcome,
    }
}

/// The reference: sequential single-row transactions, WAL, synchronous=FULL, 2 s each on a
/// growing WAL (a fresh file), on a reused one (after a checkpoint SQLite writes the WAL again
/// from its start, over blocks it already has: the state of a receiver running for minutes),
/// and on a reused one with a core kept busy by a spinning thread (the machine under load).
fn fsync_reference(work: &Path) {
    let path = work.join("fsync-scratch.db");
    let remove = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    };
    remove();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    commits(&conn, "growing WAL");
    // Past the 1000-page autocheckpoint in one transaction: the WAL is checkpointed and
    // the next commits overwrite it from its start.
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let big = "y".repeat(4000);
    for _ in 0..1200 {
        conn.execute("INSERT INTO t (body) VALUES (?1)", [&big])
            .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    commits(&conn, "reused WAL");
    // On this VM a sync that finds the CPUs idle tends to come back on a ~4 ms tick; with a
    // core busy (as under load) it can come back far sooner, so both are shown.
    let spinning = Arc::new(AtomicBool::new(true));
    let spinner = {
        let spinning = spinning.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while spinning.load(Ordering::Relaxed) {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        })
    };
    commits(&conn, "reused WAL, a core kept busy by a spinning thread");
    spinning.store(false, Ordering::Relaxed);
    spinner.join().unwrap();
    drop(conn);
    remove();
}

/// Commits one row at a time for 2 s; prints their rate and latency.
fn commits(conn: &rusqlite::Connection, what: &str) {
    let body = "x".repeat(300);
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let one = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute("INSERT INTO t (body) VALUES (?1)", [&body])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        times.push(one.elapsed().as_secs_f64() * 1000.0);
    }
    let secs = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "(reference) durable commits, one row each, WAL + synchronous=FULL, {what}: {:>5.0} commits/s  (p50 {:.2} ms, p99 {:.2} ms)",
        times.len() as f64 / secs,
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)]
    );
}

/// The receiver's log in short: its line count, how many say an event matched nothing (one
/// per event here: the learners are random), and the other lines.
fn summarise_log(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let unmatched = lines
        .iter()
        .filter(|l| l.contains("kept but matches nothing"))
        .count();
    let others: Vec<&str> = lines
        .iter()
        .filter(|l| !l.contains("kept but matches nothing"))
        .copied()
        .collect();
    println!(
        "    receiver log ({}): {} lines, {} KB, {unmatched} \"matches nothing\" warnings; the other {} lines:",
        log.display(),
        lines.len(),
        text.len() / 1024,
        others.len()
    );
    for line in others.iter().take(12) {
        println!("      | {line}");
    }
    if others.len() > 12 {
        println!("      | ... ({} more)", others.len() - 12);
    }
}

/// CPU seconds (user + system) process `pid` has used, from /proc (0 when unreadable).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz.max(1.0)
}

/// CPU seconds this process (the load generator) has used.
fn own_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The 1, 5 and 15-minute load averages (other work on the machine moves every figure).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
