//! The HTTP client of the Praesidium user API.
//!
//! Owns the access token (in memory only, renewed before 80% of its lifetime and once on a
//! 401, one login at a time) and the classification of every Praesidium answer into
//! [`CallError`] in one place, so callers branch on kinds, never on message text. Must never
//! put the secret or a token into an error, a log line or anything it returns: every text in
//! a [`CallError`] is scrubbed and capped by [`Guarded::clean`] when it is built, and every
//! token received is registered with its redactor, so nothing downstream can leak it.
//!
//! The guards shared by every target (no redirect followed, no proxy for a loopback base URL,
//! bodies read up to [`MAX_BODY`]) are [`crate::targets::http`]'s. Must never rely on an
//! answer it has not checked: a created user's id must be a UUID, and only UUIDs go into URL
//! paths.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::model::{ApiError, AuthError, ContentRef, LOGIN_PATH, TokenResponse, USER_PATH, User};
use crate::config::{ApiConfig, Secret};
use crate::targets::call::CallError;
use crate::targets::http::{Body, Guarded, MAX_BODY, retry_after_of};

/// The id of the user that already has this email, when a create was refused for it and
/// the server named that user (it does so only inside our hierarchy). Only a real UUID, in
/// canonical form: it goes into URL paths and the ledger.
pub fn existing_user_id(error: &CallError) -> Option<String> {
    match error {
        CallError::Rejected {
            status: 400,
            technical,
            ..
        } => technical
            .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .find_map(canonical_uuid),
        _ => None,
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
    /// Bound to the base URL; its redactor knows the secret and every token received and
    /// scrubs every text put into an error.
    http: Guarded,
    client_id: String,
    secret: Secret,
    scope: Vec<String>,
    token: Mutex<Option<Token>>,
    /// The last login that failed, and when: shared with the callers that waited for it.
    failed_login: std::sync::Mutex<Option<(Instant, CallError)>>,
    logins: std::sync::atomic::AtomicU64,
}

/// The canonical form (lowercase, hyphenated) of `raw` if it is a UUID.
pub fn canonical_uuid(raw: &str) -> Option<String> {
    // parse_str also takes the simple, braced and urn forms; all name one id.
    uuid::Uuid::parse_str(raw.trim())
        .ok()
        .map(|id| id.hyphenated().to_string())
}

/// How long a token is reused before a new login, from the answer's `expires_in` (seconds):
/// 80% of the lifetime, so it is renewed before it expires, at most a day. A token said to
/// last 0 s is not a lifetime any server means; it is used for [`ZERO_LIFETIME_REUSE`] or
/// until refused (a 401 renews it), so that it never costs a login per request. No value
/// overflows: `expires_in` of u64::MAX once panicked adding to an `Instant`.
pub fn token_reuse(expires_in: Option<u64>) -> Duration {
    const MAX_LIFETIME: u64 = 24 * 3600;
    const MIN_REUSE: Duration = Duration::from_millis(500);
    match expires_in.unwrap_or(900) {
        0 => ZERO_LIFETIME_REUSE,
        secs => (Duration::from_secs(secs.min(MAX_LIFETIME)) / 5 * 4).max(MIN_REUSE),
    }
}

/// Reuse of a token whose answer said `expires_in: 0`.
pub const ZERO_LIFETIME_REUSE: Duration = Duration::from_secs(30);

impl Client {
    pub fn new(api: &ApiConfig) -> anyhow::Result<Client> {
        let secret = api.client_secret.expose();
        // Basic auth of a client-credentials login would carry `id:secret` in base64.
        let basic = format!("{}:{secret}", api.client_id);
        let http = Guarded::new(
            &api.base_url,
            Duration::from_secs(api.timeout_secs),
            api.max_in_flight,
            [secret, basic.as_str()],
        )?;
        Ok(Client {
            http,
            client_id: api.client_id.clone(),
            secret: api.client_secret.clone(),
            scope: super::settings::scope(api),
            token: Mutex::new(None),
            failed_login: std::sync::Mutex::new(None),
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
    ///
    /// A login that failed while this caller waited for the lock is its answer too: workers
    /// queued behind a login that timed out must not each wait out a timeout of their own.
    async fn token(&self, stale: Option<&str>) -> Result<String, CallError> {
        let asked = Instant::now();
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref() {
            let refused = stale.is_some_and(|s| s == token.value);
            if !refused && Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        {
            let failed = self.failed_login.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, error)) = failed.as_ref().filter(|(at, _)| *at >= asked) {
                return Err(error.clone());
            }
        }
        match self.login().await {
            Ok(fresh) => {
                let value = fresh.value.clone();
                *held = Some(fresh);
                Ok(value)
            }
            Err(error) => {
                *self.failed_login.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
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
        let unanswered = |error| match error {
            CallError::Ambiguous(message) => CallError::Connect(format!("login: {message}")),
            other => other,
        };
        let response = self
            .http
            .request(reqwest::Method::POST, LOGIN_PATH)
            .json(&body)
            .send()
            .await
            .map_err(|e| unanswered(self.http.transport_error(e)))?;
        let status = response.status().as_u16();
        let retry_after = retry_after_of(&response);
        if response.status().is_redirection() {
            return Err(CallError::Server {
                status,
                message: self.http.redirect_message(&response),
            });
        }
        let Body { text, complete } = self.http.read_body(response).await.map_err(unanswered)?;
        match status {
            200 => {
                if !complete {
                    return Err(self.server(status, "the login answer is too long"));
                }
                let answer: TokenResponse = serde_json::from_str(&text).map_err(|_| {
                    self.server(status, "the login answer is not the documented token JSON")
                })?;
                // Registered before anything can fail, so even a refused token is scrubbed.
                self.http.redactor().add(&answer.access_token);
                if let Some(refresh) = &answer.refresh_token {
                    self.http.redactor().add(refresh);
                }
                let usable = !answer.access_token.is_empty()
                    && answer.access_token.len() <= 16 * 1024
                    && answer.access_token.bytes().all(|b| b.is_ascii_graphic());
                if !usable {
                    return Err(self.server(status, "the login answer carries no usable token"));
                }
                let renew_at = started
                    .checked_add(token_reuse(answer.expires_in))
                    .unwrap_or(started);
                Ok(Token {
                    value: answer.access_token,
                    renew_at,
                })
            }
            429 => Err(CallError::RateLimited { retry_after }),
            400..=499 => {
                let refusal: Option<AuthError> = serde_json::from_str(&text).ok();
                Err(CallError::AuthRefused {
                    status,
                    error: refusal
                        .as_ref()
                        .map_or_else(|| "unknown".to_owned(), |r| self.clean(&r.error)),
                    description: self.clean(
                        refusal
                            .as_ref()
                            .map_or(text.as_str(), |r| r.error_description.as_str()),
                    ),
                })
            }
            _ => Err(self.server(status, &text)),
        }
    }

    /// Text from a server or a library, made safe to keep: scrubbed, then capped.
    fn clean(&self, text: &str) -> String {
        self.http.clean(text)
    }

    fn server(&self, status: u16, text: &str) -> CallError {
        CallError::Server {
            status,
            message: self.clean(text),
        }
    }

    /// One request, renewing the token once on a 401. A 2xx returns its status and body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), CallError> {
        let mut token = self.token(None).await?;
        let mut renewed = false;
        loop {
            let mut request = self.http.request(method.clone(), path).bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.http.transport_error(e))?;
            let status = response.status().as_u16();
            let retry_after = retry_after_of(&response);
            if response.status().is_redirection() {
                // Final: following it would send the request (personal data, the token)
                // elsewhere, and nothing was done here.
                return Err(CallError::Rejected {
                    status,
                    code: "REDIRECT".to_owned(),
                    message: self.http.redirect_message(&response),
                    technical: String::new(),
                });
            }
            let Body { text, complete } = self.http.read_body(response).await?;
            match status {
                200..=299 if complete => return Ok((status, text)),
                200..=299 => {
                    return Err(CallError::Unreliable {
                        status,
                        message: format!(
                            "the answer is longer than {MAX_BODY} bytes and cannot be relied on"
                        ),
                    });
                }
                401 if !renewed => {
                    renewed = true;
                    token = self.token(Some(&token)).await?;
                }
                429 => return Err(CallError::RateLimited { retry_after }),
                500..=599 | 401 | 408 => {
                    let message = serde_json::from_str::<ApiError>(&text).map_or_else(
                        |_| text.clone(),
                        |e| format!("{}: {}", e.message, e.technical_message),
                    );
                    return Err(self.server(status, &message));
                }
                _ => {
                    let error: Option<ApiError> = serde_json::from_str(&text).ok();
                    return Err(match error {
                        Some(e) => CallError::Rejected {
                            status,
                            code: self.clean(&e.code),
                            message: self.clean(&e.message),
                            technical: self.clean(&e.technical_message),
                        },
                        None => CallError::Rejected {
                            status,
                            code: status.to_string(),
                            message: self.clean(&text),
                            technical: String::new(),
                        },
                    });
                }
            }
        }
    }

    /// `USER_PATH/<uuid><suffix>`, only for a real UUID: an id from an answer or the ledger
    /// such as `../../admin` must never become a path.
    fn user_path(uuid: &str, suffix: &str) -> Result<String, CallError> {
        let id = canonical_uuid(uuid).ok_or_else(|| {
            CallError::NotSent(format!(
                "the user id {:?} is not a UUID",
                crate::redact::cap(uuid, 60)
            ))
        })?;
        Ok(format!("{USER_PATH}/{id}{suffix}"))
    }

    pub async fn get_user(&self, uuid: &str) -> Result<User, CallError> {
        let path = Self::user_path(uuid, "")?;
        let (_, text) = self.call(reqwest::Method::GET, &path, None).await?;
        user_from(&text)
    }

    /// Creates a user. The answer must name the new user by a UUID (returned canonical): the
    /// ledger keys everything on it. A 2xx without one is final and not retried, because the
    /// account may exist; the next run's create then meets "email exists" and adopts it.
    pub async fn create(&self, user: &User) -> Result<User, CallError> {
        let body = serde_json::to_value(user).expect("user objects serialize");
        let (status, text) = self
            .call(reqwest::Method::POST, USER_PATH, Some(&body))
            .await?;
        let unreliable = |what: &str| CallError::Unreliable {
            status,
            message: format!(
                "the create answer {what}, so it cannot be relied on; the account may exist \
                 (the next run adopts it by its email)"
            ),
        };
        let mut created: User =
            serde_json::from_str(&text).map_err(|_| unreliable("is not a user object"))?;
        let id = created
            .uuid
            .as_deref()
            .and_then(canonical_uuid)
            .ok_or_else(|| unreliable("carries no valid user id (uuid)"))?;
        created.uuid = Some(id);
        Ok(created)
    }

    pub async fn update(&self, uuid: &str, user: &User) -> Result<User, CallError> {
        let body = serde_json::to_value(user).expect("user objects serialize");
        let path = Self::user_path(uuid, "")?;
        let (_, text) = self.call(reqwest::Method::PUT, &path, Some(&body)).await?;
        user_from(&text)
    }

    pub async fn deactivate(&self, uuid: &str) -> Result<User, CallError> {
        let path = Self::user_path(uuid, "/deactivate")?;
        let (_, text) = self.call(reqwest::Method::PUT, &path, None).await?;
        user_from(&text)
    }

    pub async fn content(
        &self,
        uuid: &str,
        call: ContentCall,
        items: &[ContentRef],
    ) -> Result<User, CallError> {
        let body = json!({ "content": items });
        let path = Self::user_path(uuid, &format!("/{}", call.suffix()))?;
        let (_, text) = self.call(reqwest::Method::PUT, &path, Some(&body)).await?;
        user_from(&text)
    }
}

/// A user answer of an update, a deactivation or a content call. Its text is not kept: a
/// serde message may quote the answer.
fn user_from(text: &str) -> Result<User, CallError> {
    serde_json::from_str(text)
        .map_err(|_| CallError::Ambiguous("the answer is not a user object".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_reuse_is_bounded_for_any_lifetime() {
        assert_eq!(token_reuse(None), Duration::from_secs(720));
        assert_eq!(token_reuse(Some(900)), Duration::from_secs(720));
        assert_eq!(token_reuse(Some(2)), Duration::from_millis(1600));
        assert_eq!(token_reuse(Some(1)), Duration::from_millis(800));
        assert_eq!(token_reuse(Some(0)), ZERO_LIFETIME_REUSE);
        assert_eq!(
            token_reuse(Some(u64::MAX)),
            Duration::from_secs(24 * 3600 * 4 / 5)
        );
        // Issue 9: this once panicked ("overflow when adding duration to instant").
        let now = Instant::now();
        assert!(now.checked_add(token_reuse(Some(u64::MAX))).is_some());
    }

    #[test]
    fn only_uuids_become_ids_and_paths() {
        assert_eq!(
            canonical_uuid("3F2B8C1E-9A4D-4E2F-8B1A-0C9D8E7F6A5B").as_deref(),
            Some("3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b")
        );
        assert_eq!(
            canonical_uuid("3f2b8c1e9a4d4e2f8b1a0c9d8e7f6a5b").as_deref(),
            Some("3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b")
        );
        for bad in [
            "",
            "not-a-uuid",
            "../../admin",
            "aaaaaaaa-bbbb-cccc-dddd-5ce2287baaa",
        ] {
            assert_eq!(canonical_uuid(bad), None, "{bad}");
            assert!(matches!(
                Client::user_path(bad, ""),
                Err(CallError::NotSent(_))
            ));
        }
        assert_eq!(
            Client::user_path("3F2B8C1E-9A4D-4E2F-8B1A-0C9D8E7F6A5B", "/deactivate").unwrap(),
            format!("{USER_PATH}/3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b/deactivate")
        );
        let odd = CallError::Rejected {
            status: 400,
            code: "EMAIL_EXISTS".into(),
            message: "exists".into(),
            technical: "Email already exists for user id aaaaaaaa-bbbb-cccc-dddd-5ce2287baaa"
                .into(),
        };
        assert_eq!(existing_user_id(&odd), None);
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
            existing_user_id(&conflict).as_deref(),
            Some("3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b")
        );
        let outside = CallError::Rejected {
            status: 400,
            code: "EMAIL_EXISTS".into(),
            message: "exists".into(),
            technical: "Email already exists".into(),
        };
        assert_eq!(existing_user_id(&outside), None);
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
