//! Sending: how every request leaves, whichever target makes it.
//!
//! Owns the one path a request takes: its slot in the pacing schedule, the 429 pauses, the
//! stats and the breaker, the retry policy ([`super::retry`]), and the claims that keep one
//! platform account from standing for two people. Targets reach it through [`Io`], the
//! handle the engine lends them for one op; they never pace, retry or count on their own.

use std::time::Instant;

use super::pace::Answer;
use super::{Shared, lock};
use crate::model::Op;
use crate::targets::CallError;

/// The engine's sending, lent to a target while it prepares or executes an op.
#[derive(Clone, Copy)]
pub struct Io<'a> {
    pub(super) shared: &'a Shared,
}

impl Io<'_> {
    /// Sends one request in its slot of the pacing schedule: one try. For the request that
    /// makes an op's change, whose retries the engine decides with the op's state in mind.
    pub async fn send<T>(
        &self,
        call: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        send(self.shared, call).await
    }

    /// Sends a request under the retry policy: for reads, logins and the later steps of a
    /// multi-request op, each retried on its own (starting the op over would repeat a step
    /// the platform already took).
    pub async fn send_retrying<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        send_retrying(self.shared, call).await
    }

    /// Records that the platform account `id` is `op`'s person, refusing it when the ledger
    /// (or another answer in this run) has it for another key. `status` is the HTTP status
    /// of the answer that named the account, for the refusal.
    pub fn claim(&self, op: &Op, id: &str, status: u16) -> Result<(), CallError> {
        claim(self.shared, op, id, status)
    }
}

/// Sends one request in its slot of the pacing schedule (after any 429 pause), and tells the
/// pacing how it was answered.
pub(super) async fn send<T>(
    shared: &Shared,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    let slot = loop {
        let slot = lock(&shared.pacer).reserve(Instant::now());
        if !shared.stop.sleep_until(slot.at).await {
            return Err(CallError::Stopped);
        }
        // A 429 answered meanwhile may have cut the rate or started a pause: the slot is then
        // reserved again at the new pace (bounded: each pass waits for a later slot).
        if lock(&shared.pacer).still_valid(slot, Instant::now()) {
            break slot;
        }
    };
    if shared.stopping() {
        return Err(CallError::Stopped);
    }
    let result = call.await;
    let answer = match &result {
        Err(CallError::RateLimited { retry_after }) => Some(Answer::RateLimited(*retry_after)),
        // A lost answer or no connection says nothing of the rate the API accepts.
        Err(CallError::Connect(_) | CallError::Ambiguous(_) | CallError::Stopped) => None,
        _ => Some(Answer::Taken),
    };
    if let Some(answer) = answer {
        lock(&shared.pacer).answered(slot, answer, Instant::now());
    }
    shared.stat(|stats| {
        stats.requests += 1;
        if let Err(CallError::RateLimited { .. }) = &result {
            stats.rate_limited_429 += 1;
        }
    });
    let tripped = match &result {
        Err(CallError::RateLimited { .. }) => lock(&shared.breaker).rate_limited(),
        Err(CallError::Ambiguous(_)) => lock(&shared.breaker).unanswered(),
        Err(CallError::Server { .. } | CallError::Connect(_)) => None,
        _ => {
            lock(&shared.breaker).answered();
            None
        }
    };
    if let Some(reason) = tripped {
        shared.give_up(reason);
    }
    result
}

/// [`send`] under the [`Retries`] rules. For the steps of a multi-request op, each retried on
/// its own.
pub(super) async fn send_retrying<T, F, Fut>(shared: &Shared, call: F) -> Result<T, CallError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    super::retry::retrying(
        shared.max_attempts,
        || send(shared, call()),
        |wait| shared.stop.sleep_until(Instant::now() + wait),
        || shared.stat(|s| s.retries += 1),
    )
    .await
}

/// The platform ids answered in this run whose ops are not yet settled, with their keys. Once
/// an op settles, the ledger holds what it recorded (an acknowledged id is in `users`, found by
/// [`Ledger::other_key_of_uuid`]), so its claims are dropped: the map holds the ops in flight,
/// not the whole run.
#[derive(Default)]
pub(super) struct Claims {
    by_uuid: std::collections::HashMap<String, String>,
    by_key: std::collections::HashMap<String, Vec<String>>,
}

impl Claims {
    fn insert(&mut self, uuid: &str, key: &str) {
        self.by_uuid.insert(uuid.to_owned(), key.to_owned());
        self.by_key
            .entry(key.to_owned())
            .or_default()
            .push(uuid.to_owned());
    }

    pub(super) fn release(&mut self, key: &str) {
        for uuid in self.by_key.remove(key).unwrap_or_default() {
            self.by_uuid.remove(&uuid);
        }
    }
}

/// Records that `uuid` is the account of `op`'s key, refusing it when the ledger (or another
/// answer in this run) has it for another key: one account standing for two people would be
/// changed, and deactivated, for both of them.
fn claim(shared: &Shared, op: &Op, uuid: &str, status: u16) -> Result<(), CallError> {
    let mut claimed = lock(&shared.claimed);
    let other = match claimed.by_uuid.get(uuid) {
        Some(key) if key != &op.key => Some(key.clone()),
        Some(_) => None,
        None => lock(&shared.ledger)
            .other_key_of_uuid(uuid, &op.key)
            .map_err(|e| CallError::NotSent(format!("cannot read the ledger: {e:#}")))?,
    };
    match other {
        Some(other) => Err(CallError::Unreliable {
            status,
            message: format!(
                "the API named user {uuid}, which the ledger holds for external_id {other}; one \
                 account cannot be two people, so nothing is recorded (check both in the platform)"
            ),
        }),
        None => {
            claimed.insert(uuid, &op.key);
            Ok(())
        }
    }
}
