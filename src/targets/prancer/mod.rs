//! The prancer users API: its wire types (`model`) and a faithful simulator of it (`sim`).

pub mod model;
pub mod sim;
