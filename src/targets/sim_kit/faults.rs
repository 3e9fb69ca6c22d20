//! The fault and limit decisions every simulator makes per request: added latency, the token
//! bucket that answers 429, an injected 5xx before processing, and dropping the connection
//! after processing.
//!
//! Owns the knobs common to all simulators ([`Knobs`]), the seeded random source that makes
//! injected faults reproducible, and the bucket. Each simulator keeps its own settings type
//! (with its own extra knobs and flags) and hands the common part over through
//! [`HasKnobs`]. Decides; never touches users, and sleeps only in [`draw`], which is the
//! latency it decided.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::lock;

/// The settings every simulator's fault machinery reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Knobs {
    /// Probability (0 to 1) of a 500 or 503 before processing.
    pub error_rate: f64,
    /// Probability (0 to 1) that a processed request's connection is dropped unanswered.
    pub drop_rate: f64,
    /// Least and most added latency per request, in milliseconds.
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// Requests per second the token bucket allows; 0 turns it off.
    pub rate_limit: f64,
    /// Bucket size (default: one second's worth of the rate, at least 1).
    pub burst: Option<u32>,
}

impl Knobs {
    /// The checks on the common knobs; a simulator adds its own after these.
    pub fn check(&self) -> Result<(), String> {
        for (name, p) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be from 0 to 1, found {p}"));
            }
        }
        if self.latency_min_ms > self.latency_max_ms && self.latency_max_ms != 0 {
            return Err("latency_min_ms must not exceed latency_max_ms".to_owned());
        }
        if !(self.rate_limit >= 0.0 && self.rate_limit.is_finite()) {
            return Err(format!(
                "rate_limit must be 0 or more, found {}",
                self.rate_limit
            ));
        }
        Ok(())
    }
}

/// A simulator's settings type, which carries the common knobs among its own.
pub trait HasKnobs: Clone {
    fn knobs(&self) -> Knobs;
}

/// The clap value parser of a probability flag.
pub fn probability(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .parse()
        .map_err(|_| format!("expected a number from 0 to 1, found {raw:?}"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("expected a number from 0 to 1, found {value}"))
    }
}

/// Applies a partial JSON object (only the fields it names) to `current`, refusing unknown
/// names, then runs `check` on the result: the admin endpoint's "change these faults".
pub fn patched<T: Serialize + DeserializeOwned>(
    current: &T,
    patch: &serde_json::Value,
    check: impl Fn(&T) -> Result<(), String>,
) -> Result<T, String> {
    let mut merged = serde_json::to_value(current).map_err(|e| e.to_string())?;
    let (Some(target), Some(changes)) = (merged.as_object_mut(), patch.as_object()) else {
        return Err("expected a JSON object of fault settings".to_owned());
    };
    for (key, value) in changes {
        if !target.contains_key(key) {
            return Err(format!("unknown fault setting {key:?}"));
        }
        target.insert(key.clone(), value.clone());
    }
    let settings: T = serde_json::from_value(merged).map_err(|e| e.to_string())?;
    check(&settings)?;
    Ok(settings)
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// The per-request decisions, drawn from one seeded source. `faults` is the simulator's own
/// settings, kept here so that one lock guards the settings and the state drawn from them.
pub struct FaultState<F> {
    pub faults: F,
    knobs: Knobs,
    rng: SmallRng,
    bucket: Option<Bucket>,
}

impl<F: HasKnobs> FaultState<F> {
    pub fn new(faults: F, seed: Option<u64>) -> FaultState<F> {
        let rng = match seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_entropy(),
        };
        let knobs = faults.knobs();
        let bucket = make_bucket(&knobs);
        FaultState {
            faults,
            knobs,
            rng,
            bucket,
        }
    }

    /// New settings; the bucket is rebuilt (full) only when its rate or size changed.
    pub fn set(&mut self, faults: F) {
        let knobs = faults.knobs();
        if knobs.rate_limit != self.knobs.rate_limit || knobs.burst != self.knobs.burst {
            self.bucket = make_bucket(&knobs);
        }
        self.knobs = knobs;
        self.faults = faults;
    }

    pub fn latency(&mut self) -> Duration {
        let (min, max) = (
            self.knobs.latency_min_ms,
            self.knobs.latency_max_ms.max(self.knobs.latency_min_ms),
        );
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.gen_range(min..=max))
    }

    /// `Some(retry_after_secs)` when the bucket is empty. The Retry-After is the bucket's own
    /// wait rounded up to whole seconds, so a client that honours it finds a token.
    pub fn rate_limited(&mut self) -> Option<u64> {
        let bucket = self.bucket.as_ref()?;
        match bucket.check() {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Some(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }

    /// `Some(status)` when this request is to fail before processing.
    pub fn injected_error(&mut self) -> Option<u16> {
        (self.knobs.error_rate > 0.0 && self.rng.gen_bool(self.knobs.error_rate))
            .then(|| if self.rng.gen_bool(0.5) { 500 } else { 503 })
    }

    /// Whether this request's connection is to be dropped after processing.
    pub fn drop_after_processing(&mut self) -> bool {
        self.knobs.drop_rate > 0.0 && self.rng.gen_bool(self.knobs.drop_rate)
    }
}

/// What is to become of one request, decided before it is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Refused by the bucket; the Retry-After in whole seconds.
    pub limited: Option<u64>,
    /// Fails with this 5xx before processing.
    pub injected: Option<u16>,
    /// Processed, then the connection is dropped without an answer (if the outcome allows).
    pub drop: bool,
}

