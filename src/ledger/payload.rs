//! How an op's payload is stored: a compact binary record (postcard), UUIDs as 16 bytes.
//!
//! A first import writes a million payloads in one transaction; as JSON they were 560 bytes
//! each and SQLite's writes were most of the plan's time. This form is about a quarter of
//! that. Owns only the encoding: it must decode to exactly the [`OpPayload`] encoded, and
//! still read the JSON text of ledgers planned before it existed.

use std::borrow::Cow;

use anyhow::{Context, Result};
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};

use super::OpPayload;
use crate::targets::praesidium::model::{
    Attributes, ContentRef, Context as UserContext, Principal, System, User,
};

/// A UUID in 16 bytes when its text is the canonical lower-case form, else the text itself,
/// so that decoding gives back exactly the string that was encoded.
#[derive(Serialize, Deserialize)]
enum Id<'a> {
    Uuid(uuid::Uuid),
    Text(Cow<'a, str>),
}

impl<'a> Id<'a> {
    fn of(text: &'a str) -> Id<'a> {
        match canonical_uuid(text) {
            Some(uuid) => Id::Uuid(uuid),
            None => Id::Text(Cow::Borrowed(text)),
        }
    }

    /// [`Id::of`], for a UUID that comes back op after op (a catalog's client, location or
    /// content item), through `known`.
    fn of_catalog(text: &'a str, known: &mut Known) -> Id<'a> {
        let uuid = match known.get(text) {
            Some(&uuid) => uuid,
            None => {
                let uuid = canonical_uuid(text);
                if known.len() < Encoder::MAX_KNOWN {
                    known.insert(text.to_owned(), uuid);
                }
                uuid
            }
        };
        match uuid {
            Some(uuid) => Id::Uuid(uuid),
            None => Id::Text(Cow::Borrowed(text)),
        }
    }

    fn into_string(self) -> String {
        match self {
            Id::Uuid(uuid) => uuid.hyphenated().to_string(),
            Id::Text(text) => text.into_owned(),
        }
    }
}

/// `text` as a UUID when it is one written the canonical way (lower case, hyphenated), so
/// that it reads back as exactly `text`.
fn canonical_uuid(text: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::try_parse(text).ok().filter(|uuid| {
        uuid.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            == text
    })
}

/// Catalog UUIDs already parsed, by their text.
type Known = rustc_hash::FxHashMap<String, Option<uuid::Uuid>>;

type Text<'a> = Option<Cow<'a, str>>;

#[derive(Serialize, Deserialize)]
struct StoredContent<'a> {
    uuid: Id<'a>,
    kind: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct StoredUser<'a> {
    uuid: Text<'a>,
    first_name: Text<'a>,
    last_name: Text<'a>,
    email: Text<'a>,
    client_external_id: Text<'a>,
    status: Text<'a>,
    role: Text<'a>,
    /// The opaque `person` object as JSON text; empty when it is empty, as it almost always is.
    person: Cow<'a, str>,
    client: Option<Id<'a>>,
    locations: Vec<Id<'a>>,
    content: Option<Vec<StoredContent<'a>>>,
    position: Text<'a>,
    program_type: Text<'a>,
}

#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    uuid: Option<Id<'a>>,
    user: Option<StoredUser<'a>>,
    items: Vec<StoredContent<'a>>,
    profile_hash: i64,
}

fn text(value: &Option<String>) -> Text<'_> {
    value.as_deref().map(Cow::Borrowed)
}

fn owned(value: Text<'_>) -> Option<String> {
    value.map(Cow::into_owned)
}

fn stored_content<'a>(items: &'a [ContentRef], known: &mut Known) -> Vec<StoredContent<'a>> {
    items
        .iter()
        .map(|item| StoredContent {
            uuid: Id::of_catalog(&item.uuid, known),
            kind: Cow::Borrowed(&item.kind),
        })
        .collect()
}

fn content_refs(items: Vec<StoredContent<'_>>) -> Vec<ContentRef> {
    items
        .into_iter()
        .map(|item| ContentRef {
            uuid: item.uuid.into_string(),
            kind: item.kind.into_owned(),
        })
        .collect()
}

/// The stored form of a payload.
#[cfg(test)]
pub fn encode(payload: &OpPayload) -> Vec<u8> {
    Encoder::default().encode(payload).to_vec()
}

/// Encodes payload after payload into one buffer, parsing each catalog UUID once: a first
/// import encodes a million payloads with the same few dozen clients, locations and items.
#[derive(Default)]
pub struct Encoder {
    bytes: Vec<u8>,
    known: Known,
}

