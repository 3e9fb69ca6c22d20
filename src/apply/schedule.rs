//! Scheduling decisions of apply, free of I/O: which user's ops go next, how long a change
//! must wait for the duplicate window, how long to back off before a retry. (How fast requests
//! leave, and how long a 429 pauses everyone, is [`super::pace`].)
//!
//! Owns the work queue (users ready now, users deferred until a time) and nothing else: it
//! never sends, sleeps or touches the ledger.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ledger::Op;

/// How long to wait before sending a change through an endpoint that last changed this user
/// at `last_change_ms` (any run), so that the API does not take it for a repeat and ignore it.
/// `None`: send now. A small margin covers the clocks of two machines.
/// Never longer than the window and its margin: a change recorded in the future (another
/// machine's clock, a ledger edited by hand) must not hold a user back for years.
pub fn window_wait(last_change_ms: Option<i64>, now_ms: i64, window: Duration) -> Option<Duration> {
    const MARGIN_MS: i64 = 250;
    let last = last_change_ms?;
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let longest = window_ms.saturating_add(MARGIN_MS);
    let clear_at = last.saturating_add(longest);
    let wait = clear_at.saturating_sub(now_ms).min(longest);
    (wait > 0).then(|| Duration::from_millis(wait.unsigned_abs()))
}

/// 429s in a row, across all workers, after which the run stops: each pauses everyone for up
/// to [`super::pace::MAX_PAUSE`], so this bounds a night the API spends refusing us to hours, not days.
pub const MAX_429_IN_A_ROW: u32 = 100;
/// Of the last [`UNANSWERED_WINDOW`] requests, how many may have lost their answer (a timeout,
/// a connection dropped after sending) before the run stops: a server that takes requests and
/// never answers (or answers one in a few) would otherwise hold every op for its retries and
/// timeouts, hours on a big night. Counted over a window, not in a row, so that an answer now
/// and then does not start the count again.
pub const MAX_UNANSWERED_IN_A_ROW: u32 = 10;
/// The requests the count of lost answers looks back over.
pub const UNANSWERED_WINDOW: usize = 20;
/// Ops in a row that failed because the API was unavailable (5xx, no connection, every retry
/// used) after which the run stops: the rest would fail the same way, each after its retries.
pub const MAX_UNAVAILABLE_IN_A_ROW: u32 = 10;

/// Gives up on a run whose API keeps refusing or failing everything, so that a night with
/// the API down ends in minutes with the ops left pending, not after every op has used up its
/// retries. Any answer that is neither a 429 nor a failure starts the counts again.
#[derive(Debug, Default)]
pub struct Breaker {
    rate_limited: u32,
    unavailable: u32,
    /// Whether each of the last [`UNANSWERED_WINDOW`] requests lost its answer.
    recent: VecDeque<bool>,
    tripped_unanswered: bool,
}

impl Breaker {
    /// A request was answered with something other than a 429, a 5xx or no connection.
    pub fn answered(&mut self) {
        self.rate_limited = 0;
        self.unavailable = 0;
        self.remember(false);
    }

    fn remember(&mut self, unanswered: bool) {
        if self.recent.len() == UNANSWERED_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(unanswered);
    }

    /// A request's answer was lost. Returns why the run must stop, when it must.
    pub fn unanswered(&mut self) -> Option<String> {
        self.remember(true);
        let lost = self.recent.iter().filter(|&&u| u).count();
        let trip = lost >= MAX_UNANSWERED_IN_A_ROW as usize && !self.tripped_unanswered;
        self.tripped_unanswered |= trip;
        trip.then(|| {
            format!(
                "{lost} of the last {} requests got no answer (timeouts or connections dropped)",
                self.recent.len()
            )
        })
    }

    /// A request was answered 429. Returns why the run must stop, when it must.
    pub fn rate_limited(&mut self) -> Option<String> {
        self.rate_limited = self.rate_limited.saturating_add(1);
        (self.rate_limited == MAX_429_IN_A_ROW)
            .then(|| format!("the API answered 429 to {MAX_429_IN_A_ROW} requests in a row"))
    }

