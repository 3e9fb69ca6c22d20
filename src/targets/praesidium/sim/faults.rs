//! The Praesidium simulator's fault and limit settings.
//!
//! Owns the knobs (set by command-line flags and changed at run time through the admin
//! endpoint), including the two only this API has: the token lifetime and the duplicate
//! window. The per-request decisions drawn from them (latency, 429, injected 5xx, dropped
//! connection) are the shared ones of `sim_kit::faults`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::targets::sim_kit::faults::{self, HasKnobs, Knobs, probability};

/// The per-request decisions, drawn from one seeded source.
pub type FaultState = faults::FaultState<Faults>;

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
    /// (--target praesidium) Lifetime of issued access tokens, in seconds (the API's is 900).
    #[arg(long, default_value_t = 900.0)]
    pub token_lifetime_secs: f64,
    /// (--target praesidium) Length of the duplicate window, in seconds: an identical change
    /// request processed this recently is answered as if successful and changes nothing (the
    /// API's is 30).
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

impl Faults {
    /// Applies a partial JSON object (only the fields it names) and checks the result.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Faults, String> {
        faults::patched(self, patch, Faults::check)
    }

    pub fn check(&self) -> Result<(), String> {
        self.knobs().check()?;
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

impl HasKnobs for Faults {
    fn knobs(&self) -> Knobs {
        Knobs {
            error_rate: self.error_rate,
            drop_rate: self.drop_rate,
            latency_min_ms: self.latency_min_ms,
            latency_max_ms: self.latency_max_ms,
            rate_limit: self.rate_limit,
            burst: self.burst,
        }
    }
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
}
