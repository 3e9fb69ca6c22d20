//! The neutral model: what every step of the flow shares and no platform owns.
//!
//! The desired person ([`Profile`], with its [`Grant`]s), the op the plan makes of it
//! ([`OpKind`], [`OpPayload`], [`NewOp`], [`Op`]) and every fingerprint ([`fingerprint`]).
//! It sits at the bottom of the crate: it imports nothing of rostersync, and it must never
//! name a platform's type, URL, JSON field or status string. A target maps these to its own
//! requests (see [`crate::targets`]).

pub mod fingerprint;
pub mod op;
pub mod person;

pub use op::{NewOp, Op, OpKind, OpPayload, RowMemo};
pub use person::{Grant, Profile};
