//! A strict, faithful simulator of the Praesidium User Management REST API v2, for tests,
//! benchmarks and the demo.
//!
//! Owns the simulated academy (`store`), authentication (`auth`), the fault settings
//! (`faults`), what the request log says (`request_log`), the HTTP routes (`routes`,
//! `admin`), starting the server (`server`), and Event Publishing: completing content
//! (`completion`), what a learning event says (`events`) and sending it (`publisher`). The machinery every simulator shares (the
//! accept loop that can drop a connection after processing, fault decisions, the bounded
//! log, the Host/Origin checks that keep browsers out) is `targets::sim_kit`. Listens on
//! loopback unless told `--allow-remote`.
//! It must behave like the real service where the spec says how, and refuse what the real
//! service would refuse: a lenient fake would hide client bugs.

pub mod admin;
pub mod auth;
pub mod completion;
pub mod events;
pub mod faults;
pub mod publisher;
pub mod request_log;
pub mod routes;
pub mod server;
pub mod store;

pub use crate::targets::sim_kit::guard;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::ingest::catalog::Catalog;
use crate::ingest::normalize::fold;
pub use auth::Credential;
use events::EventArgs;
pub use events::{CompleteError, Completed, Endpoint, EndpointView};
use faults::FaultState;
pub use faults::Faults;
use publisher::Publisher;
use request_log::{LogEntry, RequestLog};
pub use server::{RunningSim, start};
use store::{SimUser, Store};

pub(crate) use crate::targets::sim_kit::lock;

/// How a simulator is set up (everything but the catalog).
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub credentials: Vec<Credential>,
    pub faults: Faults,
    /// Seed for injected faults and latency; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Most request-log entries kept (oldest dropped first).
    pub log_capacity: usize,
    /// JSON file the users are kept in across restarts.
    pub state_file: Option<PathBuf>,
    /// Where learning events are POSTed (default: nowhere, completions publish nothing).
    pub events_endpoint: Endpoint,
    /// Attempts per event before the publisher gives up (default 20, at least 1).
    pub events_max_attempts: u32,
}

impl SimOptions {
    /// One credential managing every client of the catalog, no faults, no persistence.
    pub fn single_credential(
        catalog: &Catalog,
        client_id: &str,
        client_secret: &str,
    ) -> SimOptions {
        SimOptions {
            credentials: vec![Credential {
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
                managed_clients: catalog.clients.iter().map(|c| c.uuid.clone()).collect(),
            }],
            faults: Faults::default(),
            seed: None,
            log_capacity: 200_000,
            state_file: None,
            events_endpoint: Endpoint::default(),
            events_max_attempts: events::DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// The simulated service; shared by every connection.
pub struct Sim {
    catalog: Catalog,
    credentials: Vec<Credential>,
    tokens: auth::Tokens,
    store: Mutex<Store>,
    log: Mutex<RequestLog>,
    faults: Mutex<FaultState>,
    state_file: Option<PathBuf>,
    dirty: AtomicBool,
    started: Instant,
    events: Publisher,
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    users: Vec<SimUser>,
}

impl Sim {
    pub fn new(catalog: Catalog, options: SimOptions) -> Result<Arc<Sim>> {
        options.faults.check().map_err(anyhow::Error::msg)?;
        if options.credentials.is_empty() {
            bail!("the simulator needs at least one credential");
        }
        let users = match &options.state_file {
            Some(path) if path.exists() => load_state(path)?,
            _ => Vec::new(),
        };
        Ok(Arc::new(Sim {
            catalog,
            credentials: options.credentials,
            tokens: auth::Tokens::new(),
            store: Mutex::new(Store::from_users(users)),
            log: Mutex::new(RequestLog::new(options.log_capacity)),
            faults: Mutex::new(FaultState::new(options.faults, options.seed)),
            state_file: options.state_file,
            dirty: AtomicBool::new(false),
            started: Instant::now(),
            events: Publisher::new(options.events_endpoint, options.events_max_attempts),
        }))
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.faults).set(faults);
    }

    /// Every user with its enrollments, oldest first.
    pub fn users(&self) -> Vec<SimUser> {
        lock(&self.store).users()
    }

    pub fn user_count(&self) -> usize {
        lock(&self.store).len()
    }

    /// Request-log entries after `since`, at most `limit`.
    pub fn requests(&self, since: u64, limit: usize) -> Vec<LogEntry> {
        lock(&self.log).since(since, limit)
    }

    /// Forgets all users, the request log, the duplicate window and the event delivery log;
    /// keeps faults and the events endpoint (events already queued are still sent).
    pub fn reset(&self) {
        *lock(&self.store) = Store::default();
        lock(&self.log).clear();
        self.events.clear_log();
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn credential(&self, client_id: &str) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.client_id == client_id)
    }

    /// Every client of the catalog: used by the admin endpoint that seeds users anywhere.
    fn all_clients(&self) -> HashSet<String> {
        self.catalog
            .clients
            .iter()
            .map(|c| c.uuid.clone())
            .collect()
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Writes the users to the state file if anything changed since the last save.
    pub fn save_if_dirty(&self) -> Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let state = SavedState {
            users: self.users(),
        };
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(&state).context("cannot serialize the simulator state")?;
        // It holds every simulated person's name and email: 0600, like rostersync's reports.
        std::io::Write::write_all(&mut crate::fsmode::create_private_new(&tmp)?, &json)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }
}

fn load_state(path: &Path) -> Result<Vec<SimUser>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let state: SavedState = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a simulator state file", path.display()))?;
    Ok(state.users)
}

