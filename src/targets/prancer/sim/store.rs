//! The simulated prancer customer's users: invitations, acceptance, groups, deletion, with
//! the API's rules that refuse a change.
//!
//! Owns every state change the simulated users API makes and the rules behind its refusals:
//! emails are unique compared case-insensitively, ids count up from 1 and are never reused,
//! an invitation is sent once and then only re-sent on request. Knows nothing of HTTP or
//! tokens: the routes turn its answers and [`StoreError`]s into envelopes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ingest::normalize::fold;
use crate::targets::prancer::model::{PrancerUser, STATUS_ACTIVE, STATUS_PENDING};

/// One user as the simulator holds it: the listing's record and what only tests may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimUser {
    /// The user exactly as `GET user/manage/` lists it.
    pub user: PrancerUser,
    /// Invitations re-sent (`resend: true`) after the first.
    pub resends: u32,
    /// When the last invitation (the first or a re-sent one) went out; `None` for a user who
    /// was never invited (the API's own callers, users seeded active).
    pub invited_at: Option<DateTime<Utc>>,
    /// An account behind one of the simulator's tokens.
    pub api_caller: bool,
}

/// Why the store refused a change; each maps to one HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("user not found")]
    NoSuchEmail,
    #[error("user with id {0} not found")]
    NoSuchId(i64),
    #[error("invitation already sent; set resend to true")]
    AlreadyInvited,
    #[error("user already exists")]
    AlreadyExists,
    #[error("no invitation was sent to this email; set resend to false to send one")]
    NothingToResend,
    #[error("invalid group {0:?}")]
    UnknownGroup(String),
    #[error("you cannot delete your own account")]
    OwnAccount,
    #[error("the invitation was already accepted")]
    NotPending,
}

impl StoreError {
    /// The HTTP status the API answers this refusal with.
    pub fn status(&self) -> u16 {
        match self {
            StoreError::NoSuchEmail | StoreError::NoSuchId(_) => 404,
            StoreError::NotPending => 409,
            _ => 400,
        }
    }
}

/// What an invitation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invited {
    /// A new pending user, with this id.
    New(i64),
    /// The invitation of this pending user was sent again.
    Resent(i64),
}

/// A user created directly (by a test or the simulator's own callers), not by invitation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub is_staff: bool,
    #[serde(default)]
    pub is_superuser: bool,
}

pub struct Store {
    users: BTreeMap<i64, SimUser>,
    /// Folded email to id.
    by_email: HashMap<String, i64>,
    next_id: i64,
    /// The groups a user may be given, as the API spells them.
    groups: Vec<String>,
}

const HTTP_DATE: &str = "%a, %d %b %Y %H:%M:%S GMT";

/// The date format of the API's user records: `Fri, 20 Mar 2020 05:50:56 GMT`.
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format(HTTP_DATE).to_string()
}

/// The inverse of [`http_date`].
pub fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, HTTP_DATE)
        .ok()
        .map(|naive| naive.and_utc())
}

impl Store {
    pub fn new(groups: Vec<String>) -> Store {
        Store {
            users: BTreeMap::new(),
            by_email: HashMap::new(),
            next_id: 1,
            groups,
        }
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Every user, by id.
    pub fn users(&self) -> Vec<SimUser> {
        self.users.values().cloned().collect()
    }

    pub fn by_id(&self, id: i64) -> Option<&SimUser> {
        self.users.get(&id)
    }

    /// The user with this email, compared case-insensitively.
    pub fn by_email(&self, email: &str) -> Option<&SimUser> {
        self.by_email
            .get(&fold(email))
            .and_then(|id| self.users.get(id))
    }

    fn id_of(&self, email: &str) -> Result<i64, StoreError> {
        self.by_email
            .get(&fold(email))
            .copied()
            .ok_or(StoreError::NoSuchEmail)
    }

    fn insert(&mut self, user: SimUser) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut user = user;
        user.user.id = id;
        self.by_email.insert(fold(&user.user.email), id);
        self.users.insert(id, user);
        id
    }

