//! The retry policy: which failed request is sent again, when, and how many times. One
//! policy for every request of every target, and the only place it is decided.
//!
//! 5xx and connection errors are sent again after an exponential backoff with full jitter, up
//! to `max_attempts` tries; a 429 is sent again at once (sending has taken its pause) and does
//! not use up a try, up to [`MAX_RATE_LIMITED`]. Nothing else is: a final refusal never, and
//! an answer lost after sending never blindly (the engine resolves that op first). It must
//! never retry without bound: every path ends in a number of tries.

use std::time::Duration;

use rand::Rng;

use crate::targets::CallError;

/// Backoff of retries: the first waits up to this, doubling per attempt...
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// ...up to this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// 429s one op may meet before it is recorded failed: the API is refusing us, not busy.
pub const MAX_RATE_LIMITED: u32 = 50;

/// Exponential backoff with full jitter: a random wait in `[0, min(cap, base·2^(attempt-1))]`.
/// `unit` is a random number in `[0, 1)`, passed in so that the function stays pure.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1 << exponent).min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Send again now.
    Resend,
    /// Send again after this wait.
    Backoff(Duration),
}

/// The tries of one request (or one op) so far.
#[derive(Debug)]
pub struct Retries {
    max_attempts: u32,
    failed_attempts: u32,
    rate_limited: u32,
}

impl Retries {
    /// `max_attempts`: tries of a request that fails for the server's or the network's reason
    /// (`[api] max_attempts`).
    pub fn new(max_attempts: u32) -> Retries {
        Retries {
            max_attempts,
            failed_attempts: 0,
            rate_limited: 0,
        }
    }

    /// Whether, and when, to send again after `error`; `None` ends the tries.
    pub fn after(&mut self, error: &CallError) -> Option<Retry> {
        self.after_with(error, rand::thread_rng().r#gen::<f64>())
    }

    /// [`Retries::after`] with the jitter's random number passed in.
    pub fn after_with(&mut self, error: &CallError, unit: f64) -> Option<Retry> {
        match error {
            CallError::RateLimited { .. } if self.rate_limited < MAX_RATE_LIMITED => {
                self.rate_limited += 1;
                Some(Retry::Resend)
            }
            CallError::Server { .. } | CallError::Connect(_) => {
                self.failed_attempts += 1;
                (self.failed_attempts < self.max_attempts).then(|| {
                    Retry::Backoff(backoff(
                        self.failed_attempts,
                        BACKOFF_BASE,
                        BACKOFF_CAP,
                        unit,
                    ))
                })
            }
            _ => None,
        }
    }
}

/// Tries `call` under the policy, waiting with `sleep` (which returns false when the run is
/// stopping: the tries end with [`CallError::Stopped`]). `on_backoff` counts each retry.
pub async fn retrying<T, F, Fut, S, SFut>(
    max_attempts: u32,
    mut call: F,
    mut sleep: S,
    mut on_backoff: impl FnMut(),
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
    S: FnMut(Duration) -> SFut,
    SFut: Future<Output = bool>,
{
    let mut retries = Retries::new(max_attempts);
    loop {
        let error = match call().await {
            Err(error) => error,
            done => return done,
        };
        match retries.after(&error) {
            Some(Retry::Resend) => {}
            Some(Retry::Backoff(wait)) => {
                on_backoff();
                if !sleep(wait).await {
                    return Err(CallError::Stopped);
                }
            }
            None => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn server() -> CallError {
        CallError::Server {
            status: 503,
            message: String::new(),
        }
    }

    #[test]
    fn backoff_grows_exponentially_within_its_cap_and_jitters_from_zero() {
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(backoff(1, base, cap, 0.999_999).as_millis(), 499);
        assert_eq!(backoff(3, base, cap, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(20, base, cap, 1.0), cap);
        assert_eq!(backoff(4, base, cap, 0.0), Duration::ZERO);
        assert_eq!(backoff(u32::MAX, base, cap, 0.5), cap / 2);
    }

    #[test]
    fn only_what_changed_nothing_is_tried_again_and_never_without_bound() {
        let mut retries = Retries::new(3);
        assert!(matches!(
            retries.after_with(&server(), 1.0),
            Some(Retry::Backoff(_))
        ));
        assert!(matches!(
            retries.after_with(&CallError::Connect("refused".into()), 1.0),
            Some(Retry::Backoff(_))
        ));
        assert_eq!(retries.after_with(&server(), 1.0), None, "third failed try");
        // 429s do not use up tries, but have their own bound.
        let mut retries = Retries::new(3);
        for _ in 0..MAX_RATE_LIMITED {
            let limited = CallError::RateLimited { retry_after: None };
            assert_eq!(retries.after_with(&limited, 0.5), Some(Retry::Resend));
        }
        let limited = CallError::RateLimited { retry_after: None };
        assert_eq!(retries.after_with(&limited, 0.5), None);
        for final_error in [
            CallError::Rejected {
                status: 400,
                code: "BAD".into(),
                message: String::new(),
                technical: String::new(),
            },
            CallError::Ambiguous("reset after sending".into()),
            CallError::AuthRefused {
                status: 401,
                error: "invalid_client".into(),
                description: String::new(),
            },
            CallError::NotSent("bad id".into()),
            CallError::Stopped,
        ] {
            assert_eq!(Retries::new(6).after_with(&final_error, 0.5), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_backs_off_in_time_and_gives_up_after_its_tries() {
        let started = tokio::time::Instant::now();
        let tries = Cell::new(0);
        let backoffs = Cell::new(0);
        let result: Result<(), CallError> = retrying(
            4,
            || {
                tries.set(tries.get() + 1);
                async { Err(server()) }
            },
            |wait| async move {
                tokio::time::sleep(wait).await;
                true
            },
            || backoffs.set(backoffs.get() + 1),
        )
        .await;
        assert!(matches!(result, Err(CallError::Server { .. })));
        assert_eq!((tries.get(), backoffs.get()), (4, 3));
        // Three waits of at most 0.5, 1 and 2 s.
        assert!(started.elapsed() <= Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_tries_during_a_backoff() {
        let tries = Cell::new(0);
        let result: Result<(), CallError> = retrying(
            6,
            || {
                tries.set(tries.get() + 1);
                async { Err(CallError::Connect("refused".into())) }
            },
            |_| async { false },
            || {},
        )
        .await;
        assert!(matches!(result, Err(CallError::Stopped)));
        assert_eq!(tries.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_after_failures_is_returned() {
        let tries = Cell::new(0);
        let result = retrying(
            6,
            || {
                tries.set(tries.get() + 1);
                let n = tries.get();
                async move { if n < 3 { Err(server()) } else { Ok(n) } }
            },
            |wait| async move {
                tokio::time::sleep(wait).await;
                true
            },
            || {},
        )
        .await;
        assert_eq!(result.unwrap(), 3);
    }
}
