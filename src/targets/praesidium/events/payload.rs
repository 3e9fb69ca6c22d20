//! Praesidium's learning-event payload, read the most tolerant way the specification allows.
//!
//! Owns turning a request body into an event to store, or into the reason it violates the
//! specification (the receiver's 400). What is known of the format is in
//! `praesidium-event-publishing-notes.md`; where it is silent this reads generously:
//! - property names in snake_case or the older camelCase, at any depth (`eventType`,
//!   `userUuid`); the same property given both ways must agree;
//! - `event_timestamp` as specified (`YYYY-MM-DD HH:MM:SS`, UTC), also with a `T`, fractions
//!   of a second or an explicit UTC zone;
//! - the learner's UUID in `event_context` as `user_uuid`, `learner_uuid`, `user_id` or
//!   `user.uuid`; the item's as `course_uuid`, `learning_path_uuid`, `content_uuid` or
//!   `course.uuid` / `learning_path.uuid` / `content.uuid`; a lone `uuid` fills whichever
//!   of the two is missing;
//! - an event type it does not know, or a context naming no UUID it can find, is a valid
//!   event that matches nothing: stored and reported, never refused (the publisher would
//!   retry it forever, and refusing it loses it).
//!
//! It must never refuse what the specification allows, and never panic on any input.

use chrono::Datelike;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::ingest::normalize::looks_like_uuid;

/// The event types that are completions, with the content type each completes (the API's
/// spelling, as catalogs and grants write it).
const COMPLETIONS: [(&str, &str); 2] = [
    ("COURSE_COMPLETED", "course"),
    ("LEARNING_PATH_COMPLETED", "learning path"),
];

/// An event that satisfies the specification, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Upper case.
    pub event_type: String,
    /// ms since the epoch, UTC.
    pub occurred_at: i64,
    pub user_uuid: Option<String>,
    pub content_uuid: Option<String>,
    /// `course` / `learning path` for a completion.
    pub content_type: Option<&'static str>,
    /// What identifies the event (see [`digest`]).
    pub digest: [u8; 32],
}

/// Why a payload violates the specification: the text of the 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn violation(text: impl Into<String>) -> Violation {
    Violation(text.into())
}

