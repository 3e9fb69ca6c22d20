//! How an apply is asked to stop: by a signal (SIGINT, SIGTERM, SIGHUP: Ctrl-C, systemd,
//! `timeout` and Kubernetes all use one of them) or by a fatal error in one worker.
//!
//! Owns the stop level and the signal listener. A first request stops handing out ops and
//! wakes every wait (a 429 pause, a backoff, the rate limiter, the duplicate window), so that
//! only requests already in flight go on; a second signal abandons those too. It never exits
//! the process itself: apply decides what becomes of the ops, so the ledger stays consistent.

use tokio::sync::watch;

/// How far a stop has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Running,
    /// Take no new op; let the requests in flight finish and journal them.
    Stopping,
    /// Do not wait for the requests in flight either.
    Abandon,
}

/// The stop level, shared by every worker; waits select on [`Stop::stopping`].
pub struct Stop {
    level: watch::Sender<Level>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            level: watch::Sender::new(Level::Running),
        }
    }
}

impl Stop {
    /// Raises the level (never lowers it). Returns whether it changed.
    pub fn request(&self, level: Level) -> bool {
        self.level.send_if_modified(|current| {
            let raise = level > *current;
            if raise {
                *current = level;
            }
            raise
        })
    }

    pub fn level(&self) -> Level {
        *self.level.borrow()
    }

    pub fn is_stopping(&self) -> bool {
        self.level() >= Level::Stopping
    }

    /// Completes once the level is at least `level`.
    pub async fn reached(&self, level: Level) {
        let mut watching = self.level.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail while we are borrowed.
        let _ = watching.wait_for(|current| *current >= level).await;
    }

    /// Completes once a stop has been requested.
    pub async fn stopping(&self) {
        self.reached(Level::Stopping).await;
    }

    /// Sleeps until `at`, or less if a stop is requested. Returns false when it was cut short.
    pub async fn sleep_until(&self, at: std::time::Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => !self.is_stopping(),
            _ = self.stopping() => false,
        }
    }
}

/// The signals that stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    HangUp,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::HangUp => "SIGHUP",
        }
    }
}

/// Listens for the stop signals from now on (their default action, which kills the process
/// with ops left `sending`, no longer applies). Each signal received is passed to `on_signal`
/// with how many have been received so far.
pub fn listen(
    mut on_signal: impl FnMut(Signal, u32) + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hang_up = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            let mut received = 0u32;
            loop {
                let which = tokio::select! {
                    Some(()) = interrupt.recv() => Signal::Interrupt,
                    Some(()) = terminate.recv() => Signal::Terminate,
                    Some(()) = hang_up.recv() => Signal::HangUp,
                    else => return,
                };
                received = received.saturating_add(1);
                on_signal(which, received);
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            let mut received = 0u32;
            while tokio::signal::ctrl_c().await.is_ok() {
                received = received.saturating_add(1);
                on_signal(Signal::Interrupt, received);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test(start_paused = true)]
    async fn a_stop_cuts_a_long_sleep_short_and_levels_only_rise() {
        let stop = std::sync::Arc::new(Stop::default());
        let sleeper = {
            let stop = stop.clone();
            tokio::spawn(async move {
                stop.sleep_until(Instant::now() + Duration::from_secs(300))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(stop.request(Level::Stopping));
        assert!(!sleeper.await.unwrap(), "the sleep was cut short");
        assert!(stop.request(Level::Abandon));
        assert!(!stop.request(Level::Stopping), "a level never falls");
        assert_eq!(stop.level(), Level::Abandon);
        // Once stopping, a sleep returns at once.
        assert!(
            !stop
                .sleep_until(Instant::now() + Duration::from_secs(300))
                .await
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_that_ends_by_itself_says_so() {
        let stop = Stop::default();
        assert!(
            stop.sleep_until(Instant::now() + Duration::from_secs(5))
                .await
        );
    }
}
