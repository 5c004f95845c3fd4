//! Unified stream chunks → Anthropic's stream events (docs/client-apis.md#messages-streams).
//!
//! Each event is `event: <type>\ndata: <json>\n\n`, written straight into the output buffer:
//! the frequent deltas from constant pieces and the fragment's JSON string, the rest with
//! serde; nothing is allocated per chunk.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::response::{Counts, Tally, message_id, stop_reason};
use crate::api::call_id;
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
const SIGNATURE_DELTA: &[u8] = b",\"delta\":{\"type\":\"signature_delta\",\"signature\":";

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
            // Claude's signature of the thinking block (Anthropic sends it last in the block).
            if let (Some(signature), Some(Open::Thinking(index))) = (d.thinking_signature.as_deref(), self.open) {
                delta(out, index, SIGNATURE_DELTA, signature);
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
                json(out, &call_id::join(&id, call.thought_signature.as_deref()));
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::error::ErrorKind;
    use crate::schema::{ChatChunk, ChunkChoice, CompletionsChunk, Delta, FunctionCallDelta, Usage, object};

    fn meta() -> AnswerMeta {
        AnswerMeta {
            model: Some("gpt-4o".into()),
            request_id: "req-1".into(),
            created: 1,
            echo: Map::new(),
            array_stream: false,
        }
    }

    fn chunk(delta: Delta, finish: Option<&str>, usage: Option<Usage>) -> Chunk {
        Chunk::Chat(ChatChunk {
            id: Some("chatcmpl-1".into()),
            object: object::CHAT_CHUNK,
            created: 1,
            model: Some("gpt-4o-2024-08-06".into()),
            choices: vec![ChunkChoice { index: 0, finish_reason: finish.map(str::to_owned), delta }],
            usage,
            provider: "openai",
        })
    }

    fn text(s: &str) -> Chunk {
        chunk(Delta { content: Some(s.into()), ..Delta::default() }, None, None)
    }

    fn think(s: &str) -> Chunk {
        chunk(Delta { reasoning_content: Some(s.into()), ..Delta::default() }, None, None)
    }

    fn tool(index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) -> Chunk {
        let call = ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            kind: id.map(|_| "function"),
            function: FunctionCallDelta { name: name.map(str::to_owned), arguments: Some(arguments.into()) },
            thought_signature: None,
        };
        chunk(Delta { tool_calls: Some(vec![call]), ..Delta::default() }, None, None)
    }

    fn finish(reason: &str) -> Chunk {
        chunk(Delta::default(), Some(reason), None)
    }

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(prompt + completion),
            ..Usage::default()
        }
    }

    /// A usage-only chunk (OpenAI's last with `include_usage`).
    fn usage_only(prompt: u64, completion: u64) -> Chunk {
        let Chunk::Chat(mut c) = finish("stop") else { unreachable!() };
        c.choices.clear();
        c.usage = Some(usage(prompt, completion));
        Chunk::Chat(c)
    }

    fn encode(chunks: &[Chunk]) -> String {
        let mut s = MessagesStream::new(meta());
        let mut out = BytesMut::new();
        for c in chunks {
            s.chunk(c, &mut out);
        }
        s.finish(&mut out);
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }

    /// The events of a stream, checking the framing: `event: <type>\ndata: <json>\n\n` with
    /// the data's `type` equal to the event's.
    fn events(text: &str) -> Vec<Value> {
        assert!(text.ends_with("\n\n"), "{text:?}");
        text.trim_end_matches("\n\n")
            .split("\n\n")
            .map(|ev| {
                let (name, data) = ev
                    .strip_prefix("event: ")
                    .and_then(|e| e.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("malformed event {ev:?}"));
                let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{data}: {e}"));
                assert_eq!(v["type"], json!(name), "{ev}");
                v
            })
            .collect()
    }

    fn start(input_tokens: u64) -> Value {
        json!({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "gpt-4o", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0},
        }})
    }

    fn block_start(index: u32, block: Value) -> Value {
        json!({"type": "content_block_start", "index": index, "content_block": block})
    }

    fn block_delta(index: u32, delta: Value) -> Value {
        json!({"type": "content_block_delta", "index": index, "delta": delta})
    }

    fn block_stop(index: u32) -> Value {
        json!({"type": "content_block_stop", "index": index})
    }

    fn end(stop_reason: &str, input: u64, output: u64) -> [Value; 2] {
        [
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                   "usage": {"input_tokens": input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": output}}),
            json!({"type": "message_stop"}),
        ]
    }

    #[test]
    fn the_bytes_of_a_short_stream() {
        let mut first = chunk(
            Delta { role: Some("assistant".into()), content: Some(String::new()), ..Delta::default() },
            None,
            None,
        );
        if let Chunk::Chat(c) = &mut first {
            c.usage = Some(usage(3, 0));
        }
        let text = encode(&[first, text("Hi \"there\""), finish("stop"), usage_only(3, 2)]);
        assert_eq!(
            text,
            concat!(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",",
                "\"role\":\"assistant\",\"model\":\"gpt-4o\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,",
                "\"usage\":{\"input_tokens\":3,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}}\n\n",
                "event: ping\ndata: {\"type\":\"ping\"}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\\"there\\\"\"}}\n\n",
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},",
                "\"usage\":{\"input_tokens\":3,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":2}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            )
        );
    }

    #[test]
    fn text_then_two_tool_calls() {
        let first = chunk(
            Delta { role: Some("assistant".into()), content: Some(String::new()), ..Delta::default() },
            None,
            None,
        );
        let chunks = [
            first,
            text("Checking"),
            text(" now."),
            tool(0, Some("call_a"), Some("get_weather"), ""),
            tool(0, None, None, "{\"city\":"),
            tool(0, None, None, "\"Paris\"}"),
            tool(1, Some("call_b"), Some("get_time"), "{}"),
            finish("tool_calls"),
            usage_only(20, 9),
        ];
        let expected: Vec<Value> = [
            start(0),
            json!({"type": "ping"}),
            block_start(0, json!({"type": "text", "text": ""})),
            block_delta(0, json!({"type": "text_delta", "text": "Checking"})),
            block_delta(0, json!({"type": "text_delta", "text": " now."})),
            block_stop(0),
            block_start(1, json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})),
            block_delta(1, json!({"type": "input_json_delta", "partial_json": "{\"city\":"})),
            block_delta(1, json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"})),
            block_stop(1),
            block_start(2, json!({"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}})),
            block_delta(2, json!({"type": "input_json_delta", "partial_json": "{}"})),
            block_stop(2),
        ]
        .into_iter()
        .chain(end("tool_use", 20, 9))
        .collect();
        assert_eq!(events(&encode(&chunks)), expected);
    }

    #[test]
    fn thinking_then_text() {
        let chunks = [think("Let me"), think(" think."), text("Answer."), finish("stop")];
        let expected: Vec<Value> = [
            start(0),
            json!({"type": "ping"}),
            block_start(0, json!({"type": "thinking", "thinking": "", "signature": ""})),
            block_delta(0, json!({"type": "thinking_delta", "thinking": "Let me"})),
            block_delta(0, json!({"type": "thinking_delta", "thinking": " think."})),
            block_stop(0),
            block_start(1, json!({"type": "text", "text": ""})),
            block_delta(1, json!({"type": "text_delta", "text": "Answer."})),
            block_stop(1),
        ]
        .into_iter()
        .chain(end("end_turn", 0, 0))
        .collect();
        assert_eq!(events(&encode(&chunks)), expected);
    }

    #[test]
    fn usage_only_at_the_end_with_cache_counts() {
        let mut u = usage(1_000, 50);
        u.prompt_tokens_details = Some(json!({"cached_tokens": 600}));
        u.extra.insert("cache_creation_input_tokens".into(), json!(100));
        let mut last = usage_only(0, 0);
        if let Chunk::Chat(c) = &mut last {
            c.usage = Some(u);
        }
        let evs = events(&encode(&[text("x"), finish("length"), last]));
        assert_eq!(evs[0]["message"]["usage"]["input_tokens"], json!(0), "not known yet");
        assert_eq!(
            evs[evs.len() - 2],
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
                   "usage": {"input_tokens": 300, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 600, "output_tokens": 50}})
        );
        // Counts spread over chunks are each kept (Gemini-style cumulative usage on every chunk).
        let mut a = text("a");
        if let Chunk::Chat(c) = &mut a {
            c.usage = Some(Usage { prompt_tokens: Some(7), ..Usage::default() });
        }
        let mut b = finish("stop");
        if let Chunk::Chat(c) = &mut b {
            c.usage = Some(Usage { completion_tokens: Some(4), ..Usage::default() });
        }
        let evs = events(&encode(&[a, b]));
        assert_eq!(evs[0]["message"]["usage"]["input_tokens"], json!(7), "known at the start");
        assert_eq!(evs[evs.len() - 2]["usage"]["input_tokens"], json!(7));
        assert_eq!(evs[evs.len() - 2]["usage"]["output_tokens"], json!(4));
    }

    #[test]
    fn an_error_mid_stream() {
        let mut s = MessagesStream::new(meta());
        let mut out = BytesMut::new();
        s.chunk(&text("partial"), &mut out);
        s.error(&GatewayError::new(529, ErrorKind::Upstream, "Overloaded"), &mut out);
        s.chunk(&text("more"), &mut out);
        s.finish(&mut out);
        s.error(&GatewayError::bad_gateway("again"), &mut out);
        assert!(s.failed());
        let text = String::from_utf8(out.to_vec()).unwrap_or_default();
        let evs = events(&text);
        assert_eq!(
            evs,
            vec![
                start(0),
                json!({"type": "ping"}),
                block_start(0, json!({"type": "text", "text": ""})),
                block_delta(0, json!({"type": "text_delta", "text": "partial"})),
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ]
        );
        assert!(text.ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"));
    }

    #[test]
    fn streams_without_chunks() {
        let mut s = MessagesStream::new(meta());
        let mut out = BytesMut::new();
        s.finish(&mut out);
        assert!(!s.failed());
        let mut no_id = start(0);
        no_id["message"]["id"] = json!("msg_req-1");
        let expected: Vec<Value> = [no_id, json!({"type": "ping"})].into_iter().chain(end("end_turn", 0, 0)).collect();
        assert_eq!(events(std::str::from_utf8(&out).unwrap_or_default()), expected);

        let mut s = MessagesStream::new(meta());
        let mut out = BytesMut::new();
        s.error(&GatewayError::timeout("upstream timed out"), &mut out);
        assert_eq!(
            std::str::from_utf8(&out).ok(),
            Some(
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream timed out\"}}\n\n"
            )
        );
        let mut s = MessagesStream::new(meta());
        let mut out = BytesMut::new();
        s.error(&GatewayError::new(429, ErrorKind::Upstream, "slow down"), &mut out);
        assert_eq!(
            events(std::str::from_utf8(&out).unwrap_or_default())[0]["error"]["type"],
            json!("rate_limit_error")
        );
    }

    #[test]
    fn interleaved_tool_arguments_end_the_stream_with_an_error() {
        let chunks = [
            tool(0, Some("a"), Some("f"), "{\"x\":"),
            tool(1, Some("b"), Some("g"), "{}"),
            tool(0, None, None, "1}"),
            text("never"),
        ];
        let mut s = MessagesStream::new(meta());
        let mut out = BytesMut::new();
        for c in &chunks {
            s.chunk(c, &mut out);
        }
        s.finish(&mut out);
        assert!(s.failed());
        let evs = events(std::str::from_utf8(&out).unwrap_or_default());
        let last = &evs[evs.len() - 1];
        assert_eq!(last["error"]["type"], json!("api_error"), "{last}");
        assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("interleaved")), "{last}");
        assert_eq!(evs.iter().filter(|e| e["type"] == "message_stop").count(), 0);
        assert_eq!(evs[evs.len() - 2], block_delta(1, json!({"type": "input_json_delta", "partial_json": "{}"})));
    }

    #[test]
    fn tool_calls_without_ids_and_repeated_indices() {
        // A call without an id gets one; a new id at a known index is a new call (servers that
        // send every whole call at index 0); a repeated id continues its call.
        let chunks = [
            tool(0, None, Some("f"), "{}"),
            tool(0, Some("b"), Some("g"), "{\"a\":"),
            tool(0, Some("b"), None, "1}"),
            finish("tool_calls"),
        ];
        let evs = events(&encode(&chunks));
        assert_eq!(
            evs[2],
            block_start(0, json!({"type": "tool_use", "id": "toolu_req-1_0", "name": "f", "input": {}}))
        );
        assert_eq!(evs[5], block_start(1, json!({"type": "tool_use", "id": "b", "name": "g", "input": {}})));
        assert_eq!(evs[7], block_delta(1, json!({"type": "input_json_delta", "partial_json": "1}"})));
    }

    #[test]
    fn other_choices_and_completions_chunks() {
        let Chunk::Chat(mut c) = text("zero") else { unreachable!() };
        let mut other = c.choices[0].clone();
        other.index = 1;
        other.delta.content = Some("one".into());
        c.choices.push(other);
        let text = encode(&[Chunk::Chat(c)]);
        assert!(text.contains("zero") && !text.contains("one"), "{text}");

        let completions = Chunk::Completions(CompletionsChunk {
            id: None,
            object: object::COMPLETION_CHUNK,
            created: 1,
            model: None,
            choices: Vec::new(),
            usage: None,
        });
        let mut s = MessagesStream::new(meta());
        let mut out = BytesMut::new();
        s.chunk(&completions, &mut out);
        assert!(s.failed());
        assert_eq!(events(std::str::from_utf8(&out).unwrap_or_default())[0]["error"]["type"], json!("api_error"));
    }
}

