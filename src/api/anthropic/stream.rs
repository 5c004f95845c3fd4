//! Unified stream chunks → Anthropic's stream events (docs/client-apis.md#streams).
//!
//! Each event is `event: <type>\ndata: <json>\n\n`, written straight into the output buffer:
//! the frequent deltas from constant pieces and the fragment's JSON string, the rest with
//! serde; nothing is allocated per chunk.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::response::{Counts, Tally, message_id, stop_reason};
use crate::api::encode::AnswerMeta;
use crate::error::{Family, GatewayError};
use crate::schema::{Chunk, ToolCallDelta};

const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
const BLOCK_START: &[u8] = b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":";
const BLOCK_DELTA: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":";
const BLOCK_STOP: &[u8] = b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":";
const TEXT_START: &[u8] = b",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const THINKING_START: &[u8] = b",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n";
const TEXT_DELTA: &[u8] = b",\"delta\":{\"type\":\"text_delta\",\"text\":";
const THINKING_DELTA: &[u8] = b",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":";
const JSON_DELTA: &[u8] = b",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":";

/// The content block being written (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Thinking(u32),
    Text(u32),
    Tool(u32),
}

/// A tool call seen in the stream: its unified index, its id and its block.
#[derive(Debug)]
struct ToolBlock {
    index: u32,
    id: String,
    block: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing written yet.
    Fresh,
    /// `message_start` written.
    Started,
    /// `message_stop` or `error` written: nothing more is.
    Ended,
}

/// Writes unified chunks as Anthropic's stream events: `message_start` and one `ping` on the
/// first chunk; reasoning as a `thinking` block, text as a `text` block, each tool call as a
/// `tool_use` block (`input_json_delta` per arguments fragment), a block stopped when another
/// starts, indices 0, 1, 2… in the order blocks start; at the end `message_delta` (stop reason
/// and cumulative usage) and `message_stop`, or one `error` event.
///
/// Arguments for a tool call whose block was already stopped (parallel calls interleaved)
/// cannot be expressed in Anthropic's events: the stream ends with the `error` event then
/// ([`MessagesStream::failed`] tells).
#[derive(Debug)]
pub struct MessagesStream {
    meta: AnswerMeta,
    phase: Phase,
    failed: bool,
    /// Blocks started so far (the next block's index).
    blocks: u32,
    open: Option<Open>,
    tools: Vec<ToolBlock>,
    stop_reason: Option<&'static str>,
    usage: Tally,
}

impl MessagesStream {
    /// An encoder for one stream.
    pub fn new(meta: AnswerMeta) -> Self {
        MessagesStream {
            meta,
            phase: Phase::Fresh,
            failed: false,
            blocks: 0,
            open: None,
            tools: Vec::new(),
            stop_reason: None,
            usage: Tally::default(),
        }
    }

