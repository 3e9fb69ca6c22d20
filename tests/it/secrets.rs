//! Issue 9, the network part: nothing leaves but to the configured host, nothing secret is
//! kept or printed, no answer is relied on unchecked. The real binary against hostile servers
//! on loopback (tests/it/util/hostile.rs) and a recording proxy; after every hostile case,
//! everything the run wrote and printed is scanned for the secret and the tokens issued.

use crate::util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::hostile::{Hostile, assert_nothing_leaked};
use util::*;

const LOGIN: &str = "/portal/authenticate/login_api";
const USERS: &str = "/portal/lms_api/v2/user";

/// A TCP listener on loopback that records whatever connects to it (as a proxy would see it)
/// and answers 502, so a client that does use it gets an answer at once.
struct RecordingProxy {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    async fn start() -> RecordingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 64 * 1024];
                    let read =
                        tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buffer))
                            .await;
                    let n = read.ok().and_then(Result::ok).unwrap_or(0);
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buffer[..n]).into_owned());
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        RecordingProxy { addr, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the binary with every proxy variable pointing at `proxy` and no exemption.
async fn run_behind_proxy(work: &Workdir, proxy: &RecordingProxy) -> RunOutput {
    let mut command = work.command(&["run"]);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env(name, proxy.url());
    }
    command.env_remove("NO_PROXY").env_remove("no_proxy");
    run_command(command).await
}

/// A workdir with `n` roster rows (no content, so a create is the only op of a row), few
/// attempts and a short timeout, so every hostile run ends in seconds.
fn workdir(base_url: &str, n: usize) -> Workdir {
    let work = Workdir::new(base_url);
    let rows: Vec<Vec<String>> = (1..=n)
        .map(|i| {
            row(
                &format!("E{i:03}"),
                "Ada",
                &format!("Person{i}"),
                &format!("p{i}@example.com"),
                "Lakeside Camp",
                "",
            )
        })
        .collect();
    work.write_roster("roster.csv", &rows);
    work.set_api(&[("max_attempts", "1"), ("timeout_secs", "5")]);
    work
}

/// The token every well-behaved hostile login issues.
const TOKEN: &str = "tok-hostile-7f3a9c";

fn token_answer(expires_in: Value) -> Response {
    axum::Json(json!({
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": "refresh-hostile-51d2",
    }))
    .into_response()
}

/// A create answered as the API would: the body sent back with a fresh uuid.
/// A 3xx pointing at `location`.
fn redirect(status: u16, location: &str) -> Response {
    Response::builder()
        .status(status)
        .header("location", location)
        .body(Body::empty())
        .unwrap()
}

fn created(body: &str) -> Response {
    let mut user: Value = serde_json::from_str(body).unwrap_or(json!({}));
    user["uuid"] = json!(uuid::Uuid::new_v4().to_string());
    (StatusCode::CREATED, axum::Json(user)).into_response()
}

fn everything_sent(headers: &HeaderMap, body: &str) -> String {
    let headers: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    format!("{}\n\n{body}", headers.join("\n"))
}

fn scan(work: &Workdir, out: &RunOutput, extra: &[&str]) {
    let mut secrets = vec![CLIENT_SECRET, TOKEN, "refresh-hostile-51d2"];
    secrets.extend_from_slice(extra);
    // The ledger (and its -wal, -shm) and the run reports; config.toml holds what the test
    // itself wrote.
    let state = work.path("state");
    assert_nothing_leaked(&[&state], &[&out.stdout, &out.stderr], &secrets);
}

fn summary_ops(work: &Workdir, kind: &str, state: &str) -> u64 {
    work.last_summary()["apply"]["ops"][kind][state]
        .as_u64()
        .unwrap_or(0)
}

// Item 1 -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_userinfo_in_base_url_is_refused_before_any_request() {
    let proxy = RecordingProxy::start().await;
    let target = Hostile::serve(Router::new()).await;
    for base in [
        // The host is evil.example; 127.0.0.1:80 is only a user name and a password.
        "http://127.0.0.1:80@evil.example".to_owned(),
        format!("http://user:hunter2pw@{}", target.addr),
        format!("https://user:hunter2pw@{}", target.addr),
        format!("https://{}/?key=hunter2pw", target.addr),
    ] {
        let work = workdir(&base, 2);
        let out = run_behind_proxy(&work, &proxy).await;
        assert_eq!(out.code, 1, "{base}\n{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("api.base_url"),
            "{base}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("user name or password") || out.stderr.contains("query"),
            "{base}: {}",
            out.stderr
        );
        scan(&work, &out, &["hunter2pw"]);
    }
    assert_eq!(
        proxy.seen(),
        Vec::<String>::new(),
        "a request reached the proxy"
    );
    assert!(target.requests().is_empty(), "a request reached the host");
}

