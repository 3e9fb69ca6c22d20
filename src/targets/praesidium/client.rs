//! The HTTP client of the Praesidium user API.
//!
//! Owns the access token (in memory only, renewed before 80% of its lifetime and once on a
//! 401, one login at a time) and the classification of every outcome into [`CallError`] in
//! one place, so callers branch on kinds, never on message text. Must never put the secret or
//! a token into an error, a log line or anything it returns.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::model::{ApiError, AuthError, ContentRef, LOGIN_PATH, TokenResponse, USER_PATH, User};
use crate::config::{ApiConfig, Secret};

/// How a call ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// A final refusal (400, 403, 404, ...): the request was understood and will not succeed.
    #[error("HTTP {status} {code}: {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
        technical: String,
    },
    /// The login endpoint refused the credentials.
    #[error("authentication refused: HTTP {status} {error}: {description}")]
    AuthRefused {
        status: u16,
        error: String,
        description: String,
    },
    /// 429: wait for the Retry-After before any further request.
    #[error("HTTP 429 Too Many Requests (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, or a 401 that persisted after renewing the token: nothing was changed.
    #[error("HTTP {status}: {message}")]
    Server { status: u16, message: String },
    /// The connection could not be made: the request never left.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Timeout or connection lost after sending: the server may or may not have processed it.
    #[error("no answer (the request may have been processed): {0}")]
    Ambiguous(String),
    /// The run is stopping: the request was not sent.
    #[error("not sent: the run is stopping")]
    Stopped,
}

impl CallError {
    /// Worth sending again (after a pause): nothing was changed, or nothing can be known.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            CallError::RateLimited { .. } | CallError::Server { .. } | CallError::Connect(_)
        )
    }

    /// The server may have applied the request.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, CallError::Ambiguous(_))
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::Rejected { status, .. }
            | CallError::AuthRefused { status, .. }
            | CallError::Server { status, .. } => Some(*status),
            CallError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The id of the user that already has this email, when a create was refused for it and
    /// the server named that user (it does so only inside our hierarchy).
    pub fn existing_user_id(&self) -> Option<String> {
        match self {
            CallError::Rejected {
                status: 400,
                technical,
                ..
            } => technical
                .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
                .find(|token| crate::ingest::normalize::looks_like_uuid(token))
                .map(str::to_lowercase),
            _ => None,
        }
    }
}

/// The three content endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCall {
    Enroll,
    Remove,
    ReEnroll,
}

impl ContentCall {
    fn suffix(self) -> &'static str {
        match self {
            ContentCall::Enroll => "enrollContent",
            ContentCall::Remove => "removeContent",
            ContentCall::ReEnroll => "reEnrollContent",
        }
    }
}

struct Token {
    value: String,
    renew_at: Instant,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    client_id: String,
    secret: Secret,
    scope: Vec<String>,
    token: Mutex<Option<Token>>,
    logins: std::sync::atomic::AtomicU64,
}

/// Parses a Retry-After header: delay-seconds or an HTTP date. Bounded to an hour, because a
/// nonsensical header must not stall a nightly job forever.
pub fn parse_retry_after(raw: &str, now: SystemTime) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(3600);
    let raw = raw.trim();
    let wait = if let Ok(secs) = raw.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(raw).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX))
}

