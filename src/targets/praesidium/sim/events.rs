//! What Praesidium's Event Publishing says and where it goes: the learning-event payload
//! (snake_case, or the camelCase names older senders used), its timestamp format, the
//! client's publishing endpoint with its Basic credentials, why a completion is refused, and
//! the `rostersync sim` flags that set the endpoint.
//!
//! Owns shapes and validation only: no HTTP, no queue, no store. Must never show the
//! endpoint's password: not in `Debug`, not in any view or message it builds.

use std::fmt;

use anyhow::{Result, bail};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use url::Url;

use super::store::Learner;
use crate::ingest::catalog::ContentType;

/// The `version` every event carries.
pub const EVENT_VERSION: &str = "1.0";
/// `event_timestamp`: UTC, a space between date and time, no `T`, no zone.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// Attempts per event unless told otherwise (`--events-max-attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;

/// The two events Praesidium publishes, from the catalog's kind of the completed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    CourseCompleted,
    LearningPathCompleted,
}

impl EventType {
    pub fn of(kind: ContentType) -> EventType {
        match kind {
            ContentType::Course => EventType::CourseCompleted,
            ContentType::LearningPath => EventType::LearningPathCompleted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CourseCompleted => "COURSE_COMPLETED",
            EventType::LearningPathCompleted => "LEARNING_PATH_COMPLETED",
        }
    }

    /// The `event_context` key naming the completed content.
    fn content_key(self, camel_case: bool) -> &'static str {
        match (self, camel_case) {
            (EventType::CourseCompleted, false) => "course_uuid",
            (EventType::CourseCompleted, true) => "courseUuid",
            (EventType::LearningPathCompleted, false) => "learning_path_uuid",
            (EventType::LearningPathCompleted, true) => "learningPathUuid",
        }
    }
}

/// The event `learner` completing `content_uuid` at `at`: one JSON object, one POST.
/// `camel_case` gives the names used before 2022-12-13 (`version` is the same in both).
pub fn payload(
    event_type: EventType,
    at: DateTime<Utc>,
    learner: &Learner,
    content_uuid: &str,
    camel_case: bool,
) -> Value {
    let name = |snake: &'static str, camel: &'static str| if camel_case { camel } else { snake };
    let mut context = Map::new();
    context.insert(
        name("user_uuid", "userUuid").to_owned(),
        json!(learner.user_uuid),
    );
    context.insert(
        event_type.content_key(camel_case).to_owned(),
        json!(content_uuid),
    );
    context.insert(
        name("client_uuid", "clientUuid").to_owned(),
        json!(learner.client_uuid),
    );
    let mut detail = Map::new();
    detail.insert(
        name("first_name", "firstName").to_owned(),
        json!(learner.first_name),
    );
    detail.insert(
        name("last_name", "lastName").to_owned(),
        json!(learner.last_name),
    );
    detail.insert("ref1".to_owned(), json!(learner.ref1));
    let mut event = Map::new();
    event.insert("version".to_owned(), json!(EVENT_VERSION));
    event.insert(
        name("event_type", "eventType").to_owned(),
        json!(event_type.as_str()),
    );
    event.insert(
        name("event_timestamp", "eventTimestamp").to_owned(),
        json!(format_timestamp(at)),
    );
    event.insert(
        name("event_context", "eventContext").to_owned(),
        Value::Object(context),
    );
    event.insert(
        name("event_specific_detail", "eventSpecificDetail").to_owned(),
        Value::Object(detail),
    );
    Value::Object(event)
}

pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.format(TIMESTAMP_FORMAT).to_string()
}

/// Reads `YYYY-MM-DD HH:MM:SS` (UTC) exactly: no `T`, no zone, no fraction.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let refuse = || format!("completed_at {text:?} is not \"YYYY-MM-DD HH:MM:SS\" (UTC)");
    // chrono would take a sign, a longer year or a one-digit field: check the shape first.
    let shaped = text.len() == 19
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(refuse());
    }
    NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT)
        .map(|naive| naive.and_utc())
        .map_err(|_| refuse())
}

/// Why content cannot be completed; nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    #[error("no user with uuid {0}")]
    UnknownUser(String),
    #[error("no content with uuid {0} in the catalog")]
    UnknownContent(String),
    #[error("user {user} is not enrolled in content {content}")]
    NotEnrolled { user: String, content: String },
    #[error("user {0} is inactive")]
    InactiveUser(String),
    #[error("{0}")]
    BadTimestamp(String),
    #[error("the event queue is full ({0} events waiting); try again later")]
    QueueFull(usize),
}

impl CompleteError {
    /// The HTTP status `/admin/complete` answers with.
    pub fn status(&self) -> u16 {
        match self {
            CompleteError::QueueFull(_) => 503,
            _ => 400,
        }
    }

    /// A stable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            CompleteError::UnknownUser(_) => "UNKNOWN_USER",
            CompleteError::UnknownContent(_) => "UNKNOWN_CONTENT",
            CompleteError::NotEnrolled { .. } => "NOT_ENROLLED",
            CompleteError::InactiveUser(_) => "INACTIVE_USER",
            CompleteError::BadTimestamp(_) => "INVALID_TIMESTAMP",
            CompleteError::QueueFull(_) => "QUEUE_FULL",
        }
    }
}