/// Reads one payload; `now` (ms) bounds how far in the future its timestamp may be.
pub fn parse(body: &[u8], now: i64) -> Result<Event, Violation> {
    // A byte-order mark, which some JSON writers put first, is no reason to lose the event.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        violation(format!(
            "the body is not JSON: {} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Eof => "it ends early",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "unexpected data",
                serde_json::error::Category::Io => "unreadable",
            },
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(violation(
            "expected one JSON object (the event), found another JSON value",
        ));
    };
    let object = snake_object(object)?;
    // Any version is read: a later one adds fields, and the fields read here are 1.0's.
    match object.get("version") {
        Some(Value::String(v)) if !v.trim().is_empty() => {}
        Some(Value::Number(_)) => {}
        Some(other) => {
            return Err(violation(format!(
                "version: expected a string such as \"1.0\", found {}",
                kind_of(other)
            )));
        }
        None => return Err(violation("version is missing (expected \"1.0\")")),
    }
    let event_type = match object.get("event_type") {
        Some(Value::String(t))
            if !t.trim().is_empty() && t.len() <= 100 && !t.chars().any(char::is_control) =>
        {
            t.trim().to_ascii_uppercase()
        }
        Some(Value::String(_)) => {
            // Control characters too: the type is logged and reported, and a line break or
            // a terminal escape in it would forge log lines.
            return Err(violation(
                "event_type: expected an event type such as COURSE_COMPLETED, found an empty or overlong text, or one with control characters",
            ));
        }
        Some(other) => {
            return Err(violation(format!(
                "event_type: expected a string, found {}",
                kind_of(other)
            )));
        }
        None => return Err(violation("event_type is missing")),
    };
    let occurred_at = match object.get("event_timestamp") {
        Some(Value::String(t)) => timestamp(t)?,
        Some(other) => {
            return Err(violation(format!(
                "event_timestamp: expected \"YYYY-MM-DD HH:MM:SS\" (UTC), found {}",
                kind_of(other)
            )));
        }
        None => return Err(violation("event_timestamp is missing")),
    };
    // A day of slack for the publisher's clock; beyond it, a completion dated in the future
    // would hold back its own recertification.
    if occurred_at > now.saturating_add(86_400_000) {
        return Err(violation(
            "event_timestamp is more than a day in the future (expected the time of the event, UTC)",
        ));
    }
    let context = match object.get("event_context") {
        Some(Value::Object(context)) => context,
        Some(other) => {
            return Err(violation(format!(
                "event_context: expected an object, found {}",
                kind_of(other)
            )));
        }
        None => return Err(violation("event_context is missing")),
    };
    match object.get("event_specific_detail") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(violation(format!(
                "event_specific_detail: expected an object, found {}",
                kind_of(other)
            )));
        }
    }
    let (user_uuid, content_uuid) = uuids(context);
    let content_type = COMPLETIONS
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, kind)| *kind);
    let digest = digest(&event_type, occurred_at, context);
    Ok(Event {
        event_type,
        occurred_at,
        user_uuid,
        content_uuid,
        content_type,
        digest,
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `eventType` → `event_type`, `userUUID` → `user_uuid`, `UUIDValue` → `uuid_value`;
/// snake_case stays as it is. A run of capitals is one word (an acronym such as `UUID` or
/// `ID`), ending before a capital that starts a lower-case word.
fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let starts_word = match i.checked_sub(1).map(|j| chars[j]) {
                None | Some('_') => false,
                Some(previous) if previous.is_ascii_uppercase() => chars
                    .get(i + 1)
                    .is_some_and(|next| next.is_ascii_lowercase()),
                Some(_) => true,
            };
            if starts_word && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The object with every property name in snake_case, at every depth; a property given
/// both ways must have one value.
fn snake_object(object: Map<String, Value>) -> Result<Map<String, Value>, Violation> {
    let mut out = Map::new();
    for (name, value) in object {
        let value = snake_value(value)?;
        let name = snake(&name);
        match out.get(&name) {
            Some(existing) if *existing != value => {
                return Err(violation(format!(
                    "{name} is given twice (in snake_case and camelCase) with different values"
                )));
            }
            _ => {
                out.insert(name, value);
            }
        }
    }
    Ok(out)
}

fn snake_value(value: Value) -> Result<Value, Violation> {
    Ok(match value {
        Value::Object(object) => Value::Object(snake_object(object)?),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(snake_value)
                .collect::<Result<_, _>>()?,
        ),
        other => other,
    })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), read generously (see the module doc).
fn timestamp(raw: &str) -> Result<i64, Violation> {
    let text = raw.trim();
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))
        .or_else(|| text.strip_suffix(" UTC"))
        .unwrap_or(text);
    let shown: String = raw.chars().take(40).collect();
    let mut at = None;
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, format) {
            at = Some(naive.and_utc());
            break;
        }
    }
    // Another zone, written out (`+02:00`): taken for what it says, then as UTC.
    let at = at.or_else(|| {
        ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"]
            .iter()
            .find_map(|format| chrono::DateTime::parse_from_str(text, format).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
    });
    let Some(at) = at else {
        return Err(violation(format!(
            "event_timestamp: expected \"YYYY-MM-DD HH:MM:SS\" (UTC), found {shown:?}"
        )));
    };
    // Praesidium published no events before this: an earlier date is a default or a typo,
    // and as a completion it would be overdue at once and re-enroll the learner.
    if at.year() < EARLIEST_YEAR {
        return Err(violation(format!(
            "event_timestamp: {shown:?} is before {EARLIEST_YEAR} (expected the time of the event, UTC)"
        )));
    }
    Ok(at.timestamp_millis())
}

/// The earliest year an event may be dated.
const EARLIEST_YEAR: i32 = 2000;

