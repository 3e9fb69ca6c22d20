//! Pacing against real limiters (issue 11): the real binary, configured above the API's limit,
//! must find the limit and keep to it instead of collapsing into pauses.
//!
//! 1. nginx in front of the simulator with `limit_req rate=20r/s burst=5 nodelay` and
//!    `limit_req_status 429` (no Retry-After), rostersync at 40 req/s, 1,000 creates: done
//!    within 1.3× the limiter's own pace (50 s) + 5 s, at most 5% of requests answered 429.
//!    nginx comes from the distribution's packages (`.ci/run` installs it); where it cannot be
//!    found the test says so and is skipped.
//! 2. The simulator's own token bucket at R (burst R, Retry-After in whole seconds) with
//!    rostersync at 2R and 5R: the same bounds against the bucket's pace.

use crate::util;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rostersync::targets::praesidium::sim::Faults;
use serde_json::Value;
use util::*;

const PEOPLE: usize = 1000;

fn people() -> Vec<Vec<String>> {
    (0..PEOPLE)
        .map(|i| {
            row(
                &format!("P{i:05}"),
                "Pat",
                &format!("Person{i}"),
                &format!("pat{i}@example.com"),
                "Lakeside Camp",
                "SAFE-101",
            )
        })
        .collect()
}

/// What one paced run did.
struct Paced {
    secs: f64,
    requests: u64,
    rate_limited: u64,
    apply: Value,
    stdout: String,
}

/// Runs `rostersync run` at `rate` req/s through `base_url` on the 1,000 people; asserts that
/// it converged with every one of them created exactly once.
async fn paced_run(base_url: &str, sim_url: &str, rate: f64) -> Paced {
    let work = Workdir::new(base_url);
    work.set_api(&[
        ("requests_per_second", &format!("{rate:?}")),
        ("max_in_flight", "8"),
    ]);
    work.write_roster("roster.csv", &people());
    let started = Instant::now();
    let out = work.run(&["run"]).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let summary = work.last_summary();
    let apply = summary["apply"].clone();
    assert_eq!(apply["ops"]["create"]["done"], PEOPLE as u64, "{apply}");
    let users = sim_users(sim_url).await;
    assert_eq!(users.len(), PEOPLE, "every person created once");
    Paced {
        secs,
        requests: apply["requests"].as_u64().unwrap(),
        rate_limited: apply["rate_limited_429"].as_u64().unwrap(),
        apply,
        stdout: out.stdout,
    }
}

/// The bounds: within 1.3× the limiter's pace + 5 s, at most 5% of requests 429.
fn assert_paced(label: &str, run: &Paced, pace_secs: f64) {
    eprintln!(
        "{label}: {:.1} s (limiter's pace {pace_secs:.1} s), {} requests, {} answered 429, pacing {}",
        run.secs, run.requests, run.rate_limited, run.apply["pacing"]
    );
    assert!(
        run.secs <= 1.3 * pace_secs + 5.0,
        "{label}: took {:.1} s against a pace of {pace_secs:.1} s: {}",
        run.secs,
        run.apply
    );
    assert!(
        run.rate_limited * 100 <= run.requests * 5,
        "{label}: {} of {} requests answered 429: {}",
        run.rate_limited,
        run.requests,
        run.apply
    );
}

/// The nginx binary: `NGINX` or the distribution's.
fn nginx_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("NGINX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].map(PathBuf::from));
    candidates.into_iter().find(|p| p.is_file())
}

