//! The prancer users API: its wire types (`model`), what its answers mean (`envelope`), the
//! client rostersync uses (`client`), its config section (`settings`), its
//! [`crate::targets::Target`] (`target`) and a faithful simulator of it (`sim`).

pub mod client;
pub mod envelope;
pub mod model;
pub mod settings;
pub mod sim;
pub mod target;

pub use settings::Settings;
