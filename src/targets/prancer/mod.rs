//! The prancer users API: its wire types (`model`).

pub mod model;