// Item 3 -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_loopback_base_url_never_goes_through_a_proxy() {
    let proxy = RecordingProxy::start().await;
    let running = sim().await;
    let work = workdir(&running.base_url(), 3);
    let out = run_behind_proxy(&work, &proxy).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(summary_ops(&work, "create", "done"), 3);
    assert_eq!(sim_users(&running.base_url()).await.len(), 3);
    assert_eq!(proxy.seen(), Vec::<String>::new(), "the proxy saw the run");
    scan(&work, &out, &[]);
}

// Item 2 -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_redirected_login_is_not_followed() {
    let elsewhere = Hostile::serve(Router::new().fallback(|| async { "ok" })).await;
    let location = format!(
        "http://user:pw-in-location@{}/steal?key=q-in-location#frag",
        elsewhere.addr
    );
    for status in [307u16, 308, 302] {
        let location = location.clone();
        let hostile = Hostile::serve(Router::new().route(
            LOGIN,
            post(move || async move { redirect(status, &location) }),
        ))
        .await;
        let work = workdir(&hostile.base_url(), 2);
        let out = work.run(&["run"]).await;
        assert_eq!(out.code, 1, "{status}\n{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("redirect") && out.stderr.contains("not followed"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&elsewhere.addr.to_string()),
            "{}",
            out.stderr
        );
        scan(&work, &out, &["pw-in-location", "q-in-location"]);
        assert_eq!(hostile.requests_to(LOGIN).len(), 1);
    }
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_redirected_creates_are_not_followed_nor_recorded_done() {
    let elsewhere = Hostile::serve(Router::new().fallback(|body: String| async move {
        // What a create would answer, so a followed redirect would be recorded done.
        created(&body)
    }))
    .await;
    for status in [307u16, 308, 302, 301, 303] {
        let location = format!("http://{}{USERS}", elsewhere.addr);
        let hostile = Hostile::serve(
            Router::new()
                .route(LOGIN, post(|| async { token_answer(json!(900)) }))
                .route(
                    USERS,
                    post(move || async move { redirect(status, &location) }),
                ),
        )
        .await;
        let work = workdir(&hostile.base_url(), 2);
        let out = work.run(&["run"]).await;
        assert_eq!(out.code, 2, "{status}\n{}{}", out.stdout, out.stderr);
        assert_eq!(summary_ops(&work, "create", "done"), 0, "{status}");
        assert_eq!(summary_ops(&work, "create", "failed"), 2, "{status}");
        let errors = work.last_report("errors.csv");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .all(|r| r.iter().any(|f| f.contains("not followed"))),
            "{errors:?}"
        );
        scan(&work, &out, &[]);
    }
    assert!(elsewhere.requests().is_empty(), "a redirect was followed");
}

