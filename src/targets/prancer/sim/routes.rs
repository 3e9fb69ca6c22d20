//! The simulated prancer API's HTTP surface: one route per documented endpoint under the
//! customer's path, each passing through the same pipeline (capped body, latency, rate
//! limit, injected error, authentication, permission, validation, processing, request log,
//! optional connection drop).
//!
//! Owns turning requests into store calls and answers into envelopes. Every answer of an API
//! path, unknown paths and methods included, is the documented envelope with `status` equal
//! to the HTTP status. Choices where the document is silent:
//! - `user/invite/` answers GET (as documented, body and all) and POST (a body on a GET is
//!   odd enough that a client or proxy may refuse to send one); HEAD invites no one (405).
//! - A body must be sent as `application/json` (else 415), as the document's headers say.
//! - Permission is checked before the body, as the service's framework does: a staff caller
//!   sending a bad body is told 403, not 400.
//! - No path is normalised: `api/user/roles` with one slash, or a path without its trailing
//!   slash, is 404.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use chrono::Utc;
use serde_json::{Map, Value};

use super::Sim;
use super::auth::Account;
use super::envelope::{ApiError, success, to_value};
use super::request_log::{Endpoint, LogEntry, Outcome, kept_body};
use super::requests;
use crate::targets::prancer::model::{
    Caller, INVITE_PATH, MANAGE_PATH, ROLES_PATH, RolesRequest, TOUR_PATH, UserList, WHOAMI_PATH,
};
use crate::targets::sim_kit::body::{BodyError, read_bounded};
use crate::targets::sim_kit::faults::{self, Verdict};
use crate::targets::sim_kit::server::ConnCtx;
use crate::targets::sim_kit::{guard, json_response, lock};

/// The largest request body read, in bytes: the API's bodies are a few fields, so this is
/// far beyond any honest one. A longer body is answered 413 without being read.
pub const MAX_BODY: usize = 64 * 1024;

/// The document's success messages, verbatim (the delete one's grammar included).
pub const INVITED: &str = "User invitation link sent successfully";
pub const DELETED: &str = "User does deleted successfully!";
pub const GROUPS_SET: &str = "user groups updated successfully";
pub const TOUR_SET: &str = "Tour status updated successfully";

/// The API and admin routes over one shared simulator.
pub fn router(sim: Arc<Sim>) -> Router {
    let at = |path: &str| format!("/{}{path}", sim.customer());
    let endpoint = |method: MethodRouter<Arc<Sim>>| method.fallback(not_allowed);
    Router::new()
        .route(
            &at(INVITE_PATH),
            endpoint(get(invite).post(invite).head(not_allowed)),
        )
        .route(&at(WHOAMI_PATH), endpoint(get(whoami)))
        .route(&at(MANAGE_PATH), endpoint(get(list).delete(delete)))
        .route(&at(ROLES_PATH), endpoint(post(roles)))
        .route(&at(TOUR_PATH), endpoint(post(tour)))
        .merge(super::admin::routes())
        .fallback(unknown_route)
        // Every request, API and admin, unknown routes too: DNS rebinding reaches them all.
        .layer(axum::middleware::from_fn(guard::host_only))
        .with_state(sim)
}

type Conn = Option<Extension<ConnCtx>>;

/// What a request reached.
#[derive(Debug, Clone, Copy)]
enum Route {
    Api(Endpoint),
    /// A path of the API with a method it does not answer.
    NotAllowed,
    NotFound,
}

async fn invite(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::Api(Endpoint::Invite), request).await
}
async fn whoami(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::Api(Endpoint::Get), request).await
}
async fn list(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::Api(Endpoint::List), request).await
}
async fn delete(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::Api(Endpoint::Delete), request).await
}
async fn roles(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::Api(Endpoint::Roles), request).await
}
async fn tour(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::Api(Endpoint::Tour), request).await
}
async fn not_allowed(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::NotAllowed, request).await
}
async fn unknown_route(State(sim): State<Arc<Sim>>, conn: Conn, request: Request) -> Response {
    pipeline(&sim, conn, Route::NotFound, request).await
}

/// What processing a request produced, before logging and answering.
struct Handled {
    status: u16,
    body: Value,
    outcome: Outcome,
    /// The email of the caller whose token was accepted.
    caller: Option<String>,
    retry_after: Option<u64>,
}

impl Handled {
    fn error(error: ApiError) -> Handled {
        let outcome = match error.status {
            429 => Outcome::RateLimited,
            500.. => Outcome::InjectedError,
            _ => Outcome::Rejected,
        };
        Handled {
            status: error.status,
            body: error.envelope(),
            outcome,
            caller: None,
            retry_after: None,
        }
    }
}

