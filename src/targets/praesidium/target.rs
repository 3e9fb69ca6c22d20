//! Praesidium as a [`Target`]: the neutral model mapped to its user object and endpoints.
//!
//! Owns how each op becomes requests (create, update, deactivate, the three content calls),
//! the adoption of an account that already holds the email, and reading an account back to
//! settle an op whose answer was lost. Every request goes through the engine's [`Io`]; it
//! never paces, retries or records anything itself.

use super::client::{Client, ContentCall, existing_user_id};
use super::model::{
    Attributes, ContentRef, Context, KNOWN_ROLES, Principal, STATUS_ACTIVE, STATUS_INACTIVE,
    System, User,
};
use crate::apply::Io;
use crate::ingest::normalize::fold;
use crate::ledger::Effect;
use crate::model::{Grant, Op, OpKind, Profile};
use crate::targets::{CallError, Capabilities, Target};

/// What Praesidium can do: every kind of op, with its five roles.
pub const CAPABILITIES: Capabilities = Capabilities {
    roles: KNOWN_ROLES,
    ops: &[
        OpKind::Create,
        OpKind::Update,
        OpKind::Enroll,
        OpKind::Remove,
        OpKind::ReEnroll,
        OpKind::Deactivate,
    ],
    catalogs: true,
    ends_by_deleting: false,
};

/// The Praesidium User Management REST API v2.
pub struct Praesidium {
    client: Client,
}

impl Praesidium {
    pub fn new(client: Client) -> Praesidium {
        Praesidium { client }
    }
}

/// The API's content item for a grant.
fn content_ref(grant: &Grant) -> ContentRef {
    ContentRef {
        uuid: grant.id.clone(),
        kind: grant.kind.clone(),
    }
}

/// The user object the API receives for a profile.
pub fn user_of(profile: &Profile) -> User {
    User {
        uuid: None,
        principal: Principal {
            first_name: Some(profile.first_name.clone()),
            last_name: Some(profile.last_name.clone()),
            email: Some(profile.email.clone()),
            client_external_id: Some(profile.key.clone()),
        },
        system: System {
            status: Some(
                if profile.active {
                    STATUS_ACTIVE
                } else {
                    STATUS_INACTIVE
                }
                .to_owned(),
            ),
            role: Some(profile.role.clone()),
        },
        person: serde_json::Map::new(),
        context: Context {
            client: Some(profile.client.clone()),
            locations: profile.locations.clone(),
            content: profile
                .grants
                .as_ref()
                .map(|grants| grants.iter().map(content_ref).collect()),
        },
        attributes: Attributes {
            position: profile.position.clone(),
            program_type: profile.program_type.clone(),
        },
    }
}

/// Whether a user as the API returns it holds every field of a user object we sent.
pub fn shows(found: &User, wanted: &User) -> bool {
    let mut found_locations = found.context.locations.clone();
    let mut wanted_locations = wanted.context.locations.clone();
    found_locations.sort();
    wanted_locations.sort();
    let email = |u: &User| u.principal.email.as_deref().map(fold);
    found.principal.first_name == wanted.principal.first_name
        && found.principal.last_name == wanted.principal.last_name
        && email(found) == email(wanted)
        && found.system.status == wanted.system.status
        && found.system.role == wanted.system.role
        && found.context.client == wanted.context.client
        && found_locations == wanted_locations
        && found.attributes == wanted.attributes
}

fn profile_of(op: &Op) -> Result<&Profile, CallError> {
    op.payload.profile.as_ref().ok_or_else(|| {
        CallError::NotSent(format!("the {} op carries no profile", op.kind.as_str()))
    })
}

fn account_of(op: &Op) -> &str {
    op.payload.remote_id.as_deref().unwrap_or_default()
}

impl Target for Praesidium {
    async fn prepare(&self, io: Io<'_>) -> Result<(), CallError> {
        io.send_retrying(|| self.client.authenticate()).await
    }

