//! Reading operator-supplied CSV: the provider's catalogs and the roster. Normalization
//! rules live in `normalize`, shared with everything that compares values.

pub mod catalog;
pub mod input;
pub mod normalize;
pub mod roster;
