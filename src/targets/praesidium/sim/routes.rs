//! The simulated API's HTTP surface: one route per documented endpoint, each passing through
//! the same pipeline (latency, rate limit, injected error, authentication, duplicate window,
//! processing, request log, optional connection drop).
//!
//! Owns turning requests into store calls and answers into the documented bodies. Never
//! answers in a shape the spec does not document; never logs a login body (it holds secrets).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::auth::LoginRequest;
use super::request_log::{Endpoint, LogEntry, Outcome};
use super::server::ConnCtx;
use super::store::{Caller, ContentAction, Replay, api_error};
use super::{Sim, lock};
use crate::targets::praesidium::model::{ApiError, ContentListing, LOGIN_PATH, USER_PATH, User};
use crate::targets::sim_kit::faults::{self, Verdict};
use crate::targets::sim_kit::{guard, json_response};

/// The API and admin routes over one shared simulator.
pub fn router(sim: Arc<Sim>) -> Router {
    let user = |suffix: &str| format!("{USER_PATH}/{{uuid}}{suffix}");
    Router::new()
        .route(LOGIN_PATH, post(login))
        .route(USER_PATH, post(create))
        .route(&user(""), get(get_user).put(update))
        .route(&user("/deactivate"), put(deactivate))
        .route(&user("/enrollContent"), put(enroll))
        .route(&user("/removeContent"), put(remove))
        .route(&user("/reEnrollContent"), put(re_enroll))
        .merge(super::admin::routes())
        .fallback(unknown_route)
        // Every request, API and admin, unknown routes too: DNS rebinding reaches them all.
        .layer(axum::middleware::from_fn(guard::host_only))
        .with_state(sim)
}

type Conn = Option<Extension<ConnCtx>>;

async fn login(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pipeline(&sim, conn, Endpoint::Login, None, &headers, body).await
}
async fn create(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pipeline(&sim, conn, Endpoint::Create, None, &headers, body).await
}
async fn get_user(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    Path(uuid): Path<String>,
    headers: HeaderMap,
) -> Response {
    pipeline(
        &sim,
        conn,
        Endpoint::Get,
        Some(uuid),
        &headers,
        Bytes::new(),
    )
    .await
}
async fn update(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pipeline(&sim, conn, Endpoint::Update, Some(uuid), &headers, body).await
}
async fn deactivate(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pipeline(&sim, conn, Endpoint::Deactivate, Some(uuid), &headers, body).await
}
async fn enroll(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pipeline(
        &sim,
        conn,
        Endpoint::EnrollContent,
        Some(uuid),
        &headers,
        body,
    )
    .await
}
async fn remove(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pipeline(
        &sim,
        conn,
        Endpoint::RemoveContent,
        Some(uuid),
        &headers,
        body,
    )
    .await
}
async fn re_enroll(
    State(sim): State<Arc<Sim>>,
    conn: Conn,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pipeline(
        &sim,
        conn,
        Endpoint::ReEnrollContent,
        Some(uuid),
        &headers,
        body,
    )
    .await
}

async fn unknown_route() -> Response {
    json_response(
        404,
        &api_error(
            404,
            "NOT_FOUND",
            "No such endpoint",
            "The path and method match no API endpoint",
        ),
        None,
    )
}

/// What processing a request produced, before logging and answering.
struct Handled {
    status: u16,
    body: Value,
    outcome: Outcome,
    user: Option<String>,
    retry_after: Option<u64>,
}

impl Handled {
    fn error(error: ApiError) -> Handled {
        let outcome = if error.status == 429 {
            Outcome::RateLimited
        } else if error.status >= 500 {
            Outcome::InjectedError
        } else {
            Outcome::Rejected
        };
        Handled {
            status: error.status,
            body: to_json(&error),
            outcome,
            user: None,
            retry_after: None,
        }
    }
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("wire types always serialize")
}

