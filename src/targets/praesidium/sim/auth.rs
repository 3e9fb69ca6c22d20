//! The simulator's authentication: client credentials, signed JWT access tokens with an
//! expiry, and refresh tokens.
//!
//! Owns issuing and checking tokens. Tokens are HS256-signed with a key made at start-up, so
//! a forged or foreign token fails the signature check, and a restarted simulator refuses old
//! tokens exactly as a real service rotating its keys would.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::targets::praesidium::model::{AuthError, TokenResponse, USER_SCOPE};

/// One API credential and the clients (UUIDs) it may manage: its hierarchy.
#[derive(Debug, Clone)]
pub struct Credential {
    pub client_id: String,
    pub client_secret: String,
    pub managed_clients: HashSet<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    /// Whole seconds, as JWT consumers expect.
    exp: u64,
    /// The exact expiry in milliseconds: lifetimes of a second or two must be honoured
    /// precisely for expiry tests to mean anything.
    exp_ms: u64,
    jti: String,
    scope: String,
}

/// The fields of a login request, from a JSON or a form body.
#[derive(Debug, Default)]
pub struct LoginRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Vec<String>,
    pub refresh_token: Option<String>,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    refresh: Mutex<HashMap<String, String>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn auth_error(error: &str, description: impl Into<String>) -> AuthError {
    AuthError {
        error: error.to_owned(),
        error_description: description.into(),
        expires_uri: None,
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens::new()
    }
}

