//! prancer as a [`Target`]: invitations, groups and deletions.
//!
//! prancer knows a person by email: an account is invited (not created with a profile), its
//! groups are set as a whole list, and a leaver is deleted. It has no profile update, no
//! deactivation and no roles, so a plan that would need them is reported, never attempted.
//!
//! The account id rostersync records is the email (lower-cased): every call but the groups
//! one takes it, and the groups one needs the numeric id of the moment, read by email. Groups
//! are changed by adding to or taking from the list the account holds, so groups given in
//! prancer by hand (an "Owner") are kept. Every request goes through the engine's [`Io`].

use super::client::{Client, check_permissions};
use super::model::{PrancerUser, STATUS_PENDING};
use crate::apply::Io;
use crate::ledger::Effect;
use crate::model::{Grant, Op, OpKind};
use crate::targets::{CallError, Capabilities, Target};

/// What prancer can do: invite (create), grant and revoke groups, delete (end).
pub const CAPABILITIES: Capabilities = Capabilities {
    roles: &[],
    ops: &[
        OpKind::Create,
        OpKind::Enroll,
        OpKind::Remove,
        OpKind::Deactivate,
        OpKind::Remind,
    ],
    catalogs: false,
    ends_by_deleting: true,
};

/// The prancer users API of one customer.
pub struct Prancer {
    client: Client,
}

impl Prancer {
    pub fn new(client: Client) -> Prancer {
        Prancer { client }
    }
}

/// The email an op is about: the account id the ledger holds, or a create's profile's.
fn email_of(op: &Op) -> Result<String, CallError> {
    op.payload
        .remote_id
        .clone()
        .or_else(|| op.payload.profile.as_ref().map(|p| p.email.clone()))
        .filter(|email| !email.trim().is_empty())
        .ok_or_else(|| CallError::NotSent(format!("the {} op names no email", op.kind.as_str())))
}

/// The group names of grants.
fn names(grants: &[Grant]) -> impl Iterator<Item = &str> {
    grants.iter().map(|g| g.id.as_str())
}

/// `held` with `add` added and `drop` taken out, in `held`'s order then `add`'s.
fn regrouped(held: &[String], add: &[Grant], drop: &[Grant]) -> Vec<String> {
    let mut groups: Vec<String> = held
        .iter()
        .filter(|g| !names(drop).any(|d| d == g.as_str()))
        .cloned()
        .collect();
    for name in names(add) {
        if !groups.iter().any(|g| g == name) {
            groups.push(name.to_owned());
        }
    }
    groups
}

/// Whether an answer to an invitation may mean the email already has an account (invited
/// before, by us in a run whose answer was lost, or by someone else): prancer refuses a
/// second invitation as a bad request.
fn maybe_exists(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Rejected {
            status: 400 | 409 | 422,
            ..
        }
    )
}

impl Prancer {
    /// The account with this email, read back (retried like any read).
    async fn account(&self, email: &str, io: Io<'_>) -> Result<Option<PrancerUser>, CallError> {
        io.send_retrying(|| self.client.find_by_email(email)).await
    }

    /// What an op records when prancer holds no account with its email any more (deleted
    /// there by hand): the account is forgotten, so that the next plan invites the person
    /// again rather than this op failing every night.
    fn gone(email: &str) -> Effect {
        Effect {
            deleted: true,
            ..Effect::acknowledged(
                404,
                Some(format!(
                    "prancer holds no account with the email {email} (deleted there?); forgotten, so the next run invites it again"
                )),
            )
        }
    }

    /// Sets the account's groups to `held` changed by `add` and `drop`, unless that is what
    /// it holds already.
    async fn regroup(
        &self,
        account: &PrancerUser,
        add: &[Grant],
        drop: &[Grant],
        io: Io<'_>,
    ) -> Result<(), CallError> {
        let groups = regrouped(&account.user_groups, add, drop);
        if groups == account.user_groups {
            return Ok(());
        }
        io.send_retrying(|| self.client.set_groups(account.id, &groups))
            .await
            .map(|_| ())
    }

    /// Sends a pending invitation again; an accepted one is recorded as such, and nothing is
    /// sent.
    async fn remind(&self, op: &Op, io: Io<'_>) -> Result<Effect, CallError> {
        let email = email_of(op)?;
        let Some(account) = self.account(&email, io).await? else {
            return Ok(Self::gone(&email));
        };
        if account.status != STATUS_PENDING {
            return Ok(Effect {
                accepted: true,
                ..Effect::acknowledged(
                    200,
                    Some(format!(
                        "invitation already accepted (status {})",
                        account.status
                    )),
                )
            });
        }
        io.send(self.client.invite(&email, true)).await?;
        Ok(Effect::acknowledged(
            200,
            Some("invitation sent again".to_owned()),
        ))
    }