async fn pipeline(sim: &Sim, conn: Conn, route: Route, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = read_bounded(&parts.headers, body, MAX_BODY).await;
    let mut drop = false;
    let handled = match (&body, route) {
        (Err(error), _) => Handled::error(ApiError::new(
            match error {
                BodyError::TooLarge(_) => 413,
                BodyError::Unreadable => 400,
            },
            error.to_string(),
        )),
        (Ok(_), Route::NotFound) => Handled::error(ApiError::not_found()),
        (Ok(_), Route::NotAllowed) => {
            Handled::error(ApiError::method_not_allowed(parts.method.as_str()))
        }
        (Ok(bytes), Route::Api(endpoint)) => {
            let verdict = faults::draw(&sim.faults).await;
            drop = verdict.drop;
            decide(sim, verdict, endpoint, &parts.headers, bytes)
        }
    };
    let dropped = drop
        && conn.is_some()
        && matches!(
            handled.outcome,
            Outcome::Applied | Outcome::Read | Outcome::Rejected
        );
    let endpoint = match route {
        Route::Api(endpoint) => Some(endpoint),
        _ => None,
    };
    lock(&sim.log).push(LogEntry {
        seq: 0,
        at_ms: sim.elapsed_ms(),
        endpoint,
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        caller: handled.caller.clone(),
        body: match &body {
            Ok(bytes) => kept_body(bytes),
            Err(error) => Some(Value::String(format!("<{error}, not kept>"))),
        },
        status: handled.status,
        outcome: handled.outcome,
        dropped,
    });
    if let (true, Some(Extension(conn))) = (dropped, conn) {
        conn.drop_unanswered().await;
    }
    json_response(handled.status, &handled.body, handled.retry_after)
}

/// The faults' verdict first (429, injected 5xx), then the request itself.
fn decide(
    sim: &Sim,
    verdict: Verdict,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Handled {
    if let Some(secs) = verdict.limited {
        let mut handled = Handled::error(ApiError::new(
            429,
            format!("request was throttled; expected available in {secs} seconds"),
        ));
        handled.retry_after = sim.faults().retry_after.then_some(secs);
        return handled;
    }
    if let Some(status) = verdict.injected {
        return Handled::error(ApiError::new(
            status,
            "the service could not complete the request (injected failure)",
        ));
    }
    process(sim, endpoint, headers, body)
}

fn process(sim: &Sim, endpoint: Endpoint, headers: &HeaderMap, body: &[u8]) -> Handled {
    let mut state = lock(&sim.state);
    let caller = match state.accounts.caller(headers) {
        Ok(account) => account.clone(),
        Err(error) => return Handled::error(error),
    };
    // A token outlives nothing: when its account's user is deleted, it stops working.
    let Some(me) = state.store.by_id(caller.user_id).cloned() else {
        return Handled::error(ApiError::unauthenticated("invalid token"));
    };
    let result = match endpoint {
        Endpoint::Get => Ok((whoami_data(&caller, &me.user), String::new())),
        Endpoint::List => requests::object(headers, body)
            .and_then(|map| requests::search(map.as_ref()))
            .map(|search| {
                let users = state.store.list(&search.search);
                (to_value(&UserList { users }), String::new())
            }),
        Endpoint::Invite => caller
            .may_manage_users()
            .and_then(|()| requests::object(headers, body))
            .and_then(|map| requests::invite(map.as_ref()))
            .and_then(|invite| {
                state
                    .store
                    .invite(&invite.email, invite.resend, Utc::now())
                    .map_err(ApiError::from)
            })
            .map(|_| (empty(), INVITED.to_owned())),
        Endpoint::Delete => caller
            .may_manage_users()
            .and_then(|()| requests::object(headers, body))
            .and_then(|map| requests::delete(map.as_ref()))
            .and_then(|delete| {
                state
                    .store
                    .delete(&delete.email, caller.user_id)
                    .map_err(ApiError::from)
            })
            .map(|_| (empty(), DELETED.to_owned())),
        Endpoint::Roles => caller
            .may_manage_users()
            .and_then(|()| requests::object(headers, body))
            .and_then(|map| requests::roles(map.as_ref()))
            .and_then(|roles| {
                let groups = state.store.set_groups(roles.user_id, &roles.groups)?;
                let data = RolesRequest {
                    user_id: roles.user_id,
                    groups,
                };
                Ok((to_value(&data), GROUPS_SET.to_owned()))
            }),
        Endpoint::Tour => requests::object(headers, body)
            .and_then(|map| requests::tour(map.as_ref()))
            .and_then(|tour| {
                state
                    .accounts
                    .set_tour(caller.user_id, &tour.tour_path, tour.status)
            })
            .map(|()| (Value::String(TOUR_SET.to_owned()), String::new())),
    };
    let mut handled = match result {
        Ok((data, message)) => Handled {
            status: 200,
            body: success(data, &message),
            outcome: if matches!(endpoint, Endpoint::Get | Endpoint::List) {
                Outcome::Read
            } else {
                Outcome::Applied
            },
            caller: None,
            retry_after: None,
        },
        Err(error) => Handled::error(error),
    };
    handled.caller = Some(me.user.email);
    handled
}

fn empty() -> Value {
    Value::Object(Map::new())
}

/// `data` of `user/get/`: the caller, its roles, permissions and tours.
fn whoami_data(caller: &Account, me: &crate::targets::prancer::model::PrancerUser) -> Value {
    to_value(&Caller {
        email: me.email.clone(),
        id: me.id,
        is_staff: caller.is_staff(),
        is_superuser: me.is_superuser,
        is_admin: caller.is_admin(),
        // The document's example: first and last name joined by a space, " " when unknown.
        name: format!("{} {}", me.first_name, me.last_name),
        permissions: caller.permissions(),
        tours: caller.tours.clone(),
    })
}
