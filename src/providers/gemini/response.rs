//! Gemini answers (`generateContent`, `streamGenerateContent?alt=sse`, `embedContent`,
//! `batchEmbedContents`) → unified answers. Shared with `vertex_ai`'s Gemini models.
//!
//! MLflow's rules (3.18, docs/mlflow-compat.md#mlflow-318), kept:
//! * chat ids are `gemini-chat-<created>` (streams `gemini-chat-stream-<created>`, completions
//!   streams `gemini-completions-stream-<created>`), `model` is the endpoint's model name;
//! * a candidate's text is the text of all its parts joined, with no separator;
//! * finish reasons: `MAX_TOKENS` → `length`, the safety and policy reasons
//!   ([`CONTENT_FILTER_REASONS`]) → `content_filter`, any other lower-cased; absent → `stop`
//!   (JSON answers);
//! * a candidate with function calls answers `tool_calls` (ids: the call's own, or `call_` +
//!   md5 of `<name>/<json.dumps(args)>`), and `stop` becomes `tool_calls`;
//! * candidates without text or calls are left out of JSON answers, unless they were filtered
//!   (`content_filter`): those stay, with no content (chat) or `""` (completions);
//! * a prompt Gemini blocked (no candidates, `promptFeedback.blockReason`) is answered as one
//!   `content_filter` choice, in JSON answers and streams alike;
//! * `completion_tokens` counts the thinking tokens too: `candidatesTokenCount +
//!   thoughtsTokenCount`.
//!
//! Thought parts (`"thought": true`, sent when the request asked for them with
//! `thinkingConfig.includeThoughts`) are the model's reasoning: they become `reasoning_content`
//! (whole answers and stream deltas), never text, and the rules above apply to the other parts.
//! `thoughtsTokenCount` is also reported as `completion_tokens_details.reasoning_tokens`.

use std::fmt::Write as _;

use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, GatewayError};
use crate::framing::sse::{SseStream, SseTranslate};
use crate::providers::{Call, Decoder, parse_upstream_json, python_json};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, CompletionChoice, CompletionChunkChoice,
    CompletionsChunk, CompletionsResponse, Delta, Embedding, EmbeddingsResponse, EmbeddingsUsage, ResponseMessage,
    ToolCall, ToolCallDelta, Usage, Vector,
};

/// `object` of Gemini completions stream chunks, as MLflow emits it (not
/// `text_completion_chunk`).
pub(crate) const COMPLETION_CHUNK_OBJECT: &str = "text_completion.chunk";

// ---- upstream wire types ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    candidates: Option<Vec<WireCandidate>>,
    usage_metadata: Option<Map<String, Value>>,
    prompt_feedback: Option<WirePromptFeedback>,
    error: Option<Value>,
}

