//! Cohere (`provider: cohere`, deprecated in MLflow; a warning is logged when an endpoint using
//! it is loaded).
//!
//! Config: `cohere_api_key` (required secret), `cohere_api_base` (default
//! `https://api.cohere.ai/v1`); `Authorization: Bearer <key>`. Temperatures are multiplied by
//! 2.5 when non-zero (Cohere's range is 0–5, the unified one 0–2).
//!
//! * Chat → `POST {base}/chat` (Cohere's v1 chat): `n` must be 1 and `stop` is refused (422);
//!   the last message must be the user's and becomes `message`; system messages joined with `\n`
//!   become `preamble_override`; the other user/assistant messages become `chat_history`
//!   (`USER`/`CHATBOT`). The answer: `id` = `response_id`, `finish_reason` null, usage from
//!   `token_count`.
//! * Chat streaming: Cohere answers with newline-delimited JSON (not SSE), content type
//!   `application/stream+json`. `stream-start` is skipped; every other line becomes a chunk with
//!   its `text` and Cohere's raw `finish_reason` (e.g. `COMPLETE`, as MLflow: not normalised);
//!   `stream-end` carries the id and the usage. A stream without `stream-end` (or a line with
//!   `is_finished: true`) is incomplete, an error; a plain `application/json` answer is not a
//!   stream (the server answers it with an error).
//! * Completions → `POST {base}/generate`: `stop` → `stop_sequences`, `n` → `num_generations`
//!   (sending Cohere's own names is a 400). Streaming is NDJSON too.
//! * Embeddings → `POST {base}/embed`: `input` → `texts` (a single string becomes a one-element
//!   list, docs/mlflow-compat.md#fix-8); sending `texts` is a 422.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::ndjson::{LineTranslate, NdjsonStream};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, CompletionChoice, CompletionChunkChoice,
    CompletionsChunk, CompletionsResponse, Delta, Embedding, EmbeddingsResponse, EmbeddingsUsage, Request,
    ResponseMessage, Usage,
};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default Cohere base URL.
pub const DEFAULT_BASE: &str = "https://api.cohere.ai/v1";

const DISPLAY: &str = "Cohere";

/// The `cohere` provider.
pub struct Cohere {
    base: BaseUrl,
    auth: http::HeaderValue,
}

impl Cohere {
    /// Build from `model.config`.
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Cohere, FieldError> {
        let key = cfg.required_secret("cohere_api_key")?;
        let base = match cfg.url("cohere_api_base")? {
            Some(b) => b,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("cohere_api_base", m))?,
        };
        let auth = secret_header(&format!("Bearer {}", key.expose()))
            .ok_or_else(|| cfg.error("cohere_api_key", "the key contains characters not allowed in an HTTP header"))?;
        log::warn!(
            "endpoint '{}': the cohere provider is deprecated in MLflow and uses Cohere's legacy v1 API",
            spec.name
        );
        Ok(Cohere { base, auth })
    }

    fn request(&self, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest::post_json(&self.base, suffix, body)
            .header_value(http::header::AUTHORIZATION, self.auth.clone())
    }
}

/// Cohere's temperature: ×2.5 when present and non-zero (zero is sent unchanged).
fn scale_temperature(v: Value) -> Value {
    match v.as_f64() {
        Some(t) if t != 0.0 => Value::from(2.5 * t),
        _ => v,
    }
}

/// Message content as Cohere's plain text: a string, or the text parts of a list joined with
/// `\n`; null is empty. Other part types cannot be sent to Cohere's v1 chat (422).
fn text_of(content: &Value) -> Result<String, GatewayError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(p.get("text").and_then(Value::as_str).unwrap_or_default()),
                    other => {
                        return Err(GatewayError::invalid(format!(
                            "Cohere chat accepts text content only; got a '{}' content part.",
                            other.unwrap_or("unknown")
                        )));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        other => Ok(other.to_string()),
    }
}

