//! A strict, faithful simulator of the prancer users API (`prancer-users-api.txt`), for tests,
//! benchmarks and rehearsals.
//!
//! Owns the simulated customer: its users and their rules (`store`), the accounts behind the
//! bearer tokens (`auth`), body validation (`requests`), the answer envelope (`envelope`),
//! the fault settings (`faults`), what the request log says (`request_log`), the HTTP routes
//! (`routes`, `admin`), starting the server (`server`) and its command-line options (`cli`).
//! The machinery every simulator shares (accept loop, fault decisions, bounded log, capped
//! bodies, browser guard) is `targets::sim_kit`.
//!
//! The API is served under the customer's path, `http://ADDR/CUSTOMER/api/...`, at exactly
//! the document's paths (the roles URL's double slash included). It must behave like the
//! real service where the document says how, and refuse what it plausibly would: a lenient
//! fake would hide client bugs. Where the document is silent, the choice is written down
//! where it is made. The accounts behind the tokens are users of the customer too: they are
//! listed by `user/manage/` like anyone else, so a client must not take them for strangers.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod envelope;
pub mod faults;
pub mod request_log;
pub mod requests;
pub mod routes;
pub mod server;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::Utc;

use crate::ingest::normalize::{fold, is_valid_email};
use crate::targets::sim_kit::lock;
use auth::{Account, Accounts, Role};
use faults::FaultState;
pub use faults::Faults;
use request_log::{LogEntry, RequestLog};
pub use server::{RunningSim, start};
use store::Store;
pub use store::{NewUser, SimUser, StoreError};

/// The customer path segment unless told another.
pub const DEFAULT_CUSTOMER: &str = "prancer-customer1";
/// The admin caller's token unless told another: public, in this source.
pub const DEMO_TOKEN: &str = "prancer-demo-token";
/// The staff caller's token unless told another: public, in this source.
pub const DEMO_STAFF_TOKEN: &str = "prancer-staff-demo-token";
/// The groups a user may be given unless told others.
pub const DEFAULT_GROUPS: &[&str] = &[
    "Owner",
    "Security Admin",
    "Debug Team",
    "Developer",
    "Auditor",
    "Viewer",
];

/// How a prancer simulator is set up.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The path segment the API is served under (`http://ADDR/CUSTOMER/api/...`).
    pub customer: String,
    /// Bearer token of the admin caller (`is_admin`: may invite, delete, set groups).
    pub admin_token: String,
    /// Bearer token of the staff caller (`is_staff`: reads only).
    pub staff_token: String,
    /// Email of the admin caller's account (listed among the users).
    pub admin_email: String,
    /// Email of the staff caller's account (listed among the users).
    pub staff_email: String,
    /// The groups a user may be given, exactly as spelled.
    pub groups: Vec<String>,
    pub faults: Faults,
    /// Seed for injected faults and latency; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Most request-log entries kept (oldest dropped first).
    pub log_capacity: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            customer: DEFAULT_CUSTOMER.to_owned(),
            admin_token: DEMO_TOKEN.to_owned(),
            staff_token: DEMO_STAFF_TOKEN.to_owned(),
            admin_email: "sync-admin@prancer-sim.example".to_owned(),
            staff_email: "sync-staff@prancer-sim.example".to_owned(),
            groups: DEFAULT_GROUPS.iter().map(|g| (*g).to_owned()).collect(),
            faults: Faults::default(),
            seed: None,
            log_capacity: 200_000,
        }
    }
}

impl SimOptions {
    /// Refuses options the simulator could not serve faithfully.
    pub fn check(&self) -> Result<()> {
        let segment_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.customer.is_empty()
            || !self.customer.chars().all(segment_char)
            || self.customer.chars().all(|c| c == '.')
            || self.customer == "admin"
        {
            bail!(
                "customer {:?} cannot be a path segment: use letters, digits, '-', '_' and '.' \
                 (and not \"admin\", where the simulator's admin endpoints are)",
                self.customer
            );
        }
        for (name, token) in [
            ("token", &self.admin_token),
            ("staff token", &self.staff_token),
        ] {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                bail!("the {name} must be printable ASCII without spaces, and not empty");
            }
        }
        if self.admin_token == self.staff_token {
            bail!("the admin and staff tokens must differ: a token names one caller");
        }
        for email in [&self.admin_email, &self.staff_email] {
            if !is_valid_email(email) {
                bail!("the caller email {email:?} is not a valid email");
            }
        }
        if fold(&self.admin_email) == fold(&self.staff_email) {
            bail!("the admin and staff callers need different emails");
        }
        for (i, group) in self.groups.iter().enumerate() {
            if group.trim().is_empty() || group.trim() != group {
                bail!("group {group:?} must be a non-empty name without surrounding spaces");
            }
            if self.groups[..i].contains(group) {
                bail!("group {group:?} is given twice");
            }
        }
        self.faults.check().map_err(anyhow::Error::msg)
    }
}

/// The users and the accounts that call the API, under one lock: a token's account is a
/// user, and deleting that user must end the token's access at once.
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) accounts: Accounts,
}

