//! The simulator's academy: users, their enrollments, the email index and the duplicate
//! window, with the API's validation rules.
//!
//! Owns every state change the simulated API makes and the rules that refuse one. Knows
//! nothing of HTTP: handlers turn its answers into responses. Must never return content in a
//! user object (the real API never does).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::CompleteError;
use crate::ingest::catalog::{Catalog, ContentType};
use crate::ingest::normalize::{fold, is_valid_email, looks_like_uuid};
use crate::targets::praesidium::model::{
    ApiError, ContentRef, KNOWN_ROLES, STATUS_ACTIVE, STATUS_INACTIVE, User,
};

/// Who is calling: the credential's client id and the clients it may manage.
pub struct Caller<'a> {
    pub client_id: &'a str,
    pub managed: &'a HashSet<String>,
}

/// One user as the academy holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimUser {
    /// The user object as returned by GET (uuid set, no content).
    pub user: User,
    /// Enrollments by content UUID.
    pub content: BTreeMap<String, Enrollment>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Enrollment {
    #[serde(rename = "type")]
    pub kind: String,
    pub enrolled_at: DateTime<Utc>,
    pub re_enrollments: u32,
    /// When the learner completed it (set by the admin call that simulates a completion,
    /// cleared by a re-enrollment); absent in state files written before completions existed.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

/// The three content endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentAction {
    Enroll,
    Remove,
    ReEnroll,
}

/// A response remembered for the duplicate window, replayed for an identical request.
#[derive(Debug, Clone)]
pub struct Replay {
    pub status: u16,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct DuplicateWindow {
    entries: HashMap<String, (Instant, Replay)>,
    order: VecDeque<(Instant, String)>,
}

#[derive(Default)]
pub struct Store {
    users: HashMap<String, SimUser>,
    by_email: HashMap<String, String>,
    window: DuplicateWindow,
}

pub fn api_error(
    status: u16,
    code: &str,
    message: impl Into<String>,
    technical: impl Into<String>,
) -> ApiError {
    ApiError {
        status,
        code: code.to_owned(),
        message: message.into(),
        technical_message: technical.into(),
        info_uri: None,
    }
}

fn not_found(uuid: &str) -> ApiError {
    api_error(
        404,
        "USER_NOT_FOUND",
        "User not found",
        format!("No user with id {uuid}"),
    )
}

impl Store {
    pub fn from_users(users: Vec<SimUser>) -> Store {
        let mut store = Store::default();
        for user in users {
            store.index(user);
        }
        store
    }

    fn index(&mut self, user: SimUser) {
        let uuid = user.user.uuid.clone().unwrap_or_default();
        let email = fold(user.user.principal.email.as_deref().unwrap_or(""));
        self.by_email.insert(email, uuid.clone());
        self.users.insert(uuid, user);
    }