/// A UUID-looking text at `path` (names) in `context`, lower-cased.
fn uuid_at(context: &Map<String, Value>, path: &[&str]) -> Option<String> {
    let mut value = context.get(path[0])?;
    for name in &path[1..] {
        value = value.as_object()?.get(*name)?;
    }
    let text = value.as_str()?.trim();
    looks_like_uuid(text).then(|| text.to_ascii_lowercase())
}

fn first_uuid(context: &Map<String, Value>, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| uuid_at(context, path))
}

/// The learner's and the item's UUIDs in `event_context`.
fn uuids(context: &Map<String, Value>) -> (Option<String>, Option<String>) {
    let mut user = first_uuid(
        context,
        &[
            &["user_uuid"],
            &["learner_uuid"],
            &["user_id"],
            &["user", "uuid"],
            &["learner", "uuid"],
        ],
    );
    let mut content = first_uuid(
        context,
        &[
            &["course_uuid"],
            &["learning_path_uuid"],
            &["content_uuid"],
            &["course", "uuid"],
            &["learning_path", "uuid"],
            &["content", "uuid"],
            &["course_id"],
            &["learning_path_id"],
        ],
    );
    if let Some(lone) = uuid_at(context, &["uuid"]) {
        match (&user, &content) {
            (Some(_), None) => content = Some(lone),
            (None, Some(_)) => user = Some(lone),
            _ => {}
        }
    }
    (user, content)
}

/// SHA-256 of what identifies an event: its type, its time and its context with names
/// normalized and keys sorted, so that a re-sent event (in either naming) has the same
/// digest and two completions of the same course at different times do not.
/// `event_specific_detail` is left out: it describes (names, references), it does not
/// identify, and a replay may carry it differently.
fn digest(event_type: &str, occurred_at: i64, context: &Map<String, Value>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(event_type.as_bytes());
    hasher.update([0]);
    hasher.update(occurred_at.to_be_bytes());
    hasher.update([0]);
    canonical(&Value::Object(context.clone()), &mut hasher);
    hasher.finalize().into()
}

