//! Turning a request body into one of the API's parameter types, with the field-by-field
//! validation errors the real service gives.
//!
//! Owns the rules on bodies: a body must be JSON (`Content-Type: application/json`) and an
//! object; required fields must be there and of the right type (no coercion: `"81"` is not
//! an id, `"false"` not a boolean); emails must be valid. Extra fields are ignored, as the
//! service's serializers do. Never panics, whatever the bytes.

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::envelope::{ApiError, FieldError};
use crate::ingest::normalize::is_valid_email;
use crate::targets::prancer::model::{
    DeleteRequest, InviteRequest, RolesRequest, SearchRequest, TourRequest,
};

const REQUIRED: &str = "This field is required.";

/// The body as a JSON object; `None` when there is no body (only white space).
pub fn object(headers: &HeaderMap, body: &[u8]) -> Result<Option<Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            format!("unsupported media type {content_type:?}: send application/json"),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ApiError::new(400, "the body must be a JSON object")),
        Err(error) => Err(ApiError::new(400, format!("JSON parse error: {error}"))),
    }
}

/// Collects every field's problem before answering, so one answer names them all.
struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn new(map: Option<&'a Map<String, Value>>) -> Fields<'a> {
        Fields {
            map,
            errors: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(name))
    }

    fn fail(&mut self, name: &str, message: &str) {
        self.errors.push(FieldError::new(name, message));
    }

    fn string(&mut self, name: &str, required: bool) -> Option<&'a str> {
        match self.get(name) {
            Some(Value::String(text)) => Some(text),
            Some(Value::Null) => {
                self.fail(name, "This field may not be null.");
                None
            }
            Some(_) => {
                self.fail(name, "Not a valid string.");
                None
            }
            None => {
                if required {
                    self.fail(name, REQUIRED);
                }
                None
            }
        }
    }

    fn email(&mut self) -> Option<String> {
        let email = self.string("email", true)?;
        if email.is_empty() {
            self.fail("email", "This field may not be blank.");
            None
        } else if !is_valid_email(email) {
            self.fail("email", "Enter a valid email address.");
            None
        } else {
            Some(email.to_owned())
        }
    }

    fn boolean(&mut self, name: &str, required: bool) -> Option<bool> {
        match self.get(name) {
            Some(Value::Bool(value)) => Some(*value),
            Some(_) => {
                self.fail(name, "Must be a valid boolean.");
                None
            }
            None => {
                if required {
                    self.fail(name, REQUIRED);
                }
                None
            }
        }
    }

    fn integer(&mut self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(value) => {
                let id = value.as_i64();
                if id.is_none() {
                    self.fail(name, "A valid integer is required.");
                }
                id
            }
            None => {
                self.fail(name, REQUIRED);
                None
            }
        }
    }

    fn strings(&mut self, name: &str) -> Option<Vec<String>> {
        match self.get(name) {
            Some(Value::Array(items)) => {
                let texts: Option<Vec<String>> = items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect();
                if texts.is_none() {
                    self.fail(name, "Every item must be a string.");
                }
                texts
            }
            Some(_) => {
                self.fail(name, "Expected a list of items.");
                None
            }
            None => {
                self.fail(name, REQUIRED);
                None
            }
        }
    }

    /// The value built from the fields, or the 400 naming every problem.
    fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(ApiError::invalid(self.errors)),
        }
    }
}

/// `user/invite/`: `{email, resend}`; `resend` defaults to false.
pub fn invite(map: Option<&Map<String, Value>>) -> Result<InviteRequest, ApiError> {
    let mut fields = Fields::new(map);
    let email = fields.email();
    let resend = fields.boolean("resend", false).unwrap_or(false);
    let value = email.map(|email| InviteRequest { email, resend });
    fields.finish(value)
}

/// `GET user/manage/`: `{search}`, all optional (no body lists everyone).
pub fn search(map: Option<&Map<String, Value>>) -> Result<SearchRequest, ApiError> {
    let mut fields = Fields::new(map);
    let search = fields.string("search", false).unwrap_or("").to_owned();
    fields.finish(Some(SearchRequest { search }))
}

