//! Safe to leave alone (issue 9): a night run that nobody watches must end by itself, in a
//! clear state, whatever the server, the config or a signal does. The real binary against
//! hostile servers written here and the simulator; every run is waited for with a bound, and
//! a run that outlives it fails the test (it is killed, never left behind).

use crate::util;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rostersync::targets::praesidium::model::{LOGIN_PATH, USER_PATH};
use rostersync::targets::praesidium::sim::Faults;
use serde_json::{Value, json};
use util::hostile::{Hostile, assert_nothing_leaked};
use util::*;

/// A child process of the binary whose output is read while it runs.
struct Spawned {
    child: Child,
    started: Instant,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

/// How a spawned run ended.
struct Ended {
    code: Option<i32>,
    took: Duration,
    output: String,
}

fn spawn(work: &Workdir, args: &[&str]) -> Spawned {
    let mut child = work
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    Spawned {
        child,
        started: Instant::now(),
        stdout,
        stderr,
    }
}

impl Spawned {
    fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the run to end by itself within `limit`; kills it and fails otherwise.
    async fn ended_within(mut self, limit: Duration) -> Ended {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let took = self.started.elapsed();
        let output = format!(
            "{}{}",
            self.stdout.join().unwrap(),
            self.stderr.join().unwrap()
        );
        let Some(status) = status else {
            panic!("the run did not end by itself within {limit:?}:\n{output}");
        };
        Ended {
            code: status.code(),
            took,
            output,
        }
    }
}

/// Runs the binary and waits for it within `limit`.
async fn run_within(work: &Workdir, args: &[&str], limit: Duration) -> Ended {
    spawn(work, args).ended_within(limit).await
}

/// Ops of the ledger by state.
fn op_states(work: &Workdir) -> std::collections::BTreeMap<String, i64> {
    let ledger = rusqlite::Connection::open(work.path("state/rostersync.db")).unwrap();
    let mut statement = ledger
        .prepare("SELECT state, count(*) FROM ops GROUP BY state")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn roster_of(work: &Workdir, n: usize) {
    let rows: Vec<Vec<String>> = (0..n)
        .map(|i| {
            row(
                &format!("U{i:03}"),
                "Una",
                &format!("Attended{i}"),
                &format!("una{i}@example.com"),
                "Lakeside Camp",
                "",
            )
        })
        .collect();
    work.write_roster("roster.csv", &rows);
}

/// An API whose login works and whose creates are taken and never answered.
async fn silent_api() -> Hostile {
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|| async {
                tokio::time::sleep(Duration::from_secs(120)).await;
                StatusCode::CREATED
            }),
        );
    Hostile::serve(app).await
}

/// Waits (at most 20 s) until `server` has received `n` requests to `path`.
async fn wait_for_requests(server: &Hostile, path: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.requests_to(path).len() < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} requests to {path} were sent"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A token a hostile server issues: searched for in everything the run wrote.
const TOKEN: &str = "tok-hostile-3f9a1c";

/// A login answer as the API gives it.
fn token(expires_in: u64) -> Response {
    Json(json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": expires_in}))
        .into_response()
}

/// A create's answer as the API gives it: the body with a new UUID.
fn created(body: &Value) -> Response {
    let mut user = body.clone();
    user["uuid"] = json!(uuid::Uuid::new_v4().to_string());
    (StatusCode::CREATED, Json(user)).into_response()
}

/// Counts requests to one route.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// This request's number, from 0.
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn everything(work: &Workdir, ended: &Ended) {
    assert_nothing_leaked(
        &[work.dir.path()],
        &[&ended.output],
        &[CLIENT_SECRET, TOKEN],
    );
}

/// Item 7: a create whose answer is always lost was sent again every window, forever. It is
/// sent a bounded number of times, then left in doubt and reported; the run exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_always_lost_is_left_in_doubt_and_the_run_ends() {
    let creates = Counter::default();
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|State(creates): State<Counter>| async move {
                creates.next();
                // Processed, perhaps, but never answered in time.
                tokio::time::sleep(Duration::from_secs(60)).await;
                StatusCode::CREATED
            }),
        )
        .with_state(creates.clone());
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[
        ("timeout_secs", "1"),
        ("duplicate_window_secs", "1"),
        ("max_attempts", "3"),
    ]);
    roster_of(&work, 2);
    let ended = run_within(&work, &["run"], Duration::from_secs(60)).await;
    assert_eq!(ended.code, Some(2), "{}", ended.output);
    assert!(creates.get() <= 2 * 3, "{} creates sent", creates.get());
    let errors = work.last_report("errors.csv");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| &e[1] == "create" && &e[2] == "in_doubt")
    );
    assert_eq!(op_states(&work).get("in_doubt"), Some(&2));
    everything(&work, &ended);
}