/// Feeds `value` to the hasher in one canonical form (keys sorted at every depth, whatever
/// order the JSON map keeps).
fn canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(object) => {
            let mut names: Vec<&String> = object.keys().collect();
            names.sort();
            hasher.update(b"{");
            for name in names {
                hasher.update(serde_json::to_string(name).unwrap_or_default().as_bytes());
                hasher.update(b":");
                canonical(&object[name.as_str()], hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        // A UUID in either case is the same UUID (the context is matched lower-cased).
        Value::String(text) if looks_like_uuid(text.trim()) => hasher.update(
            serde_json::to_string(&text.trim().to_ascii_lowercase())
                .unwrap_or_default()
                .as_bytes(),
        ),
        other => hasher.update(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const USER: &str = "0b7e7e43-4c2a-4f6e-9c43-8f7b1f1e2a10";
    const COURSE: &str = "29a3b2e9-5d65-4441-9588-42dea2bc372f";

    fn body(text: &str) -> Result<Event, Violation> {
        parse(text.as_bytes(), NOW)
    }

    fn snake_event() -> String {
        format!(
            r#"{{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"2026-11-24 08:30:00",
               "event_context":{{"user_uuid":"{USER}","course_uuid":"{}","client_uuid":"x"}},
               "event_specific_detail":{{"first_name":"Ana","last_name":"Silva","ref1":"E1"}},"extra":[1,2]}}"#,
            COURSE.to_uppercase()
        )
    }

    #[test]
    fn a_completion_reads_with_its_learner_item_and_time() {
        let event = body(&snake_event()).unwrap();
        assert_eq!(event.event_type, "COURSE_COMPLETED");
        assert_eq!(event.user_uuid.as_deref(), Some(USER));
        assert_eq!(event.content_uuid.as_deref(), Some(COURSE), "lower-cased");
        assert_eq!(event.content_type, Some("course"));
        let expected =
            chrono::NaiveDateTime::parse_from_str("2026-11-24 08:30:00", "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_millis();
        assert_eq!(event.occurred_at, expected);
    }

    #[test]
    fn camel_case_names_read_the_same_and_give_the_same_digest() {
        let camel = format!(
            r#"{{"version":"1.0","eventType":"COURSE_COMPLETED","eventTimestamp":"2026-11-24 08:30:00",
               "eventContext":{{"clientUuid":"x","courseUuid":"{}","userUuid":"{USER}"}},
               "eventSpecificDetail":{{"firstName":"Ana"}}}}"#,
            COURSE.to_uppercase()
        );
        let (camel, snake) = (body(&camel).unwrap(), body(&snake_event()).unwrap());
        assert_eq!(camel, snake);
    }

    #[test]
    fn a_learning_path_and_other_context_shapes_are_found() {
        let lp = format!(
            r#"{{"version":"1.0","event_type":"LEARNING_PATH_COMPLETED","event_timestamp":"2026-11-24T08:30:00.250Z",
               "event_context":{{"user":{{"uuid":"{USER}"}},"learning_path":{{"uuid":"{COURSE}"}}}}}}"#
        );
        let event = body(&lp).unwrap();
        assert_eq!(event.content_type, Some("learning path"));
        assert_eq!(event.user_uuid.as_deref(), Some(USER));
        assert_eq!(event.content_uuid.as_deref(), Some(COURSE));
        let lone = format!(
            r#"{{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"2026-11-24 08:30:00",
               "event_context":{{"user_uuid":"{USER}","uuid":"{COURSE}"}}}}"#
        );
        assert_eq!(body(&lone).unwrap().content_uuid.as_deref(), Some(COURSE));
    }

    #[test]
    fn an_unknown_type_or_a_context_without_uuids_is_an_event_that_matches_nothing() {
        let other = r#"{"version":"1.0","event_type":"BADGE_AWARDED","event_timestamp":"2026-11-24 08:30:00","event_context":{}}"#;
        let event = body(other).unwrap();
        assert_eq!(
            (event.content_type, event.user_uuid, event.content_uuid),
            (None, None, None)
        );
    }

    #[test]
    fn the_digest_tells_events_apart_by_type_time_and_context_only() {
        let base = body(&snake_event()).unwrap().digest;
        let later = snake_event().replace("08:30:00", "08:30:01");
        assert_ne!(body(&later).unwrap().digest, base);
        let other_user = snake_event().replace(&USER[..8], "11111111");
        assert_ne!(body(&other_user).unwrap().digest, base);
        let other_detail = snake_event().replace("Silva", "Souza");
        assert_eq!(body(&other_detail).unwrap().digest, base);
    }

    #[test]
    fn acronyms_in_camel_case_names_read_as_one_word() {
        assert_eq!(snake("userUUID"), "user_uuid");
        assert_eq!(snake("courseUUID"), "course_uuid");
        assert_eq!(snake("UUID"), "uuid");
        assert_eq!(snake("userID"), "user_id");
        assert_eq!(snake("UUIDValue"), "uuid_value");
        assert_eq!(snake("eventType"), "event_type");
        assert_eq!(snake("event_type"), "event_type");
        assert_eq!(snake("ref1"), "ref1");
        let acronyms = format!(
            r#"{{"version":"1.0","eventType":"COURSE_COMPLETED","eventTimestamp":"2026-11-24 08:30:00",
               "eventContext":{{"userUUID":"{USER}","courseUUID":"{COURSE}"}}}}"#
        );
        let event = body(&acronyms).unwrap();
        assert_eq!(event.user_uuid.as_deref(), Some(USER));
        assert_eq!(event.content_uuid.as_deref(), Some(COURSE));
    }

    #[test]
    fn a_resent_event_with_its_uuids_in_another_case_has_the_same_digest() {
        let lower = snake_event().replace(&COURSE.to_uppercase(), COURSE);
        let upper = snake_event().replace(USER, &USER.to_uppercase());
        assert_eq!(
            body(&lower).unwrap().digest,
            body(&snake_event()).unwrap().digest
        );
        assert_eq!(
            body(&upper).unwrap().digest,
            body(&snake_event()).unwrap().digest
        );
        // Other text keeps its case: it may tell events apart.
        let client = snake_event().replace("\"client_uuid\":\"x\"", "\"client_uuid\":\"X\"");
        assert_ne!(
            body(&client).unwrap().digest,
            body(&snake_event()).unwrap().digest
        );
    }

    #[test]
    fn what_violates_the_specification_is_refused_with_the_reason() {
        let cases = [
            ("", "not JSON"),
            ("{", "not JSON"),
            ("[1]", "expected one JSON object"),
            (
                r#"{"event_type":"COURSE_COMPLETED","event_timestamp":"2026-11-24 08:30:00","event_context":{}}"#,
                "version is missing",
            ),
            (
                r#"{"version":"1.0","event_timestamp":"2026-11-24 08:30:00","event_context":{}}"#,
                "event_type is missing",
            ),
            (
                r#"{"version":"1.0","event_type":7,"event_timestamp":"2026-11-24 08:30:00","event_context":{}}"#,
                "event_type: expected a string",
            ),
            (
                r#"{"version":"1.0","event_type":"X\n2026-11-24T00:00:00Z ERROR forged","event_timestamp":"2026-11-24 08:30:00","event_context":{}}"#,
                "control characters",
            ),
            (
                r#"{"version":"1.0","event_type":"X\u001b[31m","event_timestamp":"2026-11-24 08:30:00","event_context":{}}"#,
                "control characters",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_context":{}}"#,
                "event_timestamp is missing",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"24/11/2026","event_context":{}}"#,
                "event_timestamp: expected",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"2026-02-30 08:30:00","event_context":{}}"#,
                "event_timestamp: expected",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"2099-01-01 00:00:00","event_context":{}}"#,
                "in the future",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"2026-11-24 08:30:00"}"#,
                "event_context is missing",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"2026-11-24 08:30:00","event_context":"x"}"#,
                "event_context: expected an object",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","event_timestamp":"2026-11-24 08:30:00","event_context":{},"event_specific_detail":3}"#,
                "event_specific_detail",
            ),
            (
                r#"{"version":"1.0","event_type":"COURSE_COMPLETED","eventType":"LEARNING_PATH_COMPLETED","event_timestamp":"2026-11-24 08:30:00","event_context":{}}"#,
                "given twice",
            ),
        ];
        for (text, why) in cases {
            let refused = body(text).unwrap_err().0;
            assert!(refused.contains(why), "{text}: {refused}");
        }
    }

    #[test]
    fn a_byte_order_mark_an_explicit_zone_and_an_early_date_are_handled() {
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(snake_event().as_bytes());
        assert_eq!(parse(&bom, NOW).unwrap(), body(&snake_event()).unwrap());
        let zoned = snake_event().replace("2026-11-24 08:30:00", "2026-11-24 10:30:00+02:00");
        assert_eq!(
            body(&zoned).unwrap().occurred_at,
            body(&snake_event()).unwrap().occurred_at
        );
        for early in [
            "1999-12-31 23:59:59",
            "0001-01-01 00:00:00",
            "1970-01-01 00:00:00",
        ] {
            let old = snake_event().replace("2026-11-24 08:30:00", early);
            assert!(body(&old).unwrap_err().0.contains("before 2000"), "{early}");
        }
    }

    #[test]
    fn no_input_panics() {
        let deep = "[".repeat(100_000);
        assert!(body(&deep).is_err());
        for bytes in [
            &b"\xff\xfe"[..],
            b"null",
            b"\"x\"",
            b"{\"version\":{}}",
            b"{\"a\":1e999}",
        ] {
            let _ = parse(bytes, NOW);
        }
        let _ = parse(b"{\"version\":\"1\",\"event_type\":\"X\",\"event_timestamp\":\"+262143-01-01 00:00:00\",\"event_context\":{}}", i64::MAX);
    }
}