// Item 4 -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_login_echoing_the_request_leaks_nothing() {
    for status in [400u16, 500, 401, 403] {
        let hostile = Hostile::serve(Router::new().route(
            LOGIN,
            post(move |headers: HeaderMap, body: String| async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    format!("you sent: {}", everything_sent(&headers, &body)),
                )
            }),
        ))
        .await;
        let work = workdir(&hostile.base_url(), 2);
        let out = work.run(&["run"]).await;
        // A refusal is fatal; a login endpoint failing (after its retries) gives the night up
        // with everything pending.
        let expected = if status >= 500 { 2 } else { 1 };
        assert_eq!(out.code, expected, "{status}\n{}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("[redacted]"), "{}", out.stderr);
        scan(&work, &out, &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_api_errors_echoing_the_authorization_header_leak_nothing() {
    // One behaviour per row, chosen by the email the create carries.
    let hostile = Hostile::serve(
        Router::new()
            .route(LOGIN, post(|| async { token_answer(json!(900)) }))
            .route(
                USERS,
                post(|headers: HeaderMap, body: String| async move {
                    let sent = everything_sent(&headers, &body);
                    let auth = headers
                        .get("authorization")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default();
                    let error = |status: u16| {
                        (
                            StatusCode::from_u16(status).unwrap(),
                            axum::Json(json!({
                                "status": status,
                                "code": format!("ECHO {auth}"),
                                "message": format!("Authorization: {auth}"),
                                "technicalMessage": sent,
                            })),
                        )
                            .into_response()
                    };
                    if body.contains("p1@") {
                        error(400)
                    } else if body.contains("p2@") {
                        error(500)
                    } else if body.contains("p3@") {
                        (StatusCode::BAD_REQUEST, format!("bad request\n{sent}")).into_response()
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("down; token={TOKEN}"),
                        )
                            .into_response()
                    }
                }),
            ),
    )
    .await;
    let work = workdir(&hostile.base_url(), 4);
    let out = work.run(&["run"]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(summary_ops(&work, "create", "failed"), 4);
    let errors = work.last_report("errors.csv");
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|r| r.iter().all(|f| f.chars().count() <= 400)),
        "messages are capped: {errors:?}"
    );
    // The hostile server did receive the token: the scan below means something.
    assert!(hostile.requests_to(USERS)[0].text().contains(TOKEN));
    scan(&work, &out, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_a_mid_run_relogin_echoing_the_request_leaks_nothing() {
    let logins = Arc::new(AtomicUsize::new(0));
    let counted = logins.clone();
    let hostile = Hostile::serve(
        Router::new()
            .route(
                LOGIN,
                post(move |headers: HeaderMap, body: String| {
                    let n = counted.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            token_answer(json!(900))
                        } else {
                            (
                                StatusCode::BAD_REQUEST,
                                axum::Json(json!({
                                    "error": "invalid_client",
                                    "error_description":
                                        format!("rejected {}", everything_sent(&headers, &body)),
                                })),
                            )
                                .into_response()
                        }
                    }
                }),
            )
            .route(
                USERS,
                post(|| async { (StatusCode::UNAUTHORIZED, "token expired").into_response() }),
            ),
    )
    .await;
    let work = workdir(&hostile.base_url(), 2);
    work.set_api(&[("max_in_flight", "1")]);
    let out = work.run(&["run"]).await;
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(logins.load(Ordering::SeqCst) >= 2, "no re-login happened");
    assert!(out.stderr.contains("[redacted]"), "{}", out.stderr);
    scan(&work, &out, &[]);
}

