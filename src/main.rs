//! The `rostersync` command line: parses arguments, runs the library, maps errors to exit
//! codes. Nothing else lives here.
//!
//! Exit codes: 0 all converged; 1 fatal (bad config, unreadable or structurally invalid
//! input, authentication refused); 2 finished, but some rows were rejected or some ops failed;
//! 3 refused by a safety threshold; 4 another run holds the ledger's lock.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rostersync::commands::{self, Finish, PlanOptions};
use rostersync::ledger::LedgerLocked;
use rostersync::plan::ThresholdExceeded;
use rostersync::targets::praesidium::sim;

// A plan hands millions of small allocations from the roster thread to the ledger writer;
// glibc's allocator spent a quarter of the time freeing them across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rostersync",
    version,
    about = "Provision people into the Praesidium learning platform from CSV rosters",
    after_help = "Exit codes: 0 converged, 1 fatal, 2 rows rejected or ops failed, 3 refused by a safety threshold, 4 ledger locked by another run."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the simulator in-process, provision samples/ over two nights, print what happened.
    Demo,
    /// Read the roster, diff it against the ledger and store the plan (sends nothing).
    Plan {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Roster to read instead of the one the config names.
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
        /// Print the plan summary as JSON.
        #[arg(long)]
        json: bool,
        /// Accept up to N deactivations even when over safety.max_deactivations.
        #[arg(long, value_name = "N")]
        allow_deactivations: Option<u64>,
    },
    /// Execute (or resume) the stored plan.
    Apply {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Plan and apply in one go: the cron entry point.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Roster to read instead of the one the config names.
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
        /// Plan and report, but send nothing and store no plan.
        #[arg(long)]
        dry_run: bool,
        /// Accept up to N deactivations even when over safety.max_deactivations.
        #[arg(long, value_name = "N")]
        allow_deactivations: Option<u64>,
    },
    /// Show the last runs and the ops not done.
    Status {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run the Praesidium API simulator as a server (for tests, demos and rehearsals).
    Sim(sim::SimArgs),
}

/// Whether log lines may be coloured: stderr is a terminal and `NO_COLOR` (no-color.org) is
/// unset or empty.
fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROSTERSYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: cron mails and log files get plain text.
        .with_ansi(colour_wanted())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo => commands::demo().await,
            Command::Plan {
                config,
                roster,
                json,
                allow_deactivations,
            } => commands::plan(
                &config,
                &PlanOptions {
                    roster,
                    allow_deactivations,
                    json,
                    dry_run: false,
                },
            ),
            Command::Apply { config } => commands::apply(&config).await,
            Command::Run {
                config,
                roster,
                dry_run,
                allow_deactivations,
            } => {
                commands::run(
                    &config,
                    &PlanOptions {
                        roster,
                        allow_deactivations,
                        dry_run,
                        json: false,
                    },
                )
                .await
            }
            Command::Status { config, json } => commands::status(&config, json),
            Command::Sim(args) => sim::run(args).await.map(|()| Finish::Converged),
        }
    });
    match result {
        Ok(Finish::Converged) => ExitCode::SUCCESS,
        Ok(Finish::Incomplete) => ExitCode::from(2),
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<ThresholdExceeded>().is_some() {
                ExitCode::from(3)
            } else if error.downcast_ref::<LedgerLocked>().is_some() {
                ExitCode::from(4)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