    fn check_groups(&self, groups: &[String]) -> Result<Vec<String>, StoreError> {
        let mut kept: Vec<String> = Vec::with_capacity(groups.len());
        for group in groups {
            if !self.groups.contains(group) {
                return Err(StoreError::UnknownGroup(group.clone()));
            }
            // The API keeps a set of groups: a name given twice is one membership.
            if !kept.contains(group) {
                kept.push(group.clone());
            }
        }
        Ok(kept)
    }

    /// `user/invite/`: a first invitation creates a pending user; `resend` sends a pending
    /// user's invitation again. The email must already be valid.
    pub fn invite(
        &mut self,
        email: &str,
        resend: bool,
        now: DateTime<Utc>,
    ) -> Result<Invited, StoreError> {
        if let Ok(id) = self.id_of(email) {
            let user = self.users.get_mut(&id).ok_or(StoreError::NoSuchEmail)?;
            return match (user.user.status == STATUS_PENDING, resend) {
                (false, _) => Err(StoreError::AlreadyExists),
                (true, false) => Err(StoreError::AlreadyInvited),
                (true, true) => {
                    user.resends = user.resends.saturating_add(1);
                    user.invited_at = Some(now);
                    Ok(Invited::Resent(id))
                }
            };
        }
        if resend {
            return Err(StoreError::NothingToResend);
        }
        let id = self.insert(SimUser {
            user: PrancerUser {
                date_joined: http_date(now),
                email: email.to_owned(),
                id: 0,
                is_active: false,
                last_login: None,
                status: STATUS_PENDING.to_owned(),
                username: email.to_owned(),
                ..PrancerUser::default()
            },
            resends: 0,
            invited_at: Some(now),
            api_caller: false,
        });
        Ok(Invited::New(id))
    }

    /// A user who is active from the start (a test's seed, or an API caller's account).
    pub fn add_active(
        &mut self,
        new: NewUser,
        api_caller: bool,
        now: DateTime<Utc>,
    ) -> Result<SimUser, StoreError> {
        if self.id_of(&new.email).is_ok() {
            return Err(StoreError::AlreadyExists);
        }
        let groups = self.check_groups(&new.groups)?;
        let id = self.insert(SimUser {
            user: PrancerUser {
                date_joined: http_date(now),
                email: new.email.clone(),
                first_name: new.first_name,
                id: 0,
                is_active: true,
                is_staff: new.is_staff,
                is_superuser: new.is_superuser,
                last_login: Some(http_date(now)),
                last_name: new.last_name,
                password: String::new(),
                status: STATUS_ACTIVE.to_owned(),
                user_groups: groups,
                username: new.email,
            },
            resends: 0,
            invited_at: None,
            api_caller,
        });
        self.users.get(&id).cloned().ok_or(StoreError::NoSuchId(id))
    }

