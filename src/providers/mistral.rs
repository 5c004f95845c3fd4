//! Mistral (`provider: mistral`).
//!
//! Config: `mistral_api_key` (required secret), `mistral_api_base` (default
//! `https://api.mistral.ai/v1`); `Authorization: Bearer <key>`.
//!
//! * Chat → `POST {base}/chat/completions` with `{"model": <model.name>, …request}` (`n` kept).
//!   The answer is OpenAI-shaped; usage is limited to prompt/completion/total tokens.
//! * Chat streaming: the same body with `stream: true` (no `stream_options` injected); chunks are
//!   mapped like OpenAI's, `usage` is never forwarded (as MLflow: null on every chunk) but is
//!   still recorded for the access log; the stream ends at `[DONE]`.
//! * Completions are served by the chat API: the prompt becomes one user message, `stop` and `n`
//!   are dropped, `temperature` is halved (Mistral's range is 0–1, the unified one 0–2); the
//!   answer has `id: null`, `model` = `model.name` and the text of `choices[].message.content`.
//!   Completions streaming is not served (501 before any upstream call).
//! * Embeddings → `POST {base}/embeddings` with `{"model", …request}`; indexes come from the
//!   upstream, `model` = `model.name`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::sse::{SseStream, SseTranslate};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, CompletionChoice, CompletionsResponse, Delta,
    Embedding, EmbeddingsResponse, EmbeddingsUsage, FunctionCall, FunctionCallDelta, Request, ResponseMessage,
    ToolCall, ToolCallDelta, Usage, object,
};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default Mistral base URL.
pub const DEFAULT_BASE: &str = "https://api.mistral.ai/v1";

const DISPLAY: &str = "Mistral";

/// The `mistral` provider.
pub struct Mistral {
    base: BaseUrl,
    auth: http::HeaderValue,
}

impl Mistral {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Mistral, FieldError> {
        let key = cfg.required_secret("mistral_api_key")?;
        let base = match cfg.url("mistral_api_base")? {
            Some(b) => b,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("mistral_api_base", m))?,
        };
        let auth = secret_header(&format!("Bearer {}", key.expose()))
            .ok_or_else(|| cfg.error("mistral_api_key", "the key contains characters not allowed in an HTTP header"))?;
        Ok(Mistral { base, auth })
    }

    fn request(&self, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest::post_json(&self.base, suffix, body)
            .header_value(http::header::AUTHORIZATION, self.auth.clone())
    }
}

/// `{"model": <name>, …body}` (a client `model` never overrides the configured one).
fn with_model(model: Option<&str>, body: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(body.len() + 1);
    out.insert("model".into(), model.map_or(Value::Null, Value::from));
    for (k, v) in body {
        if k != "model" {
            out.insert(k, v);
        }
    }
    out
}

/// The chat-API body for a completions request (MLflow's `completions_to_model`).
fn completions_body(req: Request, model: Option<&str>) -> Map<String, Value> {
    let mut body = with_model(model, Map::new());
    for (k, v) in req.body {
        match k.as_str() {
            "stop" | "n" | "model" => {}
            "prompt" => {
                let mut msg = Map::new();
                msg.insert("role".into(), Value::from("user"));
                msg.insert("content".into(), v);
                body.insert("messages".into(), Value::Array(vec![Value::Object(msg)]));
            }
            "temperature" => {
                let t = v.as_f64().map_or(v, |t| Value::from(0.5 * t));
                body.insert(k, t);
            }
            _ => {
                body.insert(k, v);
            }
        }
    }
    body
}

impl Provider for Mistral {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = super::to_json(&with_model(call.model(), req.body))?;
        let provider = call.provider_label();
        let decoder = if stream {
            Decoder::Stream(Box::new(SseStream::new(ChatStream::new(provider, call.created))))
        } else {
            let created = call.created;
            Decoder::Json(Box::new(move |b| decode_chat(b, provider, created)))
        };
        Ok(Exchange::call(self.request("chat/completions", body), decoder))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let body = super::to_json(&completions_body(req, call.model()))?;
        let model = call.model().map(str::to_owned);
        let created = call.created;
        Ok(Exchange::call(
            self.request("chat/completions", body),
            Decoder::Json(Box::new(move |b| decode_completions(b, model, created))),
        ))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = super::to_json(&with_model(call.model(), req.body))?;
        let model = call.model().map(str::to_owned);
        Ok(Exchange::call(
            self.request("embeddings", body),
            Decoder::Json(Box::new(move |b| decode_embeddings(b, model))),
        ))
    }
}

