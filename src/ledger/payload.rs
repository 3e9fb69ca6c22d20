//! How an op's payload is stored: a compact binary record (postcard), UUIDs as 16 bytes.
//!
//! A first import writes a million payloads in one transaction; as JSON they were 560 bytes
//! each and SQLite's writes were most of the plan's time. This form is about a quarter of
//! that. Owns only the encoding: it must decode to exactly the [`OpPayload`] encoded, and
//! still read what earlier releases stored (the record's layout is theirs, field for field,
//! and the JSON text of ledgers planned before it existed).

use std::borrow::Cow;

use anyhow::{Context, Result};
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};

use super::OpPayload;
use crate::model::{Grant, Profile, RowMemo};

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

/// A profile as stored. The layout is the one every release has written (it began as a copy
/// of the first platform's user object), so that pending ops planned by an earlier release
/// still read: `uuid` is always empty now, `person` is empty and ignored, and the status is
/// the text `active` or `inactive`.
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

fn owned_or_empty(value: Text<'_>) -> String {
    value.map(Cow::into_owned).unwrap_or_default()
}

/// The stored status of a profile.
const ACTIVE: &str = "active";
const INACTIVE: &str = "inactive";

fn stored_content<'a>(items: &'a [Grant], known: &mut Known) -> Vec<StoredContent<'a>> {
    items
        .iter()
        .map(|item| StoredContent {
            uuid: Id::of_catalog(&item.id, known),
            kind: Cow::Borrowed(&item.kind),
        })
        .collect()
}

