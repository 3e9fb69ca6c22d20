//! rostersync provisions people into a learning platform's user API from CSV files.
//!
//! The flow, one module a step:
//! - [`ingest`]: catalogs and roster CSV → normalized desired users and rejects.
//! - [`ledger`]: the SQLite record of what the platform holds and of every op.
//! - [`plan`]: desired users × ledger → ops, refused over the [`safety`] thresholds.
//! - [`apply`]: ops → API calls, rate-limited, journaled.
//! - [`report`]: the files of a run; [`plan_csv`] its plan.csv (who, and what changes).
//!
//! Beside the flow: the learning events a platform publishes are received by its target
//! (`targets::praesidium::events`) into the ledger's events file ([`ledger::events`]);
//! [`completions`] reads them back for the plan's recertification
//! ([`plan::recertify`]) and for the compliance report, judged by the policy [`clock`].
//!
//! [`commands`] strings the steps together, [`status`] shows what they left; [`config`] is read and checked before any of
//! them. [`redact`] scrubs secrets and tokens from anything that leaves the process;
//! [`human`] rounds figures and cleans paths for people to read.
//! [`model`] is the neutral model they share (the person, the op, the fingerprints);
//! [`targets`] holds what is specific to one API: its wire types, client and simulator.

pub mod apply;
pub mod clock;
pub mod commands;
pub mod completions;
pub mod config;
pub mod fsmode;
pub mod human;
pub mod ingest;
pub mod ledger;
pub mod model;
pub mod plan;
pub mod plan_csv;
pub mod redact;
pub mod report;
pub mod safety;
pub mod samples;
pub mod status;
pub mod targets;
