//! End to end for the prancer target (issue 12): the real binary, `[target] kind = "prancer"`,
//! against the prancer simulator on loopback, with real CSV files and a real SQLite ledger.
//! An import invites everyone with their groups; a second night applies exactly its delta;
//! a third sends nothing; bad rows are rejected without loss; a run killed with SIGKILL
//! resumes without a second invitation; a caller without permission is stopped before
//! anything is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use rostersync::targets::prancer::sim::request_log::{Endpoint, LogEntry, Outcome};
use rostersync::targets::prancer::sim::{Faults, RunningSim, Sim, SimOptions, start};

const ADMIN: &str = "prancer-admin-token-for-tests";
const STAFF: &str = "prancer-staff-token-for-tests";
const TOKEN_ENV: &str = "ROSTERSYNC_TEST_PRANCER_TOKEN";
const HEADER: &str = "external_id,first_name,last_name,email,status,groups\n";

async fn sim_with(faults: Faults) -> RunningSim {
    let options = SimOptions {
        admin_token: ADMIN.to_owned(),
        staff_token: STAFF.to_owned(),
        faults,
        seed: Some(3),
        ..SimOptions::default()
    };
    start(Sim::new(options).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A folder with a prancer config (`extra` appended to `[prancer]`) and the token to use.
struct Work {
    dir: tempfile::TempDir,
    token: String,
}

impl Work {
    fn new(base_url: &str, token: &str, extra: &str) -> Work {
        Work::with_api(base_url, token, extra, "")
    }

    /// `api` is appended to `[api]`.
    fn with_api(base_url: &str, token: &str, extra: &str, api: &str) -> Work {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[target]\nkind = \"prancer\"\n\n[prancer]\ntoken_env = \"{TOKEN_ENV}\"\n{extra}\n\n\
             [api]\nbase_url = \"{base_url}\"\nrequests_per_second = 400.0\nmax_in_flight = 8\ntimeout_secs = 10\n{api}\n\n\
             [files]\nroster = \"roster.csv\"\n\n[ledger]\npath = \"state/rostersync.db\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Work {
            dir,
            token: token.to_owned(),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn roster(&self, rows: &[&str]) {
        std::fs::write(
            self.path("roster.csv"),
            format!("{HEADER}{}\n", rows.join("\n")),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
        command
            .args(args)
            .arg("--config")
            .arg(self.path("config.toml"))
            .env(TOKEN_ENV, &self.token)
            .env("ROSTERSYNC_LOG", "info");
        command
    }

    async fn run(&self, args: &[&str]) -> (i32, String) {
        let command = self.command(args);
        let output = tokio::task::spawn_blocking(move || {
            let mut command = command;
            command.output().unwrap()
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    fn summary(&self) -> serde_json::Value {
        let mut dirs: Vec<_> = std::fs::read_dir(self.path("state/runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        let text = std::fs::read_to_string(dirs.last().unwrap().join("summary.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// The people the simulator holds (its own API callers left out): email → (status, groups).
fn people(running: &RunningSim) -> BTreeMap<String, (String, Vec<String>)> {
    running
        .sim
        .users()
        .into_iter()
        .filter(|u| !u.api_caller)
        .map(|u| {
            let mut groups = u.user.user_groups.clone();
            groups.sort();
            (u.user.email.clone(), (u.user.status.clone(), groups))
        })
        .collect()
}

fn changes(log: &[LogEntry]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in log.iter().filter(|e| e.outcome == Outcome::Applied) {
        let name = match entry.endpoint {
            Some(Endpoint::Invite) if entry.body.as_ref().is_some_and(|b| b["resend"] == true) => {
                "resend"
            }
            Some(Endpoint::Invite) => "invite",
            Some(Endpoint::Roles) => "roles",
            Some(Endpoint::Delete) => "delete",
            _ => "other",
        };
        *counts.entry(name.to_owned()).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn groups(names: &[&str]) -> Vec<String> {
    let mut groups: Vec<String> = names.iter().map(|g| (*g).to_owned()).collect();
    groups.sort();
    groups
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_then_a_night_of_every_change_then_a_quiet_night() {
    let running = sim_with(Faults::default()).await;
    let work = Work::new(
        &running.base_url(),
        ADMIN,
        "resend_invitations_after_days = 3",
    );
    work.roster(&[
        "P1,Ana,Lima,ana@example.com,active,Developer;Auditor",
        "P2,Ben,Okafor,Ben.Okafor@Example.com,active,Viewer",
        "P3,Cy,Ng,cy@example.com,active,",
        "P4,Dee,Rossi,dee@example.com,active,Debug Team",
        "P5,Eve,Kim,eve@example.com,inactive,Viewer",
        "P6,Fay,Diaz,not-an-email,active,Viewer",
    ]);

    // Night 1: everyone valid and active invited, with their groups; the bad row rejected.
    let (code, out) = work.run(&["run"]).await;
    assert_eq!(code, 2, "a rejected row makes exit 2\n{out}");
    let after1 = people(&running);
    assert_eq!(after1.len(), 4, "{after1:?}");
    assert_eq!(
        after1["ana@example.com"],
        ("Pending".into(), groups(&["Auditor", "Developer"]))
    );
    assert_eq!(
        after1["ben.okafor@example.com"],
        ("Pending".into(), groups(&["Viewer"]))
    );
    assert_eq!(after1["cy@example.com"], ("Pending".into(), vec![]));
    let summary = work.summary();
    assert_eq!(summary["plan"]["ops"]["create"], 4, "{summary:#}");
    assert_eq!(summary["roster"]["rejected"], 1);
    let log = running.sim.requests(0, 10_000);
    assert_eq!(changes(&log), counts(&[("invite", 4), ("roles", 3)]));
    let rejects = std::fs::read_to_string(
        work.summary()["plan"]["file"]
            .as_str()
            .unwrap()
            .replace("plan.csv", "rejects.csv"),
    )
    .unwrap();
    assert!(rejects.contains("not-an-email"), "{rejects}");

    // Someone accepts; one invitation gets old.
    running.sim.accept("ana@example.com").unwrap();
    let seq = log.last().map_or(0, |e| e.seq);

    // Night 2: a new hire, a group change, a leaver, a stale invitation, an accepted one.
    work.roster(&[
        "P1,Ana,Lima,ana@example.com,active,Developer",
        "P2,Ben,Okafor,ben.okafor@example.com,active,Viewer",
        "P3,Cy,Ng,cy@example.com,active,",
        "P7,Gil,Faro,gil@example.com,active,Auditor",
        "P6,Fay,Diaz,not-an-email,active,Viewer",
    ]);
    // P4 (dee) left; cy's invitation is 5 days old, so is ana's (accepted) and ben's.
    for email in ["cy@example.com", "ben.okafor@example.com"] {
        running.sim.age_invitation(email, 5).unwrap();
    }
    let ledger = work.path("state/rostersync.db");
    age_in_ledger(&ledger, &["P1", "P2", "P3"], 5);
    let (code, out) = work.run(&["run", "--allow-deactivations", "1"]).await;
    assert_eq!(code, 2, "{out}");
    let log = running.sim.requests(seq + 1, 10_000);
    assert_eq!(
        changes(&log),
        counts(&[("invite", 1), ("roles", 2), ("delete", 1), ("resend", 2)]),
        "{:#?}",
        log.iter()
            .map(|e| (&e.method, &e.path, &e.body, e.status))
            .collect::<Vec<_>>()
    );
    let after2 = people(&running);
    assert!(
        !after2.contains_key("dee@example.com"),
        "the leaver is deleted"
    );
    assert_eq!(
        after2["ana@example.com"],
        ("Active".into(), groups(&["Developer"]))
    );
    assert_eq!(
        after2["gil@example.com"],
        ("Pending".into(), groups(&["Auditor"]))
    );
    let summary = work.summary();
    assert_eq!(summary["plan"]["ops"]["remind"], 3, "{summary:#}");
    assert_eq!(summary["apply"]["ops"]["remind"]["done"], 3, "{summary:#}");

    // Night 3: the same roster; nothing to send (the reminders are fresh, ana accepted).
    let seq = running.sim.requests(0, 100_000).last().map_or(0, |e| e.seq);
    let (code, out) = work.run(&["run"]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(work.summary()["plan"]["ops"]["remind"], 0);
    let log = running.sim.requests(seq + 1, 10_000);
    assert!(
        log.iter().all(|e| e.outcome != Outcome::Applied),
        "the quiet night changed something: {:?}",
        log.iter().map(|e| (&e.method, &e.path)).collect::<Vec<_>>()
    );
    // A profile change prancer cannot make is reported, not attempted.
    work.roster(&[
        "P1,Ana,Lima-Moreira,ana@example.com,active,Developer",
        "P2,Ben,Okafor,ben.okafor@example.com,active,Viewer",
        "P3,Cy,Ng,cy@example.com,active,",
        "P7,Gil,Faro,gil@example.com,active,Auditor",
    ]);
    let (code, out) = work.run(&["plan"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cannot be made on this platform"), "{out}");
    assert_eq!(work.summary()["plan"]["unsupported"]["update"]["count"], 1);
    running.stop().await;
}

/// Sets the time the ledger recorded for these keys' invitations `days` back, as if the
/// nights had been that far apart.
fn age_in_ledger(ledger: &std::path::Path, keys: &[&str], days: i64) {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    for key in keys {
        conn.execute(
            "UPDATE users SET created_at = created_at - ?2 WHERE key = ?1",
            rusqlite::params![key, days * 24 * 3600 * 1000],
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_permission_is_stopped_before_anything_is_sent() {
    let running = sim_with(Faults::default()).await;
    let work = Work::new(&running.base_url(), STAFF, "");
    work.roster(&["P1,Ana,Lima,ana@example.com,active,Developer"]);
    let (code, out) = work.run(&["run"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("neither admin nor superuser"), "{out}");
    assert!(!out.contains(STAFF), "the token never shows: {out}");
    assert!(people(&running).is_empty());
    let log = running.sim.requests(0, 1000);
    assert!(log.iter().all(|e| e.outcome != Outcome::Applied));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_import_resumes_without_a_second_invitation() {
    let faults = Faults {
        latency_min_ms: 2,
        latency_max_ms: 8,
        drop_rate: 0.02,
        ..Faults::default()
    };
    let running = sim_with(faults).await;
    // A lost invitation is sent again once the window has passed: 1 s, not the default 30.
    let work = Work::with_api(&running.base_url(), ADMIN, "", "duplicate_window_secs = 1");
    let rows: Vec<String> = (0..600)
        .map(|i| format!("K{i:04},Kim,Test{i},kill{i}@example.com,active,Viewer"))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    work.roster(&rows);
    for kill in [700u64, 1100] {
        let mut child = work
            .command(&["run"])
            .env("ROSTERSYNC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(kill)).await;
        child.kill().unwrap();
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(!status.success(), "the run ended before it was killed");
    }
    // The rest, until it converges (lost answers are retried and resolved).
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (code, _) = work.run(&["run"]).await;
        codes.push(code);
        if code == 0 {
            break;
        }
    }
    assert_eq!(codes.last(), Some(&0), "{codes:?}");
    let people = people(&running);
    assert_eq!(people.len(), 600);
    assert!(people.values().all(|(_, g)| g == &groups(&["Viewer"])));
    let log = running.sim.requests(0, 1_000_000);
    let mut invited: BTreeMap<String, usize> = BTreeMap::new();
    for entry in log
        .iter()
        .filter(|e| e.endpoint == Some(Endpoint::Invite) && e.outcome == Outcome::Applied)
    {
        let email = entry.body.as_ref().unwrap()["email"]
            .as_str()
            .unwrap()
            .to_owned();
        *invited.entry(email).or_default() += 1;
    }
    assert_eq!(invited.len(), 600);
    let twice: Vec<_> = invited.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "invited more than once: {twice:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_of_another_platform_is_refused_before_anything_is_planned() {
    let running = sim_with(Faults::default()).await;
    let work = Work::new(&running.base_url(), ADMIN, "");
    work.roster(&["P1,Ana,Lima,ana@example.com,active,Developer"]);
    // A Praesidium ledger (written by the release before the targets): its accounts are
    // Praesidium UUIDs, which prancer would take for emails to delete.
    std::fs::create_dir_all(work.path("state")).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ledger-0.1-v4/rostersync.db"
        ),
        work.path("state/rostersync.db"),
    )
    .unwrap();
    let (code, out) = work.run(&["run"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("holds the accounts of a praesidium target")
            && out.contains("[target] kind is prancer"),
        "{out}"
    );
    assert!(running.sim.requests(0, 100).is_empty(), "nothing was sent");
    running.stop().await;
}
