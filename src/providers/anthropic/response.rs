//! Anthropic Messages API answers → unified chat and completions answers, whole or streamed.
//!
//! The decoders here read the Messages API's wire format only, so Claude on Vertex AI
//! (`:rawPredict` / `:streamRawPredict`, same answers) uses them as they are.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::{Call, Decoder};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::sse::{SseStream, SseTranslate};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, CompletionChoice, CompletionChunkChoice,
    CompletionsChunk, CompletionsResponse, Delta, ResponseMessage, ToolCall, ToolCallDelta, Usage,
};

// ---- wire types ----

#[derive(Deserialize)]
struct WireMessage {
    id: Option<String>,
    model: Option<String>,
    role: Option<String>,
    content: Option<Vec<WireBlock>>,
    stop_reason: Option<String>,
    usage: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
    id: Option<String>,
    name: Option<String>,
    input: Option<Value>,
}

#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<WireStart>,
    index: Option<u64>,
    content_block: Option<WireBlock>,
    delta: Option<WireDelta>,
    usage: Option<Map<String, Value>>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireStart {
    id: Option<String>,
    model: Option<String>,
    usage: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
    signature: Option<String>,
    stop_reason: Option<String>,
}

// ---- shared mappings ----

/// Anthropic `stop_reason` → unified `finish_reason`: `max_tokens` and
/// `model_context_window_exceeded` → `length`, `tool_use` → `tool_calls`, `refusal` →
/// `content_filter`, anything else (`end_turn`, `stop_sequence`, `pause_turn`, …) → `stop`
/// (MLflow 3.18, docs/mlflow-compat.md#mlflow-318-provider-translations).
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage → unified usage: prompt tokens include cache reads and writes,
/// `prompt_tokens_details.cached_tokens` = cache reads, and every other upstream key
/// (`cache_creation_input_tokens`, `service_tier`, …) is kept as an extra key.
pub(crate) fn usage_from(u: &Map<String, Value>) -> Usage {
    let count = |k: &str| u.get(k).and_then(Value::as_u64);
    let (input, output) = (count("input_tokens"), count("output_tokens"));
    let (cache_read, cache_creation) = (count("cache_read_input_tokens"), count("cache_creation_input_tokens"));
    let prompt = (input.is_some() || cache_read.is_some() || cache_creation.is_some())
        .then(|| input.unwrap_or(0) + cache_read.unwrap_or(0) + cache_creation.unwrap_or(0));
    let mut extra = Map::new();
    for (k, v) in u {
        if !matches!(k.as_str(), "input_tokens" | "output_tokens" | "cache_read_input_tokens") && !v.is_null() {
            extra.insert(k.clone(), v.clone());
        }
    }
    Usage {
        prompt_tokens_details: cache_read.map(|c| json!({ "cached_tokens": c })),
        extra,
        ..Usage::new(prompt, output)
    }
}

fn unreadable(provider: &str, e: &serde_json::Error) -> GatewayError {
    GatewayError::bad_gateway(format!("{provider} sent an unreadable stream chunk: {e}"))
}

/// An upstream `error` event (`{"type": "error", "error": {"type", "message"}}`) as the
/// gateway error that ends the stream (docs/mlflow-compat.md#fix-9), with the status Anthropic uses for
/// that error type.
pub(crate) fn stream_error(error: Option<&Value>) -> GatewayError {
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let status = match kind {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("api_error") => 500,
        Some("overloaded_error") => 529,
        _ => 502,
    };
    let message = match error {
        Some(e) => match e.get("message").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => e.to_string(),
        },
        None => "the upstream stream reported an error".to_owned(),
    };
    GatewayError::new(status, ErrorKind::Upstream, message)
}

// ---- whole answers ----

/// The decoder for a chat answer: whole, or streamed (`stream`).
pub(crate) fn chat_decoder(stream: bool, call: &Call<'_>) -> Decoder {
    let (provider, created) = (call.provider_label(), call.created);
    if stream {
        return Decoder::Stream(Box::new(MessagesStream::chat(provider, created)));
    }
    Decoder::Json(Box::new(move |body| decode_chat(body, provider, created)))
}

