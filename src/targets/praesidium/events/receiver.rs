//! `rostersync events serve`: the long-running receiver Praesidium publishes learning
//! events to.
//!
//! Owns the HTTP side (Basic authentication compared in constant time, bounded bodies,
//! times and connections, the health endpoint, shutdown on SIGTERM or Ctrl-C) and receipt:
//! each event is committed to the events file, synced, before its 2xx. Events arriving
//! together are committed together (one sync for the group), on one writer thread. Answers:
//! 200 stored (or stored before: receipt is idempotent), 400 with the reason for a payload
//! that violates the specification, 401 for missing or wrong credentials, 413 for a body
//! over 64 KiB, 503 (with Retry-After) only when the event could not be stored, so that the
//! publisher sends it again. It takes no run lock and never waits on a plan (see
//! [`crate::ledger::events`]). It must never log or answer with the credentials, and never
//! acknowledge an event it has not stored.
//!
//! TLS: none here. The receiver listens on loopback and a reverse proxy on the same host
//! (nginx; see the README) terminates HTTPS and forwards to it; listening on another
//! address needs `--allow-remote`, since Basic credentials would otherwise cross the
//! network in clear.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tower::Layer;

use super::payload::{self, Event};
use crate::config::{Config, Secret};
use crate::ingest::catalog::Catalog;
use crate::ledger::events::{EventStore, NewEvent, Receipt};

/// The largest event body accepted (a completion is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Connections served at once at most (more wait in the kernel's backlog): enough that idle
/// or slow clients, each closed after [`READ_TIMEOUT`], cannot easily crowd out the
/// publisher; fewer when the process may open fewer files (see [`connection_slots`]).
const MAX_CONNECTIONS: u32 = 4096;
/// Events waiting for the writer; beyond, 503 (the publisher retries).
const QUEUE: usize = 8192;
/// Events committed in one transaction at most.
const GROUP: usize = 512;
/// How long a request may take to send its headers, then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an event may wait to be stored before the answer is 503.
const STORE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connections get to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(5);
/// The longest a connection is kept open (then closed between requests).
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// `events serve` options beyond the config.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Overrides `[events] listen`.
    pub listen: Option<SocketAddr>,
    /// Allows an address other than loopback.
    pub allow_remote: bool,
}

/// The Basic credentials the publisher must send, as digests: compared in constant time
/// and without their lengths showing.
struct Credentials {
    username: [u8; 32],
    password: [u8; 32],
}

impl Credentials {
    fn new(username: &str, password: &Secret) -> Credentials {
        Credentials {
            username: Sha256::digest(username.as_bytes()).into(),
            password: Sha256::digest(password.expose().as_bytes()).into(),
        }
    }

    /// Whether `Authorization` carries these credentials.
    fn admit(&self, headers: &HeaderMap) -> bool {
        // Exactly one: with two, which one a proxy or a log reads is anyone's guess.
        let mut given = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (given.next(), given.next()) else {
            return false;
        };
        let Ok(value) = value.to_str() else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        use base64::Engine as _;
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let user: [u8; 32] = Sha256::digest(&decoded[..colon]).into();
        let password: [u8; 32] = Sha256::digest(&decoded[colon + 1..]).into();
        // Both compared, always: `&` not `&&`.
        let ok = user.ct_eq(&self.username) & password.ct_eq(&self.password);
        ok.into()
    }
}

/// Refuses a username no Basic credentials can carry: the user-id ends at the first colon
/// (RFC 7617), so with one in it every event would be refused with 401, and the publisher
/// would give up on them.
fn usable_username(username: &str, variable: &str) -> Result<()> {
    if username.contains(':') {
        bail!(
            "events: the username in {variable} contains a colon; HTTP Basic authentication cannot carry one (the username ends at the first colon), so every event would be refused; choose a username without one"
        );
    }
    Ok(())
}

