//! The simulator's admin endpoints: inspect users and the request log, change faults at run
//! time, seed users anywhere, reset; complete content (which publishes a learning event),
//! read the event delivery log, set where events go.
//!
//! Owns only inspection and control. Answers loopback peers only: the admin surface has no
//! authentication and must never be reachable from another host, nor from a web page in a
//! browser on this one (`guard`: other origins and cross-site requests are refused, changes
//! take JSON only). Never shows the events endpoint's password.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::Sim;
use super::events::{CompleteError, parse_timestamp};
use super::lock;
use super::store::Caller;
use crate::targets::praesidium::model::User;
use crate::targets::sim_kit::guard;
use crate::targets::sim_kit::request_log::Page;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/admin/users", get(list_users).post(seed_user))
        .route("/admin/requests", get(list_requests))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/reset", post(reset))
        .route("/admin/complete", post(complete))
        .route("/admin/events", get(list_events))
        .route(
            "/admin/events/endpoint",
            get(get_endpoint).put(put_endpoint),
        )
        .route_layer(middleware::from_fn(guard::admin_same_origin))
        .route_layer(middleware::from_fn(guard::loopback_only))
}

async fn list_users(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.users()).into_response()
}

/// Creates a user directly, in any client of the catalog (for example one outside the test
/// credential's hierarchy), with the API's validation but without its permission check.
async fn seed_user(State(sim): State<Arc<Sim>>, Json(user): Json<User>) -> Response {
    let everything = sim.all_clients();
    let caller = Caller {
        client_id: "admin",
        managed: &everything,
    };
    let result = lock(&sim.store).create(&caller, &sim.catalog, user);
    sim.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    match result {
        Ok(user) => (StatusCode::CREATED, Json(user)).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(error)).into_response(),
    }
}

async fn list_requests(State(sim): State<Arc<Sim>>, Query(page): Query<Page>) -> Response {
    Json(sim.requests(page.since, page.limit)).into_response()
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.faults()).into_response()
}

async fn put_faults(State(sim): State<Arc<Sim>>, Json(patch): Json<serde_json::Value>) -> Response {
    match sim.faults().patched(&patch) {
        Ok(faults) => {
            sim.set_faults(faults.clone());
            Json(faults).into_response()
        }
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn reset(State(sim): State<Arc<Sim>>) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}

/// The body of `POST /admin/complete`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteRequest {
    user: String,
    content: String,
    /// `YYYY-MM-DD HH:MM:SS`, UTC; default now.
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    camel_case: bool,
}

fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": code, "message": message.into()});
    (status, Json(body)).into_response()
}

/// Completes content for a user and queues its event: 202 with the event as it is sent.
async fn complete(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let request: CompleteRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                format!(
                    "the body must be {{\"user\", \"content\", \"completed_at\"?, \"camel_case\"?}}: {error}"
                ),
            );
        }
    };
    let at = match request.completed_at.as_deref().map(parse_timestamp) {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(message)) => {
            let error = CompleteError::BadTimestamp(message);
            return refusal(StatusCode::BAD_REQUEST, error.code(), error.to_string());
        }
    };
    match sim.complete(&request.user, &request.content, at, request.camel_case) {
        Ok(completed) => (StatusCode::ACCEPTED, Json(completed)).into_response(),
        Err(error) => {
            let status =
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            refusal(status, error.code(), error.to_string())
        }
    }
}

async fn list_events(State(sim): State<Arc<Sim>>, Query(page): Query<Page>) -> Response {
    Json(sim.event_deliveries(page.since, page.limit)).into_response()
}

async fn get_endpoint(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.events_endpoint()).into_response()
}

/// Changes the client's publishing endpoint until changed again (the spec's `url`).
async fn put_endpoint(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let patch = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(patch) => patch,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                format!("the body is not JSON: {error}"),
            );
        }
    };
    match sim.patch_events_endpoint(&patch) {
        Ok(view) => Json(view).into_response(),
        Err(message) => refusal(StatusCode::BAD_REQUEST, "INVALID_ENDPOINT", message),
    }
}