/// The `/chat` body (MLflow's `chat_to_model`).
fn chat_body(req: Request, model: Option<&str>) -> Result<Map<String, Value>, GatewayError> {
    let mut body = req.body;
    let n = body.remove("n").unwrap_or(Value::from(1));
    if n.as_u64() != Some(1) {
        return Err(GatewayError::invalid(format!("Parameter n must be 1 for Cohere chat, got {n}.")));
    }
    if body.contains_key("stop") {
        return Err(GatewayError::invalid("Parameter stop is not supported for Cohere chat."));
    }
    let mut messages = match body.remove("messages") {
        Some(Value::Array(m)) => m,
        _ => Vec::new(),
    };
    let last = messages.pop().unwrap_or(Value::Null);
    let role = last.get("role").and_then(Value::as_str).unwrap_or_default();
    if role != "user" {
        return Err(GatewayError::invalid(format!("Last message must be from user, got {role}.")));
    }
    let message = text_of(last.get("content").unwrap_or(&Value::Null))?;

    let mut system = Vec::new();
    let mut history = Vec::new();
    for m in &messages {
        let content = m.get("content").unwrap_or(&Value::Null);
        match m.get("role").and_then(Value::as_str) {
            Some("system") => system.push(text_of(content)?),
            Some(r @ ("user" | "assistant")) => {
                let mut turn = Map::new();
                turn.insert("role".into(), Value::from(if r == "user" { "USER" } else { "CHATBOT" }));
                turn.insert("message".into(), Value::from(text_of(content)?));
                history.push(Value::Object(turn));
            }
            // Tool and other roles have no place in Cohere's v1 chat history (MLflow drops them).
            _ => {}
        }
    }

    let mut out = Map::with_capacity(body.len() + 4);
    out.insert("model".into(), model.map_or(Value::Null, Value::from));
    for (k, v) in body {
        match k.as_str() {
            "model" => {}
            "temperature" => {
                out.insert(k, scale_temperature(v));
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    out.insert("message".into(), Value::from(message));
    if !system.is_empty() {
        out.insert("preamble_override".into(), Value::from(system.join("\n")));
    }
    if !history.is_empty() {
        out.insert("chat_history".into(), Value::Array(history));
    }
    Ok(out)
}

/// The `/generate` body (MLflow's `completions_to_model`).
fn generate_body(req: Request, model: Option<&str>) -> Result<Map<String, Value>, GatewayError> {
    for (ours, theirs) in [("stop", "stop_sequences"), ("n", "num_generations")] {
        if req.body.contains_key(theirs) {
            // MLflow's `check_keys_against_mapping` answers 400 here.
            return Err(GatewayError::bad_request(format!("Invalid parameter {theirs}. Use {ours} instead.")));
        }
    }
    let mut out = Map::with_capacity(req.body.len() + 1);
    out.insert("model".into(), model.map_or(Value::Null, Value::from));
    for (k, v) in req.body {
        match k.as_str() {
            "model" => {}
            "stop" => {
                out.insert("stop_sequences".into(), v);
            }
            "n" => {
                out.insert("num_generations".into(), v);
            }
            "temperature" => {
                out.insert(k, scale_temperature(v));
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    Ok(out)
}

/// The `/embed` body (MLflow's `embeddings_to_model`, with docs/mlflow-compat.md#fix-8 for a single string).
fn embed_body(req: Request, model: Option<&str>) -> Result<Map<String, Value>, GatewayError> {
    if req.body.contains_key("texts") {
        return Err(GatewayError::invalid("Invalid parameter texts. Use input instead."));
    }
    let mut out = Map::with_capacity(req.body.len() + 1);
    out.insert("model".into(), model.map_or(Value::Null, Value::from));
    for (k, v) in req.body {
        match k.as_str() {
            "model" => {}
            "input" => {
                let texts = match v {
                    Value::String(s) => Value::Array(vec![Value::String(s)]),
                    other => other,
                };
                out.insert("texts".into(), texts);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    Ok(out)
}

impl Provider for Cohere {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(self.request("", Vec::new()))
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = super::to_json(&chat_body(req, call.model())?)?;
        let provider = call.provider_label();
        let model = call.model().map(str::to_owned);
        let created = call.created;
        let decoder = if stream {
            Decoder::Stream(Box::new(cohere_stream(Kind::Chat(provider), model, created)))
        } else {
            Decoder::Json(Box::new(move |b| decode_chat(b, provider, model, created)))
        };
        Ok(Exchange::call(self.request("chat", body), decoder))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = super::to_json(&generate_body(req, call.model())?)?;
        let model = call.model().map(str::to_owned);
        let created = call.created;
        let decoder = if stream {
            Decoder::Stream(Box::new(cohere_stream(Kind::Completions, model, created)))
        } else {
            Decoder::Json(Box::new(move |b| decode_completions(b, model, created)))
        };
        Ok(Exchange::call(self.request("generate", body), decoder))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = super::to_json(&embed_body(req, call.model())?)?;
        let model = call.model().map(str::to_owned);
        Ok(Exchange::call(self.request("embed", body), Decoder::Json(Box::new(move |b| decode_embeddings(b, model)))))
    }
}

// ---- upstream wire types ----

#[derive(Deserialize)]
struct WireChat {
    response_id: Option<String>,
    text: Option<String>,
    token_count: Option<WireTokenCount>,
}

#[derive(Deserialize, Default)]
struct WireTokenCount {
    prompt_tokens: Option<u64>,
    response_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl WireTokenCount {
    fn unified(self) -> Usage {
        Usage::counts(self.prompt_tokens, self.response_tokens, self.total_tokens)
    }
}

#[derive(Deserialize)]
struct WireGenerate {
    #[serde(default)]
    generations: Vec<WireGeneration>,
}

#[derive(Deserialize)]
struct WireGeneration {
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireEmbed {
    embeddings: Value,
}

/// One NDJSON line of a Cohere stream.
#[derive(Deserialize)]
struct WireEvent {
    event_type: Option<String>,
    is_finished: Option<bool>,
    text: Option<String>,
    finish_reason: Option<String>,
    index: Option<u32>,
    response: Option<WireStreamResponse>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct WireStreamResponse {
    /// Chat's id.
    response_id: Option<String>,
    /// Generate's id.
    id: Option<String>,
    token_count: Option<WireTokenCount>,
}

// ---- decoders ----

fn decode_chat(
    body: &[u8],
    provider: &'static str,
    model: Option<String>,
    created: u64,
) -> Result<Answer, GatewayError> {
    let wire: WireChat = super::parse_upstream_json(body, DISPLAY)?;
    Ok(Answer::Chat(ChatResponse::new(
        wire.response_id,
        created,
        model,
        vec![ChatChoice::new(0, ResponseMessage::assistant(wire.text), None)],
        wire.token_count.unwrap_or_default().unified(),
        provider,
    )))
}

fn decode_completions(body: &[u8], model: Option<String>, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireGenerate = super::parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .generations
        .into_iter()
        .enumerate()
        .map(|(i, g)| CompletionChoice::new(i as u32, Some(g.text.unwrap_or_default()), None))
        .collect();
    Ok(Answer::Completions(CompletionsResponse::new(None, created, model, choices, Usage::default())))
}

fn decode_embeddings(body: &[u8], model: Option<String>) -> Result<Answer, GatewayError> {
    let wire: WireEmbed = super::parse_upstream_json(body, DISPLAY)?;
    // `embeddings` is a list of vectors; with `embedding_types` Cohere groups them by type.
    let vectors = match wire.embeddings {
        Value::Array(v) => v,
        Value::Object(mut by_type) => match by_type.remove("float") {
            Some(Value::Array(v)) => v,
            _ => return Err(GatewayError::bad_gateway("Cohere returned no float embeddings")),
        },
        _ => return Err(GatewayError::bad_gateway("Cohere returned a response without embeddings")),
    };
    let data = vectors.into_iter().enumerate().map(|(i, e)| Embedding::new(i as u32, e)).collect();
    Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, EmbeddingsUsage::default())))
}

#[derive(Clone, Copy)]
enum Kind {
    /// Chat chunks carrying this `provider`.
    Chat(&'static str),
    /// Completions chunks.
    Completions,
}

/// Cohere's NDJSON stream (chat or generate), line by line, as unified chunks.
struct CohereLines {
    kind: Kind,
    model: Option<String>,
    created: u64,
    usage: Option<Usage>,
    /// `stream-end` (or `is_finished: true`) arrived.
    complete: bool,
}

/// The decoder of a Cohere stream.
fn cohere_stream(kind: Kind, model: Option<String>, created: u64) -> NdjsonStream<CohereLines> {
    NdjsonStream::new(CohereLines { kind, model, created, usage: None, complete: false })
}

impl LineTranslate for CohereLines {
    fn line(&mut self, line: &[u8], out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let ev: WireEvent = serde_json::from_slice(line)
            .map_err(|e| GatewayError::bad_gateway(format!("{DISPLAY} sent an unreadable stream line: {e}")))?;
        let Some(event_type) = ev.event_type.as_deref() else {
            // Not a stream event: Cohere reports failures as `{"message": …}`.
            let message = ev.message.unwrap_or_else(|| format!("{DISPLAY} sent a stream line without event_type"));
            return Err(GatewayError::new(502, ErrorKind::Upstream, message));
        };
        self.complete |= event_type == "stream-end" || ev.is_finished == Some(true);
        match self.kind {
            Kind::Chat(provider) => {
                if event_type == "stream-start" {
                    return Ok(());
                }
                let (id, usage) = match ev.response {
                    Some(r) => {
                        let usage = r.token_count.unwrap_or_default().unified();
                        self.usage = Some(usage.clone());
                        (r.response_id, usage)
                    }
                    None => (None, Usage::default()),
                };
                out.push(Chunk::Chat(ChatChunk::new(
                    id,
                    self.created,
                    self.model.clone(),
                    vec![ChunkChoice::new(0, Delta::text(ev.text), ev.finish_reason)],
                    Some(usage),
                    provider,
                )));
            }
            Kind::Completions => out.push(Chunk::Completions(CompletionsChunk::new(
                ev.response.and_then(|r| r.id),
                self.created,
                self.model.clone(),
                vec![CompletionChunkChoice::new(ev.index.unwrap_or(0), ev.text, ev.finish_reason)],
                Some(Usage::default()),
            ))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EndpointType;
    use proptest::prelude::*;
    use serde_json::json;

    use crate::schema::testing::req;

    fn chat(body: Value) -> Result<Value, GatewayError> {
        chat_body(req(EndpointType::Chat, body), Some("command")).map(Value::Object)
    }

    use crate::framing::StreamDecoder;
    use crate::framing::testing::events;

    #[test]
    fn chat_translation() {
        let body = chat(json!({"messages": [
            {"role": "system", "content": "a"}, {"role": "user", "content": "u1"},
            {"role": "system", "content": "b"}, {"role": "assistant", "content": "a1"},
            {"role": "tool", "content": "t", "tool_call_id": "x"},
            {"role": "user", "content": [{"type": "text", "text": "last"}]}],
            "temperature": 0.4, "max_tokens": 5}))
        .unwrap();
        assert_eq!(
            body,
            json!({"model": "command", "temperature": 1.0, "max_tokens": 5, "message": "last",
                   "preamble_override": "a\nb",
                   "chat_history": [{"role": "USER", "message": "u1"}, {"role": "CHATBOT", "message": "a1"}]})
        );
        // Zero stays as sent.
        let body = chat(json!({"messages": [{"role": "user", "content": "x"}], "temperature": 0})).unwrap();
        assert_eq!(body["temperature"], json!(0));
        assert!(body.get("chat_history").is_none() && body.get("preamble_override").is_none());
    }

    #[test]
    fn chat_rules() {
        let e = chat(json!({"messages": [{"role": "user", "content": "x"}], "n": 2})).unwrap_err();
        assert_eq!((e.status, e.message()), (422, "Parameter n must be 1 for Cohere chat, got 2.".into()));
        let e = chat(json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a"]})).unwrap_err();
        assert_eq!(e.message(), "Parameter stop is not supported for Cohere chat.");
        let e = chat(json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}))
            .unwrap_err();
        assert_eq!((e.status, e.message()), (422, "Last message must be from user, got assistant.".into()));
        let e = chat(json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}))
            .unwrap_err();
        assert_eq!(e.status, 422);
    }

    #[test]
    fn generate_translation_and_rules() {
        let body = generate_body(
            req(EndpointType::Completions, json!({"prompt": "p", "stop": ["s"], "n": 2, "temperature": 0.2})),
            Some("c"),
        )
        .unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"model": "c", "prompt": "p", "stop_sequences": ["s"], "num_generations": 2, "temperature": 0.5})
        );
        let e = generate_body(req(EndpointType::Completions, json!({"prompt": "p", "num_generations": 2})), None)
            .unwrap_err();
        assert_eq!((e.status, e.message()), (400, "Invalid parameter num_generations. Use n instead.".into()));
        let e = generate_body(req(EndpointType::Completions, json!({"prompt": "p", "stop_sequences": ["x"]})), None)
            .unwrap_err();
        assert_eq!(e.message(), "Invalid parameter stop_sequences. Use stop instead.");
    }

    #[test]
    fn embed_translation() {
        // docs/mlflow-compat.md#fix-8: a single string becomes a one-element list.
        let body =
            embed_body(req(EndpointType::Embeddings, json!({"input": "one", "input_type": "search_query"})), Some("e"))
                .unwrap();
        assert_eq!(Value::Object(body), json!({"model": "e", "texts": ["one"], "input_type": "search_query"}));
        let e = embed_body(req(EndpointType::Embeddings, json!({"input": ["a"], "texts": ["b"]})), None).unwrap_err();
        assert_eq!((e.status, e.message()), (422, "Invalid parameter texts. Use input instead.".into()));
    }

    #[test]
    fn answers() {
        let chat = json!({"response_id": "r", "text": "t", "token_count": {"prompt_tokens": 1, "response_tokens": 2, "total_tokens": 3, "billed_tokens": 3}});
        let v: Value = serde_json::to_value(
            decode_chat(chat.to_string().as_bytes(), "cohere", Some("command".into()), 7).unwrap(),
        )
        .unwrap();
        assert_eq!(v["id"], json!("r"));
        assert_eq!(v["usage"], json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}));
        assert_eq!(v["created"], json!(7));

        let gen_ = json!({"id": "g", "generations": [{"text": "a"}, {"text": "b"}]});
        let v: Value =
            serde_json::to_value(decode_completions(gen_.to_string().as_bytes(), Some("c".into()), 7).unwrap())
                .unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["choices"][1], json!({"index": 1, "text": "b", "finish_reason": null}));

        let emb = json!({"embeddings": {"float": [[1.0, 2.0]]}});
        let v: Value =
            serde_json::to_value(decode_embeddings(emb.to_string().as_bytes(), Some("e".into())).unwrap()).unwrap();
        assert_eq!(v["data"][0]["embedding"], json!([1.0, 2.0]));
        assert_eq!(decode_embeddings(b"{\"embeddings\": 3}", None).unwrap_err().status, 502);
    }

    const CHAT_STREAM: &str = concat!(
        "{\"is_finished\":false,\"event_type\":\"stream-start\",\"generation_id\":\"g\"}\n",
        "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"Caf\u{e9} \"}\n",
        "\n",
        "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"ol\u{e9} \u{1F600}\"}\r\n",
        "{\"is_finished\":true,\"event_type\":\"stream-end\",\"finish_reason\":\"COMPLETE\",",
        "\"response\":{\"response_id\":\"r1\",\"token_count\":{\"prompt_tokens\":3,\"response_tokens\":4,\"total_tokens\":7}}}"
    );

    fn run_chat_stream(pieces: &[&[u8]]) -> (Vec<Chunk>, Option<Usage>) {
        let mut d = cohere_stream(Kind::Chat("cohere"), Some("command".into()), 1);
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        (out, d.usage().cloned())
    }

    #[test]
    fn chat_stream_events() {
        let (out, usage) = run_chat_stream(&[CHAT_STREAM.as_bytes()]);
        let ev = events(&out);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0]["id"], Value::Null);
        assert_eq!(ev[0]["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));
        assert_eq!(ev[1]["choices"][0]["delta"]["content"], json!("olé 😀"));
        assert_eq!(ev[2]["id"], json!("r1"));
        assert_eq!(ev[2]["choices"][0]["finish_reason"], json!("COMPLETE"));
        assert_eq!(ev[2]["choices"][0]["delta"]["content"], Value::Null);
        assert_eq!(ev[2]["usage"]["completion_tokens"], json!(4));
        assert_eq!(usage.and_then(|u| u.total_tokens), Some(7));
    }

    #[test]
    fn completions_stream_events() {
        let mut d = cohere_stream(Kind::Completions, Some("command".into()), 1);
        let mut out = Vec::new();
        d.feed(b"{\"text\":\" Hi\",\"is_finished\":false,\"event_type\":\"text-generation\",\"index\":1}\n{\"is_finished\":true,\"event_type\":\"stream-end\",\"finish_reason\":\"MAX_TOKENS\",\"response\":{\"id\":\"g1\"}}\n", &mut out).unwrap();
        let ev = events(&out);
        assert_eq!(ev[0]["choices"][0], json!({"index": 1, "finish_reason": null, "text": " Hi"}));
        assert_eq!(ev[1]["id"], json!("g1"));
        assert_eq!(ev[1]["choices"][0]["finish_reason"], json!("MAX_TOKENS"));
        assert_eq!(ev[1]["object"], json!("text_completion_chunk"));
    }

    #[test]
    fn stream_failures_are_errors() {
        let mut d = cohere_stream(Kind::Chat("cohere"), None, 1);
        let mut out = Vec::new();
        let e = d.feed(b"{\"message\":\"invalid api token\"}\n", &mut out).unwrap_err();
        assert_eq!(e.message(), "invalid api token");
        let mut d = cohere_stream(Kind::Chat("cohere"), None, 1);
        assert_eq!(d.feed(b"not json\n", &mut out).unwrap_err().status, 502);
        let mut d = cohere_stream(Kind::Chat("cohere"), None, 1);
        d.feed(b"{\"event_type\":\"text-gen", &mut out).unwrap();
        assert_eq!(d.finish(&mut out).unwrap_err().status, 502, "a truncated last line is unreadable");
    }

    #[test]
    fn stream_is_complete_at_stream_end_or_is_finished() {
        let mut out = Vec::new();
        let mut d = cohere_stream(Kind::Chat("cohere"), None, 1);
        d.feed(b"{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"a\"}\n", &mut out).unwrap();
        assert_eq!(d.finish(&mut out).unwrap_err().message(), "upstream stream ended before it was complete");
        let mut d = cohere_stream(Kind::Completions, None, 1);
        d.feed(b"{\"text\":\"a\",\"is_finished\":true,\"event_type\":\"text-generation\"}\n", &mut out).unwrap();
        d.finish(&mut out).unwrap();
    }

    #[test]
    fn a_line_over_the_limit_is_refused_and_the_stream_type_is_not_whole_json() {
        let mut out = Vec::new();
        let mut d = cohere_stream(Kind::Chat("cohere"), None, 1);
        d.set_max_event(64);
        d.feed(&[b' '; 60], &mut out).unwrap();
        let e = d.feed(&[b' '; 5], &mut out).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (502, Some("response_too_large")));
        assert!(d.buffered() == 0, "the partial line is released");
        assert!(!d.is_whole_json("application/stream+json"));
        assert!(!d.is_whole_json("Application/Stream+JSON; charset=utf-8"));
        assert!(d.is_whole_json("application/json"));
    }

    proptest! {
        /// The NDJSON framing gives the same lines, hence the same events, for any split.
        #[test]
        fn ndjson_any_split(cuts in proptest::collection::vec(0usize..=CHAT_STREAM.len(), 0..24)) {
            let whole = run_chat_stream(&[CHAT_STREAM.as_bytes()]);
            let bytes = CHAT_STREAM.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for c in cuts {
                pieces.push(&bytes[last..c]);
                last = c;
            }
            pieces.push(&bytes[last..]);
            prop_assert_eq!(run_chat_stream(&pieces), whole);
        }
    }
}
