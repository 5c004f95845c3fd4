//! One error type for everything a request can fail with, rendered in the shape of the route
//! family that received the request:
//!
//! * native MLflow routes: `{"detail": …}` with MLflow's status codes (422 for schema errors);
//! * OpenAI-compatible `/v1/*` routes: `{"error": {"message", "type", "param", "code"}}` with
//!   OpenAI's status codes (schema errors are 400).
//!
//! Messages never contain secrets: they are built from client input, configuration names and
//! upstream answers, never from credentials.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::schema::ValidationErrors;

/// Which API family a request came in on; decides error shapes and stream framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// MLflow's own routes (`/endpoints/…`, `/gateway/…`, `/api/…`, `/health`).
    Native,
    /// OpenAI-compatible routes (`/v1/…`).
    OpenAi,
}

/// What went wrong, coarsely; used for the OpenAI `type` and for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The body failed the unified schema (native 422, OpenAI 400).
    Validation,
    /// A request the endpoint's provider cannot accept (native and OpenAI keep the status).
    InvalidRequest,
    /// Unknown path, endpoint or model.
    NotFound,
    /// Known path, wrong method.
    MethodNotAllowed,
    /// Body over the configured limit.
    TooLarge,
    /// A call quota was exhausted.
    RateLimited,
    /// Missing or wrong gateway credentials.
    Unauthorized,
    /// The credentials do not allow this endpoint.
    Forbidden,
    /// The provider cannot serve this endpoint type.
    NotImplemented,
    /// The upstream answered with an error status; relayed.
    Upstream,
    /// The upstream could not be reached, reset the connection, or sent something unusable.
    BadGateway,
    /// The upstream did not answer in time.
    Timeout,
    /// The gateway is shutting down or overloaded.
    Unavailable,
    /// A bug in the gateway.
    Internal,
}

impl ErrorKind {
    /// The OpenAI-style `error.type`.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::Validation
            | ErrorKind::InvalidRequest
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::TooLarge => "invalid_request_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::NotImplemented => "not_implemented_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::BadGateway => "bad_gateway_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Unavailable => "service_unavailable_error",
            ErrorKind::Internal => "server_error",
        }
    }

    /// A short stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::Upstream => "upstream",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The native `detail` value.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// `{"detail": "<text>"}`
    Text(String),
    /// `{"detail": <json>}` (FastAPI lists, relayed upstream objects).
    Json(Box<Value>),
    /// A native body that is not `{"detail": …}` (slowapi's `{"error": "Rate limit …"}`).
    Body(Box<Value>),
}

/// A failed request.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayError {
    /// HTTP status on native routes.
    pub status: u16,
    /// Coarse category.
    pub kind: ErrorKind,
    /// Native detail.
    pub detail: Detail,
    /// The request field at fault, for OpenAI's `param`.
    pub param: Option<String>,
    /// OpenAI's `code`.
    pub code: Option<&'static str>,
    /// Extra response headers (`Retry-After`, `Allow`, …).
    pub headers: Vec<(&'static str, String)>,
}

impl GatewayError {
    /// An error with a text detail.
    pub fn new(status: u16, kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError {
            status,
            kind,
            detail: Detail::Text(message.into()),
            param: None,
            code: None,
            headers: Vec::new(),
        }
    }

    /// Set the OpenAI `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Set the OpenAI `code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Add a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A schema failure (native: FastAPI's 422 list).
    pub fn validation(errors: ValidationErrors) -> Self {
        let (_, param) = errors.summary();
        GatewayError {
            status: 422,
            kind: ErrorKind::Validation,
            detail: Detail::Json(Box::new(Value::Array(errors.0))),
            param,
            code: None,
            headers: Vec::new(),
        }
    }

    /// A provider rule violation (MLflow's `AIGatewayException(422, …)`).
    pub fn invalid(message: impl Into<String>) -> Self {
        GatewayError::new(422, ErrorKind::InvalidRequest, message)
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        GatewayError::new(400, ErrorKind::InvalidRequest, message)
    }