impl WireResponse {
    /// Gemini refused the prompt itself: no candidates, and a `promptFeedback.blockReason`.
    fn prompt_blocked(&self) -> bool {
        self.candidates.as_ref().is_none_or(Vec::is_empty)
            && self.prompt_feedback.as_ref().and_then(|f| f.block_reason.as_deref()).is_some_and(|r| !r.is_empty())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WirePromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    content: Option<WireContent>,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireContent {
    parts: Option<Vec<WirePart>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    text: Option<String>,
    /// A thought summary, not answer text.
    thought: Option<bool>,
    function_call: Option<WireFunctionCall>,
    thought_signature: Option<String>,
}

impl WirePart {
    fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireFunctionCall {
    id: Option<String>,
    name: Option<String>,
    args: Option<Value>,
    thought_signature: Option<String>,
}

impl WireCandidate {
    fn all_parts(&self) -> &[WirePart] {
        self.content.as_ref().and_then(|c| c.parts.as_deref()).unwrap_or(&[])
    }

    /// The answer's parts: every part but thoughts.
    fn parts(&self) -> Vec<&WirePart> {
        self.all_parts().iter().filter(|p| !p.is_thought()).collect()
    }

    /// The text of the thought parts, concatenated, or `None` when there is none.
    fn thoughts(&self) -> Option<String> {
        let mut text: Option<String> = None;
        for t in self.all_parts().iter().filter(|p| p.is_thought()).filter_map(|p| p.text.as_deref()) {
            text.get_or_insert_with(String::new).push_str(t);
        }
        text.filter(|t| !t.is_empty())
    }
}

#[derive(Deserialize)]
struct WireEmbeddings {
    embeddings: Option<Vec<WireEmbedding>>,
    embedding: Option<WireEmbedding>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    values: Option<Box<serde_json::value::RawValue>>,
}

// ---- shared pieces ----

/// The `finishReason`s that mean Gemini withheld or stopped the answer for safety or policy
/// reasons; they are reported as `content_filter`.
pub(crate) const CONTENT_FILTER_REASONS: [&str; 9] = [
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "ESCALATION",
];

/// OpenAI's finish reason for an answer a content filter stopped.
const CONTENT_FILTER: &str = "content_filter";

/// A Gemini finish reason in OpenAI's spelling: `MAX_TOKENS` → `length`, the
/// [`CONTENT_FILTER_REASONS`] → `content_filter`, anything else lower-cased.
pub(crate) fn finish_reason(raw: &str) -> String {
    if raw == "MAX_TOKENS" {
        "length".to_owned()
    } else if CONTENT_FILTER_REASONS.contains(&raw) {
        CONTENT_FILTER.to_owned()
    } else {
        raw.to_ascii_lowercase()
    }
}

/// `completion_tokens` of a `usageMetadata`: `candidatesTokenCount`, plus
/// `thoughtsTokenCount` when present (a missing candidates count is then 0).
fn completion_tokens(meta: &Map<String, Value>) -> Option<u64> {
    let candidates = meta.get("candidatesTokenCount").and_then(Value::as_u64);
    match meta.get("thoughtsTokenCount").and_then(Value::as_u64) {
        Some(thoughts) => Some(candidates.unwrap_or(0).saturating_add(thoughts)),
        None => candidates,
    }
}

/// Chat usage from `usageMetadata`: `promptTokenCount`, `candidatesTokenCount` (with the
/// thinking tokens, see [`completion_tokens`]), `totalTokenCount`, `cachedContentTokenCount`
/// → `prompt_tokens_details.cached_tokens`; any other key is passed through as is.
pub(crate) fn chat_usage(meta: &Map<String, Value>) -> Usage {
    let mut usage = Usage { completion_tokens: completion_tokens(meta), ..Usage::default() };
    for (k, v) in meta {
        match k.as_str() {
            "promptTokenCount" => usage.prompt_tokens = v.as_u64(),
            "candidatesTokenCount" => {}
            "totalTokenCount" => usage.total_tokens = v.as_u64(),
            "cachedContentTokenCount" => usage.prompt_tokens_details = Some(json!({ "cached_tokens": v })),
            "thoughtsTokenCount" => {
                usage.extra.insert(k.clone(), v.clone());
                usage.extra.insert("completion_tokens_details".into(), json!({ "reasoning_tokens": v }));
            }
            _ => {
                usage.extra.insert(k.clone(), v.clone());
            }
        }
    }
    usage
}

/// Completions usage: the three counts only (completion tokens with the thinking tokens).
fn completions_usage(meta: Option<&Map<String, Value>>) -> Usage {
    let count = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_u64);
    Usage::counts(count("promptTokenCount"), meta.and_then(completion_tokens), count("totalTokenCount"))
}

/// The id MLflow gives a function call Gemini left without one: `call_` + the md5 hex digest
/// of `<name>/<arguments>`, where `arguments` is Python's `json.dumps(args)`.
pub(crate) fn generated_call_id(name: &str, arguments: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(name.as_bytes());
    hasher.update(b"/");
    hasher.update(arguments.as_bytes());
    let digest = hasher.finalize();
    let mut id = String::with_capacity(5 + 32);
    id.push_str("call_");
    for b in digest {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// (id, name, arguments, thought signature) of a `functionCall` part.
fn call_fields(part: &WirePart, fc: &WireFunctionCall) -> (String, String, String, Option<String>) {
    let name = fc.name.clone().unwrap_or_default();
    let arguments = match &fc.args {
        Some(args) => python_json(args),
        None => "{}".to_owned(),
    };
    let id = fc.id.clone().unwrap_or_else(|| generated_call_id(&name, &arguments));
    let signature = part.thought_signature.clone().or_else(|| fc.thought_signature.clone());
    (id, name, arguments, signature)
}

/// The text parts of a candidate concatenated, or `None` when there are none.
fn joined_text(parts: &[&WirePart]) -> Option<String> {
    let mut text: Option<String> = None;
    for t in parts.iter().filter_map(|p| p.text.as_deref()) {
        text.get_or_insert_with(String::new).push_str(t);
    }
    text.filter(|t| !t.is_empty())
}

fn unreadable(display: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::bad_gateway(format!("{display} sent an unreadable stream chunk: {e}"))
}

/// An error object inside a 2xx body or stream event (`{"code", "message", "status"}`).
fn embedded_error(display: &str, err: &Value) -> GatewayError {
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{display} reported an error: {err}"));
    let status = err.get("code").and_then(Value::as_u64).filter(|c| (400..=599).contains(c)).unwrap_or(502);
    GatewayError::new(status as u16, ErrorKind::Upstream, message)
}

/// Python's truthiness of a JSON value: `null`, `false`, `0`, `""`, `[]` and `{}` are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

// ---- JSON answers ----

/// Decoder for a chat answer (JSON, or the SSE stream when `stream`). `display` names the
/// provider in error messages (`Gemini`, `Vertex AI`).
pub(crate) fn chat_decoder(stream: bool, call: &Call<'_>, display: &'static str) -> Decoder {
    let provider = call.provider_label();
    let model = call.model().map(str::to_owned);
    let created = call.created;
    if stream {
        return Decoder::Stream(Box::new(GeminiStream::chat(display, provider, model, created)));
    }
    Decoder::Json(Box::new(move |body| decode_chat(body, display, provider, model, created)))
}

/// Decoder for a completions answer (JSON, or the SSE stream when `stream`).
pub(crate) fn completions_decoder(stream: bool, call: &Call<'_>, display: &'static str) -> Decoder {
    let model = call.model().map(str::to_owned);
    let created = call.created;
    if stream {
        return Decoder::Stream(Box::new(GeminiStream::completions(display, model, created)));
    }
    Decoder::Json(Box::new(move |body| decode_completions(body, display, model, created)))
}

/// Decoder for an `embedContent` / `batchEmbedContents` answer.
pub(crate) fn embeddings_decoder(call: &Call<'_>, display: &'static str) -> Decoder {
    let model = call.model().map(str::to_owned);
    Decoder::Json(Box::new(move |body| decode_embeddings(body, display, model)))
}

/// Decode a `generateContent` answer into a unified chat answer.
pub(crate) fn decode_chat(
    body: &[u8],
    display: &'static str,
    provider: &'static str,
    model: Option<String>,
    created: u64,
) -> Result<Answer, GatewayError> {
    let wire: WireResponse = parse_upstream_json(body, display)?;
    if let Some(err) = &wire.error {
        return Err(embedded_error(display, err));
    }
    let mut choices = Vec::new();
    for (idx, cand) in wire.candidates.iter().flatten().enumerate() {
        let parts = cand.parts();
        let thoughts = cand.thoughts();
        let mut finish = finish_reason(cand.finish_reason.as_deref().unwrap_or("STOP"));
        let message = if parts.iter().any(|p| p.function_call.is_some()) {
            let calls = parts
                .iter()
                .filter_map(|p| p.function_call.as_ref().map(|fc| (*p, fc)))
                .map(|(p, fc)| {
                    let (id, name, arguments, thought_signature) = call_fields(p, fc);
                    ToolCall::function(id, name, arguments).with_thought_signature(thought_signature)
                })
                .collect();
            if finish == "stop" {
                finish = "tool_calls".to_owned();
            }
            ResponseMessage::new("assistant".into(), joined_text(&parts), Some(calls))
        } else {
            match joined_text(&parts) {
                Some(text) => ResponseMessage::assistant(Some(text)),
                // Only thoughts (the answer was cut short while thinking): the reasoning is
                // kept. A filtered candidate is kept too, without content.
                None if thoughts.is_some() || finish == CONTENT_FILTER => ResponseMessage::assistant(None),
                None => continue,
            }
        };
        choices.push(ChatChoice::new(idx as u32, message.with_reasoning(thoughts), Some(finish)));
    }
    if wire.prompt_blocked() {
        choices.push(ChatChoice::new(0, ResponseMessage::assistant(None), Some(CONTENT_FILTER.to_owned())));
    }
    Ok(Answer::Chat(ChatResponse::new(
        Some(format!("gemini-chat-{created}")),
        created,
        model,
        choices,
        wire.usage_metadata.as_ref().map(chat_usage).unwrap_or_default(),
        provider,
    )))
}

/// Decode a `generateContent` answer into a unified completions answer (only candidates with
/// text, or filtered; `id` null).
pub(crate) fn decode_completions(
    body: &[u8],
    display: &'static str,
    model: Option<String>,
    created: u64,
) -> Result<Answer, GatewayError> {
    let wire: WireResponse = parse_upstream_json(body, display)?;
    if let Some(err) = &wire.error {
        return Err(embedded_error(display, err));
    }
    let mut choices: Vec<CompletionChoice> = wire
        .candidates
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(idx, cand)| {
            let finish = finish_reason(cand.finish_reason.as_deref().unwrap_or("STOP"));
            let text = match joined_text(&cand.parts()) {
                Some(text) => text,
                None if finish == CONTENT_FILTER => String::new(),
                None => return None,
            };
            Some(CompletionChoice::new(idx as u32, Some(text), Some(finish)))
        })
        .collect();
    if wire.prompt_blocked() {
        choices.push(CompletionChoice::new(0, Some(String::new()), Some(CONTENT_FILTER.to_owned())));
    }
    Ok(Answer::Completions(CompletionsResponse::new(
        None,
        created,
        model,
        choices,
        completions_usage(wire.usage_metadata.as_ref()),
    )))
}

/// Decode an `embedContent` (`embedding.values`) or `batchEmbedContents`
/// (`embeddings[].values`) answer; usage is unknown (nulls).
pub(crate) fn decode_embeddings(
    body: &[u8],
    display: &'static str,
    model: Option<String>,
) -> Result<Answer, GatewayError> {
    let wire: WireEmbeddings = parse_upstream_json(body, display)?;
    let items = match (wire.embeddings, wire.embedding) {
        (Some(list), _) if !list.is_empty() => list,
        (_, Some(one)) => vec![one],
        (Some(list), None) => list,
        (None, None) => Vec::new(),
    };
    let data = items
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            Embedding::new(i as u32, e.values.map_or_else(|| Vector::Value(Value::Array(Vec::new())), Vector::Raw))
        })
        .collect();
    Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, EmbeddingsUsage::default())))
}

