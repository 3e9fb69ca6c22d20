//! The prancer simulator's admin endpoints, for tests: inspect users (with their resend
//! counts and invitation times) and the request log, play the invited person (accept),
//! age an invitation, add a user who was there before, change faults at run time, reset.
//!
//! Owns only inspection and control; none of it is logged as API traffic. Served at the
//! root (`/admin/...`), outside the customer's path, and to loopback peers only, with the
//! shared browser guard (`sim_kit::guard`): the admin surface has no authentication.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::store::StoreError;
use super::{NewUser, Sim};
use crate::targets::sim_kit::guard;
use crate::targets::sim_kit::request_log::Page;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/admin/users", get(list_users).post(add_user))
        .route("/admin/accept", post(accept))
        .route("/admin/age", post(age))
        .route("/admin/requests", get(list_requests))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/reset", post(reset))
        .route_layer(middleware::from_fn(guard::admin_same_origin))
        .route_layer(middleware::from_fn(guard::loopback_only))
}

fn refused(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn store_refused(error: StoreError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    refused(status, error.to_string())
}

async fn list_users(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.users()).into_response()
}

/// `POST /admin/users` `{email, first_name?, last_name?, groups?, is_staff?, is_superuser?}`:
/// an active user who was in the customer before rostersync came.
async fn add_user(State(sim): State<Arc<Sim>>, Json(user): Json<NewUser>) -> Response {
    if !crate::ingest::normalize::is_valid_email(&user.email) {
        return refused(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not a valid email", user.email),
        );
    }
    match sim.add_user(user) {
        Ok(user) => (StatusCode::CREATED, Json(user)).into_response(),
        Err(error) => store_refused(error),
    }
}

#[derive(Deserialize)]
struct Accept {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

/// `POST /admin/accept` `{email, first_name?, last_name?}`: the invited person accepts.
async fn accept(State(sim): State<Arc<Sim>>, Json(accept): Json<Accept>) -> Response {
    match sim.accept_as(&accept.email, accept.first_name, accept.last_name) {
        Ok(user) => Json(user).into_response(),
        Err(error) => store_refused(error),
    }
}

#[derive(Deserialize)]
struct Age {
    email: String,
    days: u32,
}

/// `POST /admin/age` `{email, days}`: the pending user's last invitation went out `days` ago.
async fn age(State(sim): State<Arc<Sim>>, Json(age): Json<Age>) -> Response {
    match sim.age_invitation(&age.email, age.days) {
        Ok(user) => Json(user).into_response(),
        Err(error) => store_refused(error),
    }
}

async fn list_requests(State(sim): State<Arc<Sim>>, Query(page): Query<Page>) -> Response {
    Json(sim.requests(page.since, page.limit)).into_response()
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.faults()).into_response()
}

/// `PUT /admin/faults` with the settings to change (only those named).
async fn put_faults(State(sim): State<Arc<Sim>>, Json(patch): Json<serde_json::Value>) -> Response {
    let changed = sim
        .faults()
        .patched(&patch)
        .and_then(|faults| sim.set_faults(faults.clone()).map(|()| faults));
    match changed {
        Ok(faults) => Json(faults).into_response(),
        Err(message) => refused(StatusCode::BAD_REQUEST, message),
    }
}

async fn reset(State(sim): State<Arc<Sim>>) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}
