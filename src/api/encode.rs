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
            Family::Native | Family::OpenAi => write_json(out, chunk),
        }
    }

    /// Append the end of a stream that completed.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.family == Family::OpenAi {
            out.extend_from_slice(DONE);
        }
    }

    /// Append the event of an error after the stream started; nothing may follow it.
    pub fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        match self.family {
            Family::Native | Family::OpenAi => out.extend_from_slice(&error.stream_event()),
        }
    }
}

/// Serialise `value` as one downstream event (`data: {json}` and a blank line).
fn write_json<T: serde::Serialize>(out: &mut BytesMut, value: &T) {
    out.extend_from_slice(b"data: ");
    let mut w = BytesMutWriter(out);
    // Serialising our own response structs cannot fail (no maps with non-string keys).
    if serde_json::to_writer(&mut w, value).is_err() {
        log::error!("failed to serialise a stream chunk");
    }
    out.extend_from_slice(b"\n\n");
}

/// The OpenAI stream terminator.
const DONE: &[u8] = b"data: [DONE]\n\n";

struct BytesMutWriter<'a>(&'a mut BytesMut);

impl std::io::Write for BytesMutWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ChatChunk;

    fn chunk() -> Chunk {
        Chunk::Chat(ChatChunk::new(Some("c".into()), 1, None, Vec::new(), None, "openai"))
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
