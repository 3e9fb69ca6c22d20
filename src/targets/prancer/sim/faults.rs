//! The prancer simulator's fault and limit settings.
//!
//! Owns the knobs (given at start and changed at run time through the admin endpoint): the
//! common ones every simulator has, plus whether a 429 says when to retry (the API document
//! says nothing of its rate limit, so a client must cope without a `Retry-After`). The
//! per-request decisions drawn from them are the shared ones of `sim_kit::faults`.

use serde::{Deserialize, Serialize};

use crate::targets::sim_kit::faults::{self, HasKnobs, Knobs};

/// The per-request decisions, drawn from one seeded source.
pub type FaultState = faults::FaultState<Faults>;

/// Everything that can be made to go wrong, or slow, in the prancer simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Probability (0 to 1) that a request is answered 500 or 503 before it is processed.
    pub error_rate: f64,
    /// Probability (0 to 1) that a request is processed and then its connection is dropped
    /// without an answer.
    pub drop_rate: f64,
    /// Least added latency per request, in milliseconds.
    pub latency_min_ms: u64,
    /// Most added latency per request, in milliseconds (uniform between min and max).
    pub latency_max_ms: u64,
    /// Requests per second the token bucket allows before answering 429; 0 turns it off.
    pub rate_limit: f64,
    /// Bucket size (default: one second's worth of the rate, at least 1).
    pub burst: Option<u32>,
    /// Whether a 429 carries `Retry-After` (whole seconds until the bucket has a token).
    /// Default true.
    pub retry_after: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::from_knobs(Knobs::default(), true)
    }
}

impl Faults {
    /// The common knobs (as the command line gives them) and the `Retry-After` choice.
    pub fn from_knobs(knobs: Knobs, retry_after: bool) -> Faults {
        Faults {
            error_rate: knobs.error_rate,
            drop_rate: knobs.drop_rate,
            latency_min_ms: knobs.latency_min_ms,
            latency_max_ms: knobs.latency_max_ms,
            rate_limit: knobs.rate_limit,
            burst: knobs.burst,
            retry_after,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.knobs().check()
    }

    /// Applies a partial JSON object (only the fields it names) and checks the result.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Faults, String> {
        faults::patched(self, patch, Faults::check)
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
            .patched(&serde_json::json!({"retry_after": false, "rate_limit": 2.0}))
            .unwrap();
        assert!(!patched.retry_after);
        assert_eq!(patched.rate_limit, 2.0);
        assert_eq!(patched.drop_rate, 0.0);
        assert!(
            faults
                .patched(&serde_json::json!({"drop_rate": -1}))
                .is_err()
        );
        assert!(
            faults
                .patched(&serde_json::json!({"token_lifetime_secs": 1}))
                .is_err()
        );
    }
}
