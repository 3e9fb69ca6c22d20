//! How a call to a target's API ended when it did not succeed: the one error type every
//! target's client returns and the apply engine branches on.
//!
//! Owns the kinds of outcome and what each means for a retry (worth sending again, final,
//! possibly applied). Platform-neutral: it knows no URL, JSON shape or status mapping of any
//! API; each client maps its own answers onto these kinds in one place. Must never hold text
//! that was not scrubbed: the clients build every message through
//! [`crate::targets::http::Guarded::clean`], so nothing downstream can leak a credential.

use std::time::Duration;

/// How a call ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// A final refusal (400, 403, 404, ...): the request was understood and will not succeed.
    #[error("HTTP {status} {code}: {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
        technical: String,
    },
    /// The credentials (a login's secret, an API token) were refused: the run cannot go on.
    #[error("authentication refused: HTTP {status} {error}: {description}")]
    AuthRefused {
        status: u16,
        error: String,
        description: String,
    },
    /// 429: wait for the Retry-After before any further request.
    #[error("HTTP 429 Too Many Requests (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, 408, or a 401 that persisted after renewing the token: nothing was changed.
    #[error("HTTP {status}: {message}")]
    Server { status: u16, message: String },
    /// The connection could not be made: the request never left.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Timeout or connection lost after sending, or a write's answer that cannot be read: the
    /// server may or may not have processed it.
    #[error("no answer (the request may have been processed): {0}")]
    Ambiguous(String),
    /// The run is stopping: the request was not sent.
    #[error("not sent: the run is stopping")]
    Stopped,
    /// A 2xx whose answer cannot be relied on (a create without a valid user id, an answer
    /// over [`crate::targets::http::MAX_BODY`]). The server said it acted, so this is final:
    /// not sent again.
    #[error("HTTP {status}, but {message}")]
    Unreliable { status: u16, message: String },
    /// Refused before sending (e.g. a user id that is not a UUID would go into the URL path).
    #[error("not sent: {0}")]
    NotSent(String),
}

impl CallError {
    /// Worth sending again (after a pause): nothing was changed, or nothing can be known.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            CallError::RateLimited { .. } | CallError::Server { .. } | CallError::Connect(_)
        )
    }

    /// The server may have applied the request.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, CallError::Ambiguous(_))
    }

    /// The HTTP status the outcome stands for, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::Rejected { status, .. }
            | CallError::AuthRefused { status, .. }
            | CallError::Server { status, .. }
            | CallError::Unreliable { status, .. } => Some(*status),
            CallError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_say_what_a_retry_may_do() {
        let rejected = CallError::Rejected {
            status: 400,
            code: "X".into(),
            message: "m".into(),
            technical: String::new(),
        };
        assert!(!rejected.is_retriable() && !rejected.is_ambiguous());
        assert_eq!(rejected.http_status(), Some(400));
        let server = CallError::Server {
            status: 503,
            message: String::new(),
        };
        assert!(server.is_retriable());
        assert!(CallError::Connect("refused".into()).is_retriable());
        assert!(CallError::RateLimited { retry_after: None }.is_retriable());
        assert_eq!(
            CallError::RateLimited { retry_after: None }.http_status(),
            Some(429)
        );
        let lost = CallError::Ambiguous("reset".into());
        assert!(lost.is_ambiguous() && !lost.is_retriable());
        assert_eq!(lost.http_status(), None);
        assert!(!CallError::Stopped.is_retriable());
    }
}
