//! The `[prancer]` section of the config: how rostersync signs in to prancer and how it
//! treats invitations nobody accepted.
//!
//! Owns reading and checking the section completely before any work starts. The API token
//! is read from the environment variable the section names and lives in a
//! [`Secret`]: it must never be printed.

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::config::Secret;

/// Days after which an invitation still pending is sent again, when the config says nothing.
pub const DEFAULT_RESEND_AFTER_DAYS: u32 = 7;
/// The most days accepted: beyond a year an invitation is not "still pending", it is lost.
pub const MAX_RESEND_AFTER_DAYS: u32 = 365;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    token_env: Option<String>,
    #[serde(default)]
    resend_invitations_after_days: Option<i64>,
}

/// The prancer target's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The name of the environment variable holding the API's bearer token.
    pub token_env: String,
    pub token: Secret,
    /// An invitation still pending this many days after it was (last) sent is sent again.
    pub resend_invitations_after_days: u32,
}

impl Settings {
    /// Reads the section; `secret` looks up the token's variable.
    pub fn from_section(
        section: Option<toml::Table>,
        secret: &dyn Fn(&str, &str, &str) -> Result<Secret>,
    ) -> Result<Settings> {
        let section = section.context(
            "expected a [prancer] section naming the token's variable: token_env = \"PRANCER_TOKEN\"",
        )?;
        let raw: Raw = toml::Value::Table(section)
            .try_into()
            .context("invalid [prancer] section")?;
        let token_env = raw
            .token_env
            .filter(|name| !name.trim().is_empty())
            .context("prancer.token_env: expected the name of the environment variable holding the API token")?;
        let token = secret("prancer.token_env", &token_env, "prancer API token")?;
        let days = raw
            .resend_invitations_after_days
            .unwrap_or(i64::from(DEFAULT_RESEND_AFTER_DAYS));
        if !(1..=i64::from(MAX_RESEND_AFTER_DAYS)).contains(&days) {
            bail!(
                "prancer.resend_invitations_after_days: expected a value from 1 to {MAX_RESEND_AFTER_DAYS}, found {days}"
            );
        }
        Ok(Settings {
            token_env,
            token,
            resend_invitations_after_days: days as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Option<toml::Table> {
        Some(text.parse().unwrap())
    }

    fn env(_: &str, name: &str, _: &str) -> Result<Secret> {
        match name {
            "TOKEN" => Ok(Secret::new("t0ken")),
            _ => bail!("{name} is not set"),
        }
    }

    #[test]
    fn the_section_is_read_and_checked() {
        let settings = Settings::from_section(table("token_env = \"TOKEN\""), &env).unwrap();
        assert_eq!(settings.token.expose(), "t0ken");
        assert_eq!(
            settings.resend_invitations_after_days,
            DEFAULT_RESEND_AFTER_DAYS
        );
        assert!(!format!("{settings:?}").contains("t0ken"));
        for (text, expected) in [
            ("", "prancer.token_env"),
            ("token_env = \"MISSING\"", "MISSING"),
            (
                "token_env = \"TOKEN\"\nresend_invitations_after_days = 0",
                "from 1 to 365",
            ),
            ("token_env = \"TOKEN\"\ntokn = 1", "tokn"),
        ] {
            let error = Settings::from_section(table(text), &env).unwrap_err();
            assert!(format!("{error:#}").contains(expected), "{error:#}");
        }
        let none = Settings::from_section(None, &env).unwrap_err();
        assert!(format!("{none:#}").contains("[prancer]"));
    }
}