// Item 13 ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_creates_answered_without_a_valid_uuid_fail_and_the_next_run_adopts() {
    // The create answers, by row; then, once `adopting` is set, what the API answers to a
    // create whose email exists: EMAIL_EXISTS naming the user, and that user on GET.
    #[derive(Clone, Default)]
    struct Shared {
        adopting: Arc<std::sync::atomic::AtomicBool>,
        users: Arc<Mutex<Vec<(String, Value)>>>,
    }
    let shared = Shared::default();
    let answers = [
        json!({}),
        json!([]),
        json!({"uuid": "not-a-uuid"}),
        json!({"uuid": "../../admin"}),
    ];
    let router = Router::new()
        .route(LOGIN, post(|| async { token_answer(json!(900)) }))
        .route(
            USERS,
            post(
                move |State(shared): State<Shared>, body: String| async move {
                    let index = (1..=4)
                        .find(|i| body.contains(&format!("p{i}@")))
                        .unwrap_or(1);
                    let mut users = shared.users.lock().unwrap();
                    if !shared.adopting.load(Ordering::SeqCst) {
                        let mut user: Value = serde_json::from_str(&body).unwrap();
                        let id = uuid::Uuid::new_v4().to_string();
                        user["uuid"] = json!(id);
                        users.push((id, user));
                        return (StatusCode::CREATED, axum::Json(answers[index - 1].clone()))
                            .into_response();
                    }
                    let email = format!("p{index}@");
                    let (id, _) = users
                        .iter()
                        .find(|(_, u)| u.to_string().contains(&email))
                        .unwrap();
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({
                            "status": 400, "code": "EMAIL_EXISTS",
                            "message": "A user with this email address already exists",
                            "technicalMessage": format!("Email already exists for user id {id}"),
                        })),
                    )
                        .into_response()
                },
            ),
        )
        .route(
            &format!("{USERS}/{{id}}"),
            get(
                |State(shared): State<Shared>, Path(id): Path<String>| async move {
                    let users = shared.users.lock().unwrap();
                    match users.iter().find(|(u, _)| *u == id) {
                        Some((_, user)) => axum::Json(user.clone()).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            )
            .put(
                |State(shared): State<Shared>, Path(id): Path<String>| async move {
                    let users = shared.users.lock().unwrap();
                    match users.iter().find(|(u, _)| *u == id) {
                        Some((_, user)) => axum::Json(user.clone()).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            ),
        )
        .with_state(shared.clone());
    let hostile = Hostile::serve(router).await;
    let work = workdir(&hostile.base_url(), 4);
    let first = work.run(&["run"]).await;
    assert_eq!(first.code, 2, "{}{}", first.stdout, first.stderr);
    assert_eq!(summary_ops(&work, "create", "done"), 0);
    assert_eq!(summary_ops(&work, "create", "failed"), 4);
    let errors = work.last_report("errors.csv");
    assert!(
        errors
            .iter()
            .all(|r| r.iter().any(|f| f.contains("may exist"))),
        "{errors:?}"
    );
    // Neither answer's id is kept anywhere, nor ever used in a path.
    scan(&work, &first, &["not-a-uuid", "../../admin"]);

    shared.adopting.store(true, Ordering::SeqCst);
    let second = work.run(&["run"]).await;
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    assert_eq!(work.last_summary()["apply"]["adopted"], 4);
    scan(&work, &second, &["not-a-uuid", "../../admin"]);
    for request in hostile.requests() {
        assert!(!request.path.contains(".."), "{}", request.path);
        assert!(!request.path.contains("admin"), "{}", request.path);
    }
}

// Item 14 ----------------------------------------------------------------------------------

/// A body of `total` bytes, streamed, so the test holds only one chunk.
fn streamed(total: usize) -> Body {
    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let count = total / chunk.len();
    Body::from_stream(futures_util::stream::iter(
        (0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_oversized_answers_are_refused_not_read() {
    const SIZE: usize = 64 << 20;
    let hostile = Hostile::serve(
        Router::new()
            .route(LOGIN, post(|| async { token_answer(json!(900)) }))
            .route(
                USERS,
                post(|| async { (StatusCode::CREATED, streamed(SIZE)) }),
            ),
    )
    .await;
    let work = workdir(&hostile.base_url(), 2);
    let started = Instant::now();
    let out = work.run(&["run"]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(summary_ops(&work, "create", "failed"), 2);
    let errors = work.last_report("errors.csv");
    assert!(
        errors
            .iter()
            .all(|r| r.iter().any(|f| f.contains("longer than"))),
        "{errors:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    scan(&work, &out, &[]);

    let login = Hostile::serve(
        Router::new().route(LOGIN, post(|| async { (StatusCode::OK, streamed(SIZE)) })),
    )
    .await;
    let work = workdir(&login.base_url(), 2);
    let out = work.run(&["run"]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("too long"), "{}", out.stderr);
    scan(&work, &out, &[]);
}

// Item 11 ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue9_huge_or_zero_token_lifetimes_neither_panic_nor_cost_a_login_per_request() {
    for expires_in in [
        json!(18446744073709551615u64),
        json!(0),
        json!(-1),
        json!(1e300),
        json!("soon"),
    ] {
        let lifetime = expires_in.clone();
        let hostile = Hostile::serve(
            Router::new()
                .route(LOGIN, post(move || async move { token_answer(lifetime) }))
                .route(USERS, post(|body: String| async move { created(&body) })),
        )
        .await;
        let work = workdir(&hostile.base_url(), 3);
        work.set_api(&[("max_in_flight", "1")]);
        let out = work.run(&["run"]).await;
        assert_eq!(out.code, 0, "{expires_in}\n{}{}", out.stdout, out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert_eq!(summary_ops(&work, "create", "done"), 3);
        let logins = hostile.requests_to(LOGIN).len();
        assert_eq!(logins, 1, "{expires_in}: {logins} logins for 3 creates");
        scan(&work, &out, &[]);
    }
}