/// Item 8: with several workers, a 401 whose re-login is refused left the other workers
/// waiting forever for the user the failed worker held. The run exits 1 promptly; nothing is
/// left `sending`, and the ops not sent stay pending for a run with good credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_re_login_with_several_workers_exits_1_promptly_and_consistently() {
    let logins = Counter::default();
    let app = axum::Router::new()
        .route(
            LOGIN_PATH,
            post(|State(logins): State<Counter>| async move {
                if logins.next() == 0 {
                    token(900)
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"error": "invalid_client", "error_description": "client disabled"})),
                    )
                        .into_response()
                }
            }),
        )
        .route(
            USER_PATH,
            post(|| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"status": 401, "code": "UNAUTHORIZED", "message": "token revoked", "technicalMessage": ""})),
                )
            }),
        )
        .with_state(logins.clone());
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[("max_in_flight", "4")]);
    roster_of(&work, 12);
    let ended = run_within(&work, &["run"], Duration::from_secs(30)).await;
    assert_eq!(ended.code, Some(1), "{}", ended.output);
    assert!(
        ended.took < Duration::from_secs(10),
        "took {:?}",
        ended.took
    );
    assert!(
        ended.output.contains("refused the credentials"),
        "{}",
        ended.output
    );
    let states = op_states(&work);
    assert_eq!(states.get("sending"), None, "{states:?}");
    assert_eq!(states.get("pending"), Some(&12), "{states:?}");
    assert_eq!(work.last_summary()["outcome"], "failed");
    everything(&work, &ended);
}

/// Item 9: one 5xx, 429 or refused connection on the first login, or on a renewal mid-run,
/// ended the night with exit 1 after the plan was stored. The login is retried like any
/// request; only a refusal of the credentials is fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_is_retried_like_any_request_first_and_mid_run() {
    let logins = Counter::default();
    let app = axum::Router::new()
        .route(
            LOGIN_PATH,
            post(|State(logins): State<Counter>| async move {
                match logins.next() {
                    0 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    1 => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
                    2 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response(),
                    // Renewed after 80% of 3 s, mid-run...
                    3 => token(3),
                    // ...where the renewal meets a 503 first.
                    4 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    _ => token(900),
                }
            }),
        )
        .route(
            USER_PATH,
            post(|Json(body): Json<Value>| async move { created(&body) }),
        )
        .with_state(logins.clone());
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[("requests_per_second", "2.0"), ("max_in_flight", "2")]);
    roster_of(&work, 8);
    let ended = run_within(&work, &["run"], Duration::from_secs(60)).await;
    assert_eq!(ended.code, Some(0), "{}", ended.output);
    assert_eq!(logins.get(), 6, "{}", ended.output);
    assert_eq!(op_states(&work).get("done"), Some(&8));
    everything(&work, &ended);
}

