//! Answers: a status and a JSON body. Errors take the nested shape,
//! `{"error": {"type", "code", "message", "param"?}}` (docs/BLUUM_API.md),
//! and every code carries its HTTP status in its number, as Bluum's codes
//! do (`BLUM-{STATUS}-{SEQUENCE}`): `code_matches_status` below checks it.

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

    /// Bluum's catalog files "request body too large" under 400
    /// (`BLUM-400-008`), so the status is 400, not 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            400,
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

    /// A known path with a method it does not take. Bluum's catalog has no
    /// 405 code; a method and path together are an endpoint, so this is its
    /// "endpoint not found", 404 `BLUM-404-002`.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "BLUM-404-002",
            format!(
                "Endpoint not found: {method} {} (the path exists; the method is not one it \
                 takes).",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `BLUM-{STATUS}-{SEQUENCE}`: the status in the code is the one sent.
    fn code_matches_status(err: &ApiError) -> bool {
        err.code
            .strip_prefix("BLUM-")
            .and_then(|rest| rest.get(..3))
            == Some(&*err.status.to_string())
    }

    #[test]
    fn every_code_carries_its_status() {
        let all = [
            ApiError::field("BLUM-400-003", "url", "m"),
            ApiError::missing("m"),
            ApiError::bad_request("m"),
            ApiError::too_large(1),
            ApiError::unauthenticated("BLUM-401-001", "m"),
            ApiError::investor_scoped(),
            ApiError::not_found("webhook", "wh_1"),
            ApiError::no_route("GET", "/x"),
            ApiError::method_not_allowed("PUT", "/v1/webhooks"),
            ApiError::conflict("m"),
            ApiError::internal("m"),
        ];
        for err in &all {
            assert!(code_matches_status(err), "{err:?}");
        }
        assert_eq!(
            (ApiError::too_large(1).status, ApiError::too_large(1).code),
            (400, "BLUM-400-008")
        );
    }

    #[test]
    fn errors_are_nested_with_a_type_and_param_only_when_named() {
        let reply = Reply::from(ApiError::field("BLUM-400-002", "url", "url is required."));
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.body,
            json!({"error": {"type": "invalid_request_error", "code": "BLUM-400-002",
                             "message": "url is required.", "param": "url"}})
        );
        let reply = Reply::from(ApiError::method_not_allowed("PUT", "/v1/webhooks"));
        assert_eq!(reply.status, 404);
        assert_eq!(reply.body["error"]["type"], "not_found_error");
        assert!(reply.body["error"].get("param").is_none());
    }
}
