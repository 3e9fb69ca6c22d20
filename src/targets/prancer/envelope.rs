//! What one prancer answer means: the mapping of `{data, error, error_list, message,
//! metadata, status}` (and the HTTP status around it) onto `Ok(data)` or a [`CallError`].
//!
//! Owns that mapping, in this one place, so the client's methods never look at a status or
//! a message. Pure: it sees a status, a Retry-After and a body already read and bounded.
//! Must never trust the HTTP status alone (some deployments answer 200 with `status: 400` in
//! the envelope), never take an answer it cannot read for a success, and never keep a server
//! text that was not scrubbed and capped by the [`Redactor`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::redact::Redactor;
use crate::targets::call::CallError;
use crate::targets::http::{Body, MAX_BODY, MAX_MESSAGE};

/// Whether a call may change something on the server: it decides what a 2xx answer that
/// cannot be read means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Changes nothing: an unreadable answer is a server fault, worth asking again.
    Read,
    /// May change something: an unreadable answer leaves it in doubt (it may have been done).
    Write,
}

/// An answer as received, its body read up to [`MAX_BODY`].
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The HTTP status (a redirect never gets here: the client refuses it before).
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: &'a Body,
}

/// The most `error_list` entries kept in a message; the rest are counted.
const MAX_LIST: usize = 5;

/// The `data` of a successful answer to `what` (e.g. "invite"), as a `T`; any other answer as
/// the [`CallError`] it stands for.
pub fn data_of<T: DeserializeOwned>(
    answer: &Answer,
    kind: Kind,
    what: &str,
    redactor: &Redactor,
) -> Result<T, CallError> {
    let data = classify(answer, kind, what, redactor)?;
    // The serde message is not kept: it may quote the answer.
    serde_json::from_value(data).map_err(|_| {
        unreadable(
            answer.status,
            kind,
            &format!("the data of the answer to {what} is not of the documented shape"),
        )
    })
}

/// The `data` of a successful answer (`null` when the envelope has none), or the error.
pub fn classify(
    answer: &Answer,
    kind: Kind,
    what: &str,
    redactor: &Redactor,
) -> Result<Value, CallError> {
    let envelope = answer
        .body
        .complete
        .then(|| envelope(&answer.body.text))
        .flatten();
    if !(200..=299).contains(&answer.status) {
        let detail = match &envelope {
            Some(envelope) => detail(envelope, redactor),
            // Not the envelope (a proxy's HTML page, a framework's own error): the text is
            // all there is to show.
            None => redactor.scrub_capped(answer.body.text.trim(), MAX_MESSAGE),
        };
        return Err(refusal(answer.status, answer.retry_after, detail));
    }
    let Some(envelope) = envelope else {
        let why = if answer.body.complete {
            format!("the answer to {what} is not prancer's envelope")
        } else {
            format!("the answer to {what} is longer than {MAX_BODY} bytes")
        };
        return Err(unreadable(answer.status, kind, &why));
    };
    match status_of(&envelope) {
        // Success by both statuses, unless the envelope itself says error.
        0 | 200..=299 if text_of(envelope.get("error")).is_empty() => {
            Ok(envelope.get("data").cloned().unwrap_or(Value::Null))
        }
        // A success status beside an error text: the server says it failed; believed, and
        // final, so that the operator reads what it said rather than a retry hiding it.
        0 | 200..=299 => Err(CallError::Rejected {
            status: answer.status,
            code: "ERROR".to_owned(),
            message: detail(&envelope, redactor),
            technical: String::new(),
        }),
        // An error envelope inside an HTTP 2xx: the envelope's status is the outcome.
        status @ 400..=599 => Err(refusal(
            status,
            answer.retry_after,
            detail(&envelope, redactor),
        )),
        _ => Err(unreadable(
            answer.status,
            kind,
            &format!("the answer to {what} carries an envelope status that is not HTTP's"),
        )),
    }
}

