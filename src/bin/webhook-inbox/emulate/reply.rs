//! Answers: a status and a JSON body. Errors take Bluum's shape,
//! `{"error": {"type", "code", "message", "param"?}}` (docs/BLUUM_API.md).

use serde_json::{Value, json};

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self { status: 200, body }
    }

    pub fn created(body: Value) -> Self {
        Self { status: 201, body }
    }

    pub fn accepted(body: Value) -> Self {
        Self { status: 202, body }
    }
}

/// A refusal, with Bluum's error code and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// A field problem: `code` is one of the BLUM-400-00x validation codes.
    pub fn field(code: &'static str, param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::new(400, code, message)
        }
    }

    /// Something required is missing, with no one field to blame.
    pub fn missing(message: impl Into<String>) -> Self {
        Self::new(400, "BLUM-400-002", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BLUM-400-001", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "BLUM-400-008",
            format!("Request body too large: the limit is {limit} bytes."),
        )
    }

    pub fn unauthenticated(code: &'static str, message: &str) -> Self {
        Self::new(401, code, message)
    }

    pub fn investor_scoped() -> Self {
        Self::new(
            403,
            "BLUM-403-001",
            "Insufficient permissions: webhook management is a tenant-level operation and \
             investor-scoped API keys are rejected on these routes. Use a tenant-wide API key.",
        )
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            404,
            "BLUM-404-001",
            format!("No {what} with id `{}`.", crate::common::truncate(id, 100)),
        )
    }

    pub fn no_route(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "BLUM-404-002",
            format!(
                "Endpoint not found: {method} {}.",
                crate::common::truncate(path, 200)
            ),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            405,
            "BLUM-405-001",
            format!(
                "Method {method} is not allowed on {}.",
                crate::common::truncate(path, 200)
            ),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "BLUM-409-001", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(500, "BLUM-500-001", format!("Internal error: {message}"))
    }

    fn kind(&self) -> &'static str {
        match self.status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        }
    }
}

impl From<ApiError> for Reply {
    fn from(err: ApiError) -> Self {
        let mut error = json!({
            "type": err.kind(),
            "code": err.code,
            "message": err.message,
        });
        if let (Some(param), Some(fields)) = (&err.param, error.as_object_mut()) {
            fields.insert("param".into(), Value::String(param.clone()));
        }
        Self {
            status: err.status,
            body: json!({ "error": error }),
        }
    }
}
