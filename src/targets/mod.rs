//! The systems rostersync provisions into. Each target owns its wire types, its client and
//! its simulator; nothing outside a target knows its URLs or JSON shapes. What the
//! simulators share, whatever API they imitate, is `sim_kit`; which one `rostersync sim`
//! runs is `simulate`.

pub mod praesidium;
pub mod prancer;
pub mod sim_kit;
pub mod simulate;
