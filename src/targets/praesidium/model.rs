//! The wire types of the Praesidium User Management REST API v2, shared by the client and
//! the simulator so that both speak exactly the same JSON.
//!
//! Owns field names and shapes only; no validation and no I/O.

use serde::{Deserialize, Serialize};

/// Paths of the API, relative to the base URL.
pub const LOGIN_PATH: &str = "/portal/authenticate/login_api";
pub const USER_PATH: &str = "/portal/lms_api/v2/user";
/// The scope that grants user management.
pub const USER_SCOPE: &str = "prae.client.api.user";

/// Roles the academy knows. The provider's role table was lost from the copy of the spec we
/// hold; these are the roles its examples and our clients use. The API wants this spelling.
pub const KNOWN_ROLES: &[&str] = &[
    "Learner",
    "Supervisor",
    "Instructor",
    "Administrator",
    "Administrator - View Only",
];

/// User statuses the API accepts.
pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_INACTIVE: &str = "inactive";

/// The user object: the body of create and update, and the answer of every user endpoint.
/// `context.content` is only ever sent, never returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default)]
    pub principal: Principal,
    #[serde(default)]
    pub system: System,
    /// Reserved by the provider; kept as an opaque object.
    #[serde(default)]
    pub person: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_external_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct System {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentRef>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_type: Option<String>,
}

/// One item of a content listing: `{ "uuid": ..., "type": "course" | "learning path" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentRef {
    pub uuid: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The body of enrollContent, removeContent and reEnrollContent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentListing {
    pub content: Vec<ContentRef>,
}

/// The error body of every user endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    #[serde(rename = "technicalMessage")]
    pub technical_message: String,
    #[serde(rename = "infoURI", default)]
    pub info_uri: Option<String>,
}

/// The error body of the login endpoint (OAuth style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthError {
    pub error: String,
    pub error_description: String,
    #[serde(default)]
    pub expires_uri: Option<String>,
}

/// The success body of the login endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    /// Seconds; the spec says 900 when it says nothing else. Read leniently (a string, a
    /// float, a negative or a huge number all give a value, see [`lenient_seconds`]) because
    /// a login whose token is fine must not fail over how its lifetime is spelled; the client
    /// bounds the value before using it.
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Seconds from any JSON number or numeric string: negative → 0, beyond u64 → u64::MAX,
/// fractions rounded down; anything else → `None` (the default lifetime).
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let float = match &value {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(secs) => return Ok(Some(secs)),
            None => n.as_f64(),
        },
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    // `as` saturates (NaN → 0), which is the bound wanted here.
    Ok(float.map(|f| f.max(0.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_is_read_leniently() {
        let read = |raw: &str| {
            serde_json::from_str::<TokenResponse>(&format!(
                r#"{{"access_token":"t","expires_in":{raw}}}"#
            ))
            .unwrap()
            .expires_in
        };
        assert_eq!(read("900"), Some(900));
        assert_eq!(read("18446744073709551615"), Some(u64::MAX));
        assert_eq!(read("1e30"), Some(u64::MAX));
        assert_eq!(read("-5"), Some(0));
        assert_eq!(read("12.7"), Some(12));
        assert_eq!(read("\"60\""), Some(60));
        assert_eq!(read("null"), None);
        assert_eq!(read("{}"), None);
        let none: TokenResponse = serde_json::from_str(r#"{"access_token":"t"}"#).unwrap();
        assert_eq!(none.expires_in, None);
    }
}