impl Encoder {
    /// Catalog UUIDs remembered at most (a catalog has far fewer).
    const MAX_KNOWN: usize = 4096;
    /// Bytes of the buffer to begin with: a payload is a few hundred.
    const FIRST_BUFFER: usize = 4096;

    /// The stored form of `payload`, valid until the next call.
    pub fn encode(&mut self, payload: &OpPayload) -> &[u8] {
        let known = &mut self.known;
        let user = payload.user.as_ref().map(|user| StoredUser {
            uuid: text(&user.uuid),
            first_name: text(&user.principal.first_name),
            last_name: text(&user.principal.last_name),
            email: text(&user.principal.email),
            client_external_id: text(&user.principal.client_external_id),
            status: text(&user.system.status),
            role: text(&user.system.role),
            person: if user.person.is_empty() {
                Cow::Borrowed("")
            } else {
                Cow::Owned(serde_json::Value::Object(user.person.clone()).to_string())
            },
            client: user
                .context
                .client
                .as_deref()
                .map(|c| Id::of_catalog(c, known)),
            locations: user
                .context
                .locations
                .iter()
                .map(|l| Id::of_catalog(l, known))
                .collect(),
            content: user
                .context
                .content
                .as_deref()
                .map(|items| stored_content(items, known)),
            position: text(&user.attributes.position),
            program_type: text(&user.attributes.program_type),
        });
        let stored = Stored {
            // The user's own platform id: one per op, not worth remembering.
            uuid: payload.uuid.as_deref().map(Id::of),
            user,
            items: stored_content(&payload.items, known),
            profile_hash: payload.profile_hash,
        };
        // Into the buffer as it stands (a slice is postcard's fastest output), grown and tried
        // again when a payload does not fit.
        loop {
            if self.bytes.len() < Self::FIRST_BUFFER {
                self.bytes.resize(Self::FIRST_BUFFER, 0);
            }
            let written = postcard::to_slice(&stored, &mut self.bytes)
                .map(|b| b.len())
                .and_then(|used| {
                    // The row memo trails the record, so payloads written before it existed
                    // still decode.
                    let memo = match &payload.row {
                        Some(row) => postcard::to_slice(row, &mut self.bytes[used..])?.len(),
                        None => 0,
                    };
                    Ok(used + memo)
                });
            match written {
                Ok(len) => return &self.bytes[..len],
                Err(postcard::Error::SerializeBufferFull) => {
                    let grown = self.bytes.len() * 2;
                    self.bytes.resize(grown, 0);
                }
                Err(error) => panic!("an op payload always encodes: {error}"),
            }
        }
    }
}

/// Reads a stored payload: the binary form, or the JSON text of an older ledger.
pub fn decode(value: ValueRef<'_>) -> Result<OpPayload> {
    match value {
        ValueRef::Blob(bytes) => {
            let (stored, rest): (Stored, _) =
                postcard::take_from_bytes(bytes).context("unreadable op payload")?;
            let mut payload = from_stored(stored)?;
            if !rest.is_empty() {
                payload.row = Some(postcard::from_bytes(rest).context("unreadable row memo")?);
            }
            Ok(payload)
        }
        ValueRef::Text(json) => serde_json::from_slice(json).context("unreadable op payload"),
        other => anyhow::bail!(
            "unreadable op payload: expected a blob or JSON text, found {:?}",
            other.data_type()
        ),
    }
}