/// Item 9: a login whose connection is refused (the API is restarting) is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_on_the_first_login_is_tried_again() {
    // A port nothing listens on yet; the server comes up on it a moment after the run starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let work = Workdir::new(&format!("http://127.0.0.1:{port}"));
    work.set_api(&[("max_attempts", "10")]);
    roster_of(&work, 3);
    let running = spawn(&work, &["run"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|Json(body): Json<Value>| async move { created(&body) }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let ended = running.ended_within(Duration::from_secs(120)).await;
    server.abort();
    assert_eq!(ended.code, Some(0), "{}", ended.output);
    assert_eq!(op_states(&work).get("done"), Some(&3));
}

/// Item 10: SIGTERM and SIGHUP killed the run at once with ops left `sending`, and Ctrl-C was
/// ignored while a 429 paused the workers. Each of the three stops a run paused by a 429
/// within seconds: exit 2, nothing `sending`, the rest pending; the next run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sighup_and_sigint_stop_a_run_paused_by_429s_within_seconds() {
    for signal in ["TERM", "HUP", "INT"] {
        // One request every 20 s: the login takes the only token, the first create is
        // answered 429 with a Retry-After of about 20 s.
        let faults = Faults {
            rate_limit: 0.05,
            burst: Some(1),
            ..Faults::default()
        };
        let sim = sim_with(faults, &[]).await;
        let work = Workdir::new(&sim.base_url());
        roster_of(&work, 5);
        let running = spawn(&work, &["run"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !requests_since(&sim.base_url(), 0)
            .await
            .iter()
            .any(|e| e["outcome"] == "rate_limited")
        {
            assert!(Instant::now() < deadline, "no 429 was answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let signalled = Instant::now();
        running.signal(signal);
        let ended = running.ended_within(Duration::from_secs(30)).await;
        assert_eq!(ended.code, Some(2), "SIG{signal}: {}", ended.output);
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "SIG{signal} took {:?} to stop the run",
            signalled.elapsed()
        );
        let states = op_states(&work);
        assert_eq!(states.get("sending"), None, "SIG{signal}: {states:?}");
        assert_eq!(states.get("pending"), Some(&5), "SIG{signal}: {states:?}");
        let summary = work.last_summary();
        assert_eq!(summary["outcome"], "stopped");
        assert_eq!(
            summary["apply"]["stopped_by_signal"],
            format!("SIG{signal}")
        );
        assert_eq!(summary["apply"]["left_pending"], 5);
        // The limiter off, the next run finishes what was left.
        sim.sim.set_faults(Faults::default());
        let next = run_within(&work, &["run"], Duration::from_secs(30)).await;
        assert_eq!(next.code, Some(0), "{}", next.output);
        assert_eq!(sim_users(&sim.base_url()).await.len(), 5);
    }
}

/// Item 10: requests in flight get a grace to finish after a stop; a second signal, or the
/// end of the grace, abandons them: their ops are set in doubt (the next run resolves them)
/// and the run exits 2 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_abandons_requests_in_flight_and_leaves_them_in_doubt() {
    let server = silent_api().await;
    for signals in [2, 1] {
        let work = Workdir::new(&server.base_url());
        work.set_api(&[("timeout_secs", "300"), ("max_in_flight", "2")]);
        roster_of(&work, 4);
        let before = server.requests_to(USER_PATH).len();
        let running = spawn(&work, &["run"]);
        wait_for_requests(&server, USER_PATH, before + 2).await;
        let signalled = Instant::now();
        running.signal("TERM");
        if signals == 2 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            running.signal("TERM");
        }
        let ended = running.ended_within(Duration::from_secs(40)).await;
        let took = signalled.elapsed();
        assert_eq!(ended.code, Some(2), "{}", ended.output);
        if signals == 2 {
            assert!(took < Duration::from_secs(3), "took {took:?}");
        } else {
            // The grace: at most 10 s for requests in flight, then they are abandoned.
            assert!(
                took >= Duration::from_secs(9) && took < Duration::from_secs(14),
                "took {took:?}"
            );
        }
        let states = op_states(&work);
        assert_eq!(states.get("sending"), None, "{states:?}");
        assert_eq!(states.get("in_doubt"), Some(&2), "{states:?}");
        assert_eq!(states.get("pending"), Some(&2), "{states:?}");
        assert_eq!(work.last_summary()["apply"]["abandoned_in_flight"], 2);
        let errors = work.last_report("errors.csv");
        assert_eq!(errors.len(), 2, "{errors:?}");
        everything(&work, &ended);
    }
}

/// Items 11 and 15: numbers that panicked the run (exit 101) or ate the machine are refused
/// with their bounds before anything is stored or sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_numbers_in_the_config_are_refused_with_their_bounds() {
    let sim = sim().await;
    for (key, value) in [
        ("requests_per_second", "1e-300"),
        ("duplicate_window_secs", "9223372036854775807"),
        ("max_in_flight", "1000000"),
        ("timeout_secs", "9223372036854775807"),
    ] {
        let work = Workdir::new(&sim.base_url());
        work.set_api(&[(key, value)]);
        roster_of(&work, 2);
        let ended = run_within(&work, &["run"], Duration::from_secs(30)).await;
        assert_eq!(ended.code, Some(1), "{key} = {value}: {}", ended.output);
        assert!(
            ended.output.contains(key) && ended.output.contains("expected a value from"),
            "{key} = {value}: {}",
            ended.output
        );
        assert!(!work.path("state/rostersync.db").exists());
    }
    assert!(sim_users(&sim.base_url()).await.is_empty());
}

