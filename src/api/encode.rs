//! Answers in the shape of the client's API: a provider's unified [`Answer`] or stream
//! [`Chunk`]s, written for the client API the request came in on.
//!
//! * MLflow's routes and the OpenAI-compatible `/v1` routes both speak MLflow's unified schema
//!   (OpenAI's wire format): one JSON body, or one `data: {json}` event per chunk. A stream
//!   that completes ends with one `data: [DONE]` on both (MLflow 3.18,
//!   `docs/mlflow-compat.md#mlflow-318`).
//! * An error after the first byte of a stream is one `data: {"error": {...}}` event, and
//!   the stream ends (never with `[DONE]`).
//! * Anthropic's Messages API, OpenAI's Responses API and Gemini's generateContent have their
//!   own objects and event sequences ([`super::anthropic`], [`super::responses`],
//!   [`super::gemini`]); Gemini's stream is framed as server-sent events or as one JSON array,
//!   as the client asked, relayed or translated.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use super::anthropic::MessagesStream;
use super::gemini::GenerateContentStream;
use super::responses::ResponsesStream;
use crate::error::{Family, GatewayError};
use crate::schema::{Answer, Chunk, Usage};

/// What an answer's encoding needs beyond the answer itself.
#[derive(Debug, Clone, Default)]
pub struct AnswerMeta {
    /// The model to report: the serving endpoint's configured `model.name` (the upstream's
    /// when the endpoint has none).
    pub model: Option<String>,
    /// The gateway's request id; ids of objects the gateway makes up derive from it.
    pub request_id: String,
    /// Unix seconds at the start of the request.
    pub created: u64,
    /// Request fields the answer repeats (see [`super::Parsed::echo`]).
    pub echo: Map<String, Value>,
    /// The client asked for the stream as one JSON array (Gemini's `:streamGenerateContent`
    /// without `alt=sse`), not as server-sent events.
    pub array_stream: bool,
}

/// The body of a whole answer for `family`.
pub fn answer(family: Family, answer: &Answer, meta: &AnswerMeta) -> Result<Bytes, GatewayError> {
    if let Answer::Native(native) = answer {
        // Already in the client's API (only a provider speaking that API makes one).
        return Ok(native.body.clone());
    }
    match family {
        Family::Native | Family::OpenAi => serde_json::to_vec(answer)
            .map(Bytes::from)
            .map_err(|e| GatewayError::internal(format!("cannot serialise the answer: {e}"))),
        Family::Anthropic => super::anthropic::answer(answer, meta),
        Family::Responses => super::responses::answer(answer, meta),
        Family::Gemini => super::gemini::answer(answer, meta),
    }
}

/// Writes one stream for one family: chunks as they come, then its end or its error.
#[derive(Debug)]
pub struct StreamEncoder {
    format: StreamFormat,
    /// The stream is a provider's own stream in the client's API, relayed event by event: its
    /// end is the upstream's, so nothing is added at the end. The last event relayed.
    relayed: Option<Bytes>,
}

/// The event format of a stream.
#[derive(Debug)]
enum StreamFormat {
    /// MLflow's unified chunks, one `data:` event each, then `data: [DONE]`.
    Unified,
    /// Anthropic's Messages events.
    Anthropic(Box<MessagesStream>),
    /// The Responses API's events.
    Responses(Box<ResponsesStream>),
    /// Gemini's `GenerateContentResponse`s, relayed or translated (it frames both).
    Gemini(Box<GenerateContentStream>),
}

impl StreamEncoder {
    /// An encoder for a stream answering `family`.
    pub fn new(family: Family, meta: AnswerMeta) -> Self {
        let format = match family {
            Family::Native | Family::OpenAi => StreamFormat::Unified,
            Family::Anthropic => StreamFormat::Anthropic(Box::new(MessagesStream::new(meta))),
            Family::Responses => StreamFormat::Responses(Box::new(ResponsesStream::new(meta))),
            Family::Gemini => StreamFormat::Gemini(Box::new(GenerateContentStream::new(meta))),
        };
        StreamEncoder { format, relayed: None }
    }

