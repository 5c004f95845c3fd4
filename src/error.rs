//! One error type for everything a request can fail with, rendered in the shape of the route
//! family that received the request:
//!
//! * native MLflow routes: `{"detail": …}` with MLflow's status codes (422 for schema errors);
//! * OpenAI-compatible `/v1/*` routes: `{"error": {"message", "type", "param", "code"}}` with
//!   OpenAI's status codes (schema errors are 400);
//! * Anthropic's Messages API: `{"type": "error", "error": {"type", "message"}}`;
//! * Gemini's generateContent (`/gateway/gemini/v1beta/…`): `{"error": {"code", "message", "status"}}`
//!   with Google's status names (schema errors are 400 `INVALID_ARGUMENT`).
//!
//! Messages never contain secrets: they are built from client input, configuration names and
//! upstream answers, never from credentials.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::schema::ValidationErrors;

/// Which client API a request came in on; decides error shapes and answer encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// MLflow's own routes (`/endpoints/…`, `/gateway/…`, `/api/…`, `/health`).
    Native,
    /// OpenAI-compatible chat, completions, embeddings and models (`/v1/…`).
    OpenAi,
    /// Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`).
    Anthropic,
    /// OpenAI's Responses API (`/v1/responses`).
    Responses,
    /// Gemini's generateContent API (MLflow 3's `/gateway/gemini/v1beta/models/…`).
    Gemini,
}

impl Family {
    /// The family a path belongs to.
    pub fn of_path(path: &str) -> Family {
        // (Only Gemini's API paths: `/gateway/gemini/invocations` invokes an endpoint named
        // `gemini` on MLflow's route.)
        if path.starts_with("/gateway/gemini/v1beta/") {
            return Family::Gemini;
        }
        // MLflow 3's server-gateway aliases answer like the APIs they stand for.
        let api = path
            .strip_prefix("/gateway/mlflow")
            .or_else(|| path.strip_prefix("/gateway/openai"))
            .or_else(|| path.strip_prefix("/gateway/anthropic"))
            .unwrap_or(path);
        if api == "/v1/messages" || api.starts_with("/v1/messages/") {
            Family::Anthropic
        } else if api == "/v1/responses" || api.starts_with("/v1/responses/") {
            Family::Responses
        } else if api.starts_with("/v1/") {
            Family::OpenAi
        } else {
            Family::Native
        }
    }

    /// The name used in metrics labels and audit lines.
    pub fn label(self) -> &'static str {
        match self {
            Family::Native => "mlflow",
            Family::OpenAi => "openai",
            Family::Anthropic => "anthropic",
            Family::Responses => "responses",
            Family::Gemini => "gemini",
        }
    }
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
    /// The client closed its connection before the answer was complete (recorded as status
    /// 499; nothing can be sent).
    ClientClosed,
    /// The request names a host this gateway does not serve (421; docs/security.md, "Hosts").
    Misdirected,
}

impl ErrorKind {
    /// The OpenAI-style `error.type`.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::Validation
            | ErrorKind::InvalidRequest
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::TooLarge
            | ErrorKind::Misdirected => "invalid_request_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::NotImplemented => "not_implemented_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::BadGateway => "bad_gateway_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Unavailable => "service_unavailable_error",
            ErrorKind::Internal | ErrorKind::ClientClosed => "server_error",
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
            ErrorKind::ClientClosed => "client_closed",
            ErrorKind::Misdirected => "misdirected",
        }
    }
}

/// Why the gateway refused a request or an answer on its own (the `reason` label of
/// `aigw_rejected_total`). Carried by the error as a typed value, never in its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// More requests in flight than `aigw.limits.max_inflight`.
    TooManyInflight,
    /// A request header over `aigw.limits.max_header_bytes`.
    HeaderTooLarge,
    /// A request body over `aigw.max_request_body`.
    BodyTooLarge,
    /// A request body that stalled past `aigw.limits.body_read_timeout_s`.
    ReadTimeout,
    /// An endpoint's `limit.max_concurrent` was full.
    ConcurrencyLimit,
    /// An upstream answer, or one streamed event, over `aigw.max_response_body`.
    ResponseTooLarge,
    /// Limits or budgets could not be checked: `aigw.shared_state` failed and its
    /// `on_unavailable` is `deny`.
    SharedStateUnavailable,
    /// An invocation body not declared JSON (docs/security.md, "Content types").
    ContentType,
    /// A CORS preflight `aigw.cors` does not allow.
    CorsPreflight,
    /// A `Host` this gateway does not serve (docs/security.md, "Hosts").
    HostNotAllowed,
}