    async fn execute(&self, op: &Op, io: Io<'_>) -> Result<Effect, CallError> {
        let client = &self.client;
        let uuid = account_of(op);
        let done = |status: u16| Effect::acknowledged(status, None);
        match op.kind {
            OpKind::Create => {
                let user = user_of(profile_of(op)?);
                match io.send(client.create(&user)).await {
                    Ok(created) => {
                        if let Some(uuid) = &created.uuid {
                            io.claim(op, uuid, 201)?;
                        }
                        Ok(Effect {
                            uuid: created.uuid,
                            http_status: Some(201),
                            message: None,
                            adopted: false,
                            deleted: false,
                            accepted: false,
                        })
                    }
                    Err(error) => match existing_user_id(&error) {
                        Some(existing) => self.adopt(op, user, &existing, io).await,
                        None => Err(error),
                    },
                }
            }
            OpKind::Update => {
                let user = user_of(profile_of(op)?);
                io.send(client.update(uuid, &user)).await.map(|_| done(200))
            }
            OpKind::Deactivate => io.send(client.deactivate(uuid)).await.map(|_| done(200)),
            OpKind::Remind => Err(CallError::NotSent(
                "Praesidium creates accounts; it sends no invitation to remind of".to_owned(),
            )),
            OpKind::Enroll | OpKind::Remove | OpKind::ReEnroll => {
                let call = match op.kind {
                    OpKind::Enroll => ContentCall::Enroll,
                    OpKind::Remove => ContentCall::Remove,
                    _ => ContentCall::ReEnroll,
                };
                let items: Vec<ContentRef> = op.payload.items.iter().map(content_ref).collect();
                io.send(client.content(uuid, call, &items))
                    .await
                    .map(|_| done(200))
            }
        }
    }

    fn resolves_by_reading(&self, kind: OpKind) -> bool {
        // A GET shows a profile or a status; it cannot tell a create of ours from someone
        // else's, nor content sent twice (the API ignores a repeat in the window).
        matches!(kind, OpKind::Update | OpKind::Deactivate)
    }

    async fn confirm(&self, op: &Op, io: Io<'_>) -> Result<bool, CallError> {
        let uuid = account_of(op);
        let found = io.send_retrying(|| self.client.get_user(uuid)).await?;
        Ok(match op.kind {
            OpKind::Deactivate => found.system.status.as_deref() == Some(STATUS_INACTIVE),
            _ => op
                .payload
                .profile
                .as_ref()
                .is_some_and(|wanted| shows(&found, &user_of(wanted))),
        })
    }
}

impl Praesidium {
    /// The email belongs to a user in our hierarchy that the ledger does not know (an earlier
    /// tool, a manual entry, or our own create whose answer was lost). Take it over: check it
    /// is the same person by email, record its UUID, bring its profile and content to the
    /// roster's.
    async fn adopt(
        &self,
        op: &Op,
        wanted: User,
        existing: &str,
        io: Io<'_>,
    ) -> Result<Effect, CallError> {
        let client = &self.client;
        // The status of the "email already exists" answer that named this user.
        io.claim(op, existing, 400)?;
        let found = io.send_retrying(|| client.get_user(existing)).await?;
        let same_email = fold(found.principal.email.as_deref().unwrap_or(""))
            == fold(wanted.principal.email.as_deref().unwrap_or(""));
        if !same_email {
            return Err(CallError::Rejected {
                status: 400,
                code: "ADOPTION_REFUSED".to_owned(),
                message: format!(
                    "the server named user {existing} for this email, but that user has another email"
                ),
                technical: String::new(),
            });
        }
        let mut profile = wanted;
        let content = profile.context.content.take().unwrap_or_default();
        // Each step is retried on its own: starting over would repeat a PUT the API just took,
        // and it would ignore that as a duplicate. A user that already shows the profile (our
        // own create whose answer was lost) needs no PUT at all.
        if !shows(&found, &profile) {
            io.send_retrying(|| client.update(existing, &profile))
                .await?;
        }
        if !content.is_empty() {
            io.send_retrying(|| client.content(existing, ContentCall::Enroll, &content))
                .await?;
        }
        Ok(Effect {
            uuid: Some(existing.to_owned()),
            http_status: Some(200),
            message: Some(format!(
                "adopted existing user {existing} (email already in the academy)"
            )),
            adopted: true,
            deleted: false,
            accepted: false,
        })
    }
}
