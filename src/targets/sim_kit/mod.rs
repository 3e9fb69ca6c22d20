//! What every API simulator shares, whatever API it imitates: the accept loop that can drop a
//! connection after processing (`server`), the fault and rate-limit decisions (`faults`),
//! the bounded request log (`request_log`), the capped body reader (`body`), the
//! Host/Origin/loopback checks that keep browsers and other hosts out (`guard`), and the few
//! helpers below.
//!
//! Owns no API: no path, no JSON shape, no user. A target's simulator builds its routes and
//! its store on top of this and decides what its answers say.

pub mod body;
pub mod faults;
pub mod guard;
pub mod request_log;
pub mod server;

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Result, bail};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Locks a simulator's state. A handler that panicked mid-update leaves no half-written state
/// behind (every update is a single insert or assignment), so a poisoned lock is still safe
/// to use.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Refuses a non-loopback `--listen` without `--allow-remote`: a simulator has a known
/// credential and no TLS, and is meant for this machine.
pub fn check_listen(listen: SocketAddr, allow_remote: bool) -> Result<()> {
    if !listen.ip().is_loopback() && !allow_remote {
        bail!(
            "--listen {listen} is not a loopback address: the simulator would be reachable from \
             other hosts; use 127.0.0.1:PORT, or add --allow-remote if that is intended"
        );
    }
    Ok(())
}

/// A JSON answer with `status` (500 if it is not a valid status) and, for a 429, a
/// `Retry-After` in whole seconds.
pub fn json_response(status: u16, body: &impl Serialize, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Completes on Ctrl-C or SIGTERM: when `rostersync sim` is to stop.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
