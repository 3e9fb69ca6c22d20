//! The systems rostersync provisions into. Each target owns its wire types, its client and
//! its simulator; nothing outside a target knows its URLs or JSON shapes.

pub mod praesidium;
pub mod prancer;
