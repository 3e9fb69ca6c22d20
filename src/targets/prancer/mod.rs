//! The prancer users API: its wire types (`model`), its config section (`settings`) and its
//! [`crate::targets::Target`] (`target`).

pub mod model;
pub mod settings;
pub mod target;

pub use settings::Settings;
