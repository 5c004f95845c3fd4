//! MLflow's unified request and response schemas (chat, completions, embeddings).
//!
//! Requests are validated in place on the parsed JSON object, the way MLflow's pydantic models
//! do it (lax coercions, `n` defaulting to 1, unknown top-level fields kept), and failures are
//! reported in FastAPI's 422 list form. Keeping the request as JSON means a pass-through provider
//! forwards what the client sent, and a translating provider reads it with the accessors here.

mod request;
mod response;

pub use request::{
    Extension, Extensions, Request, SignedThinking, ValidationErrors, apply_defaults, json_error, object_schema,
    parse_request, request_from_value, validate_default,
};
pub use response::*;

use std::fmt;

/// The three unified APIs an endpoint can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointType {
    /// `llm/v1/chat`
    Chat,
    /// `llm/v1/completions`
    Completions,
    /// `llm/v1/embeddings`
    Embeddings,
}

impl EndpointType {
    /// Parse the YAML spelling.
    pub fn parse(s: &str) -> Option<EndpointType> {
        match s {
            "llm/v1/chat" => Some(EndpointType::Chat),
            "llm/v1/completions" => Some(EndpointType::Completions),
            "llm/v1/embeddings" => Some(EndpointType::Embeddings),
            _ => None,
        }
    }

    /// The YAML spelling, e.g. `llm/v1/chat`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::Chat => "llm/v1/chat",
            EndpointType::Completions => "llm/v1/completions",
            EndpointType::Embeddings => "llm/v1/embeddings",
        }
    }

    /// The word MLflow uses in messages: `chat`, `completions`, `embeddings`.
    pub fn noun(self) -> &'static str {
        match self {
            EndpointType::Chat => "chat",
            EndpointType::Completions => "completions",
            EndpointType::Embeddings => "embeddings",
        }
    }
}

impl fmt::Display for EndpointType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Helpers for the providers' translation tests.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    use super::{EndpointType, Request, parse_request};

    /// A parsed unified request of type `t`; panics if `body` is not valid for it.
    pub(crate) fn req(t: EndpointType, body: Value) -> Request {
        parse_request(t, body.to_string().as_bytes()).expect("a valid test request")
    }
}