    async fn invite(&self, op: &Op, io: Io<'_>) -> Result<Effect, CallError> {
        let email = email_of(op)?;
        let groups = op
            .payload
            .profile
            .as_ref()
            .and_then(|p| p.grants.clone())
            .unwrap_or_default();
        let (adopted, status) = match io.send(self.client.invite(&email, false)).await {
            Ok(()) => (false, 200),
            Err(error) if maybe_exists(&error) => (true, error.http_status().unwrap_or(400)),
            Err(error) => return Err(error),
        };
        let account = match self.account(&email, io).await? {
            Some(account) => account,
            None if adopted => {
                return Err(CallError::Rejected {
                    status,
                    code: "INVITE_REFUSED".to_owned(),
                    message: format!(
                        "prancer refused to invite {email} and holds no account with that email"
                    ),
                    technical: String::new(),
                });
            }
            None => {
                return Err(CallError::Unreliable {
                    status,
                    message: format!(
                        "prancer said it invited {email}, but lists no account with that email; the next run invites again"
                    ),
                });
            }
        };
        io.claim(op, &email, status)?;
        self.regroup(&account, &groups, &[], io).await?;
        Ok(Effect {
            uuid: Some(email.clone()),
            http_status: Some(status),
            message: adopted.then(|| {
                format!(
                    "adopted the existing prancer account of {email} (status {})",
                    account.status
                )
            }),
            adopted,
            deleted: false,
            accepted: false,
        })
    }
}

impl Target for Prancer {
    async fn prepare(&self, io: Io<'_>) -> Result<(), CallError> {
        let caller = io.send_retrying(|| self.client.whoami()).await?;
        check_permissions(&caller).map_err(|refused| CallError::AuthRefused {
            status: 403,
            error: "not_permitted".to_owned(),
            description: refused.to_string(),
        })
    }

    async fn execute(&self, op: &Op, io: Io<'_>) -> Result<Effect, CallError> {
        match op.kind {
            OpKind::Create => self.invite(op, io).await,
            OpKind::Enroll | OpKind::Remove => {
                let email = email_of(op)?;
                let Some(account) = self.account(&email, io).await? else {
                    return Ok(Self::gone(&email));
                };
                let items = &op.payload.items;
                let (add, drop): (&[Grant], &[Grant]) = match op.kind {
                    OpKind::Enroll => (items, &[]),
                    _ => (&[], items),
                };
                self.regroup(&account, add, drop, io).await?;
                Ok(Effect::acknowledged(200, None))
            }
            OpKind::Deactivate => {
                let email = email_of(op)?;
                let message = match io.send(self.client.delete(&email)).await {
                    Ok(()) => None,
                    // Gone already (deleted by hand, or by our own request whose answer was
                    // lost): what the op asked for holds.
                    Err(CallError::Rejected { status: 404, .. }) => {
                        Some("prancer held no account with this email any more".to_owned())
                    }
                    Err(error) => return Err(error),
                };
                Ok(Effect {
                    deleted: true,
                    ..Effect::acknowledged(200, message)
                })
            }
            OpKind::Remind => self.remind(op, io).await,
            OpKind::Update | OpKind::ReEnroll => Err(CallError::NotSent(format!(
                "prancer has no {} operation",
                op.kind.as_str()
            ))),
        }
    }

    fn resolves_by_reading(&self, kind: OpKind) -> bool {
        // A listing shows the groups and whether the account is there; an invitation sent
        // twice is refused, so a create is settled by sending it again (and adopting).
        matches!(kind, OpKind::Enroll | OpKind::Remove | OpKind::Deactivate)
    }

    async fn confirm(&self, op: &Op, io: Io<'_>) -> Result<bool, CallError> {
        let email = email_of(op)?;
        let account = self.account(&email, io).await?;
        let holds =
            |name: &str, account: &PrancerUser| account.user_groups.iter().any(|g| g == name);
        Ok(match (op.kind, account) {
            (OpKind::Deactivate, account) => account.is_none(),
            (OpKind::Enroll, Some(account)) => names(&op.payload.items).all(|n| holds(n, &account)),
            (OpKind::Remove, Some(account)) => {
                !names(&op.payload.items).any(|n| holds(n, &account))
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> Grant {
        Grant {
            id: name.to_owned(),
            kind: "group".to_owned(),
        }
    }

    #[test]
    fn groups_are_added_and_taken_without_touching_the_others() {
        let held = vec!["Owner".to_owned(), "Viewer".to_owned()];
        assert_eq!(
            regrouped(&held, &[group("Auditor"), group("Viewer")], &[]),
            ["Owner", "Viewer", "Auditor"]
        );
        assert_eq!(regrouped(&held, &[], &[group("Viewer")]), ["Owner"]);
        assert_eq!(
            regrouped(&[], &[], &[group("Viewer")]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn only_a_refused_invitation_may_mean_the_account_exists() {
        let refused = |status| CallError::Rejected {
            status,
            code: String::new(),
            message: String::new(),
            technical: String::new(),
        };
        assert!(maybe_exists(&refused(400)));
        assert!(!maybe_exists(&refused(403)));
        assert!(!maybe_exists(&CallError::Ambiguous("reset".into())));
    }
}
