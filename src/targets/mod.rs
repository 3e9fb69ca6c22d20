//! The systems rostersync provisions into, as plug-ins of one engine.
//!
//! A target owns everything specific to one platform: its wire types, its client, its
//! simulator, and the [`Target`] implementation that maps the neutral model
//! ([`crate::model`]) to its requests. The engine (plan, ledger, apply, report) knows only
//! this trait; nothing outside `targets/` knows a platform's URLs, JSON shapes or status
//! strings. What every client shares is platform-neutral: the outcome of a call (`call`)
//! and the guarded HTTP plumbing (`http`).
//! What the simulators share, whatever API they imitate, is `sim_kit`; which one
//! `rostersync sim` runs is `simulate`.

pub mod call;
pub mod http;
pub mod praesidium;
pub mod prancer;
pub mod sim_kit;
pub mod simulate;

pub use call::CallError;
pub use praesidium::events::ServeOptions;

use crate::apply::Io;
use crate::ledger::Effect;
use crate::model::{Op, OpKind};

/// `rostersync demo`: the built-in samples provisioned into the Praesidium simulator over
/// three nights, in-process.
pub async fn demo() -> anyhow::Result<crate::commands::Finish> {
    praesidium::demo::run().await
}

/// `rostersync events serve`: the receiver of the learning events the config's platform
/// publishes, until SIGTERM or Ctrl-C.
pub async fn serve_events(
    config: &crate::config::Config,
    options: ServeOptions,
) -> anyhow::Result<()> {
    match config.target.kind() {
        Kind::Praesidium => praesidium::events::serve(config, options).await,
        Kind::Prancer => anyhow::bail!(
            "prancer publishes no learning events; `events serve` is for a Praesidium config"
        ),
    }
}

/// The targets rostersync knows, as `[target] kind` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Praesidium,
    Prancer,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Praesidium => "praesidium",
            Kind::Prancer => "prancer",
        }
    }

    /// What the target can do, known before it is built (the plan needs it; no request).
    pub fn capabilities(self) -> Capabilities {
        match self {
            Kind::Praesidium => praesidium::target::CAPABILITIES,
            Kind::Prancer => prancer::target::CAPABILITIES,
        }
    }

    /// The target's own settings, checked: from its config section (`[prancer]`), or from
    /// `[api]` for Praesidium's login (its client secret read into `api`). `secret` reads an
    /// environment variable named there (`key`, the variable, what it holds).
    pub fn settings(
        self,
        section: Option<toml::Table>,
        api: &mut crate::config::ApiConfig,
        secret: &dyn Fn(&str, &str, &str) -> anyhow::Result<crate::config::Secret>,
    ) -> anyhow::Result<Settings> {
        match self {
            Kind::Praesidium => {
                praesidium::settings::check_login(api, secret)?;
                if section.is_some() {
                    anyhow::bail!(
                        "a [prancer] section is set but [target] kind is \"praesidium\"; remove it or set kind = \"prancer\""
                    );
                }
                Ok(Settings::Praesidium)
            }
            Kind::Prancer => {
                prancer::Settings::from_section(section, secret).map(Settings::Prancer)
            }
        }
    }
}

/// A target's own settings, as the config read them.
#[derive(Debug, Clone)]
pub enum Settings {
    /// Praesidium's are in `[api]` (its login), where they have always been.
    Praesidium,
    Prancer(prancer::Settings),
}

impl Settings {
    pub fn kind(&self) -> Kind {
        match self {
            Settings::Praesidium => Kind::Praesidium,
            Settings::Prancer(_) => Kind::Prancer,
        }
    }

    /// The instant (ms since the epoch) before which a pending invitation is sent again, for
    /// a target that invites; `None` for one that creates accounts.
    pub fn remind_before(&self, now_ms: i64) -> Option<i64> {
        match self {
            Settings::Praesidium => None,
            Settings::Prancer(settings) => {
                let days = i64::from(settings.resend_invitations_after_days);
                Some(now_ms.saturating_sub(days * 24 * 3600 * 1000))
            }
        }
    }

    /// Builds the configured target and runs the engine's apply with it: the one place that
    /// turns a config into a platform.
    pub async fn apply(
        &self,
        api: &crate::config::ApiConfig,
        ledger: std::sync::Arc<std::sync::Mutex<crate::ledger::Ledger>>,
        run_id: i64,
    ) -> anyhow::Result<crate::apply::ApplyStats> {
        use std::sync::Arc;
        match self {
            Settings::Praesidium => {
                let client = praesidium::client::Client::new(api)?;
                let target = Arc::new(praesidium::Praesidium::new(client));
                crate::apply::apply(ledger, target, api, run_id).await
            }
            Settings::Prancer(settings) => {
                let client = prancer::client::Client::new(
                    &api.base_url,
                    &settings.token,
                    std::time::Duration::from_secs(api.timeout_secs),
                    api.max_in_flight,
                )?;
                let target = Arc::new(prancer::target::Prancer::new(client));
                crate::apply::apply(ledger, target, api, run_id).await
            }
        }
    }
}

/// What a platform can do, for the plan (a plan that needs what the target lacks is reported,
/// never attempted) and for ingest (which roles a row may name).
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// The roles the platform knows, in its spelling; empty when it has none.
    pub roles: &'static [&'static str],
    /// The kinds of op it can execute.
    pub ops: &'static [OpKind],
    /// Whether roster rows are resolved against the client, location and content catalogs
    /// (and grant content); otherwise the roster's `groups` column is what is granted.
    pub catalogs: bool,
    /// Whether ending an account deletes it (a returning person is created again) rather
    /// than deactivating it (a returning person is reactivated by an update).
    pub ends_by_deleting: bool,
}

impl Capabilities {
    pub fn can(&self, kind: OpKind) -> bool {
        self.ops.contains(&kind)
    }
}

/// One platform, as the engine drives it. The engine owns pacing, retries, 429 pauses, the
/// duplicate window, the journal, resume and signals; a target owns what its requests are and
/// what its answers mean. Every request goes through the [`Io`] it is lent, so that it is
/// paced, counted and bounded like every other.
///
/// Its name and [`Capabilities`] are [`Kind`]'s: the plan needs them before any target is
/// built.
pub trait Target: Send + Sync + 'static {
    /// Readies the target before any op is sent: logs in, checks that the credentials may
    /// manage users. A refusal here stops the run before anything changed.
    fn prepare(&self, io: Io<'_>) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Executes one op: its requests, sent through `io`, and the effect to record. The first
    /// request that makes the change goes through [`Io::send`] (the engine retries the op);
    /// any later step through [`Io::send_retrying`].
    fn execute(
        &self,
        op: &Op,
        io: Io<'_>,
    ) -> impl Future<Output = Result<Effect, CallError>> + Send;

    /// Whether an op of this kind whose answer was lost is resolved by reading the account
    /// back ([`Target::confirm`]); otherwise it is sent again once the duplicate window has
    /// passed (the platform ignores, or refuses as existing, what it already did).
    fn resolves_by_reading(&self, kind: OpKind) -> bool;

    /// Reads the account back: whether the platform shows what `op` asked for.
    fn confirm(&self, op: &Op, io: Io<'_>) -> impl Future<Output = Result<bool, CallError>> + Send;
}
