//! `rostersync demo`: the Praesidium simulator in-process, an onboarding import of the
//! samples, a night of changes, and a quiet night, each through the real commands; then the
//! learning-event loop: a completion published to the receiver, eleven months passing on
//! the policy clock, and the night that re-enrolls the learner.
//!
//! Owns only the staging (a folder, the simulator, the config); it must never need anything
//! on the machine beyond what the binary embeds.

use anyhow::{Context, Result};

use std::sync::Arc;
use std::time::Duration;

use super::sim::events::Endpoint;
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
    learning_events(&config, &sim, &dir).await?;
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

/// The learning-event loop: the receiver in-process, a completion the simulator publishes to
/// it, then two nights eleven months on (the policy clock moved, see
/// [`PlanOptions::now`]): the first re-enrolls the learner, the second sends nothing.
async fn learning_events(config: &Config, sim: &Arc<Sim>, dir: &std::path::Path) -> Result<()> {
    const USER: &str = "praesidium-demo";
    let password = crate::config::Secret::new("demo-events-password-not-for-real-use");
    let receiver = super::events::start(
        config,
        "127.0.0.1:0".parse().expect("literal address"),
        USER,
        &password,
    )
    .await?;
    let url = format!("http://{}/events", receiver.addr);
    sim.set_events_endpoint(
        Endpoint::new(Some(&url), Some(USER), Some(password.expose()))
            .map_err(anyhow::Error::msg)?,
    );
    let learner = sim
        .users()
        .into_iter()
        .find(|u| u.user.principal.client_external_id.as_deref() == Some("E0003"))
        .and_then(|u| u.user.uuid)
        .context("the demo learner E0003 is on the platform")?;
    let course = crate::samples::catalog()
        .content_item("SAFE-201")
        .context("SAFE-201 is in the sample catalog")?
        .uuid
        .clone();
    crate::say!(
        "\n== learning events: Chloé Walker (E0003) completes Recognising and Reporting Abuse (SAFE-201)"
    );
    crate::say!("   the simulator publishes COURSE_COMPLETED to the receiver at {url}");
    sim.complete(&learner, &course, None, false)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // The publisher retries on its own; a few seconds at most on loopback.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sim.event_deliveries(0, 10).iter().any(|d| d.delivered) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the simulator could not deliver the event to the receiver"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crate::say!("   received and stored; `rostersync completions` now shows:");
    show_completion(config, "E0003", crate::ledger::now_ms())?;
    let later = crate::ledger::now_ms() + 335 * 86_400_000;
    crate::say!(
        "\n== night 4, eleven months on (the policy clock moved on 335 days): the course is due again"
    );
    let night = PlanOptions {
        roster: Some(dir.join("roster-night2.csv")),
        now: Some(later),
        ..PlanOptions::default()
    };
    run_with(config, &night).await?;
    show_completion(config, "E0003", later)?;
    crate::say!("\n== night 5, the same day: that expiry is answered, nothing more is sent");
    run_with(config, &night).await?;
    receiver.stop().await;
    Ok(())
}

/// Prints the completions report's lines for `key`, judged at `now`.
fn show_completion(config: &Config, key: &str, now: i64) -> Result<()> {
    let (ledger, store) = crate::completions::open(config)?;
    let store = store.context("the events file exists once an event is stored")?;
    let mut csv = Vec::new();
    crate::completions::report(
        config,
        &crate::samples::catalog(),
        ledger.as_ref(),
        Some(&store),
        crate::completions::When { since: None, now },
        crate::completions::Format::Csv,
        &mut csv,
    )?;
    let text = String::from_utf8_lossy(&csv);
    let mut lines = text.lines();
    if let Some(header) = lines.next() {
        crate::say!("   {header}");
    }
    for line in lines.filter(|l| l.split(',').nth(1) == Some(key)) {
        crate::say!("   {line}");
    }
    Ok(())
}
