//! The run configuration: a TOML file whose relative paths are relative to the file itself.
//!
//! Owns reading and checking it completely before any work starts (like ripgrep's
//! `hiargs`): unknown keys, bad URLs and missing secrets are fatal here with the key named.
//! The client secret is read from the environment variable the file names; it must never be
//! printed, so it lives in a [`Secret`] whose `Debug` and `Display` hide it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

mod learning;

pub use learning::EventsConfig;
use learning::{RawEvents, RawRule};

use crate::ingest::source::ReadOptions;
use crate::plan::recertify::Policy;
use crate::safety::RawSafety;
pub use crate::safety::{Safety, Threshold};
use crate::targets::{Kind, Settings};

/// A value that must never reach a log, a report or an error message.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[api]`: where and how to call the user API, whichever the target; the login of a
/// target that logs in with a client id and secret (checked by that target, see
/// [`crate::targets::Kind::settings`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Base URL, e.g. `https://academy.example.com`; `http://` only for loopback hosts.
    pub base_url: String,
    /// The client id, for a target that logs in with one.
    #[serde(default)]
    pub client_id: String,
    /// Name of the environment variable holding the client secret, for a target that logs
    /// in with one.
    #[serde(default)]
    pub client_secret_env: String,
    /// The scopes a login asks for (the target's own when absent).
    #[serde(default)]
    pub scope: Option<Vec<String>>,
    /// Requests per second across all workers (default 5).
    #[serde(default = "default_rate")]
    pub requests_per_second: f64,
    /// Most requests in flight at once (default 4).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Seconds during which the API ignores an identical change (default 30).
    #[serde(default = "default_window")]
    pub duplicate_window_secs: u64,
    /// Per-request timeout in seconds (default 30).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Tries of one request on 5xx, connection errors and timeouts before the op is recorded
    /// failed (default 6; 429s do not count, they pause the run instead).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(skip)]
    pub client_secret: Secret,
}

fn default_rate() -> f64 {
    5.0
}
fn default_in_flight() -> usize {
    4
}
fn default_window() -> u64 {
    30
}
fn default_timeout() -> u64 {
    30
}
fn default_attempts() -> u32 {
    6
}

/// `[files]`: the catalogs and the roster, and how to read the roster when detecting it is
/// not wanted. The catalogs are required by a target that resolves clients, locations and
/// content ([`crate::targets::Capabilities::catalogs`]) and unused by one that does not.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    #[serde(default)]
    pub clients: PathBuf,
    #[serde(default)]
    pub locations: PathBuf,
    #[serde(default)]
    pub content: PathBuf,
    /// CSV (any common encoding and delimiter), `.xlsx` or `.ods`.
    pub roster: PathBuf,
    /// The roster's encoding: "auto" (default) or a name ("utf-8", "windows-1252",
    /// "utf-16le", any WHATWG label). A byte order mark in the file always wins.
    #[serde(default)]
    pub encoding: Option<String>,
    /// The roster's field separator: "auto" (default: comma, semicolon or tab, whichever
    /// yields the required columns), one character, or "tab".
    #[serde(default)]
    pub delimiter: Option<String>,
    /// The sheet of an `.xlsx`/`.ods` roster to read (default: the first).
    #[serde(default)]
    pub sheet: Option<String>,
}

/// `[ledger]`: the SQLite file (default `rostersync.db`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    #[serde(default = "default_ledger")]
    pub path: PathBuf,
}

fn default_ledger() -> PathBuf {
    PathBuf::from("rostersync.db")
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            path: default_ledger(),
        }
    }
}

/// `[defaults]`: values used where a roster row leaves the column empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Client name or UUID; empty means a row must name its client.
    #[serde(default)]
    pub client: String,
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role() -> String {
    "Learner".to_owned()
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            client: String::new(),
            role: default_role(),
        }
    }
}

/// `[reports]`: the run folders under `runs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// Folders of runs that sent nothing (plans, dry runs, refused plans, nights without a
    /// change) kept, the newest (default 30, at least 1). Folders of runs that sent requests
    /// are the audit trail and are always kept.
    #[serde(default = "default_keep_runs")]
    pub keep_runs: u64,
}

fn default_keep_runs() -> u64 {
    30
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            keep_runs: default_keep_runs(),
        }
    }
}

