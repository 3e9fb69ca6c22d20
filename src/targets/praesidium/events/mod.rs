//! Praesidium's learning events: the payload it publishes (`payload`) and the receiver that
//! stores them (`receiver`, `rostersync events serve`).
//!
//! What the engine does with them (the completions report, recertification) is
//! [`crate::completions`]'s and the plan's; this module knows only Praesidium's side.

pub mod payload;
pub mod receiver;

pub use receiver::{Receiving, ServeOptions, serve, start};