/// Sleeps the drawn latency (without holding the lock), then draws the rest. The order of
/// draws is fixed, so a seed repeats the same faults.
pub async fn draw<F: HasKnobs>(state: &Mutex<FaultState<F>>) -> Verdict {
    let latency = lock(state).latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut faults = lock(state);
    let limited = faults.rate_limited();
    let injected = limited.is_none().then(|| faults.injected_error()).flatten();
    Verdict {
        limited,
        injected,
        drop: faults.drop_after_processing(),
    }
}

fn make_bucket(knobs: &Knobs) -> Option<Bucket> {
    if knobs.rate_limit <= 0.0 {
        return None;
    }
    let burst = knobs.burst.unwrap_or(knobs.rate_limit.ceil() as u32).max(1);
    let period = Duration::from_secs_f64(1.0 / knobs.rate_limit);
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
    Some(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl HasKnobs for Knobs {
        fn knobs(&self) -> Knobs {
            self.clone()
        }
    }

    #[test]
    fn seeded_faults_repeat() {
        let knobs = Knobs {
            error_rate: 0.3,
            drop_rate: 0.3,
            ..Knobs::default()
        };
        let draw = |seed| {
            let mut state = FaultState::new(knobs.clone(), Some(seed));
            (0..50)
                .map(|_| (state.injected_error(), state.drop_after_processing()))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert!(draw(7).iter().any(|(e, _)| e.is_some()));
    }

    #[test]
    fn bucket_refuses_past_its_burst_with_a_whole_second_retry_after() {
        let mut state = FaultState::new(
            Knobs {
                rate_limit: 2.0,
                burst: Some(2),
                ..Knobs::default()
            },
            Some(1),
        );
        assert_eq!(state.rate_limited(), None);
        assert_eq!(state.rate_limited(), None);
        assert_eq!(state.rate_limited(), Some(1));
    }

    #[test]
    fn a_new_rate_refills_the_bucket_and_other_changes_do_not() {
        let limited = Knobs {
            rate_limit: 0.01,
            burst: Some(1),
            ..Knobs::default()
        };
        let mut state = FaultState::new(limited.clone(), Some(1));
        assert_eq!(state.rate_limited(), None);
        assert!(state.rate_limited().is_some());
        state.set(Knobs {
            error_rate: 0.5,
            ..limited.clone()
        });
        assert!(state.rate_limited().is_some(), "same bucket, still empty");
        state.set(Knobs {
            rate_limit: 0.02,
            ..limited
        });
        assert_eq!(state.rate_limited(), None, "a new bucket starts full");
    }

    #[test]
    fn common_checks_refuse_out_of_range_knobs() {
        assert!(Knobs::default().check().is_ok());
        for bad in [
            Knobs {
                drop_rate: 1.5,
                ..Knobs::default()
            },
            Knobs {
                latency_min_ms: 5,
                latency_max_ms: 2,
                ..Knobs::default()
            },
            Knobs {
                rate_limit: f64::NAN,
                ..Knobs::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