impl Tokens {
    pub fn new() -> Tokens {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against exp_ms below, with no leeway.
        validation.validate_exp = false;
        validation.required_spec_claims = HashSet::new();
        Tokens {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
            refresh: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a login request; on success returns the client id and a fresh token answer.
    /// Errors carry the HTTP status (400 or 401) and the documented body.
    pub fn login(
        &self,
        request: &LoginRequest,
        credentials: &[Credential],
        lifetime_secs: f64,
    ) -> Result<(String, TokenResponse), (u16, AuthError)> {
        let client_id = match request.grant_type.as_deref() {
            Some("client_credentials") => {
                let (Some(id), Some(secret)) = (&request.client_id, &request.client_secret) else {
                    return Err((
                        400,
                        auth_error(
                            "invalid_request",
                            "client_id and client_secret are required",
                        ),
                    ));
                };
                let known = credentials
                    .iter()
                    .find(|c| &c.client_id == id && &c.client_secret == secret);
                if known.is_none() {
                    return Err((
                        401,
                        auth_error("invalid_client", "Client authentication failed"),
                    ));
                }
                if !request.scope.iter().any(|s| s == USER_SCOPE) {
                    // The spec answers a bad scope with 400 and error "invalid_client".
                    return Err((
                        400,
                        auth_error("invalid_client", format!("scope must include {USER_SCOPE}")),
                    ));
                }
                id.clone()
            }
            Some("refresh_token") => {
                let Some(token) = &request.refresh_token else {
                    return Err((
                        400,
                        auth_error("invalid_request", "refresh_token is required"),
                    ));
                };
                let owner = self
                    .refresh
                    .lock()
                    .expect("refresh lock")
                    .get(token)
                    .cloned();
                match owner {
                    Some(owner) if request.client_id.as_ref().is_none_or(|id| *id == owner) => {
                        owner
                    }
                    _ => return Err((401, auth_error("invalid_client", "Unknown refresh token"))),
                }
            }
            Some(other) => {
                return Err((
                    400,
                    auth_error(
                        "invalid_request",
                        format!("unsupported grant_type {other:?}"),
                    ),
                ));
            }
            None => return Err((400, auth_error("invalid_request", "grant_type is required"))),
        };
        Ok((client_id.clone(), self.issue(&client_id, lifetime_secs)))
    }

    fn issue(&self, client_id: &str, lifetime_secs: f64) -> TokenResponse {
        let now = now_ms();
        let lifetime_ms = (lifetime_secs.max(0.0) * 1000.0) as u64;
        let claims = Claims {
            sub: client_id.to_owned(),
            iat: now / 1000,
            exp: (now + lifetime_ms).div_ceil(1000),
            exp_ms: now + lifetime_ms,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: USER_SCOPE.to_owned(),
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .expect("HS256 signing of a plain struct cannot fail");
        let refresh_token = uuid::Uuid::new_v4().simple().to_string();
        self.refresh
            .lock()
            .expect("refresh lock")
            .insert(refresh_token.clone(), client_id.to_owned());
        TokenResponse {
            access_token,
            token_type: Some("Bearer".to_owned()),
            expires_in: Some(lifetime_secs.ceil() as u64),
            refresh_token: Some(refresh_token),
            scope: Some(USER_SCOPE.to_owned()),
        }
    }

    /// Checks an `Authorization` header value; returns the client id the token was issued to.
    pub fn verify(&self, authorization: Option<&str>) -> Result<String, &'static str> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or("missing bearer token")?;
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.decoding, &self.validation)
            .map_err(|_| "invalid token")?;
        if now_ms() >= data.claims.exp_ms {
            return Err("token expired");
        }
        Ok(data.claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Vec<Credential> {
        vec![Credential {
            client_id: "id".into(),
            client_secret: "secret".into(),
            managed_clients: HashSet::new(),
        }]
    }

    fn request(secret: &str, scope: &[&str]) -> LoginRequest {
        LoginRequest {
            grant_type: Some("client_credentials".into()),
            client_id: Some("id".into()),
            client_secret: Some(secret.into()),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            refresh_token: None,
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let tokens = Tokens::new();
        let (_, answer) = tokens
            .login(&request("secret", &[USER_SCOPE]), &creds(), 900.0)
            .unwrap();
        let header = format!("Bearer {}", answer.access_token);
        assert_eq!(tokens.verify(Some(&header)), Ok("id".to_owned()));
        let (_, short) = tokens
            .login(&request("secret", &[USER_SCOPE]), &creds(), 0.0)
            .unwrap();
        assert_eq!(
            tokens.verify(Some(&format!("Bearer {}", short.access_token))),
            Err("token expired")
        );
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let tokens = Tokens::new();
        let other = Tokens::new();
        let (_, answer) = other
            .login(&request("secret", &[USER_SCOPE]), &creds(), 900.0)
            .unwrap();
        assert_eq!(
            tokens.verify(Some(&format!("Bearer {}", answer.access_token))),
            Err("invalid token")
        );
        assert_eq!(
            tokens.verify(Some("Bearer abc.def.ghi")),
            Err("invalid token")
        );
        assert_eq!(tokens.verify(None), Err("missing bearer token"));
    }

    #[test]
    fn wrong_secret_and_scope_get_the_documented_errors() {
        let tokens = Tokens::new();
        let (status, body) = tokens
            .login(&request("nope", &[USER_SCOPE]), &creds(), 900.0)
            .unwrap_err();
        assert_eq!((status, body.error.as_str()), (401, "invalid_client"));
        let (status, body) = tokens
            .login(&request("secret", &["other"]), &creds(), 900.0)
            .unwrap_err();
        assert_eq!((status, body.error.as_str()), (400, "invalid_client"));
        let (status, body) = tokens
            .login(&LoginRequest::default(), &creds(), 900.0)
            .unwrap_err();
        assert_eq!((status, body.error.as_str()), (400, "invalid_request"));
    }

    #[test]
    fn refresh_tokens_issue_new_access_tokens() {
        let tokens = Tokens::new();
        let (_, answer) = tokens
            .login(&request("secret", &[USER_SCOPE]), &creds(), 900.0)
            .unwrap();
        let refresh = LoginRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: answer.refresh_token,
            ..LoginRequest::default()
        };
        let (id, renewed) = tokens.login(&refresh, &creds(), 900.0).unwrap();
        assert_eq!(id, "id");
        assert!(
            tokens
                .verify(Some(&format!("Bearer {}", renewed.access_token)))
                .is_ok()
        );
    }
}