    /// MLflow's plain 404 for unknown paths.
    pub fn not_found() -> Self {
        GatewayError::new(404, ErrorKind::NotFound, "Not Found")
    }

    /// 405 with the allowed methods.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        GatewayError::new(405, ErrorKind::MethodNotAllowed, "Method Not Allowed").with_header("allow", allow)
    }

    /// The provider cannot serve this endpoint type (MLflow's 501 message).
    pub fn not_implemented(noun: &str, provider_display: &str) -> Self {
        GatewayError::new(
            501,
            ErrorKind::NotImplemented,
            format!("The {noun} route is not implemented for {provider_display} models."),
        )
    }

    /// The upstream could not be used (502).
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        GatewayError::new(502, ErrorKind::BadGateway, message)
    }

    /// The upstream did not answer in time (504).
    pub fn timeout(message: impl Into<String>) -> Self {
        GatewayError::new(504, ErrorKind::Timeout, message)
    }

    /// A gateway bug (500).
    pub fn internal(message: impl Into<String>) -> Self {
        GatewayError::new(500, ErrorKind::Internal, message)
    }

    /// The status for `family`.
    pub fn status_for(&self, family: Family) -> u16 {
        match (family, self.kind) {
            (Family::OpenAi, ErrorKind::Validation) => 400,
            _ => self.status,
        }
    }

    /// One-line message (the OpenAI `message`, the stream error event, logs).
    pub fn message(&self) -> String {
        match &self.detail {
            Detail::Text(t) => t.clone(),
            Detail::Json(v) => match &**v {
                Value::Array(items) => ValidationErrors(items.clone()).summary().0,
                Value::Object(o) => match o.get("message").and_then(Value::as_str) {
                    Some(m) => m.to_owned(),
                    None => v.to_string(),
                },
                other => other.to_string(),
            },
            Detail::Body(v) => match v.get("error") {
                Some(Value::String(s)) => s.clone(),
                _ => v.to_string(),
            },
        }
    }

    /// The JSON body for `family`.
    pub fn body(&self, family: Family) -> Bytes {
        let v = match family {
            Family::Native => match &self.detail {
                Detail::Text(t) => json!({ "detail": t }),
                Detail::Json(v) => json!({ "detail": v }),
                Detail::Body(v) => (**v).clone(),
            },
            Family::OpenAi => json!({
                "error": {
                    "message": self.message(),
                    "type": self.kind.openai_type(),
                    "param": self.param,
                    "code": self.code,
                }
            }),
        };
        Bytes::from(v.to_string())
    }

    /// The mid-stream error event (docs/mlflow-compat.md#fix-1): `{"error": {"message", "type"}}`.
    pub fn stream_event(&self) -> Bytes {
        let v = json!({"error": {"message": self.message(), "type": self.kind.openai_type()}});
        Bytes::from(format!("data: {v}\n\n"))
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind.as_str(), self.message())
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = GatewayError::invalid("'n' must be '1'").with_param("n");
        assert_eq!(e.body(Family::Native), Bytes::from(r#"{"detail":"'n' must be '1'"}"#));
        let v: Value = serde_json::from_slice(&e.body(Family::OpenAi)).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "'n' must be '1'", "type": "invalid_request_error", "param": "n", "code": null}})
        );
        assert_eq!(e.status_for(Family::OpenAi), 422);
    }

    #[test]
    fn validation_is_400_on_openai_routes() {
        let errs = ValidationErrors(vec![
            json!({"type": "missing", "loc": ["body", "messages"], "msg": "Field required", "input": {}}),
        ]);
        let e = GatewayError::validation(errs);
        assert_eq!(e.status_for(Family::Native), 422);
        assert_eq!(e.status_for(Family::OpenAi), 400);
        assert_eq!(e.message(), "messages: Field required");
        assert_eq!(e.param.as_deref(), Some("messages"));
    }
}