    /// Every user, oldest first.
    pub fn users(&self) -> Vec<SimUser> {
        let mut all: Vec<SimUser> = self.users.values().cloned().collect();
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.user.uuid.cmp(&b.user.uuid))
        });
        all
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// An identical change processed within `window` is answered with its first response.
    pub fn replay(&mut self, key: &str, window: Duration, now: Instant) -> Option<Replay> {
        self.prune_window(window, now);
        self.window
            .entries
            .get(key)
            .filter(|(at, _)| now.duration_since(*at) < window)
            .map(|(_, replay)| replay.clone())
    }

    /// Remembers a processed change for the duplicate window.
    pub fn remember(&mut self, key: String, replay: Replay, now: Instant) {
        self.window.order.push_back((now, key.clone()));
        self.window.entries.insert(key, (now, replay));
    }

    fn prune_window(&mut self, window: Duration, now: Instant) {
        while let Some((at, _)) = self.window.order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            let (at, key) = self.window.order.pop_front().expect("front exists");
            // A later identical request re-armed the entry; keep that one.
            if self.window.entries.get(&key).is_some_and(|(t, _)| *t == at) {
                self.window.entries.remove(&key);
            }
        }
    }

    fn visible(&self, caller: &Caller, uuid: &str) -> Result<&SimUser, ApiError> {
        if !looks_like_uuid(uuid) {
            return Err(api_error(
                400,
                "INVALID_UUID",
                "The user id is not a valid UUID",
                format!("Path parameter UUID {uuid:?} is not a UUID"),
            ));
        }
        let user = self.users.get(&fold(uuid)).ok_or_else(|| not_found(uuid))?;
        let client = user.user.context.client.as_deref().unwrap_or("");
        if !caller.managed.contains(client) {
            return Err(api_error(
                403,
                "FORBIDDEN",
                "You are not allowed to manage this user",
                format!(
                    "User {uuid} belongs to client {client}, outside the hierarchy of {}",
                    caller.client_id
                ),
            ));
        }
        Ok(user)
    }

    /// Emails are unique across the academy. The refusal names the user holding the email
    /// only when that user is in the caller's hierarchy, as the real API does.
    fn check_email_free(
        &self,
        caller: &Caller,
        email: &str,
        except: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(holder) = self
            .by_email
            .get(email)
            .filter(|h| Some(h.as_str()) != except)
        else {
            return Ok(());
        };
        let holder_client = self.users[holder]
            .user
            .context
            .client
            .as_deref()
            .unwrap_or("");
        let technical = if caller.managed.contains(holder_client) {
            format!("Email already exists for user id {holder}")
        } else {
            "Email already exists".to_owned()
        };
        Err(api_error(
            400,
            "EMAIL_EXISTS",
            "A user with this email address already exists",
            technical,
        ))
    }

    pub fn get(&self, caller: &Caller, uuid: &str) -> Result<User, ApiError> {
        Ok(self.visible(caller, uuid)?.user.clone())
    }

    pub fn create(
        &mut self,
        caller: &Caller,
        catalog: &Catalog,
        body: User,
    ) -> Result<User, ApiError> {
        validate(&body, catalog)?;
        let client = body.context.client.as_deref().map(fold).unwrap_or_default();
        if !caller.managed.contains(&client) {
            return Err(api_error(
                400,
                "CLIENT_NOT_PERMITTED",
                "The client is not in your hierarchy",
                format!("Client {client} cannot be managed by {}", caller.client_id),
            ));
        }
        let email = fold(body.principal.email.as_deref().unwrap_or(""));
        self.check_email_free(caller, &email, None)?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let now = Utc::now();
        let mut stored = SimUser {
            user: stored_form(body.clone(), &uuid),
            content: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        };
        enroll(
            &mut stored,
            body.context.content.as_deref().unwrap_or(&[]),
            catalog,
            now,
        );
        let answer = stored.user.clone();
        self.index(stored);
        Ok(answer)
    }

    pub fn update(
        &mut self,
        caller: &Caller,
        catalog: &Catalog,
        uuid: &str,
        body: User,
    ) -> Result<User, ApiError> {
        self.visible(caller, uuid)?;
        validate(&body, catalog)?;
        let uuid = fold(uuid);
        let client = body.context.client.as_deref().map(fold).unwrap_or_default();
        if !caller.managed.contains(&client) {
            return Err(api_error(
                403,
                "FORBIDDEN",
                "The client is not in your hierarchy",
                format!("Client {client} cannot be managed by {}", caller.client_id),
            ));
        }
        let email = fold(body.principal.email.as_deref().unwrap_or(""));
        self.check_email_free(caller, &email, Some(&uuid))?;
        let now = Utc::now();
        let stored = self.users.get_mut(&uuid).expect("visible() found it");
        let old_email = fold(stored.user.principal.email.as_deref().unwrap_or(""));
        let mut next = stored_form(body.clone(), &uuid);
        if next.system.status.is_none() {
            next.system.status = stored.user.system.status.clone();
        }
        stored.user = next;
        stored.updated_at = now;
        enroll(
            stored,
            body.context.content.as_deref().unwrap_or(&[]),
            catalog,
            now,
        );
        let answer = stored.user.clone();
        if old_email != email {
            self.by_email.remove(&old_email);
            self.by_email.insert(email, uuid);
        }
        Ok(answer)
    }

    pub fn deactivate(&mut self, caller: &Caller, uuid: &str) -> Result<User, ApiError> {
        self.visible(caller, uuid)?;
        let stored = self.users.get_mut(&fold(uuid)).expect("visible() found it");
        stored.user.system.status = Some(STATUS_INACTIVE.to_owned());
        stored.updated_at = Utc::now();
        Ok(stored.user.clone())
    }

    pub fn change_content(
        &mut self,
        caller: &Caller,
        catalog: &Catalog,
        uuid: &str,
        action: ContentAction,
        items: &[ContentRef],
    ) -> Result<User, ApiError> {
        self.visible(caller, uuid)?;
        if items.is_empty() {
            return Err(api_error(
                400,
                "VALIDATION_ERROR",
                "The content listing is empty",
                "content: expected at least one item",
            ));
        }
        let problems: Vec<String> = items
            .iter()
            .filter_map(|item| content_problem(item, catalog))
            .collect();
        if !problems.is_empty() {
            return Err(validation_error(problems));
        }
        let now = Utc::now();
        let stored = self.users.get_mut(&fold(uuid)).expect("visible() found it");
        match action {
            ContentAction::Enroll => enroll(stored, items, catalog, now),
            // Removing what is not enrolled is a no-op, as re-sending a removal must be.
            ContentAction::Remove => {
                for item in items {
                    stored.content.remove(&fold(&item.uuid));
                }
            }
            ContentAction::ReEnroll => {
                for item in items {
                    let entry =
                        stored
                            .content
                            .entry(fold(&item.uuid))
                            .or_insert_with(|| Enrollment {
                                kind: item.kind.clone(),
                                enrolled_at: now,
                                re_enrollments: 0,
                                completed_at: None,
                            });
                    entry.re_enrollments += 1;
                    entry.enrolled_at = now;
                    // Re-enrolled content is to be taken again: not completed any more.
                    entry.completed_at = None;
                }
            }
        }
        stored.updated_at = now;
        Ok(stored.user.clone())
    }
}

