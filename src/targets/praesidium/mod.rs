//! The Praesidium User Management REST API v2: its wire types (`model`), the client
//! rostersync uses (`client`), its [`crate::targets::Target`] (`target`), the receiver of
//! the learning events it publishes (`events`) and a faithful simulator of it (`sim`).

pub mod client;
pub mod demo;
pub mod events;
pub mod model;
pub mod settings;
pub mod sim;
pub mod target;

pub use target::Praesidium;