/// A night with the API down: every request a 503. Each op used to spend all its retries, one
/// after the other, for hours on a big roster; the run gives up after a few ops in a row have
/// failed for it, with the rest pending, and exits 2 in seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_with_the_api_down_gives_up_after_a_few_failed_ops_and_keeps_the_rest_pending() {
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
        );
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[("max_attempts", "2"), ("max_in_flight", "2")]);
    roster_of(&work, 60);
    let ended = run_within(&work, &["run"], Duration::from_secs(60)).await;
    assert_eq!(ended.code, Some(2), "{}", ended.output);
    assert!(ended.output.contains("gave up"), "{}", ended.output);
    let states = op_states(&work);
    let failed = states.get("failed").copied().unwrap_or(0);
    assert!((10..=12).contains(&failed), "{states:?}");
    assert_eq!(
        states.get("pending").copied().unwrap_or(0) + failed,
        60,
        "{states:?}"
    );
    assert!(server.requests_to(USER_PATH).len() <= 2 * 12);
}

/// A server that takes every request and never answers (a load balancer holding connections
/// to a dead backend): each op used to spend all its sends and timeouts, hours on a big night.
/// After a few requests in a row without an answer the run gives up, exit 2, the rest pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_given_up_on_after_a_few_requests() {
    let server = silent_api().await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[
        ("timeout_secs", "1"),
        ("max_attempts", "2"),
        ("max_in_flight", "2"),
        ("duplicate_window_secs", "0"),
    ]);
    roster_of(&work, 60);
    let ended = run_within(&work, &["run"], Duration::from_secs(60)).await;
    assert_eq!(ended.code, Some(2), "{}", ended.output);
    assert!(ended.output.contains("got no answer"), "{}", ended.output);
    assert!(
        ended.took < Duration::from_secs(20),
        "took {:?}",
        ended.took
    );
    let states = op_states(&work);
    assert_eq!(states.get("sending"), None, "{states:?}");
    assert!(
        states.get("pending").copied().unwrap_or(0) >= 40,
        "{states:?}"
    );
    everything(&work, &ended);
}

/// A signal while the first login waits for an answer: the login changes nothing, so it is
/// dropped and the run ends at once instead of after the login's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_the_first_login_ends_the_run_at_once() {
    let app = axum::Router::new().route(
        LOGIN_PATH,
        post(|| async {
            tokio::time::sleep(Duration::from_secs(120)).await;
            token(900)
        }),
    );
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[("timeout_secs", "60")]);
    roster_of(&work, 3);
    let running = spawn(&work, &["run"]);
    wait_for_requests(&server, LOGIN_PATH, 1).await;
    let signalled = Instant::now();
    running.signal("TERM");
    let ended = running.ended_within(Duration::from_secs(30)).await;
    assert_eq!(ended.code, Some(2), "{}", ended.output);
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(op_states(&work).get("pending"), Some(&3));
}

/// One platform account answered for two people: recording it for both would make a later
/// deactivation of one deactivate the other. The second answer is refused, its op failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_account_answered_for_two_people_is_recorded_for_one_only() {
    const SAME: &str = "11111111-2222-4333-8444-555555555555";
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|Json(body): Json<Value>| async move {
                let mut user = body.clone();
                user["uuid"] = json!(SAME);
                (StatusCode::CREATED, Json(user)).into_response()
            }),
        );
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[("max_in_flight", "3")]);
    roster_of(&work, 3);
    let ended = run_within(&work, &["run"], Duration::from_secs(30)).await;
    assert_eq!(ended.code, Some(2), "{}", ended.output);
    let states = op_states(&work);
    assert_eq!(states.get("done"), Some(&1), "{states:?}");
    assert_eq!(states.get("failed"), Some(&2), "{states:?}");
    let errors = work.last_report("errors.csv");
    assert!(
        errors
            .iter()
            .all(|e| e[4].contains("holds for external_id")),
        "{errors:?}"
    );
    let ledger = rusqlite::Connection::open(work.path("state/rostersync.db")).unwrap();
    let holders: i64 = ledger
        .query_row("SELECT count(*) FROM users WHERE uuid = ?1", [SAME], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(holders, 1);
}

