//! Who is calling the simulated prancer API: the accounts behind its bearer tokens, their
//! roles, permissions and page-tour flags.
//!
//! Owns telling a caller from its `Authorization` header and what each role may do. The
//! tokens are fixed at start (the API document gives no way to obtain one: a customer is
//! handed a JWT), so an unknown token is refused, never learnt. Never logs or returns a token.

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::envelope::ApiError;

/// Every permission the document's example lists: an admin's or superuser's.
pub const FULL_PERMISSIONS: &[&str] = &[
    "dashboard_full_control",
    "dashboard_read",
    "query_full_control",
    "query_read",
    "resource_full_control",
    "resource_read",
    "policy_full_control",
    "policy_read",
    "report_full_control",
    "report_read",
];

/// The page tours of the document's example, as a new account has them.
pub const TOURS: &[(&str, bool)] = &[
    ("/wc/dashboard", false),
    ("/wc/exclusion/search", false),
    ("/wc/resource/search", true),
];

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `is_admin`: full control, may invite, delete and set groups.
    Admin,
    /// `is_staff` only: reads, with the read permissions.
    Staff,
}

/// One account behind a token.
#[derive(Debug, Clone)]
pub struct Account {
    token: String,
    /// Its user's id in the store.
    pub user_id: i64,
    pub role: Role,
    pub tours: Map<String, Value>,
}

impl Account {
    pub fn new(token: &str, user_id: i64, role: Role) -> Account {
        Account {
            token: token.to_owned(),
            user_id,
            role,
            tours: TOURS
                .iter()
                .map(|(path, seen)| ((*path).to_owned(), Value::Bool(*seen)))
                .collect(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn is_staff(&self) -> bool {
        self.role == Role::Staff
    }

    /// Admins and superusers have full control; staff see what their permissions grant.
    pub fn permissions(&self) -> Vec<String> {
        FULL_PERMISSIONS
            .iter()
            .filter(|p| self.is_admin() || p.ends_with("_read"))
            .map(|p| (*p).to_owned())
            .collect()
    }

    /// Only an admin (or superuser) may change users.
    pub fn may_manage_users(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::permission_denied())
        }
    }
}

/// The bearer token of an `Authorization` header (scheme compared ignoring case).
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthenticated("authentication credentials were not provided");
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| ApiError::unauthenticated("invalid token"))?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// The accounts the simulator knows, by token.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    accounts: Vec<Account>,
}

impl Accounts {
    pub fn new(accounts: Vec<Account>) -> Accounts {
        Accounts { accounts }
    }

    /// The account of the request's bearer token.
    pub fn caller(&self, headers: &HeaderMap) -> Result<&Account, ApiError> {
        let token = bearer(headers)?;
        self.accounts
            .iter()
            .find(|a| a.token == token)
            .ok_or_else(|| ApiError::unauthenticated("invalid token"))
    }

    /// Sets one of the account's page-tour flags; the path must be one it has.
    pub fn set_tour(&mut self, user_id: i64, path: &str, seen: bool) -> Result<(), ApiError> {
        let account = self
            .accounts
            .iter_mut()
            .find(|a| a.user_id == user_id)
            .ok_or_else(|| ApiError::unauthenticated("invalid token"))?;
        match account.tours.get_mut(path) {
            Some(flag) => {
                *flag = Value::Bool(seen);
                Ok(())
            }
            None => Err(ApiError::invalid(vec![super::envelope::FieldError::new(
                "tour_path",
                format!("unknown tour path {path:?}"),
            )])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_a_known_bearer_token_is_a_caller() {
        let accounts = Accounts::new(vec![
            Account::new("admin-token", 1, Role::Admin),
            Account::new("staff-token", 2, Role::Staff),
        ]);
        assert_eq!(
            accounts
                .caller(&with_auth("Bearer admin-token"))
                .unwrap()
                .user_id,
            1
        );
        assert_eq!(
            accounts
                .caller(&with_auth("bearer staff-token"))
                .unwrap()
                .user_id,
            2
        );
        for refused in ["Bearer nope", "Basic admin-token", "Bearer ", "admin-token"] {
            let error = accounts.caller(&with_auth(refused)).unwrap_err();
            assert_eq!(error.status, 401, "{refused}");
        }
        assert_eq!(accounts.caller(&HeaderMap::new()).unwrap_err().status, 401);
    }

    #[test]
    fn staff_read_and_admins_manage() {
        let admin = Account::new("a", 1, Role::Admin);
        let staff = Account::new("s", 2, Role::Staff);
        assert_eq!(admin.permissions().len(), FULL_PERMISSIONS.len());
        assert!(staff.permissions().iter().all(|p| p.ends_with("_read")));
        assert_eq!(staff.permissions().len(), 5);
        assert!(admin.may_manage_users().is_ok());
        assert_eq!(staff.may_manage_users().unwrap_err().status, 403);
    }

    #[test]
    fn tours_are_set_by_known_path_only() {
        let mut accounts = Accounts::new(vec![Account::new("a", 1, Role::Admin)]);
        accounts.set_tour(1, "/wc/dashboard", true).unwrap();
        assert_eq!(
            accounts.accounts[0].tours["/wc/dashboard"],
            Value::Bool(true)
        );
        assert_eq!(
            accounts.set_tour(1, "/wc/nope", true).unwrap_err().status,
            400
        );
    }
}
