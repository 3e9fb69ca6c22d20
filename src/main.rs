//! The `rostersync` command line: parses arguments, runs the library, maps errors to exit
//! codes. Nothing else lives here.
//!
//! Exit codes: 0 all converged; 1 fatal (bad config, unreadable or structurally invalid
//! input, authentication refused); 2 finished, but some rows were rejected or some ops failed;
//! 3 refused by a safety threshold; 4 another run holds the ledger's lock.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rostersync::commands::{self, Finish, PlanOptions};
use rostersync::completions::Format;
use rostersync::ledger::LedgerLocked;
use rostersync::plan::{Allowances, ThresholdExceeded};
use rostersync::targets::{ServeOptions, simulate};

// A plan hands millions of small allocations from the roster thread to the ledger writer;
// glibc's allocator spent a quarter of the time freeing them across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rostersync",
    version,
    about = "Provision people into learning platforms (Praesidium, prancer) from CSV rosters",
    after_help = "Exit codes: 0 converged, 1 fatal, 2 rows rejected or ops failed, 3 refused by a safety threshold, 4 ledger locked by another run."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the simulator in-process, provision samples/ over three nights, then a completion
    /// published, received and recertified; print what happened.
    Demo,
    /// Read the roster, diff it against the ledger, store the plan and write plan.csv (sends
    /// nothing, needs no client secret).
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        /// Roster to read instead of the one the config names ([files] roster).
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
        /// Print the plan summary as JSON (with plan.csv's path and the first ops of each kind).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        allow: AllowArgs,
    },
    /// Execute (or resume) the stored plan.
    Apply {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Plan and apply in one go: the cron entry point.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Roster to read instead of the one the config names ([files] roster).
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
        /// Plan, write plan.csv and report, but send nothing and store no plan (needs no
        /// client secret).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        allow: AllowArgs,
    },
    /// Show each run's outcome, the ops of the current plan not done, and what to do next.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Learning events the platform publishes (Praesidium): `events serve` receives them.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Who completed what when, and who is due soon or overdue under [[recertify]]: the
    /// compliance report, on stdout (CSV or JSON), with the events that match nobody.
    Completions {
        #[command(flatten)]
        config: ConfigArg,
        /// Only completions on or after this date (2026-01-31, or a UTC time).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
    },
    /// Run an API simulator as a server (for tests, demos and rehearsals): Praesidium's, or
    /// prancer's with --target prancer.
    Sim(Box<simulate::SimArgs>),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Receive learning events until SIGTERM or Ctrl-C: each is stored durably before it is
    /// acknowledged (Basic credentials from the variables [events] names).
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Address and port to listen on, instead of [events] listen (default 127.0.0.1:8787).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Allow an address other than loopback (only behind a TLS proxy on another host:
        /// the receiver itself speaks plain HTTP).
        #[arg(long)]
        allow_remote: bool,
    },
}

#[derive(Args)]
struct ConfigArg {
    /// The TOML config file; relative paths in it are relative to the file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Args)]
struct AllowArgs {
    /// Accept up to N deactivations in this plan even when over safety.max_deactivations
    /// (the refusal names N and plan.csv lists who).
    #[arg(long, value_name = "N")]
    allow_deactivations: Option<u64>,
    /// Accept up to N updates in this plan even when over safety.max_updates.
    #[arg(long, value_name = "N")]
    allow_updates: Option<u64>,
    /// Accept up to N re-enrollments (recertification) in this plan even when over
    /// safety.max_reenrollments.
    #[arg(long, value_name = "N")]
    allow_reenrollments: Option<u64>,
}

impl AllowArgs {
    fn allowances(&self) -> Allowances {
        Allowances {
            deactivations: self.allow_deactivations,
            updates: self.allow_updates,
            reenrollments: self.allow_reenrollments,
        }
    }
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
                allow,
            } => commands::plan(
                &config.config,
                &PlanOptions {
                    roster,
                    allow: allow.allowances(),
                    json,
                    dry_run: false,
                    now: None,
                },
            ),
            Command::Apply { config } => commands::apply(&config.config).await,
            Command::Run {
                config,
                roster,
                dry_run,
                allow,
            } => {
                commands::run(
                    &config.config,
                    &PlanOptions {
                        roster,
                        allow: allow.allowances(),
                        dry_run,
                        json: false,
                        now: None,
                    },
                )
                .await
            }
            Command::Status { config, json } => commands::status(&config.config, json),
            Command::Events {
                command:
                    EventsCommand::Serve {
                        config,
                        listen,
                        allow_remote,
                    },
            } => {
                commands::events_serve(
                    &config.config,
                    ServeOptions {
                        listen,
                        allow_remote,
                    },
                )
                .await
            }
            Command::Completions {
                config,
                since,
                format,
            } => commands::completions(&config.config, since.as_deref(), format),
            Command::Sim(args) => simulate::run(*args).await.map(|()| Finish::Converged),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Issue 10: `--config` and `--json` had no help text. Every option of every subcommand
    /// (the simulator's too) says what it does.
    #[test]
    fn every_option_of_every_subcommand_has_help() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        for command in cli.get_subcommands() {
            assert!(
                command.get_about().is_some(),
                "{} has no description",
                command.get_name()
            );
            for arg in command.get_arguments() {
                let generated = ["help", "version"].contains(&arg.get_id().as_str());
                if !generated && arg.get_help().is_none() {
                    missing.push(format!("{} --{}", command.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "options without help: {missing:?}");
        let plan = cli.find_subcommand("plan").unwrap();
        assert!(plan.get_arguments().any(|a| a.get_id() == "config"));
    }
}
