//! The HTTP API surface: the operation table, the REST answers, the error shapes, and the
//! answers' encodings per route family.
//!
//! Invocations (the operations that call a provider) are driven by the server; everything here
//! answers locally or shapes an answer.

pub mod encode;
pub mod operations;
pub mod rest;

use bytes::Bytes;

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