/// The decoder for a completions answer: whole, or streamed (`stream`).
pub(crate) fn completions_decoder(stream: bool, call: &Call<'_>) -> Decoder {
    let (provider, created) = (call.provider_label(), call.created);
    if stream {
        return Decoder::Stream(Box::new(MessagesStream::completions(provider, created)));
    }
    Decoder::Json(Box::new(move |body| decode_completions(body, provider, created)))
}

/// Decode a Messages API answer into a unified chat answer: `text` blocks concatenated into
/// `content`, `thinking` blocks into `reasoning_content` (docs/mlflow-compat.md#fix-9: not merged into
/// `content`), `tool_use` blocks into `tool_calls` (arguments encoded like Python's
/// `json.dumps`).
pub(crate) fn decode_chat(body: &[u8], provider: &'static str, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireMessage = super::super::parse_upstream_json(body, provider)?;
    let mut content: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut signatures: Vec<String> = Vec::new();
    let mut tool_calls: Vec<ToolCall> = Vec::new();
    for block in wire.content.unwrap_or_default() {
        match block.kind.as_deref() {
            Some("text") => content.get_or_insert_with(String::new).push_str(block.text.as_deref().unwrap_or("")),
            Some("thinking") => {
                reasoning.get_or_insert_with(String::new).push_str(block.thinking.as_deref().unwrap_or(""));
                signatures.push(block.signature.unwrap_or_default());
            }
            Some("tool_use") => tool_calls.push(ToolCall::function(
                block.id.unwrap_or_default(),
                block.name.unwrap_or_default(),
                super::super::python_json(&block.input.unwrap_or_else(|| Value::Object(Map::new()))),
            )),
            _ => {}
        }
    }
    let message = ResponseMessage::new(
        wire.role.unwrap_or_else(|| "assistant".into()),
        content,
        (!tool_calls.is_empty()).then_some(tool_calls),
    )
    .with_reasoning(reasoning)
    .with_thinking_signature(single_signature(signatures));
    let finish = Some(finish_reason(wire.stop_reason.as_deref()).to_owned());
    Ok(Answer::Chat(ChatResponse::new(
        wire.id,
        created,
        wire.model,
        vec![ChatChoice::new(0, message, finish)],
        wire.usage.as_ref().map(usage_from).unwrap_or_default(),
        provider,
    )))
}

/// The signature of an answer's thinking when it came as one signed block: the joined text of
/// several blocks has no signature.
pub(crate) fn single_signature(mut signatures: Vec<String>) -> Option<String> {
    match signatures.pop() {
        Some(sig) if signatures.is_empty() && !sig.is_empty() => Some(sig),
        _ => None,
    }
}

/// Decode a Messages API answer into a unified completions answer (the text blocks
/// concatenated).
pub(crate) fn decode_completions(body: &[u8], provider: &'static str, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireMessage = super::super::parse_upstream_json(body, provider)?;
    let mut text = String::new();
    for block in wire.content.unwrap_or_default() {
        if block.kind.as_deref() == Some("text") {
            text.push_str(block.text.as_deref().unwrap_or(""));
        }
    }
    let finish = Some(finish_reason(wire.stop_reason.as_deref()).to_owned());
    Ok(Answer::Completions(CompletionsResponse::new(
        wire.id,
        created,
        wire.model,
        vec![CompletionChoice::new(0, Some(text), finish)],
        wire.usage.as_ref().map(usage_from).unwrap_or_default(),
    )))
}

// ---- streams ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Chat,
    Completions,
}

