//! TogetherAI (`provider: togetherai`).
//!
//! Config: `togetherai_api_key` (required secret), `togetherai_api_base` (default
//! `https://api.together.xyz/v1`); `Authorization: Bearer <key>`.
//!
//! Chat and completions bodies are `{"model": <model.name>, …request}` with `top_logprobs`
//! renamed to `logprobs` (both must be integers, else 422). Answers carry `model` = `model.name`:
//! * chat → `/chat/completions`; `finish_reason` is always null (as MLflow); chat streaming
//!   takes each chunk's text from `choices[].text` and passes `usage` through;
//! * completions → `/completions`; `max_tokens` is required (422, streaming too);
//!   `finish_reason` null; streamed chunks carry text and finish reason, no usage;
//! * embeddings → `/embeddings` with `model` set (docs/mlflow-compat.md#fix-8: MLflow omits it, which
//!   TogetherAI rejects); `usage` is null.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::sse::{SseStream, SseTranslate};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, CompletionChoice, CompletionChunkChoice,
    CompletionsChunk, CompletionsResponse, Delta, Embedding, EmbeddingsResponse, EmbeddingsUsage, Request,
    ResponseMessage, Usage, object,
};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default TogetherAI base URL.
pub const DEFAULT_BASE: &str = "https://api.together.xyz/v1";

const DISPLAY: &str = "TogetherAI";

/// MLflow's message for a completions request without `max_tokens`.
pub const MAX_TOKENS_REQUIRED: &str =
    "max_tokens is not present in payload.It is a required parameter for TogetherAI completions.";

/// The `togetherai` provider.
pub struct TogetherAi {
    base: BaseUrl,
    auth: http::HeaderValue,
}

impl TogetherAi {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<TogetherAi, FieldError> {
        let key = cfg.required_secret("togetherai_api_key")?;
        let base = match cfg.url("togetherai_api_base")? {
            Some(b) => b,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("togetherai_api_base", m))?,
        };
        let auth = secret_header(&format!("Bearer {}", key.expose())).ok_or_else(|| {
            cfg.error("togetherai_api_key", "the key contains characters not allowed in an HTTP header")
        })?;
        Ok(TogetherAi { base, auth })
    }

    fn request(&self, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest::post_json(&self.base, suffix, body)
            .header_value(http::header::AUTHORIZATION, self.auth.clone())
    }
}

/// Python's `isinstance(v, int)` (booleans are integers there).
fn is_int(v: &Value) -> bool {
    v.is_boolean() || v.is_i64() || v.is_u64()
}

/// The chat/completions body (MLflow's `completions_to_model`): logprobs checks, the
/// `top_logprobs` → `logprobs` rename, and `model` first. A client `model` never overrides the
/// configured one (docs/mlflow-compat.md#fix-8).
fn generation_body(req: Request, model: Option<&str>) -> Result<Map<String, Value>, GatewayError> {
    if req.body.get("logprobs").is_some_and(|v| !is_int(v)) {
        return Err(GatewayError::invalid("Wrong type for logprobs. It should be an 32bit integer."));
    }
    if req.body.get("top_logprobs").is_some_and(|v| !is_int(v)) {
        return Err(GatewayError::invalid("Wrong type for top_logprobs. It should a 32bit integer."));
    }
    let mut out = Map::with_capacity(req.body.len() + 1);
    out.insert("model".into(), model.map_or(Value::Null, Value::from));
    for (k, v) in req.body {
        match k.as_str() {
            "model" => {}
            "top_logprobs" => {
                out.insert("logprobs".into(), v);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    Ok(out)
}

impl Provider for TogetherAi {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = super::to_json(&generation_body(req, call.model())?)?;
        let provider = call.provider_label();
        let model = call.model().map(str::to_owned);
        let decoder = if stream {
            Decoder::Stream(Box::new(TogetherStream::new(Kind::Chat(provider), model, call.created)))
        } else {
            let created = call.created;
            Decoder::Json(Box::new(move |b| decode_chat(b, provider, model, created)))
        };
        Ok(Exchange::call(self.request("chat/completions", body), decoder))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        // `max_tokens` ≥ 1 by schema, so only its absence fails MLflow's `not payload.get(…)`.
        if req.body.get("max_tokens").is_none_or(Value::is_null) {
            return Err(GatewayError::invalid(MAX_TOKENS_REQUIRED));
        }
        let stream = req.stream();
        let body = super::to_json(&generation_body(req, call.model())?)?;
        let model = call.model().map(str::to_owned);
        let decoder = if stream {
            Decoder::Stream(Box::new(TogetherStream::new(Kind::Completions, model, call.created)))
        } else {
            let created = call.created;
            Decoder::Json(Box::new(move |b| decode_completions(b, model, created)))
        };
        Ok(Exchange::call(self.request("completions", body), decoder))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        // docs/mlflow-compat.md#fix-8: the body carries the configured model (MLflow sends the request as is).
        let body = super::openai::passthrough_body(req, Some(call.model()), false)?;
        let model = call.model().map(str::to_owned);
        Ok(Exchange::call(
            self.request("embeddings", body),
            Decoder::Json(Box::new(move |b| decode_embeddings(b, model))),
        ))
    }
}

// ---- upstream wire types ----

#[derive(Deserialize)]
struct WireAnswer {
    id: Option<String>,
    created: Option<u64>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: Option<WireMessage>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
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
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    usage: Option<Value>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    text: Option<String>,
    finish_reason: Option<String>,
    delta: Option<WireDelta>,
}

#[derive(Deserialize)]
struct WireDelta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireEmbeddings {
    #[serde(default)]
    data: Vec<WireEmbedding>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    embedding: Box<serde_json::value::RawValue>,
    index: Option<u32>,
}

// ---- decoders ----

fn decode_chat(
    body: &[u8],
    provider: &'static str,
    model: Option<String>,
    created: u64,
) -> Result<Answer, GatewayError> {
    let wire: WireAnswer = super::parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| ChatChoice {
            index: i as u32,
            message: ResponseMessage {
                role: "assistant".into(),
                content: c.message.and_then(|m| m.content),
                tool_calls: None,
                refusal: None,
                reasoning_content: None,
            },
            // MLflow never maps TogetherAI's finish reason (kept, as docs/mlflow-compat.md#fix-8 says).
            finish_reason: None,
        })
        .collect();
    Ok(Answer::Chat(ChatResponse {
        id: wire.id,
        object: object::CHAT,
        created: wire.created.unwrap_or(created),
        model,
        choices,
        usage: wire.usage.unwrap_or_default().unified(),
        provider,
    }))
}

fn decode_completions(body: &[u8], model: Option<String>, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireAnswer = super::parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| CompletionChoice { index: i as u32, text: Some(c.text.unwrap_or_default()), finish_reason: None })
        .collect();
    Ok(Answer::Completions(CompletionsResponse {
        id: wire.id,
        object: object::COMPLETION,
        created: wire.created.unwrap_or(created),
        model,
        choices,
        usage: wire.usage.unwrap_or_default().unified(),
    }))
}

