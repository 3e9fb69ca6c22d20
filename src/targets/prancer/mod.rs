//! The prancer users API: its wire types (`model`), what its answers mean (`envelope`) and the
//! client rostersync uses (`client`).

pub mod client;
pub mod envelope;
pub mod model;