/// `DELETE user/manage/`: `{email}`.
pub fn delete(map: Option<&Map<String, Value>>) -> Result<DeleteRequest, ApiError> {
    let mut fields = Fields::new(map);
    let email = fields.email();
    fields.finish(email.map(|email| DeleteRequest { email }))
}

/// `POST api//user/roles`: `{user_id, groups}`, both required.
pub fn roles(map: Option<&Map<String, Value>>) -> Result<RolesRequest, ApiError> {
    let mut fields = Fields::new(map);
    let user_id = fields.integer("user_id");
    let groups = fields.strings("groups");
    let value = user_id
        .zip(groups)
        .map(|(user_id, groups)| RolesRequest { user_id, groups });
    fields.finish(value)
}

/// `POST user/tour/`: `{tour_path, status}`, both required.
pub fn tour(map: Option<&Map<String, Value>>) -> Result<TourRequest, ApiError> {
    let mut fields = Fields::new(map);
    let tour_path = fields.string("tour_path", true).map(str::to_owned);
    let status = fields.boolean("status", true);
    let value = tour_path
        .zip(status)
        .map(|(tour_path, status)| TourRequest { tour_path, status });
    fields.finish(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        headers
    }

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn bodies_must_be_json_objects() {
        let headers = json_headers();
        assert_eq!(object(&headers, b"  \n").unwrap(), None);
        assert_eq!(object(&HeaderMap::new(), b"").unwrap(), None);
        assert_eq!(object(&headers, b"[1]").unwrap_err().status, 400);
        assert_eq!(object(&headers, b"{\"a\":").unwrap_err().status, 400);
        assert_eq!(object(&headers, &[0xff, 0xfe]).unwrap_err().status, 400);
        assert_eq!(object(&HeaderMap::new(), b"{}").unwrap_err().status, 415);
        assert!(object(&headers, b"{}").unwrap().is_some());
    }

    #[test]
    fn invite_needs_a_valid_email_and_a_boolean_resend() {
        let ok = invite(Some(&map(json!({"email": "a@example.com"})))).unwrap();
        assert_eq!((ok.email.as_str(), ok.resend), ("a@example.com", false));
        let error = invite(None).unwrap_err();
        assert_eq!(error.error_list, vec![FieldError::new("email", REQUIRED)]);
        let error = invite(Some(&map(json!({"email": "nope", "resend": "yes"})))).unwrap_err();
        let fields: Vec<&str> = error.error_list.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["email", "resend"]);
        assert_eq!(error.status, 400);
        assert!(invite(Some(&map(json!({"email": 5})))).is_err());
        assert!(invite(Some(&map(json!({"email": ""})))).is_err());
    }

    #[test]
    fn roles_take_an_integer_id_and_a_list_of_names() {
        let ok = roles(Some(&map(json!({"user_id": 81, "groups": ["Owner"]})))).unwrap();
        assert_eq!(ok.user_id, 81);
        for bad in [
            json!({"user_id": "81", "groups": []}),
            json!({"user_id": 1.5, "groups": []}),
            json!({"user_id": 1, "groups": "Owner"}),
            json!({"user_id": 1, "groups": [1]}),
            json!({"groups": []}),
            json!({"user_id": 1e30, "groups": []}),
        ] {
            assert_eq!(
                roles(Some(&map(bad.clone()))).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn search_is_optional_and_a_string() {
        assert_eq!(search(None).unwrap().search, "");
        assert_eq!(
            search(Some(&map(json!({"search": "ad"})))).unwrap().search,
            "ad"
        );
        assert!(search(Some(&map(json!({"search": 3})))).is_err());
        assert!(delete(Some(&map(json!({})))).is_err());
        assert!(tour(Some(&map(json!({"tour_path": "/wc/dashboard"})))).is_err());
    }
}