impl State {
    /// A fresh customer: no users but the callers' accounts (ids 1 and 2).
    fn new(options: &SimOptions) -> Result<State> {
        let now = Utc::now();
        let mut store = Store::new(options.groups.clone());
        let known = |name: &str| -> Vec<String> {
            options
                .groups
                .iter()
                .filter(|g| *g == name)
                .cloned()
                .collect()
        };
        let mut account = |email: &str, token: &str, role: Role| -> Result<Account> {
            let user = store.add_active(
                NewUser {
                    email: email.to_owned(),
                    is_staff: role == Role::Staff,
                    groups: known(if role == Role::Admin {
                        "Owner"
                    } else {
                        "Viewer"
                    }),
                    ..NewUser::default()
                },
                true,
                now,
            )?;
            Ok(Account::new(token, user.user.id, role))
        };
        let admin = account(&options.admin_email, &options.admin_token, Role::Admin)?;
        let staff = account(&options.staff_email, &options.staff_token, Role::Staff)?;
        Ok(State {
            store,
            accounts: Accounts::new(vec![admin, staff]),
        })
    }
}

/// The simulated service; shared by every connection.
pub struct Sim {
    options: SimOptions,
    state: Mutex<State>,
    log: Mutex<RequestLog>,
    faults: Mutex<FaultState>,
    started: Instant,
}

impl Sim {
    pub fn new(options: SimOptions) -> Result<Arc<Sim>> {
        options.check()?;
        Ok(Arc::new(Sim {
            state: Mutex::new(State::new(&options)?),
            log: Mutex::new(RequestLog::new(options.log_capacity)),
            faults: Mutex::new(FaultState::new(options.faults.clone(), options.seed)),
            started: Instant::now(),
            options,
        }))
    }

    /// The customer path segment the API is served under.
    pub fn customer(&self) -> &str {
        &self.options.customer
    }

    /// The options it was made with (tokens, caller emails, groups).
    pub fn options(&self) -> &SimOptions {
        &self.options
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    /// New fault settings, checked; the token bucket starts full if its rate changed.
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.check()?;
        lock(&self.faults).set(faults);
        Ok(())
    }

    /// Every user (the callers' accounts included), by id.
    pub fn users(&self) -> Vec<SimUser> {
        lock(&self.state).store.users()
    }

    /// The user with this email (compared ignoring case).
    pub fn user(&self, email: &str) -> Option<SimUser> {
        lock(&self.state).store.by_email(email).cloned()
    }

    /// Request-log entries after `since`, at most `limit`.
    pub fn requests(&self, since: u64, limit: usize) -> Vec<LogEntry> {
        lock(&self.log).since(since, limit)
    }

    /// The invited person accepts: the pending user becomes active.
    pub fn accept(&self, email: &str) -> Result<SimUser, StoreError> {
        self.accept_as(email, None, None)
    }

    /// As [`Sim::accept`], the person filling in their names on the way.
    pub fn accept_as(
        &self,
        email: &str,
        first_name: Option<String>,
        last_name: Option<String>,
    ) -> Result<SimUser, StoreError> {
        lock(&self.state)
            .store
            .accept(email, first_name, last_name, Utc::now())
    }

    /// Adds an active user directly (not through the API, not logged): a person who was in
    /// the customer before rostersync came.
    pub fn add_user(&self, user: NewUser) -> Result<SimUser, StoreError> {
        lock(&self.state).store.add_active(user, false, Utc::now())
    }

    /// Makes a pending user's last invitation `days` old.
    pub fn age_invitation(&self, email: &str, days: u32) -> Result<SimUser, StoreError> {
        lock(&self.state).store.age(email, days, Utc::now())
    }

    /// Back to a fresh customer (only the callers' accounts, ids from 1 again) and an empty
    /// request log; keeps the faults.
    pub fn reset(&self) {
        match State::new(&self.options) {
            Ok(state) => *lock(&self.state) = state,
            // The same options built the first state; they cannot fail now.
            Err(error) => tracing::error!("cannot reset the simulator: {error:#}"),
        }
        lock(&self.log).clear();
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_are_users_with_their_roles() {
        let sim = Sim::new(SimOptions::default()).unwrap();
        let users = sim.users();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].user.id, 1);
        assert_eq!(users[0].user.user_groups, ["Owner"]);
        assert!(users[1].user.is_staff && users[1].api_caller);
        assert_eq!(users[1].user.user_groups, ["Viewer"]);
    }

    #[test]
    fn options_that_cannot_be_served_are_refused() {
        let with = |change: fn(&mut SimOptions)| {
            let mut options = SimOptions::default();
            change(&mut options);
            Sim::new(options).is_err()
        };
        assert!(with(|o| o.customer = "a/b".into()));
        assert!(with(|o| o.customer = "{x}".into()));
        assert!(with(|o| o.customer = String::new()));
        assert!(with(|o| o.customer = "..".into()));
        assert!(with(|o| o.staff_token = o.admin_token.clone()));
        assert!(with(|o| o.admin_token = "has space".into()));
        assert!(with(|o| o.groups = vec!["A".into(), "A".into()]));
        assert!(with(|o| o.groups = vec![" A".into()]));
        assert!(with(|o| o.staff_email = o.admin_email.to_uppercase()));
        assert!(with(|o| o.faults.drop_rate = 2.0));
        assert!(!with(|o| o.groups = Vec::new()));
    }

    #[test]
    fn reset_forgets_users_and_restarts_ids() {
        let sim = Sim::new(SimOptions::default()).unwrap();
        sim.add_user(NewUser {
            email: "a@example.com".into(),
            ..NewUser::default()
        })
        .unwrap();
        assert_eq!(sim.users().len(), 3);
        sim.reset();
        assert_eq!(sim.users().len(), 2);
        let again = sim
            .add_user(NewUser {
                email: "b@example.com".into(),
                ..NewUser::default()
            })
            .unwrap();
        assert_eq!(again.user.id, 3);
    }
}
