//! Who is affected, truthfully (issue 10): plan.csv says who a plan changes and how before
//! anything is sent; the thresholds fit every size of organisation; `status` counts each
//! person once and says what to do next; old report folders of runs that sent nothing do
//! not pile up. The real binary against the simulator on loopback.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};
use util::*;

/// Person `i` of a small organisation.
fn person(i: usize) -> Vec<String> {
    row(
        &format!("P{i:02}"),
        "Pat",
        &format!("Person{i}"),
        &format!("pat{i}@example.com"),
        "Lakeside Camp",
        "SAFE-101",
    )
}

fn people(range: std::ops::Range<usize>) -> Vec<Vec<String>> {
    range.map(person).collect()
}

/// plan.csv of the newest run, by external_id: (op, first_name, last_name, email, changes).
fn plan_rows(work: &Workdir) -> BTreeMap<String, Vec<String>> {
    let path = work.last_run_dir().join("plan.csv");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "external_id",
            "op",
            "first_name",
            "last_name",
            "email",
            "changes"
        ]
    );
    let mut rows = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let fields: Vec<String> = record.iter().skip(1).map(str::to_owned).collect();
        assert!(
            rows.insert(record[0].to_owned(), fields).is_none(),
            "one op per person in this plan: {record:?}"
        );
    }
    rows
}

/// The command without the client secret in its environment.
fn without_secret(work: &Workdir, args: &[&str]) -> std::process::Command {
    let mut command = work.command(args);
    command.env_remove(SECRET_ENV);
    command
}

