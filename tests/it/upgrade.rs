//! Upgrade in place (issue 12): a ledger written by the release before the neutral model
//! (schema 4, profiles in the first platform's shape, a plan pending in its binary records)
//! is migrated by this binary and used as it is: the pending plan is shown and applied, and
//! nobody is provisioned again.
//!
//! The fixture (`tests/fixtures/ledger-0.1-v4/`) was written by rostersync 0.1.0 at commit
//! 2d1aec0: `run` of samples/roster.csv against `rostersync sim --state-file sim-state.json`,
//! then `plan --roster roster-night2.csv` (13 ops left pending); the rosters are samples/.

use crate::util;

use rostersync::targets::praesidium::sim::{RunningSim, Sim, SimOptions, start};
use util::*;

/// Ops a summary.json says were planned.
fn planned(summary: &serde_json::Value) -> u64 {
    summary["plan"]["ops"]
        .as_object()
        .map_or(0, |ops| ops.values().filter_map(|n| n.as_u64()).sum())
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ledger-0.1-v4");

/// The simulator as the fixture's nights left it, and a work folder holding the fixture's
/// ledger (a copy each: the fixture is never changed). The first value keeps the
/// simulator's state folder alive.
async fn restored() -> (tempfile::TempDir, RunningSim, Workdir) {
    let state = tempfile::tempdir().unwrap();
    let sim_state = state.path().join("sim-state.json");
    std::fs::copy(format!("{FIXTURE}/sim-state.json"), &sim_state).unwrap();
    let catalog = catalog();
    let mut options = SimOptions::single_credential(&catalog, CLIENT_ID, CLIENT_SECRET);
    options.state_file = Some(sim_state);
    let running = start(
        Sim::new(catalog, options).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let work = Workdir::new(&running.base_url());
    std::fs::create_dir_all(work.path("state")).unwrap();
    std::fs::copy(
        format!("{FIXTURE}/rostersync.db"),
        work.path("state/rostersync.db"),
    )
    .unwrap();
    (state, running, work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_of_the_previous_release_is_migrated_and_its_pending_plan_applied() {
    let (_state, running, work) = restored().await;
    let users_before = sim_users(&work.base_url).await.len();
    assert_eq!(users_before, 200);

    // `status` refuses an old schema until a command that may write migrates it.
    let status = work.run(&["status"]).await;
    assert_ne!(status.code, 0, "{}{}", status.stdout, status.stderr);

    // Planned again by this binary: the same 13 ops, and plan.csv shows the "before" values
    // read from profiles the old release stored (migrated, not lost as "(not recorded)").
    let night2 = work.path("roster-night2.csv");
    let plan = work
        .run(&["plan", "--roster", night2.to_str().unwrap()])
        .await;
    assert_eq!(
        plan.code, 2,
        "rejected rows: exit 2\n{}{}",
        plan.stdout, plan.stderr
    );
    let summary = work.last_summary();
    assert_eq!(planned(&summary), 13, "{summary:#}");
    let plan_csv = std::fs::read_to_string(work.last_run_dir().join("plan.csv")).unwrap();
    assert!(
        plan_csv.contains("E0001,update,Kemi,Married-Name,kmuller.1@northwind-camps.example,last_name: Müller → Married-Name"),
        "{plan_csv}"
    );
    assert!(
        plan_csv.contains("role: Learner → Supervisor"),
        "{plan_csv}"
    );
    assert!(!plan_csv.contains("(not recorded)"), "{plan_csv}");

    // The pending plan, written by this binary over the old one, is applied.
    let seq = last_seq(&work.base_url).await;
    let apply = work.run(&["apply"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let sent = requests_since(&work.base_url, seq).await;
    let counts = endpoint_counts(&sent);
    assert_eq!(counts.get("create"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("deactivate"), Some(&4), "{counts:?}");
    assert_eq!(
        sim_users(&work.base_url).await.len(),
        203,
        "no one created twice"
    );

    // Nothing left to do, and nobody provisioned again.
    let seq = last_seq(&work.base_url).await;
    let quiet = work
        .run(&["run", "--roster", night2.to_str().unwrap()])
        .await;
    assert_eq!(quiet.code, 2, "{}{}", quiet.stdout, quiet.stderr);
    assert_eq!(planned(&work.last_summary()), 0);
    assert!(requests_since(&work.base_url, seq).await.is_empty());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_releases_pending_ops_are_applied_as_it_wrote_them() {
    let (_state, running, work) = restored().await;
    // `apply` sends the plan the old release stored: its records decode as it wrote them.
    let apply = work.run(&["apply"]).await;
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let summary = work.last_summary();
    let done: u64 = ["create", "update", "enroll", "remove", "deactivate"]
        .iter()
        .map(|k| summary["apply"]["ops"][k]["done"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(done, 13, "{summary:#}");
    let users = sim_users(&work.base_url).await;
    // Compared without printing both sides: 200 users each.
    let matches = actual_from_sim(&users, true)
        == expected_from_csv(&work.path("roster-night2.csv"), SAMPLE_BAD_KEYS);
    assert!(matches, "the platform matches the night-2 roster");
    let quiet = work
        .run(&[
            "plan",
            "--roster",
            work.path("roster-night2.csv").to_str().unwrap(),
        ])
        .await;
    assert_eq!(quiet.code, 2, "{}{}", quiet.stdout, quiet.stderr);
    assert_eq!(planned(&work.last_summary()), 0);
    running.stop().await;
}