/// The secret `rostersync sim` accepts unless told another: public, in this source.
pub const DEMO_SECRET: &str = "demo-secret";
/// The client_id `rostersync sim` accepts unless told another.
pub const DEMO_CLIENT_ID: &str = "rostersync-demo";

/// `rostersync sim`: the simulator as a server.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port. The bound address is printed on the
    /// first line of standard output. A non-loopback address needs --allow-remote.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow --listen on a non-loopback address (e.g. 0.0.0.0): the API, with its known
    /// credential, becomes reachable from other hosts. The admin endpoints still answer
    /// loopback clients only.
    #[arg(long)]
    pub allow_remote: bool,
    /// (--target praesidium) Folder holding clients.csv, locations.csv and content.csv
    /// (default: the built-in sample catalogs, the same as samples/).
    #[arg(long, value_name = "DIR")]
    pub catalog_dir: Option<PathBuf>,
    /// (--target praesidium) The client_id the simulator accepts.
    #[arg(long, default_value = DEMO_CLIENT_ID)]
    pub client_id: String,
    /// (--target praesidium) The client_secret the simulator accepts.
    #[arg(
        long,
        env = "ROSTERSYNC_SIM_CLIENT_SECRET",
        default_value = DEMO_SECRET,
        hide_env_values = true
    )]
    pub client_secret: String,
    /// (--target praesidium) Clients (names or UUIDs, comma-separated) the credential may
    /// manage: its hierarchy. Default: every client of the catalog.
    #[arg(long, value_delimiter = ',')]
    pub managed_clients: Vec<String>,
    /// Seed for injected faults and latency, so a failing run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// (--target praesidium) JSON file to keep users in across restarts (read at start,
    /// written as they change).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Most request-log entries kept in memory (the oldest are dropped first).
    #[arg(long, default_value_t = 200_000)]
    pub log_capacity: usize,
    #[command(flatten)]
    pub faults: Faults,
    #[command(flatten)]
    pub events: EventArgs,
}

impl SimArgs {
    /// Refuses a non-loopback `--listen` without `--allow-remote`: the simulator has a known
    /// credential and no TLS, and is meant for this machine.
    pub fn check_listen(&self) -> Result<()> {
        crate::targets::sim_kit::check_listen(self.listen, self.allow_remote)
    }