/// The external_id of each platform user id the simulator holds.
async fn keys_by_uuid(base: &str) -> BTreeMap<String, String> {
    sim_users(base)
        .await
        .iter()
        .map(|u| {
            (
                u["user"]["uuid"].as_str().unwrap().to_owned(),
                u["user"]["principal"]["client_external_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

/// The night: 3 leavers and 2 changed people. `plan` without the secret sends
/// nothing and its plan.csv lists exactly those 5 with their changes; `apply` then sends
/// exactly those ops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_of_three_leavers_and_two_changes_is_shown_before_anything_is_sent() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &people(0..10));
    let first = work.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);

    let mut tonight = people(0..7);
    tonight[1][2] = "Married".into();
    tonight[2][3] = "pat.two@example.com".into();
    tonight[2][7] = "Head Office".into();
    work.write_roster("roster.csv", &tonight);
    let seq = last_seq(&work.base_url).await;

    let planned = run_command(without_secret(&work, &["plan"])).await;
    assert_eq!(planned.code, 0, "{}{}", planned.stdout, planned.stderr);
    assert!(
        requests_since(&work.base_url, seq).await.is_empty(),
        "plan sends nothing"
    );
    let rows = plan_rows(&work);
    let keys: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(keys, ["P01", "P02", "P07", "P08", "P09"]);
    assert_eq!(
        rows["P01"],
        [
            "update",
            "Pat",
            "Married",
            "pat1@example.com",
            "last_name: Person1 → Married"
        ]
    );
    assert_eq!(
        rows["P02"],
        [
            "update",
            "Pat",
            "Person2",
            "pat.two@example.com",
            "email: pat2@example.com → pat.two@example.com; locations: Lakeside Camp → Head Office"
        ]
    );
    for leaver in ["P07", "P08", "P09"] {
        let i: usize = leaver[1..].parse().unwrap();
        assert_eq!(
            rows[leaver],
            [
                "deactivate".to_owned(),
                "Pat".to_owned(),
                format!("Person{i}"),
                format!("pat{i}@example.com"),
                "status: active → inactive".to_owned()
            ],
            "who is deactivated, as the ledger knows them"
        );
    }
    // The first few of each kind are printed with the file's path.
    assert!(
        planned.stdout.contains("last_name: Person1 → Married"),
        "{}",
        planned.stdout
    );
    assert!(
        planned.stdout.contains("deactivate P09"),
        "{}",
        planned.stdout
    );
    let plan_file = work.last_run_dir().join("plan.csv");
    assert!(
        planned
            .stdout
            .contains(&format!("who and what: {}", plan_file.display())),
        "{}",
        planned.stdout
    );

    // plan --json carries the file and the first ops of each kind.
    let json = run_command(without_secret(&work, &["plan", "--json"])).await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let summary: Value = serde_json::from_str(&json.stdout).unwrap();
    let file = PathBuf::from(summary["plan"]["file"].as_str().unwrap());
    assert_eq!(file, work.last_run_dir().join("plan.csv"));
    assert!(file.is_file());
    assert_eq!(
        summary["plan"]["first"]["deactivate"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(summary["plan"]["first"]["update"][0]["external_id"], "P01");
    assert!(requests_since(&work.base_url, seq).await.is_empty());

    let applied = work.run(&["apply"]).await;
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let sent = requests_since(&work.base_url, seq).await;
    let keys = keys_by_uuid(&work.base_url).await;
    let ops: BTreeSet<(String, String)> = sent
        .iter()
        .filter(|e| e["endpoint"] != "login")
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap().to_owned(),
                keys[e["user"].as_str().unwrap()].clone(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("update", "P01"),
        ("update", "P02"),
        ("deactivate", "P07"),
        ("deactivate", "P08"),
        ("deactivate", "P09"),
    ]
    .iter()
    .map(|(e, k)| (e.to_string(), k.to_string()))
    .collect();
    assert_eq!(ops, expected);
    assert_eq!(
        sent.iter().filter(|e| e["endpoint"] != "login").count(),
        5,
        "each op once: {sent:?}"
    );
    // The apply line's rate is rounded for people.
    let line = applied
        .stdout
        .lines()
        .find(|l| l.starts_with("apply:"))
        .unwrap();
    let rate = line.rsplit('(').next().unwrap().trim_end_matches("/s)");
    assert!(
        rate.parse::<f64>().is_ok() && rate.split('.').nth(1).is_none_or(|d| d.len() <= 2),
        "{line}"
    );
}

/// Thresholds for every size: with the default config a small organisation's leaver goes
/// (10% of 6 is 0, the floor allows some), a comeback is shown as one, and a roster cut from
/// 6 to 2 is refused, plan.csv naming the 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_people_lose_one_by_default_but_a_cut_to_two_is_refused() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &people(0..6));
    assert_eq!(work.run(&["run"]).await.code, 0);

    work.write_roster("roster.csv", &people(0..5));
    let one = work.run(&["run"]).await;
    assert_eq!(one.code, 0, "{}{}", one.stdout, one.stderr);
    let inactive: Vec<Value> = sim_users(&work.base_url)
        .await
        .into_iter()
        .filter(|u| u["user"]["system"]["status"] == "inactive")
        .map(|u| u["user"]["principal"]["client_external_id"].clone())
        .collect();
    assert_eq!(inactive, [json!("P05")]);

    work.write_roster("roster.csv", &people(0..6));
    let back = work.run(&["run"]).await;
    assert_eq!(back.code, 0, "{}{}", back.stdout, back.stderr);
    assert_eq!(plan_rows(&work)["P05"][4], "status: inactive → active");

    work.write_roster("roster.csv", &people(0..2));
    let seq = last_seq(&work.base_url).await;
    let refused = work.run(&["run"]).await;
    assert_eq!(refused.code, 3, "{}{}", refused.stdout, refused.stderr);
    let plan_file = work.last_run_dir().join("plan.csv");
    assert!(
        refused.stderr.contains("--allow-deactivations 4")
            && refused.stderr.contains(&plan_file.display().to_string()),
        "the refusal names the override and the file: {}",
        refused.stderr
    );
    assert!(requests_since(&work.base_url, seq).await.is_empty());
    let rows = plan_rows(&work);
    let gone: Vec<&str> = rows
        .iter()
        .filter(|(_, r)| r[0] == "deactivate")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(gone, ["P02", "P03", "P04", "P05"]);
    let status = work.run(&["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["runs"][0]["outcome"], "refused");
    assert_eq!(status["runs"][0]["refused"][0]["planned"], 4);
    assert!(
        status["next"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("--allow-deactivations 4")),
        "{status}"
    );
}

/// A file whose first and last names were swapped changes everyone: refused by max_updates
/// (exit 3) until the run names `--allow-updates N`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changes_everyone_is_refused_until_the_updates_are_allowed() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let rows = people(0..12);
    work.write_roster("roster.csv", &rows);
    assert_eq!(work.run(&["run"]).await.code, 0);

    let swapped: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.swap(1, 2);
            r
        })
        .collect();
    work.write_roster("roster.csv", &swapped);
    let seq = last_seq(&work.base_url).await;
    let refused = work.run(&["run"]).await;
    assert_eq!(refused.code, 3, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("updates 12 users")
            && refused.stderr.contains("--allow-updates 12")
            && refused.stderr.contains("plan.csv"),
        "{}",
        refused.stderr
    );
    assert!(requests_since(&work.base_url, seq).await.is_empty());
    assert_eq!(plan_rows(&work).len(), 12);

    let allowed = work.run(&["run", "--allow-updates", "12"]).await;
    assert_eq!(allowed.code, 0, "{}{}", allowed.stdout, allowed.stderr);
    assert_eq!(
        endpoint_counts(&requests_since(&work.base_url, seq).await),
        [("update".to_owned(), 12)].into_iter().collect()
    );
}

/// Issue 10: after a run where 2 of 3 creates failed and a second run failed them again,
/// `status` said "4 create failed" for 2 people. It counts each person once, shows each
/// run's counts and folder, and says what helps; `apply` still exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_each_person_once_after_two_nights_of_the_same_failures() {
    let running = sim_with(Default::default(), &["Northwind Camps"]).await;
    let work = Workdir::new(&running.base_url());
    // Two of the emails belong to people of another client, outside our hierarchy: the API
    // refuses those creates and does not say who has them.
    for email in ["pat1@example.com", "pat2@example.com"] {
        let mut other = user_body("THEIRS", email);
        other["context"] =
            json!({"client": client_uuid("Riverside Youth League"), "locations": []});
        let staged = reqwest::Client::new()
            .post(format!("{}/admin/users", work.base_url))
            .json(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(staged.status(), 201);
    }
    work.write_roster("roster.csv", &people(0..3));
    for night in 1..=2 {
        let out = work.run(&["run"]).await;
        assert_eq!(out.code, 2, "night {night}: {}{}", out.stdout, out.stderr);
    }
    let again = work.run(&["apply"]).await;
    assert_eq!(again.code, 2, "{}{}", again.stdout, again.stderr);

    let text = work.run(&["status"]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("2 create failed (2 person(s))"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("4 create"), "{}", text.stdout);
    assert!(
        text.stdout.contains("`rostersync run` plans them again"),
        "{}",
        text.stdout
    );
    let status: Value =
        serde_json::from_str(&work.run(&["status", "--json"]).await.stdout).unwrap();
    let failed: Vec<&Value> = status["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{status}");
    assert_eq!(
        (&failed[0]["ops"], &failed[0]["users"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(status["users_not_done"], 2);
    // Each run: its counts and its folder. Newest first: apply, night 2, night 1.
    let runs = status["runs"].as_array().unwrap();
    assert_eq!(runs[1]["command"], "run");
    assert_eq!(
        (&runs[1]["done"], &runs[1]["failed"]),
        (&json!(0), &json!(2))
    );
    assert_eq!(
        (&runs[2]["done"], &runs[2]["failed"]),
        (&json!(1), &json!(2))
    );
    for run in &runs[..3] {
        let dir = PathBuf::from(run["report_dir"].as_str().unwrap());
        assert!(dir.join("summary.json").is_file(), "{run}");
    }
}

/// Folders of runs that sent nothing (dry runs, plans, refusals, quiet nights) are kept up
/// to `[reports] keep_runs`, the newest; folders of runs that sent requests are all kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_folders_of_runs_that_sent_nothing_do_not_pile_up() {
    let running = sim().await;
    let work = Workdir::with_settings(&running.base_url(), "[reports]\nkeep_runs = 2\n");
    work.write_roster("roster.csv", &people(0..3));
    assert_eq!(work.run(&["run"]).await.code, 0);
    for _ in 0..4 {
        assert_eq!(work.run(&["run", "--dry-run"]).await.code, 0);
    }
    work.write_roster("roster.csv", &people(0..4));
    assert_eq!(work.run(&["run"]).await.code, 0);
    for _ in 0..3 {
        assert_eq!(work.run(&["run", "--dry-run"]).await.code, 0);
    }
    let mut folders: Vec<String> = std::fs::read_dir(work.path("state/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    // 1 and 6 sent requests; 8 and 9 are the newest two that did not.
    assert_eq!(
        folders,
        ["run-000001", "run-000006", "run-000008", "run-000009"]
    );
    let status = work.run(&["status"]).await;
    assert!(
        status
            .stdout
            .contains("reports: removed (over [reports] keep_runs)"),
        "{}",
        status.stdout
    );
}

/// Paths are printed cleaned: `./../roster.csv` as `../roster.csv`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_printed_without_dot_segments() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &people(0..2));
    std::fs::create_dir(work.path("sub")).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
    command
        .args([
            "run",
            "--dry-run",
            "--config",
            "./../config.toml",
            "--roster",
            "./../roster.csv",
        ])
        .current_dir(work.path("sub"));
    let out = run_command(command).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("roster ../roster.csv: 2 rows"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("who and what: ../state/runs/run-000001/plan.csv"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains(" ./") && !out.stdout.contains("/./"),
        "{}",
        out.stdout
    );
}