/// A server that answers one request in nine and leaves the rest unanswered: an answer now and
/// then used to start the count of lost answers again, so every op spent all its sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_now_and_then_is_given_up_on_too() {
    let requests = Counter::default();
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|State(requests): State<Counter>| async move {
                if requests.next() % 9 == 8 {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"status": 400, "code": "BAD", "message": "no", "technicalMessage": ""})),
                    )
                        .into_response();
                }
                tokio::time::sleep(Duration::from_secs(120)).await;
                StatusCode::CREATED.into_response()
            }),
        )
        .with_state(requests.clone());
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[
        ("timeout_secs", "1"),
        ("max_attempts", "2"),
        ("max_in_flight", "4"),
        ("duplicate_window_secs", "0"),
    ]);
    roster_of(&work, 60);
    let ended = run_within(&work, &["run"], Duration::from_secs(60)).await;
    assert_eq!(ended.code, Some(2), "{}", ended.output);
    assert!(ended.output.contains("got no answer"), "{}", ended.output);
    assert!(requests.get() < 30, "{} requests", requests.get());
    assert_eq!(op_states(&work).get("sending"), None);
}

/// `status` after a run was killed: the run shows as interrupted and its ops left `sending`
/// as in doubt, and `status` needs no client secret (it sends nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_killed_run_as_interrupted_and_needs_no_secret() {
    let server = silent_api().await;
    let work = Workdir::new(&server.base_url());
    roster_of(&work, 2);
    let running = spawn(&work, &["run"]);
    wait_for_requests(&server, USER_PATH, 1).await;
    running.signal("KILL");
    running.ended_within(Duration::from_secs(10)).await;
    let mut command = work.command(&["status"]);
    command.env_remove(SECRET_ENV);
    let out = run_command(command).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("interrupted"), "{}", out.stdout);
    assert!(
        out.stdout.contains("in_doubt (interrupted while sending)"),
        "{}",
        out.stdout
    );
}

/// An API error that echoes the bearer token as MIME base64 (broken into 76-character lines,
/// wherever the token falls) is not kept: no fixed form matches it, a decoded view does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_echoing_the_token_as_mime_base64_is_not_kept() {
    use base64::Engine as _;
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|headers: axum::http::HeaderMap| async move {
                let auth = headers["authorization"].to_str().unwrap().to_owned();
                let echoed = base64::engine::general_purpose::STANDARD
                    .encode(format!("you sent x-y: {auth}; again {auth}"));
                let mime: Vec<String> = echoed
                    .as_bytes()
                    .chunks(76)
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect();
                (StatusCode::BAD_REQUEST, mime.join("\r\n"))
            }),
        );
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    roster_of(&work, 2);
    let ended = run_within(&work, &["run"], Duration::from_secs(30)).await;
    assert_eq!(ended.code, Some(2), "{}", ended.output);
    let errors = work.last_report("errors.csv");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e[4].contains("[redacted")),
        "{errors:?}"
    );
    everything(&work, &ended);
}

/// Issue 10: after a run where creates failed, `apply` printed "0 done, 0 failed" and exited
/// 0, as if the plan had converged. It exits 2 while ops of the current plan are failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_after_a_run_with_failures_still_exits_2() {
    let app = axum::Router::new()
        .route(LOGIN_PATH, post(|| async { token(900) }))
        .route(
            USER_PATH,
            post(|Json(body): Json<Value>| async move {
                if body["principal"]["client_external_id"] == "U000" {
                    return created(&body);
                }
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"status": 400, "code": "INVALID", "message": "refused", "technicalMessage": ""})),
                )
                    .into_response()
            }),
        );
    let server = Hostile::serve(app).await;
    let work = Workdir::new(&server.base_url());
    roster_of(&work, 3);
    let first = run_within(&work, &["run"], Duration::from_secs(30)).await;
    assert_eq!(first.code, Some(2), "{}", first.output);
    let again = run_within(&work, &["apply"], Duration::from_secs(30)).await;
    assert_eq!(again.code, Some(2), "{}", again.output);
    assert!(
        again
            .output
            .contains("2 ops of the current plan are failed"),
        "{}",
        again.output
    );
}

