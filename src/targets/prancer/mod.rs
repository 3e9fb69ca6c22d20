//! The prancer users API: its wire types (`model`), what its answers mean (`envelope`), the
//! client rostersync uses (`client`), its config section (`settings`) and its
//! [`crate::targets::Target`] (`target`).

pub mod client;
pub mod envelope;
pub mod model;
pub mod settings;
pub mod target;

pub use settings::Settings;