    /// An op failed because the API was unavailable. Returns why the run must stop, when it
    /// must.
    pub fn unavailable(&mut self) -> Option<String> {
        self.unavailable = self.unavailable.saturating_add(1);
        (self.unavailable == MAX_UNAVAILABLE_IN_A_ROW).then(|| {
            format!(
                "{MAX_UNAVAILABLE_IN_A_ROW} ops in a row failed because the API was unavailable (5xx or no connection after every retry)"
            )
        })
    }
}

/// One op to run, and whether its earlier outcome is unknown (it must be resolved, not
/// blindly sent again).
#[derive(Debug, Clone)]
pub struct Task {
    pub op: Op,
    pub in_doubt: bool,
    /// Sends of this op in this run whose answer was lost: bounded, so that an answer that is
    /// always lost ends in doubt instead of being sent again forever.
    pub unanswered: u32,
}

/// One user's remaining ops, in order. `recheck`: an op of this user was in doubt, so later
/// ops are checked against the ledger before they are sent (the doubtful one may have done
/// their work already).
#[derive(Debug)]
pub struct Work {
    pub key: String,
    pub tasks: VecDeque<Task>,
    pub recheck: bool,
}

/// What a worker should do next.
#[derive(Debug)]
pub enum Next {
    Run(Work),
    /// Read the next batch of users from the ledger and hand it to [`Queue::fed`] (one worker
    /// at a time is asked).
    Feed,
    /// Nothing is ready; the earliest deferred user is ready at this time.
    WaitUntil(Instant),
    /// Nothing is ready or deferred, but other workers hold users that may come back.
    WaitForOthers,
    /// Everything is done.
    Finished,
}

/// Users held ready or deferred at most: the queue is fed from the ledger in batches while
/// it holds fewer, so apply's memory does not grow with the plan. Deferred users count too:
/// a night where every change waits for the duplicate window waits with this many at a time.
pub const MOST_HELD: usize = 8192;
/// A batch is read when fewer users than this are ready.
pub const FEED_BELOW: usize = 512;

/// Users ready now, in plan order, and users deferred until a time; fed from the ledger
/// (see [`Feeder`]) while it holds fewer than [`MOST_HELD`].
#[derive(Debug, Default)]
pub struct Queue {
    ready: VecDeque<Work>,
    deferred: Vec<(Instant, Work)>,
    taken: usize,
    /// Stopped: nothing more is handed out, and nobody waits for users still held (a worker
    /// that failed may never give its user back).
    stopped: bool,
    /// More users may come from the ledger.
    more: bool,
    /// A worker is reading the next batch.
    feeding: bool,
}

impl Queue {
    /// Groups ops by user: in-doubt ops first (oldest first), then the user's pending ops in
    /// plan order. Users appear in the order of their first op.
    pub fn new(in_doubt: Vec<Op>, pending: Vec<Op>) -> Queue {
        let mut order: Vec<Work> = Vec::new();
        let mut position = std::collections::HashMap::new();
        let tasks = in_doubt
            .into_iter()
            .map(|op| (op, true))
            .chain(pending.into_iter().map(|op| (op, false)));
        for (op, in_doubt) in tasks {
            let index = *position.entry(op.key.clone()).or_insert_with(|| {
                order.push(Work {
                    key: op.key.clone(),
                    tasks: VecDeque::new(),
                    recheck: false,
                });
                order.len() - 1
            });
            let work = &mut order[index];
            work.recheck |= in_doubt;
            work.tasks.push_back(Task {
                op,
                in_doubt,
                unanswered: 0,
            });
        }
        Queue {
            ready: order.into(),
            ..Queue::default()
        }
    }

    /// The queue will also be fed from the ledger, until [`Queue::fed`] says there is no more.
    pub fn streaming(mut self) -> Queue {
        self.more = true;
        self
    }