/// One event handed to the writer, with where its outcome goes.
struct Job {
    event: Event,
    body: String,
    received_at: i64,
    reply: oneshot::Sender<Result<Stored, String>>,
}

/// What the writer did with an event.
#[derive(Debug, Clone)]
struct Stored {
    receipt: Receipt,
    /// Why the event matches no learner or item yet, if it does not.
    unmatched: Option<String>,
}

/// Whether the `n`th occurrence of something is logged: the first [`LOGGED_IN_FULL`], then
/// one in a thousand, so that a misconfigured publisher or a hostile client cannot flood
/// the log (every event is in the events file and the completions report anyway).
fn worth_logging(n: u64) -> bool {
    n <= LOGGED_IN_FULL || n.is_multiple_of(1000)
}

const LOGGED_IN_FULL: u64 = 20;

struct Shared {
    /// Requests refused (400, 401, 413), for [`worth_logging`].
    refused: AtomicU64,
    credentials: Credentials,
    jobs: mpsc::Sender<Job>,
    stored: AtomicU64,
    duplicates: AtomicU64,
    writer_alive: Arc<AtomicBool>,
}

/// Runs the receiver until SIGTERM or Ctrl-C, with the credentials from the environment.
pub async fn serve(config: &Config, options: ServeOptions) -> Result<()> {
    let events = &config.events;
    let credential = |name: &str, key: &str, what: &str| -> Result<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .with_context(|| {
                format!(
                    "events: the environment variable {name:?} is not set or empty; export the {what} Praesidium sends with every event in it ([events] {key} names the variable)"
                )
            })
    };
    let username = credential(&events.username_env, "username_env", "username")?;
    let password = Secret::new(credential(
        &events.password_env,
        "password_env",
        "password",
    )?);
    if password.expose().chars().count() < 16 {
        tracing::warn!(
            "the events password in {} is shorter than 16 characters; a long random one is safer",
            events.password_env
        );
    }
    let listen = options.listen.unwrap_or(events.listen);
    if !listen.ip().is_loopback() && !options.allow_remote {
        bail!(
            "events: refusing to listen on {listen}: the receiver speaks plain HTTP, and Basic credentials and learners' names would cross the network in clear; \
             listen on loopback behind a TLS proxy (see the README), or pass --allow-remote if a TLS proxy on another host forwards to it"
        );
    }
    let receiving = start(config, listen, &username, &password).await?;
    // For scripts and tests that asked for port 0.
    crate::say!("listening on {}", receiving.addr);
    shutdown_signal().await;
    receiving.stop().await;
    Ok(())
}

/// A receiver serving in the background; stop it with [`Receiving::stop`].
pub struct Receiving {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiving {
    /// Stops accepting, lets the requests under way finish, stores what was queued.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts receiving on `listen` (port 0 picks one) for the Basic credentials given.
pub async fn start(
    config: &Config,
    listen: SocketAddr,
    username: &str,
    password: &Secret,
) -> Result<Receiving> {
    let events = &config.events;
    usable_username(username, &events.username_env)?;
    let catalog = Catalog::load(
        &config.files.clients,
        &config.files.locations,
        &config.files.content,
    )?;
    let store = EventStore::open(&events.store)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("events: cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
    let writer_alive = Arc::new(AtomicBool::new(true));
    let writer = {
        let ledger = config.ledger.path.clone();
        let alive = writer_alive.clone();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || {
                write_events(store, &ledger, &catalog, queue);
                alive.store(false, Ordering::SeqCst);
            })
            .context("cannot start the event writer")?
    };
    let shared = Arc::new(Shared {
        refused: AtomicU64::new(0),
        credentials: Credentials::new(username, password),
        jobs,
        stored: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        writer_alive,
    });
    tracing::info!(
        "receiving learning events on http://{addr}/events (health: /health), storing them in {}",
        crate::human::path(&events.store)
    );
    let (stop, stopping) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        accept_loop(listener, router(shared.clone()), async move {
            let _ = stopping.await;
        })
        .await;
        let (stored, duplicates) = (
            shared.stored.load(Ordering::SeqCst),
            shared.duplicates.load(Ordering::SeqCst),
        );
        // With the last sender gone the writer stores what is queued and ends. Bounded: a
        // handler that outlived the drain still holds a sender, and whatever it waits for
        // was never acknowledged.
        drop(shared);
        let joined = tokio::task::spawn_blocking(move || writer.join());
        if tokio::time::timeout(DRAIN, joined).await.is_err() {
            tracing::warn!(
                "the event writer did not finish in time; unanswered events were not acknowledged"
            );
        }
        tracing::info!("stopped: {stored} event(s) stored, {duplicates} duplicate(s) acknowledged");
    });
    Ok(Receiving { addr, stop, task })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/events", post(receive))
        .route("/", post(receive))
        .route("/health", get(health))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "not found: events are POSTed to /events"})),
            )
        })
        .with_state(shared)
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let alive = shared.writer_alive.load(Ordering::SeqCst);
    let status = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if alive { "ok" } else { "the event writer stopped" },
            "stored": shared.stored.load(Ordering::Relaxed),
            "duplicates": shared.duplicates.load(Ordering::Relaxed),
            "queued": QUEUE - shared.jobs.capacity(),
        })),
    )
        .into_response()
}

