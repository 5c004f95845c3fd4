//! Answers in the shape of the client's API: a provider's unified [`Answer`] or stream
//! [`Chunk`]s, written for the route family the request came in on.
//!
//! * MLflow's routes and the OpenAI-compatible `/v1` routes both speak MLflow's unified schema
//!   (OpenAI's wire format): one JSON body, or one `data: {json}` event per chunk. A `/v1`
//!   stream ends with `data: [DONE]`; MLflow's routes end without it (see
//!   `docs/architecture.md`).
//! * An error after the first byte of a stream is one `data: {"error": {...}}` event, and
//!   the stream ends (never with `[DONE]`).

use bytes::{Bytes, BytesMut};

use crate::error::{Family, GatewayError};
use crate::schema::{Answer, Chunk};
use crate::sse;

/// The body of a whole answer for `family`.
pub fn answer(family: Family, answer: &Answer) -> Result<Bytes, GatewayError> {
    match family {
        Family::Native | Family::OpenAi => serde_json::to_vec(answer)
            .map(Bytes::from)
            .map_err(|e| GatewayError::internal(format!("cannot serialise the answer: {e}"))),
    }
}

/// Writes one stream for one family: chunks as they come, then its end or its error.
#[derive(Debug)]
pub struct StreamEncoder {
    family: Family,
}

impl StreamEncoder {
    /// An encoder for a stream answering `family`.
    pub fn new(family: Family) -> Self {
        StreamEncoder { family }
    }

    /// Append the events for one chunk.
    pub fn chunk(&mut self, chunk: &Chunk, out: &mut BytesMut) {
        match self.family {
            Family::Native | Family::OpenAi => sse::write_json(out, chunk),
        }
    }

    /// Append the end of a stream that completed.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.family == Family::OpenAi {
            out.extend_from_slice(sse::DONE);
        }
    }

    /// Append the event of an error after the stream started; nothing may follow it.
    pub fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        match self.family {
            Family::Native | Family::OpenAi => out.extend_from_slice(&error.stream_event()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ChatChunk, object};

    fn chunk() -> Chunk {
        Chunk::Chat(ChatChunk {
            id: Some("c".into()),
            object: object::CHAT_CHUNK,
            created: 1,
            model: None,
            choices: Vec::new(),
            usage: None,
            provider: "openai",
        })
    }

    #[test]
    fn openai_streams_end_with_done_and_native_ones_without() {
        for (family, done) in [(Family::OpenAi, true), (Family::Native, false)] {
            let mut e = StreamEncoder::new(family);
            let mut out = BytesMut::new();
            e.chunk(&chunk(), &mut out);
            e.finish(&mut out);
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert!(text.starts_with("data: {\"id\":\"c\""), "{text}");
            assert_eq!(text.ends_with("data: [DONE]\n\n"), done, "{text}");
        }
    }

    #[test]
    fn an_error_is_one_event_without_done() {
        let mut e = StreamEncoder::new(Family::OpenAi);
        let mut out = BytesMut::new();
        e.error(&GatewayError::bad_gateway("boom"), &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(text, "data: {\"error\":{\"message\":\"boom\",\"type\":\"bad_gateway_error\"}}\n\n");
    }
}