/// The learner an event names, read before a completion changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learner {
    pub user_uuid: String,
    pub client_uuid: String,
    pub first_name: String,
    pub last_name: String,
    /// The user's `client_external_id`, empty when it has none.
    pub ref1: String,
}

impl Store {
    /// Who completes `content` (both folded UUIDs), or why they cannot: an unknown or
    /// inactive user, or content they are not enrolled in. Changes nothing.
    pub fn learner(&self, user: &str, content: &str) -> Result<Learner, CompleteError> {
        let stored = self
            .users
            .get(user)
            .ok_or_else(|| CompleteError::UnknownUser(user.to_owned()))?;
        if stored.user.system.status.as_deref() == Some(STATUS_INACTIVE) {
            return Err(CompleteError::InactiveUser(user.to_owned()));
        }
        if !stored.content.contains_key(content) {
            return Err(CompleteError::NotEnrolled {
                user: user.to_owned(),
                content: content.to_owned(),
            });
        }
        let principal = &stored.user.principal;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        Ok(Learner {
            user_uuid: user.to_owned(),
            client_uuid: text(&stored.user.context.client),
            first_name: text(&principal.first_name),
            last_name: text(&principal.last_name),
            ref1: text(&principal.client_external_id),
        })
    }

    /// Records that `user` completed `content` at `at` (a later completion replaces it). Only
    /// after [`Store::learner`] accepted the pair; anything else is left untouched.
    pub fn mark_completed(&mut self, user: &str, content: &str, at: DateTime<Utc>) {
        if let Some(entry) = self
            .users
            .get_mut(user)
            .and_then(|u| u.content.get_mut(content))
        {
            entry.completed_at = Some(at);
        }
    }
}

/// The user object as stored and returned: our uuid, normalized ids, content stripped.
fn stored_form(mut body: User, uuid: &str) -> User {
    body.uuid = Some(uuid.to_owned());
    body.context.content = None;
    body.context.client = body.context.client.as_deref().map(fold);
    body.context.locations = body.context.locations.iter().map(|l| fold(l)).collect();
    if body.system.status.is_none() {
        body.system.status = Some(STATUS_ACTIVE.to_owned());
    }
    body
}