fn refusal(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut response = (status, Json(json!({"error": reason.into()}))).into_response();
    match status {
        StatusCode::UNAUTHORIZED => {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"rostersync events\", charset=\"UTF-8\""),
            );
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        _ => {}
    }
    response
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Extension(peer): Extension<SocketAddr>,
    request: Request<Body>,
) -> Response {
    if !shared.credentials.admit(request.headers()) {
        let n = shared.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if worth_logging(n) {
            tracing::warn!(
                "event refused from {peer}: missing or wrong credentials (401; {n} refused so far)"
            );
        }
        return refusal(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
    }
    let received_at = crate::ledger::now_ms();
    let body = match tokio::time::timeout(
        READ_TIMEOUT,
        axum::body::to_bytes(request.into_body(), MAX_BODY),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {MAX_BODY} bytes (or was cut off)"),
            );
        }
        Err(_) => {
            return refusal(
                StatusCode::REQUEST_TIMEOUT,
                "the body took too long to arrive",
            );
        }
    };
    let event = match payload::parse(&body, received_at) {
        Ok(event) => event,
        Err(violation) => {
            let n = shared.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if worth_logging(n) {
                tracing::warn!("event refused from {peer}: {violation} (400; {n} refused so far)");
            }
            return refusal(StatusCode::BAD_REQUEST, violation.0);
        }
    };
    // Valid JSON is valid UTF-8.
    let body = String::from_utf8_lossy(&body).into_owned();
    let (reply, outcome) = oneshot::channel();
    let job = Job {
        event,
        body,
        received_at,
        reply,
    };
    if shared.jobs.try_send(job).is_err() {
        tracing::warn!("event not stored: the writer's queue is full or stopped (503)");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: the event was not stored; send it again",
        );
    }
    match tokio::time::timeout(STORE_TIMEOUT, outcome).await {
        Ok(Ok(Ok(stored))) => {
            let duplicate = matches!(stored.receipt, Receipt::Duplicate(_));
            let id = match stored.receipt {
                Receipt::Stored(id) | Receipt::Duplicate(id) => id,
            };
            if duplicate {
                shared.duplicates.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.stored.fetch_add(1, Ordering::Relaxed);
            }
            (
                StatusCode::OK,
                Json(json!({
                    "status": if duplicate { "duplicate" } else { "stored" },
                    "id": id,
                    "matched": stored.unmatched.is_none(),
                    "note": stored.unmatched,
                })),
            )
                .into_response()
        }
        Ok(Ok(Err(error))) => {
            tracing::error!("event not stored: {error} (503)");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event could not be stored; send it again",
            )
        }
        Ok(Err(_)) | Err(_) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event could not be stored in time; send it again",
        ),
    }
}

