//! The systems rostersync provisions into, as plug-ins of one engine.
//!
//! A target owns everything specific to one platform: its wire types, its client, its
//! simulator, and the [`Target`] implementation that maps the neutral model
//! ([`crate::model`]) to its requests. The engine (plan, ledger, apply, report) knows only
//! this trait; nothing outside `targets/` knows a platform's URLs, JSON shapes or status
//! strings.

pub mod praesidium;
pub mod prancer;

pub use praesidium::client::CallError;

use crate::apply::Io;
use crate::ledger::Effect;
use crate::model::{Op, OpKind};

/// The targets rostersync knows, as `[target] kind` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Praesidium,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Praesidium => "praesidium",
        }
    }

    /// What the target can do, known before it is built (the plan needs it; no request).
    pub fn capabilities(self) -> Capabilities {
        match self {
            Kind::Praesidium => praesidium::target::CAPABILITIES,
        }
    }
}

/// What a platform can do, for the plan (a plan that needs what the target lacks is reported,
/// never attempted) and for ingest (which roles a row may name).
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// The roles the platform knows, in its spelling; empty when it has none.
    pub roles: &'static [&'static str],
    /// The kinds of op it can execute.
    pub ops: &'static [OpKind],
}

impl Capabilities {
    pub fn can(&self, kind: OpKind) -> bool {
        self.ops.contains(&kind)
    }
}

/// One platform, as the engine drives it. The engine owns pacing, retries, 429 pauses, the
/// duplicate window, the journal, resume and signals; a target owns what its requests are and
/// what its answers mean. Every request goes through the [`Io`] it is lent, so that it is
/// paced, counted and bounded like every other.
pub trait Target: Send + Sync + 'static {
    /// The name in messages and in the ledger (`praesidium`).
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// Readies the target before any op is sent: logs in, checks that the credentials may
    /// manage users. A refusal here stops the run before anything changed.
    fn prepare(&self, io: Io<'_>) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Executes one op: its requests, sent through `io`, and the effect to record. The first
    /// request that makes the change goes through [`Io::send`] (the engine retries the op);
    /// any later step through [`Io::send_retrying`].
    fn execute(
        &self,
        op: &Op,
        io: Io<'_>,
    ) -> impl Future<Output = Result<Effect, CallError>> + Send;

    /// Whether an op of this kind whose answer was lost is resolved by reading the account
    /// back ([`Target::confirm`]); otherwise it is sent again once the duplicate window has
    /// passed (the platform ignores, or refuses as existing, what it already did).
    fn resolves_by_reading(&self, kind: OpKind) -> bool;

    /// Reads the account back: whether the platform shows what `op` asked for.
    fn confirm(&self, op: &Op, io: Io<'_>) -> impl Future<Output = Result<bool, CallError>> + Send;
}