// ---- streams ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Chat,
    Completions,
}

/// Streams `streamGenerateContent?alt=sse` events as unified chunks, one chunk per event.
///
/// Chat chunks carry `delta.role: "assistant"` and the text of all parts (or `""`); function
/// calls arrive whole and become tool-call deltas indexed per candidate across the stream, and
/// a `stop` after a candidate's calls is reported as `tool_calls`. Usage rides on the chunk
/// whose event has `usageMetadata`. Completions chunks carry the text of all parts and no
/// usage. A blocked prompt is one `content_filter` choice and completes the stream. An `error`
/// event or an unreadable event ends the stream with an error; so does a stream that ends
/// before any candidate's `finishReason` (or a blocked prompt).
pub(crate) struct GeminiStream {
    kind: StreamKind,
    display: &'static str,
    provider: &'static str,
    model: Option<String>,
    id: String,
    created: u64,
    /// Tool calls emitted so far, per candidate index.
    calls_seen: Vec<u32>,
    usage: Option<Usage>,
    done: bool,
    /// A candidate's `finishReason` arrived.
    finished: bool,
}

impl GeminiStream {
    /// A chat stream decoder (`provider` is the chunks' `provider` field).
    pub(crate) fn chat(
        display: &'static str,
        provider: &'static str,
        model: Option<String>,
        created: u64,
    ) -> SseStream<Self> {
        Self::new(StreamKind::Chat, display, provider, model, format!("gemini-chat-stream-{created}"), created)
    }

