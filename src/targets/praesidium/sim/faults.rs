//! The simulator's fault and limit settings, and the decisions made from them per request.
//!
//! Owns the knobs (set by command-line flags and changed at run time through the admin
//! endpoint), the seeded random source that makes injected faults reproducible, and the
//! token bucket that answers 429. Decides; never sleeps or touches users itself.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Everything that can be made to go wrong, or slow, in the simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct Faults {
    /// Probability (0 to 1) that a request is answered 500 or 503 before it is processed.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub error_rate: f64,
    /// Probability (0 to 1) that a request is processed and then its connection is dropped
    /// without an answer: the ambiguous case a client cannot tell from a failure.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    pub drop_rate: f64,
    /// Least added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_min_ms: u64,
    /// Most added latency per request, in milliseconds (uniform between min and max).
    #[arg(long, default_value_t = 0)]
    pub latency_max_ms: u64,
    /// Lifetime of issued access tokens, in seconds (the API's is 900).
    #[arg(long, default_value_t = 900.0)]
    pub token_lifetime_secs: f64,
    /// Length of the duplicate window, in seconds: an identical change request processed this
    /// recently is answered as if successful and changes nothing (the API's is 30).
    #[arg(long, default_value_t = 30.0)]
    pub duplicate_window_secs: f64,
    /// Requests per second the token bucket allows before answering 429; 0 turns it off.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit: f64,
    /// Bucket size for the rate limit: how many requests may arrive at once (default: one
    /// second's worth of the rate, at least 1).
    #[arg(long)]
    pub burst: Option<u32>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_rate: 0.0,
            drop_rate: 0.0,
            latency_min_ms: 0,
            latency_max_ms: 0,
            token_lifetime_secs: 900.0,
            duplicate_window_secs: 30.0,
            rate_limit: 0.0,
            burst: None,
        }
    }
}

fn probability(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .parse()
        .map_err(|_| format!("expected a number from 0 to 1, found {raw:?}"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("expected a number from 0 to 1, found {value}"))
    }
}

impl Faults {
    /// Applies a partial JSON object (only the fields it names) and checks the result.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Faults, String> {
        let mut merged = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let (Some(target), Some(changes)) = (merged.as_object_mut(), patch.as_object()) else {
            return Err("expected a JSON object of fault settings".to_owned());
        };
        for (key, value) in changes {
            if !target.contains_key(key) {
                return Err(format!("unknown fault setting {key:?}"));
            }
            target.insert(key.clone(), value.clone());
        }
        let faults: Faults = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        faults.check()?;
        Ok(faults)
    }

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
        if self.token_lifetime_secs <= 0.0 || self.duplicate_window_secs < 0.0 {
            return Err(
                "token_lifetime_secs must be positive and duplicate_window_secs not negative"
                    .to_owned(),
            );
        }
        Ok(())
    }

    pub fn duplicate_window(&self) -> Duration {
        Duration::from_secs_f64(self.duplicate_window_secs)
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// The per-request decisions, drawn from one seeded source.
pub struct FaultState {
    pub faults: Faults,
    rng: SmallRng,
    bucket: Option<Bucket>,
}

impl FaultState {
    pub fn new(faults: Faults, seed: Option<u64>) -> FaultState {
        let rng = match seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_entropy(),
        };
        let bucket = make_bucket(&faults);
        FaultState {
            faults,
            rng,
            bucket,
        }
    }

    pub fn set(&mut self, faults: Faults) {
        if faults.rate_limit != self.faults.rate_limit || faults.burst != self.faults.burst {
            self.bucket = make_bucket(&faults);
        }
        self.faults = faults;
    }

    pub fn latency(&mut self) -> Duration {
        let (min, max) = (
            self.faults.latency_min_ms,
            self.faults.latency_max_ms.max(self.faults.latency_min_ms),
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
        (self.faults.error_rate > 0.0 && self.rng.gen_bool(self.faults.error_rate))
            .then(|| if self.rng.gen_bool(0.5) { 500 } else { 503 })
    }

    /// Whether this request's connection is to be dropped after processing.
    pub fn drop_after_processing(&mut self) -> bool {
        self.faults.drop_rate > 0.0 && self.rng.gen_bool(self.faults.drop_rate)
    }
}

fn make_bucket(faults: &Faults) -> Option<Bucket> {
    if faults.rate_limit <= 0.0 {
        return None;
    }
    let burst = faults
        .burst
        .unwrap_or(faults.rate_limit.ceil() as u32)
        .max(1);
    let period = Duration::from_secs_f64(1.0 / faults.rate_limit);
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
    Some(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_changes_only_named_fields_and_checks_them() {
        let faults = Faults::default();
        let patched = faults
            .patched(&serde_json::json!({"drop_rate": 0.25}))
            .unwrap();
        assert_eq!(patched.drop_rate, 0.25);
        assert_eq!(patched.token_lifetime_secs, 900.0);
        assert!(
            faults
                .patched(&serde_json::json!({"drop_rate": 2.0}))
                .is_err()
        );
        assert!(faults.patched(&serde_json::json!({"nonsense": 1})).is_err());
    }

    #[test]
    fn seeded_faults_repeat() {
        let faults = Faults {
            error_rate: 0.3,
            drop_rate: 0.3,
            ..Faults::default()
        };
        let draw = |seed| {
            let mut state = FaultState::new(faults.clone(), Some(seed));
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
            Faults {
                rate_limit: 2.0,
                burst: Some(2),
                ..Faults::default()
            },
            Some(1),
        );
        assert_eq!(state.rate_limited(), None);
        assert_eq!(state.rate_limited(), None);
        assert_eq!(state.rate_limited(), Some(1));
    }
}