impl Reject {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::TooManyInflight => "too_many_inflight",
            Reject::HeaderTooLarge => "header_too_large",
            Reject::BodyTooLarge => "body_too_large",
            Reject::ReadTimeout => "read_timeout",
            Reject::ConcurrencyLimit => "concurrency_limit",
            Reject::ResponseTooLarge => "response_too_large",
            Reject::SharedStateUnavailable => "shared_state_unavailable",
            Reject::ContentType => "content_type",
            Reject::CorsPreflight => "cors_preflight",
            Reject::HostNotAllowed => "host_not_allowed",
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
    /// OpenAI's `code`: the gateway's own, or the one an upstream error carried (relayed as
    /// sent).
    pub code: Option<Cow<'static, str>>,
    /// Extra response headers (`Retry-After`, `Allow`, …).
    pub headers: Vec<(&'static str, String)>,
    /// The upstream gave an answer (which it may have billed): not worth another attempt.
    /// Internal, never shown to the client.
    pub answered: bool,
    /// Counted as a refusal of this kind in `aigw_rejected_total`. Internal.
    pub reject: Option<Reject>,
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
            answered: false,
            reject: None,
        }
    }

    /// Set the OpenAI `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Set the OpenAI `code`.
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Mark the error as made from an answer the upstream did give: it is not retried and
    /// does not fall back.
    pub fn answered(mut self) -> Self {
        self.answered = true;
        self
    }

    /// Mark the error as a refusal counted under `reason`.
    pub fn rejected(mut self, reason: Reject) -> Self {
        self.reject = Some(reason);
        self
    }

    /// Whether another attempt (or the next fallback destination) may succeed where this
    /// failed: connection failures, timeouts, the gateway's own 429s, and upstream 429 and 5xx
    /// other than 501, unless the upstream gave an answer.
    pub fn retryable(&self) -> bool {
        if self.answered {
            return false;
        }
        matches!(self.kind, ErrorKind::BadGateway | ErrorKind::Timeout | ErrorKind::RateLimited)
            || (self.kind == ErrorKind::Upstream && (self.status == 429 || (self.status >= 500 && self.status != 501)))
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
            answered: false,
            reject: None,
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

    /// The client closed its connection while the gateway was working on its request: nothing
    /// is sent; the audit line and the metrics record status 499 (nginx's convention).
    pub fn client_closed() -> Self {
        GatewayError::new(499, ErrorKind::ClientClosed, "the client closed the connection")
    }

    /// A gateway bug (500).
    pub fn internal(message: impl Into<String>) -> Self {
        GatewayError::new(500, ErrorKind::Internal, message)
    }

    /// The status for `family`.
    pub fn status_for(&self, family: Family) -> u16 {
        match (family, self.kind) {
            (Family::OpenAi | Family::Responses, ErrorKind::Validation) => 400,
            // Anthropic's API answers every invalid request with 400 (it has no 422 or 501).
            (Family::Anthropic, ErrorKind::Validation | ErrorKind::InvalidRequest | ErrorKind::NotImplemented)
                if self.status == 422 || self.status == 501 =>
            {
                400
            }
            // Google's APIs answer every invalid argument with 400.
            (Family::Gemini, ErrorKind::Validation | ErrorKind::InvalidRequest) if self.status == 422 => 400,
            _ => self.status,
        }
    }

    /// Anthropic's `error.type` for an answer with `status`.
    pub fn anthropic_type(status: u16) -> &'static str {
        match status {
            400 | 405 | 408 | 415 | 421 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 | 431 => "request_too_large",
            429 => "rate_limit_error",
            529 | 503 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// Google's status name (`google.rpc.Code`) for an answer with `status`, as Gemini's
    /// errors carry it in `error.status`.
    pub fn google_status(status: u16) -> &'static str {
        match status {
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            408 | 504 => "DEADLINE_EXCEEDED",
            409 => "ABORTED",
            429 => "RESOURCE_EXHAUSTED",
            499 => "CANCELLED",
            501 => "UNIMPLEMENTED",
            502 | 503 | 529 => "UNAVAILABLE",
            500..=599 => "INTERNAL",
            _ => "INVALID_ARGUMENT",
        }
    }

    /// Gemini's error object for this error: `{"error": {"code", "message", "status"}}`.
    pub fn gemini_value(&self) -> Value {
        let status = self.status_for(Family::Gemini);
        json!({"error": {"code": status, "message": self.message(), "status": Self::google_status(status)}})
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
            Family::OpenAi | Family::Responses => json!({
                "error": {
                    "message": self.message(),
                    "type": self.kind.openai_type(),
                    "param": self.param,
                    "code": self.code,
                }
            }),
            Family::Anthropic => json!({
                "type": "error",
                "error": {"type": Self::anthropic_type(self.status_for(family)), "message": self.message()},
            }),
            Family::Gemini => self.gemini_value(),
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
    fn anthropic_shape_and_statuses() {
        let e = GatewayError::invalid("'n' must be '1'");
        assert_eq!(e.status_for(Family::Anthropic), 400);
        let v: Value = serde_json::from_slice(&e.body(Family::Anthropic)).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "'n' must be '1'"}})
        );
        let e = GatewayError::new(529, ErrorKind::Upstream, "Overloaded");
        let v: Value = serde_json::from_slice(&e.body(Family::Anthropic)).unwrap();
        assert_eq!((e.status_for(Family::Anthropic), v["error"]["type"].as_str()), (529, Some("overloaded_error")));
        assert_eq!(GatewayError::not_implemented("chat", "X").status_for(Family::Anthropic), 400);
        assert_eq!(GatewayError::bad_gateway("x").status_for(Family::Anthropic), 502);
        assert_eq!(GatewayError::anthropic_type(429), "rate_limit_error");
        assert_eq!(Family::of_path("/v1/messages/count_tokens"), Family::Anthropic);
        assert_eq!(Family::of_path("/v1/responses"), Family::Responses);
        assert_eq!(Family::of_path("/v1/chat/completions"), Family::OpenAi);
        assert_eq!(Family::of_path("/endpoints/x/invocations"), Family::Native);
        assert_eq!(Family::of_path("/gateway/anthropic/v1/messages"), Family::Anthropic);
        assert_eq!(Family::of_path("/gateway/openai/v1/responses"), Family::Responses);
        assert_eq!(Family::of_path("/gateway/mlflow/v1/chat/completions"), Family::OpenAi);
        assert_eq!(Family::of_path("/gateway/openai/v1/embeddings"), Family::OpenAi);
        assert_eq!(Family::of_path("/gateway/chat/mlflow/invocations"), Family::Native);
    }

    #[test]
    fn gemini_shape_and_statuses() {
        let e = GatewayError::invalid("'n' must be '1'");
        assert_eq!(e.status_for(Family::Gemini), 400);
        let v: Value = serde_json::from_slice(&e.body(Family::Gemini)).unwrap();
        assert_eq!(v, json!({"error": {"code": 400, "message": "'n' must be '1'", "status": "INVALID_ARGUMENT"}}));
        let statuses =
            [(401, "UNAUTHENTICATED"), (404, "NOT_FOUND"), (429, "RESOURCE_EXHAUSTED"), (502, "UNAVAILABLE")];
        for (status, name) in statuses {
            let v: Value =
                serde_json::from_slice(&GatewayError::new(status, ErrorKind::Upstream, "x").body(Family::Gemini))
                    .unwrap();
            assert_eq!((v["error"]["code"].as_u64(), v["error"]["status"].as_str()), (Some(status.into()), Some(name)));
        }
        assert_eq!(GatewayError::google_status(504), "DEADLINE_EXCEEDED");
        assert_eq!(GatewayError::google_status(503), "UNAVAILABLE");
        assert_eq!(Family::of_path("/gateway/gemini/v1beta/models/chat:generateContent"), Family::Gemini);
        assert_eq!(Family::of_path("/gateway/gemini/v1beta/nope"), Family::Gemini);
        assert_eq!(Family::of_path("/gateway/gemini/invocations"), Family::Native, "an endpoint named gemini");
        assert_eq!(Family::of_path("/gateway/gemini/mlflow/invocations"), Family::Native);
        assert_eq!(Family::Gemini.label(), "gemini");
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