/// Translates a Messages API event stream (`message_start`, `content_block_start`,
/// `content_block_delta`, `message_delta`, …) into unified chat or completions chunks.
///
/// * `message_start`: remembers id, model and input/cache token counts; no chunk;
/// * chat: a text block start → `content: ""`; a `tool_use` block start → a tool call with
///   its id and name, indexed by the block's ordinal among tool blocks; `text_delta` →
///   `content`; `input_json_delta` → that tool call's argument fragment; `thinking_delta` →
///   `reasoning_content`;
/// * completions: `text_delta` → `text`;
/// * `message_delta`: the chunk with `finish_reason` and usage;
/// * `ping`, `content_block_stop`, `message_stop`, signature deltas: nothing;
/// * `error`: ends the stream with that error (docs/mlflow-compat.md#fix-9); so does a stream that ends
///   before its `message_delta` / `message_stop`.
pub(crate) struct MessagesStream {
    mode: Mode,
    provider: &'static str,
    created: u64,
    id: Option<String>,
    model: Option<String>,
    start_usage: Map<String, Value>,
    usage: Option<Usage>,
    /// `(content block index, tool call ordinal)` of each tool block so far.
    tool_blocks: Vec<(u64, u32)>,
    complete: bool,
}

impl MessagesStream {
    /// A decoder producing chat chunks that carry `provider` and `created`.
    pub(crate) fn chat(provider: &'static str, created: u64) -> SseStream<Self> {
        Self::new(Mode::Chat, provider, created)
    }

    /// A decoder producing completions chunks.
    pub(crate) fn completions(provider: &'static str, created: u64) -> SseStream<Self> {
        Self::new(Mode::Completions, provider, created)
    }

    fn new(mode: Mode, provider: &'static str, created: u64) -> SseStream<Self> {
        SseStream::new(MessagesStream {
            mode,
            provider,
            created,
            id: None,
            model: None,
            start_usage: Map::new(),
            usage: None,
            tool_blocks: Vec::new(),
            complete: false,
        })
    }
}