async fn pipeline(
    sim: &Sim,
    conn: Conn,
    endpoint: Endpoint,
    uuid: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Verdict {
        limited,
        injected,
        drop,
    } = faults::draw(&sim.faults).await;
    let handled = if let Some(secs) = limited {
        let mut handled = Handled::error(api_error(
            429,
            "TOO_MANY_REQUESTS",
            "Too many requests",
            format!("Rate limit exceeded; retry after {secs} s"),
        ));
        handled.retry_after = Some(secs);
        handled
    } else if let Some(status) = injected {
        Handled::error(api_error(
            status,
            "INTERNAL_ERROR",
            "The service could not complete the request",
            "Injected failure before processing",
        ))
    } else {
        process(sim, endpoint, uuid.as_deref(), headers, &body)
    };

    let path = match (&uuid, endpoint) {
        (None, Endpoint::Login) => LOGIN_PATH.to_owned(),
        (None, _) => USER_PATH.to_owned(),
        (Some(uuid), _) => format!("{USER_PATH}/{uuid}{}", suffix(endpoint)),
    };
    let dropped = drop
        && conn.is_some()
        && matches!(
            handled.outcome,
            Outcome::Applied | Outcome::Read | Outcome::IgnoredDuplicate | Outcome::Rejected
        );
    lock(&sim.log).push(LogEntry {
        seq: 0,
        at_ms: sim.elapsed_ms(),
        endpoint,
        method: if matches!(endpoint, Endpoint::Get) {
            "GET"
        } else if matches!(endpoint, Endpoint::Login | Endpoint::Create) {
            "POST"
        } else {
            "PUT"
        }
        .to_owned(),
        path,
        user: handled.user.clone().or(uuid),
        status: handled.status,
        outcome: handled.outcome,
        dropped,
        body: endpoint
            .is_change()
            .then(|| serde_json::from_slice(&body).ok())
            .flatten(),
    });
    if let (true, Some(Extension(conn))) = (dropped, conn) {
        conn.drop_unanswered().await;
    }
    json_response(handled.status, &handled.body, handled.retry_after)
}

fn suffix(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Deactivate => "/deactivate",
        Endpoint::EnrollContent => "/enrollContent",
        Endpoint::RemoveContent => "/removeContent",
        Endpoint::ReEnrollContent => "/reEnrollContent",
        _ => "",
    }
}