    /// Whether the stream ended with an `error` event (written by [`MessagesStream::error`], or
    /// for a chunk the encoder could not express).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Append the events for one chunk.
    pub fn chunk(&mut self, chunk: &Chunk, out: &mut BytesMut) {
        if self.phase == Phase::Ended {
            return;
        }
        let Chunk::Chat(c) = chunk else {
            self.error(&GatewayError::internal("the Messages API can only stream chat chunks"), out);
            return;
        };
        if let Some(u) = &c.usage {
            self.usage.add(u);
        }
        if self.phase == Phase::Fresh {
            self.start(c.id.as_deref(), c.model.as_deref(), out);
        }
        for choice in c.choices.iter().filter(|ch| ch.index == 0) {
            let d = &choice.delta;
            if let Some(text) = d.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some(Open::Thinking(i)) => i,
                    _ => self.open_block(Open::Thinking, THINKING_START, out),
                };
                delta(out, index, THINKING_DELTA, text);
            }
            if let Some(text) = d.content.as_deref().filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some(Open::Text(i)) => i,
                    _ => self.open_block(Open::Text, TEXT_START, out),
                };
                delta(out, index, TEXT_DELTA, text);
            }
            for call in d.tool_calls.iter().flatten() {
                if let Err(e) = self.tool(call, out) {
                    self.error(&e, out);
                    return;
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.stop_reason = Some(stop_reason(Some(reason)));
            }
        }
    }

    /// Append the end of a stream that completed: the open block's stop, `message_delta` and
    /// `message_stop` (after a `message_start` if no chunk came).
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.phase == Phase::Ended {
            return;
        }
        if self.phase == Phase::Fresh {
            self.start(None, None, out);
        }
        self.close(out);
        let end = MessageDelta {
            kind: "message_delta",
            delta: StopDelta { stop_reason: self.stop_reason.unwrap_or("end_turn"), stop_sequence: None },
            usage: self.usage.counts(),
        };
        event(out, "message_delta", &end);
        out.extend_from_slice(MESSAGE_STOP);
        self.phase = Phase::Ended;
    }

    /// Append the event of an error after the stream started (or before anything was
    /// written: then it is the only event). Nothing is written after it.
    pub fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        if self.phase == Phase::Ended {
            return;
        }
        let message = error.message();
        let ev = ErrorEvent {
            kind: "error",
            error: ErrorBody {
                kind: GatewayError::anthropic_type(error.status_for(Family::Anthropic)),
                message: &message,
            },
        };
        event(out, "error", &ev);
        self.phase = Phase::Ended;
        self.failed = true;
    }

    fn start(&mut self, id: Option<&str>, model: Option<&str>, out: &mut BytesMut) {
        let id = message_id(id, &self.meta.request_id);
        let start = MessageStart {
            kind: "message_start",
            message: StartMessage {
                id: &id,
                kind: "message",
                role: "assistant",
                model: self.meta.model.as_deref().or(model).unwrap_or_default(),
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: self.usage.counts(),
            },
        };
        event(out, "message_start", &start);
        out.extend_from_slice(PING);
        self.phase = Phase::Started;
    }

    /// Stop the open block, if any.
    fn close(&mut self, out: &mut BytesMut) {
        if let Some(Open::Thinking(i) | Open::Text(i) | Open::Tool(i)) = self.open.take() {
            out.extend_from_slice(BLOCK_STOP);
            index(out, i);
            out.extend_from_slice(b"}\n\n");
        }
    }

    /// Stop the open block and start the next: `content_block_start` up to its index, then
    /// `rest` (the block and the event's end) unless it is empty.
    fn open_block(&mut self, kind: fn(u32) -> Open, rest: &[u8], out: &mut BytesMut) -> u32 {
        self.close(out);
        let i = self.blocks;
        self.blocks += 1;
        self.open = Some(kind(i));
        out.extend_from_slice(BLOCK_START);
        index(out, i);
        out.extend_from_slice(rest);
        i
    }

    /// One tool-call fragment: a new call (a new unified index, or a new id at a known index)
    /// starts a `tool_use` block; arguments go to its block, which must still be open.
    fn tool(&mut self, call: &ToolCallDelta, out: &mut BytesMut) -> Result<(), GatewayError> {
        let id = call.id.as_deref().filter(|id| !id.is_empty());
        let known = self.tools.iter().rev().find(|t| t.index == call.index && id.is_none_or(|id| id == t.id));
        let block = match known {
            Some(t) if self.open == Some(Open::Tool(t.block)) => t.block,
            Some(t) => {
                return Err(GatewayError::bad_gateway(format!(
                    "the upstream interleaved the arguments of parallel tool calls (tool call '{}'), which \
                     Anthropic's stream events cannot express",
                    t.id
                )));
            }
            None => {
                let i = self.open_block(Open::Tool, b"", out);
                let id = match id {
                    Some(id) => id.to_owned(),
                    None => format!("toolu_{}_{i}", self.meta.request_id),
                };
                let name = call.function.name.as_deref().unwrap_or_default();
                out.extend_from_slice(b",\"content_block\":{\"type\":\"tool_use\",\"id\":");
                json(out, &id);
                out.extend_from_slice(b",\"name\":");
                json(out, name);
                out.extend_from_slice(b",\"input\":{}}}\n\n");
                self.tools.push(ToolBlock { index: call.index, id, block: i });
                i
            }
        };
        if let Some(arguments) = call.function.arguments.as_deref().filter(|a| !a.is_empty()) {
            delta(out, block, JSON_DELTA, arguments);
        }
        Ok(())
    }
}

/// A `content_block_delta` event: `kind` is the delta's type and field up to the value.
fn delta(out: &mut BytesMut, i: u32, kind: &[u8], text: &str) {
    out.reserve(BLOCK_DELTA.len() + kind.len() + text.len() + 16);
    out.extend_from_slice(BLOCK_DELTA);
    index(out, i);
    out.extend_from_slice(kind);
    json(out, text);
    out.extend_from_slice(b"}}\n\n");
}

fn index(out: &mut BytesMut, i: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// One event with a serde-written body.
fn event<T: Serialize>(out: &mut BytesMut, name: &str, data: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    json(out, data);
    out.extend_from_slice(b"\n\n");
}

/// `value` as JSON, written into `out`.
fn json<T: Serialize + ?Sized>(out: &mut BytesMut, value: &T) {
    // Serialising strings and the structs here cannot fail (no maps with non-string keys).
    if serde_json::to_writer(BufMut::writer(&mut *out), value).is_err() {
        log::error!("failed to serialise an Anthropic stream event");
    }
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: StartMessage<'a>,
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: Counts,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: Counts,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}
