//! The HTTP client of the prancer users API (`prancer-users-api.txt`).
//!
//! Owns the calls as the document shows them, oddities kept: parameters in a JSON body on GET
//! and DELETE, and the roles URL with its double slash. Every answer goes through
//! [`envelope::data_of`], the one place that says what it means; the guards (no redirect
//! followed, no proxy to loopback, bounded bodies, scrubbed texts) are
//! [`crate::targets::http`]'s.
//!
//! Must never read the environment (the caller hands it the token), never put the token into
//! an error (it is registered with the redactor before anything can fail), never send it
//! anywhere but the base URL, and never pick a user by anything but an exact email: a search
//! is a substring match, so "the first result" may be someone else.

use std::time::Duration;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::envelope::{self, Answer, Kind};
use super::model::{
    Caller, DeleteRequest, INVITE_PATH, InviteRequest, MANAGE_PATH, PrancerUser, ROLES_PATH,
    RolesRequest, SearchRequest, WHOAMI_PATH,
};
use crate::config::Secret;
use crate::ingest::normalize::fold;
use crate::targets::call::CallError;
use crate::targets::http::{Guarded, MAX_MESSAGE, retry_after_of};

/// The longest token accepted: a JWT is a few hundred bytes to a few KiB.
const MAX_TOKEN: usize = 16 * 1024;

/// Why the token's user may not manage users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the API token belongs to {email}, which is neither admin nor superuser; prancer lets only \
     those manage users{}",
    if *is_staff { STAFF_NOTE } else { "" }
)]
pub struct NotPermitted {
    /// The email of the token's user, as prancer named it (scrubbed by [`Client::whoami`]).
    pub email: String,
    pub is_staff: bool,
}

const STAFF_NOTE: &str = " (it is staff, but a staff user's permissions can be checked only on \
                          prancer's web interface, so staff alone is not enough)";

/// Whether the token's user may manage users. Admins and superusers have full control; a
/// staff user's permissions "need to be verified on the web interface", so the API cannot
/// show that they suffice, and staff alone is refused rather than guessed.
pub fn check_permissions(caller: &Caller) -> Result<(), NotPermitted> {
    if caller.is_admin || caller.is_superuser {
        return Ok(());
    }
    let email = crate::redact::cap(caller.email.trim(), 254);
    Err(NotPermitted {
        email: if email.is_empty() {
            "a user without an email".to_owned()
        } else {
            email
        },
        is_staff: caller.is_staff,
    })
}

/// The one user of `users` whose email is `email` (compared as the roster compares emails:
/// trimmed, case-insensitively). Two such users are an error, never a guess.
pub fn exact_match(users: Vec<PrancerUser>, email: &str) -> Result<Option<PrancerUser>, CallError> {
    let wanted = fold(email);
    let mut matches = users.into_iter().filter(|user| fold(&user.email) == wanted);
    let first = matches.next();
    let more = matches.count();
    if more > 0 {
        return Err(CallError::Unreliable {
            status: 200,
            message: format!(
                "prancer lists {} users with the email {}; refusing to guess which one is meant",
                more + 1,
                crate::redact::cap(email, MAX_MESSAGE)
            ),
        });
    }
    Ok(first)
}

/// [`super::model::UserList`] with `users` required: an answer without the list must not read
/// as "nobody is there", which would make every user look missing.
#[derive(serde::Deserialize)]
struct Listed {
    users: Vec<PrancerUser>,
}

/// A client of one prancer customer URL with one API token.
pub struct Client {
    /// Bound to the base URL; its redactor knows the token.
    http: Guarded,
    token: Secret,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("http", &self.http).finish()
    }
}

