//! Anthropic's Messages API (`POST /v1/messages`): requests translated into MLflow's unified
//! chat schema, and unified answers and stream chunks written as Anthropic's messages and
//! events.

use bytes::{Bytes, BytesMut};

use super::Parsed;
use super::encode::AnswerMeta;
use crate::error::GatewayError;
use crate::schema::{Answer, Chunk};

/// Parse a Messages request body.
pub fn parse(body: &[u8]) -> Result<Parsed, GatewayError> {
    let _ = body;
    Err(GatewayError::not_implemented("messages", "aigw"))
}

/// An estimate of the input tokens of a Messages request, for providers that cannot count.
pub fn count_tokens_estimate(native: &serde_json::Map<String, serde_json::Value>) -> u64 {
    let _ = native;
    0
}

/// A whole unified answer as an Anthropic `message`.
pub fn answer(answer: &Answer, meta: &AnswerMeta) -> Result<Bytes, GatewayError> {
    let _ = (answer, meta);
    Err(GatewayError::not_implemented("messages", "aigw"))
}

/// Writes unified chunks as Anthropic's stream events.
#[derive(Debug)]
pub struct MessagesStream {
    meta: AnswerMeta,
}

impl MessagesStream {
    /// An encoder for one stream.
    pub fn new(meta: AnswerMeta) -> Self {
        MessagesStream { meta }
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
