//! The systems rostersync provisions into. Each target owns its wire types, its client and
//! its simulator; nothing outside a target knows its URLs or JSON shapes. What every client
//! shares is platform-neutral: the outcome of a call (`call`) and the guarded HTTP plumbing
//! (`http`).

pub mod call;
pub mod http;
pub mod praesidium;
pub mod prancer;