impl Client {
    /// A client for `base_url`, the customer URL (e.g.
    /// `https://portal.prancer.io/prancer-customer1`; `http://` only for a loopback host).
    /// `token` is the bearer token, read by the caller; `timeout` bounds each request;
    /// `max_in_flight` is how many requests the caller runs at once.
    pub fn new(
        base_url: &str,
        token: &Secret,
        timeout: Duration,
        max_in_flight: usize,
    ) -> anyhow::Result<Client> {
        // An environment variable filled from a file often ends with a newline.
        let token = token.expose().trim();
        // Checked here, not left to the header builder: a header reqwest refuses surfaces
        // only at sending, where it would read as a lost answer. Neither message quotes it.
        if token.is_empty() {
            anyhow::bail!("the prancer API token is empty");
        }
        if token.len() > MAX_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            anyhow::bail!(
                "the prancer API token must be one word of printable ASCII at most {MAX_TOKEN} \
                 bytes long (the token alone, without \"Bearer \")"
            );
        }
        let http = Guarded::new(base_url, timeout, max_in_flight, [token])?;
        Ok(Client {
            http,
            token: Secret::new(token),
        })
    }

    /// The base URL, checked, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.http.base()
    }

    /// `GET user/get/`: the token's user. Its email and name are scrubbed, because they are
    /// shown (in [`NotPermitted`]) and a server could echo anything there.
    pub async fn whoami(&self) -> Result<Caller, CallError> {
        let mut caller: Caller = self
            .call(reqwest::Method::GET, WHOAMI_PATH, None::<&()>, Kind::Read)
            .await?;
        caller.email = self.http.clean(&caller.email);
        caller.name = self.http.clean(&caller.name);
        Ok(caller)
    }

    /// `GET user/invite/` with `{email, resend}` in the body: sends the invitation, or sends
    /// it again (`resend`) to a user who has one pending.
    pub async fn invite(&self, email: &str, resend: bool) -> Result<(), CallError> {
        let body = InviteRequest {
            email: email.to_owned(),
            resend,
        };
        let _: IgnoredAny = self
            .call(reqwest::Method::GET, INVITE_PATH, Some(&body), Kind::Write)
            .await?;
        Ok(())
    }

    /// `GET user/manage/` with `{search}` in the body (a [`super::model::UserList`] in
    /// `data`): the users whose email or name contains `search` (all users without one).
    pub async fn list(&self, search: Option<&str>) -> Result<Vec<PrancerUser>, CallError> {
        let body = SearchRequest {
            search: search.unwrap_or_default().to_owned(),
        };
        let list: Listed = self
            .call(reqwest::Method::GET, MANAGE_PATH, Some(&body), Kind::Read)
            .await?;
        Ok(list.users)
    }

    /// The user whose email is `email`, found by searching for it and keeping the exact match
    /// only ([`exact_match`]).
    pub async fn find_by_email(&self, email: &str) -> Result<Option<PrancerUser>, CallError> {
        let email = email.trim();
        if email.is_empty() {
            // An empty search lists everyone; nobody has an empty email.
            return Err(CallError::NotSent(
                "an empty email is never searched".to_owned(),
            ));
        }
        if let Some(found) = exact_match(self.list(Some(email)).await?, email)? {
            return Ok(Some(found));
        }
        // The document does not say what the search looks at (names only? case?). A user it
        // misses is looked for in the whole listing, bounded like every answer: a customer
        // too big for one answer gets an error, never "nobody is there".
        exact_match(self.list(None).await?, email)
    }

    /// `DELETE user/manage/` with `{email}` in the body.
    pub async fn delete(&self, email: &str) -> Result<(), CallError> {
        let body = DeleteRequest {
            email: email.to_owned(),
        };
        let _: IgnoredAny = self
            .call(
                reqwest::Method::DELETE,
                MANAGE_PATH,
                Some(&body),
                Kind::Write,
            )
            .await?;
        Ok(())
    }

    /// `POST api//user/roles`: sets the user's groups to `groups` (the whole list). Returns
    /// the server's echo, for the caller to compare with what it asked.
    pub async fn set_groups(
        &self,
        user_id: i64,
        groups: &[String],
    ) -> Result<RolesRequest, CallError> {
        let body = RolesRequest {
            user_id,
            groups: groups.to_vec(),
        };
        self.call(reqwest::Method::POST, ROLES_PATH, Some(&body), Kind::Write)
            .await
    }

    /// One request: `body` (if any) as JSON, whatever the method, and the answer through
    /// [`envelope::data_of`].
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
        kind: Kind,
    ) -> Result<T, CallError> {
        // Names the call in messages about its answer: "the answer to DELETE /api/user/manage/".
        let what = format!("{method} {path}");
        let mut request = self
            .http
            .request(method, path)
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            // Sets content-type: application/json, as the document asks on every call.
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.http.transport_error(e))?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            // Final: following it would send the token (and personal data) elsewhere, and
            // nothing was done here.
            return Err(CallError::Rejected {
                status,
                code: "REDIRECT".to_owned(),
                message: self.http.redirect_message(&response),
                technical: String::new(),
            });
        }
        let retry_after = retry_after_of(&response);
        let body = self.http.read_body(response).await?;
        let answer = Answer {
            status,
            retry_after,
            body: &body,
        };
        envelope::data_of(&answer, kind, &what, self.http.redactor())
    }
}

#[cfg(test)]
mod tests;