    /// A completions stream decoder.
    pub(crate) fn completions(display: &'static str, model: Option<String>, created: u64) -> SseStream<Self> {
        let id = format!("gemini-completions-stream-{created}");
        Self::new(StreamKind::Completions, display, "", model, id, created)
    }

    fn new(
        kind: StreamKind,
        display: &'static str,
        provider: &'static str,
        model: Option<String>,
        id: String,
        created: u64,
    ) -> SseStream<Self> {
        SseStream::new(GeminiStream {
            kind,
            display,
            provider,
            model,
            id,
            created,
            calls_seen: Vec::new(),
            usage: None,
            done: false,
            finished: false,
        })
    }

    fn chat_chunk(&mut self, wire: &WireResponse, out: &mut Vec<Chunk>) {
        let mut choices = Vec::new();
        for (idx, cand) in wire.candidates.iter().flatten().enumerate() {
            if self.calls_seen.len() <= idx {
                self.calls_seen.resize(idx + 1, 0);
            }
            let parts = cand.parts();
            let mut finish = cand.finish_reason.as_deref().map(finish_reason);
            let mut delta = if parts.iter().any(|p| p.function_call.is_some()) {
                let mut calls = Vec::new();
                for (p, fc) in parts.iter().filter_map(|p| p.function_call.as_ref().map(|fc| (*p, fc))) {
                    let (id, name, arguments, signature) = call_fields(p, fc);
                    calls.push(
                        ToolCallDelta::start(self.calls_seen[idx], Some(id), Some(name))
                            .with_arguments(arguments)
                            .with_thought_signature(signature),
                    );
                    self.calls_seen[idx] += 1;
                }
                Delta::new(Some("assistant".into()), joined_text(&parts), Some(calls))
            } else {
                Delta::new(Some("assistant".into()), Some(joined_text(&parts).unwrap_or_default()), None)
            };
            delta.reasoning_content = cand.thoughts();
            if finish.as_deref() == Some("stop") && self.calls_seen[idx] > 0 {
                finish = Some("tool_calls".into());
            }
            choices.push(ChunkChoice::new(idx as u32, delta, finish));
        }
        if wire.prompt_blocked() {
            let delta = Delta::new(Some("assistant".into()), Some(String::new()), None);
            choices.push(ChunkChoice::new(0, delta, Some(CONTENT_FILTER.to_owned())));
        }
        out.push(Chunk::Chat(ChatChunk::new(
            Some(self.id.clone()),
            self.created,
            self.model.clone(),
            choices,
            wire.usage_metadata.as_ref().map(chat_usage),
            self.provider,
        )));
    }

