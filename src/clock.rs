//! The policy clock: the "now" that recertification and reminders are judged against.
//!
//! Owns `ROSTERSYNC_NOW`, a rehearsal clock: set, the plan and the completions report act as
//! if it were that instant (so a demo or a test can let a year pass in a second). Journal
//! and report timestamps keep the real time. It must never be set by accident unnoticed:
//! every command that reads it says so on stderr.

use anyhow::{Result, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// The environment variable that sets the policy clock.
pub const VARIABLE: &str = "ROSTERSYNC_NOW";

/// Milliseconds since the epoch: `ROSTERSYNC_NOW` when set, else the real time.
pub fn now_ms() -> Result<i64> {
    now_ms_from(std::env::var(VARIABLE).ok())
}

/// [`now_ms`] with `ROSTERSYNC_NOW` as given (`None`: unset).
fn now_ms_from(variable: Option<String>) -> Result<i64> {
    match variable {
        Some(raw) if !raw.trim().is_empty() => {
            let at = parse(&raw).map_err(|e| e.context(VARIABLE))?;
            tracing::warn!(
                "{VARIABLE} is set: recertification and reminders are judged as at {} (a rehearsal clock; unset it for real runs)",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            Ok(at.timestamp_millis())
        }
        _ => Ok(Utc::now().timestamp_millis()),
    }
}

/// Reads an instant: RFC 3339 (`2027-01-31T09:00:00Z`), `YYYY-MM-DD HH:MM:SS` (UTC) or a
/// day (`YYYY-MM-DD`, its midnight UTC).
pub fn parse(raw: &str) -> Result<DateTime<Utc>> {
    let text = raw.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(at) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(at.and_utc());
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    bail!(
        "expected a date (2027-01-31), a UTC time (2027-01-31 09:00:00) or an RFC 3339 time, found {text:?}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_read_in_three_forms() {
        let day = parse("2027-01-31").unwrap();
        assert_eq!(day.to_rfc3339(), "2027-01-31T00:00:00+00:00");
        assert_eq!(
            parse("2027-01-31 09:30:00").unwrap().timestamp() - day.timestamp(),
            34_200
        );
        assert_eq!(
            parse("2027-01-31T10:30:00+01:00").unwrap(),
            parse("2027-01-31 09:30:00").unwrap()
        );
        assert!(parse("31/01/2027").is_err());
        assert!(parse("2027-02-30").is_err());
    }

    #[test]
    fn a_bad_policy_clock_is_named_in_the_error() {
        let error = now_ms_from(Some("garbage".to_owned())).unwrap_err();
        assert!(
            format!("{error:#}").starts_with("ROSTERSYNC_NOW: "),
            "{error:#}"
        );
        assert_eq!(
            now_ms_from(Some("2027-01-31".to_owned())).unwrap(),
            parse("2027-01-31").unwrap().timestamp_millis()
        );
        assert!(now_ms_from(None).is_ok() && now_ms_from(Some(" ".to_owned())).is_ok());
    }
}
