//! The integration tests, one crate (one binary to build and link, one shared `util`): the
//! real binary end to end against the simulators on loopback, with real SQLite files, real
//! CSV files and real processes killed with real signals. Each module is one concern.

mod util;

mod attack_formats;
mod boundary;
mod e2e;
mod events;
mod file_modes;
mod formats;
mod hostile_input;
mod index_file;
mod pacing;
mod prancer_e2e;
mod prancer_sim;
mod replan;
mod resilience;
mod secrets;
mod sim;
mod sim_cli;
mod sim_events;
mod sim_guard;
mod unattended;
mod upgrade;
mod visibility;
