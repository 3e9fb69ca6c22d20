//! `rostersync sim --target prancer`: the options only the prancer simulator has, and running
//! it as a server until Ctrl-C or SIGTERM.
//!
//! Owns turning flags into [`SimOptions`] and what the process prints. The options every
//! simulator has (`--listen`, `--allow-remote`, `--seed`, `--log-capacity`, the fault
//! flags) are parsed once for all targets by `targets::simulate`, which hands them over.

use std::net::SocketAddr;

use anyhow::Result;

use super::{DEFAULT_CUSTOMER, DEMO_STAFF_TOKEN, DEMO_TOKEN, Faults, Sim, SimOptions, start};
use crate::targets::sim_kit::faults::Knobs;
use crate::targets::sim_kit::{check_listen, shutdown_signal};

/// The groups `--groups` defaults to, as clap takes them.
pub const DEFAULT_GROUPS_FLAG: &str = "Owner,Security Admin,Debug Team,Developer,Auditor,Viewer";

/// The prancer simulator's own flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PrancerArgs {
    /// (--target prancer) The customer path segment the API is served under:
    /// http://ADDR/CUSTOMER/api/user/...
    #[arg(long, default_value = DEFAULT_CUSTOMER)]
    pub customer: String,
    /// (--target prancer) The bearer token of the admin caller (may invite, delete, set
    /// groups).
    #[arg(
        long,
        env = "ROSTERSYNC_SIM_PRANCER_TOKEN",
        default_value = DEMO_TOKEN,
        hide_env_values = true
    )]
    pub token: String,
    /// (--target prancer) The bearer token of the staff caller (is_staff, read-only: may get
    /// itself, list users and set its own page tours; not invite, delete or set groups).
    #[arg(long, default_value = DEMO_STAFF_TOKEN)]
    pub staff_token: String,
    /// (--target prancer) The groups users may be given, comma-separated, exactly as spelled.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_GROUPS_FLAG)]
    pub groups: Vec<String>,
    /// (--target prancer) Answer 429 without a Retry-After header, as an API that does not
    /// say when to come back.
    #[arg(long)]
    pub no_retry_after: bool,
}

impl PrancerArgs {
    /// The simulator options from these flags and the common ones.
    pub fn options(&self, knobs: Knobs, seed: Option<u64>, log_capacity: usize) -> SimOptions {
        SimOptions {
            customer: self.customer.clone(),
            admin_token: self.token.clone(),
            staff_token: self.staff_token.clone(),
            groups: self.groups.clone(),
            faults: Faults::from_knobs(knobs, !self.no_retry_after),
            seed,
            log_capacity,
            ..SimOptions::default()
        }
    }

    /// The flags of this target given a value other than their default: refused when
    /// another target runs, rather than silently ignored. `--token` is not among them: it
    /// may come from the environment, set for another run.
    pub fn changed(&self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.customer != DEFAULT_CUSTOMER {
            changed.push("--customer");
        }
        if self.staff_token != DEMO_STAFF_TOKEN {
            changed.push("--staff-token");
        }
        if self.groups.join(",") != DEFAULT_GROUPS_FLAG {
            changed.push("--groups");
        }
        if self.no_retry_after {
            changed.push("--no-retry-after");
        }
        changed
    }
}

/// The warning printed when listening beyond loopback.
fn remote_warning(bound: SocketAddr, options: &SimOptions) -> String {
    let token = if options.admin_token == DEMO_TOKEN {
        format!(
            "the PUBLIC demo token {DEMO_TOKEN:?} (set ROSTERSYNC_SIM_PRANCER_TOKEN to change it)"
        )
    } else {
        "the token you gave".to_owned()
    };
    format!(
        "WARNING: --allow-remote: the simulator listens on {bound}, beyond this machine. \
         Anyone who can reach it can manage its users with {token}, over plain HTTP. \
         The admin endpoints still answer loopback clients only."
    )
}

/// Runs the prancer simulator until Ctrl-C or SIGTERM. Prints the bound address on the first
/// line of standard output and the API's base URL (customer path included) on the second.
pub async fn run(listen: SocketAddr, allow_remote: bool, options: SimOptions) -> Result<()> {
    check_listen(listen, allow_remote)?;
    let sim = Sim::new(options)?;
    let running = start(sim.clone(), listen).await?;
    if !listen.ip().is_loopback() {
        // Printed, not logged: no log filter may hide it.
        eprintln!("{}", remote_warning(running.addr, sim.options()));
    }
    println!("{}", running.addr);
    println!("{}", running.base_url());
    tracing::info!(
        "prancer simulator serving {} (admin: {}/admin/users, /admin/accept, /admin/age, \
         /admin/requests, /admin/faults, /admin/reset)",
        running.base_url(),
        running.root_url()
    );
    shutdown_signal().await;
    running.stop().await;
    Ok(())
}