/// A 2xx answer that cannot be relied on: in doubt after a write, a fault for a read.
fn unreadable(status: u16, kind: Kind, why: &str) -> CallError {
    match kind {
        Kind::Write => CallError::Ambiguous(why.to_owned()),
        Kind::Read => CallError::Server {
            status,
            message: why.to_owned(),
        },
    }
}

/// The error an (effective) status stands for; `detail` is already scrubbed and capped.
fn refusal(status: u16, retry_after: Option<Duration>, detail: String) -> CallError {
    match status {
        // The token is fixed for the run: a refused one will not become good by retrying,
        // so the run stops and says so.
        401 => CallError::AuthRefused {
            status,
            error: "UNAUTHORIZED".to_owned(),
            description: with_detail(
                "prancer refused the API token; check that it is current and issued for this \
                 customer URL",
                &detail,
            ),
        },
        403 => CallError::Rejected {
            status,
            code: "FORBIDDEN".to_owned(),
            message: with_detail(
                "the API token's user may not do this (prancer lets only admins and \
                 superusers manage users)",
                &detail,
            ),
            technical: String::new(),
        },
        429 => CallError::RateLimited { retry_after },
        408 | 500..=599 => CallError::Server {
            status,
            message: detail,
        },
        // 400, 404, 409, 422 and any other status: understood, and final.
        _ => CallError::Rejected {
            status,
            code: code_of(status),
            message: detail,
            technical: String::new(),
        },
    }
}

fn with_detail(what: &str, detail: &str) -> String {
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {detail}")
    }
}

/// `NOT_FOUND` for 404, `UNPROCESSABLE_ENTITY` for 422: the status's reason, as a code.
fn code_of(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or_else(
            || status.to_string(),
            |reason| {
                reason
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect()
            },
        )
}

/// The body as an envelope: a JSON object with at least one of its fields. Read loosely
/// (any field may be missing or of another type) because error answers are the least
/// consistent ones.
fn envelope(text: &str) -> Option<Map<String, Value>> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    ["data", "error", "status"]
        .iter()
        .any(|key| object.contains_key(*key))
        .then_some(object)
}

/// The envelope's `status`: 0 when missing or unreadable, saturated when out of range (so
/// that it counts as no HTTP status at all).
fn status_of(envelope: &Map<String, Value>) -> u16 {
    let number = match envelope.get("status") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    number.map_or(0, |n| u16::try_from(n).unwrap_or(u16::MAX))
}

/// A field as text: a string trimmed, `null`/`false`/missing as empty, anything else as JSON.
fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => String::new(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(other) => other.to_string(),
    }
}

