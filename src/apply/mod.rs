//! apply: executes the pending ops of the ledger against the API, through everything the API
//! and the machine do to a long unattended run.
//!
//! Owns the execution: users in parallel up to `max_in_flight`, one user's ops in order, the
//! rate limit, the pause every worker takes on a 429, retries with backoff, the duplicate
//! window (a change waits until the previous change of that user through that endpoint is
//! older than the window, other users moving on meanwhile), the resolution of ops whose
//! outcome is unknown, and the journal transitions (`sending` committed before a request
//! leaves, `done` committed with the ledger's new state). It never retries a final refusal
//! (4xx), never re-sends an op in doubt before resolving it, and never records a state the
//! API did not acknowledge.

pub mod journal;
pub mod pace;
pub mod progress;
pub mod retry;
pub mod schedule;
mod send;
pub mod stop;

pub use send::Io;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::ApiConfig;
use crate::ledger::{Effect, Entry, Ledger, Op, now_ms};
use crate::targets::{CallError, Target};
use pace::Pacer;
use retry::{Retries, Retry};
use schedule::{Breaker, Feeder, Next, Queue, Task, Work};
use send::Claims;
use stop::{Level, Stop};
/// After a stop is requested, how long the requests in flight may take to finish (at most the
/// request timeout). Past it they are abandoned and their ops set in doubt: a stop must end the
/// run within seconds, whatever a slow server does.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What one apply did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ApplyStats {
    /// Ops by kind and final state (done / failed / in_doubt).
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    pub requests: u64,
    pub adopted: u64,
    #[serde(serialize_with = "hundredths")]
    pub elapsed_secs: f64,
    /// Requests per second achieved over the apply.
    #[serde(serialize_with = "hundredths")]
    pub achieved_rate: f64,
    pub rate_limited_429: u64,
    /// Seconds every worker spent paused by 429s (overlapping pauses counted once).
    #[serde(serialize_with = "hundredths")]
    pub rate_limit_pause_secs: f64,
    /// The rate requests were paced at: configured, settled, lowest (see [`pace`]).
    pub pacing: Pacing,
    /// Requests sent again after a 5xx, a connection error or a timeout.
    pub retries: u64,
    /// Ops left `sending` by a killed run, found at start and set in doubt.
    pub interrupted_found: u64,
    /// Ops whose outcome was unknown and is now settled (confirmed by reading back, or sent again).
    pub in_doubt_resolved: u64,
    /// Ops already done by an op that had been in doubt: marked done without a request.
    pub already_applied: u64,
    /// Times a change waited for the duplicate window while other users went on.
    pub window_deferrals: u64,
    /// Ops not attempted because the run was stopped (a signal, a fatal error): still pending.
    pub left_pending: u64,
    /// Ops whose requests were still in flight when a stop's grace ran out (or a second
    /// signal came): set in doubt, resolved by the next run.
    pub abandoned_in_flight: u64,
    /// A signal stopped the run before every op was attempted...
    pub interrupted_by_signal: bool,
    /// ...this one (SIGINT, SIGTERM or SIGHUP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by_signal: Option<&'static str>,
    /// Why the run gave up early with ops left pending, when the API refused or failed
    /// everything for too long (see [`schedule::Breaker`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gave_up: Option<String>,
    /// Why the run ended early, when it did for a reason that makes the command fail (the
    /// credentials refused, the ledger unwritable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fatal: Option<String>,
}

/// What the pacing did over the run, in summary.json.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Pacing {
    /// `requests_per_second`: the ceiling.
    #[serde(serialize_with = "hundredths")]
    pub configured_rate: f64,
    /// The configured rate when the API never answered 429; else the rate requests were
    /// accepted at once it did: what to configure to avoid the 429s (0 when none was).
    #[serde(serialize_with = "hundredths")]
    pub settled_rate: f64,
    #[serde(serialize_with = "hundredths")]
    pub lowest_rate: f64,
    /// Times a 429 cut the rate.
    pub slowdowns: u64,
}

