//! `rostersync sim`: which API simulator to run, and the options they share.
//!
//! Owns choosing the target (`--target`, Praesidium unless told otherwise, so every existing
//! invocation keeps working) and refusing a flag that belongs to the other target instead
//! of ignoring it. The common options (`--listen`, `--allow-remote`, `--seed`,
//! `--log-capacity`, the fault and rate-limit flags) are parsed once, with the Praesidium
//! simulator's flags, and handed to whichever runs. Never runs a simulator itself beyond
//! calling its `run`.

use anyhow::{Result, bail};

use crate::targets::praesidium::sim as praesidium;
use crate::targets::prancer::sim::cli as prancer;
use crate::targets::sim_kit::faults::HasKnobs;

/// The APIs `rostersync sim` can imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimTarget {
    /// The Praesidium User Management REST API v2.
    Praesidium,
    /// The prancer users API, served under http://ADDR/CUSTOMER.
    Prancer,
}

/// `rostersync sim`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Which API to simulate. Options marked (--target praesidium) or (--target prancer)
    /// belong to that target only; the others apply to both.
    #[arg(long, value_enum, default_value_t = SimTarget::Praesidium)]
    pub target: SimTarget,
    #[command(flatten)]
    pub praesidium: praesidium::SimArgs,
    #[command(flatten)]
    pub prancer: prancer::PrancerArgs,
}

impl SimArgs {
    /// Refuses the other target's flags.
    fn check_target(&self) -> Result<()> {
        let (foreign, owner) = match self.target {
            SimTarget::Praesidium => (self.prancer.changed(), "prancer"),
            SimTarget::Prancer => (self.praesidium.changed(), "praesidium"),
        };
        if let Some(flag) = foreign.first() {
            bail!("{flag} applies to --target {owner} only");
        }
        Ok(())
    }
}

/// Runs the chosen simulator until Ctrl-C or SIGTERM.
pub async fn run(args: SimArgs) -> Result<()> {
    args.check_target()?;
    match args.target {
        SimTarget::Praesidium => praesidium::run(args.praesidium).await,
        SimTarget::Prancer => {
            let common = &args.praesidium;
            let options =
                args.prancer
                    .options(common.faults.knobs(), common.seed, common.log_capacity);
            prancer::run(common.listen, common.allow_remote, options).await
        }
    }
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

    fn parse(args: &[&str]) -> SimArgs {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .unwrap()
            .sim
    }

    #[test]
    fn the_target_defaults_to_praesidium_and_defaults_pass_either_way() {
        let args = parse(&[]);
        assert_eq!(args.target, SimTarget::Praesidium);
        assert!(args.check_target().is_ok());
        let args = parse(&["--target", "prancer", "--rate-limit", "5"]);
        assert!(args.check_target().is_ok());
        assert_eq!(
            args.prancer.groups,
            [
                "Owner",
                "Security Admin",
                "Debug Team",
                "Developer",
                "Auditor",
                "Viewer"
            ]
        );
    }

    #[test]
    fn a_flag_of_the_other_target_is_refused() {
        let error = parse(&["--customer", "acme"]).check_target().unwrap_err();
        assert_eq!(
            error.to_string(),
            "--customer applies to --target prancer only"
        );
        let error = parse(&["--target", "prancer", "--client-id", "x"])
            .check_target()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "--client-id applies to --target praesidium only"
        );
        assert!(
            parse(&["--target", "prancer", "--duplicate-window-secs", "2"])
                .check_target()
                .is_err()
        );
    }
}