fn process(
    sim: &Sim,
    endpoint: Endpoint,
    uuid: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Handled {
    if endpoint == Endpoint::Login {
        return process_login(sim, headers, body);
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client_id = match sim.tokens.verify(authorization) {
        Ok(client_id) => client_id,
        Err(reason) => {
            return Handled::error(api_error(
                401,
                "UNAUTHORIZED",
                "Authentication required",
                reason,
            ));
        }
    };
    let Some(credential) = sim.credential(&client_id) else {
        return Handled::error(api_error(
            401,
            "UNAUTHORIZED",
            "Authentication required",
            "unknown client",
        ));
    };
    let caller = Caller {
        client_id: &credential.client_id,
        managed: &credential.managed_clients,
    };
    let uuid = uuid.unwrap_or("");
    if endpoint == Endpoint::Get {
        let store = lock(&sim.store);
        return match store.get(&caller, uuid) {
            Ok(user) => Handled {
                status: 200,
                body: to_json(&user),
                outcome: Outcome::Read,
                user: None,
                retry_after: None,
            },
            Err(error) => Handled::error(error),
        };
    }
    process_change(sim, &caller, endpoint, uuid, body)
}

enum ChangeBody {
    User(Box<User>),
    Content(ContentListing),
    None,
}

fn parse_change(endpoint: Endpoint, body: &[u8]) -> Result<ChangeBody, ApiError> {
    let invalid = |e: serde_json::Error| {
        api_error(
            400,
            "INVALID_REQUEST",
            "The request body is not valid",
            format!("Body is not the expected JSON: {e}"),
        )
    };
    match endpoint {
        Endpoint::Create | Endpoint::Update => serde_json::from_slice(body)
            .map(|user| ChangeBody::User(Box::new(user)))
            .map_err(invalid),
        Endpoint::EnrollContent | Endpoint::RemoveContent | Endpoint::ReEnrollContent => {
            serde_json::from_slice(body)
                .map(ChangeBody::Content)
                .map_err(invalid)
        }
        _ => Ok(ChangeBody::None),
    }
}

fn process_change(
    sim: &Sim,
    caller: &Caller,
    endpoint: Endpoint,
    uuid: &str,
    body: &[u8],
) -> Handled {
    let parsed = match parse_change(endpoint, body) {
        Ok(parsed) => parsed,
        Err(error) => return Handled::error(error),
    };
    // Identical means the same caller, endpoint, user and JSON value (key order aside).
    let canonical = serde_json::from_slice::<Value>(body).map_or_else(
        |_| String::from_utf8_lossy(body).into_owned(),
        |v| v.to_string(),
    );
    let key = format!("{}\n{endpoint:?}\n{uuid}\n{canonical}", caller.client_id);
    let window = sim.faults().duplicate_window();
    let now = Instant::now();
    let mut store = lock(&sim.store);
    if let Some(Replay { status, body }) = store.replay(&key, window, now) {
        let user = body.get("uuid").and_then(Value::as_str).map(str::to_owned);
        return Handled {
            status,
            body,
            outcome: Outcome::IgnoredDuplicate,
            user,
            retry_after: None,
        };
    }
    let catalog = &sim.catalog;
    let result = match (endpoint, parsed) {
        (Endpoint::Create, ChangeBody::User(user)) => store.create(caller, catalog, *user),
        (Endpoint::Update, ChangeBody::User(user)) => store.update(caller, catalog, uuid, *user),
        (Endpoint::Deactivate, _) => store.deactivate(caller, uuid),
        (Endpoint::EnrollContent, ChangeBody::Content(listing)) => store.change_content(
            caller,
            catalog,
            uuid,
            ContentAction::Enroll,
            &listing.content,
        ),
        (Endpoint::RemoveContent, ChangeBody::Content(listing)) => store.change_content(
            caller,
            catalog,
            uuid,
            ContentAction::Remove,
            &listing.content,
        ),
        (Endpoint::ReEnrollContent, ChangeBody::Content(listing)) => store.change_content(
            caller,
            catalog,
            uuid,
            ContentAction::ReEnroll,
            &listing.content,
        ),
        _ => unreachable!("parse_change returns the body kind of its endpoint"),
    };
    match result {
        Ok(user) => {
            let status = if endpoint == Endpoint::Create {
                201
            } else {
                200
            };
            let body = to_json(&user);
            store.remember(
                key,
                Replay {
                    status,
                    body: body.clone(),
                },
                now,
            );
            sim.dirty.store(true, Ordering::Relaxed);
            Handled {
                status,
                body,
                outcome: Outcome::Applied,
                user: user.uuid,
                retry_after: None,
            }
        }
        Err(error) => Handled::error(error),
    }
}

fn process_login(sim: &Sim, headers: &HeaderMap, body: &[u8]) -> Handled {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request = if is_json {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => login_from_json(&value),
            Err(_) => LoginRequest::default(),
        }
    } else {
        login_from_form(body)
    };
    let lifetime = sim.faults().token_lifetime_secs;
    match sim.tokens.login(&request, &sim.credentials, lifetime) {
        Ok((_, answer)) => Handled {
            status: 200,
            body: to_json(&answer),
            outcome: Outcome::Applied,
            user: None,
            retry_after: None,
        },
        Err((status, error)) => Handled {
            status,
            body: to_json(&error),
            outcome: Outcome::Rejected,
            user: None,
            retry_after: None,
        },
    }
}

fn login_from_json(value: &Value) -> LoginRequest {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let scope = match value.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    LoginRequest {
        grant_type: text("grant_type"),
        client_id: text("client_id"),
        client_secret: text("client_secret"),
        scope,
        refresh_token: text("refresh_token"),
    }
}

/// Form bodies as jQuery sends them: `scope[]=a&scope[]=b`, or `scope=a b`.
fn login_from_form(body: &[u8]) -> LoginRequest {
    let mut request = LoginRequest::default();
    for (key, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match key.as_ref() {
            "grant_type" => request.grant_type = Some(value),
            "client_id" => request.client_id = Some(value),
            "client_secret" => request.client_secret = Some(value),
            "refresh_token" => request.refresh_token = Some(value),
            "scope" | "scope[]" => request
                .scope
                .extend(value.split_whitespace().map(str::to_owned)),
            _ => {}
        }
    }
    request
}
