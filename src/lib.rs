//! rostersync provisions people into a learning platform's user API from CSV files.
//!
//! The flow, one module a step:
//! - [`ingest`]: catalogs and roster CSV → normalized desired users and rejects.
//! - `ledger`: the SQLite record of what the platform holds and of every op (to come).
//! - `plan`: desired users × ledger → ops (to come).
//! - `apply`: ops → API calls, rate-limited, resumable (to come).
//! - `report`: the files of a run (to come).
//!
//! [`targets`] holds what is specific to one API: its wire types, client and simulator.

pub mod ingest;
pub mod samples;
pub mod targets;
