//! Praesidium's settings, which live in `[api]` where they always have: its login's client
//! id, the variable holding its client secret, and the scope asked for.
//!
//! Owns checking them completely at load; the secret is read into a [`Secret`] and must
//! never be printed.

use anyhow::{Result, bail};

use super::model::USER_SCOPE;
use crate::config::{ApiConfig, Secret};

/// Checks the `[api]` login settings and reads the client secret into `api`; `secret` looks
/// up the variable (the key naming it, the variable, what it holds).
pub fn check_login(
    api: &mut ApiConfig,
    secret: &dyn Fn(&str, &str, &str) -> Result<Secret>,
) -> Result<()> {
    if api.client_id.trim().is_empty() {
        bail!("api.client_id: expected a client id, found an empty value");
    }
    if api.client_secret_env.trim().is_empty() {
        bail!(
            "api.client_secret_env: expected the name of the environment variable holding the client secret"
        );
    }
    api.client_secret = secret(
        "api.client_secret_env",
        &api.client_secret_env,
        "client secret",
    )?;
    Ok(())
}

/// The scope the login asks for: `[api] scope`, or user management when it names none.
pub fn scope(api: &ApiConfig) -> Vec<String> {
    api.scope
        .clone()
        .unwrap_or_else(|| vec![USER_SCOPE.to_owned()])
}
