//! Shared helpers for the end-to-end tests: a simulator on a free loopback port, a logged-in
//! HTTP client, sample user bodies, and a command builder over the real binary.
#![allow(dead_code)]

pub mod hostile;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rostersync::ingest::catalog::Catalog;
use rostersync::targets::praesidium::model::{TokenResponse, USER_PATH};
use rostersync::targets::praesidium::sim::{Faults, RunningSim, Sim, SimOptions, start};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "s3cr3t-for-tests-only";

pub fn catalog() -> Catalog {
    rostersync::samples::catalog()
}

pub fn client_uuid(name: &str) -> String {
    catalog().client(name).expect("sample client").uuid.clone()
}

pub fn location_uuid(name: &str, client: &str) -> String {
    let catalog = catalog();
    let client = catalog.client(client).unwrap().uuid.clone();
    catalog.location(name, &client).unwrap().uuid.clone()
}

pub fn content_uuid(sku: &str) -> String {
    catalog()
        .content_item(sku)
        .expect("sample content")
        .uuid
        .clone()
}

/// A simulator on 127.0.0.1:0 whose credential manages `managed` (client names; all when empty).
pub async fn sim_with(faults: Faults, managed: &[&str]) -> RunningSim {
    let catalog = catalog();
    let mut options = SimOptions::single_credential(&catalog, CLIENT_ID, CLIENT_SECRET);
    if !managed.is_empty() {
        options.credentials[0].managed_clients = managed
            .iter()
            .map(|name| catalog.client(name).unwrap().uuid.clone())
            .collect::<HashSet<_>>();
    }
    options.faults = faults;
    options.seed = Some(1);
    let sim = Sim::new(catalog, options).unwrap();
    start(sim, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

pub async fn sim() -> RunningSim {
    sim_with(Faults::default(), &[]).await
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub async fn login(base: &str) -> TokenResponse {
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/portal/authenticate/login_api"))
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": ["prae.client.api.user"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

impl Api {
    pub async fn new(running: &RunningSim) -> Api {
        let base = running.base_url();
        let token = login(&base).await.access_token;
        Api {
            http: reqwest::Client::new(),
            base,
            token,
        }
    }

    pub fn url(&self, suffix: &str) -> String {
        format!("{}{USER_PATH}{suffix}", self.base)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        suffix: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(suffix))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn create(&self, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, "", Some(body)).await
    }

    pub async fn put(&self, suffix: &str, body: Option<&Value>) -> (u16, Value) {
        self.send(reqwest::Method::PUT, suffix, body).await
    }

    pub async fn get(&self, uuid: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, &format!("/{uuid}"), None)
            .await
    }

    pub async fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/admin/{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn set_faults(&self, patch: Value) {
        let response = self
            .http
            .put(format!("{}/admin/faults", self.base))
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}

/// A valid user object for the sample catalog's Northwind Camps client.
pub fn user_body(external_id: &str, email: &str) -> Value {
    json!({
        "principal": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": email,
            "client_external_id": external_id,
        },
        "system": {"status": "active", "role": "Learner"},
        "person": {},
        "context": {
            "client": client_uuid("Northwind Camps"),
            "locations": [location_uuid("Lakeside Camp", "Northwind Camps")],
        },
        "attributes": {"position": "counselor", "program_type": "aquatics"},
    })
}

pub fn content_listing(skus: &[&str]) -> Value {
    let catalog = catalog();
    json!({
        "content": skus.iter().map(|sku| {
            let item = catalog.content_item(sku).unwrap();
            json!({"uuid": item.uuid, "type": item.kind.as_api_str()})
        }).collect::<Vec<_>>()
    })
}

/// A folder with the sample catalogs, a config pointing at a simulator, and helpers to write
/// rosters and run the real binary in it.
pub struct Workdir {
    pub dir: tempfile::TempDir,
    pub base_url: String,
}

pub const SECRET_ENV: &str = "ROSTERSYNC_TEST_SECRET";

/// The output of one run of the binary.
pub struct RunOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to its end in a blocking thread, so that an in-process server keeps serving.
pub async fn run_command(mut command: std::process::Command) -> RunOutput {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    RunOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Workdir {
    pub fn new(base_url: &str) -> Workdir {
        Workdir::with_settings(base_url, "")
    }

    /// `extra` is TOML appended to the config (other sections).
    pub fn with_settings(base_url: &str, extra: &str) -> Workdir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in rostersync::samples::FILES {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let config = format!(
            "[api]\nbase_url = \"{base_url}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{SECRET_ENV}\"\n\
             requests_per_second = 500.0\nmax_in_flight = 8\ntimeout_secs = 10\n\n\
             [files]\nclients = \"clients.csv\"\nlocations = \"locations.csv\"\ncontent = \"content.csv\"\nroster = \"roster.csv\"\n\n\
             [ledger]\npath = \"state/rostersync.db\"\n\n[defaults]\nclient = \"Northwind Camps\"\nrole = \"Learner\"\n\n{extra}\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Workdir {
            dir,
            base_url: base_url.to_owned(),
        }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces `[api]` settings written by [`Workdir::with_settings`] (`requests_per_second`,
    /// `timeout_secs`, ...) or adds new ones, e.g. `&[("duplicate_window_secs", "2")]`.
    pub fn set_api(&self, settings: &[(&str, &str)]) {
        let path = self.path("config.toml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        for (key, value) in settings {
            let line = format!("{key} = {value}\n");
            match config
                .lines()
                .position(|l| l.starts_with(&format!("{key} = ")))
            {
                Some(index) => {
                    let old = format!("{}\n", config.lines().nth(index).unwrap());
                    config = config.replacen(&old, &line, 1);
                }
                None => config = config.replacen("[api]\n", &format!("[api]\n{line}"), 1),
            }
        }
        std::fs::write(path, config).unwrap();
    }

    /// Writes a roster with csv::Writer (header first).
    pub fn write_roster(&self, name: &str, rows: &[Vec<String>]) {
        std::fs::write(self.path(name), roster_text(rows, b',')).unwrap();
    }

    /// The real binary with `args`, this folder's config and the client secret, logging at
    /// info: to run, or to spawn and signal.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rostersync"));
        command
            .args(args)
            .arg("--config")
            .arg(self.path("config.toml"))
            .env(SECRET_ENV, CLIENT_SECRET)
            .env("ROSTERSYNC_LOG", "info");
        command
    }

    /// Runs `plan --json` with the ledger's debug log, expecting it to succeed: the summary
    /// and the log.
    pub async fn plan_with_ledger_log(&self) -> (serde_json::Value, String) {
        let mut command = self.command(&["plan", "--json"]);
        command.env("ROSTERSYNC_LOG", "rostersync::ledger=debug,info");
        let output = run_command(command).await;
        assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
        (serde_json::from_str(&output.stdout).unwrap(), output.stderr)
    }

    /// Runs the real binary with `args` (the config is added) in a blocking thread, so the
    /// in-process simulator keeps serving.
    pub async fn run(&self, args: &[&str]) -> RunOutput {
        run_command(self.command(args)).await
    }

    /// The newest run folder (runs/run-NNNNNN sorts by run id).
    pub fn last_run_dir(&self) -> std::path::PathBuf {
        let mut dirs: Vec<_> = std::fs::read_dir(self.path("state/runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs.pop().expect("at least one run folder")
    }

    /// The newest run folder's file, parsed as CSV rows (header excluded).
    pub fn last_report(&self, file: &str) -> Vec<csv::StringRecord> {
        csv::Reader::from_path(self.last_run_dir().join(file))
            .unwrap()
            .records()
            .map(|r| r.unwrap())
            .collect()
    }

    pub fn last_summary(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.last_run_dir().join("summary.json")).unwrap())
            .unwrap()
    }
}

/// A roster's text: the canonical header, then `rows`, fields separated by `delimiter`
/// (csv::Writer quoting; tests break it on purpose afterwards where they need to).
pub fn roster_text(rows: &[Vec<String>], delimiter: u8) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    writer
        .write_record(rostersync::ingest::roster::COLUMNS)
        .unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}

/// An OpenDocument spreadsheet (what LibreOffice saves) with one sheet named `sheet` whose
/// `<table:table-row>` elements are `rows_xml`.
pub fn ods_workbook(sheet: &str, rows_xml: &str) -> Vec<u8> {
    use std::io::Write;
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
         xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
         xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" office:version=\"1.2\">\
         <office:body><office:spreadsheet><table:table table:name=\"{sheet}\">{rows_xml}</table:table>\
         </office:spreadsheet></office:body></office:document-content>"
    );
    let manifest = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" manifest:version=\"1.2\">\
         <manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/>\
         <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
         </manifest:manifest>";
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in [
        ("mimetype", "application/vnd.oasis.opendocument.spreadsheet"),
        ("META-INF/manifest.xml", manifest),
        ("content.xml", content.as_str()),
    ] {
        zip.start_file(name, stored).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

/// Person `i` (key `E0001`...), at Lakeside Camp with SAFE-101.
pub fn person(i: usize) -> Vec<String> {
    let key = format!("E{i:04}");
    row(
        &key,
        "Quinn",
        &format!("Person{i}"),
        &format!("{}@example.com", key.to_lowercase()),
        "Lakeside Camp",
        "SAFE-101",
    )
}

/// A roster row for the sample catalog: key, first, last, email, locations, content.
pub fn row(
    key: &str,
    first: &str,
    last: &str,
    email: &str,
    locations: &str,
    content: &str,
) -> Vec<String> {
    [
        key,
        first,
        last,
        email,
        "",
        "",
        "",
        locations,
        "Counselor",
        "day camp",
        content,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The simulator's request log after `since`.
pub async fn requests_since(base: &str, since: u64) -> Vec<Value> {
    reqwest::get(format!("{base}/admin/requests?since={since}"))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

pub async fn last_seq(base: &str) -> u64 {
    requests_since(base, 0)
        .await
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

pub async fn sim_users(base: &str) -> Vec<Value> {
    reqwest::get(format!("{base}/admin/users"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Counts of requests by endpoint (excluding logins).
pub fn endpoint_counts(entries: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for entry in entries.iter().filter(|e| e["endpoint"] != "login") {
        *counts
            .entry(entry["endpoint"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// What the simulator should hold for a roster row, computed from the CSV and the catalog
/// without rostersync's ingest code.
pub fn expected_from_csv(path: &std::path::Path, skip: &[&str]) -> BTreeMap<String, Value> {
    let catalog = catalog();
    let mut expected = BTreeMap::new();
    for record in csv::Reader::from_path(path).unwrap().records() {
        let r = record.unwrap();
        if skip.contains(&&r[0]) || &r[5] == "inactive" {
            continue;
        }
        let client = catalog
            .client(if r[6].is_empty() {
                "Northwind Camps"
            } else {
                &r[6]
            })
            .unwrap()
            .uuid
            .clone();
        let locations: BTreeSet<String> = r[7]
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|l| catalog.location(l.trim(), &client).unwrap().uuid.clone())
            .collect();
        let content: BTreeSet<String> = r[10]
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|c| catalog.content_item(c.trim()).unwrap().uuid.clone())
            .collect();
        expected.insert(
            r[0].to_owned(),
            serde_json::json!({
                "first": r[1].trim(), "last": r[2].trim(), "email": r[3].trim().to_lowercase(),
                "role": if r[4].is_empty() { "Learner" } else { &r[4] },
                "client": client, "locations": locations, "content": content,
            }),
        );
    }
    expected
}

pub fn actual_from_sim(users: &[Value], only_active: bool) -> BTreeMap<String, Value> {
    users
        .iter()
        .filter(|u| !only_active || u["user"]["system"]["status"] == "active")
        .map(|u| {
            let user = &u["user"];
            let locations: BTreeSet<String> = user["context"]["locations"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect();
            let content: BTreeSet<String> = u["content"].as_object().unwrap().keys().cloned().collect();
            (
                user["principal"]["client_external_id"].as_str().unwrap().to_owned(),
                serde_json::json!({
                    "first": user["principal"]["first_name"], "last": user["principal"]["last_name"],
                    "email": user["principal"]["email"], "role": user["system"]["role"],
                    "client": user["context"]["client"], "locations": locations, "content": content,
                }),
            )
        })
        .collect()
}

pub const SAMPLE_BAD_KEYS: &[&str] = &["E9001", "E9002", "E9003", "E9004", "E9005"];