impl From<pace::PaceReport> for Pacing {
    fn from(report: pace::PaceReport) -> Pacing {
        Pacing {
            configured_rate: report.configured,
            settled_rate: report.settled,
            lowest_rate: report.lowest,
            slowdowns: report.decreases,
        }
    }
}

/// Seconds and rates in summary.json to the hundredth: 49.41234567 req/s says no more than
/// 49.41.
fn hundredths<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(crate::human::round(*value, 2))
}

impl ApplyStats {
    pub fn count(&self, state: &str) -> u64 {
        self.ops.values().filter_map(|m| m.get(state)).sum()
    }
}

struct Shared {
    ledger: Arc<Mutex<Ledger>>,
    /// Every journal write goes through here (group commit); reads lock `ledger`.
    journal: journal::Journal,
    /// When each request may leave: the rate the API accepts, up to the configured one.
    pacer: Mutex<Pacer>,
    window: Duration,
    max_attempts: u32,
    queue: Mutex<Queue>,
    /// Reads the pending ops in batches for the queue.
    feeder: Mutex<Feeder>,
    /// Wakes workers waiting for deferred users or for others to finish.
    wake: tokio::sync::Notify,
    stop: Stop,
    breaker: Mutex<Breaker>,
    /// Platform ids answered in this run, with their keys (see [`claim`]).
    claimed: Mutex<Claims>,
    stats: Mutex<ApplyStats>,
    progress: progress::Progress,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Executes every op in doubt and every pending op. A failing op is recorded and the run goes
/// on. Stopped by SIGINT, SIGTERM or SIGHUP (no new op starts; requests in flight finish and
/// are journaled; a second signal abandons them in doubt) or by a fatal error (the credentials
/// refused, the ledger unwritable): either way the ledger is left consistent and the stats say
/// why (`stopped_by_signal`, `fatal`). Errs only when the ledger cannot be read at the start.
pub async fn apply<T: Target>(
    ledger: Arc<Mutex<Ledger>>,
    target: Arc<T>,
    api: &ApiConfig,
    run_id: i64,
) -> Result<ApplyStats> {
    let started = Instant::now();
    let (queue, feeder, interrupted, total) = {
        let ledger = lock(&ledger);
        let interrupted = ledger.set_interrupted_in_doubt(run_id)?;
        // The users with an op in doubt are queued whole (a handful: the breaker stops a run
        // that loses many answers); everyone else is streamed from the ledger in batches.
        let in_doubt = ledger.in_doubt_ops()?;
        let theirs = if in_doubt.is_empty() {
            Vec::new()
        } else {
            ledger.pending_ops_of_users_in_doubt()?
        };
        let skip = in_doubt.iter().map(|op| op.key.clone()).collect();
        let (pending, doubtful) = ledger.waiting_ops()?;
        (
            Queue::new(in_doubt, theirs).streaming(),
            Feeder::new(skip),
            interrupted,
            pending + doubtful,
        )
    };
    let shared = Arc::new(Shared {
        journal: journal::Journal::start(ledger.clone(), run_id),
        ledger,
        // The config's bounds keep the rate finite and positive.
        pacer: Mutex::new(Pacer::new(api.requests_per_second, Instant::now())),
        window: Duration::from_secs(api.duplicate_window_secs),
        max_attempts: api.max_attempts,
        queue: Mutex::new(queue),
        feeder: Mutex::new(feeder),
        wake: tokio::sync::Notify::new(),
        stop: Stop::default(),
        breaker: Mutex::new(Breaker::default()),
        claimed: Mutex::default(),
        stats: Mutex::new(ApplyStats {
            interrupted_found: interrupted,
            ..ApplyStats::default()
        }),
        progress: progress::Progress::new(total),
    });
    let signals = {
        // Weak: the listener must not keep the ledger (and its lock) alive once apply is over;
        // an aborted task is dropped only when the runtime next gets to it.
        let shared = Arc::downgrade(&shared);
        stop::listen(move |signal, received| {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if received == 1 {
                tracing::warn!(
                    "{}: stopping; the requests in flight finish and are journaled, the rest stays pending for the next run (send it again to stop at once)",
                    signal.name()
                );
                {
                    let mut stats = lock(&shared.stats);
                    stats.interrupted_by_signal = true;
                    stats.stopped_by_signal = Some(signal.name());
                }
                shared.stop(Level::Stopping);
            } else {
                tracing::warn!(
                    "{} again: stopping at once; requests in flight are left in doubt for the next run",
                    signal.name()
                );
                shared.stop(Level::Abandon);
            }
        })
        .context("cannot listen for signals")?
    };
    let grace = STOP_GRACE.min(Duration::from_secs(api.timeout_secs));
    let fatal = if total > 0 {
        run_workers(&shared, &target, api.max_in_flight, grace).await
    } else {
        None
    };
    signals.abort();
    // Every write was acknowledged or abandoned with its worker; this ends the journal's thread
    // once what is queued is committed.
    shared.journal.close();
    shared.progress.finish();
    // A request abandoned in flight left its op `sending`: its outcome is unknown.
    let abandoned = lock(&shared.ledger).set_interrupted_in_doubt(run_id)?;
    let mut stats = lock(&shared.stats).clone();
    if fatal.is_some() {
        stats.fatal = fatal;
    }
    stats.abandoned_in_flight = abandoned;
    stats.elapsed_secs = started.elapsed().as_secs_f64();
    let pacing = lock(&shared.pacer).report();
    stats.rate_limit_pause_secs = pacing.paused_secs;
    stats.pacing = Pacing::from(pacing);
    stats.achieved_rate = if stats.elapsed_secs > 0.0 {
        stats.requests as f64 / stats.elapsed_secs
    } else {
        0.0
    };
    let settled = ["done", "failed", "in_doubt"]
        .iter()
        .map(|s| stats.count(s))
        .sum::<u64>()
        + abandoned;
    stats.left_pending = total.saturating_sub(settled);
    Ok(stats)
}

/// Logs in (retried like any request), then runs `workers` workers until the queue is empty or
/// the run stops. Returns the fatal error that stopped it, if one did.
async fn run_workers<T: Target>(
    shared: &Arc<Shared>,
    target: &Arc<T>,
    workers: usize,
    grace: Duration,
) -> Option<String> {
    // A login in flight is dropped at once on a stop: it changes nothing on the server.
    let login = tokio::select! {
        login = target.prepare(Io { shared }) => login,
        () = shared.stop.stopping() => Err(CallError::Stopped),
    };
    match login {
        Ok(()) => {}
        Err(CallError::Stopped) => return None,
        // An API that cannot be reached or is down (after the retries) is a night given up
        // with everything pending, like the API going down mid-run (exit 2). A refusal of the
        // credentials, or an answer no retry will change (a redirect, garbage), needs a person:
        // fatal (exit 1).
        Err(error) if unavailable(&error) => {
            shared.give_up(format!("cannot log in: {error}"));
            return None;
        }
        Err(error) => {
            shared.stop(Level::Stopping);
            return Some(format!("cannot log in: {error}"));
        }
    }
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let shared = shared.clone();
        let target = target.clone();
        running.spawn(async move { worker(&shared, &*target).await });
    }
    let mut fatal: Option<String> = None;
    let mut give_up_at: Option<Instant> = None;
    let mut aborted = false;
    loop {
        let give_up = async {
            match give_up_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { break };
                let error = match joined {
                    Ok(Ok(())) => continue,
                    Ok(Err(error)) => format!("{error:#}"),
                    Err(error) if error.is_cancelled() => continue,
                    Err(_) => "an apply worker panicked".to_owned(),
                };
                // Stop handing out work; the ops not taken stay pending for the next apply.
                shared.stop(Level::Stopping);
                fatal.get_or_insert(error);
            }
            _ = shared.stop.stopping(), if give_up_at.is_none() => {
                give_up_at = Some(Instant::now() + grace);
            }
            () = give_up, if !aborted => {
                tracing::warn!(
                    "requests still in flight {} s after the stop: left in doubt for the next run",
                    grace.as_secs()
                );
                running.abort_all();
                aborted = true;
            }
            _ = shared.stop.reached(Level::Abandon), if !aborted => {
                running.abort_all();
                aborted = true;
            }
        }
    }
    fatal
}

