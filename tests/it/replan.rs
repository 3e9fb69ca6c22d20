//! Planning again over a plan nobody applied (issue 11): the ops the new plan makes again
//! are kept as they were, the rest replaced, and applying the result converges on the
//! newest roster exactly as a plan made from scratch would.

use crate::util;

use util::*;

/// Runs `plan --json` with the plan writer's debug log: the ops by kind, and how many ops
/// of the replaced plan were kept (0 when the log says none).
async fn plan(work: &Workdir) -> (serde_json::Value, u64, String) {
    let (summary, stderr) = work.plan_with_ledger_log().await;
    let kept = stderr
        .lines()
        .find(|l| l.contains("ops of the replaced plan kept"))
        .and_then(|l| l.split("kept=").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (summary["plan"]["ops"].clone(), kept, stderr)
}

fn renamed(i: usize, last: &str) -> Vec<String> {
    let mut row = person(i);
    row[2] = last.to_owned();
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_again_keeps_what_it_makes_again_and_applies_to_the_newest_roster() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    work.write_roster("roster.csv", &(1..=6).map(person).collect::<Vec<_>>());
    let first = work.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);

    // Night 2, planned for review: E0002 renamed, E0003 gone, E0007 new.
    let night = |extra: &[(usize, &str)]| {
        let mut rows = vec![person(1), renamed(2, "Renamed"), person(4), person(5)];
        rows.extend([person(6), person(7)]);
        for (i, last) in extra {
            let at = rows
                .iter()
                .position(|r| r[0] == format!("E{i:04}"))
                .unwrap();
            rows[at] = renamed(*i, last);
        }
        rows
    };
    work.write_roster("roster.csv", &night(&[]));
    let (ops, kept, stderr) = plan(&work).await;
    assert_eq!(kept, 0, "nothing to keep after an applied run: {stderr}");
    assert_eq!(
        (&ops["update"], &ops["deactivate"], &ops["create"]),
        (&1.into(), &1.into(), &1.into()),
        "{ops} {stderr}"
    );

    // The same roster again: every op kept. Then E0005 renamed as well: the three others
    // kept, E0005's update written.
    let (again, kept, stderr) = plan(&work).await;
    assert_eq!((again.clone(), kept), (ops.clone(), 3), "{stderr}");
    work.write_roster("roster.csv", &night(&[(5, "Later")]));
    let (ops, kept, stderr) = plan(&work).await;
    assert_eq!(kept, 3, "{stderr}");
    assert_eq!(ops["update"], 2, "{ops} {stderr}");
    let listed = std::fs::read_to_string(work.last_run_dir().join("plan.csv")).unwrap();
    for key in ["E0002", "E0003", "E0005", "E0007"] {
        assert!(
            listed.contains(key),
            "{key} missing from plan.csv:\n{listed}"
        );
    }

    // Applied: the platform is the newest roster, and nothing is left to plan.
    let applied = work.run(&["apply"]).await;
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let users = sim_users(&running.base_url()).await;
    let by_key = |key: &str| {
        users
            .iter()
            .find(|u| u["user"]["principal"]["client_external_id"] == key)
            .unwrap_or_else(|| panic!("{key} not on the platform: {users:?}"))
            .clone()
    };
    let shown = |key: &str| by_key(key).to_string();
    assert!(shown("E0002").contains("Renamed"), "{}", shown("E0002"));
    assert!(shown("E0005").contains("Later"), "{}", shown("E0005"));
    by_key("E0007");
    let (last, _, stderr) = plan(&work).await;
    let total: u64 = last
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 0, "{last} {stderr}");
}

/// A plan of nothing after a partly applied plan, then a plan with ops: every op of the last
/// plan is sent (its ops were numbered below the last plan's first id, and never pending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_plan_of_nothing_every_op_of_the_next_plan_is_sent() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let people: Vec<Vec<String>> = (1..=6).map(person).collect();
    work.write_roster("roster.csv", &people);
    let first = work.run(&["run"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);

    // Four people renamed and planned; an apply sends the first two ops and is killed (as
    // the journal records it: the ops done by that run, the people not yet changed).
    let renamed_night: Vec<Vec<String>> = (1..=6)
        .map(|i| {
            if i <= 4 {
                renamed(i, "Renamed")
            } else {
                person(i)
            }
        })
        .collect();
    work.write_roster("roster.csv", &renamed_night);
    let (ops, _, stderr) = plan(&work).await;
    assert_eq!(ops["update"], 4, "{ops} {stderr}");
    let conn = rusqlite::Connection::open(work.path("state/rostersync.db")).unwrap();
    conn.execute(
        "INSERT INTO runs (command, started_at, finished_at, outcome) VALUES ('apply', 'then', 'then', 'interrupted')",
        [],
    )
    .unwrap();
    let apply_run = conn.last_insert_rowid();
    conn.execute(
        "UPDATE ops SET state = 'done', done_run_id = ?1 WHERE id IN
         (SELECT id FROM ops WHERE state = 'pending' ORDER BY id LIMIT 2)",
        [apply_run],
    )
    .unwrap();
    drop(conn);

    // The roster as the platform holds it: nothing to do, the two pending ops withdrawn.
    work.write_roster("roster.csv", &people);
    let (ops, _, stderr) = plan(&work).await;
    let total: u64 = ops
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 0, "{ops} {stderr}");

    // Renamed again: all four updates are sent.
    work.write_roster("roster.csv", &renamed_night);
    let applied = work.run(&["run"]).await;
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let users = sim_users(&running.base_url()).await;
    for i in 1..=4 {
        let key = format!("E{i:04}");
        let user = users
            .iter()
            .find(|u| u["user"]["principal"]["client_external_id"] == key.as_str())
            .unwrap_or_else(|| panic!("{key} not on the platform"));
        assert!(
            user.to_string().contains("Renamed"),
            "{key} not renamed: {user}"
        );
    }
}