/// The writer thread: takes jobs as they come, up to [`GROUP`] at a time, matches each to a
/// learner and an SKU, stores the group in one synced transaction, then answers each.
fn write_events(
    mut store: EventStore,
    ledger: &Path,
    catalog: &Catalog,
    mut queue: mpsc::Receiver<Job>,
) {
    let mut matcher = Matcher::new(ledger);
    let mut unmatched_count = 0u64;
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut rows = Vec::with_capacity(group.len());
        let mut notes = Vec::with_capacity(group.len());
        for job in &group {
            let (key, sku, unmatched) = matcher.match_event(&job.event, catalog);
            rows.push(NewEvent {
                digest: job.event.digest,
                received_at: job.received_at,
                event_type: job.event.event_type.clone(),
                occurred_at: job.event.occurred_at,
                user_uuid: job.event.user_uuid.clone(),
                content_uuid: job.event.content_uuid.clone(),
                content_type: job.event.content_type.map(str::to_owned),
                matched_key: key,
                matched_sku: sku,
                body: job.body.clone(),
            });
            notes.push(unmatched);
        }
        match store.store(&rows) {
            Ok(receipts) => {
                for ((job, receipt), unmatched) in group.into_iter().zip(receipts).zip(notes) {
                    if let (Receipt::Stored(id), Some(why)) = (receipt, &unmatched) {
                        unmatched_count += 1;
                        if worth_logging(unmatched_count) {
                            tracing::warn!(
                                "event {id} kept but matches nothing: {why} ({unmatched_count} so far; see `rostersync completions`)"
                            );
                        }
                    }
                    let _ = job.reply.send(Ok(Stored { receipt, unmatched }));
                }
            }
            Err(error) => {
                let text = format!("{error:#}");
                for job in group {
                    let _ = job.reply.send(Err(text.clone()));
                }
            }
        }
    }
}

/// Matches events to learners through the ledger, read-only: opened when first needed and
/// again after a failure (the receiver may start before the first plan creates the ledger,
/// or before a newer rostersync migrates it), tried at most every [`Matcher::RETRY`].
struct Matcher<'a> {
    path: &'a Path,
    ledger: Option<crate::ledger::Ledger>,
    tried: Option<std::time::Instant>,
    warned: bool,
}

impl<'a> Matcher<'a> {
    const RETRY: Duration = Duration::from_secs(30);

    fn new(path: &'a Path) -> Matcher<'a> {
        Matcher {
            path,
            ledger: None,
            tried: None,
            warned: false,
        }
    }

    fn ledger(&mut self) -> Option<&crate::ledger::Ledger> {
        let due = self.tried.is_none_or(|at| at.elapsed() >= Self::RETRY);
        if self.ledger.is_none() && due {
            self.tried = Some(std::time::Instant::now());
            match crate::ledger::Ledger::open_read_only(self.path) {
                Ok(ledger) => self.ledger = Some(ledger),
                Err(error) if !self.warned => {
                    self.warned = true;
                    tracing::warn!(
                        "events are stored, but not matched to learners for now: {error:#}"
                    );
                }
                Err(_) => {}
            }
        }
        self.ledger.as_ref()
    }

    /// The learner's key, the item's SKU, and why the event matches nothing (if it does not).
    fn match_event(
        &mut self,
        event: &Event,
        catalog: &Catalog,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let key = match (&event.content_type, &event.user_uuid) {
            (Some(_), Some(uuid)) => match self.ledger().map(|ledger| ledger.learner_of(uuid)) {
                Some(Ok(found)) => found.map(|(key, _)| key),
                Some(Err(error)) => {
                    tracing::warn!("cannot match an event to a learner: {error:#}");
                    self.ledger = None;
                    None
                }
                None => None,
            },
            _ => None,
        };
        let sku = match (&event.content_type, &event.content_uuid) {
            (Some(_), Some(uuid)) => catalog.content_by_uuid(uuid).map(|c| c.sku.clone()),
            _ => None,
        };
        let unmatched = crate::completions::unmatched(
            event
                .content_type
                .is_none()
                .then_some(event.event_type.as_str()),
            event.user_uuid.as_deref().map(|u| (u, key.is_some())),
            event.content_uuid.as_deref().map(|c| (c, sku.is_some())),
        );
        (key, sku, unmatched)
    }
}

/// How many connections to serve at once: [`MAX_CONNECTIONS`], or fewer when the open-file
/// limit is lower (raised first to its hard limit, as servers do), keeping 64 files for the
/// events file, the ledger and the logs.
fn connection_slots() -> u32 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct handed to them.
        let files = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 256;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
            limit.rlim_cur
        };
        let spare = files
            .saturating_sub(64)
            .clamp(16, u64::from(MAX_CONNECTIONS));
        spare as u32
    }
    #[cfg(not(unix))]
    {
        256
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stopping: finishing the requests under way");
}

