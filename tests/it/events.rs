//! Learning events end to end: the real `rostersync events serve` process receiving what the
//! Praesidium simulator publishes (or what a test posts), over loopback, into a real events
//! file; then the real nightly runs re-enrolling expired training, and the completions
//! report.

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use rostersync::targets::praesidium::sim::RunningSim;
use rostersync::targets::praesidium::sim::events::Endpoint;
use serde_json::{Value, json};

use crate::util::{self, Workdir};

const USER: &str = "praesidium-events";
const PASSWORD: &str = "a-long-events-password-Zq9";

/// `[events]` and a yearly policy for courses, re-enrolled 30 days before expiry.
const SETTINGS: &str = "[events]\nusername_env = \"TEST_EVENTS_USER\"\npassword_env = \"TEST_EVENTS_PASSWORD\"\n\n\
                        [[recertify]]\ntype = \"course\"\nperiod = \"365d\"\nlead = \"30d\"\n";

/// A running receiver (the real binary), killed when dropped. Its stderr is read as it
/// comes (a full pipe would stall it) and kept.
struct Receiver {
    child: Child,
    url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Receiver {
    fn spawn(work: &Workdir) -> Receiver {
        let mut command = work.command(&["events", "serve", "--listen", "127.0.0.1:0"]);
        command
            .env("TEST_EVENTS_USER", USER)
            .env("TEST_EVENTS_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let (pipe, kept) = (child.stderr.take().unwrap(), stderr.clone());
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut kept = kept.lock().unwrap();
                    kept.push_str(&line);
                    kept.push('\n');
                }
            });
        }
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the receiver says where it listens");
        let addr = line.strip_prefix("listening on ").expect(&line).to_owned();
        Receiver {
            child,
            url: format!("http://{addr}"),
            stderr,
        }
    }

    fn events_url(&self) -> String {
        format!("{}/events", self.url)
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit status (within a few seconds).
    fn terminate(mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not stop on SIGTERM"
            );
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

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn post(url: &str, body: &str, auth: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn completion(user: &str, content: &str, at: &str) -> String {
    json!({
        "version": "1.0",
        "event_type": "COURSE_COMPLETED",
        "event_timestamp": at,
        "event_context": {"user_uuid": user, "course_uuid": content},
        "event_specific_detail": {"first_name": "A", "last_name": "B"},
    })
    .to_string()
}

/// The platform UUID of the sample roster's `key`.
async fn uuid_of(sim: &RunningSim, key: &str) -> String {
    util::sim_users(&sim.base_url())
        .await
        .into_iter()
        .find(|u| u["user"]["principal"]["client_external_id"] == key)
        .unwrap_or_else(|| panic!("{key} is on the platform"))["user"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Points the simulator's publisher at the receiver.
fn publish_to(sim: &RunningSim, receiver: &Receiver) {
    sim.sim.set_events_endpoint(
        Endpoint::new(Some(&receiver.events_url()), Some(USER), Some(PASSWORD)).unwrap(),
    );
}

/// Waits until the simulator has delivered (or given up on) every event it published.
async fn deliveries_settled(sim: &RunningSim, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log: Vec<Value> = sim
            .sim
            .event_deliveries(0, 10_000)
            .into_iter()
            .map(|d| serde_json::to_value(d).unwrap())
            .collect();
        if log.len() >= expected
            && log
                .iter()
                .all(|d| d["delivered"] == true || d["gave_up"] == true)
        {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries did not settle: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn completions(work: &Workdir, env: &[(&str, &str)]) -> Value {
    let mut command = work.command(&["completions", "--format", "json"]);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = util::run_command(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn line_of<'a>(report: &'a Value, key: &str, sku: &str) -> &'a Value {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == key && l["sku"] == sku)
        .unwrap_or_else(|| panic!("no line for {key} {sku}: {report:#}"))
}

fn events_in_store(work: &Workdir) -> i64 {
    let conn = rusqlite::Connection::open(work.path("state/rostersync-events.db")).unwrap();
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap()
}

/// A nightly run that converged but for the sample roster's deliberately bad rows (exit 2,
/// rejects.csv), with no op failed.
fn ran(out: &util::RunOutput) {
    assert!(out.code == 0 || out.code == 2, "{}", out.stderr);
    assert!(
        out.stdout.contains(" 0 failed, 0 in doubt"),
        "{}",
        out.stdout
    );
}

/// Night 1: the sample roster provisioned.
async fn provisioned() -> (RunningSim, Workdir) {
    let sim = util::sim().await;
    let work = Workdir::with_settings(&sim.base_url(), SETTINGS);
    ran(&work.run(&["run"]).await);
    (sim, work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn published_events_land_matched_and_a_resent_one_is_recorded_once() {
    let (sim, work) = provisioned().await;
    let receiver = Receiver::spawn(&work);
    publish_to(&sim, &receiver);
    let ana = uuid_of(&sim, "E0003").await;
    let at = Utc::now() - chrono::Duration::days(10);
    let course = util::content_uuid("SAFE-201");
    // The same completion published three times (the last in the older camelCase names),
    // and a learning path.
    for camel in [false, false, true] {
        sim.sim.complete(&ana, &course, Some(at), camel).unwrap();
    }
    let e1 = uuid_of(&sim, "E0001").await;
    sim.sim
        .complete(&e1, &util::content_uuid("SAFE-201"), None, false)
        .unwrap();
    let log = deliveries_settled(&sim, 4).await;
    assert!(log.iter().all(|d| d["delivered"] == true), "{log:#?}");
    assert_eq!(events_in_store(&work), 2, "a re-sent event is stored once");
    let health: Value = reqwest::get(format!("{}/health", receiver.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (health["stored"].as_u64(), health["duplicates"].as_u64()),
        (Some(2), Some(2))
    );
    let report = completions(&work, &[]).await;
    let line = line_of(&report, "E0003", "SAFE-201");
    assert_eq!(line["status"], "current");
    assert_eq!(line["completions"], 1);
    assert_eq!(line["email"], "cwalker.3@northwind-camps.example");
    assert_eq!(
        line["completed_at"],
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    );
    assert_eq!(report["counts"]["unmatched"], 0);
    // The people the report is about: assigned a course under the rule, never completed it.
    let missing = |key: &str, sku: &str| {
        report["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["status"] == "not_completed" && l["key"] == key && l["sku"] == sku)
    };
    assert!(
        missing("E0003", "RPT-100") && missing("E0004", "TRANS-130"),
        "{report:#}"
    );
    assert!(!missing("E0003", "SAFE-201"), "completed");
    let since = work.command(&["completions", "--format", "json", "--since", "2000-01-01"]);
    let since: Value = serde_json::from_str(&util::run_command(since).await.stdout).unwrap();
    assert_eq!(
        since["counts"]["not_completed"], 0,
        "a report from a date lists what happened"
    );
    assert_eq!(since["counts"]["completions"], 2);
    let status = receiver.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the receiver cleanly: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_credentials_get_401_malformed_events_400_and_an_unknown_learner_is_reported() {
    let (_sim, work) = provisioned().await;
    let receiver = Receiver::spawn(&work);
    let url = receiver.events_url();
    let good = completion(
        "0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10",
        &util::content_uuid("SAFE-101"),
        "2026-01-05 10:00:00",
    );
    for auth in [
        basic(USER, "wrong"),
        basic("someone", PASSWORD),
        "Bearer x".to_owned(),
        String::new(),
    ] {
        assert_eq!(post(&url, &good, &auth).await.0, 401, "{auth}");
    }
    let auth = basic(USER, PASSWORD);
    for (body, why) in [
        ("{", "not JSON"),
        ("[]", "expected one JSON object"),
        (
            r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"05/01/2026","event_context":{}}"#,
            "event_timestamp",
        ),
        (
            r#"{"version":"1.0","event_timestamp":"2026-01-05 10:00:00","event_context":{}}"#,
            "event_type is missing",
        ),
    ] {
        let (status, answer) = post(&url, body, &auth).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    let huge = format!(
        "{{\"version\":\"1.0\",\"pad\":\"{}\"}}",
        "x".repeat(100_000)
    );
    assert_eq!(post(&url, &huge, &auth).await.0, 413);
    assert_eq!(events_in_store(&work), 0, "nothing refused was stored");
    // Valid, but for nobody this ledger knows, and for no catalog item: kept and reported.
    let (status, answer) = post(&url, &good, &auth).await;
    assert_eq!(status, 200);
    assert_eq!(answer["matched"], false);
    let nowhere = completion(
        &uuid_of(&_sim, "E0004").await,
        "11111111-2222-4333-8444-555555555555",
        "2026-01-05 10:00:00",
    );
    assert_eq!(post(&url, &nowhere, &auth).await.0, 200);
    let report = completions(&work, &[]).await;
    assert_eq!(report["counts"]["unmatched"], 2, "{report:#}");
    let log = receiver.log();
    assert!(log.contains("missing or wrong credentials (401"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    let notes: Vec<&str> = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["note"].as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no learner in the ledger has UUID 0b7e7e43")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("11111111-2222-4333-8444-555555555555 is not in the catalog")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledged_event_survives_sigkill() {
    let (_sim, work) = provisioned().await;
    let receiver = Receiver::spawn(&work);
    let url = receiver.events_url();
    let auth = basic(USER, PASSWORD);
    let content = util::content_uuid("SAFE-101");
    // 600 distinct events sent 24 at a time; the receiver is killed with SIGKILL as soon as
    // the 150th is acknowledged, others still in flight.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let mut killed_tx = Some(killed_tx);
    let client = reqwest::Client::new();
    let sent = futures_util::stream::iter(0..600u32).map(|n| {
        let (client, url, auth, acknowledged) = (
            client.clone(),
            url.clone(),
            auth.clone(),
            acknowledged.clone(),
        );
        let at = format!(
            "2026-01-01 {:02}:{:02}:{:02}",
            n / 3600,
            (n / 60) % 60,
            n % 60
        );
        let body = completion("0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10", &content, &at);
        async move {
            let answer = client
                .post(&url)
                .header("authorization", &auth)
                .body(body)
                .send()
                .await;
            if answer.is_ok_and(|r| r.status() == 200) {
                let mut acknowledged = acknowledged.lock().unwrap();
                acknowledged.push(at);
                acknowledged.len()
            } else {
                0
            }
        }
    });
    use futures_util::StreamExt;
    let mut sent = sent.buffer_unordered(24);
    let mut receiver = Some(receiver);
    while let Some(count) = sent.next().await {
        if count >= 150 && receiver.is_some() {
            let mut child = receiver.take().unwrap();
            child.child.kill().unwrap();
            child.child.wait().unwrap();
            if let Some(tx) = killed_tx.take() {
                let _ = tx.send(());
            }
        }
    }
    assert!(
        killed_rx.await.is_ok(),
        "the receiver was killed mid-stream"
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 150 && acknowledged.len() < 600,
        "{}",
        acknowledged.len()
    );
    // Restarted, it opens the same file: everything acknowledged is there.
    let restarted = Receiver::spawn(&work);
    let conn = rusqlite::Connection::open(work.path("state/rostersync-events.db")).unwrap();
    let mut missing = Vec::new();
    for at in &acknowledged {
        let found: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE json_extract(body, '$.event_timestamp') = ?1",
                [at],
                |r| r.get(0),
            )
            .unwrap();
        if found != 1 {
            missing.push(at.clone());
        }
    }
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // And it still receives.
    let (status, _) = post(
        &restarted.events_url(),
        &completion(
            "0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10",
            &content,
            "2026-02-01 00:00:00",
        ),
        &auth,
    )
    .await;
    assert_eq!(status, 200);
}

/// The count of one op kind in the last run's plan.
fn planned(work: &Workdir, kind: &str) -> u64 {
    work.last_summary()["plan"]["ops"][kind].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_completion_is_re_enrolled_exactly_once() {
    let (sim, work) = provisioned().await;
    let receiver = Receiver::spawn(&work);
    publish_to(&sim, &receiver);
    let (ana, sven) = (uuid_of(&sim, "E0003").await, uuid_of(&sim, "E0004").await);
    let safe = util::content_uuid("SAFE-201");
    let trans = util::content_uuid("TRANS-130");
    // Ana completed 400 days ago: expired. Sven completed today: current.
    sim.sim
        .complete(
            &ana,
            &safe,
            Some(Utc::now() - chrono::Duration::days(400)),
            false,
        )
        .unwrap();
    sim.sim.complete(&sven, &trans, None, false).unwrap();
    deliveries_settled(&sim, 2).await;
    let report = completions(&work, &[]).await;
    assert_eq!(line_of(&report, "E0003", "SAFE-201")["status"], "overdue");
    assert_eq!(line_of(&report, "E0004", "TRANS-130")["status"], "current");

    // Night 2: exactly one reEnrollContent, Ana's, for that course; plan.csv says why.
    let since = util::last_seq(&sim.base_url()).await;
    ran(&work.run(&["run"]).await);
    assert_eq!(planned(&work, "reenroll"), 1);
    let sent = util::requests_since(&sim.base_url(), since).await;
    let reenrolls: Vec<&Value> = sent
        .iter()
        .filter(|e| e["endpoint"] == "re_enroll_content")
        .collect();
    assert_eq!(reenrolls.len(), 1, "{sent:#?}");
    assert!(reenrolls[0]["path"].as_str().unwrap().contains(&ana));
    let plan = std::fs::read_to_string(work.last_run_dir().join("plan.csv")).unwrap();
    assert!(
        plan.contains("E0003") && plan.contains("re-enrols"),
        "{plan}"
    );
    let enrollment = &util::sim_users(&sim.base_url())
        .await
        .into_iter()
        .find(|u| u["user"]["uuid"] == ana.as_str())
        .unwrap()["content"][&safe];
    assert!(
        enrollment["completed_at"].is_null(),
        "re-enrolled: {enrollment}"
    );

    // Night 3: nothing more for that expiry.
    ran(&work.run(&["run"]).await);
    assert_eq!(planned(&work, "reenroll"), 0);

    // A year on (the policy clock), Sven's completion is due in its turn, and only his.
    let year_on = (Utc::now() + chrono::Duration::days(340)).to_rfc3339();
    let mut command = work.command(&["run"]);
    command.env("ROSTERSYNC_NOW", &year_on);
    let out = util::run_command(command).await;
    ran(&out);
    assert!(
        out.stderr.contains("ROSTERSYNC_NOW is set"),
        "{}",
        out.stderr
    );
    assert_eq!(planned(&work, "reenroll"), 1);
    let report = completions(&work, &[("ROSTERSYNC_NOW", &year_on)]).await;
    assert_eq!(line_of(&report, "E0004", "TRANS-130")["status"], "due_soon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nightly_run_and_the_receiver_work_on_one_ledger_at_once() {
    let sim = util::sim().await;
    let work = Workdir::with_settings(&sim.base_url(), SETTINGS);
    // A bigger roster, so that the run is under way while events arrive.
    let mut rows = Vec::new();
    for n in 0..3000 {
        rows.push(util::row(
            &format!("B{n:05}"),
            "Bo",
            "Brandt",
            &format!("b{n}@northwind-camps.example"),
            "Head Office",
            "SAFE-101",
        ));
    }
    work.write_roster("roster.csv", &rows);
    let receiver = Receiver::spawn(&work);
    let url = receiver.events_url();
    let auth = basic(USER, PASSWORD);
    let content = util::content_uuid("SAFE-101");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poster = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let at = format!(
                    "2026-03-01 {:02}:{:02}:{:02}",
                    n / 3600,
                    (n / 60) % 60,
                    n % 60
                );
                let (status, _) = post(
                    &url,
                    &completion("0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10", &content, &at),
                    &auth,
                )
                .await;
                answers.push(status);
                n += 1;
            }
            answers
        })
    };
    let out = work.run(&["run"]).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = poster.await.unwrap();
    assert_eq!(
        out.code, 0,
        "the run is not held up by the receiver: {}",
        out.stderr
    );
    assert!(
        answers.len() > 20,
        "events kept arriving during the run: {}",
        answers.len()
    );
    assert!(
        answers.iter().all(|status| *status == 200),
        "every event stored during the run: {answers:?}"
    );
    assert_eq!(events_in_store(&work), answers.len() as i64);
    assert_eq!(util::sim_users(&sim.base_url()).await.len(), 3000);
}

/// Before the first event is received there is no events file: the report is still a
/// report (a JSON object with no lines; a CSV header), not an empty output a script cannot
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_report_before_any_event_is_empty_but_well_formed() {
    let work = Workdir::with_settings("http://127.0.0.1:9", SETTINGS);
    assert!(!work.path("state/rostersync-events.db").exists());
    let report = completions(&work, &[]).await;
    assert_eq!(report["lines"], json!([]), "{report:#}");
    assert_eq!(report["counts"]["completions"], 0, "{report:#}");
    let mut command = work.command(&["completions"]);
    command.env_remove("ROSTERSYNC_NOW");
    let out = util::run_command(command).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("status,key,email,"),
        "a CSV header: {:?}",
        out.stdout
    );
    assert!(
        out.stderr.contains("no learning event received yet"),
        "{}",
        out.stderr
    );
}

/// Idle connections (a port scanner, a client that never sends) do not crowd out the
/// publisher: with more held open than the receiver once served at all, an event is still
/// answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_do_not_keep_the_publisher_out() {
    let (_sim, work) = provisioned().await;
    let receiver = Receiver::spawn(&work);
    let addr = receiver.url.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..600 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .post(receiver.events_url())
        .header("authorization", basic(USER, PASSWORD))
        .body(completion(
            "0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10",
            &util::content_uuid("SAFE-101"),
            "2026-01-05 10:00:00",
        ))
        .send()
        .await
        .expect("answered while 600 idle connections are held open");
    assert_eq!(answer.status(), 200);
    drop(idle);
}