// ---- upstream wire types ----

#[derive(Deserialize)]
struct WireChat {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: Option<String>,
    content: Option<Value>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    index: Option<u32>,
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<Value>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl WireUsage {
    fn unified(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            ..Usage::default()
        }
    }
}

#[derive(Deserialize)]
struct WireChunk {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    usage: Option<WireUsage>,
    object: Option<String>,
    error: Option<Value>,
    message: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    index: Option<u32>,
    finish_reason: Option<String>,
    delta: Option<WireDelta>,
}

#[derive(Deserialize)]
struct WireDelta {
    role: Option<String>,
    content: Option<Value>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireEmbeddings {
    #[serde(default)]
    data: Vec<WireEmbedding>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    embedding: Box<serde_json::value::RawValue>,
    index: Option<u32>,
}

/// Message content as text: a string, or the `text` parts of a list joined with `\n` (Mistral's
/// reasoning models answer with a list whose `thinking` parts are dropped).
fn content_text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// Tool-call arguments as the JSON string clients expect.
fn arguments(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

// ---- decoders ----

fn decode_chat(body: &[u8], provider: &'static str, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireChat = super::parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let m = c.message.unwrap_or(WireMessage { role: None, content: None, tool_calls: None });
            let tool_calls = m.tool_calls.filter(|t| !t.is_empty()).map(|calls| {
                calls
                    .into_iter()
                    .map(|t| {
                        let f = t.function.unwrap_or(WireFunction { name: None, arguments: None });
                        ToolCall {
                            id: t.id.unwrap_or_default(),
                            kind: "function",
                            function: FunctionCall {
                                name: f.name.unwrap_or_default(),
                                arguments: arguments(f.arguments).unwrap_or_default(),
                            },
                            thought_signature: None,
                        }
                    })
                    .collect()
            });
            ChatChoice {
                index: i as u32,
                message: ResponseMessage {
                    role: m.role.unwrap_or_else(|| "assistant".into()),
                    content: content_text(m.content),
                    tool_calls,
                    refusal: None,
                    reasoning_content: None,
                },
                finish_reason: c.finish_reason,
            }
        })
        .collect();
    Ok(Answer::Chat(ChatResponse {
        id: wire.id,
        object: object::CHAT,
        created: wire.created.unwrap_or(created),
        model: wire.model,
        choices,
        usage: wire.usage.unwrap_or_default().unified(),
        provider,
    }))
}

fn decode_completions(body: &[u8], model: Option<String>, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireChat = super::parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| CompletionChoice {
            index: i as u32,
            text: Some(c.message.and_then(|m| content_text(m.content)).unwrap_or_default()),
            finish_reason: c.finish_reason,
        })
        .collect();
    Ok(Answer::Completions(CompletionsResponse {
        id: None,
        object: object::COMPLETION,
        created,
        model,
        choices,
        usage: wire.usage.unwrap_or_default().unified(),
    }))
}

fn decode_embeddings(body: &[u8], model: Option<String>) -> Result<Answer, GatewayError> {
    let wire: WireEmbeddings = super::parse_upstream_json(body, DISPLAY)?;
    let usage = wire.usage.unwrap_or_default();
    Ok(Answer::Embeddings(EmbeddingsResponse {
        object: object::LIST,
        data: wire
            .data
            .into_iter()
            .enumerate()
            .map(|(i, d)| Embedding {
                object: object::EMBEDDING,
                embedding: d.embedding.into(),
                index: d.index.unwrap_or(i as u32),
            })
            .collect(),
        model,
        usage: EmbeddingsUsage { prompt_tokens: usage.prompt_tokens, total_tokens: usage.total_tokens },
    }))
}

/// Mistral's chat stream (OpenAI-style SSE) as unified chunks. Usage is kept for the access log
/// but not forwarded; nothing after `[DONE]` is read. Complete once `[DONE]` or a choice's
/// `finish_reason` arrived.
struct ChatStream {
    provider: &'static str,
    created: u64,
    usage: Option<Usage>,
    done: bool,
    ends: super::openai::ChoiceEnds,
}

impl ChatStream {
    fn new(provider: &'static str, created: u64) -> Self {
        ChatStream { provider, created, usage: None, done: false, ends: super::openai::ChoiceEnds::default() }
    }
}