/// `error`, `message` and the `error_list` entries, each scrubbed and capped, repeats left
/// out, joined by "; ".
fn detail(envelope: &Map<String, Value>, redactor: &Redactor) -> String {
    let list: &[Value] = match envelope.get("error_list") {
        Some(Value::Array(items)) => items,
        _ => &[],
    };
    let mut parts: Vec<String> = Vec::new();
    let texts = [envelope.get("error"), envelope.get("message")]
        .into_iter()
        .chain(list.iter().take(MAX_LIST).map(Some));
    for text in texts {
        let text = redactor.scrub_capped(&text_of(text), MAX_MESSAGE);
        if !text.is_empty() && !parts.contains(&text) {
            parts.push(text);
        }
    }
    if list.len() > MAX_LIST {
        parts.push(format!("and {} more", list.len() - MAX_LIST));
    }
    // Scrubbed again as a whole: a credential-looking pair may span two parts.
    redactor.scrub(&parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.sig-7Qx";

    fn answer_to(status: u16, body: &Value, kind: Kind) -> Result<Value, CallError> {
        let body = Body {
            text: body.to_string(),
            complete: true,
        };
        let answer = Answer {
            status,
            retry_after: Some(Duration::from_secs(3)),
            body: &body,
        };
        classify(&answer, kind, "invite", &Redactor::new([TOKEN]))
    }

    fn envelope_of(status: u16, error: &str, list: Value, message: &str) -> Value {
        json!({
            "data": {}, "error": error, "error_list": list, "message": message,
            "metadata": {}, "status": status,
        })
    }

    #[test]
    fn a_success_by_both_statuses_gives_the_data() {
        let ok = json!({"data": {"user_id": 81}, "error": "", "error_list": [], "message": "",
                        "metadata": {}, "status": 200});
        assert_eq!(answer_to(200, &ok, Kind::Write), Ok(json!({"user_id": 81})));
        // A missing or null status, error and data are tolerated.
        let bare = json!({"data": {"x": 1}});
        assert_eq!(answer_to(201, &bare, Kind::Read), Ok(json!({"x": 1})));
        let null_error = json!({"data": [], "error": null, "status": "200"});
        assert_eq!(answer_to(200, &null_error, Kind::Read), Ok(json!([])));
        assert_eq!(
            answer_to(200, &json!({"status": 200}), Kind::Write),
            Ok(Value::Null)
        );
    }

    #[test]
    fn an_error_envelope_inside_an_http_200_is_an_error() {
        let bad = envelope_of(
            400,
            "Invalid data",
            json!(["email: not valid", {"field": "resend"}]),
            "Invitation not sent",
        );
        match answer_to(200, &bad, Kind::Write) {
            Err(CallError::Rejected {
                status: 400,
                code,
                message,
                ..
            }) => {
                assert_eq!(code, "BAD_REQUEST");
                assert_eq!(
                    message,
                    r#"Invalid data; Invitation not sent; email: not valid; {"field":"resend"}"#
                );
            }
            other => panic!("{other:?}"),
        }
        let missing = envelope_of(404, "User not found", json!([]), "User not found");
        assert!(matches!(
            answer_to(200, &missing, Kind::Write),
            Err(CallError::Rejected { status: 404, code, message, .. })
                if code == "NOT_FOUND" && message == "User not found"
        ));
        // An error text beside a success status is believed, and final.
        let contradictory = envelope_of(200, "Email is required", json!([]), "");
        assert!(matches!(
            answer_to(200, &contradictory, Kind::Write),
            Err(CallError::Rejected { status: 200, code, message, .. })
                if code == "ERROR" && message == "Email is required"
        ));
    }

    #[test]
    fn each_status_maps_to_its_kind() {
        let e = |status: u16| {
            let body = envelope_of(status, "no", json!([]), "");
            (
                answer_to(status, &body, Kind::Write),
                answer_to(200, &body, Kind::Write),
            )
        };
        for status in [401, 403, 404, 400, 409, 422, 429, 408, 500, 503] {
            let (http, inside) = e(status);
            assert_eq!(http, inside, "{status}");
            let error = http.unwrap_err();
            match status {
                401 => assert!(matches!(error, CallError::AuthRefused { status: 401, .. })),
                403 => assert!(
                    matches!(&error, CallError::Rejected { code, message, .. }
                        if code == "FORBIDDEN" && message.contains("admins and superusers")),
                    "{error:?}"
                ),
                429 => assert_eq!(
                    error,
                    CallError::RateLimited {
                        retry_after: Some(Duration::from_secs(3))
                    }
                ),
                408 | 500 | 503 => assert!(error.is_retriable(), "{error:?}"),
                _ => assert!(
                    matches!(error, CallError::Rejected { status: s, .. } if s == status),
                    "{error:?}"
                ),
            }
        }
        assert!(matches!(
            answer_to(409, &json!({"data": {}, "status": 409}), Kind::Write),
            Err(CallError::Rejected { code, .. }) if code == "CONFLICT"
        ));
        assert!(matches!(
            answer_to(422, &json!({"error": "x"}), Kind::Write),
            Err(CallError::Rejected { code, .. }) if code == "UNPROCESSABLE_ENTITY"
        ));
    }

    #[test]
    fn an_unreadable_2xx_is_in_doubt_after_a_write_and_a_fault_for_a_read() {
        for text in [
            "<html>ok</html>",
            "[1,2]",
            r#"{"users": []}"#,
            "",
            r#"{"data": {}, "status": 302}"#,
        ] {
            let body = Body {
                text: text.to_owned(),
                complete: true,
            };
            let answer = Answer {
                status: 200,
                retry_after: None,
                body: &body,
            };
            let r = Redactor::default();
            assert!(
                matches!(
                    classify(&answer, Kind::Write, "delete", &r),
                    Err(CallError::Ambiguous(m)) if m.contains("delete")
                ),
                "{text}"
            );
            assert!(
                matches!(
                    classify(&answer, Kind::Read, "list users", &r),
                    Err(CallError::Server { status: 200, .. })
                ),
                "{text}"
            );
        }
        let cut = Body {
            text: r#"{"data": {}, "status": 200}"#.to_owned(),
            complete: false,
        };
        let answer = Answer {
            status: 200,
            retry_after: None,
            body: &cut,
        };
        assert!(matches!(
            classify(&answer, Kind::Write, "invite", &Redactor::default()),
            Err(CallError::Ambiguous(m)) if m.contains("longer than")
        ));
        // Data of another shape than the one asked for.
        let body = Body {
            text: json!({"data": {"groups": "x", "users": "x"}, "status": 200}).to_string(),
            complete: true,
        };
        let answer = Answer {
            status: 200,
            retry_after: None,
            body: &body,
        };
        let r = Redactor::default();
        assert!(matches!(
            data_of::<crate::targets::prancer::model::RolesRequest>(
                &answer,
                Kind::Write,
                "set groups",
                &r
            ),
            Err(CallError::Ambiguous(_))
        ));
        assert!(matches!(
            data_of::<crate::targets::prancer::model::UserList>(&answer, Kind::Read, "list", &r),
            Err(CallError::Server { .. })
        ));
    }

    #[test]
    fn server_texts_are_scrubbed_and_capped() {
        let echo = envelope_of(
            400,
            &format!("bad token {TOKEN}"),
            json!([format!("Authorization: Bearer {TOKEN}"), "x".repeat(5000)]),
            &"m".repeat(5000),
        );
        let error = answer_to(200, &echo, Kind::Write).unwrap_err();
        let shown = error.to_string();
        assert!(
            !shown.contains(TOKEN) && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
        assert!(shown.chars().count() < 4 * (MAX_MESSAGE + 10), "{shown}");
        let many = envelope_of(422, "", json!((0..40).collect::<Vec<_>>()), "");
        let shown = answer_to(422, &many, Kind::Write).unwrap_err().to_string();
        assert!(shown.ends_with("0; 1; 2; 3; 4; and 35 more"), "{shown}");
        // Not an envelope at all: the raw text, scrubbed and capped.
        let body = Body {
            text: format!("<h1>502</h1> {TOKEN} {}", "y".repeat(2000)),
            complete: true,
        };
        let answer = Answer {
            status: 502,
            retry_after: None,
            body: &body,
        };
        let error = classify(&answer, Kind::Read, "who am I", &Redactor::new([TOKEN]));
        let shown = error.unwrap_err().to_string();
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.chars().count() < MAX_MESSAGE + 20, "{shown}");
    }

    #[test]
    fn odd_statuses_and_fields_never_panic() {
        for body in [
            json!({"status": -1, "error": ""}),
            json!({"status": 1e30, "error": ""}),
            json!({"status": 70000, "error": "x"}),
            json!({"status": "abc", "error": {"a": 1}, "error_list": "not a list"}),
            json!({"status": 200, "error": true}),
        ] {
            for status in [100, 200, 299, 404, 600, 999] {
                let _ = answer_to(status, &body, Kind::Write);
                let _ = answer_to(status, &body, Kind::Read);
            }
        }
        assert!(answer_to(200, &json!({"status": 70000, "error": ""}), Kind::Write).is_err());
    }
}