    /// A batch read from the ledger (see [`Next::Feed`]); `more`: whether more may follow.
    pub fn fed(&mut self, works: Vec<Work>, more: bool) {
        self.feeding = false;
        self.more = more;
        if !self.stopped {
            self.ready.extend(works);
        }
    }

    /// Ops not yet finished (ready, deferred or held by a worker is not counted here). Apply
    /// counts the ledger's instead (the queue holds one batch at a time).
    #[cfg(test)]
    pub fn waiting_ops(&self) -> usize {
        self.ready
            .iter()
            .chain(self.deferred.iter().map(|(_, w)| w))
            .map(|w| w.tasks.len())
            .sum()
    }

    /// The next user for a worker. Deferred users whose time has come go first: they have
    /// waited longest.
    pub fn take(&mut self, now: Instant) -> Next {
        if self.stopped {
            return Next::Finished;
        }
        if self.more
            && !self.feeding
            && self.ready.len() < FEED_BELOW
            && self.ready.len() + self.deferred.len() < MOST_HELD
        {
            self.feeding = true;
            return Next::Feed;
        }
        if let Some(index) = self
            .deferred
            .iter()
            .enumerate()
            .filter(|(_, (at, _))| *at <= now)
            .min_by_key(|(_, (at, _))| *at)
            .map(|(i, _)| i)
        {
            self.taken += 1;
            return Next::Run(self.deferred.swap_remove(index).1);
        }
        if let Some(work) = self.ready.pop_front() {
            self.taken += 1;
            return Next::Run(work);
        }
        match self.deferred.iter().map(|(at, _)| *at).min() {
            Some(at) => Next::WaitUntil(at),
            None if self.taken > 0 || self.feeding || self.more => Next::WaitForOthers,
            None => Next::Finished,
        }
    }

    /// A worker is done with a user.
    pub fn release(&mut self) {
        self.taken = self.taken.saturating_sub(1);
    }

    /// A worker hands a user back to run its remaining ops at `at`.
    pub fn defer(&mut self, work: Work, at: Instant) {
        self.release();
        if !work.tasks.is_empty() {
            self.deferred.push((at, work));
        }
    }

    /// Stops handing out work (Ctrl-C or a fatal error): whatever waits stays pending in the
    /// ledger for the next run.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.ready.clear();
        self.deferred.clear();
    }
}

/// Turns batches of pending ops, read in plan order, into users: a user's ops are consecutive
/// in a plan, but a batch may end in the middle of them, so the last user of a batch is
/// carried into the next one. Users with an op in doubt are skipped: they were queued whole
/// at the start, their pending ops behind their op in doubt.
#[derive(Debug, Default)]
pub struct Feeder {
    /// The id of the last op read.
    pub after: i64,
    carry: Option<Work>,
    skip: std::collections::HashSet<String>,
    /// Everything has been read.
    pub done: bool,
}

impl Feeder {
    pub fn new(skip: std::collections::HashSet<String>) -> Feeder {
        Feeder {
            skip,
            ..Feeder::default()
        }
    }

