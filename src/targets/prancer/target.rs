//! prancer as a [`crate::targets::Target`]: invitations, groups and deletions.
//!
//! prancer knows a person by email: an account is invited (not created with a profile), its
//! groups are set as a whole list, and a leaver is deleted. It has no profile update, no
//! deactivation and no roles, so a plan that would need them is reported, never attempted.

use crate::model::OpKind;
use crate::targets::Capabilities;

/// What prancer can do: invite (create), grant and revoke groups, delete (end).
pub const CAPABILITIES: Capabilities = Capabilities {
    roles: &[],
    ops: &[
        OpKind::Create,
        OpKind::Enroll,
        OpKind::Remove,
        OpKind::Deactivate,
    ],
    catalogs: false,
    ends_by_deleting: true,
};
