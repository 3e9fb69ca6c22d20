//! Completing content in the simulated academy, and the simulator's event-publishing
//! surface for Rust callers (the demo, tests): complete, set or read the endpoint, read
//! the delivery log. `admin` exposes the same over HTTP.
//!
//! Owns the order of a completion: check everything, queue the event, then record it, so
//! that a refused completion (a full queue included) changes nothing. Never exposes the
//! endpoint's password.

use std::sync::atomic::Ordering;

use chrono::{DateTime, SubsecRound, Utc};

use super::events::{CompleteError, Completed, Endpoint, EndpointView, EventType, payload};
use super::publisher::Delivery;
use super::{Sim, lock};
use crate::ingest::normalize::fold;

impl Sim {
    /// Records that `user` completed `content` (UUIDs) at `at` (default now; whole seconds,
    /// as the event says) and queues the event, built with the older camelCase names when
    /// `camel_case`. Refused, with nothing recorded, for an unknown user or content, an
    /// inactive user, content the user is not enrolled in, or a full queue. With no endpoint
    /// set the completion is recorded and nothing is sent (`published: false`). Completing
    /// again publishes again, as a replaying publisher would.
    pub fn complete(
        &self,
        user: &str,
        content: &str,
        at: Option<DateTime<Utc>>,
        camel_case: bool,
    ) -> Result<Completed, CompleteError> {
        let (user, content) = (fold(user), fold(content));
        let at = at.unwrap_or_else(Utc::now).trunc_subsecs(0);
        let mut store = lock(&self.store);
        let learner = store.learner(&user, &content);
        // An unknown user is named first: it is the likelier mistake.
        if let Err(error @ CompleteError::UnknownUser(_)) = learner {
            return Err(error);
        }
        let kind = self
            .catalog
            .content_by_uuid(&content)
            .map(|entry| entry.kind)
            .ok_or_else(|| CompleteError::UnknownContent(content.clone()))?;
        let learner = learner?;
        let event = payload(EventType::of(kind), at, &learner, &content, camel_case);
        let endpoint = self.events.endpoint();
        let published = endpoint.url().is_some();
        if published {
            self.events.publish(event.clone(), endpoint)?;
        }
        store.mark_completed(&user, &content, at);
        self.dirty.store(true, Ordering::Relaxed);
        Ok(Completed { event, published })
    }

    /// Changes where events go from now on (events already queued keep theirs).
    pub fn set_events_endpoint(&self, endpoint: Endpoint) {
        self.events.set_endpoint(endpoint);
    }

    /// Changes the endpoint by the body of `PUT /admin/events/endpoint`
    /// ([`Endpoint::patched`]), in one step: two admin calls cannot interleave.
    pub fn patch_events_endpoint(&self, patch: &serde_json::Value) -> Result<EndpointView, String> {
        self.events
            .update_endpoint(|current| current.patched(patch))
    }

    /// Where events go, and as whom: never the password.
    pub fn events_endpoint(&self) -> EndpointView {
        self.events.endpoint().view()
    }

    /// Deliveries after `since` (their `seq`), oldest first, at most `limit`.
    pub fn event_deliveries(&self, since: u64, limit: usize) -> Vec<Delivery> {
        self.events.deliveries(since, limit)
    }
}