    /// The stream's `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        match &self.format {
            StreamFormat::Gemini(s) => s.content_type(),
            _ => "text/event-stream; charset=utf-8",
        }
    }

    /// Append the events for one chunk.
    pub fn chunk(&mut self, chunk: &Chunk, out: &mut BytesMut) {
        if let StreamFormat::Gemini(s) = &mut self.format {
            // Gemini's encoder frames relayed events too (SSE or a JSON array).
            return s.chunk(chunk, out);
        }
        if let Chunk::Native(event) = chunk {
            // Already in the client's API (only a provider speaking that API makes one).
            out.extend_from_slice(event);
            self.relayed = Some(event.clone());
            return;
        }
        match &mut self.format {
            // A chunk that only carries a thinking signature (which chat chunks never show) is
            // not written.
            StreamFormat::Unified if signature_only(chunk) => {}
            StreamFormat::Unified => write_json(out, chunk),
            StreamFormat::Anthropic(s) => s.chunk(chunk, out),
            StreamFormat::Responses(s) => s.chunk(chunk, out),
            StreamFormat::Gemini(s) => s.chunk(chunk, out),
        }
    }

    /// Append the end of a stream that completed. `usage` is what the upstream's decoder
    /// recorded: Gemini's last event reports it when no chunk carried usage (providers that
    /// record stream usage without forwarding it).
    pub fn finish(&mut self, usage: Option<&Usage>, out: &mut BytesMut) {
        if let StreamFormat::Gemini(s) = &mut self.format {
            return s.finish(usage, out);
        }
        if self.relayed.is_some() {
            return;
        }
        match &mut self.format {
            // A static byte string: nothing is allocated for it.
            StreamFormat::Unified => out.extend_from_slice(DONE),
            StreamFormat::Anthropic(s) => s.finish(out),
            StreamFormat::Responses(s) => s.finish(out),
            StreamFormat::Gemini(s) => s.finish(usage, out),
        }
    }

    /// Append the event of an error after the stream started; nothing may follow it.
    pub fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        match &mut self.format {
            StreamFormat::Unified => out.extend_from_slice(&error.stream_event()),
            StreamFormat::Anthropic(s) => s.error(error, out),
            // The upstream's own response is under way: the gateway's would be another one.
            StreamFormat::Responses(s) => match &self.relayed {
                Some(last) => s.relayed_error(error, last, out),
                None => s.error(error, out),
            },
            StreamFormat::Gemini(s) => s.error(error, out),
        }
    }
}

/// Whether a chunk carries nothing but a thinking signature.
fn signature_only(chunk: &Chunk) -> bool {
    let Chunk::Chat(c) = chunk else { return false };
    c.usage.is_none()
        && !c.choices.is_empty()
        && c.choices.iter().all(|ch| {
            let d = &ch.delta;
            d.thinking_signature.is_some()
                && ch.finish_reason.is_none()
                && d.role.is_none()
                && d.content.is_none()
                && d.tool_calls.is_none()
                && d.reasoning_content.is_none()
        })
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

/// The end of a completed unified stream (OpenAI's terminator, on MLflow's routes too).
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
    fn openai_and_native_streams_end_with_one_done() {
        for family in [Family::OpenAi, Family::Native] {
            let mut e = StreamEncoder::new(family, AnswerMeta::default());
            let mut out = BytesMut::new();
            e.chunk(&chunk(), &mut out);
            e.chunk(&chunk(), &mut out);
            e.finish(None, &mut out);
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert!(text.starts_with("data: {\"id\":\"c\""), "{family:?}: {text}");
            assert!(text.ends_with("}\n\ndata: [DONE]\n\n"), "{family:?}: {text}");
            assert_eq!(text.matches("[DONE]").count(), 1, "{family:?}: {text}");
        }
    }

    #[test]
    fn an_error_is_one_event_without_done() {
        for family in [Family::OpenAi, Family::Native] {
            let mut e = StreamEncoder::new(family, AnswerMeta::default());
            let mut out = BytesMut::new();
            e.chunk(&chunk(), &mut out);
            out.clear();
            e.error(&GatewayError::bad_gateway("boom"), &mut out);
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert_eq!(text, "data: {\"error\":{\"message\":\"boom\",\"type\":\"bad_gateway_error\"}}\n\n");
        }
    }

    #[test]
    fn a_relayed_responses_stream_ends_with_the_error_event_alone() {
        let meta = AnswerMeta { request_id: "r1".into(), ..AnswerMeta::default() };
        let mut e = StreamEncoder::new(Family::Responses, meta);
        let mut out = BytesMut::new();
        let relayed = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"Hi\"}\n\n";
        e.chunk(&Chunk::Native(Bytes::from_static(relayed.as_bytes())), &mut out);
        e.error(&GatewayError::bad_gateway("boom"), &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let rest = text.strip_prefix(relayed).unwrap();
        assert!(rest.starts_with("event: error\ndata: {\"type\":\"error\""), "{rest}");
        assert!(rest.ends_with(",\"sequence_number\":5}\n\n"), "{rest}");
        assert_eq!(
            rest.matches("event: ").count(),
            1,
            "no response.created or response.failed of the gateway's: {rest}"
        );
    }
}