    /// The person followed the invitation link: the user becomes active with these names
    /// (kept as they were when `None`).
    pub fn accept(
        &mut self,
        email: &str,
        first_name: Option<String>,
        last_name: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<SimUser, StoreError> {
        let id = self.id_of(email)?;
        let user = self.users.get_mut(&id).ok_or(StoreError::NoSuchEmail)?;
        if user.user.status != STATUS_PENDING {
            return Err(StoreError::NotPending);
        }
        user.user.status = STATUS_ACTIVE.to_owned();
        user.user.is_active = true;
        user.user.last_login = Some(http_date(now));
        if let Some(first) = first_name {
            user.user.first_name = first;
        }
        if let Some(last) = last_name {
            user.user.last_name = last;
        }
        Ok(user.clone())
    }

    /// Moves a pending user's last invitation `days` back from `now` (and `date_joined`
    /// with it when that would otherwise be later), as if it had been sent then.
    pub fn age(
        &mut self,
        email: &str,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<SimUser, StoreError> {
        let id = self.id_of(email)?;
        let user = self.users.get_mut(&id).ok_or(StoreError::NoSuchEmail)?;
        if user.user.status != STATUS_PENDING {
            return Err(StoreError::NotPending);
        }
        let at = now - Duration::days(i64::from(days));
        user.invited_at = Some(at);
        if parse_http_date(&user.user.date_joined).is_none_or(|joined| joined > at) {
            user.user.date_joined = http_date(at);
        }
        Ok(user.clone())
    }

    /// `GET user/manage/`: users whose email, first or last name contains `search`, ignoring
    /// case; all users when it is empty. By id.
    pub fn list(&self, search: &str) -> Vec<PrancerUser> {
        let needle = search.to_lowercase();
        self.users
            .values()
            .filter(|u| {
                needle.is_empty()
                    || [&u.user.email, &u.user.first_name, &u.user.last_name]
                        .iter()
                        .any(|field| field.to_lowercase().contains(&needle))
            })
            .map(|u| u.user.clone())
            .collect()
    }

    /// `DELETE user/manage/`: removes the user (pending or active); its id is not reused.
    /// `caller` is the id of the account asking, which may not delete itself.
    pub fn delete(&mut self, email: &str, caller: i64) -> Result<SimUser, StoreError> {
        let id = self.id_of(email)?;
        if id == caller {
            return Err(StoreError::OwnAccount);
        }
        self.by_email.remove(&fold(email));
        self.users.remove(&id).ok_or(StoreError::NoSuchEmail)
    }

    /// `POST api//user/roles`: replaces the user's groups with `groups` (every one known).
    pub fn set_groups(&mut self, id: i64, groups: &[String]) -> Result<Vec<String>, StoreError> {
        let kept = self.check_groups(groups)?;
        let user = self.users.get_mut(&id).ok_or(StoreError::NoSuchId(id))?;
        user.user.user_groups = kept.clone();
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(vec!["Owner".into(), "Viewer".into(), "Debug Team".into()])
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_584_683_456 + secs, 0).unwrap()
    }

    #[test]
    fn dates_are_in_the_documented_format() {
        assert_eq!(http_date(at(0)), "Fri, 20 Mar 2020 05:50:56 GMT");
        assert_eq!(parse_http_date(&http_date(at(7))), Some(at(7)));
    }

    #[test]
    fn an_invitation_creates_a_pending_user_named_by_its_email() {
        let mut store = store();
        assert_eq!(
            store.invite("Ada@Example.com", false, at(0)),
            Ok(Invited::New(1))
        );
        let user = store.by_email("ada@example.com").unwrap();
        assert_eq!(user.user.status, STATUS_PENDING);
        assert_eq!(user.user.username, "Ada@Example.com");
        assert!(!user.user.is_active && user.user.last_login.is_none());
        assert!(user.user.user_groups.is_empty() && user.user.first_name.is_empty());
        assert_eq!(user.invited_at, Some(at(0)));
    }

    #[test]
    fn duplicate_invitations_follow_the_resend_rules() {
        let mut store = store();
        store.invite("ada@example.com", false, at(0)).unwrap();
        assert_eq!(
            store.invite("ADA@example.com", false, at(1)),
            Err(StoreError::AlreadyInvited)
        );
        assert_eq!(
            store.invite("ada@EXAMPLE.com", true, at(2)),
            Ok(Invited::Resent(1))
        );
        let user = store.by_email("ada@example.com").unwrap();
        assert_eq!((user.resends, user.invited_at), (1, Some(at(2))));
        assert_eq!(
            store.invite("bob@example.com", true, at(3)),
            Err(StoreError::NothingToResend)
        );
        store.accept("ada@example.com", None, None, at(4)).unwrap();
        for resend in [false, true] {
            assert_eq!(
                store.invite("ada@example.com", resend, at(5)),
                Err(StoreError::AlreadyExists)
            );
        }
        assert_eq!(store.users().len(), 1);
    }

    #[test]
    fn ids_count_from_one_and_are_never_reused() {
        let mut store = store();
        store.invite("a@example.com", false, at(0)).unwrap();
        store.invite("b@example.com", false, at(0)).unwrap();
        store.delete("B@example.com", 0).unwrap();
        assert_eq!(
            store.invite("b@example.com", false, at(1)),
            Ok(Invited::New(3))
        );
        assert_eq!(
            store.delete("nobody@example.com", 0),
            Err(StoreError::NoSuchEmail)
        );
    }

    #[test]
    fn an_account_cannot_delete_itself() {
        let mut store = store();
        let me = store
            .add_active(
                NewUser {
                    email: "me@example.com".into(),
                    ..NewUser::default()
                },
                true,
                at(0),
            )
            .unwrap();
        assert_eq!(
            store.delete("me@example.com", me.user.id),
            Err(StoreError::OwnAccount)
        );
    }

    #[test]
    fn groups_are_replaced_whole_and_must_be_known() {
        let mut store = store();
        store.invite("a@example.com", false, at(0)).unwrap();
        let groups = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            store.set_groups(1, &groups(&["Owner", "Viewer", "Owner"])),
            Ok(groups(&["Owner", "Viewer"]))
        );
        assert_eq!(
            store.set_groups(1, &groups(&["Debug Team"])),
            Ok(groups(&["Debug Team"]))
        );
        assert_eq!(
            store.set_groups(1, &groups(&["Viewer", "owner"])),
            Err(StoreError::UnknownGroup("owner".into()))
        );
        assert_eq!(
            store.by_email("a@example.com").unwrap().user.user_groups,
            groups(&["Debug Team"]),
            "a refused change changes nothing"
        );
        assert_eq!(store.set_groups(9, &[]), Err(StoreError::NoSuchId(9)));
        assert_eq!(store.set_groups(1, &[]), Ok(vec![]));
    }