fn from_stored(stored: Stored<'_>) -> Result<OpPayload> {
    let user = match stored.user {
        None => None,
        Some(user) => Some(User {
            uuid: owned(user.uuid),
            principal: Principal {
                first_name: owned(user.first_name),
                last_name: owned(user.last_name),
                email: owned(user.email),
                client_external_id: owned(user.client_external_id),
            },
            system: System {
                status: owned(user.status),
                role: owned(user.role),
            },
            person: if user.person.is_empty() {
                serde_json::Map::new()
            } else {
                serde_json::from_str(&user.person).context("unreadable person object")?
            },
            context: UserContext {
                client: user.client.map(Id::into_string),
                locations: user.locations.into_iter().map(Id::into_string).collect(),
                content: user.content.map(content_refs),
            },
            attributes: Attributes {
                position: owned(user.position),
                program_type: owned(user.program_type),
            },
        }),
    };
    Ok(OpPayload {
        uuid: stored.uuid.map(Id::into_string),
        user,
        items: content_refs(stored.items),
        profile_hash: stored.profile_hash,
        row: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::RowMemo;

    fn full_payload() -> OpPayload {
        let mut person = serde_json::Map::new();
        person.insert("nickname".into(), serde_json::json!("Zo"));
        OpPayload {
            uuid: Some("0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10".into()),
            user: Some(User {
                uuid: None,
                principal: Principal {
                    first_name: Some("Zoë".into()),
                    last_name: Some("Ó Briain, Jr.".into()),
                    email: Some("zoe@example.com".into()),
                    client_external_id: Some("E1".into()),
                },
                system: System {
                    status: Some("active".into()),
                    role: Some("Learner".into()),
                },
                person,
                context: UserContext {
                    client: Some("bdd640fb-0667-4ad1-9c80-317fa3b1799d".into()),
                    // Not canonical (upper case, braces): kept as text, exactly.
                    locations: vec![
                        "972A8469-1641-4F82-8B9D-2434E465E150".into(),
                        "{bd9c66b3-ad3c-4d6d-9a3d-1fa7bc8960a9}".into(),
                        "not-a-uuid".into(),
                    ],
                    content: Some(vec![ContentRef {
                        uuid: "1a2a73ed-562b-4f79-8374-59eef50bea63".into(),
                        kind: "learning path".into(),
                    }]),
                },
                attributes: Attributes {
                    position: None,
                    program_type: Some("day camp".into()),
                },
            }),
            items: vec![ContentRef {
                uuid: "29a3b2e9-5d65-4441-9588-42dea2bc372f".into(),
                kind: "course".into(),
            }],
            profile_hash: -33_206_651_806_897_119,
            row: Some(RowMemo {
                digest: -7,
                state: i64::MAX,
                email: 12_345,
            }),
        }
    }

    /// An op's payload with only a UUID (a deactivation's).
    fn bare_payload() -> OpPayload {
        OpPayload {
            uuid: Some("u-1".into()),
            user: None,
            items: vec![],
            profile_hash: 0,
            row: None,
        }
    }

    #[test]
    fn a_payload_decodes_to_exactly_what_was_encoded() {
        let payload = full_payload();
        let bytes = encode(&payload);
        assert_eq!(decode(ValueRef::Blob(&bytes)).unwrap(), payload);
        let bare = bare_payload();
        assert_eq!(decode(ValueRef::Blob(&encode(&bare))).unwrap(), bare);
    }

    #[test]
    fn an_encoder_reused_for_many_payloads_encodes_each_as_alone() {
        let mut encoder = Encoder::default();
        let full = full_payload();
        let bare = bare_payload();
        // Larger than the encoder's first buffer.
        let mut long = full_payload();
        long.user.as_mut().unwrap().principal.first_name = Some("Zoë".repeat(3000));
        // Twice each: the second time the catalog UUIDs (and the texts that are not UUIDs)
        // come from what the encoder remembers.
        for payload in [&full, &bare, &long, &full, &bare, &long] {
            let bytes = encoder.encode(payload).to_vec();
            assert_eq!(bytes, encode(payload));
            assert_eq!(&decode(ValueRef::Blob(&bytes)).unwrap(), payload);
        }
    }

    #[test]
    fn the_stored_form_is_far_smaller_than_json() {
        let payload = full_payload();
        let json = serde_json::to_string(&payload).unwrap();
        let bytes = encode(&payload);
        assert!(
            bytes.len() * 2 < json.len(),
            "{} bytes stored against {} of JSON",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn payloads_stored_before_the_row_memo_still_read() {
        let mut payload = full_payload();
        payload.row = None;
        let bytes = encode(&payload);
        let with_memo = encode(&full_payload());
        assert!(with_memo.starts_with(&bytes) && with_memo.len() > bytes.len());
        assert_eq!(decode(ValueRef::Blob(&bytes)).unwrap(), payload);
    }

    #[test]
    fn json_payloads_of_older_ledgers_still_read() {
        let payload = full_payload();
        let json = serde_json::to_string(&payload).unwrap();
        assert_eq!(decode(ValueRef::Text(json.as_bytes())).unwrap(), payload);
    }

    #[test]
    fn a_corrupt_payload_is_an_error_not_a_panic() {
        assert!(decode(ValueRef::Blob(&[0xff, 0xff, 0xff])).is_err());
        assert!(decode(ValueRef::Integer(3)).is_err());
    }
}