/// `[target]`: which platform the roster is provisioned into (default the first one, so that
/// every config written before there was a choice means what it meant).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default)]
    kind: Kind,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    target: RawTarget,
    /// A target's own section, handed to it unread (see [`crate::targets::Kind::settings`]);
    /// the key is the section's name in the file.
    #[serde(default)]
    prancer: Option<toml::Table>,
    api: ApiConfig,
    files: FilesConfig,
    #[serde(default)]
    ledger: LedgerConfig,
    #[serde(default)]
    defaults: Defaults,
    safety: Option<RawSafety>,
    #[serde(default)]
    reports: ReportsConfig,
    #[serde(default)]
    columns: HashMap<String, String>,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    recertify: Vec<RawRule>,
}

/// A checked configuration with absolute paths and the secret loaded.
#[derive(Debug, Clone)]
pub struct Config {
    /// The platform, with its own settings (and secret).
    pub target: Settings,
    pub api: ApiConfig,
    pub files: FilesConfig,
    pub ledger: LedgerConfig,
    pub defaults: Defaults,
    /// How to read the roster: `[files] encoding`, `delimiter` and `sheet`, checked.
    pub read: ReadOptions,
    pub safety: Safety,
    pub reports: ReportsConfig,
    /// Roster header → canonical column.
    pub columns: HashMap<String, String>,
    /// `[events]`: the learning-event receiver.
    pub events: EventsConfig,
    /// `[[recertify]]`: when completed training expires and is re-enrolled.
    pub recertify: Policy,
}

impl Config {
    /// Reads and checks the file; the secret comes from the environment.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let secret = |name: &str| std::env::var(name).ok();
        Config::parse(&text, path, secret)
    }

    /// Reads and checks the file for a command that sends nothing (`status`): the client
    /// secret is not needed, so it is not asked for.
    pub fn load_without_secret(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::parse_with(&text, path, |_| None, false)
    }

    /// Parses config text; `env` looks up environment variables (tests pass their own).
    pub fn parse(text: &str, path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        Config::parse_with(text, path, env, true)
    }

    fn parse_with(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
        secret_needed: bool,
    ) -> Result<Config> {
        let label = path.display();
        let raw: RawConfig =
            toml::from_str(text).with_context(|| format!("{label}: invalid config"))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let mut api = raw.api;
        api.base_url =
            check_base_url(&api.base_url).with_context(|| format!("{label}: api.base_url"))?;
        let kind = raw.target.kind;
        let env_secret = |key: &str, name: &str, what: &str| -> Result<Secret> {
            let value = env(name).filter(|s| !s.is_empty());
            let value = value.or_else(|| (!secret_needed).then(String::new)).with_context(|| {
                format!(
                    "{key}: the environment variable {name:?} is not set or empty; export the {what} in it"
                )
            })?;
            Ok(Secret::new(value))
        };
        // The target's own settings, its secret read (messages name their keys).
        let target = kind
            .settings(raw.prancer, &mut api, &env_secret)
            .with_context(|| label.to_string())?;
        check_api_bounds(&api).with_context(|| format!("{label}: [api]"))?;

        let safety = match raw.safety {
            None => Safety::default(),
            Some(raw) => raw.check(&label.to_string())?,
        };
        let read = ReadOptions {
            encoding: crate::ingest::encoding::parse_label(
                raw.files.encoding.as_deref().unwrap_or("auto"),
            )
            .with_context(|| format!("{label}: files.encoding"))?,
            delimiter: crate::ingest::source::parse_delimiter(
                raw.files.delimiter.as_deref().unwrap_or("auto"),
            )
            .with_context(|| format!("{label}: files.delimiter"))?,
            sheet: raw.files.sheet.clone().filter(|s| !s.trim().is_empty()),
        };
        let reports = raw.reports;
        if reports.keep_runs == 0 {
            bail!(
                "{label}: reports.keep_runs: expected at least 1 (the folder of the run that just ended is always kept), found 0"
            );
        }
        if kind.capabilities().catalogs {
            for (key, path) in [
                ("clients", &raw.files.clients),
                ("locations", &raw.files.locations),
                ("content", &raw.files.content),
            ] {
                if path.as_os_str().is_empty() {
                    bail!(
                        "{label}: files.{key}: expected the path of the {key} catalog ({} resolves rows against it)",
                        kind.name()
                    );
                }
            }
        }
        let recertify = learning::check_policy(&label.to_string(), raw.recertify)?;
        if !recertify.is_empty()
            && !kind
                .capabilities()
                .ops
                .contains(&crate::model::OpKind::ReEnroll)
        {
            bail!(
                "{label}: recertify: {} cannot re-enroll content; remove the [[recertify]] rules",
                kind.name()
            );
        }
        let ledger_path = resolve(&raw.ledger.path);
        let events = raw
            .events
            .check(&label.to_string(), &ledger_path, resolve)?;
        let files = FilesConfig {
            clients: resolve(&raw.files.clients),
            locations: resolve(&raw.files.locations),
            content: resolve(&raw.files.content),
            roster: resolve(&raw.files.roster),
            ..raw.files
        };
        Ok(Config {
            target,
            api,
            files,
            ledger: LedgerConfig { path: ledger_path },
            defaults: raw.defaults,
            read,
            safety,
            reports,
            columns: raw.columns,
            events,
            recertify,
        })
    }

    /// The folder where runs/<run-id>/ reports go: beside the ledger.
    pub fn runs_dir(&self) -> PathBuf {
        self.ledger
            .path
            .parent()
            .map_or_else(|| PathBuf::from("runs"), |p| p.join("runs"))
    }
}