    #[test]
    fn search_matches_email_and_names_ignoring_case() {
        let mut store = store();
        store.invite("zed@example.com", false, at(0)).unwrap();
        store.invite("ada@lovelace.example", false, at(0)).unwrap();
        store
            .accept(
                "zed@example.com",
                Some("Grace".into()),
                Some("Hopper".into()),
                at(1),
            )
            .unwrap();
        let emails = |search: &str| {
            store
                .list(search)
                .into_iter()
                .map(|u| u.email)
                .collect::<Vec<_>>()
        };
        assert_eq!(emails(""), ["zed@example.com", "ada@lovelace.example"]);
        assert_eq!(emails("LOVE"), ["ada@lovelace.example"]);
        assert_eq!(emails("hop"), ["zed@example.com"]);
        assert_eq!(emails("grace"), ["zed@example.com"]);
        assert!(emails("nobody").is_empty());
    }

    #[test]
    fn acceptance_activates_a_pending_user_once() {
        let mut store = store();
        store.invite("a@example.com", false, at(0)).unwrap();
        let user = store
            .accept("A@example.com", Some("Ada".into()), None, at(5))
            .unwrap();
        assert_eq!(user.user.status, STATUS_ACTIVE);
        assert!(user.user.is_active);
        assert_eq!(user.user.last_login, Some(http_date(at(5))));
        assert_eq!(user.user.first_name, "Ada");
        assert_eq!(
            store.accept("a@example.com", None, None, at(6)),
            Err(StoreError::NotPending)
        );
    }

    #[test]
    fn aging_moves_the_invitation_and_the_join_date_back() {
        let mut store = store();
        store.invite("a@example.com", false, at(0)).unwrap();
        let now = at(10 * 86_400);
        let user = store.age("a@example.com", 30, now).unwrap();
        let back = now - Duration::days(30);
        assert_eq!(user.invited_at, Some(back));
        assert_eq!(user.user.date_joined, http_date(back));
        let user = store.age("a@example.com", 1, now).unwrap();
        assert_eq!(user.invited_at, Some(now - Duration::days(1)));
        assert_eq!(
            user.user.date_joined,
            http_date(back),
            "joined stays the earlier"
        );
    }

    #[test]
    fn seeded_users_are_active_and_unique() {
        let mut store = store();
        let new = NewUser {
            email: "a@example.com".into(),
            groups: vec!["Viewer".into()],
            ..NewUser::default()
        };
        let user = store.add_active(new.clone(), false, at(0)).unwrap();
        assert_eq!(user.user.status, STATUS_ACTIVE);
        assert_eq!(
            store.add_active(new, false, at(0)),
            Err(StoreError::AlreadyExists)
        );
        let unknown = NewUser {
            email: "b@example.com".into(),
            groups: vec!["Nope".into()],
            ..NewUser::default()
        };
        assert_eq!(
            store.add_active(unknown, false, at(0)),
            Err(StoreError::UnknownGroup("Nope".into()))
        );
    }
}
