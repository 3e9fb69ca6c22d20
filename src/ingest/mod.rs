//! Reading operator-supplied files: the provider's catalogs and the roster, as CSV in any
//! common encoding and delimiter, or as a spreadsheet. Normalization rules live in
//! `normalize`, shared with everything that compares values.

pub mod catalog;
pub mod encoding;
pub mod input;
pub mod normalize;
pub mod roster;
pub mod sheet;
pub mod source;
