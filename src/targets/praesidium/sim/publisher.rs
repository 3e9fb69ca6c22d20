//! The simulator's event publisher: a bounded queue of learning events and the background
//! task that POSTs each to the client's endpoint, retrying as a real publisher would, and
//! the bounded delivery log `GET /admin/events` shows.
//!
//! Owns delivery only: what an event says is `events`, when one is queued is `completion`.
//! Everything is bounded (the queue, the log, the attempts, the time per attempt; answers'
//! bodies are never read). Never follows a redirect, never uses a proxy, and must never log
//! or record the endpoint's password (the URL cannot carry one: `events::check_url`).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use super::events::{CompleteError, Endpoint, EndpointView};
use super::{Sim, lock};

/// Events waiting to be sent; a completion beyond this is refused (503), not recorded.
pub const QUEUE_CAPACITY: usize = 100_000;
/// Deliveries `GET /admin/events` keeps (the oldest go first).
pub const LOG_CAPACITY: usize = 10_000;
/// Events in flight at once; each event's own attempts are sequential.
pub const CONCURRENCY: usize = 4;
/// The most one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The wait after the `failed`-th failed attempt (from 1): 100 ms, doubling, capped at 5 s.
pub fn backoff(failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// One event on its way, with the endpoint it was queued for: a later change of endpoint
/// applies to later events, so that the log's `url` is where this one went.
pub struct Queued {
    seq: u64,
    event: Value,
    endpoint: Endpoint,
}

/// One attempt: the answer's status, or why there was none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An event and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub seq: u64,
    pub event: Value,
    pub url: String,
    pub attempts: Vec<Attempt>,
    /// An attempt was answered 2xx.
    pub delivered: bool,
    /// Every allowed attempt failed.
    pub gave_up: bool,
    /// The simulator stopped before the event was delivered or given up.
    pub dropped: bool,
}

/// The bounded log of deliveries, numbered from 1 (never reused, not even after a reset).
struct DeliveryLog {
    entries: VecDeque<Delivery>,
    next_seq: u64,
}

impl DeliveryLog {
    fn push(&mut self, event: Value, url: String) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(Delivery {
            seq,
            event,
            url,
            attempts: Vec::new(),
            delivered: false,
            gave_up: false,
            dropped: false,
        });
        seq
    }

    /// The entry numbered `seq`, unless it was dropped from the log (or the log was reset).
    fn get_mut(&mut self, seq: u64) -> Option<&mut Delivery> {
        let first = self.entries.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get_mut(index).filter(|d| d.seq == seq)
    }
}

/// The publisher's state, held by the simulator; the task that sends is [`spawn`]ed by the
/// running server.
pub struct Publisher {
    sender: mpsc::Sender<Queued>,
    /// The queue's receiving end while no task runs (the task holds it while it does).
    receiver: Mutex<Option<mpsc::Receiver<Queued>>>,
    endpoint: Mutex<Endpoint>,
    max_attempts: u32,
    log: Mutex<DeliveryLog>,
}

impl Publisher {
    pub fn new(endpoint: Endpoint, max_attempts: u32) -> Publisher {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        Publisher {
            sender,
            receiver: Mutex::new(Some(receiver)),
            endpoint: Mutex::new(endpoint),
            max_attempts: max_attempts.max(1),
            log: Mutex::new(DeliveryLog {
                entries: VecDeque::new(),
                next_seq: 1,
            }),
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        lock(&self.endpoint).clone()
    }

    pub fn set_endpoint(&self, endpoint: Endpoint) {
        *lock(&self.endpoint) = endpoint;
    }

    /// Replaces the endpoint with `change` of it, unless `change` refuses.
    pub fn update_endpoint(
        &self,
        change: impl FnOnce(&Endpoint) -> Result<Endpoint, String>,
    ) -> Result<EndpointView, String> {
        let mut endpoint = lock(&self.endpoint);
        *endpoint = change(&endpoint)?;
        Ok(endpoint.view())
    }

    /// Queues `event` for `endpoint` (which has a URL) and logs it; refused, with nothing
    /// logged or queued, when the queue is full.
    pub fn publish(&self, event: Value, endpoint: Endpoint) -> Result<u64, CompleteError> {
        let url = endpoint
            .url()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default();
        let permit = self
            .sender
            .try_reserve()
            .map_err(|_| CompleteError::QueueFull(QUEUE_CAPACITY))?;
        let seq = lock(&self.log).push(event.clone(), url);
        permit.send(Queued {
            seq,
            event,
            endpoint,
        });
        Ok(seq)
    }

    /// Deliveries after `since`, oldest first, at most `limit`.
    pub fn deliveries(&self, since: u64, limit: usize) -> Vec<Delivery> {
        let log = lock(&self.log);
        let start = log.entries.partition_point(|d| d.seq <= since);
        log.entries.range(start..).take(limit).cloned().collect()
    }

    /// Forgets the delivery log (events already queued are still sent).
    pub fn clear_log(&self) {
        lock(&self.log).entries.clear();
    }

    fn record(&self, seq: u64, change: impl FnOnce(&mut Delivery)) {
        if let Some(delivery) = lock(&self.log).get_mut(seq) {
            change(delivery);
        }
    }
}

/// The sending task of a running simulator; stop it with [`Sending::stop`].
pub struct Sending {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Sending {
    /// Stops promptly: deliveries in flight are abandoned mid-attempt or mid-backoff, and
    /// events still queued are dropped (marked so in the log), as a simulator may; nothing
    /// is persisted. Waits for the task to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts sending the queued events; `None` when a task already sends for this simulator
/// (it was started twice) or no HTTP client can be built.
pub fn spawn(sim: Arc<Sim>) -> Option<Sending> {
    let receiver = lock(&sim.events.receiver).take()?;
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        .user_agent("rostersync-sim praesidium-event-publisher")
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!("the event publisher cannot start: {error}");
            *lock(&sim.events.receiver) = Some(receiver);
            return None;
        }
    };
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(dispatch(sim, client, receiver, stopped));
    Some(Sending { stop, task })
}

async fn dispatch(
    sim: Arc<Sim>,
    client: reqwest::Client,
    mut receiver: mpsc::Receiver<Queued>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut in_flight: JoinSet<u64> = JoinSet::new();
    let mut sending: HashSet<u64> = HashSet::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok(seq) = done {
                    sending.remove(&seq);
                }
            }
            queued = receiver.recv(), if in_flight.len() < CONCURRENCY => {
                // The simulator holds a sender as long as it lives: `None` cannot come
                // while it runs us, but ending quietly is the right answer if it did.
                let Some(queued) = queued else { break };
                sending.insert(queued.seq);
                in_flight.spawn(deliver(sim.clone(), client.clone(), queued));
            }
        }
    }
    in_flight.abort_all();
    while in_flight.join_next().await.is_some() {}
    let mut dropped: Vec<u64> = sending.into_iter().collect();
    while let Ok(queued) = receiver.try_recv() {
        dropped.push(queued.seq);
    }
    for seq in dropped {
        sim.events
            .record(seq, |d| d.dropped = !d.delivered && !d.gave_up);
    }
    // Back for the next start of this simulator (the queue is empty now).
    *lock(&sim.events.receiver) = Some(receiver);
}