impl SseTranslate for ChatStream {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        if self.done || data.trim().is_empty() {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data)
            .map_err(|e| GatewayError::bad_gateway(format!("{DISPLAY} sent an unreadable stream chunk: {e}")))?;
        if chunk.error.is_some() || chunk.object.as_deref() == Some("error") {
            let message = match (chunk.error, chunk.message) {
                (Some(Value::Object(e)), _) => e.get("message").and_then(Value::as_str).map(str::to_owned),
                (Some(Value::String(s)), _) => Some(s),
                (_, Some(Value::String(s))) => Some(s),
                _ => None,
            };
            return Err(GatewayError::new(
                502,
                ErrorKind::Upstream,
                message.unwrap_or_else(|| format!("{DISPLAY} reported an error in the stream")),
            ));
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u.unified());
        }
        for (i, c) in chunk.choices.iter().enumerate() {
            self.ends.choice(c.index.unwrap_or(i as u32), c.finish_reason.is_some());
        }
        let choices = chunk
            .choices
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let (role, content, tool_calls) = match c.delta {
                    Some(d) => (d.role, content_text(d.content), d.tool_calls),
                    None => (None, None, None),
                };
                ChunkChoice {
                    index: c.index.unwrap_or(i as u32),
                    finish_reason: c.finish_reason,
                    delta: Delta {
                        role,
                        content,
                        tool_calls: tool_calls.filter(|t| !t.is_empty()).map(|calls| {
                            calls
                                .into_iter()
                                .enumerate()
                                .map(|(j, t)| ToolCallDelta {
                                    index: t.index.unwrap_or(j as u32),
                                    id: t.id,
                                    kind: t.kind.map(|_| "function"),
                                    function: t
                                        .function
                                        .map(|f| FunctionCallDelta { name: f.name, arguments: arguments(f.arguments) })
                                        .unwrap_or_default(),
                                })
                                .collect()
                        }),
                        reasoning_content: None,
                    },
                }
            })
            .collect();
        out.push(Chunk::Chat(ChatChunk {
            id: chunk.id,
            object: object::CHAT_CHUNK,
            created: chunk.created.unwrap_or(self.created),
            model: chunk.model,
            choices,
            usage: None,
            provider: self.provider,
        }));
        Ok(())
    }

    fn complete(&self) -> bool {
        self.done || self.ends.all_finished()
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::StreamDecoder;
    use crate::schema::EndpointType;
    use serde_json::json;

    use crate::schema::testing::req;

    use crate::framing::testing::events;

    #[test]
    fn config_needs_key_and_accepts_base() {
        let spec = EndpointSpec {
            index: 0,
            name: "m",
            endpoint_type: EndpointType::Chat,
            model_name: Some("mistral-small"),
            provider_name: crate::config::ProviderName::Mistral,
        };
        let empty = Map::new();
        let err = Mistral::from_config(&spec, &mut ConfigMap::new(&empty, "model.config")).err().unwrap();
        assert_eq!(err.field, "model.config.mistral_api_key");
        let cfg = json!({"mistral_api_key": "k", "mistral_api_base": "http://localhost:9/x"});
        let p = Mistral::from_config(&spec, &mut ConfigMap::new(cfg.as_object().unwrap(), "model.config")).unwrap();
        assert_eq!(p.request("embeddings", vec![]).url(), "http://localhost:9/x/embeddings");
        let bad = json!({"mistral_api_key": "k", "mistral_api_base": "ftp://x"});
        let err = Mistral::from_config(&spec, &mut ConfigMap::new(bad.as_object().unwrap(), "model.config")).err();
        assert_eq!(err.unwrap().field, "model.config.mistral_api_base");
    }

    #[test]
    fn completions_become_one_user_message() {
        let r = req(
            EndpointType::Completions,
            json!({"prompt": "p", "stop": ["x"], "n": 2, "temperature": 0.6, "max_tokens": 3, "top_p": 0.5}),
        );
        let body = Value::Object(completions_body(r, Some("mistral-tiny")));
        assert_eq!(
            body,
            json!({"model": "mistral-tiny", "messages": [{"role": "user", "content": "p"}],
                   "temperature": 0.3, "max_tokens": 3, "top_p": 0.5})
        );
    }

    #[test]
    fn chat_body_sets_the_configured_model() {
        let r = req(EndpointType::Chat, json!({"messages": [{"role": "user", "content": "x"}]}));
        let mut b = r.body;
        b.insert("model".into(), json!("client-choice"));
        let body = with_model(Some("mistral-large"), b);
        assert_eq!(body["model"], json!("mistral-large"));
        assert_eq!(body["n"], json!(1));
        assert_eq!(body.keys().next().map(String::as_str), Some("model"));
    }

    #[test]
    fn chat_answer_keeps_tool_calls_and_trims_usage() {
        let body = json!({"id": "c", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "",
                "tool_calls": [{"id": "t1", "function": {"name": "f", "arguments": {"a": 1}}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "extra": 9}});
        let v: Value = serde_json::to_value(decode_chat(body.to_string().as_bytes(), "mistral", 0).unwrap()).unwrap();
        assert_eq!(v["usage"], json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}));
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"],
            json!([{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}])
        );
        assert_eq!(v["provider"], json!("mistral"));
        assert_eq!(v["created"], json!(5));
    }

    #[test]
    fn reasoning_parts_are_dropped_from_content() {
        let body = json!({"id": "c", "created": 5, "model": "magistral",
            "choices": [{"message": {"role": "assistant", "content": [
                {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                {"type": "text", "text": "Answer"}]}, "finish_reason": "stop"}]});
        let v: Value = serde_json::to_value(decode_chat(body.to_string().as_bytes(), "mistral", 0).unwrap()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], json!("Answer"));
        assert_eq!(v["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));
    }

    #[test]
    fn completions_answer_has_no_id_and_the_configured_model() {
        let body = json!({"id": "x", "created": 9, "model": "upstream",
            "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}});
        let v: Value =
            serde_json::to_value(decode_completions(body.to_string().as_bytes(), Some("cfg".into()), 77).unwrap())
                .unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["model"], json!("cfg"));
        assert_eq!(v["created"], json!(77));
        assert_eq!(v["choices"], json!([{"index": 0, "text": "hi", "finish_reason": "length"}]));
    }

    #[test]
    fn embeddings_keep_upstream_indexes() {
        let body = json!({"data": [{"embedding": [0.1], "index": 1}, {"embedding": [0.2], "index": 0}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}});
        let v: Value =
            serde_json::to_value(decode_embeddings(body.to_string().as_bytes(), Some("e".into())).unwrap()).unwrap();
        assert_eq!(v["data"][0]["index"], json!(1));
        assert_eq!(v["model"], json!("e"));
        assert_eq!(v["usage"]["total_tokens"], json!(2));
    }

    #[test]
    fn stream_drops_usage_and_stops_at_done() {
        let mut d = SseStream::new(ChatStream::new("mistral", 1));
        let mut out = Vec::new();
        d.feed(b"data: {\"id\":\"s\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\ndata: {\"id\":\"late\"}\n\n", &mut out).unwrap();
        d.finish(&mut out).unwrap();
        let ev = events(&out);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["usage"], Value::Null);
        assert_eq!(ev[0]["choices"][0]["finish_reason"], json!("stop"));
        assert_eq!(d.usage().and_then(|u| u.total_tokens), Some(2));
    }

    #[test]
    fn stream_is_complete_at_done_or_a_finish_reason() {
        let chunk = |finish: &str| {
            format!(
                "data: {{\"id\":\"s\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}},\"finish_reason\":{finish}}}]}}\n\n"
            )
        };
        let run = |chunks: &[&str]| {
            crate::framing::testing::run(&mut SseStream::new(ChatStream::new("mistral", 1)), chunks).1
        };
        assert_eq!(run(&[&chunk("null")]).unwrap().message(), "upstream stream ended before it was complete");
        assert!(run(&[&chunk("\"stop\"")]).is_none());
        assert!(run(&[&chunk("null"), "data: [DONE]\n\n"]).is_none());
    }

    #[test]
    fn stream_error_object_is_an_error() {
        let mut d = SseStream::new(ChatStream::new("mistral", 1));
        let mut out = Vec::new();
        let err = d
            .feed(b"data: {\"object\":\"error\",\"message\":\"Service unavailable\",\"type\":\"x\"}\n\n", &mut out)
            .unwrap_err();
        assert_eq!(err.message(), "Service unavailable");
        let mut d = SseStream::new(ChatStream::new("mistral", 1));
        assert_eq!(d.feed(b"data: {oops\n\n", &mut out).unwrap_err().status, 502);
    }
}
