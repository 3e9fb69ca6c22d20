//! End to end (issue 3): the real binary against the simulator on loopback, with real CSV
//! files and a real SQLite ledger.

use crate::util;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_import_then_a_night_of_every_change_then_a_quiet_night() {
    let running = sim_with(Default::default(), &[]).await;
    let work = Workdir::new(&running.base_url());

    let night1 = work.run(&["run"]).await;
    assert_eq!(
        night1.code, 2,
        "rejected rows make exit code 2\n{}{}",
        night1.stdout, night1.stderr
    );
    let users = sim_users(&work.base_url).await;
    assert_eq!(
        actual_from_sim(&users, false),
        expected_from_csv(&work.path("roster.csv"), SAMPLE_BAD_KEYS)
    );
    let rejects = work.last_report("rejects.csv");
    let lines: Vec<&str> = rejects.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(lines.len(), 6, "{rejects:?}");
    assert!(
        rejects
            .iter()
            .all(|r| !r[1].is_empty() && !r[2].is_empty() && !r[3].is_empty())
    );
    let summary = work.last_summary();
    assert_eq!(summary["plan"]["ops"]["create"], 200);
    assert_eq!(summary["apply"]["ops"]["create"]["done"], 200);

    let seq = last_seq(&work.base_url).await;
    let night2 = work
        .run(&[
            "run",
            "--roster",
            work.path("roster-night2.csv").to_str().unwrap(),
        ])
        .await;
    assert_eq!(night2.code, 2, "{}{}", night2.stdout, night2.stderr);
    let sent = requests_since(&work.base_url, seq).await;
    let expected: BTreeMap<String, usize> = [
        ("create", 3),
        ("update", 4),
        ("enroll_content", 1),
        ("remove_content", 1),
        ("deactivate", 4),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(endpoint_counts(&sent), expected);
    assert!(
        sent.iter()
            .all(|e| e["outcome"] == "applied" || e["endpoint"] == "login"),
        "{sent:?}"
    );
    let users = sim_users(&work.base_url).await;
    assert_eq!(
        actual_from_sim(&users, true),
        expected_from_csv(&work.path("roster-night2.csv"), SAMPLE_BAD_KEYS)
    );
    let inactive: BTreeSet<String> = users
        .iter()
        .filter(|u| u["user"]["system"]["status"] == "inactive")
        .map(|u| {
            u["user"]["principal"]["client_external_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        inactive,
        ["E0007", "E0150", "E0151", "E0152"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    let seq = last_seq(&work.base_url).await;
    let night3 = work
        .run(&[
            "run",
            "--roster",
            work.path("roster-night2.csv").to_str().unwrap(),
        ])
        .await;
    assert_eq!(night3.code, 2);
    assert!(
        requests_since(&work.base_url, seq).await.is_empty(),
        "a night without changes sends nothing"
    );
    assert!(night3.stdout.contains("nothing to do"), "{}", night3.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_row_is_rejected_the_rest_provisioned_and_that_user_kept() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let good = |k: &str| {
        row(
            k,
            "Ana",
            "Lima",
            &format!("{}@example.com", k.to_lowercase()),
            "Lakeside Camp",
            "SAFE-101",
        )
    };
    work.write_roster("roster.csv", &[good("A1"), good("A2"), good("A3")]);
    assert_eq!(work.run(&["run"]).await.code, 0);

    let mut broken = good("A2");
    broken[3] = "a2-at-example.com".into();
    broken[2] = "Changed".into();
    let mut changed = good("A3");
    changed[2] = "Moreira".into();
    work.write_roster("roster.csv", &[good("A1"), broken, changed, good("A4")]);
    let seq = last_seq(&work.base_url).await;
    let output = work.run(&["run"]).await;
    assert_eq!(output.code, 2, "{}{}", output.stdout, output.stderr);
    let rejects = work.last_report("rejects.csv");
    assert_eq!(rejects.len(), 1);
    assert_eq!((&rejects[0][0], &rejects[0][1]), ("3", "email"));
    assert!(
        rejects[0][3].contains("a2-at-example.com"),
        "the original row is kept"
    );
    let sent = endpoint_counts(&requests_since(&work.base_url, seq).await);
    assert_eq!(
        sent,
        [("create".to_string(), 1), ("update".to_string(), 1)]
            .into_iter()
            .collect()
    );
    let users = sim_users(&work.base_url).await;
    let a2 = users
        .iter()
        .find(|u| u["user"]["principal"]["client_external_id"] == "A2")
        .unwrap();
    assert_eq!(
        a2["user"]["system"]["status"], "active",
        "a rejected row never deactivates its user"
    );
    assert_eq!(
        a2["user"]["principal"]["last_name"], "Lima",
        "nor changes it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_size_roster_trips_the_threshold_and_nothing_is_deactivated() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let rows: Vec<Vec<String>> = (0..40)
        .map(|i| {
            row(
                &format!("H{i}"),
                "Half",
                "Size",
                &format!("h{i}@example.com"),
                "",
                "",
            )
        })
        .collect();
    work.write_roster("roster.csv", &rows);
    assert_eq!(work.run(&["run"]).await.code, 0);
    work.write_roster("roster.csv", &rows[..20]);
    let seq = last_seq(&work.base_url).await;
    let refused = work.run(&["run"]).await;
    assert_eq!(refused.code, 3, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("--allow-deactivations 20"),
        "{}",
        refused.stderr
    );
    assert!(requests_since(&work.base_url, seq).await.is_empty());
    assert!(
        sim_users(&work.base_url)
            .await
            .iter()
            .all(|u| u["user"]["system"]["status"] == "active")
    );
    let status = work.run(&["status", "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        status["ops"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "done"),
        "no pending deactivations were stored: {status}"
    );
    assert!(
        status["next"][0]
            .as_str()
            .unwrap()
            .contains("--allow-deactivations 20"),
        "{status}"
    );

    let allowed = work.run(&["run", "--allow-deactivations", "20"]).await;
    assert_eq!(allowed.code, 0, "{}{}", allowed.stdout, allowed.stderr);
    let inactive = sim_users(&work.base_url)
        .await
        .iter()
        .filter(|u| u["user"]["system"]["status"] == "inactive")
        .count();
    assert_eq!(inactive, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excel_export_with_bom_crlf_quoted_newlines_and_accents_provisions_correctly() {
    let running = sim().await;
    let work = Workdir::with_settings(
        &running.base_url(),
        "[columns]\n\"Employee Number\" = \"external_id\"\n\"Work Email\" = \"email\"\n",
    );
    let text = "\u{feff}Employee Number,First Name,Last Name,Work Email,Locations,Content\r\n\
                X1,Zoë,\"Ó Briain, Jr.\",Zoe.OBriain@Example.com,\"Lakeside Camp;\r\nHead Office\",SAFE-101\r\n\
                X2,  José  ,Nuñez,jose@example.com,Pine Ridge Camp,\"LP-ONBOARD;FA-100\"\r\n";
    std::fs::write(work.path("roster.csv"), text).unwrap();
    let output = work.run(&["run"]).await;
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let users = sim_users(&work.base_url).await;
    let by_key = actual_from_sim(&users, false);
    assert_eq!(by_key["X1"]["first"], "Zoë");
    assert_eq!(by_key["X1"]["last"], "Ó Briain, Jr.");
    assert_eq!(by_key["X1"]["email"], "zoe.obriain@example.com");
    assert_eq!(by_key["X1"]["locations"].as_array().unwrap().len(), 2);
    assert_eq!(by_key["X2"]["first"], "José");
    assert_eq!(by_key["X2"]["content"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_already_in_the_hierarchy_is_adopted_not_duplicated() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let mut existing = user_body("OLD-1", "taken@example.com");
    existing["principal"]["first_name"] = serde_json::json!("Before");
    let seeded: Value = reqwest::Client::new()
        .post(format!("{}/admin/users", work.base_url))
        .json(&existing)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    work.write_roster(
        "roster.csv",
        &[row(
            "NEW-1",
            "After",
            "Adopted",
            "Taken@example.com",
            "Head Office",
            "SAFE-101",
        )],
    );
    let output = work.run(&["run"]).await;
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let users = sim_users(&work.base_url).await;
    assert_eq!(users.len(), 1, "no duplicate account");
    assert_eq!(users[0]["user"]["uuid"], seeded["uuid"]);
    assert_eq!(users[0]["user"]["principal"]["first_name"], "After");
    assert_eq!(users[0]["user"]["principal"]["client_external_id"], "NEW-1");
    assert_eq!(users[0]["content"].as_object().unwrap().len(), 1);
    let success = work.last_report("success.csv");
    assert!(success[0][4].contains("adopted"), "{success:?}");
    // The next night knows the adopted user and leaves it alone.
    let seq = last_seq(&work.base_url).await;
    assert_eq!(work.run(&["run"]).await.code, 0);
    assert!(requests_since(&work.base_url, seq).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structurally_broken_rosters_and_bad_configs_exit_1_before_anything_changes() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    std::fs::write(work.path("roster.csv"), "id,name\n1,Ana\n").unwrap();
    let output = work.run(&["run"]).await;
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("roster.csv:1: missing required column(s) external_id"),
        "{}",
        output.stderr
    );
    std::fs::write(work.path("roster.csv"), "").unwrap();
    let output = work.run(&["run"]).await;
    assert_eq!(output.code, 1);
    assert!(output.stderr.contains("empty"), "{}", output.stderr);
    assert!(requests_since(&work.base_url, 0).await.is_empty());

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
    command
        .args(["run", "--config"])
        .arg(work.path("config.toml"));
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(SECRET_ENV),
        "the missing variable is named"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_stores_replaces_and_apply_executes_and_a_second_run_is_locked_out() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster(
        "roster.csv",
        &[row("P1", "A", "B", "p1@example.com", "", "")],
    );
    let first = work.run(&["plan", "--json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let plan: Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(plan["plan"]["ops"]["create"], 1);
    work.write_roster(
        "roster.csv",
        &[
            row("P1", "A", "B", "p1@example.com", "", ""),
            row("P2", "C", "D", "p2@example.com", "", ""),
        ],
    );
    assert_eq!(work.run(&["plan"]).await.code, 0);
    let dry = work.run(&["run", "--dry-run"]).await;
    assert_eq!(dry.code, 0);
    assert!(
        requests_since(&work.base_url, 0).await.is_empty(),
        "plan and dry runs send nothing"
    );

    let ledger = rostersync::ledger::Ledger::open(&work.path("state/rostersync.db")).unwrap();
    let locked = work.run(&["apply"]).await;
    assert_eq!(locked.code, 4, "{}", locked.stderr);
    assert!(
        locked
            .stderr
            .contains("another rostersync run holds the ledger"),
        "{}",
        locked.stderr
    );
    let status = work.run(&["status"]).await;
    assert_eq!(
        status.code, 0,
        "status reads while a run holds the lock: {}",
        status.stderr
    );
    drop(ledger);

    let applied = work.run(&["apply"]).await;
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    assert_eq!(
        endpoint_counts(&requests_since(&work.base_url, 0).await)["create"],
        2,
        "the replaced plan ran once"
    );
    let status = work.run(&["status"]).await;
    assert!(
        status.stdout.contains("2 users on the platform"),
        "{}",
        status.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_secret_and_tokens_appear_in_no_output_file_or_log() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let mut rows: Vec<Vec<String>> = (0..5)
        .map(|i| {
            row(
                &format!("S{i}"),
                "Sec",
                "Ret",
                &format!("s{i}@example.com"),
                "",
                "",
            )
        })
        .collect();
    rows.push(row("S9", "Bad", "Row", "bad-email", "", ""));
    work.write_roster("roster.csv", &rows);
    let mut outputs = vec![
        work.run(&["run"]).await,
        work.run(&["status", "--json"]).await,
    ];
    // A refused login must not echo the secret either.
    running.sim.set_faults(Default::default());
    let wrong = Workdir::new(&running.base_url());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
    command
        .args(["run", "--config"])
        .arg(wrong.path("config.toml"))
        .env(SECRET_ENV, "wrong-secret-value");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "refused credentials are fatal"
    );
    outputs.push(RunOutput {
        code: 1,
        stdout: String::from_utf8_lossy(&output.stdout).into(),
        stderr: String::from_utf8_lossy(&output.stderr).into(),
    });
    let mut texts: Vec<Vec<u8>> = outputs
        .iter()
        .map(|o| format!("{}{}", o.stdout, o.stderr).into_bytes())
        .collect();
    for entry in util::hostile::walk(work.dir.path())
        .into_iter()
        .chain(util::hostile::walk(wrong.dir.path()))
    {
        texts.push(std::fs::read(entry).unwrap());
    }
    for text in texts {
        let text = String::from_utf8_lossy(&text);
        assert!(
            !text.contains(CLIENT_SECRET) && !text.contains("wrong-secret-value"),
            "secret leaked"
        );
        assert!(!text.contains("eyJ"), "a JWT leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_rows_are_read_again_when_the_defaults_they_rely_on_change() {
    let running = sim_with(Default::default(), &[]).await;
    let work = Workdir::new(&running.base_url());
    // Rows with no role take [defaults] role.
    let rows: Vec<Vec<String>> = (1..=3)
        .map(|i| {
            row(
                &format!("D{i}"),
                "Ana",
                "Lee",
                &format!("ana.lee{i}@example.com"),
                "Lakeside Camp",
                "SAFE-201",
            )
        })
        .collect();
    work.write_roster("roster.csv", &rows);
    let first = work.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);

    let seq = last_seq(&work.base_url).await;
    let quiet = work.run(&["run"]).await;
    assert_eq!(quiet.code, 0);
    assert!(requests_since(&work.base_url, seq).await.is_empty());

    // The roster file is byte for byte the same; what its rows mean is not.
    let config = std::fs::read_to_string(work.path("config.toml")).unwrap();
    std::fs::write(
        work.path("config.toml"),
        config.replace("role = \"Learner\"", "role = \"Supervisor\""),
    )
    .unwrap();
    let seq = last_seq(&work.base_url).await;
    let changed = work.run(&["run"]).await;
    assert_eq!(changed.code, 0, "{}{}", changed.stdout, changed.stderr);
    let sent = requests_since(&work.base_url, seq).await;
    assert_eq!(
        endpoint_counts(&sent),
        [("update".to_owned(), 3)].into_iter().collect()
    );
    let users = sim_users(&work.base_url).await;
    assert!(
        users
            .iter()
            .all(|u| u["user"]["system"]["role"] == "Supervisor"),
        "{users:?}"
    );
}

/// The README's first command: the demo runs its three nights in one process against its
/// in-process simulator. Each night must release the ledger (and its lock) for the next.
#[test]
fn the_demo_runs_its_three_nights_in_one_process() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"))
        .arg("demo")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("== night 3"), "{text}");
    assert!(text.contains("plan: nothing to do"), "{text}");
    assert!(!text.contains("error"), "{text}");
}