fn decode_embeddings(body: &[u8], model: Option<String>) -> Result<Answer, GatewayError> {
    let wire: WireEmbeddings = super::parse_upstream_json(body, DISPLAY)?;
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
        usage: EmbeddingsUsage::default(),
    }))
}

/// Which unified chunks a stream produces.
#[derive(Clone, Copy)]
enum Kind {
    /// Chat chunks carrying this `provider`.
    Chat(&'static str),
    /// Completions chunks.
    Completions,
}

/// TogetherAI's SSE stream as unified chunks: text from `choices[].text` (falling back to
/// `delta.content`), choices indexed by position, `model` = `model.name`; ends at `[DONE]`.
/// Complete once `[DONE]` arrived or every choice it started has a `finish_reason`.
struct TogetherStream {
    kind: Kind,
    model: Option<String>,
    created: u64,
    usage: Option<Usage>,
    done: bool,
    ends: super::openai::ChoiceEnds,
}

impl TogetherStream {
    fn new(kind: Kind, model: Option<String>, created: u64) -> SseStream<Self> {
        SseStream::new(TogetherStream {
            kind,
            model,
            created,
            usage: None,
            done: false,
            ends: super::openai::ChoiceEnds::default(),
        })
    }
}

impl SseTranslate for TogetherStream {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let data = data.trim();
        if self.done || data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data)
            .map_err(|e| GatewayError::bad_gateway(format!("{DISPLAY} sent an unreadable stream chunk: {e}")))?;
        if let Some(err) = chunk.error {
            let message = match &err {
                Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            return Err(GatewayError::new(502, ErrorKind::Upstream, message.unwrap_or_else(|| err.to_string())));
        }
        let usage = chunk.usage.as_ref().filter(|u| u.is_object()).map(Usage::from_openai);
        if usage.is_some() {
            self.usage.clone_from(&usage);
        }
        let created = chunk.created.unwrap_or(self.created);
        // Choices are indexed by position.
        for (i, c) in chunk.choices.iter().enumerate() {
            self.ends.choice(i as u32, c.finish_reason.is_some());
        }
        let texts =
            chunk.choices.into_iter().map(|c| (c.text.or_else(|| c.delta.and_then(|d| d.content)), c.finish_reason));
        match self.kind {
            Kind::Chat(provider) => out.push(Chunk::Chat(ChatChunk {
                id: chunk.id,
                object: object::CHAT_CHUNK,
                created,
                model: self.model.clone(),
                choices: texts
                    .enumerate()
                    .map(|(i, (text, finish_reason))| ChunkChoice {
                        index: i as u32,
                        finish_reason,
                        delta: Delta { role: None, content: text, tool_calls: None, reasoning_content: None },
                    })
                    .collect(),
                usage,
                provider,
            })),
            Kind::Completions => out.push(Chunk::Completions(CompletionsChunk {
                id: chunk.id,
                object: object::COMPLETION_CHUNK,
                created,
                model: self.model.clone(),
                choices: texts
                    .enumerate()
                    .map(|(i, (text, finish_reason))| CompletionChunkChoice { index: i as u32, finish_reason, text })
                    .collect(),
                // MLflow does not forward usage on completions chunks.
                usage: None,
            })),
        }
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
    fn logprobs_rules() {
        let chat = |extra: Value| {
            let mut b = json!({"messages": [{"role": "user", "content": "x"}]});
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            generation_body(req(EndpointType::Chat, b), Some("m"))
        };
        let e = chat(json!({"logprobs": true, "top_logprobs": 2.5})).unwrap_err();
        assert_eq!((e.status, e.message()), (422, "Wrong type for top_logprobs. It should a 32bit integer.".into()));
        let e = chat(json!({"logprobs": "yes"})).unwrap_err();
        assert_eq!(e.message(), "Wrong type for logprobs. It should be an 32bit integer.");
        let body = chat(json!({"top_logprobs": 3})).unwrap();
        assert_eq!(body["logprobs"], json!(3));
        assert!(!body.contains_key("top_logprobs"));
        assert_eq!(body["model"], json!("m"));
    }

    #[test]
    fn client_model_never_overrides() {
        let mut r = req(EndpointType::Completions, json!({"prompt": "x", "max_tokens": 1}));
        r.body.insert("model".into(), json!("other"));
        assert_eq!(generation_body(r, Some("cfg")).unwrap()["model"], json!("cfg"));
    }

    #[test]
    fn chat_answer_model_from_config_and_null_finish_reason() {
        let body = json!({"id": "i", "created": 3, "model": "up", "choices": [{"message": {"role": "assistant", "content": "c"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        let v: Value = serde_json::to_value(
            decode_chat(body.to_string().as_bytes(), "togetherai", Some("cfg".into()), 0).unwrap(),
        )
        .unwrap();
        assert_eq!(v["model"], json!("cfg"));
        assert_eq!(v["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(v["created"], json!(3));
    }

    #[test]
    fn chat_stream_text_and_usage() {
        let mut d = TogetherStream::new(Kind::Chat("togetherai"), Some("cfg".into()), 1);
        let mut out = Vec::new();
        d.feed(b"data: {\"id\":\"a\",\"created\":1,\"choices\":[{\"index\":3,\"text\":\" hi\",\"finish_reason\":null}],\"usage\":null}\n\n", &mut out).unwrap();
        d.feed(b"data: {\"id\":\"a\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n", &mut out).unwrap();
        d.finish(&mut out).unwrap();
        let ev = events(&out);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0]["choices"][0],
            json!({"index": 0, "finish_reason": null, "delta": {"role": null, "content": " hi", "tool_calls": null}})
        );
        assert_eq!(ev[0]["model"], json!("cfg"));
        assert_eq!(ev[1]["choices"][0]["delta"]["content"], json!("!"));
        assert_eq!(ev[1]["usage"]["total_tokens"], json!(3));
        assert_eq!(d.usage().and_then(|u| u.prompt_tokens), Some(1));
    }

    #[test]
    fn stream_is_complete_at_done_or_a_finish_reason() {
        let chunk = |finish: &str| {
            format!("data: {{\"id\":\"a\",\"choices\":[{{\"text\":\"x\",\"finish_reason\":{finish}}}]}}\n\n")
        };
        let run = |chunks: &[&str]| {
            crate::framing::testing::run(&mut TogetherStream::new(Kind::Completions, None, 1), chunks).1
        };
        assert_eq!(run(&[&chunk("null")]).unwrap().message(), "upstream stream ended before it was complete");
        assert!(run(&[&chunk("\"length\"")]).is_none());
        assert!(run(&[&chunk("null"), "data: [DONE]\n\n"]).is_none());
    }

    #[test]
    fn completions_stream_has_no_usage() {
        let mut d = TogetherStream::new(Kind::Completions, Some("cfg".into()), 1);
        let mut out = Vec::new();
        d.feed(b"data: {\"id\":\"a\",\"created\":1,\"choices\":[{\"text\":\"x\",\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n", &mut out).unwrap();
        let ev = events(&out);
        assert_eq!(ev[0]["object"], json!("text_completion_chunk"));
        assert_eq!(ev[0]["usage"], Value::Null);
        assert_eq!(ev[0]["choices"][0]["text"], json!("x"));
        let err = d.feed(b"data: {\"error\":{\"message\":\"boom\"}}\n\n", &mut out).unwrap_err();
        assert_eq!(err.message(), "boom");
    }

    #[test]
    fn embeddings_answer() {
        let body = json!({"data": [{"embedding": [1.0], "index": 0}], "model": "up"});
        let v: Value =
            serde_json::to_value(decode_embeddings(body.to_string().as_bytes(), Some("cfg".into())).unwrap()).unwrap();
        assert_eq!(v["usage"], json!({"prompt_tokens": null, "total_tokens": null}));
        assert_eq!(v["model"], json!("cfg"));
    }
}
