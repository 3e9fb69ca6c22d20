//! The Praesidium User Management REST API v2: its wire types (`model`) and a faithful
//! simulator of it (`sim`).

pub mod model;
pub mod sim;
