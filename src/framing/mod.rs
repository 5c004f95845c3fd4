//! Framings of upstream streams: how a streamed answer's bytes, split anywhere, become whole
//! events, and the [`StreamDecoder`] interface a framing plus a provider's translation
//! implements.
//!
//! * [`sse`]: server-sent events (OpenAI and its family, Anthropic, Gemini, Vertex AI):
//!   [`sse::SseParser`], and [`sse::SseStream`] driving a provider's [`sse::SseTranslate`];
//! * [`ndjson`]: newline-delimited JSON (Cohere): [`ndjson::NdjsonLines`], and
//!   [`ndjson::NdjsonStream`] driving a provider's [`ndjson::LineTranslate`];
//! * [`eventstream`]: the AWS event-stream binary framing (Bedrock's ConverseStream).
//!
//! Every framing caps what it buffers for one event ([`StreamDecoder::set_max_event`], or a
//! cap of its own), and a stream that ends before its provider's end-of-stream marker fails
//! with [`incomplete`]. Nothing here knows a provider: this module sits below `providers` and
//! imports only `error` and `schema`.

pub mod eventstream;
pub mod ndjson;
pub mod sse;

use crate::error::GatewayError;
use crate::schema::{Chunk, Usage};

/// Translates a streamed upstream body, chunk by chunk, into unified stream chunks.
pub trait StreamDecoder: Send {
    /// Feed the next upstream bytes (split anywhere); push the unified chunks they complete to
    /// `out`. An error ends the stream with one error event.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Chunk>) -> Result<(), GatewayError>;
    /// The upstream body ended: flush what is left, and check that the stream reached the
    /// provider's end of stream (else [`incomplete`]).
    fn finish(&mut self, out: &mut Vec<Chunk>) -> Result<(), GatewayError>;
    /// Token usage reported by the stream so far.
    fn usage(&self) -> Option<&Usage> {
        None
    }
    /// Accept upstream events (an SSE line or event, an NDJSON line) of at most `bytes` bytes;
    /// a bigger one ends the stream with [`event_too_large`] before it is buffered.
    /// The server sets `aigw.max_response_body` before the first chunk. The default does
    /// nothing, for framings with a cap of their own (Bedrock's event stream: 16 MiB).
    fn set_max_event(&mut self, bytes: usize) {
        let _ = bytes;
    }
    /// Whether a 2xx answer of this content type is a whole JSON body rather than this
    /// decoder's stream (an upstream or proxy that ignored `stream: true`, or reported an
    /// error with a 2xx); the server then answers an error instead of starting the stream. The
    /// default: any JSON type (`application/json`, `…+json`).
    fn is_whole_json(&self, content_type: &str) -> bool {
        is_json(content_type)
    }
}

/// A line or an event's data longer than a framing's limit (`set_max_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The limit that was exceeded, in bytes.
    pub limit: usize,
}

/// The error of a stream whose upstream body ended, cleanly, before the provider's end of
/// stream (its `[DONE]`, final event or finish reason): the answer may be cut short.
pub fn incomplete() -> GatewayError {
    GatewayError::bad_gateway("upstream stream ended before it was complete")
}

/// The error of a stream whose upstream body ended before any event was translated (an empty
/// body, or only keep-alives and terminators).
pub fn no_data() -> GatewayError {
    GatewayError::bad_gateway("upstream stream ended without any data")
}

/// The error of one upstream stream event (an SSE line or event, an NDJSON line) larger than
/// `limit` bytes (`aigw.max_response_body`); counted as `response_too_large`.
pub fn event_too_large(limit: usize) -> GatewayError {
    GatewayError::bad_gateway(format!(
        "upstream sent a stream event larger than {limit} bytes (aigw.max_response_body)"
    ))
    .with_code("response_too_large")
    .rejected(crate::error::Reject::ResponseTooLarge)
}

/// Whether a content type is JSON (`application/json`, `application/problem+json`, …; any
/// case, parameters ignored).
pub fn is_json(content_type: &str) -> bool {
    let ct = media_type(content_type).as_bytes();
    ct.eq_ignore_ascii_case(b"application/json") || ct.len() > 5 && ct[ct.len() - 5..].eq_ignore_ascii_case(b"+json")
}

/// A content type without its parameters (`text/event-stream; charset=utf-8` →
/// `text/event-stream`), not lower-cased.
pub fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Helpers for the providers' stream tests.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    use super::StreamDecoder;
    use crate::error::GatewayError;
    use crate::schema::Chunk;

    /// Unified chunks as the JSON a native or `/v1` client reads.
    pub(crate) fn events(out: &[Chunk]) -> Vec<Value> {
        out.iter().map(|c| serde_json::to_value(c).expect("chunks serialise")).collect()
    }

    /// Feed `chunks` in order, then finish; stop at the first error. Returns the events
    /// written and that error.
    pub(crate) fn run<C: AsRef<[u8]>>(
        decoder: &mut dyn StreamDecoder,
        chunks: impl IntoIterator<Item = C>,
    ) -> (Vec<Value>, Option<GatewayError>) {
        let mut out = Vec::new();
        let mut err = None;
        for c in chunks {
            if let Err(e) = decoder.feed(c.as_ref(), &mut out) {
                err = Some(e);
                break;
            }
        }
        if err.is_none() {
            err = decoder.finish(&mut out).err();
        }
        (events(&out), err)
    }
}