/// Properties: the events do not depend on how the upstream cut its fragments into chunks, nor
/// on how the output is cut into writes.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::schema::{ChatChunk, ChunkChoice, Delta, FunctionCallDelta, Usage, object};

    #[derive(Debug, Clone)]
    enum Segment {
        Think(String),
        Text(String),
        Tool(String),
    }

    fn segment() -> impl Strategy<Value = Segment> {
        let s = "[a-zé€\"\\\\ {}:,\n]{0,24}";
        prop_oneof![s.prop_map(Segment::Think), s.prop_map(Segment::Text), s.prop_map(Segment::Tool)]
    }

    fn chunk(delta: Delta, finish: Option<&str>, usage: Option<Usage>) -> Chunk {
        Chunk::Chat(ChatChunk {
            id: Some("chatcmpl-p".into()),
            object: object::CHAT_CHUNK,
            created: 1,
            model: None,
            choices: if delta == Delta::default() && finish.is_none() {
                Vec::new()
            } else {
                vec![ChunkChoice { index: 0, finish_reason: finish.map(str::to_owned), delta }]
            },
            usage,
            provider: "p",
        })
    }

    /// `s` cut at the character positions `cuts` (taken modulo its length, sorted).
    fn pieces(s: &str, cuts: &[usize]) -> Vec<String> {
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let mut at: Vec<usize> = cuts.iter().map(|c| bounds[c % bounds.len()]).collect();
        at.sort_unstable();
        let mut out = Vec::new();
        let mut from = 0;
        for a in at.into_iter().chain([s.len()]) {
            out.push(s[from..a].to_owned());
            from = a;
        }
        out
    }

    /// The chunks of `segments`, each fragment cut by `cuts`; the finish reason on the last
    /// fragment or alone, the usage on its own chunk or with the finish reason.
    fn chunks(segments: &[Segment], cuts: &[Vec<usize>], finish_alone: bool, usage_alone: bool) -> Vec<Chunk> {
        let mut out = Vec::new();
        let mut tools = 0;
        for (k, seg) in segments.iter().enumerate() {
            let no_cuts = Vec::new();
            let cuts = cuts.get(k).unwrap_or(&no_cuts);
            match seg {
                Segment::Think(s) => out.extend(
                    pieces(s, cuts)
                        .into_iter()
                        .map(|p| chunk(Delta { reasoning_content: Some(p), ..Delta::default() }, None, None)),
                ),
                Segment::Text(s) => out.extend(
                    pieces(s, cuts)
                        .into_iter()
                        .map(|p| chunk(Delta { content: Some(p), ..Delta::default() }, None, None)),
                ),
                Segment::Tool(s) => {
                    for (j, p) in pieces(s, cuts).into_iter().enumerate() {
                        let call = ToolCallDelta {
                            index: tools,
                            id: (j == 0).then(|| format!("call_{tools}")),
                            kind: (j == 0).then_some("function"),
                            function: FunctionCallDelta {
                                name: (j == 0).then(|| format!("tool_{tools}")),
                                arguments: Some(p),
                            },
                            thought_signature: None,
                        };
                        out.push(chunk(Delta { tool_calls: Some(vec![call]), ..Delta::default() }, None, None));
                    }
                    tools += 1;
                }
            }
        }
        let usage = Usage { prompt_tokens: Some(11), completion_tokens: Some(22), ..Usage::default() };
        let last_has_choice = matches!(out.last(), Some(Chunk::Chat(c)) if !c.choices.is_empty());
        match (finish_alone || !last_has_choice, usage_alone) {
            (true, true) => {
                out.push(chunk(Delta::default(), Some("stop"), None));
                out.push(chunk(Delta::default(), None, Some(usage)));
            }
            (true, false) => out.push(chunk(Delta::default(), Some("stop"), Some(usage))),
            (false, alone) => {
                if let Some(Chunk::Chat(c)) = out.last_mut() {
                    c.choices[0].finish_reason = Some("stop".into());
                    if !alone {
                        c.usage = Some(usage.clone());
                    }
                }
                if alone {
                    out.push(chunk(Delta::default(), None, Some(usage)));
                }
            }
        }
        out
    }

    /// The stream's bytes, the output cut into a new buffer wherever `cut_after` says.
    fn encode(chunks: &[Chunk], cut_after: &[bool]) -> Vec<u8> {
        let meta = AnswerMeta {
            model: Some("m".into()),
            request_id: "r".into(),
            created: 0,
            echo: Map::new(),
            array_stream: false,
        };
        let mut s = MessagesStream::new(meta);
        let mut all = Vec::new();
        let mut out = BytesMut::new();
        for (i, c) in chunks.iter().enumerate() {
            s.chunk(c, &mut out);
            if cut_after.get(i).copied().unwrap_or(false) {
                all.extend_from_slice(&out.split());
                out = BytesMut::new();
            }
        }
        s.finish(&mut out);
        all.extend_from_slice(&out);
        all
    }

    /// The events, consecutive deltas of one block merged into one, and without
    /// `message_start`'s usage (the counts known when the first chunk came, which depends on
    /// what that chunk carried).
    fn merged(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        let mut events: Vec<Value> = Vec::new();
        for ev in text.trim_end_matches("\n\n").split("\n\n") {
            let data = ev.split_once("\ndata: ").map(|(_, d)| d).unwrap_or_default();
            let mut v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{ev:?}: {e}"));
            if let Some(m) = v.get_mut("message").and_then(Value::as_object_mut) {
                m.remove("usage");
            }
            if let Some(prev) = events.last_mut()
                && prev["type"] == "content_block_delta"
                && v["type"] == "content_block_delta"
                && prev["index"] == v["index"]
            {
                for key in ["text", "thinking", "partial_json"] {
                    if let (Some(Value::String(a)), Some(Value::String(b))) =
                        (prev["delta"].get_mut(key), v["delta"].get(key))
                    {
                        a.push_str(b);
                    }
                }
                continue;
            }
            events.push(v);
        }
        events
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(
            segments in prop::collection::vec(segment(), 0..6),
            cuts_a in prop::collection::vec(prop::collection::vec(0usize..64, 0..4), 6),
            cuts_b in prop::collection::vec(prop::collection::vec(0usize..64, 0..4), 6),
            finish_alone in any::<bool>(),
            usage_alone in any::<bool>(),
            writes in prop::collection::vec(any::<bool>(), 0..40),
        ) {
            let whole = chunks(&segments, &[], true, true);
            let a = chunks(&segments, &cuts_a, finish_alone, usage_alone);
            let b = chunks(&segments, &cuts_b, !finish_alone, !usage_alone);
            let expected = merged(&encode(&whole, &[]));
            prop_assert_eq!(&merged(&encode(&a, &[])), &expected);
            prop_assert_eq!(&merged(&encode(&b, &[])), &expected);
            // How the output is cut into writes changes nothing.
            prop_assert_eq!(encode(&a, &writes), encode(&a, &[]));

            // The blocks carry the segments' text; indices count up from 0.
            let mut blocks: Vec<(String, String)> = Vec::new();
            for ev in &expected {
                match ev["type"].as_str() {
                    Some("content_block_start") => {
                        prop_assert_eq!(ev["index"].as_u64(), Some(blocks.len() as u64));
                        blocks.push((ev["content_block"]["type"].as_str().unwrap_or_default().to_owned(), String::new()));
                    }
                    Some("content_block_delta") => {
                        let d = &ev["delta"];
                        let piece = d["text"].as_str().or(d["thinking"].as_str()).or(d["partial_json"].as_str());
                        if let Some(last) = blocks.last_mut() {
                            last.1.push_str(piece.unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
            let mut want: Vec<(String, String)> = Vec::new();
            for seg in &segments {
                let (kind, s) = match seg {
                    Segment::Think(s) => ("thinking", s),
                    Segment::Text(s) => ("text", s),
                    Segment::Tool(s) => ("tool_use", s),
                };
                match want.last_mut() {
                    Some(last) if last.0 == kind && kind != "tool_use" => last.1.push_str(s),
                    _ if s.is_empty() && kind != "tool_use" => {}
                    _ => want.push((kind.to_owned(), s.clone())),
                }
            }
            prop_assert_eq!(blocks, want);
            let end = &expected[expected.len() - 2];
            prop_assert_eq!(&end["usage"], &json!({"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 22}));
            prop_assert_eq!(&end["delta"]["stop_reason"], &json!("end_turn"));
        }
    }
}
