//! The HTTP API surface: the operation table, the REST answers, the error shapes, and the
//! answers' encodings per client API.
//!
//! Invocations (the operations that call a provider) are driven by the server; everything here
//! answers locally or shapes an answer.

pub mod anthropic;
pub mod call_id;
pub mod encode;
pub mod gemini;
pub mod operations;
pub mod responses;
pub mod rest;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::schema::Request;

/// A request body of a client API that is not MLflow's (Anthropic Messages, OpenAI Responses,
/// Gemini generateContent), parsed: its target, its translation into MLflow's unified chat schema, and what else the
/// pipeline needs from it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The endpoint or traffic route named by `model` (by the URL for Gemini).
    pub model: String,
    /// The request in MLflow's unified chat schema; features without a unified field are in
    /// its `extensions`.
    pub request: Request,
    /// The body as the client sent it, for a provider that speaks this API itself (it is
    /// forwarded with only `model` replaced, or unchanged when the URL names the model).
    pub native: Map<String, Value>,
    /// A field only the provider's own API can serve (e.g. the Responses API's
    /// `previous_response_id`): translating the request is refused with a 400 naming it.
    pub native_only: Option<&'static str>,
    /// The first top-level field the translation does not know: a provider that speaks the
    /// client's API gets it as sent (new fields work before aigw knows them), a translation
    /// refuses the request with OpenAI's `unknown_parameter` 400.
    pub unknown: Option<String>,
    /// Request fields the answer repeats (the Responses API echoes `instructions`, `tools`,
    /// `temperature`, …).
    pub echo: Map<String, Value>,
}

/// A complete local answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any (redirects have none).
    pub content_type: Option<&'static str>,
    /// Body.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON answer.
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Reply {
        Reply {
            status,
            content_type: Some("application/json"),
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            headers: Vec::new(),
        }
    }

    /// A 307 redirect with an empty body.
    pub fn redirect(location: String) -> Reply {
        Reply { status: 307, content_type: None, body: Bytes::new(), headers: vec![("location", location)] }
    }

    /// The answer for an error, in `family`'s shape.
    pub fn error(err: &crate::error::GatewayError, family: crate::error::Family) -> Reply {
        Reply {
            status: err.status_for(family),
            content_type: Some("application/json"),
            body: err.body(family),
            headers: err.headers.clone(),
        }
    }
}

/// A unified `{"type": "text", "text": …}` content part (the client APIs' request parsers build
/// unified messages from their own parts).
pub(crate) fn text_part(text: &str) -> Value {
    let mut part = Map::with_capacity(2);
    part.insert("type".into(), Value::from("text"));
    part.insert("text".into(), Value::from(text));
    Value::Object(part)
}

/// A unified message; `content` none leaves the key out.
pub(crate) fn message(role: &str, content: Option<Value>) -> Map<String, Value> {
    let mut m = Map::with_capacity(3);
    m.insert("role".into(), Value::from(role));
    if let Some(c) = content {
        m.insert("content".into(), c);
    }
    m
}
