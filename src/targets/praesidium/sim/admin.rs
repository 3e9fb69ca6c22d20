//! The simulator's admin endpoints: inspect users and the request log, change faults at run
//! time, seed users anywhere, reset.
//!
//! Owns only inspection and control. Answers loopback peers only: the admin surface has no
//! authentication and must never be reachable from another host, nor from a web page in a
//! browser on this one (`guard`: other origins and cross-site requests are refused, changes
//! take JSON only).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::Sim;
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