    /// Takes a batch read with `limit`: a shorter one is the last.
    pub fn take(&mut self, batch: Vec<Op>, limit: usize) -> Vec<Work> {
        self.done = batch.len() < limit;
        let mut works = Vec::new();
        for op in batch {
            self.after = op.id;
            if self.skip.contains(&op.key) {
                continue;
            }
            if self.carry.as_ref().is_some_and(|w| w.key != op.key) {
                works.extend(self.carry.take());
            }
            let work = self.carry.get_or_insert_with(|| Work {
                key: op.key.clone(),
                tasks: VecDeque::new(),
                recheck: false,
            });
            work.tasks.push_back(Task {
                op,
                in_doubt: false,
                unanswered: 0,
            });
        }
        if self.done {
            works.extend(self.carry.take());
        }
        works
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{OpKind, OpPayload};

    fn op(id: i64, key: &str, kind: OpKind) -> Op {
        Op {
            id,
            key: key.into(),
            seq: 0,
            kind,
            payload: OpPayload {
                remote_id: None,
                profile: None,
                items: vec![],
                profile_hash: 0,
                row: None,
                completions: Vec::new(),
            },
        }
    }

    #[test]
    fn a_change_waits_until_the_window_after_the_last_one_has_passed() {
        let window = Duration::from_secs(30);
        assert_eq!(window_wait(None, 1_000_000, window), None);
        assert_eq!(
            window_wait(Some(1_000_000 - 31_000), 1_000_000, window),
            None
        );
        let wait = window_wait(Some(1_000_000 - 5_000), 1_000_000, window).unwrap();
        assert_eq!(wait, Duration::from_millis(25_250));
        // A change recorded "in the future" (another machine's clock) waits too, but never
        // longer than the window and its margin, whatever the ledger says.
        assert_eq!(
            window_wait(Some(1_002_000), 1_000_000, window),
            Some(Duration::from_millis(30_250))
        );
        assert_eq!(
            window_wait(Some(i64::MAX), 1_000_000, window),
            Some(Duration::from_millis(30_250))
        );
        assert_eq!(window_wait(Some(i64::MIN), 1_000_000, window), None);
        assert_eq!(
            window_wait(Some(0), i64::MAX, Duration::from_secs(u64::MAX)),
            None
        );
        assert!(window_wait(Some(1_000_000), 1_000_000, Duration::from_secs(u64::MAX)).is_some());
    }

    #[test]
    fn the_breaker_trips_once_on_a_run_of_refusals_and_an_answer_resets_it() {
        let mut breaker = Breaker::default();
        for _ in 1..MAX_429_IN_A_ROW {
            assert_eq!(breaker.rate_limited(), None);
        }
        breaker.answered();
        for _ in 1..MAX_429_IN_A_ROW {
            assert_eq!(breaker.rate_limited(), None);
        }
        assert!(breaker.rate_limited().unwrap().contains("429"));
        assert_eq!(breaker.rate_limited(), None, "trips once");
        for _ in 1..MAX_UNAVAILABLE_IN_A_ROW {
            assert_eq!(breaker.unavailable(), None);
        }
        assert!(breaker.unavailable().unwrap().contains("unavailable"));
        for _ in 1..MAX_UNANSWERED_IN_A_ROW {
            assert_eq!(breaker.unanswered(), None);
        }
        assert!(breaker.unanswered().unwrap().contains("no answer"));
        // An answer now and then does not start the count again.
        let mut breaker = Breaker::default();
        let mut tripped = None;
        for request in 0..40 {
            if request % 9 == 8 {
                breaker.answered();
            } else if let Some(why) = breaker.unanswered() {
                tripped = Some(request);
                assert!(why.contains("of the last"), "{why}");
                break;
            }
        }
        assert!(tripped.is_some_and(|r| r < 14), "{tripped:?}");
        // Now and then a lost answer among many answered ones never trips it.
        let mut breaker = Breaker::default();
        for request in 0..1000 {
            if request % 3 == 0 {
                assert_eq!(breaker.unanswered(), None);
            } else {
                breaker.answered();
            }
        }
    }

    #[test]
    fn a_stopped_queue_is_finished_even_while_a_worker_holds_a_user() {
        let mut queue = Queue::new(
            vec![],
            vec![op(1, "A", OpKind::Enroll), op(2, "B", OpKind::Enroll)],
        );
        let now = Instant::now();
        assert!(matches!(queue.take(now), Next::Run(_)));
        // The worker holding A failed and never releases it.
        queue.stop();
        assert!(matches!(queue.take(now), Next::Finished));
        assert_eq!(queue.waiting_ops(), 0);
    }

    #[test]
    fn ops_in_doubt_go_first_for_their_user_and_mark_the_user_for_rechecks() {
        let queue_ops = vec![
            op(10, "A", OpKind::Update),
            op(11, "B", OpKind::Create),
            op(12, "A", OpKind::Enroll),
        ];
        let mut queue = Queue::new(vec![op(3, "A", OpKind::Update)], queue_ops);
        let now = Instant::now();
        let Next::Run(first) = queue.take(now) else {
            panic!("A is ready")
        };
        assert_eq!(first.key, "A");
        assert!(first.recheck);
        let ids: Vec<_> = first.tasks.iter().map(|t| (t.op.id, t.in_doubt)).collect();
        assert_eq!(ids, [(3, true), (10, false), (12, false)]);
        let Next::Run(second) = queue.take(now) else {
            panic!("B is ready")
        };
        assert!(!second.recheck);
        assert!(matches!(queue.take(now), Next::WaitForOthers));
        queue.release();
        queue.release();
        assert!(matches!(queue.take(now), Next::Finished));
    }

    #[test]
    fn the_feeder_keeps_a_user_s_ops_together_across_batches_and_skips_users_in_doubt() {
        let mut feeder = Feeder::new(["D".to_owned()].into());
        let first = feeder.take(
            vec![
                op(1, "A", OpKind::Create),
                op(2, "A", OpKind::Enroll),
                op(3, "D", OpKind::Enroll),
                op(4, "B", OpKind::Create),
            ],
            4,
        );
        // B may go on in the next batch: carried.
        assert_eq!(
            first.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(),
            ["A"]
        );
        assert_eq!(first[0].tasks.len(), 2);
        assert!(!feeder.done);
        assert_eq!(feeder.after, 4);
        let second = feeder.take(
            vec![op(5, "B", OpKind::Enroll), op(6, "C", OpKind::Create)],
            4,
        );
        assert!(feeder.done);
        let keys: Vec<_> = second
            .iter()
            .map(|w| {
                (
                    w.key.as_str(),
                    w.tasks.iter().map(|t| t.op.id).collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(keys, [("B", vec![4, 5]), ("C", vec![6])]);
    }

    #[test]
    fn a_streaming_queue_asks_one_worker_to_feed_it_and_finishes_only_when_fed_out() {
        let mut queue = Queue::new(vec![], vec![]).streaming();
        let now = Instant::now();
        assert!(matches!(queue.take(now), Next::Feed));
        // Another worker waits for the batch instead of finishing.
        assert!(matches!(queue.take(now), Next::WaitForOthers));
        let mut feeder = Feeder::default();
        let works = feeder.take(vec![op(1, "A", OpKind::Create)], 2);
        queue.fed(works, !feeder.done);
        assert!(matches!(queue.take(now), Next::Run(w) if w.key == "A"));
        assert!(matches!(queue.take(now), Next::WaitForOthers));
        queue.release();
        assert!(matches!(queue.take(now), Next::Finished));
        // A full queue is not fed: deferred users count.
        let mut queue = Queue::new(vec![], vec![]).streaming();
        let later = now + Duration::from_secs(60);
        for i in 0..MOST_HELD {
            queue.deferred.push((
                later,
                Work {
                    key: format!("K{i}"),
                    tasks: VecDeque::new(),
                    recheck: false,
                },
            ));
        }
        assert!(matches!(queue.take(now), Next::WaitUntil(at) if at == later));
    }

    #[test]
    fn a_deferred_user_comes_back_when_its_time_has_come_and_not_before() {
        let mut queue = Queue::new(vec![], vec![op(1, "A", OpKind::Enroll)]);
        let now = Instant::now();
        let Next::Run(work) = queue.take(now) else {
            panic!()
        };
        let later = now + Duration::from_secs(3);
        queue.defer(work, later);
        assert_eq!(queue.waiting_ops(), 1);
        assert!(matches!(queue.take(now), Next::WaitUntil(at) if at == later));
        assert!(matches!(queue.take(later), Next::Run(w) if w.key == "A"));
        queue.release();
        assert!(matches!(queue.take(later), Next::Finished));
    }
}
