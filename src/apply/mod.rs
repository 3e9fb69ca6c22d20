//! apply: executes the pending ops of the ledger against the API.
//!
//! Owns the order of execution (users in parallel up to `max_in_flight`, one user's ops in
//! order), the rate limit, the journal transitions (`sending` committed before a request
//! leaves, `done` committed with the ledger's new state) and adoption of an existing user on
//! an email conflict. It never retries a final refusal (4xx) and never records a state the
//! API did not acknowledge: an op whose outcome is unknown is left `in_doubt`, and the next
//! plan derives it again from the ledger.

pub mod progress;

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use governor::{Quota, RateLimiter};
use serde::Serialize;

use crate::config::ApiConfig;
use crate::ingest::normalize::fold;
use crate::ledger::{Effect, Ledger, Op, OpKind};
use crate::targets::praesidium::client::{CallError, Client, ContentCall};

/// What one apply did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ApplyStats {
    /// Ops by kind and final state (done / failed / in_doubt).
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    pub requests: u64,
    pub adopted: u64,
    pub elapsed_secs: f64,
    /// Requests per second achieved over the apply.
    pub achieved_rate: f64,
    pub rate_limited_429: u64,
    /// Ops left `sending` by a killed run, found at start and set in doubt.
    pub interrupted_found: u64,
}

