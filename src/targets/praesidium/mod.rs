//! The Praesidium User Management REST API v2: its wire types (`model`), the client
//! rostersync uses (`client`) and a faithful simulator of it (`sim`).

pub mod client;
pub mod model;
pub mod sim;