/// Sends one event until it is answered 2xx or the attempts run out; returns its number.
async fn deliver(sim: Arc<Sim>, client: reqwest::Client, queued: Queued) -> u64 {
    let Queued {
        seq,
        event,
        endpoint,
    } = queued;
    let publisher = &sim.events;
    let Some(url) = endpoint.url().cloned() else {
        return seq;
    };
    let body = serde_json::to_vec(&event).unwrap_or_default();
    for attempt in 1..=publisher.max_attempts {
        let mut request = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some((user, password)) = endpoint.basic() {
            request = request.basic_auth(user, Some(password));
        }
        // The answer's body is never read: dropped unread, it costs nothing.
        let outcome = request.send().await.map(|answer| answer.status().as_u16());
        let delivered = matches!(outcome, Ok(status) if (200..300).contains(&status));
        let last = attempt == publisher.max_attempts;
        let record = Attempt {
            at: Utc::now(),
            status: outcome.as_ref().ok().copied(),
            error: outcome.as_ref().err().map(describe),
        };
        publisher.record(seq, |d| {
            d.attempts.push(record);
            d.delivered = delivered;
            d.gave_up = !delivered && last;
        });
        if delivered {
            tracing::debug!("event {seq} delivered to {url} (attempt {attempt})");
            return seq;
        }
        if last {
            tracing::info!("event {seq} to {url}: gave up after {attempt} attempts");
            return seq;
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
    seq
}

/// What went wrong with an attempt that got no answer, classified by the error's kind.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_starts_at_100_ms_doubles_and_stops_at_5_s() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(0), FIRST_BACKOFF);
    }

    #[test]
    fn the_log_is_bounded_and_finds_entries_by_number() {
        let mut log = DeliveryLog {
            entries: VecDeque::new(),
            next_seq: 1,
        };
        for _ in 0..LOG_CAPACITY + 5 {
            log.push(json!({}), "http://x/".into());
        }
        assert_eq!(log.entries.len(), LOG_CAPACITY);
        assert!(log.get_mut(5).is_none(), "dropped from the log");
        assert_eq!(log.get_mut(6).unwrap().seq, 6);
        let last = LOG_CAPACITY as u64 + 5;
        assert_eq!(log.get_mut(last).unwrap().seq, last);
        assert!(log.get_mut(last + 1).is_none());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_logs_nothing() {
        let publisher = Publisher::new(Endpoint::default(), 1);
        let endpoint = Endpoint::new(Some("http://127.0.0.1:9/"), None, None).unwrap();
        for _ in 0..QUEUE_CAPACITY {
            publisher.publish(json!({}), endpoint.clone()).unwrap();
        }
        assert_eq!(
            publisher.publish(json!({}), endpoint),
            Err(CompleteError::QueueFull(QUEUE_CAPACITY))
        );
        let logged = publisher.deliveries(0, usize::MAX);
        assert_eq!(logged.len(), LOG_CAPACITY);
        assert_eq!(logged.last().unwrap().seq, QUEUE_CAPACITY as u64);
    }
}