/// Issue 10: cron mails were full of ANSI colour codes, because logs were coloured even when
/// stderr is a file. No colour unless stderr is a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let server = silent_api().await;
    let work = Workdir::new(&server.base_url());
    work.set_api(&[("timeout_secs", "1"), ("max_attempts", "1")]);
    roster_of(&work, 1);
    let ended = run_within(&work, &["run"], Duration::from_secs(30)).await;
    assert!(ended.output.contains("WARN"), "{}", ended.output);
    assert!(!ended.output.contains('\u{1b}'), "{:?}", ended.output);
}

/// Issue 10: commands that send nothing (plan, run --dry-run, status) demanded the client
/// secret. They work without it; `run` and `apply`, which send, still refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_send_nothing_need_no_secret() {
    let server = silent_api().await;
    let work = Workdir::new(&server.base_url());
    roster_of(&work, 2);
    for args in [&["plan"][..], &["run", "--dry-run"], &["status"]] {
        let mut command = work.command(args);
        command.env_remove(SECRET_ENV);
        let out = run_command(command).await;
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    }
    let mut command = work.command(&["apply"]);
    command.env_remove(SECRET_ENV);
    let out = run_command(command).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(SECRET_ENV), "{}", out.stderr);
    assert!(server.requests().is_empty(), "nothing was sent");
}

/// An API that answers 429 to every create, with a Retry-After of an hour, none, 0 or a date
/// in the past: a signal stops the run within seconds whether it is paused or paced down, and
/// the closing line advised a `requests_per_second` "that would avoid them" from the rate the
/// pacing had cut itself to, when the API had accepted nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_refusing_everything_is_stopped_at_once_and_no_rate_is_advised() {
    for retry_after in [
        Some("3600"),
        None,
        Some("0"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT"),
    ] {
        let app = axum::Router::new()
            .route(LOGIN_PATH, post(|| async { token(900) }))
            .route(
                USER_PATH,
                post(move || async move {
                    match retry_after {
                        Some(wait) => {
                            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", wait)]).into_response()
                        }
                        None => StatusCode::TOO_MANY_REQUESTS.into_response(),
                    }
                }),
            );
        let server = Hostile::serve(app).await;
        let work = Workdir::new(&server.base_url());
        work.set_api(&[("requests_per_second", "40.0"), ("max_in_flight", "8")]);
        roster_of(&work, 20);
        let running = spawn(&work, &["run"]);
        wait_for_requests(&server, USER_PATH, 1).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let signalled = Instant::now();
        running.signal("INT");
        let ended = running.ended_within(Duration::from_secs(30)).await;
        let label = format!("Retry-After {retry_after:?}");
        assert_eq!(ended.code, Some(2), "{label}: {}", ended.output);
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "{label}: SIGINT took {:?}",
            signalled.elapsed()
        );
        assert_eq!(op_states(&work).get("pending"), Some(&20), "{label}");
        let pacing = work.last_summary()["apply"]["pacing"].clone();
        assert!(
            pacing["slowdowns"].as_u64().unwrap() > 0,
            "{label}: {pacing}"
        );
        assert_eq!(pacing["settled_rate"], 0.0, "{label}: {pacing}");
        assert!(
            !ended.output.contains("would avoid them")
                && ended
                    .output
                    .contains("no requests_per_second can be advised"),
            "{label}: {}",
            ended.output
        );
    }
}

/// `rostersync run | head -1`: standard output closed while the run still prints. The run
/// goes on and ends as it would (rejected sample rows: exit 2), its reports written; it once
/// panicked (exit 101) on the first line nobody read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_standard_output_does_not_stop_the_run() {
    let running = sim().await;
    let work = Workdir::new(&running.base_url());
    let mut child = work
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The reading end closed before anything is read.
    drop(child.stdout.take());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(2), "{status:?}");
    assert_eq!(work.last_summary()["apply"]["ops"]["create"]["done"], 200);
    running.stop().await;
}