fn grants(items: Vec<StoredContent<'_>>) -> Vec<Grant> {
    items
        .into_iter()
        .map(|item| Grant {
            id: item.uuid.into_string(),
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
        let user = payload.profile.as_ref().map(|profile| StoredUser {
            uuid: None,
            first_name: Some(Cow::Borrowed(&profile.first_name)),
            last_name: Some(Cow::Borrowed(&profile.last_name)),
            email: Some(Cow::Borrowed(&profile.email)),
            client_external_id: Some(Cow::Borrowed(&profile.key)),
            status: Some(Cow::Borrowed(if profile.active {
                ACTIVE
            } else {
                INACTIVE
            })),
            role: Some(Cow::Borrowed(&profile.role)),
            person: Cow::Borrowed(""),
            client: Some(Id::of_catalog(&profile.client, known)),
            locations: profile
                .locations
                .iter()
                .map(|l| Id::of_catalog(l, known))
                .collect(),
            content: profile
                .grants
                .as_deref()
                .map(|items| stored_content(items, known)),
            position: text(&profile.position),
            program_type: text(&profile.program_type),
        });
        let stored = Stored {
            // The user's own platform id: one per op, not worth remembering.
            uuid: payload.remote_id.as_deref().map(Id::of),
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
                    // still decode; a re-enrollment's completions trail a memo with digest 0
                    // (a real memo's never is), so earlier records read as they did.
                    let memo = match (&payload.row, payload.completions.is_empty()) {
                        (Some(row), _) => postcard::to_slice(row, &mut self.bytes[used..])?.len(),
                        (None, true) => 0,
                        (None, false) => {
                            postcard::to_slice(&NO_MEMO, &mut self.bytes[used..])?.len()
                        }
                    };
                    let completions = if payload.completions.is_empty() {
                        0
                    } else {
                        postcard::to_slice(&payload.completions, &mut self.bytes[used + memo..])?
                            .len()
                    };
                    Ok(used + memo + completions)
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

/// The memo written before a re-enrollment's completions when the op has no row memo.
const NO_MEMO: RowMemo = RowMemo {
    digest: 0,
    state: 0,
    email: 0,
};

/// Reads a stored payload: the binary form, or the JSON text of an older ledger.
pub fn decode(value: ValueRef<'_>) -> Result<OpPayload> {
    match value {
        ValueRef::Blob(bytes) => {
            let (stored, rest): (Stored, _) =
                postcard::take_from_bytes(bytes).context("unreadable op payload")?;
            let mut payload = from_stored(stored)?;
            if !rest.is_empty() {
                let (row, rest): (RowMemo, _) =
                    postcard::take_from_bytes(rest).context("unreadable row memo")?;
                if row != NO_MEMO {
                    payload.row = Some(row);
                }
                if !rest.is_empty() {
                    payload.completions =
                        postcard::from_bytes(rest).context("unreadable completions")?;
                }
            }
            Ok(payload)
        }
        ValueRef::Text(json) => serde_json::from_slice::<legacy::Payload>(json)
            .map(OpPayload::from)
            .context("unreadable op payload"),
        other => anyhow::bail!(
            "unreadable op payload: expected a blob or JSON text, found {:?}",
            other.data_type()
        ),
    }
}

fn from_stored(stored: Stored<'_>) -> Result<OpPayload> {
    let profile = stored.user.map(|user| Profile {
        key: owned_or_empty(user.client_external_id),
        first_name: owned_or_empty(user.first_name),
        last_name: owned_or_empty(user.last_name),
        email: owned_or_empty(user.email),
        role: owned_or_empty(user.role),
        active: user.status.as_deref() != Some(INACTIVE),
        client: user.client.map(Id::into_string).unwrap_or_default(),
        locations: user.locations.into_iter().map(Id::into_string).collect(),
        position: owned(user.position),
        program_type: owned(user.program_type),
        grants: user.content.map(grants),
    });
    Ok(OpPayload {
        remote_id: stored.uuid.map(Id::into_string),
        profile,
        items: grants(stored.items),
        profile_hash: stored.profile_hash,
        row: None,
        completions: Vec::new(),
    })
}

/// The JSON text payloads of the ledgers planned before the binary record existed: the
/// first platform's user object, as it was stored then.
mod legacy {
    use serde::Deserialize;

    use crate::model::{Grant, OpPayload, Profile, RowMemo};

    #[derive(Deserialize)]
    pub struct Payload {
        #[serde(default)]
        uuid: Option<String>,
        #[serde(default)]
        user: Option<User>,
        #[serde(default)]
        items: Vec<Grant>,
        #[serde(default)]
        profile_hash: i64,
        #[serde(default)]
        row: Option<RowMemo>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct User {
        principal: Principal,
        system: System,
        context: Context,
        attributes: Attributes,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Principal {
        first_name: Option<String>,
        last_name: Option<String>,
        email: Option<String>,
        client_external_id: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct System {
        status: Option<String>,
        role: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Context {
        client: Option<String>,
        locations: Vec<String>,
        content: Option<Vec<Grant>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Attributes {
        position: Option<String>,
        program_type: Option<String>,
    }

    impl From<Payload> for OpPayload {
        fn from(old: Payload) -> OpPayload {
            OpPayload {
                remote_id: old.uuid,
                profile: old.user.map(|user| Profile {
                    key: user.principal.client_external_id.unwrap_or_default(),
                    first_name: user.principal.first_name.unwrap_or_default(),
                    last_name: user.principal.last_name.unwrap_or_default(),
                    email: user.principal.email.unwrap_or_default(),
                    role: user.system.role.unwrap_or_default(),
                    active: user.system.status.as_deref() != Some(super::INACTIVE),
                    client: user.context.client.unwrap_or_default(),
                    locations: user.context.locations,
                    position: user.attributes.position,
                    program_type: user.attributes.program_type,
                    grants: user.context.content,
                }),
                items: old.items,
                profile_hash: old.profile_hash,
                row: old.row,
                completions: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::RowMemo;

    fn full_payload() -> OpPayload {
        OpPayload {
            remote_id: Some("0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10".into()),
            profile: Some(Profile {
                key: "E1".into(),
                first_name: "Zoë".into(),
                last_name: "Ó Briain, Jr.".into(),
                email: "zoe@example.com".into(),
                role: "Learner".into(),
                active: true,
                client: "bdd640fb-0667-4ad1-9c80-317fa3b1799d".into(),
                // Not canonical (upper case, braces): kept as text, exactly.
                locations: vec![
                    "972A8469-1641-4F82-8B9D-2434E465E150".into(),
                    "{bd9c66b3-ad3c-4d6d-9a3d-1fa7bc8960a9}".into(),
                    "not-a-uuid".into(),
                ],
                position: None,
                program_type: Some("day camp".into()),
                grants: Some(vec![Grant {
                    id: "1a2a73ed-562b-4f79-8374-59eef50bea63".into(),
                    kind: "learning path".into(),
                }]),
            }),
            items: vec![Grant {
                id: "29a3b2e9-5d65-4441-9588-42dea2bc372f".into(),
                kind: "course".into(),
            }],
            profile_hash: -33_206_651_806_897_119,
            row: Some(RowMemo {
                digest: -7,
                state: i64::MAX,
                email: 12_345,
            }),
            completions: Vec::new(),
        }
    }

    /// An op's payload with only an account id (a deactivation's).
    fn bare_payload() -> OpPayload {
        OpPayload::of_account("u-1")
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
        long.profile.as_mut().unwrap().first_name = "Zoë".repeat(3000);
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
        // As the ledgers planned before the binary record stored it.
        let json = r#"{"uuid":"0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10","user":{"principal":{"first_name":"Zoë","last_name":"Ó Briain, Jr.","email":"zoe@example.com","client_external_id":"E1"},"system":{"status":"active","role":"Learner"},"person":{},"context":{"client":"bdd640fb-0667-4ad1-9c80-317fa3b1799d","locations":["972A8469-1641-4F82-8B9D-2434E465E150","{bd9c66b3-ad3c-4d6d-9a3d-1fa7bc8960a9}","not-a-uuid"],"content":[{"uuid":"1a2a73ed-562b-4f79-8374-59eef50bea63","type":"learning path"}]},"attributes":{"program_type":"day camp"}},"items":[{"uuid":"29a3b2e9-5d65-4441-9588-42dea2bc372f","type":"course"}],"profile_hash":-33206651806897119,"row":{"digest":-7,"state":9223372036854775807,"email":12345}}"#;
        assert_eq!(
            decode(ValueRef::Text(json.as_bytes())).unwrap(),
            full_payload()
        );
    }

    #[test]
    fn records_written_by_the_previous_release_still_read() {
        // The bytes the release before the neutral model wrote for a deactivation and for an
        // update (its user object carried no uuid and an empty person).
        let deactivation = [1u8, 1, 3, 117, 45, 49, 0, 0, 0];
        assert_eq!(
            decode(ValueRef::Blob(&deactivation)).unwrap(),
            OpPayload::of_account("u-1")
        );
        let mut update = full_payload();
        update.row = None;
        let bytes = encode(&update);
        assert_eq!(decode(ValueRef::Blob(&bytes)).unwrap(), update);
    }

    #[test]
    fn a_reenrollment_keeps_the_completions_it_answers() {
        let mut payload = OpPayload {
            items: full_payload().items,
            completions: vec![1_700_000_000_000],
            ..OpPayload::of_account("u-1")
        };
        let bytes = encode(&payload);
        assert_eq!(decode(ValueRef::Blob(&bytes)).unwrap(), payload);
        // With a memo too (no op carries both today; the layout allows it).
        payload.row = full_payload().row;
        let bytes = encode(&payload);
        assert_eq!(decode(ValueRef::Blob(&bytes)).unwrap(), payload);
    }

    #[test]
    fn a_corrupt_payload_is_an_error_not_a_panic() {
        assert!(decode(ValueRef::Blob(&[0xff, 0xff, 0xff])).is_err());
        assert!(decode(ValueRef::Integer(3)).is_err());
    }
}
