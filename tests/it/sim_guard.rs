//! Issue 9, item 6: the simulator keeps browsers out. A page on another site cannot reset it
//! (CSRF: a foreign Origin, a text/plain "simple" POST), a DNS-rebinding page cannot reach
//! it under a foreign Host, and `--listen` beyond loopback needs `--allow-remote`. All
//! against the real `rostersync sim` process, with raw HTTP so every header is the test's.

use crate::util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::json;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sim_command(listen: &str, extra: &[&str]) -> Command {
    let mut command = Command::cargo_bin("rostersync").unwrap();
    command
        .args([
            "sim",
            "--listen",
            listen,
            "--client-id",
            util::CLIENT_ID,
            "--rate-limit",
            "1000",
            "--seed",
            "9",
        ])
        .args(extra)
        .env("ROSTERSYNC_SIM_CLIENT_SECRET", util::CLIENT_SECRET)
        .stdin(Stdio::null());
    command
}

/// Starts `rostersync sim` on 127.0.0.1:0; returns it and its address (stdout's first line).
fn spawn_sim() -> (Killed, SocketAddr) {
    let mut child = sim_command("127.0.0.1:0", &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .parse()
        .expect("first line is the bound address");
    (Killed(child), addr)
}

/// One HTTP/1.1 request with exactly `headers` (Host included, or not); returns the status
/// and body. Timeouts keep a misbehaving server from hanging the test.
fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn login_body() -> String {
    json!({
        "grant_type": "client_credentials",
        "client_id": util::CLIENT_ID,
        "client_secret": util::CLIENT_SECRET,
        "scope": ["prae.client.api.user"],
    })
    .to_string()
}

async fn seed_one_user(base: &str) {
    let seeded = reqwest::Client::new()
        .post(format!("{base}/admin/users"))
        .json(&util::user_body("G-1", "g1@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 201);
    assert_eq!(util::sim_users(base).await.len(), 1);
}

#[tokio::test]
async fn issue9_a_foreign_page_cannot_reset_the_simulator() {
    let (_sim, addr) = spawn_sim();
    let base = format!("http://{addr}");
    seed_one_user(&base).await;
    let host = addr.to_string();

    // What `fetch("http://127.0.0.1:PORT/admin/reset", {method: "POST", mode: "no-cors",
    // body: "x"})` on evil.example sends: no preflight for a text/plain body.
    let (status, why) = raw(
        addr,
        "POST",
        "/admin/reset",
        &[
            ("Host", &host),
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        "x",
    );
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("origin"), "{why}");
    // A browser that sends Sec-Fetch-Site but no Origin, and a sandboxed page ("null").
    let no_origin = raw(
        addr,
        "POST",
        "/admin/reset",
        &[("Host", &host), ("Sec-Fetch-Site", "cross-site")],
        "",
    );
    assert_eq!(no_origin.0, 403, "{}", no_origin.1);
    let null_origin = raw(
        addr,
        "POST",
        "/admin/reset",
        &[("Host", &host), ("Origin", "null")],
        "",
    );
    assert_eq!(null_origin.0, 403, "{}", null_origin.1);
    // Without a browser's headers, a form-encoded or text body is still not JSON.
    let form = raw(
        addr,
        "POST",
        "/admin/reset",
        &[
            ("Host", &host),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "a=b",
    );
    assert_eq!(form.0, 415, "{}", form.1);
    assert_eq!(util::sim_users(&base).await.len(), 1, "nothing was wiped");

    // The simulator's own tools: a loopback origin, or none (reqwest, curl).
    let local_page = raw(
        addr,
        "GET",
        "/admin/users",
        &[
            ("Host", &host),
            ("Origin", &format!("http://localhost:{}", addr.port())),
        ],
        "",
    );
    assert_eq!(local_page.0, 200, "{}", local_page.1);
    let reset = reqwest::Client::new()
        .post(format!("{base}/admin/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(util::sim_users(&base).await.len(), 0);
}

#[tokio::test]
async fn issue9_a_foreign_host_is_refused_on_the_api_and_admin() {
    let (_sim, addr) = spawn_sim();
    let base = format!("http://{addr}");
    seed_one_user(&base).await;
    let json = ("Content-Type", "application/json");
    let login = "/portal/authenticate/login_api";

    // A DNS-rebinding page: evil.example now resolves to 127.0.0.1, the browser sends its name.
    for host in [
        "evil.example",
        "evil.example:80",
        &format!("evil.example:{}", addr.port()),
    ] {
        let (status, why) = raw(addr, "POST", login, &[("Host", host), json], &login_body());
        assert_eq!(status, 421, "login with Host {host}: {why}");
        assert!(!why.contains("access_token"), "{why}");
        let (status, why) = raw(addr, "GET", "/admin/users", &[("Host", host)], "");
        assert_eq!(status, 421, "admin with Host {host}: {why}");
        assert!(!why.contains("g1@example.com"), "{why}");
        let (status, _) = raw(addr, "POST", "/admin/reset", &[("Host", host)], "");
        assert_eq!(status, 421);
    }
    let missing = raw(addr, "GET", "/admin/users", &[], "");
    assert_eq!(missing.0, 400, "{}", missing.1);
    assert_eq!(util::sim_users(&base).await.len(), 1);

    // This machine's names, with or without the port, still work.
    let port = addr.port();
    for host in [
        addr.to_string(),
        format!("localhost:{port}"),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
    ] {
        let (status, body) = raw(addr, "POST", login, &[("Host", &host), json], &login_body());
        assert_eq!(status, 200, "login with Host {host}: {body}");
        assert!(body.contains("access_token"), "{body}");
        let (status, body) = raw(addr, "GET", "/admin/users", &[("Host", &host)], "");
        assert_eq!(
            (status, body.contains("g1@example.com")),
            (200, true),
            "{body}"
        );
    }
    // And what every other test and the demo do.
    assert_eq!(util::login(&base).await.expires_in, Some(900));
}

#[test]
fn issue9_listening_beyond_loopback_needs_allow_remote() {
    // Spawned, not `output()`: a simulator that wrongly starts would never end by itself.
    let mut refused = Killed(
        sim_command("0.0.0.0:0", &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = refused.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "sim --listen 0.0.0.0:0 without --allow-remote kept running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(status.code(), Some(0));
    let mut stderr = String::new();
    refused
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut stdout = String::new();
    refused
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stderr.contains("0.0.0.0:0") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "it never listened: {stdout}");

    let mut child = sim_command("0.0.0.0:0", &["--allow-remote"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Stopped before its stderr is read to the end: the warning came before the address.
    drop(Killed(child));
    let addr: SocketAddr = first.trim().parse().expect("it listens and says where");
    assert!(addr.ip().is_unspecified() && addr.port() != 0, "{addr}");
    let mut warning = String::new();
    BufReader::new(stderr).read_to_string(&mut warning).unwrap();
    assert!(
        warning.contains("WARNING") && warning.contains(&addr.to_string()),
        "{warning}"
    );
    // The test secret, not the demo's: the warning does not call it public.
    assert!(!warning.contains("PUBLIC demo secret"), "{warning}");
}

#[test]
fn issue9_the_remote_warning_names_the_demo_secret() {
    let mut child = sim_command("0.0.0.0:0", &["--allow-remote"])
        .env_remove("ROSTERSYNC_SIM_CLIENT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    drop(Killed(child));
    let mut warning = String::new();
    BufReader::new(stderr).read_to_string(&mut warning).unwrap();
    assert!(
        warning.contains("PUBLIC demo secret") && warning.contains("demo-secret"),
        "{warning}"
    );
}

#[test]
fn issue9_sim_help_documents_allow_remote() {
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .args(["sim", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--allow-remote"), "{help}");
}
