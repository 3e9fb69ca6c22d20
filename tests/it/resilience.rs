//! Resilient apply (issue 4): the real binary against the simulator with its faults on —
//! 5xx, answers lost after processing, a tight rate limit, short-lived tokens, the duplicate
//! window — and a run killed with SIGKILL again and again.

use crate::util;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rostersync::targets::praesidium::sim::Faults;
use serde_json::Value;
use util::*;

/// Every user the simulator holds, by key; panics on a key or an email held twice.
fn unique_users(users: &[Value]) -> BTreeMap<String, Value> {
    let mut emails = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for user in users {
        let principal = &user["user"]["principal"];
        let key = principal["client_external_id"].as_str().unwrap();
        let email = principal["email"].as_str().unwrap().to_lowercase();
        assert!(keys.insert(key.to_owned()), "two accounts for key {key}");
        assert!(
            emails.insert(email.clone()),
            "two accounts for email {email}"
        );
    }
    actual_from_sim(users, true)
}

fn ignored_duplicates(log: &[Value]) -> usize {
    log.iter()
        .filter(|e| e["outcome"] == "ignored_duplicate")
        .count()
}

/// Runs `run` until it exits 0 (at most `tries` times); returns the exit codes.
async fn run_until_converged(work: &Workdir, tries: usize) -> Vec<i32> {
    let mut codes = Vec::new();
    for _ in 0..tries {
        let out = work.run(&["run"]).await;
        codes.push(out.code);
        if out.code == 0 {
            break;
        }
        assert!(
            out.code == 2,
            "run exited {}: {}\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
    codes
}

/// The sample roster without its deliberately bad rows' users.
fn sample_expected(work: &Workdir) -> BTreeMap<String, Value> {
    expected_from_csv(&work.path("roster.csv"), SAMPLE_BAD_KEYS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_a_tight_rate_limit_converge_with_no_duplicate_and_nothing_ignored() {
    let faults = Faults {
        error_rate: 0.05,
        drop_rate: 0.03,
        rate_limit: 60.0,
        burst: Some(10),
        duplicate_window_secs: 2.0,
        ..Faults::default()
    };
    let sim = sim_with(faults, &[]).await;
    // rostersync is allowed twice what the server takes: 429s must happen and be handled.
    let work = Workdir::with_settings(&sim.base_url(), "");
    work.set_api(&[
        ("requests_per_second", "120.0"),
        ("duplicate_window_secs", "2"),
    ]);
    // The sample roster has deliberately bad rows: runs end with exit 2 until nothing is left
    // to do, then the run that sends nothing is judged by its failed ops only.
    let mut codes = Vec::new();
    let mut summary = Value::Null;
    for _ in 0..4 {
        let out = work.run(&["run"]).await;
        codes.push(out.code);
        assert!(
            out.code == 2,
            "exit {}: {}\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
        summary = work.last_summary();
        let failed = summary["apply"]["ops"]
            .as_object()
            .map(|kinds| {
                kinds
                    .values()
                    .map(|states| {
                        states["failed"].as_u64().unwrap_or(0)
                            + states["in_doubt"].as_u64().unwrap_or(0)
                    })
                    .sum::<u64>()
            })
            .unwrap_or(0);
        if failed == 0 && summary["apply"]["left_pending"] == 0 {
            break;
        }
    }
    let log = requests_since(&sim.base_url(), 0).await;
    let users = sim_users(&sim.base_url()).await;
    assert_eq!(
        unique_users(&users),
        sample_expected(&work),
        "runs: {codes:?}"
    );
    for ignored in log.iter().filter(|e| e["outcome"] == "ignored_duplicate") {
        for e in log.iter().filter(|e| e["user"] == ignored["user"]) {
            eprintln!(
                "{} {} {} {} {} {} {}",
                e["seq"],
                e["at_ms"],
                e["method"],
                e["endpoint"],
                e["status"],
                e["outcome"],
                e["dropped"]
            );
        }
    }
    assert_eq!(
        ignored_duplicates(&log),
        0,
        "no change may be ignored as a repeat"
    );
    let count = |outcome: &str| log.iter().filter(|e| e["outcome"] == outcome).count();
    assert!(count("rate_limited") > 0, "the test must meet 429s");
    assert!(
        log.iter().any(|e| e["dropped"] == true),
        "the test must meet lost answers"
    );
    assert!(count("injected_error") > 0, "the test must meet 5xx");
    let first: Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(work.path("state/runs"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .min()
                .unwrap()
                .join("summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for field in ["retries", "rate_limited_429", "rate_limit_pause_secs"] {
        assert!(
            first["apply"][field].as_f64().unwrap() > 0.0,
            "summary apply.{field} of the first run: {}",
            first["apply"]
        );
    }
    let _ = summary;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_tokens_on_a_run_of_over_ten_seconds() {
    let faults = Faults {
        token_lifetime_secs: 2.0,
        ..Faults::default()
    };
    let sim = sim_with(faults, &[]).await;
    let work = Workdir::new(&sim.base_url());
    work.set_api(&[("requests_per_second", "18.0")]);
    let started = Instant::now();
    let out = work.run(&["run"]).await;
    let took = started.elapsed();
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr); // the sample's bad rows
    assert!(took > Duration::from_secs(10), "the run took only {took:?}");
    let log = requests_since(&sim.base_url(), 0).await;
    let logins = log.iter().filter(|e| e["endpoint"] == "login").count();
    assert!(logins >= 5, "{logins} logins in {took:?}");
    assert!(
        log.iter().all(|e| e["status"] != 401),
        "a request went out with an expired token"
    );
    let summary = work.last_summary();
    assert_eq!(summary["apply"]["ops"]["create"]["done"], 200);
    assert_eq!(
        unique_users(&sim_users(&sim.base_url()).await),
        sample_expected(&work)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_and_an_enroll_in_runs_five_seconds_apart_are_both_applied() {
    let faults = Faults {
        duplicate_window_secs: 8.0,
        ..Faults::default()
    };
    let sim = sim_with(faults, &[]).await;
    let work = Workdir::new(&sim.base_url());
    work.set_api(&[("duplicate_window_secs", "8")]);
    let night = |last: &str, content: &str| {
        vec![row(
            "K1",
            "Kim",
            last,
            "kim@example.com",
            "Lakeside Camp",
            content,
        )]
    };
    work.write_roster("roster.csv", &night("Park", "SAFE-101"));
    assert_eq!(work.run(&["run"]).await.code, 0);
    // Night 1: an update and an enroll...
    work.write_roster("roster.csv", &night("Park-Lee", "SAFE-101;FA-100"));
    assert_eq!(work.run(&["run"]).await.code, 0);
    let after_first = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // ...and five seconds later the same endpoints again: these must wait for the window.
    work.write_roster("roster.csv", &night("Lee", "SAFE-101;FA-100;LEAD-300"));
    let out = work.run(&["run"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        after_first.elapsed() >= Duration::from_secs(8),
        "the second change went out inside the window"
    );
    let summary = work.last_summary();
    assert!(summary["apply"]["window_deferrals"].as_u64().unwrap() >= 1);
    let users = sim_users(&sim.base_url()).await;
    let user = &users[0];
    assert_eq!(user["user"]["principal"]["last_name"], "Lee");
    assert_eq!(user["content"].as_object().unwrap().len(), 3);
    let log = requests_since(&sim.base_url(), 0).await;
    assert_eq!(ignored_duplicates(&log), 0);
}

/// 2,000 users, the run killed with SIGKILL at random moments five times, restarted each
/// time; then one run to the end. The simulator must hold exactly the roster, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_five_times_converges_with_no_duplicate_account() {
    use rand::{Rng, SeedableRng};
    let faults = Faults {
        duplicate_window_secs: 1.0,
        latency_min_ms: 1,
        latency_max_ms: 5,
        ..Faults::default()
    };
    let sim = sim_with(faults, &[]).await;
    let work = Workdir::new(&sim.base_url());
    work.set_api(&[
        ("requests_per_second", "400.0"),
        ("duplicate_window_secs", "1"),
    ]);
    let locations = ["Lakeside Camp", "Pine Ridge Camp"];
    let rows: Vec<Vec<String>> = (0..2000)
        .map(|i| {
            row(
                &format!("C{i:05}"),
                "Crash",
                &format!("Test{i}"),
                &format!("crash{i}@example.com"),
                locations[i % 2],
                if i % 3 == 0 { "SAFE-101" } else { "" },
            )
        })
        .collect();
    work.write_roster("roster.csv", &rows);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for kill in 0..5 {
        let mut child = work
            .command(&["run"])
            .env("ROSTERSYNC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let after = Duration::from_millis(rng.gen_range(300..1500));
        tokio::time::sleep(after).await;
        // SIGKILL: no chance to clean up.
        child.kill().unwrap();
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(
            !status.success(),
            "kill {kill}: the run ended before it was killed"
        );
    }
    let codes = run_until_converged(&work, 3).await;
    assert_eq!(codes.last(), Some(&0), "runs after the kills: {codes:?}");
    let users = sim_users(&sim.base_url()).await;
    assert_eq!(users.len(), 2000, "accounts on the platform");
    assert_eq!(
        unique_users(&users),
        expected_from_csv(&work.path("roster.csv"), &[])
    );
    let log = requests_since(&sim.base_url(), 0).await;
    assert_eq!(ignored_duplicates(&log), 0);
}

/// Ctrl-C (SIGINT) in the middle of a run: requests in flight finish and are journaled,
/// nothing new starts, and the run exits 2 with what it left in its summary; the next run
/// finishes the rest without a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_taking_ops_journals_those_in_flight_and_the_next_run_finishes() {
    let faults = Faults {
        latency_min_ms: 20,
        latency_max_ms: 60,
        ..Faults::default()
    };
    let sim = sim_with(faults, &[]).await;
    let work = Workdir::new(&sim.base_url());
    work.set_api(&[("requests_per_second", "40.0"), ("max_in_flight", "4")]);
    let rows: Vec<Vec<String>> = (0..300)
        .map(|i| {
            row(
                &format!("S{i:04}"),
                "Signal",
                &format!("Test{i}"),
                &format!("signal{i}@example.com"),
                "Lakeside Camp",
                "",
            )
        })
        .collect();
    work.write_roster("roster.csv", &rows);
    let child = work
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a stopped run exits 2\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let apply = &work.last_summary()["apply"];
    assert_eq!(apply["interrupted_by_signal"], true, "{apply}");
    let done = apply["ops"]["create"]["done"].as_u64().unwrap_or(0);
    let left = apply["left_pending"].as_u64().unwrap();
    assert!(done > 0 && left > 0, "done {done}, left {left}: {apply}");
    assert_eq!(
        done + left,
        300,
        "every op is done or pending again: {apply}"
    );
    assert!(apply["ops"]["create"].get("in_doubt").is_none(), "{apply}");
    // Each request that left before the signal was answered and journaled as done.
    assert_eq!(sim_users(&sim.base_url()).await.len() as u64, done);

    let codes = run_until_converged(&work, 2).await;
    assert_eq!(codes, [0]);
    let users = sim_users(&sim.base_url()).await;
    assert_eq!(unique_users(&users).len(), 300);
    assert_eq!(
        unique_users(&users),
        expected_from_csv(&work.path("roster.csv"), &[])
    );
}