/// The ranges `[api]` numbers must fall in. Beyond them a value is a typo or an attack, not a
/// setting: a rate of 1e-300 would wait longer than the universe, a window near u64::MAX
/// overflows every clock sum, and a million workers each hold a connection and a task.
pub mod bounds {
    /// Requests per second: one every 100 s at the least, 10,000 at the most.
    pub const REQUESTS_PER_SECOND: (f64, f64) = (0.01, 10_000.0);
    /// Concurrent requests.
    pub const MAX_IN_FLIGHT: (usize, usize) = (1, 256);
    /// Seconds; the API's own window is 30.
    pub const DUPLICATE_WINDOW_SECS: (u64, u64) = (0, 3_600);
    /// Seconds per request.
    pub const TIMEOUT_SECS: (u64, u64) = (1, 600);
    /// Tries of one request.
    pub const MAX_ATTEMPTS: (u32, u32) = (1, 100);
}

fn check_api_bounds(api: &ApiConfig) -> Result<()> {
    fn within<T: PartialOrd + std::fmt::Display>(
        key: &str,
        value: T,
        (low, high): (T, T),
    ) -> Result<()> {
        // Written so that NaN, which compares false with everything, is refused too.
        if value >= low && value <= high {
            Ok(())
        } else {
            bail!("{key}: expected a value from {low} to {high}, found {value}")
        }
    }
    within(
        "requests_per_second",
        api.requests_per_second,
        bounds::REQUESTS_PER_SECOND,
    )?;
    within("max_in_flight", api.max_in_flight, bounds::MAX_IN_FLIGHT)?;
    within(
        "duplicate_window_secs",
        api.duplicate_window_secs,
        bounds::DUPLICATE_WINDOW_SECS,
    )?;
    within("timeout_secs", api.timeout_secs, bounds::TIMEOUT_SECS)?;
    within("max_attempts", api.max_attempts, bounds::MAX_ATTEMPTS)?;
    Ok(())
}

