//! `rostersync sim` as a real process (issue 2): the bound address on stdout's first line,
//! the fault flags, and a help text that documents every option.

use crate::util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

#[test]
fn sim_help_documents_every_option() {
    let output = Command::cargo_bin("rostersync")
        .unwrap()
        .args(["sim", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--listen",
        "--catalog-dir",
        "--client-id",
        "--client-secret",
        "--managed-clients",
        "--seed",
        "--state-file",
        "--log-capacity",
        "--error-rate",
        "--drop-rate",
        "--latency-min-ms",
        "--latency-max-ms",
        "--token-lifetime-secs",
        "--duplicate-window-secs",
        "--rate-limit",
        "--burst",
    ] {
        assert!(
            help.contains(option),
            "{option} missing from sim --help:\n{help}"
        );
    }
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sim_binary_prints_its_address_and_serves_the_api() {
    let mut child = Command::cargo_bin("rostersync")
        .unwrap()
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            util::CLIENT_ID,
            "--rate-limit",
            "1000",
            "--seed",
            "3",
        ])
        .env("ROSTERSYNC_SIM_CLIENT_SECRET", util::CLIENT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let _guard = Killed(child);
    let addr: std::net::SocketAddr = first_line
        .trim()
        .parse()
        .expect("first line is the bound address");
    assert_ne!(addr.port(), 0);

    let base = format!("http://{addr}");
    let token = util::login(&base).await;
    assert_eq!(token.expires_in, Some(900));
    let faults: serde_json::Value = reqwest::get(format!("{base}/admin/faults"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["rate_limit"], 1000.0);
}