fn enroll(stored: &mut SimUser, items: &[ContentRef], catalog: &Catalog, now: DateTime<Utc>) {
    for item in items {
        let uuid = fold(&item.uuid);
        let kind = catalog
            .content_by_uuid(&uuid)
            .map_or(item.kind.clone(), |c| c.kind.as_api_str().to_owned());
        // Already enrolled: kept as it is, completion included.
        stored.content.entry(uuid).or_insert(Enrollment {
            kind,
            enrolled_at: now,
            re_enrollments: 0,
            completed_at: None,
        });
    }
}

fn validation_error(problems: Vec<String>) -> ApiError {
    api_error(
        400,
        "VALIDATION_ERROR",
        "The user object is not valid",
        problems.join("\n"),
    )
}

fn content_problem(item: &ContentRef, catalog: &Catalog) -> Option<String> {
    let Some(entry) = catalog.content_by_uuid(&item.uuid) else {
        return Some(format!("content: unknown content uuid {}", item.uuid));
    };
    match ContentType::parse(&item.kind) {
        None => Some(format!(
            "content: type {:?} of {} is not \"course\" or \"learning path\"",
            item.kind, item.uuid
        )),
        Some(kind) if kind != entry.kind || item.kind != kind.as_api_str() => Some(format!(
            "content: {} is a {}, not {:?}",
            item.uuid,
            entry.kind.as_api_str(),
            item.kind
        )),
        Some(_) => None,
    }
}

/// The API's field rules for create and update; all problems are reported at once.
pub fn validate(user: &User, catalog: &Catalog) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if !present(&user.principal.first_name) {
        problems.push("principal.first_name is required".to_owned());
    }
    if !present(&user.principal.last_name) {
        problems.push("principal.last_name is required".to_owned());
    }
    match user.principal.email.as_deref() {
        None | Some("") => problems.push("principal.email is required".to_owned()),
        Some(email) if !is_valid_email(email) => problems.push(format!(
            "principal.email {email:?} is not a valid email address"
        )),
        Some(_) => {}
    }
    match user.system.role.as_deref() {
        None | Some("") => problems.push("system.role is required".to_owned()),
        Some(role) if !KNOWN_ROLES.contains(&role) => {
            problems.push(format!("system.role {role:?} is not a known role"))
        }
        Some(_) => {}
    }
    if let Some(status) = user.system.status.as_deref()
        && status != STATUS_ACTIVE
        && status != STATUS_INACTIVE
    {
        problems.push(format!(
            "system.status {status:?} is not \"active\" or \"inactive\""
        ));
    }
    let client = user.context.client.as_deref().unwrap_or("");
    let client_known = catalog
        .client(client)
        .is_some_and(|c| c.uuid == fold(client));
    if client.is_empty() {
        problems.push("context.client is required".to_owned());
    } else if !client_known {
        problems.push(format!(
            "context.client {client} is not a known client uuid"
        ));
    }
    for location in &user.context.locations {
        match catalog.location_by_uuid(location) {
            None => problems.push(format!(
                "context.locations: unknown location uuid {location}"
            )),
            Some(l) if client_known && l.client.as_deref().is_some_and(|c| c != fold(client)) => {
                problems.push(format!(
                    "context.locations: location {location} does not belong to client {client}"
                ))
            }
            Some(_) => {}
        }
    }
    for item in user.context.content.as_deref().unwrap_or(&[]) {
        problems.extend(content_problem(item, catalog));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(validation_error(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_saved_before_completions_existed_still_loads() {
        let old =
            r#"{"type": "course", "enrolled_at": "2025-01-02T03:04:05Z", "re_enrollments": 2}"#;
        let enrollment: Enrollment = serde_json::from_str(old).unwrap();
        assert_eq!(enrollment.completed_at, None);
        assert_eq!(enrollment.re_enrollments, 2);
    }
}