/// A recorded completion: the event exactly as it is (or would be) sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completed {
    pub event: Value,
    /// False when no endpoint is set: the completion is recorded, nothing is sent.
    pub published: bool,
}

/// Where the client wants its events: publishing is off while `url` is `None`. The
/// credentials are kept when the URL is turned off, for the next URL.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    url: Option<Url>,
    username: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The endpoint as the admin API shows it: never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointView {
    pub url: Option<String>,
    pub username: Option<String>,
}

impl Endpoint {
    /// `url` (`None` or empty: publishing off), checked by [`check_url`]; Basic credentials
    /// are sent when `username` is set (`password` may then be absent: an empty one).
    pub fn new(
        url: Option<&str>,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Endpoint, String> {
        let url = match url.map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(check_url(url)?),
        };
        Ok(Endpoint {
            url,
            username: username.map(str::to_owned),
            password: password.map(str::to_owned),
        })
    }

    pub fn url(&self) -> Option<&Url> {
        self.url.as_ref()
    }

    /// `(username, password)` for Basic authentication, when a username is set.
    pub fn basic(&self) -> Option<(&str, &str)> {
        self.username
            .as_deref()
            .map(|user| (user, self.password.as_deref().unwrap_or("")))
    }

    pub fn view(&self) -> EndpointView {
        EndpointView {
            url: self.url.as_ref().map(|u| u.as_str().to_owned()),
            username: self.username.clone(),
        }
    }

    /// This endpoint changed by the body of `PUT /admin/events/endpoint`: `url` is required
    /// (a string, or null or empty to turn publishing off); `username` and `password`, when
    /// present, replace the current ones (null clears), when absent keep them.
    pub fn patched(&self, body: &Value) -> Result<Endpoint, String> {
        let Some(fields) = body.as_object() else {
            return Err(
                "the body must be a JSON object {\"url\", \"username\", \"password\"}".into(),
            );
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !["url", "username", "password"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown field {unknown:?} (expected url, username, password)"
            ));
        }
        let text = |key: &str, current: Option<&str>| -> Result<Option<String>, String> {
            match fields.get(key) {
                None => Ok(current.map(str::to_owned)),
                Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{key} must be a string or null")),
            }
        };
        if !fields.contains_key("url") {
            return Err("url is required (null or \"\" turns publishing off)".into());
        }
        let url = text("url", None)?;
        let username = text("username", self.username.as_deref())?;
        let password = text("password", self.password.as_deref())?;
        Endpoint::new(url.as_deref(), username.as_deref(), password.as_deref())
    }
}

/// An `http` or `https` URL with a host and no credentials in it (they go in `username` and
/// `password`, so that the URL can be shown and logged).
pub fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("url {text:?} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url {text:?} is not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the url must not carry credentials: give username and password".into());
    }
    Ok(url)
}

/// The `rostersync sim` flags of event publishing (--target praesidium).
#[derive(Debug, Clone, clap::Args)]
pub struct EventArgs {
    /// (--target praesidium) Endpoint (http or https URL) the simulator POSTs learning events
    /// to, as Praesidium's Event Publishing does; default: none, completions publish nothing.
    /// PUT /admin/events/endpoint changes it at run time.
    #[arg(long, value_name = "URL")]
    pub events_url: Option<String>,
    /// (--target praesidium) Username sent with every event (HTTP Basic authentication).
    #[arg(long, value_name = "NAME")]
    pub events_user: Option<String>,
    /// (--target praesidium) Environment variable holding the Basic password sent with
    /// --events-user (a variable, not the password, so that it stays out of `ps`).
    #[arg(long, value_name = "VAR")]
    pub events_password_env: Option<String>,
    /// (--target praesidium) Attempts per event before the simulator gives up on it (1 to
    /// 1000; retries back off from 100 ms, doubling, up to 5 s).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub events_max_attempts: u32,
}

