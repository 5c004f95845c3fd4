//! OpenAI's Responses API (`POST /v1/responses`, stateless): requests translated into MLflow's
//! unified chat schema, and unified answers and stream chunks written as Responses objects and
//! events.

use bytes::{Bytes, BytesMut};

use super::Parsed;
use super::encode::AnswerMeta;
use crate::error::GatewayError;
use crate::schema::{Answer, Chunk};

/// Parse a Responses request body.
pub fn parse(body: &[u8]) -> Result<Parsed, GatewayError> {
    let _ = body;
    Err(GatewayError::not_implemented("responses", "aigw"))
}

/// A whole unified answer as a `response` object.
pub fn answer(answer: &Answer, meta: &AnswerMeta) -> Result<Bytes, GatewayError> {
    let _ = (answer, meta);
    Err(GatewayError::not_implemented("responses", "aigw"))
}

/// Writes unified chunks as the Responses API's stream events.
#[derive(Debug)]
pub struct ResponsesStream {
    meta: AnswerMeta,
}

impl ResponsesStream {
    /// An encoder for one stream.
    pub fn new(meta: AnswerMeta) -> Self {
        ResponsesStream { meta }
    }

    /// Append the events for one chunk.
    pub fn chunk(&mut self, chunk: &Chunk, out: &mut BytesMut) {
        let _ = (chunk, out, &self.meta);
    }

    /// Append the end of a stream that completed.
    pub fn finish(&mut self, out: &mut BytesMut) {
        let _ = out;
    }

    /// Append the event of an error after the stream started.
    pub fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        let _ = (error, out);
    }
}