impl Shared {
    fn stop(&self, level: Level) {
        self.stop.request(level);
        lock(&self.queue).stop();
        self.wake.notify_waiters();
    }

    fn stopping(&self) -> bool {
        self.stop.is_stopping()
    }

    /// Stops the run because the API refuses or fails everything; the rest stays pending.
    fn give_up(&self, reason: String) {
        tracing::warn!("{reason}: stopping; the ops not sent stay pending for the next run");
        lock(&self.stats).gave_up.get_or_insert(reason);
        self.stop(Level::Stopping);
    }

    fn stat(&self, update: impl FnOnce(&mut ApplyStats)) {
        let mut stats = lock(&self.stats);
        let detail = |s: &ApplyStats| (s.retries, s.rate_limited_429, s.window_deferrals);
        let before = detail(&stats);
        update(&mut stats);
        // Every request updates the stats; the progress text changes only with these.
        let (retries, rate_limited, deferred) = detail(&stats);
        if (retries, rate_limited, deferred) != before {
            self.progress.set_detail(retries, rate_limited, deferred);
        }
    }
}

/// The API is down or unreachable, not refusing us: worth trying again another night.
fn unavailable(error: &CallError) -> bool {
    match error {
        CallError::Connect(_) | CallError::Ambiguous(_) | CallError::RateLimited { .. } => true,
        CallError::Server { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Takes users from the queue until there are none left (or the run stops).
async fn worker<T: Target>(shared: &Shared, target: &T) -> Result<()> {
    loop {
        // Registered before looking at the queue, so a wake-up between the look and the wait
        // is not lost.
        let woken = shared.wake.notified();
        let next = lock(&shared.queue).take(Instant::now());
        match next {
            Next::Finished => return Ok(()),
            Next::WaitForOthers => woken.await,
            Next::WaitUntil(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = woken => {}
                }
            }
            Next::Feed => {
                let fed = feed(shared);
                if fed.is_err() {
                    shared.stop(Level::Stopping);
                }
                shared.wake.notify_waiters();
                fed?;
            }
            Next::Run(work) => {
                let result = run_work(shared, target, work).await;
                if result.is_err() {
                    // Stopped before anyone waits on this user again.
                    shared.stop(Level::Stopping);
                }
                shared.wake.notify_waiters();
                result?;
            }
        }
    }
}

/// Pending ops read from the ledger at a time: a batch is a few hundred users, a few
/// megabytes decoded.
const FEED_BATCH: usize = 1024;

/// Reads the next batch of pending ops into the queue.
fn feed(shared: &Shared) -> Result<()> {
    let mut feeder = lock(&shared.feeder);
    let batch = lock(&shared.ledger).pending_ops_after(feeder.after, FEED_BATCH);
    let batch = match batch {
        Ok(batch) => batch,
        Err(error) => {
            lock(&shared.queue).fed(Vec::new(), false);
            return Err(error.context("cannot read the pending ops"));
        }
    };
    let works = feeder.take(batch, FEED_BATCH);
    lock(&shared.queue).fed(works, !feeder.done);
    Ok(())
}

/// What became of one op.
enum Step {
    /// Settled (done, failed, or left in doubt by a stopping run).
    Settled,
    /// Not yet: run it (and the user's later ops) again at this instant.
    Later(Instant),
}

/// Runs one user's ops in order, handing the user back to the queue when an op must wait.
async fn run_work<T: Target>(shared: &Shared, target: &T, mut work: Work) -> Result<()> {
    while let Some(mut task) = work.tasks.pop_front() {
        if shared.stopping() {
            break;
        }
        match run_task(shared, target, &work, &mut task).await {
            Ok(Step::Settled) => {}
            Ok(Step::Later(at)) => {
                work.tasks.push_front(task);
                lock(&shared.queue).defer(work, at);
                return Ok(());
            }
            Err(error) => {
                // The user is given back on every path, or the others would wait for it.
                lock(&shared.queue).release();
                return Err(error);
            }
        }
    }
    lock(&shared.queue).release();
    Ok(())
}

/// Runs one op: resolves it if its outcome is unknown, waits for the duplicate window, sends
/// it with retries, and journals the outcome.
async fn run_task<T: Target>(
    shared: &Shared,
    target: &T,
    work: &Work,
    task: &mut Task,
) -> Result<Step> {
    let op = &task.op;
    if work.recheck && !task.in_doubt && lock(&shared.ledger).already_applied(op)? {
        shared
            .journal
            .write(Entry::DoneUnchanged {
                op_id: op.id,
                message: "already applied by an earlier op whose answer was lost".to_owned(),
            })
            .await?;
        shared.stat(|s| s.already_applied += 1);
        settle(shared, op, "done", false);
        return Ok(Step::Settled);
    }
    // An op in doubt that the target can read back (an update, a deactivation) is settled by
    // looking: the account shows whether it holds.
    let mut confirmed_missing = false;
    if task.in_doubt && target.resolves_by_reading(op.kind) {
        match target.confirm(op, Io { shared }).await {
            Ok(true) => {
                let effect = Effect::acknowledged(
                    200,
                    Some(
                        "confirmed by reading the account back after the answer was lost"
                            .to_owned(),
                    ),
                );
                done(shared, op, effect, true).await?;
                return Ok(Step::Settled);
            }
            // Not applied: the earlier request changed nothing, so sending it now is not a
            // repeat the API would ignore.
            Ok(false) => confirmed_missing = true,
            Err(CallError::Stopped) => return leave_in_doubt(shared, op, None),
            Err(error @ CallError::AuthRefused { .. }) => {
                anyhow::bail!("the API refused the credentials: {error}")
            }
            // Retried as far as any request is: the outcome stays unknown until a later run
            // can look again.
            Err(error) if error.is_retriable() || error.is_ambiguous() => {
                return leave_in_doubt(shared, op, Some(&error));
            }
            Err(error) => return fail(shared, op, &error).await.map(|()| Step::Settled),
        }
    }
    if !confirmed_missing {
        let last = lock(&shared.ledger)
            .last_changes(&op.key)?
            .into_iter()
            .filter(|(kind, _)| *kind == op.kind)
            .map(|(_, at)| at)
            .max();
        if let Some(wait) = schedule::window_wait(last, now_ms(), shared.window) {
            shared.stat(|s| s.window_deferrals += 1);
            return Ok(Step::Later(Instant::now() + wait));
        }
    }
    shared
        .journal
        .write(Entry::Sending { op_id: op.id })
        .await?;
    let mut retries = Retries::new(shared.max_attempts);
    loop {
        let result = target.execute(op, Io { shared }).await;
        let error = match result {
            Ok(effect) => {
                done(shared, op, effect, task.in_doubt).await?;
                return Ok(Step::Settled);
            }
            Err(error) => error,
        };
        let unsend = Entry::Unsend {
            op_id: op.id,
            was_in_doubt: task.in_doubt,
        };
        match (retries.after(&error), &error) {
            // Nothing left: the op goes back to where it was, for the next run.
            (_, CallError::Stopped) => {
                shared.journal.write(unsend).await?;
                return Ok(Step::Settled);
            }
            // Refused before or instead of being processed (a 401 the renewed login could not
            // cure): nothing changed, so the op stays pending for a run with good credentials.
            (_, CallError::AuthRefused { .. }) => {
                shared.journal.write(unsend).await?;
                anyhow::bail!("the API refused the credentials: {error}");
            }
            (Some(Retry::Resend), _) => {}
            (Some(Retry::Backoff(wait)), _) => {
                shared.stat(|s| s.retries += 1);
                tracing::debug!(key = %op.key, kind = op.kind.as_str(), ?wait, "retrying: {error}");
                if !shared.stop.sleep_until(Instant::now() + wait).await {
                    shared.journal.write(unsend).await?;
                    return Ok(Step::Settled);
                }
            }
            (None, CallError::Ambiguous(_)) => {
                shared
                    .journal
                    .write(Entry::InDoubt {
                        op_id: op.id,
                        message: error.to_string(),
                    })
                    .await?;
                task.in_doubt = true;
                task.unanswered += 1;
                if shared.stopping() {
                    settle(shared, op, "in_doubt", false);
                    return Ok(Step::Settled);
                }
                if task.unanswered >= shared.max_attempts {
                    tracing::warn!(
                        key = %op.key,
                        kind = op.kind.as_str(),
                        "no answer to {} sends of this op: left in doubt for the next run",
                        task.unanswered
                    );
                    settle(shared, op, "in_doubt", false);
                    return Ok(Step::Settled);
                }
                // Resolved like a killed run's op: by reading back at once where the target
                // can, else by sending again once the window has passed.
                let at = if target.resolves_by_reading(op.kind) {
                    Instant::now()
                } else {
                    Instant::now() + shared.window
                };
                return Ok(Step::Later(at));
            }
            (None, _) => {
                fail(shared, op, &error).await?;
                return Ok(Step::Settled);
            }
        }
    }
}

/// An op whose outcome could not be settled in this run: it stays in doubt in the ledger
/// (journaled so when its answer was lost, or by a killed run) for the next run to resolve.
fn leave_in_doubt(shared: &Shared, op: &Op, error: Option<&CallError>) -> Result<Step> {
    if let Some(error) = error {
        tracing::warn!(
            key = %op.key,
            kind = op.kind.as_str(),
            "cannot check whether the op was applied ({error}): left in doubt for the next run"
        );
    }
    settle(shared, op, "in_doubt", false);
    Ok(Step::Settled)
}

/// Journals an acknowledged op with its effect and counts it.
async fn done(shared: &Shared, op: &Op, effect: Effect, was_in_doubt: bool) -> Result<()> {
    let adopted = effect.adopted;
    shared
        .journal
        .write(Entry::Done {
            op: Box::new(op.clone()),
            effect,
        })
        .await?;
    if was_in_doubt {
        shared.stat(|s| s.in_doubt_resolved += 1);
    }
    settle(shared, op, "done", adopted);
    Ok(())
}

async fn fail(shared: &Shared, op: &Op, error: &CallError) -> Result<()> {
    shared
        .journal
        .write(Entry::Failed {
            op_id: op.id,
            http_status: error.http_status(),
            message: error.to_string(),
        })
        .await?;
    settle(shared, op, "failed", false);
    if matches!(error, CallError::Server { .. } | CallError::Connect(_)) {
        let tripped = lock(&shared.breaker).unavailable();
        if let Some(reason) = tripped {
            shared.give_up(reason);
        }
    }
    Ok(())
}

/// Counts an op's final state.
fn settle(shared: &Shared, op: &Op, state: &str, adopted: bool) {
    shared.stat(|stats| {
        *stats
            .ops
            .entry(op.kind.as_str().to_owned())
            .or_default()
            .entry(state.to_owned())
            .or_default() += 1;
        if adopted {
            stats.adopted += 1;
        }
    });
    shared.progress.tick(state != "done");
    lock(&shared.claimed).release(&op.key);
}