/// nginx in the foreground, one process, its files in `dir`; killed when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx limiting to 20 r/s with a burst of 5 in front of `upstream`; its 429s carry
/// `Retry-After: N` when `retry_after` is given (nginx sends none of its own).
fn start_nginx(binary: &Path, dir: &Path, upstream: &str, retry_after: Option<u32>) -> Nginx {
    let port = free_port();
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/');
    let d = dir.display();
    // One limit for everyone (the key is the server's name), the way an API gateway limits
    // a client; refusals are 429 with no Retry-After, as nginx sends them.
    let refusals = match retry_after {
        Some(secs) => format!(
            "      error_page 429 = @limited;\n    }}\n    location @limited {{\n\
                   add_header Retry-After {secs} always;\n      return 429;\n"
        ),
        None => String::new(),
    };
    let conf = format!(
        "master_process off;\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  access_log {d}/access.log;\n\
           client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           limit_req_zone $server_name zone=api:1m rate=20r/s;\n  limit_req_status 429;\n\
           upstream sim {{ server {upstream}; keepalive 16; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    server_name api;\n\
             location / {{\n      limit_req zone=api burst=5 nodelay;\n\
               proxy_pass http://sim;\n      proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n{refusals}    }}\n  }}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx starts");
    let nginx = Nginx { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen on {port} within 10 s: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

/// nginx at 20 r/s, burst 5, rostersync at 40/s; `None` when nginx is not installed.
async fn behind_nginx(retry_after: Option<u32>) -> Option<(Paced, String)> {
    let Some(binary) = nginx_binary() else {
        eprintln!(
            "SKIPPED: nginx is not installed (apt-get install nginx, or set NGINX to its binary); \
             the pacing behind a real limiter was not tested"
        );
        return None;
    };
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let nginx = start_nginx(&binary, dir.path(), &sim.base_url(), retry_after);
    let through = format!("http://127.0.0.1:{}", nginx.port);
    let run = paced_run(&through, &sim.base_url(), 40.0).await;
    // nginx's pace: 20 requests a second (its burst of 5 saves a quarter second), 1,000
    // creates and a login.
    let label = format!("nginx 20r/s burst=5 (Retry-After {retry_after:?}), rostersync at 40/s");
    assert_paced(&label, &run, 50.0);
    drop(nginx);
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    Some((run, log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_at_twice_its_limit_the_run_keeps_to_the_limit() {
    let Some((run, log)) = behind_nginx(None).await else {
        return;
    };
    // nginx's own count of its refusals agrees with ours.
    let refused = log.lines().filter(|l| l.contains("\" 429 ")).count() as u64;
    assert_eq!(refused, run.rate_limited, "429s in nginx's access log");
    let settled = run.apply["pacing"]["settled_rate"].as_f64().unwrap();
    assert!(
        (14.0..=22.0).contains(&settled),
        "settled at {settled} req/s behind a 20 r/s limit"
    );
    assert!(
        run.stdout.contains("settled at") && run.stdout.contains("requests_per_second = "),
        "the closing lines say the rate to configure:\n{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_with_a_retry_after_of_a_second_the_run_keeps_to_the_limit() {
    // Each 429 pauses every worker for the second it asks; the pacing keeps them rare.
    behind_nginx(Some(1)).await;
}

/// A simulator whose token bucket takes `rate` requests a second (its burst `rate`).
async fn bucket_sim(rate: f64) -> rostersync::targets::praesidium::sim::RunningSim {
    sim_with(
        Faults {
            rate_limit: rate,
            ..Faults::default()
        },
        &[],
    )
    .await
}

/// The simulator's bucket at `rate` (burst `rate`), rostersync at `multiple` × it.
async fn against_the_simulator_bucket(multiple: f64) {
    let rate = 50.0;
    let sim = bucket_sim(rate).await;
    let run = paced_run(&sim.base_url(), &sim.base_url(), multiple * rate).await;
    // The bucket's pace: its burst at once, then R a second.
    let pace = (PEOPLE as f64 + 1.0 - rate) / rate;
    assert_paced(
        &format!("simulator bucket R = {rate}, rostersync at {multiple}×R"),
        &run,
        pace,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_s_bucket_at_twice_its_rate() {
    against_the_simulator_bucket(2.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_s_bucket_at_five_times_its_rate() {
    against_the_simulator_bucket(5.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_nothing_is_refused_and_the_pace_is_the_configured_one() {
    let rate = 50.0;
    let sim = bucket_sim(rate).await;
    let run = paced_run(&sim.base_url(), &sim.base_url(), rate).await;
    assert_eq!(run.rate_limited, 0, "{}", run.apply);
    assert_eq!(run.apply["pacing"]["slowdowns"], 0);
    assert_eq!(run.apply["pacing"]["settled_rate"], rate);
    assert!(!run.stdout.contains("paced down"), "{}", run.stdout);
}

/// Apply reads the plan from the ledger in batches (issue 11): a plan of several batches,
/// with each user's ops straddling the batch boundaries, converges with every user's ops in
/// order, and a user with an op in doubt has it resolved before the rest of that user's ops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_of_many_batches_converges_user_by_user() {
    const MANY: usize = 2600;
    let sim = sim_with(
        Faults {
            duplicate_window_secs: 1.0,
            ..Faults::default()
        },
        &[],
    )
    .await;
    let work = Workdir::new(&sim.base_url());
    work.set_api(&[("duplicate_window_secs", "1"), ("max_in_flight", "16")]);
    let night = |last: &str, content: &str| -> Vec<Vec<String>> {
        (0..MANY)
            .map(|i| {
                row(
                    &format!("P{i:05}"),
                    "Pat",
                    &format!("{last}{i}"),
                    &format!("pat{i}@example.com"),
                    "Lakeside Camp",
                    content,
                )
            })
            .collect()
    };
    work.write_roster("roster.csv", &night("Person", "SAFE-101"));
    let out = work.run(&["run"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // Night 2: everyone renamed and moved from one course to two others: an update, an enroll
    // and a remove per person, one user's ops consecutive in the plan, 7,800 ops in all.
    work.write_roster("roster.csv", &night("Renamed", "FA-100;RPT-100"));
    let out = work
        .run(&["run", "--allow-updates", &MANY.to_string()])
        .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let apply = work.last_summary()["apply"].clone();
    for kind in ["update", "enroll", "remove"] {
        assert_eq!(apply["ops"][kind]["done"], MANY as u64, "{kind}: {apply}");
    }
    let users = sim_users(&sim.base_url()).await;
    assert_eq!(
        actual_from_sim(&users, true),
        expected_from_csv(&work.path("roster.csv"), &[])
    );
    // success.csv, streamed from the ledger, lists every op of the night.
    assert_eq!(work.last_report("success.csv").len(), 3 * MANY);
}