impl ApplyStats {
    pub fn count(&self, state: &str) -> u64 {
        self.ops.values().filter_map(|m| m.get(state)).sum()
    }
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
>;

struct Shared {
    ledger: Arc<Mutex<Ledger>>,
    client: Arc<Client>,
    limiter: Limiter,
    run_id: i64,
    stats: Mutex<ApplyStats>,
    progress: progress::Progress,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Executes every pending op. Fatal only when the credentials are refused or the ledger
/// cannot be written; a failing op is recorded and the run goes on.
pub async fn apply(
    ledger: Arc<Mutex<Ledger>>,
    client: Arc<Client>,
    api: &ApiConfig,
    run_id: i64,
) -> Result<ApplyStats> {
    let started = Instant::now();
    let (ops, interrupted) = {
        let ledger = lock(&ledger);
        let interrupted = ledger.set_interrupted_in_doubt(run_id)?;
        (ledger.pending_ops()?, interrupted)
    };
    let mut by_user: VecDeque<Vec<Op>> = VecDeque::new();
    for op in ops {
        match by_user.back_mut() {
            Some(group) if group[0].key == op.key => group.push(op),
            _ => by_user.push_back(vec![op]),
        }
    }
    let total: usize = by_user.iter().map(Vec::len).sum();
    if total > 0 {
        client
            .authenticate()
            .await
            .map_err(|e| anyhow::anyhow!("cannot log in to {}: {e}", api.base_url))?;
    }
    let period = Duration::from_secs_f64(1.0 / api.requests_per_second);
    let quota = Quota::with_period(period)
        .context("requests_per_second is too high")?
        .allow_burst(NonZeroU32::MIN);
    let shared = Arc::new(Shared {
        ledger,
        client,
        limiter: RateLimiter::direct(quota),
        run_id,
        stats: Mutex::new(ApplyStats {
            interrupted_found: interrupted,
            ..ApplyStats::default()
        }),
        progress: progress::Progress::new(total as u64),
    });
    let queue = Arc::new(Mutex::new(by_user));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..api.max_in_flight {
        let (shared, queue) = (shared.clone(), queue.clone());
        workers.spawn(async move {
            loop {
                let Some(group) = lock(&queue).pop_front() else {
                    return Ok(());
                };
                for op in group {
                    execute(&shared, op).await?;
                }
            }
        });
    }
    let mut outcome: Result<()> = Ok(());
    while let Some(joined) = workers.join_next().await {
        let result = joined.context("an apply worker panicked").and_then(|r| r);
        if let (Err(error), true) = (result, outcome.is_ok()) {
            // Stop handing out work; the ops not taken stay pending for the next apply.
            lock(&queue).clear();
            outcome = Err(error);
        }
    }
    shared.progress.finish();
    outcome?;
    let mut stats = lock(&shared.stats).clone();
    stats.elapsed_secs = started.elapsed().as_secs_f64();
    stats.achieved_rate = if stats.elapsed_secs > 0.0 {
        stats.requests as f64 / stats.elapsed_secs
    } else {
        0.0
    };
    Ok(stats)
}

async fn send<T>(
    shared: &Shared,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    shared.limiter.until_ready().await;
    let result = call.await;
    let mut stats = lock(&shared.stats);
    stats.requests += 1;
    if matches!(result, Err(CallError::RateLimited { .. })) {
        stats.rate_limited_429 += 1;
    }
    result
}

async fn execute(shared: &Shared, op: Op) -> Result<()> {
    lock(&shared.ledger).mark_sending(op.id)?;
    let result = run_op(shared, &op).await;
    let state = match &result {
        Ok(effect) => {
            lock(&shared.ledger).complete(shared.run_id, &op, effect)?;
            "done"
        }
        Err(error) if error.is_ambiguous() => {
            lock(&shared.ledger).mark_in_doubt(shared.run_id, op.id, &error.to_string())?;
            "in_doubt"
        }
        Err(error) => {
            lock(&shared.ledger).fail(
                shared.run_id,
                op.id,
                error.http_status(),
                &error.to_string(),
            )?;
            if matches!(error, CallError::AuthRefused { .. }) {
                anyhow::bail!("the API refused the credentials: {error}");
            }
            "failed"
        }
    };
    {
        let mut stats = lock(&shared.stats);
        *stats
            .ops
            .entry(op.kind.as_str().to_owned())
            .or_default()
            .entry(state.to_owned())
            .or_default() += 1;
        if matches!(&result, Ok(Effect { adopted: true, .. })) {
            stats.adopted += 1;
        }
    }
    shared.progress.tick(state != "done");
    Ok(())
}

async fn run_op(shared: &Shared, op: &Op) -> Result<Effect, CallError> {
    let client = &shared.client;
    let uuid = op.payload.uuid.as_deref().unwrap_or_default();
    let done = |status: u16| Effect {
        uuid: None,
        http_status: Some(status),
        message: None,
        adopted: false,
    };
    match op.kind {
        OpKind::Create => {
            let user = op.payload.user.as_ref().expect("create ops carry a user");
            match send(shared, client.create(user)).await {
                Ok(created) => Ok(Effect {
                    uuid: created.uuid,
                    http_status: Some(201),
                    message: None,
                    adopted: false,
                }),
                Err(error) => match error.existing_user_id() {
                    Some(existing) => adopt(shared, op, &existing).await,
                    None => Err(error),
                },
            }
        }
        OpKind::Update => {
            let user = op.payload.user.as_ref().expect("update ops carry a user");
            send(shared, client.update(uuid, user))
                .await
                .map(|_| done(200))
        }
        OpKind::Deactivate => send(shared, client.deactivate(uuid))
            .await
            .map(|_| done(200)),
        OpKind::Enroll | OpKind::Remove | OpKind::ReEnroll => {
            let call = match op.kind {
                OpKind::Enroll => ContentCall::Enroll,
                OpKind::Remove => ContentCall::Remove,
                _ => ContentCall::ReEnroll,
            };
            send(shared, client.content(uuid, call, &op.payload.items))
                .await
                .map(|_| done(200))
        }
    }
}

/// The email belongs to a user in our hierarchy that the ledger does not know (an earlier
/// tool, a manual entry, or our own create whose answer was lost). Take it over: check it is
/// the same person by email, record its UUID, bring its profile and content to the roster's.
async fn adopt(shared: &Shared, op: &Op, existing: &str) -> Result<Effect, CallError> {
    let client = &shared.client;
    let wanted = op.payload.user.as_ref().expect("create ops carry a user");
    let found = send(shared, client.get_user(existing)).await?;
    let same_email = fold(found.principal.email.as_deref().unwrap_or(""))
        == fold(wanted.principal.email.as_deref().unwrap_or(""));
    if !same_email {
        return Err(CallError::Rejected {
            status: 400,
            code: "ADOPTION_REFUSED".to_owned(),
            message: format!(
                "the server named user {existing} for this email, but that user has another email"
            ),
            technical: String::new(),
        });
    }
    let mut profile = wanted.clone();
    let content = profile.context.content.take().unwrap_or_default();
    send(shared, client.update(existing, &profile)).await?;
    if !content.is_empty() {
        send(
            shared,
            client.content(existing, ContentCall::Enroll, &content),
        )
        .await?;
    }
    Ok(Effect {
        uuid: Some(existing.to_owned()),
        http_status: Some(200),
        message: Some(format!(
            "adopted existing user {existing} (email already in the academy)"
        )),
        adopted: true,
    })
}