impl EventArgs {
    /// The flags given a value other than their default.
    pub fn changed(&self) -> Vec<&'static str> {
        [
            ("--events-url", self.events_url.is_some()),
            ("--events-user", self.events_user.is_some()),
            ("--events-password-env", self.events_password_env.is_some()),
            (
                "--events-max-attempts",
                self.events_max_attempts != DEFAULT_MAX_ATTEMPTS,
            ),
        ]
        .into_iter()
        .filter_map(|(flag, changed)| changed.then_some(flag))
        .collect()
    }

    /// The endpoint the flags name, the password read through `env` (the process
    /// environment, or a test's).
    pub fn endpoint(&self, env: impl Fn(&str) -> Option<String>) -> Result<Endpoint> {
        let password = match &self.events_password_env {
            None => None,
            Some(_) if self.events_user.is_none() => {
                bail!("--events-password-env needs --events-user (the Basic username)")
            }
            Some(var) => match env(var) {
                Some(value) if !value.is_empty() => Some(value),
                _ => bail!(
                    "--events-password-env {var}: the environment variable {var} is not set or \
                     is empty"
                ),
            },
        };
        Endpoint::new(
            self.events_url.as_deref(),
            self.events_user.as_deref(),
            password.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!("--events-url: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner() -> Learner {
        Learner {
            user_uuid: "u-1".into(),
            client_uuid: "c-1".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            ref1: "E1".into(),
        }
    }

    fn at() -> DateTime<Utc> {
        parse_timestamp("2026-11-24 08:30:00").unwrap()
    }

    #[test]
    fn a_course_completion_is_the_documented_snake_case_object() {
        let event = payload(EventType::CourseCompleted, at(), &learner(), "k-1", false);
        assert_eq!(
            event,
            json!({"version": "1.0", "event_type": "COURSE_COMPLETED",
                   "event_timestamp": "2026-11-24 08:30:00",
                   "event_context": {"user_uuid": "u-1", "course_uuid": "k-1", "client_uuid": "c-1"},
                   "event_specific_detail": {"first_name": "Ada", "last_name": "Lovelace", "ref1": "E1"}})
        );
    }

    #[test]
    fn a_learning_path_in_camel_case_uses_the_older_names() {
        let event = payload(
            EventType::of(ContentType::LearningPath),
            at(),
            &learner(),
            "k-2",
            true,
        );
        assert_eq!(
            event,
            json!({"version": "1.0", "eventType": "LEARNING_PATH_COMPLETED",
                   "eventTimestamp": "2026-11-24 08:30:00",
                   "eventContext": {"userUuid": "u-1", "learningPathUuid": "k-2", "clientUuid": "c-1"},
                   "eventSpecificDetail": {"firstName": "Ada", "lastName": "Lovelace", "ref1": "E1"}})
        );
    }

    #[test]
    fn timestamps_are_exactly_the_spaced_utc_form() {
        assert_eq!(format_timestamp(at()), "2026-11-24 08:30:00");
        for bad in [
            "2026-11-24T08:30:00",
            "2026-11-24 08:30:00Z",
            "2026-11-24 08:30",
            "2026-13-24 08:30:00",
            "+2026-11-24 08:30:0",
            "",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_web_urls_with_a_host_and_no_credentials() {
        assert!(check_url("http://127.0.0.1:9/events").is_ok());
        assert!(check_url("https://hooks.example/x").is_ok());
        for bad in [
            "ftp://example/x",
            "http://",
            "not a url",
            "https://user:pw@example/x",
            "file:///tmp/x",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_keeps_absent_credentials_and_turns_off_on_null_or_empty() {
        let current = Endpoint::new(Some("http://a.example/"), Some("u"), Some("pw")).unwrap();
        let moved = current
            .patched(&json!({"url": "http://b.example/"}))
            .unwrap();
        assert_eq!(moved.basic(), Some(("u", "pw")));
        assert_eq!(moved.url().unwrap().as_str(), "http://b.example/");
        let off = current.patched(&json!({"url": null})).unwrap();
        assert!(off.url().is_none());
        assert!(
            current
                .patched(&json!({"url": ""}))
                .unwrap()
                .url()
                .is_none()
        );
        let anonymous = current
            .patched(&json!({"url": "http://b.example/", "username": null}))
            .unwrap();
        assert_eq!(anonymous.basic(), None);
        assert!(current.patched(&json!({"username": "x"})).is_err());
        assert!(current.patched(&json!({"url": "gopher://x"})).is_err());
        assert!(current.patched(&json!({"url": 5})).is_err());
        assert!(
            current
                .patched(&json!({"url": "http://x", "pass": "y"}))
                .is_err()
        );
    }

    #[test]
    fn the_password_never_shows() {
        let endpoint = Endpoint::new(Some("http://a.example/"), Some("u"), Some("s3cret")).unwrap();
        assert!(!format!("{endpoint:?}").contains("s3cret"));
        assert!(
            !serde_json::to_string(&endpoint.view())
                .unwrap()
                .contains("s3cret")
        );
    }

    #[test]
    fn the_password_variable_must_be_set_and_need_a_user() {
        let args = |user: Option<&str>, var: Option<&str>| EventArgs {
            events_url: Some("http://127.0.0.1:9/".into()),
            events_user: user.map(str::to_owned),
            events_password_env: var.map(str::to_owned),
            events_max_attempts: DEFAULT_MAX_ATTEMPTS,
        };
        let env = |name: &str| match name {
            "SET" => Some("pw".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let ok = args(Some("u"), Some("SET")).endpoint(env).unwrap();
        assert_eq!(ok.basic(), Some(("u", "pw")));
        for var in ["EMPTY", "MISSING"] {
            let error = args(Some("u"), Some(var)).endpoint(env).unwrap_err();
            assert!(error.to_string().contains(var), "{error}");
        }
        assert!(args(None, Some("SET")).endpoint(env).is_err());
        assert_eq!(
            args(Some("u"), Some("SET")).changed(),
            ["--events-url", "--events-user", "--events-password-env"]
        );
    }
}
