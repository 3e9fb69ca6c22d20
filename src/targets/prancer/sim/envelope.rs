//! The documented envelope every prancer answer travels in, `{data, error, error_list,
//! message, metadata, status}`, and the simulator's error type that fills it.
//!
//! Owns the answer's shape: `status` always repeats the HTTP status, an error leaves `data`
//! an empty object and says itself in `error` (and, for validation, field by field in
//! `error_list`). Never answers in any other shape, whatever went wrong.

use serde::Serialize;
use serde_json::{Map, Value};

use super::store::StoreError;
use crate::targets::prancer::model::Envelope;

/// One field's problem in a validation error, as `error_list` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// A refusal: the HTTP status, the `error` text and any field errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {error}")]
pub struct ApiError {
    pub status: u16,
    pub error: String,
    pub error_list: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: u16, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            error_list: Vec::new(),
        }
    }

    /// A 400 naming each field's problem; `error` joins them.
    pub fn invalid(fields: Vec<FieldError>) -> ApiError {
        let error = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            status: 400,
            error,
            error_list: fields,
        }
    }

    pub fn unauthenticated(why: &str) -> ApiError {
        ApiError::new(401, why)
    }

    pub fn permission_denied() -> ApiError {
        ApiError::new(
            403,
            "permission denied: only an admin or superuser may do this",
        )
    }

    pub fn not_found() -> ApiError {
        ApiError::new(404, "not found: no API endpoint at this path")
    }

    pub fn method_not_allowed(method: &str) -> ApiError {
        ApiError::new(405, format!("method {method:?} not allowed at this path"))
    }

    /// This error as the documented envelope.
    pub fn envelope(&self) -> Value {
        let list = self
            .error_list
            .iter()
            .map(|f| serde_json::json!({"field": f.field, "message": f.message}))
            .collect();
        to_value(&Envelope {
            data: Value::Object(Map::new()),
            error: self.error.clone(),
            error_list: list,
            message: String::new(),
            metadata: Map::new(),
            status: self.status,
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let status = error.status();
        match &error {
            StoreError::UnknownGroup(_) => ApiError {
                status,
                error: error.to_string(),
                error_list: vec![FieldError::new("groups", error.to_string())],
            },
            _ => ApiError::new(status, error.to_string()),
        }
    }
}

/// A 200 envelope carrying `data` and `message`.
pub fn success(data: Value, message: &str) -> Value {
    to_value(&Envelope {
        data,
        error: String::new(),
        error_list: Vec::new(),
        message: message.to_owned(),
        metadata: Map::new(),
        status: 200,
    })
}

/// A wire type as JSON. The envelope and model types are plain structs of strings, numbers
/// and maps, which serde_json always serializes; `Null` stands in for the impossible.
pub fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_fill_error_and_leave_data_empty() {
        let body =
            ApiError::invalid(vec![FieldError::new("email", "This field is required.")]).envelope();
        assert_eq!(
            body,
            serde_json::json!({
                "data": {},
                "error": "email: This field is required.",
                "error_list": [{"field": "email", "message": "This field is required."}],
                "message": "",
                "metadata": {},
                "status": 400
            })
        );
        let body = ApiError::from(StoreError::NoSuchEmail).envelope();
        assert_eq!(body["status"], 404);
        assert_eq!(body["error_list"], serde_json::json!([]));
    }

    #[test]
    fn success_repeats_the_status() {
        let body = success(Value::Object(Map::new()), "done");
        assert_eq!(body["status"], 200);
        assert_eq!(body["message"], "done");
        assert_eq!(body["error"], "");
    }
}
