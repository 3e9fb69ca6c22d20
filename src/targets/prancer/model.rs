//! The wire types of the prancer users API (`prancer-users-api.txt`), shared by the client
//! and the simulator so that both speak exactly the same JSON.
//!
//! Owns field names, paths and shapes only; no validation and no I/O. The document's
//! oddities are kept as documented: parameters travel in a JSON body on GET and DELETE, and
//! the roles URL has a double slash (`api//user/roles`).

use serde::{Deserialize, Serialize};

/// Paths of the API, relative to the base URL (which names the customer, e.g.
/// `https://portal.prancer.io/prancer-customer1`).
pub const INVITE_PATH: &str = "/api/user/invite/";
pub const WHOAMI_PATH: &str = "/api/user/get/";
pub const MANAGE_PATH: &str = "/api/user/manage/";
pub const TOUR_PATH: &str = "/api/user/tour/";
/// Sic: the document's URL has two slashes here.
pub const ROLES_PATH: &str = "/api//user/roles";

/// The status text of a user who has not accepted the invitation yet.
pub const STATUS_PENDING: &str = "Pending";
/// The status text of a user who has.
pub const STATUS_ACTIVE: &str = "Active";

/// Every answer: `{data, error, error_list, message, metadata, status}`. `status` repeats the
/// HTTP status, and an error says itself in `error` / `error_list` / `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_list: Vec<serde_json::Value>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub status: u16,
}

/// `GET user/invite/` (body): send, or re-send, an invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteRequest {
    pub email: String,
    #[serde(default)]
    pub resend: bool,
}

/// `GET user/manage/` (body, optional): users whose email or name contains `search`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    #[serde(default)]
    pub search: String,
}

/// `DELETE user/manage/` (body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub email: String,
}

/// `POST api//user/roles`: sets the user's groups (the whole list); also its answer's `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolesRequest {
    pub user_id: i64,
    pub groups: Vec<String>,
}

/// `POST user/tour/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TourRequest {
    pub tour_path: String,
    pub status: bool,
}

/// `data` of `GET user/get/`: the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub is_staff: bool,
    #[serde(default)]
    pub is_superuser: bool,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub tours: serde_json::Map<String, serde_json::Value>,
}

/// `data` of `GET user/manage/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserList {
    #[serde(default)]
    pub users: Vec<PrancerUser>,
}

/// One user of the listing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrancerUser {
    #[serde(default)]
    pub date_joined: String,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    pub id: i64,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub is_staff: bool,
    #[serde(default)]
    pub is_superuser: bool,
    #[serde(default)]
    pub last_login: Option<String>,
    #[serde(default)]
    pub last_name: String,
    /// Always empty in answers; kept so the shape is the documented one.
    #[serde(default)]
    pub password: String,
    /// [`STATUS_PENDING`] or [`STATUS_ACTIVE`].
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub username: String,
}