impl SseTranslate for MessagesStream {
    fn event(&mut self, name: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        if data.is_empty() {
            return Ok(());
        }
        let ev: WireEvent = serde_json::from_str(data).map_err(|e| unreadable(self.provider, &e))?;
        let kind = ev.kind.as_deref().unwrap_or(name);
        match kind {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.id = m.id;
                    self.model = m.model;
                    self.start_usage = m.usage.unwrap_or_default();
                }
            }
            "content_block_start" => {
                let Some(block) = ev.content_block else { return Ok(()) };
                match block.kind.as_deref() {
                    Some("text") => {
                        let text = block.text.unwrap_or_default();
                        match self.mode {
                            Mode::Chat => self.chat_chunk(out, None, Delta::text(Some(text))),
                            // An empty first chunk adds nothing to a completion.
                            Mode::Completions if !text.is_empty() => self.completions_chunk(out, None, text, None),
                            Mode::Completions => {}
                        }
                    }
                    Some("tool_use") if self.mode == Mode::Chat => {
                        let ordinal = self.tool_blocks.len() as u32;
                        self.tool_blocks.push((ev.index.unwrap_or(0), ordinal));
                        let call = ToolCallDelta::start(ordinal, block.id, block.name);
                        self.chat_chunk(out, None, Delta::tool_calls(vec![call]));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = ev.delta else { return Ok(()) };
                match (delta.kind.as_deref(), self.mode) {
                    (Some("text_delta"), Mode::Chat) => self.chat_chunk(out, None, Delta::text(delta.text)),
                    (Some("text_delta"), Mode::Completions) => {
                        self.completions_chunk(out, None, delta.text.unwrap_or_default(), None)
                    }
                    (Some("input_json_delta"), Mode::Chat) => {
                        // Only client tool blocks; server tools (`server_tool_use`, run by
                        // Anthropic) stream their input too, but are not tool calls.
                        let block = ev.index.unwrap_or(0);
                        let Some(&(_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block) else {
                            return Ok(());
                        };
                        let call = ToolCallDelta::arguments(index, delta.partial_json);
                        self.chat_chunk(out, None, Delta::tool_calls(vec![call]));
                    }
                    (Some("thinking_delta"), Mode::Chat) => {
                        self.chat_chunk(out, None, Delta::reasoning(delta.thinking))
                    }
                    (Some("signature_delta"), Mode::Chat) => {
                        if let Some(signature) = delta.signature.filter(|s| !s.is_empty()) {
                            self.chat_chunk(out, None, Delta::thinking_signature(signature));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                self.complete = true;
                let mut merged = std::mem::take(&mut self.start_usage);
                for (k, v) in ev.usage.unwrap_or_default() {
                    // This usage is cumulative: input and cache counts sent here (server tools
                    // add to them) replace those of `message_start`, but only as integers.
                    let count = matches!(
                        k.as_str(),
                        "input_tokens" | "cache_read_input_tokens" | "cache_creation_input_tokens"
                    );
                    if if count { v.is_u64() } else { !v.is_null() } {
                        merged.insert(k, v);
                    }
                }
                let usage = usage_from(&merged);
                self.start_usage = merged;
                self.usage = Some(usage.clone());
                let reason = finish_reason(ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref())).to_owned();
                match self.mode {
                    Mode::Chat => {
                        self.write_chat(out, Some(reason), Delta::default(), Some(usage));
                    }
                    Mode::Completions => self.completions_chunk(out, Some(reason), String::new(), Some(usage)),
                }
            }
            "message_stop" => self.complete = true,
            "error" => return Err(stream_error(ev.error.as_ref())),
            _ => {} // ping, content_block_stop, and event types added later
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        self.complete
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

impl MessagesStream {
    fn chat_chunk(&self, out: &mut Vec<Chunk>, finish_reason: Option<String>, delta: Delta) {
        self.write_chat(out, finish_reason, delta, None);
    }

    fn write_chat(&self, out: &mut Vec<Chunk>, finish_reason: Option<String>, delta: Delta, usage: Option<Usage>) {
        out.push(Chunk::Chat(ChatChunk::new(
            self.id.clone(),
            self.created,
            self.model.clone(),
            vec![ChunkChoice::new(0, delta, finish_reason)],
            usage,
            self.provider,
        )));
    }

    fn completions_chunk(
        &self,
        out: &mut Vec<Chunk>,
        finish_reason: Option<String>,
        text: String,
        usage: Option<Usage>,
    ) {
        out.push(Chunk::Completions(CompletionsChunk::new(
            self.id.clone(),
            self.created,
            self.model.clone(),
            vec![CompletionChunkChoice::new(0, Some(text), finish_reason)],
            usage,
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut d: SseStream<MessagesStream>, chunks: &[&str]) -> (Vec<Value>, Option<GatewayError>) {
        crate::framing::testing::run(&mut d, chunks)
    }

    fn ev(name: &str, data: Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn start() -> String {
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "content": [], "model": "claude-x", "usage": {"input_tokens": 10, "cache_read_input_tokens": 4,
                "cache_creation_input_tokens": 1, "output_tokens": 1}}}),
        )
    }

    fn end(reason: &str) -> String {
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 7}}),
        ) + &ev("message_stop", json!({"type": "message_stop"}))
    }

    #[test]
    fn whole_answer_keeps_thinking_out_of_content() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xxx"},
                {"type": "text", "text": "The answer "},
                {"type": "text", "text": "is 4.", "citations": []},
            ],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 3, "output_tokens": 5}});
        let v: Value = serde_json::to_value(decode_chat(body.to_string().as_bytes(), "anthropic", 9).unwrap()).unwrap();
        assert_eq!(
            v["choices"][0],
            json!({"index": 0, "finish_reason": "length", "message": {"role": "assistant",
                "content": "The answer is 4.", "tool_calls": null, "refusal": null,
                "reasoning_content": "Let me think."}})
        );
        assert_eq!(v["usage"], json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}));
        assert_eq!((v["created"].clone(), v["provider"].clone()), (json!(9), json!("anthropic")));
        // No thinking: the key is not emitted at all.
        let body = json!({"id": "m", "role": "assistant", "model": "c", "content": [{"type": "text", "text": "x"}],
                          "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}});
        let v: Value = serde_json::to_value(decode_chat(body.to_string().as_bytes(), "anthropic", 9).unwrap()).unwrap();
        assert!(v["choices"][0]["message"].as_object().unwrap().get("reasoning_content").is_none());
    }

    #[test]
    fn usage_with_cache_tokens() {
        let u = usage_from(
            json!({"input_tokens": 10, "output_tokens": 25, "cache_read_input_tokens": 5,
                   "cache_creation_input_tokens": 2, "service_tier": "standard",
                   "cache_creation": {"ephemeral_5m_input_tokens": 2}})
            .as_object()
            .unwrap(),
        );
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"prompt_tokens": 17, "completion_tokens": 25, "total_tokens": 42,
                   "prompt_tokens_details": {"cached_tokens": 5}, "cache_creation_input_tokens": 2,
                   "service_tier": "standard", "cache_creation": {"ephemeral_5m_input_tokens": 2}})
        );
        let u = usage_from(json!({"output_tokens": 2}).as_object().unwrap());
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.total_tokens), (None, Some(2), None));
    }

    #[test]
    fn tool_use_arguments_are_python_json() {
        let body = json!({"id": "m", "role": "assistant", "model": "c", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"city": "Zürich", "n": [1, 2]}},
                        {"type": "tool_use", "id": "t2", "name": "g"}]});
        let v: Value = serde_json::to_value(decode_chat(body.to_string().as_bytes(), "anthropic", 1).unwrap()).unwrap();
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null);
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], json!("{\"city\": \"Z\\u00fcrich\", \"n\": [1, 2]}"));
        assert_eq!(m["tool_calls"][1]["function"], json!({"name": "g", "arguments": "{}"}));
        assert_eq!(v["choices"][0]["finish_reason"], json!("tool_calls"));
        assert_eq!(v["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));
    }

    #[test]
    fn unreadable_answer_is_502() {
        assert_eq!(decode_chat(b"{\"content\": 5}", "anthropic", 1).unwrap_err().status, 502);
        assert_eq!(decode_completions(b"not json", "anthropic", 1).unwrap_err().status, 502);
    }

    #[test]
    fn stream_tool_indices_with_interleaved_text() {
        let chunks = [
            start(),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
            ),
            ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t_a", "name": "a", "input": {}}}),
            ),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t_b", "name": "b", "input": {}}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"y\":"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"x\":1}"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "2}"}}),
            ),
            // A server tool (run by Anthropic) is not a tool call of the client.
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 3, "content_block": {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {}}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"x\"}"}}),
            ),
            end("tool_use"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (events, err) = run(MessagesStream::chat("anthropic", 5), &refs);
        assert!(err.is_none(), "{err:?}");
        let calls: Vec<(u64, Value, Value)> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].as_array())
            .map(|c| (c[0]["index"].as_u64().unwrap(), c[0]["id"].clone(), c[0]["function"]["arguments"].clone()))
            .collect();
        assert_eq!(
            calls,
            vec![
                (0, json!("t_a"), Value::Null),
                (1, json!("t_b"), Value::Null),
                (1, Value::Null, json!("{\"y\":")),
                (0, Value::Null, json!("{\"x\":1}")),
                (1, Value::Null, json!("2}")),
            ]
        );
        assert_eq!(events[1]["choices"][0]["delta"]["content"], json!("Checking."));
        let last = events.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], json!("tool_calls"));
        assert_eq!(last["id"], json!("msg_1"));
        assert_eq!(
            last["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 7, "total_tokens": 22,
                   "prompt_tokens_details": {"cached_tokens": 4}, "cache_creation_input_tokens": 1})
        );
        assert_eq!(events.iter().filter(|e| !e["choices"][0]["finish_reason"].is_null()).count(), 1);
    }

    #[test]
    fn stop_reasons() {
        for (stop, want) in [
            (Some("max_tokens"), "length"),
            (Some("model_context_window_exceeded"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("pause_turn"), "stop"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(stop), want, "{stop:?}");
        }
    }

    #[test]
    fn stream_usage_is_cumulative_in_message_delta() {
        let delta = ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "refusal"},
                   "usage": {"output_tokens": 5, "input_tokens": 40, "cache_read_input_tokens": 3,
                             "cache_creation_input_tokens": null, "server_tool_use": {"web_search_requests": 1}}}),
        );
        let (events, err) = run(MessagesStream::chat("anthropic", 5), &[&start(), &delta]);
        assert!(err.is_none(), "{err:?}");
        let last = events.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], json!("content_filter"));
        // start: input 10, cache read 4, cache creation 1; the delta replaces input and cache read.
        assert_eq!(
            last["usage"],
            json!({"prompt_tokens": 44, "completion_tokens": 5, "total_tokens": 49,
                   "prompt_tokens_details": {"cached_tokens": 3}, "cache_creation_input_tokens": 1,
                   "server_tool_use": {"web_search_requests": 1}})
        );
    }

    #[test]
    fn stream_thinking_goes_to_reasoning_content() {
        let chunks = [
            start(),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}),
            ),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "4"}}),
            ),
            end("end_turn"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (events, err) = run(MessagesStream::chat("anthropic", 5), &refs);
        assert!(err.is_none());
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role": null, "content": null, "tool_calls": null, "reasoning_content": "Hmm."})
        );
        // The signature's chunk: nothing a chat chunk shows (the /v1 encoder skips it; the
        // Messages and Responses encoders hand the signature to the client).
        assert_eq!(events[1]["choices"][0]["delta"], json!({"role": null, "content": null, "tool_calls": null}));
        assert_eq!(events[2]["choices"][0]["delta"], json!({"role": null, "content": "", "tool_calls": null}));
        assert_eq!(events[3]["choices"][0]["delta"]["content"], json!("4"));
        assert_eq!(events[4]["choices"][0]["finish_reason"], json!("stop"));

        let mut decoder = MessagesStream::chat("anthropic", 5);
        let mut out = Vec::new();
        for c in &refs {
            crate::framing::StreamDecoder::feed(&mut decoder, c.as_bytes(), &mut out).unwrap();
        }
        let signatures: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Chunk::Chat(c) => c.choices[0].delta.thinking_signature.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(signatures, ["abc"]);
    }

    #[test]
    fn upstream_error_event_ends_the_stream() {
        let chunks = [
            start(),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ev("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
            end("end_turn"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (events, err) = run(MessagesStream::chat("anthropic", 5), &refs);
        assert_eq!(events.len(), 1);
        let err = err.expect("an error");
        assert_eq!((err.status, err.message()), (529, "Overloaded".to_owned()));
        assert_eq!(err.kind, ErrorKind::Upstream);
    }

    #[test]
    fn truncated_or_garbled_streams_are_errors() {
        let s = start();
        let (_, err) = run(MessagesStream::chat("anthropic", 5), &[&s]);
        assert_eq!(err.unwrap().status, 502);
        let (_, err) = run(MessagesStream::chat("anthropic", 5), &["event: message_start\ndata: {nope\n\n"]);
        assert!(err.unwrap().message().contains("unreadable"));
    }

    #[test]
    fn completions_stream() {
        let chunks = [
            start(),
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ev("ping", json!({"type": "ping"})),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
            ),
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
            ),
            end("max_tokens"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (events, err) = run(MessagesStream::completions("anthropic", 5), &refs);
        assert!(err.is_none());
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0],
            json!({"id": "msg_1", "object": "text_completion_chunk", "created": 5, "model": "claude-x",
                   "choices": [{"index": 0, "finish_reason": null, "text": "Hel"}], "usage": null})
        );
        assert_eq!(events[2]["choices"][0], json!({"index": 0, "finish_reason": "length", "text": ""}));
        assert_eq!(events[2]["usage"]["completion_tokens"], json!(7));
    }

    #[test]
    fn whole_completion() {
        let body = json!({"id": "msg_9", "role": "assistant", "model": "claude-x", "stop_reason": "stop_sequence",
            "content": [{"type": "text", "text": "A car "}, {"type": "text", "text": "drives."}],
            "usage": {"input_tokens": 6, "output_tokens": 4}});
        let v: Value =
            serde_json::to_value(decode_completions(body.to_string().as_bytes(), "anthropic", 3).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"id": "msg_9", "object": "text_completion", "created": 3, "model": "claude-x",
                   "choices": [{"index": 0, "text": "A car drives.", "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}})
        );
    }
}
