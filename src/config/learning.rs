//! The learning-event settings: `[events]` (where the receiver listens, the environment
//! variables holding the Basic credentials it accepts, the events file) and `[[recertify]]`
//! (the recertification policy).
//!
//! Owns reading and checking them, with the key named in every message. The credentials
//! themselves are read by `events serve` alone, so a nightly run never needs them; the
//! password is never held here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::ingest::catalog::ContentType;
use crate::plan::recertify::{Policy, Rule, Scope, Span};

/// `[events]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    listen: Option<String>,
    username_env: Option<String>,
    password_env: Option<String>,
    store: Option<PathBuf>,
}

/// `[events]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// Where `events serve` listens (default 127.0.0.1:8787: behind a TLS proxy on the host).
    pub listen: SocketAddr,
    /// The environment variable holding the Basic username the publisher sends.
    pub username_env: String,
    /// The environment variable holding its password.
    pub password_env: String,
    /// The events file (default beside the ledger, `<ledger stem>-events.db`).
    pub store: PathBuf,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_USERNAME_ENV: &str = "ROSTERSYNC_EVENTS_USER";
pub const DEFAULT_PASSWORD_ENV: &str = "ROSTERSYNC_EVENTS_PASSWORD";

impl RawEvents {
    pub(super) fn check(
        self,
        label: &str,
        ledger: &Path,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<EventsConfig> {
        let listen = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "{label}: events.listen: expected an address and port such as \"127.0.0.1:8787\", found {listen:?}"
            )
        })?;
        let variable = |key: &str, value: Option<String>, default: &str| -> Result<String> {
            let name = value.unwrap_or_else(|| default.to_owned());
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!(
                    "{label}: events.{key}: expected the name of an environment variable (letters, digits, _), found {name:?}"
                );
            }
            Ok(name)
        };
        Ok(EventsConfig {
            listen,
            username_env: variable("username_env", self.username_env, DEFAULT_USERNAME_ENV)?,
            password_env: variable("password_env", self.password_env, DEFAULT_PASSWORD_ENV)?,
            store: match self.store {
                Some(path) => resolve(&path),
                None => crate::ledger::events::default_path(ledger),
            },
        })
    }
}

/// One `[[recertify]]` rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    sku: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    period: String,
    lead: Option<String>,
}

/// Checks `[[recertify]]`: each rule names one SKU or one content type, a period and
/// optionally a lead time shorter than it; no scope twice. (SKUs are checked against the
/// catalog when a plan resolves the policy.)
pub(super) fn check_policy(label: &str, raw: Vec<RawRule>) -> Result<Policy> {
    let mut policy = Policy::default();
    for (n, rule) in raw.into_iter().enumerate() {
        let at = format!("{label}: recertify rule {}", n + 1);
        let scope = match (rule.sku, rule.kind) {
            (Some(sku), None) if !sku.trim().is_empty() => Scope::Sku(sku.trim().to_owned()),
            (None, Some(kind)) => match ContentType::parse(&kind) {
                Some(kind) => Scope::Type(kind.as_api_str().to_owned()),
                None => {
                    bail!("{at}: type: expected \"course\" or \"learning path\", found {kind:?}")
                }
            },
            (Some(_), Some(_)) => bail!("{at}: give sku or type, not both"),
            _ => bail!("{at}: expected sku = \"...\" or type = \"course\" / \"learning path\""),
        };
        let period = Span::parse(&rule.period).map_err(|e| anyhow::anyhow!("{at}: period: {e}"))?;
        let lead = match &rule.lead {
            Some(lead) => Span::parse(lead).map_err(|e| anyhow::anyhow!("{at}: lead: {e}"))?,
            None => Span::Days(0),
        };
        let rule = Rule::new(period, lead).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if policy.rules.iter().any(|(s, _)| match (s, &scope) {
            (Scope::Sku(a), Scope::Sku(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }) {
            bail!("{at}: {scope} already has a rule (rules are one per sku or type)");
        }
        policy.rules.push((scope, rule));
    }
    Ok(policy)
}