impl Client {
    pub fn new(api: &ApiConfig) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(api.timeout_secs))
            .connect_timeout(Duration::from_secs(api.timeout_secs.min(10)))
            .pool_max_idle_per_host(api.max_in_flight.max(1))
            .user_agent(concat!("rostersync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base: api.base_url.clone(),
            client_id: api.client_id.clone(),
            secret: api.client_secret.clone(),
            scope: api.scope.clone(),
            token: Mutex::new(None),
            logins: Default::default(),
        })
    }

    /// Logins made so far.
    pub fn logins(&self) -> u64 {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes sure a valid token is held, logging in if needed.
    pub async fn authenticate(&self) -> Result<(), CallError> {
        self.token(None).await.map(|_| ())
    }

    /// A token valid for now. `stale` is a token the server just refused: replaced only if it
    /// is still the one held, so a burst of 401s makes one login, not one each.
    async fn token(&self, stale: Option<&str>) -> Result<String, CallError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref() {
            let refused = stale.is_some_and(|s| s == token.value);
            if !refused && Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let fresh = self.login().await?;
        let value = fresh.value.clone();
        *held = Some(fresh);
        Ok(value)
    }

    async fn login(&self) -> Result<Token, CallError> {
        self.logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let body = json!({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret.expose(),
            "scope": self.scope,
        });
        // A login changes nothing on the server, so a lost answer is not in doubt: it is
        // tried again like a connection that failed.
        let unanswered = |error| match transport_error(error) {
            CallError::Ambiguous(message) => CallError::Connect(format!("login: {message}")),
            other => other,
        };
        let response = self
            .http
            .post(format!("{}{LOGIN_PATH}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(unanswered)?;
        let status = response.status().as_u16();
        let retry_after = retry_after_of(&response);
        let text = response.text().await.map_err(unanswered)?;
        match status {
            200 => {
                let answer: TokenResponse =
                    serde_json::from_str(&text).map_err(|_| CallError::Server {
                        status,
                        message: "the login answer is not the documented token JSON".to_owned(),
                    })?;
                let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(900));
                Ok(Token {
                    value: answer.access_token,
                    renew_at: started + lifetime.mul_f64(0.8),
                })
            }
            429 => Err(CallError::RateLimited { retry_after }),
            400..=499 => {
                let refusal: Option<AuthError> = serde_json::from_str(&text).ok();
                Err(CallError::AuthRefused {
                    status,
                    error: refusal
                        .as_ref()
                        .map_or_else(|| "unknown".to_owned(), |r| r.error.clone()),
                    description: refusal.map_or_else(|| snippet(&text), |r| r.error_description),
                })
            }
            _ => Err(CallError::Server {
                status,
                message: snippet(&text),
            }),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let mut token = self.token(None).await?;
        for renewed in [false, true] {
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let retry_after = retry_after_of(&response);
            let text = response.text().await.map_err(transport_error)?;
            match status {
                200..=299 => return Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
                401 if !renewed => token = self.token(Some(&token)).await?,
                429 => return Err(CallError::RateLimited { retry_after }),
                500..=599 | 401 | 408 => {
                    return Err(CallError::Server {
                        status,
                        message: api_message(&text),
                    });
                }
                _ => {
                    let error: Option<ApiError> = serde_json::from_str(&text).ok();
                    return Err(match error {
                        Some(e) => CallError::Rejected {
                            status,
                            code: e.code,
                            message: e.message,
                            technical: e.technical_message,
                        },
                        None => CallError::Rejected {
                            status,
                            code: status.to_string(),
                            message: snippet(&text),
                            technical: String::new(),
                        },
                    });
                }
            }
        }
        unreachable!("the second pass always returns")
    }

    pub async fn get_user(&self, uuid: &str) -> Result<User, CallError> {
        let value = self
            .call(reqwest::Method::GET, &format!("{USER_PATH}/{uuid}"), None)
            .await?;
        user_from(value)
    }

    pub async fn create(&self, user: &User) -> Result<User, CallError> {
        let body = serde_json::to_value(user).expect("user objects serialize");
        let value = self
            .call(reqwest::Method::POST, USER_PATH, Some(&body))
            .await?;
        user_from(value)
    }

    pub async fn update(&self, uuid: &str, user: &User) -> Result<User, CallError> {
        let body = serde_json::to_value(user).expect("user objects serialize");
        let value = self
            .call(
                reqwest::Method::PUT,
                &format!("{USER_PATH}/{uuid}"),
                Some(&body),
            )
            .await?;
        user_from(value)
    }

    pub async fn deactivate(&self, uuid: &str) -> Result<User, CallError> {
        let value = self
            .call(
                reqwest::Method::PUT,
                &format!("{USER_PATH}/{uuid}/deactivate"),
                None,
            )
            .await?;
        user_from(value)
    }

    pub async fn content(
        &self,
        uuid: &str,
        call: ContentCall,
        items: &[ContentRef],
    ) -> Result<User, CallError> {
        let body = json!({ "content": items });
        let path = format!("{USER_PATH}/{uuid}/{}", call.suffix());
        let value = self.call(reqwest::Method::PUT, &path, Some(&body)).await?;
        user_from(value)
    }
}

fn user_from(value: Value) -> Result<User, CallError> {
    serde_json::from_value(value)
        .map_err(|e| CallError::Ambiguous(format!("the answer is not a user object: {e}")))
}

fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Connect failures never reached the server; anything else after sending is ambiguous.
fn transport_error(error: reqwest::Error) -> CallError {
    // reqwest's message names the URL (no secret is ever in one) and the cause.
    let connect = error.is_connect();
    let cause = std::error::Error::source(&error)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    let message = error.without_url().to_string();
    if connect {
        CallError::Connect(format!("{message}{cause}"))
    } else {
        CallError::Ambiguous(format!("{message}{cause}"))
    }
}

fn api_message(text: &str) -> String {
    serde_json::from_str::<ApiError>(text).map_or_else(
        |_| snippet(text),
        |e| format!("{}: {}", e.message, e.technical_message),
    )
}

fn snippet(text: &str) -> String {
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_bounds_them() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn the_existing_user_id_is_read_from_an_email_conflict_only() {
        let conflict = CallError::Rejected {
            status: 400,
            code: "EMAIL_EXISTS".into(),
            message: "exists".into(),
            technical: "Email already exists for user id 3F2B8C1E-9A4D-4E2F-8B1A-0C9D8E7F6A5B"
                .into(),
        };
        assert_eq!(
            conflict.existing_user_id().as_deref(),
            Some("3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b")
        );
        let outside = CallError::Rejected {
            status: 400,
            code: "EMAIL_EXISTS".into(),
            message: "exists".into(),
            technical: "Email already exists".into(),
        };
        assert_eq!(outside.existing_user_id(), None);
        assert!(!outside.is_retriable());
        assert!(
            CallError::Server {
                status: 503,
                message: String::new()
            }
            .is_retriable()
        );
        assert!(CallError::Ambiguous("reset".into()).is_ambiguous());
    }
}
