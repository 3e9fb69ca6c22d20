//! `rostersync demo`: the Praesidium simulator in-process, an onboarding import of the
//! samples, a night of changes, and a quiet night, each through the real commands.
//!
//! Owns only the staging (a folder, the simulator, the config); it must never need anything
//! on the machine beyond what the binary embeds.

use anyhow::{Context, Result};

use super::sim::{Sim, SimOptions, start};
use crate::commands::{Finish, PlanOptions, run_with};
use crate::config::Config;
use crate::human;

/// `rostersync demo`: the simulator in-process, an onboarding import, then a second night.
pub async fn run() -> Result<Finish> {
    const SECRET_ENV: &str = "ROSTERSYNC_DEMO_SECRET";
    let secret = "demo-secret";
    let dir = tempfile::Builder::new()
        .prefix("rostersync-demo-")
        .tempdir()
        .context("cannot create a demo folder")?
        .keep();
    let catalog = crate::samples::catalog();
    let sim = Sim::new(
        catalog,
        SimOptions::single_credential(&crate::samples::catalog(), "rostersync-demo", secret),
    )?;
    let running = start(sim.clone(), "127.0.0.1:0".parse().expect("literal address")).await?;
    for (name, text) in crate::samples::FILES {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    let config_text =
        crate::samples::DEMO_TOML.replace("http://127.0.0.1:8080", &running.base_url());
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, &config_text)?;
    let config = Config::parse(&config_text, &config_path, |name| {
        (name == SECRET_ENV).then(|| secret.to_owned())
    })?;

    crate::say!(
        "rostersync demo: simulator on {}, working folder {}\n",
        running.base_url(),
        human::path(&dir)
    );
    crate::say!("== night 1: onboarding import of samples/roster.csv");
    let first = run_with(&config, &PlanOptions::default()).await?;
    crate::say!(
        "\n== night 2: samples/roster-night2.csv (new hires, changes, leavers, course changes)"
    );
    let second = run_with(
        &config,
        &PlanOptions {
            roster: Some(dir.join("roster-night2.csv")),
            ..PlanOptions::default()
        },
    )
    .await?;
    crate::say!("\n== night 3: the same roster again");
    run_with(
        &config,
        &PlanOptions {
            roster: Some(dir.join("roster-night2.csv")),
            ..PlanOptions::default()
        },
    )
    .await?;
    let users = sim.users();
    let active = users
        .iter()
        .filter(|u| u.user.system.status.as_deref() == Some("active"))
        .count();
    crate::say!(
        "\nthe simulator now holds {} users ({} active). The sample rosters hold a few deliberately bad rows:",
        users.len(),
        active
    );
    crate::say!(
        "see rejects.csv in each run folder under {}.",
        human::path(&dir.join("runs"))
    );
    running.stop().await;
    // The sample rosters reject a few rows on purpose; the demo itself succeeded.
    let _ = (first, second);
    Ok(Finish::Converged)
}