    /// The flags only this target has, given a value other than their default: refused when
    /// another target runs, rather than silently ignored. `--client-secret` is not among
    /// them: it may come from the environment, set for another run.
    pub fn changed(&self) -> Vec<&'static str> {
        let defaults = Faults::default();
        [
            ("--catalog-dir", self.catalog_dir.is_some()),
            ("--client-id", self.client_id != DEMO_CLIENT_ID),
            ("--managed-clients", !self.managed_clients.is_empty()),
            ("--state-file", self.state_file.is_some()),
            (
                "--token-lifetime-secs",
                self.faults.token_lifetime_secs != defaults.token_lifetime_secs,
            ),
            (
                "--duplicate-window-secs",
                self.faults.duplicate_window_secs != defaults.duplicate_window_secs,
            ),
        ]
        .into_iter()
        .filter_map(|(flag, changed)| changed.then_some(flag))
        .chain(self.events.changed())
        .collect()
    }

    /// The warning printed when listening beyond loopback.
    fn remote_warning(&self, bound: SocketAddr) -> String {
        let secret = if self.client_secret == DEMO_SECRET {
            format!(
                "with the PUBLIC demo secret {DEMO_SECRET:?} (set ROSTERSYNC_SIM_CLIENT_SECRET to change it)"
            )
        } else {
            "with the secret you gave".to_owned()
        };
        format!(
            "WARNING: --allow-remote: the simulator listens on {bound}, beyond this machine. \
             Anyone who can reach it can log in as client_id {:?} {secret}, over plain HTTP. \
             The admin endpoints still answer loopback clients only.",
            self.client_id
        )
    }

    /// Loads the catalog and turns the flags into simulator options.
    pub fn build(&self) -> Result<(Catalog, SimOptions)> {
        let catalog = match &self.catalog_dir {
            Some(dir) => Catalog::load(
                &dir.join("clients.csv"),
                &dir.join("locations.csv"),
                &dir.join("content.csv"),
            )?,
            None => crate::samples::catalog(),
        };
        let mut options =
            SimOptions::single_credential(&catalog, &self.client_id, &self.client_secret);
        if !self.managed_clients.is_empty() {
            let mut managed = HashSet::new();
            for reference in &self.managed_clients {
                let client = catalog.client(reference).with_context(|| {
                    format!("--managed-clients: {reference:?} is not a client of the catalog")
                })?;
                managed.insert(fold(&client.uuid));
            }
            options.credentials[0].managed_clients = managed;
        }
        options.faults = self.faults.clone();
        options.seed = self.seed;
        options.log_capacity = self.log_capacity;
        options.state_file = self.state_file.clone();
        options.events_endpoint = self.events.endpoint(|var| std::env::var(var).ok())?;
        options.events_max_attempts = self.events.events_max_attempts;
        Ok((catalog, options))
    }
}

/// Runs the simulator until Ctrl-C or SIGTERM, then saves its state.
pub async fn run(args: SimArgs) -> Result<()> {
    args.check_listen()?;
    let (catalog, options) = args.build()?;
    let sim = Sim::new(catalog, options)?;
    let running = start(sim.clone(), args.listen).await?;
    if !args.listen.ip().is_loopback() {
        // Printed, not logged: no log filter may hide it.
        eprintln!("{}", args.remote_warning(running.addr));
    }
    println!("{}", running.addr);
    tracing::info!(
        "simulator serving http://{} (admin: /admin/users, /admin/requests, /admin/faults, /admin/reset, /admin/complete, /admin/events)",
        running.addr
    );
    crate::targets::sim_kit::shutdown_signal().await;
    running.stop().await;
    sim.save_if_dirty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|c| c.sim)
    }

    #[test]
    fn the_event_flags_are_this_targets_own() {
        assert!(parse(&[]).unwrap().changed().is_empty());
        let args = parse(&[
            "--events-url",
            "http://127.0.0.1:9/events",
            "--events-max-attempts",
            "3",
        ])
        .unwrap();
        assert_eq!(args.changed(), ["--events-url", "--events-max-attempts"]);
        let (_, options) = args.build().unwrap();
        assert_eq!(options.events_max_attempts, 3);
        assert_eq!(
            options.events_endpoint.view().url.as_deref(),
            Some("http://127.0.0.1:9/events")
        );
    }

    #[test]
    fn event_flags_out_of_range_or_malformed_are_refused() {
        for attempts in ["0", "1001"] {
            assert!(parse(&["--events-max-attempts", attempts]).is_err());
        }
        let args = parse(&["--events-url", "ftp://example/x"]).unwrap();
        assert!(
            args.build()
                .unwrap_err()
                .to_string()
                .contains("--events-url")
        );
    }
}