    fn completions_chunk(&mut self, wire: &WireResponse, out: &mut Vec<Chunk>) {
        let mut choices: Vec<CompletionChunkChoice> = wire
            .candidates
            .iter()
            .flatten()
            .enumerate()
            .map(|(idx, cand)| {
                let text = joined_text(&cand.parts()).unwrap_or_default();
                CompletionChunkChoice::new(idx as u32, Some(text), cand.finish_reason.as_deref().map(finish_reason))
            })
            .collect();
        if wire.prompt_blocked() {
            choices.push(CompletionChunkChoice::new(0, Some(String::new()), Some(CONTENT_FILTER.to_owned())));
        }
        out.push(Chunk::Completions(CompletionsChunk {
            object: COMPLETION_CHUNK_OBJECT,
            ..CompletionsChunk::new(Some(self.id.clone()), self.created, self.model.clone(), choices, None)
        }));
    }
}

impl SseTranslate for GeminiStream {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let data = data.trim();
        if self.done || data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let wire: WireResponse = serde_json::from_str(data).map_err(|e| unreadable(self.display, e))?;
        // An event with an `error` ends the stream with an error event (MLflow 3.18 aborts the
        // stream on a truthy `error`; an empty or false one is no error there either).
        if let Some(err) = wire.error.as_ref().filter(|e| truthy(e)) {
            return Err(embedded_error(self.display, err));
        }
        // A blocked prompt is a complete answer: Gemini sends nothing after it.
        self.finished |= wire.candidates.iter().flatten().any(|c| c.finish_reason.is_some()) || wire.prompt_blocked();
        if let Some(meta) = &wire.usage_metadata {
            self.usage = Some(match self.kind {
                StreamKind::Chat => chat_usage(meta),
                StreamKind::Completions => completions_usage(Some(meta)),
            });
        }
        match self.kind {
            StreamKind::Chat => self.chat_chunk(&wire, out),
            StreamKind::Completions => self.completions_chunk(&wire, out),
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        self.finished
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::StreamDecoder;

    fn chat(body: Value) -> Value {
        let out = decode_chat(body.to_string().as_bytes(), "Gemini", "gemini", Some("g".into()), 42).unwrap();
        serde_json::to_value(&out).unwrap()
    }

    fn stream(decoder: &mut SseStream<GeminiStream>, pieces: &[&str]) -> (Vec<Value>, Option<GatewayError>) {
        crate::framing::testing::run(decoder, pieces)
    }

    #[test]
    fn generated_ids_match_mlflow() {
        // gemini-chat-tools.json: get_weather / {"location": "Singapore"}.
        assert_eq!(
            generated_call_id("get_weather", &python_json(&json!({"location": "Singapore"}))),
            "call_c8800a29b7c6d0e92541b3fa793048ab"
        );
    }

    #[test]
    fn chat_text_finish_and_usage() {
        let v = chat(json!({
            "candidates": [
                {"content": {"parts": [{"text": "hello"}], "role": "model"}, "finishReason": "MAX_TOKENS"},
                {"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"},
                {"finishReason": "SAFETY"},
                {"content": {"parts": [{"text": "third"}]}}
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7,
                              "cachedContentTokenCount": 2, "thoughtsTokenCount": 5}
        }));
        assert_eq!(v["id"], json!("gemini-chat-42"));
        assert_eq!(v["created"], json!(42));
        assert_eq!(v["model"], json!("g"));
        let choices = v["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 3, "empty candidates are left out, filtered ones kept");
        assert_eq!(choices[0]["finish_reason"], json!("length"));
        // MLflow 3.18: a filtered candidate stays, without content (3.17 dropped it).
        assert_eq!(
            choices[1],
            json!({"index": 2, "finish_reason": "content_filter",
                   "message": {"role": "assistant", "content": null, "tool_calls": null, "refusal": null}})
        );
        assert_eq!(choices[2]["index"], json!(3));
        assert_eq!(choices[2]["finish_reason"], json!("stop"));
        assert_eq!(choices[2]["message"]["content"], json!("third"));
        // MLflow 3.18: thinking tokens are completion tokens (4 + 5; 3.17 said 4).
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 7,
                   "prompt_tokens_details": {"cached_tokens": 2}, "thoughtsTokenCount": 5,
                   "completion_tokens_details": {"reasoning_tokens": 5}})
        );
    }

    #[test]
    fn finish_reasons_in_openai_spelling() {
        for raw in CONTENT_FILTER_REASONS {
            assert_eq!(finish_reason(raw), "content_filter", "{raw}");
        }
        for (raw, want) in [
            ("MAX_TOKENS", "length"),
            ("STOP", "stop"),
            ("OTHER", "other"),
            ("MALFORMED_FUNCTION_CALL", "malformed_function_call"),
            ("FINISH_REASON_UNSPECIFIED", "finish_reason_unspecified"),
        ] {
            assert_eq!(finish_reason(raw), want, "{raw}");
        }
    }

    #[test]
    fn usage_counts_thinking_tokens_as_completion_tokens() {
        let meta = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        // The delta's example.
        let u = chat_usage(&meta(
            json!({"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 7, "totalTokenCount": 12}),
        ));
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12, "thoughtsTokenCount": 7,
                   "completion_tokens_details": {"reasoning_tokens": 7}})
        );
        // A missing candidates count is 0 next to thoughts, and unknown without them.
        let u = chat_usage(&meta(json!({"thoughtsTokenCount": 4, "totalTokenCount": 6})));
        assert_eq!(u.completion_tokens, Some(4));
        assert_eq!(chat_usage(&meta(json!({"promptTokenCount": 2}))).completion_tokens, None);
        let u = completions_usage(Some(&meta(
            json!({"promptTokenCount": 1, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "totalTokenCount": 6}),
        )));
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6})
        );
    }

    #[test]
    fn all_text_parts_are_joined() {
        let body = json!({"candidates": [{"content": {"parts": [{"text": "Hello, "}, {"inlineData": {}}, {"text": "world"}]},
                                          "finishReason": "STOP"}]});
        assert_eq!(chat(body.clone())["choices"][0]["message"]["content"], json!("Hello, world"));
        let out = decode_completions(body.to_string().as_bytes(), "Gemini", None, 5).unwrap();
        assert_eq!(serde_json::to_value(&out).unwrap()["choices"][0]["text"], json!("Hello, world"));

        let event = format!("data: {body}\n\n");
        let (events, err) = stream(&mut GeminiStream::chat("Gemini", "gemini", None, 1), &[&event]);
        assert!(err.is_none());
        assert_eq!(events[0]["choices"][0]["delta"]["content"], json!("Hello, world"));
        let (events, err) = stream(&mut GeminiStream::completions("Gemini", None, 1), &[&event]);
        assert!(err.is_none());
        assert_eq!(events[0]["choices"][0]["text"], json!("Hello, world"));
    }

    /// What Gemini answers to a prompt it refuses: no candidates, the reason, prompt usage.
    fn blocked() -> Value {
        json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
               "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}})
    }

    #[test]
    fn a_blocked_prompt_is_one_content_filter_choice() {
        let v = chat(blocked());
        assert_eq!(
            v["choices"],
            json!([{"index": 0, "finish_reason": "content_filter",
                    "message": {"role": "assistant", "content": null, "tool_calls": null, "refusal": null}}])
        );
        assert_eq!(v["usage"]["prompt_tokens"], json!(8));
        assert_eq!(v["usage"]["completion_tokens"], Value::Null);

        let out = decode_completions(blocked().to_string().as_bytes(), "Gemini", None, 5).unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["choices"], json!([{"index": 0, "text": "", "finish_reason": "content_filter"}]));

        // An empty reason, or candidates present, is not a blocked prompt.
        let v = chat(json!({"promptFeedback": {"blockReason": ""}}));
        assert_eq!(v["choices"], json!([]));
        let v = chat(
            json!({"candidates": [{"content": {"parts": [{"text": "ok"}]}}], "promptFeedback": {"blockReason": "OTHER"}}),
        );
        assert_eq!(v["choices"].as_array().unwrap().len(), 1);
        assert_eq!(v["choices"][0]["message"]["content"], json!("ok"));
    }

    #[test]
    fn a_blocked_prompt_completes_a_stream() {
        let event = format!("data: {}\r\n\r\n", blocked());
        let mut d = GeminiStream::chat("Gemini", "gemini", None, 1);
        let (events, err) = stream(&mut d, &[&event]);
        assert!(err.is_none(), "a blocked prompt is a complete stream: {err:?}");
        assert_eq!(
            events[0]["choices"],
            json!([{"index": 0, "finish_reason": "content_filter",
                    "delta": {"role": "assistant", "content": "", "tool_calls": null}}])
        );
        assert_eq!(events[0]["usage"]["prompt_tokens"], json!(8));

        let mut d = GeminiStream::completions("Gemini", None, 1);
        let (events, err) = stream(&mut d, &[&event]);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(events[0]["choices"], json!([{"index": 0, "finish_reason": "content_filter", "text": ""}]));
    }

    #[test]
    fn filtered_candidates_are_kept_in_completions_and_streams() {
        let body = json!({"candidates": [
            {"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"},
            {"finishReason": "RECITATION"},
            {"content": {"parts": []}, "finishReason": "STOP"}
        ]});
        let out = decode_completions(body.to_string().as_bytes(), "Gemini", None, 5).unwrap();
        assert_eq!(
            serde_json::to_value(&out).unwrap()["choices"],
            json!([{"index": 0, "text": "ok", "finish_reason": "stop"},
                   {"index": 1, "text": "", "finish_reason": "content_filter"}])
        );
        let event =
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Par\"}]},\"finishReason\":\"SAFETY\"}]}\n\n";
        let (events, err) = stream(&mut GeminiStream::chat("Gemini", "gemini", None, 1), &[event]);
        assert!(err.is_none());
        assert_eq!(events[0]["choices"][0]["finish_reason"], json!("content_filter"));
        assert_eq!(events[0]["choices"][0]["delta"]["content"], json!("Par"));
    }

    #[test]
    fn chat_tool_calls_with_ids_and_signatures() {
        let v = chat(json!({"candidates": [{"content": {"parts": [
            {"text": "Let me check. "},
            {"functionCall": {"name": "get_weather", "args": {"location": "Singapore"}}, "thoughtSignature": "sig"},
            {"functionCall": {"id": "own-id", "name": "f", "args": {"n": 1.0, "s": "é"}}}
        ]}, "finishReason": "STOP"}]}));
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], json!("tool_calls"));
        assert_eq!(choice["message"]["content"], json!("Let me check. "));
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([
                {"id": "call_c8800a29b7c6d0e92541b3fa793048ab", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\": \"Singapore\"}"}, "thought_signature": "sig"},
                {"id": "own-id", "type": "function", "function": {"name": "f", "arguments": "{\"n\": 1.0, \"s\": \"\\u00e9\"}"}}
            ])
        );
        assert_eq!(v["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));
    }

    #[test]
    fn thought_parts_are_reasoning_not_text() {
        let v = chat(json!({"candidates": [
            {"content": {"parts": [{"text": "Thinking about it. ", "thought": true}, {"text": "More.", "thought": true},
                                   {"text": "Answer", "thoughtSignature": "s0"}], "role": "model"}, "finishReason": "STOP"},
            {"content": {"parts": [{"text": "Cut short while thinking", "thought": true}]}, "finishReason": "MAX_TOKENS"},
            {"content": {"parts": [{"text": "Plan: call f.", "thought": true}, {"text": "Calling. "},
                                   {"functionCall": {"id": "c1", "name": "f", "args": {}}, "thoughtSignature": "s1"}]}}
        ]}));
        let choices = v["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 3);
        assert_eq!(
            choices[0]["message"],
            json!({"role": "assistant", "content": "Answer", "tool_calls": null, "refusal": null,
                   "reasoning_content": "Thinking about it. More."})
        );
        assert_eq!(
            (&choices[1]["message"]["content"], &choices[1]["message"]["reasoning_content"]),
            (&Value::Null, &json!("Cut short while thinking"))
        );
        assert_eq!(choices[1]["finish_reason"], json!("length"));
        assert_eq!(choices[2]["message"]["content"], json!("Calling. "));
        assert_eq!(choices[2]["message"]["reasoning_content"], json!("Plan: call f."));
        assert_eq!(choices[2]["message"]["tool_calls"][0]["thought_signature"], json!("s1"));
        assert_eq!(choices[2]["finish_reason"], json!("tool_calls"));

        // Completions never show thoughts as text.
        let body = json!({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true}, {"text": "ok"}]}}]});
        let out = decode_completions(body.to_string().as_bytes(), "Gemini", None, 5).unwrap();
        assert_eq!(serde_json::to_value(&out).unwrap()["choices"][0]["text"], json!("ok"));
    }

    #[test]
    fn chat_stream_thoughts_are_reasoning_deltas_and_calls_keep_signatures() {
        let mut d = GeminiStream::chat("Gemini", "gemini", Some("g".into()), 7);
        let (events, err) = stream(
            &mut d,
            &[
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Let me think\",\"thought\":true}]}}]}\n\n",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\n\n",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}},\"thoughtSignature\":\"sig\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":3,\"totalTokenCount\":6}}\n\n",
            ],
        );
        assert!(err.is_none());
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "tool_calls": null, "reasoning_content": "Let me think"})
        );
        assert_eq!(events[1]["choices"][0]["delta"], json!({"role": "assistant", "content": "Hi", "tool_calls": null}));
        let call = &events[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!((&call["function"]["name"], &call["thought_signature"]), (&json!("f"), &json!("sig")));
        assert_eq!(events[2]["usage"]["completion_tokens_details"], json!({"reasoning_tokens": 3}));
    }

    #[test]
    fn completions_keep_text_candidates_only() {
        let body = json!({"candidates": [
            {"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}},
            {"content": {"parts": [{"text": "ok"}]}, "finishReason": "MAX_TOKENS"}
        ], "usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 3, "cachedContentTokenCount": 1}});
        let out = decode_completions(body.to_string().as_bytes(), "Gemini", Some("g".into()), 5).unwrap();
        let v: Value = serde_json::to_value(&out).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["choices"], json!([{"index": 1, "text": "ok", "finish_reason": "length"}]));
        assert_eq!(v["usage"], json!({"prompt_tokens": 1, "completion_tokens": null, "total_tokens": 3}));
    }

    #[test]
    fn embeddings_single_and_batch_shapes() {
        let single = decode_embeddings(br#"{"embedding":{"values":[0.5]}}"#, "Gemini", Some("e".into())).unwrap();
        let v: Value = serde_json::to_value(&single).unwrap();
        assert_eq!(v["data"], json!([{"object": "embedding", "embedding": [0.5], "index": 0}]));
        assert_eq!(v["usage"], json!({"prompt_tokens": null, "total_tokens": null}));
        let batch = decode_embeddings(br#"{"embeddings":[{"values":[1]},{"values":[2]}]}"#, "Gemini", Some("e".into()))
            .unwrap();
        let v: Value = serde_json::to_value(&batch).unwrap();
        assert_eq!(v["data"][1]["embedding"], json!([2]));
        assert_eq!(v["data"][1]["index"], json!(1));
        assert!(decode_embeddings(b"not json", "Gemini", None).unwrap_err().status == 502);
    }

    #[test]
    fn chat_stream_tool_calls_are_indexed_across_events() {
        let mut d = GeminiStream::chat("Gemini", "gemini", Some("g".into()), 7);
        let (events, err) = stream(
            &mut d,
            &[
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Checking\"}]}}]}\r\n\r\n",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"a\",\"args\":{}}}]}}]}\r\n\r\n",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"b\",\"args\":{\"x\":1}}},{\"functionCall\":{\"id\":\"i\",\"name\":\"c\",\"args\":{}}}]}}]}\r\n\r\n",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1,\"candidatesTokenCount\":2,\"totalTokenCount\":3}}\r\n\r\n",
            ],
        );
        assert!(err.is_none());
        assert_eq!(events.len(), 4);
        assert!(events.iter().all(|e| e["id"] == json!("gemini-chat-stream-7")));
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Checking", "tool_calls": null})
        );
        let calls = |e: &Value| -> Vec<(u64, String)> {
            e["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["index"].as_u64().unwrap(), c["function"]["name"].as_str().unwrap().to_owned()))
                .collect()
        };
        assert_eq!(calls(&events[1]), vec![(0, "a".to_owned())]);
        assert_eq!(calls(&events[2]), vec![(1, "b".to_owned()), (2, "c".to_owned())]);
        assert_eq!(events[2]["choices"][0]["delta"]["tool_calls"][1]["id"], json!("i"));
        assert_eq!(events[2]["choices"][0]["delta"]["content"], Value::Null);
        assert_eq!(events[3]["choices"][0]["finish_reason"], json!("tool_calls"));
        assert_eq!(events[3]["usage"]["total_tokens"], json!(3));
        assert_eq!(d.usage().and_then(|u| u.total_tokens), Some(3));
    }

    #[test]
    fn chat_stream_error_event_and_garbage() {
        let mut d = GeminiStream::chat("Gemini", "gemini", None, 1);
        let (events, err) = stream(
            &mut d,
            &[
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n",
                "data: {\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n",
            ],
        );
        assert_eq!(events.len(), 1);
        let err = err.unwrap();
        assert_eq!((err.status, err.message().as_str()), (429, "Resource has been exhausted"));

        let mut d = GeminiStream::chat("Gemini", "gemini", None, 1);
        let (_, err) = stream(&mut d, &["data: {not json\n\n"]);
        assert_eq!(err.unwrap().status, 502);

        // A string error is an error too; an empty one is not.
        let mut d = GeminiStream::chat("Gemini", "gemini", None, 1);
        let (_, err) = stream(&mut d, &["data: {\"error\":\"quota\"}\n\n"]);
        assert_eq!(err.unwrap().status, 502);
        let mut d = GeminiStream::chat("Gemini", "gemini", None, 1);
        let (events, err) = stream(
            &mut d,
            &[
                "data: {\"error\":{},\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\"}]}\n\n",
            ],
        );
        assert!(err.is_none(), "{err:?}");
        assert_eq!(events[0]["choices"][0]["delta"]["content"], json!("a"));
    }

    #[test]
    fn a_stream_without_a_finish_reason_is_incomplete() {
        let mut d = GeminiStream::chat("Gemini", "gemini", None, 1);
        let (events, err) =
            stream(&mut d, &["data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
    }

    #[test]
    fn completions_stream_has_no_usage() {
        let mut d = GeminiStream::completions("Gemini", Some("g".into()), 9);
        let (events, err) = stream(
            &mut d,
            &[
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"totalTokenCount\":3}}\n\ndata: [DONE]\n\n",
            ],
        );
        assert!(err.is_none());
        assert_eq!(
            events,
            vec![json!({"id": "gemini-completions-stream-9", "object": "text_completion.chunk", "created": 9,
                        "model": "g", "choices": [{"index": 0, "finish_reason": "length", "text": "x"}], "usage": null})]
        );
        assert_eq!(d.usage().and_then(|u| u.total_tokens), Some(3));
    }
}