/// https:// anywhere; http:// only to loopback, where nothing leaves the machine. Parsed with
/// a real URL parser, the one the HTTP client uses, so the host checked is the host called:
/// reading the host by hand took `127.0.0.1:80` out of `http://127.0.0.1:80@evil.example`.
/// Returns the URL as the parser normalised it, without a trailing slash.
///
/// No userinfo at all (a password in a URL ends up in error messages and goes out as Basic
/// auth; the secret belongs in the environment), and no query or fragment (the API paths are
/// appended to the base). Messages never repeat the raw value, which may hold a password.
pub fn check_base_url(raw: &str) -> Result<String> {
    let shown = without_userinfo(raw);
    let url = url::Url::parse(raw.trim()).map_err(|e| {
        anyhow::anyhow!("expected a URL like https://academy.example.com, found {shown:?} ({e})")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "a user name or password in the URL is refused (found in {shown:?}): it would be \
             printed and sent as Basic auth; the client secret goes in the variable named by \
             api.client_secret_env"
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!(
            "a query (?...) or fragment (#...) is refused in {shown:?}: API paths are appended to the base URL"
        );
    }
    let loopback = match url.host() {
        None => bail!("expected a host in {shown:?}"),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => bail!(
            "http:// is only allowed for loopback hosts (the secret would cross the network in \
             clear); use https:// for {}",
            url.host_str().unwrap_or_default()
        ),
        other => bail!("expected an https:// URL, found scheme {other:?}"),
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `raw` for error messages: anything before an `@` in its authority, and any query or
/// fragment, replaced (either may carry a password or a key).
fn without_userinfo(raw: &str) -> String {
    let (head, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), raw),
    };
    let cut = rest.find(['?', '#']);
    let (rest, tail) = match cut {
        Some(at) => (&rest[..at], "?***"),
        None => (rest, ""),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    format!("{head}{authority}{path}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [api]
        base_url = "https://academy.example.com/"
        client_id = "xyz"
        client_secret_env = "SECRET_VAR"
        [files]
        clients = "c.csv"
        locations = "l.csv"
        content = "/abs/content.csv"
        roster = "roster.csv"
        [safety]
        max_deactivations = 25
        [columns]
        "Employee ID" = "external_id"
    "#;

    fn env(name: &str) -> Option<String> {
        (name == "SECRET_VAR").then(|| "hunter2".to_owned())
    }

    #[test]
    fn paths_are_relative_to_the_config_and_the_secret_is_hidden() {
        let config = Config::parse(GOOD, Path::new("/etc/rs/config.toml"), env).unwrap();
        assert_eq!(config.files.clients, PathBuf::from("/etc/rs/c.csv"));
        assert_eq!(config.files.content, PathBuf::from("/abs/content.csv"));
        assert_eq!(config.ledger.path, PathBuf::from("/etc/rs/rostersync.db"));
        assert_eq!(config.api.base_url, "https://academy.example.com");
        assert_eq!(config.safety.max_deactivations, Threshold::Count(25));
        assert_eq!(config.reports.keep_runs, 30);
        assert_eq!(config.api.client_secret.expose(), "hunter2");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_the_key() {
        let missing_secret = Config::parse(GOOD, Path::new("c.toml"), |_| None).unwrap_err();
        assert!(format!("{missing_secret:#}").contains("api.client_secret_env"));
        let http = GOOD.replace("https://academy.example.com/", "http://academy.example.com");
        let err = Config::parse(&http, Path::new("c.toml"), env).unwrap_err();
        assert!(format!("{err:#}").contains("api.base_url"), "{err:#}");
        let local = GOOD.replace("https://academy.example.com/", "http://127.0.0.1:8080");
        assert!(Config::parse(&local, Path::new("c.toml"), env).is_ok());
        let typo = GOOD.replace("client_id", "clientid");
        let err = Config::parse(&typo, Path::new("c.toml"), env).unwrap_err();
        assert!(format!("{err:#}").contains("clientid"), "{err:#}");
        let bad = GOOD.replace("max_deactivations = 25", "max_deactivations = \"lots\"");
        let err = Config::parse(&bad, Path::new("c.toml"), env).unwrap_err();
        assert!(
            format!("{err:#}").contains("safety.max_deactivations"),
            "{err:#}"
        );
    }

    #[test]
    fn a_prancer_config_needs_no_praesidium_login_and_names_its_own_keys() {
        let text = "[target]\nkind = \"prancer\"\n[prancer]\ntoken_env = \"PRANCER_TOKEN\"\n\
                    [api]\nbase_url = \"https://portal.example.com/customer1\"\n\
                    [files]\nroster = \"roster.csv\"\n";
        let token = |name: &str| (name == "PRANCER_TOKEN").then(|| "t0ken".to_owned());
        let config = Config::parse(text, Path::new("p.toml"), token).unwrap();
        assert_eq!(config.target.kind(), Kind::Prancer);
        assert!(!format!("{config:?}").contains("t0ken"));
        let missing = Config::parse(text, Path::new("p.toml"), |_| None).unwrap_err();
        let message = format!("{missing:#}");
        // The file named once, then the key.
        assert!(
            message.starts_with("p.toml: prancer.token_env: the environment variable"),
            "{message}"
        );
        // Praesidium's login is checked where it is read: in [api], for Praesidium only.
        let praesidium = GOOD.replace("client_id = \"xyz\"\n", "");
        let error = Config::parse(&praesidium, Path::new("c.toml"), env).unwrap_err();
        assert!(
            format!("{error:#}").starts_with("c.toml: api.client_id: expected a client id"),
            "{error:#}"
        );
        assert_eq!(
            Config::parse(GOOD, Path::new("c.toml"), env)
                .unwrap()
                .api
                .scope,
            None
        );
    }

    #[test]
    fn hostile_numbers_are_refused_with_their_bounds() {
        for (key, value) in [
            ("requests_per_second", "1e-300"),
            ("requests_per_second", "nan"),
            ("requests_per_second", "inf"),
            ("requests_per_second", "0.0"),
            ("max_in_flight", "1000000"),
            ("max_in_flight", "0"),
            ("duplicate_window_secs", "9223372036854775807"),
            ("timeout_secs", "0"),
            ("max_attempts", "0"),
            ("max_attempts", "4000000000"),
        ] {
            let text = GOOD.replace("[files]", &format!("{key} = {value}\n[files]"));
            let err = Config::parse(&text, Path::new("c.toml"), env).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains(key), "{message}");
            assert!(message.contains("expected a value from"), "{message}");
        }
        let fine = GOOD.replace(
            "[files]",
            "requests_per_second = 0.5\nduplicate_window_secs = 0\nmax_in_flight = 256\n[files]",
        );
        assert!(Config::parse(&fine, Path::new("c.toml"), env).is_ok());
    }

    #[test]
    fn base_urls_with_userinfo_query_or_a_non_loopback_http_host_are_refused() {
        for (raw, expected) in [
            (
                "https://academy.example.com/",
                "https://academy.example.com",
            ),
            (
                "https://academy.example.com/lms/",
                "https://academy.example.com/lms",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://localhost:8080/", "http://localhost:8080"),
            ("http://[::1]:9/", "http://[::1]:9"),
            ("http://127.1:80", "http://127.0.0.1"),
        ] {
            assert_eq!(check_base_url(raw).unwrap(), expected, "{raw}");
        }
        for raw in [
            // Issue 9: the host is evil.example, not 127.0.0.1.
            "http://127.0.0.1:80@evil.example",
            "http://127.0.0.1:80@evil.example/",
            "http://localhost@10.0.0.1",
            "https://user:hunter2pw@academy.example.com",
            "https://user@academy.example.com",
            "https://:hunter2pw@academy.example.com",
            "https://academy.example.com/?a=1",
            "https://academy.example.com/#x",
            "http://academy.example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "academy.example.com",
            "https://",
            "https://user:hunter2pw@exa mple.com",
            "https://academy.example.com/?key=hunter2pw",
            "https://academy.example.com/#hunter2pw",
            "user:hunter2pw@academy.example.com",
        ] {
            let err = check_base_url(raw).unwrap_err();
            assert!(!format!("{err:#}").contains("hunter2pw"), "{raw}: {err:#}");
        }
        let err = check_base_url("http://127.0.0.1:80@evil.example").unwrap_err();
        assert!(
            format!("{err:#}").contains("user name or password"),
            "{err:#}"
        );
    }

    #[test]
    fn safety_and_reports_keys_are_read_and_checked() {
        let text = GOOD.replace(
            "max_deactivations = 25",
            "max_deactivations = \"5%\"\nmax_deactivations_floor = 1\nmax_updates = \"off\"\n[reports]\nkeep_runs = 7",
        );
        let config = Config::parse(&text, Path::new("c.toml"), env).unwrap();
        assert_eq!(
            config.safety,
            Safety {
                max_deactivations: Threshold::Percent(5.0),
                max_deactivations_floor: 1,
                max_updates: None,
                max_updates_floor: 10,
                ..Safety::default()
            }
        );
        assert_eq!(config.safety.update_limit(100), None);
        assert_eq!(config.reports.keep_runs, 7);
        for (bad, key) in [
            ("max_updates = \"most\"", "safety.max_updates"),
            ("max_updates = -3", "safety.max_updates"),
            ("max_deactivations_floor = -1", "max_deactivations_floor"),
            ("[reports]\nkeep_runs = 0", "reports.keep_runs"),
        ] {
            let text = GOOD.replace("max_deactivations = 25", bad);
            let err = Config::parse(&text, Path::new("c.toml"), env).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{bad}: {err:#}");
        }
    }
}