/// Serves connections until `stopping` completes, then lets them finish (at most
/// [`DRAIN`]).
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    stopping: impl Future<Output = ()>,
) {
    let capacity = connection_slots();
    let slots = Arc::new(Semaphore::new(capacity as usize));
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(stopping);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut stopping => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut stopping => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(Extension(peer).layer(app.clone()));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let age = tokio::time::sleep(MAX_CONNECTION_AGE);
            tokio::pin!(age);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopped.changed() => {}
                _ = &mut age => {}
            }
            // Closes once the request under way (if any) is answered.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, connection).await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot: all slots free means all connections ended.
    let all = slots.acquire_many(capacity);
    if tokio::time::timeout(DRAIN + Duration::from_secs(1), all)
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time; closing them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn only_the_exact_credentials_are_admitted() {
        let credentials = Credentials::new("praesidium", &Secret::new("s3cret:with-colon"));
        assert!(credentials.admit(&headers(&basic("praesidium", "s3cret:with-colon"))));
        assert!(
            credentials.admit(
                &headers(&basic("praesidium", "s3cret:with-colon"))
                    .iter()
                    .map(|(k, v)| (
                        k.clone(),
                        HeaderValue::from_str(&v.to_str().unwrap().replace("Basic", "basic"))
                            .unwrap()
                    ))
                    .collect()
            )
        );
        for wrong in [
            basic("praesidium", "s3cret"),
            basic("praesidium", "s3cret:with-colon "),
            basic("Praesidium", "s3cret:with-colon"),
            basic("", ""),
            "Bearer abc".to_owned(),
            "Basic !!!".to_owned(),
            "Basic".to_owned(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("no-colon")
            ),
        ] {
            assert!(!credentials.admit(&headers(&wrong)), "{wrong}");
        }
        assert!(!credentials.admit(&HeaderMap::new()));
        let mut twice = headers(&basic("praesidium", "s3cret:with-colon"));
        twice.append(
            header::AUTHORIZATION,
            HeaderValue::from_str(&basic("praesidium", "s3cret:with-colon")).unwrap(),
        );
        assert!(!credentials.admit(&twice), "two Authorization headers");
    }

    #[test]
    fn a_username_with_a_colon_is_refused_at_start() {
        assert!(usable_username("praesidium", "EV_USER").is_ok());
        let refused = usable_username("prae:sidium", "EV_USER").unwrap_err();
        let message = format!("{refused:#}");
        assert!(
            message.contains("EV_USER") && message.contains("colon"),
            "{message}"
        );
        assert!(!message.contains("prae:sidium"), "{message}");
        // Such a user could never get in: the header splits at its first colon.
        let credentials = Credentials::new("prae:sidium", &Secret::new("long-enough-password"));
        assert!(!credentials.admit(&headers(&basic("prae:sidium", "long-enough-password"))));
    }
}
