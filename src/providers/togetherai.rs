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
//!
//! The wire format is [`super::openai_wire`]'s; what is TogetherAI's own is [`DIALECT`].

use serde_json::{Map, Value};

use super::openai_wire::{
    Arguments, ChunkUsage, Dialect, Index, ModelSource, TextParts, UsageKeys, chat_decoder, completions_decoder,
    embeddings_decoder, passthrough_body,
};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::Request;
use crate::upstream::{UpstreamRequest, secret_header};

/// Default TogetherAI base URL.
pub const DEFAULT_BASE: &str = "https://api.together.xyz/v1";

const DISPLAY: &str = "TogetherAI";

/// MLflow's message for a completions request without `max_tokens`.
pub const MAX_TOKENS_REQUIRED: &str =
    "max_tokens is not present in payload.It is a required parameter for TogetherAI completions.";

/// How TogetherAI speaks the OpenAI wire format (MLflow's `TogetherAIProvider` mapping).
pub const DIALECT: Dialect = Dialect {
    name: Some(DISPLAY),
    stream_options: false,
    // Answers and chunks carry `model.name`, embeddings too.
    model: ModelSource::Configured,
    embeddings_model: ModelSource::Configured,
    // Whole answers: the three counts; streams: the usage object as sent, on chat chunks only.
    answer_usage: UsageKeys::Counts,
    stream_usage: UsageKeys::All,
    usage_on_chunks: ChunkUsage::Chat,
    text_parts: TextParts::TypedOrUntyped,
    text_separator: "\n",
    arguments: Arguments::Text,
    // Stream choices are indexed by position; embedding vectors keep the upstream's index.
    chunk_index: Index::Position,
    embedding_index: Index::SentOrPosition,
    // MLflow reads only each choice's text (chunks: `choices[].text`, then `delta.content`) …
    text_only: true,
    // … and never maps the finish reason of whole answers (kept, docs/mlflow-compat.md#fix-8).
    answer_finish_reasons: false,
    completions_via_chat: false,
    // Nothing after `[DONE]` is read.
    stop_at_done: true,
    error_object: false,
    // Embeddings answers have null usage.
    embeddings_usage: false,
};

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

    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(self.request("", Vec::new()))
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = super::to_json(&generation_body(req, call.model())?)?;
        Ok(Exchange::call(self.request("chat/completions", body), chat_decoder(&DIALECT, stream, call)))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        // `max_tokens` ≥ 1 by schema, so only its absence fails MLflow's `not payload.get(…)`.
        if req.body.get("max_tokens").is_none_or(Value::is_null) {
            return Err(GatewayError::invalid(MAX_TOKENS_REQUIRED));
        }
        let stream = req.stream();
        let body = super::to_json(&generation_body(req, call.model())?)?;
        Ok(Exchange::call(self.request("completions", body), completions_decoder(&DIALECT, stream, call)))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        // docs/mlflow-compat.md#fix-8: the body carries the configured model (MLflow sends the request as is).
        let body = passthrough_body(req, Some(call.model()), DIALECT.stream_options)?;
        Ok(Exchange::call(self.request("embeddings", body), embeddings_decoder(&DIALECT, call)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::StreamDecoder;
    use crate::framing::sse::SseStream;
    use crate::providers::openai_wire::{self, Context, WireStream};
    use crate::schema::{Answer, EndpointType};
    use serde_json::json;

    use crate::schema::testing::req;

    use crate::framing::testing::events;

    // The decoders as the provider calls them.

    fn decode_chat(
        body: &[u8],
        provider: &'static str,
        model: Option<String>,
        created: u64,
    ) -> Result<Answer, GatewayError> {
        openai_wire::decode_chat(&DIALECT, body, Context::new(provider, created, model))
    }

    fn decode_embeddings(body: &[u8], model: Option<String>) -> Result<Answer, GatewayError> {
        openai_wire::decode_embeddings(&DIALECT, body, Context::new("togetherai", 0, model))
    }

    /// Which stream to decode.
    enum Kind {
        Chat(&'static str),
        Completions,
    }

    fn together_stream(kind: Kind, model: Option<String>, created: u64) -> SseStream<WireStream> {
        match kind {
            Kind::Chat(provider) => WireStream::chat(&DIALECT, Context::new(provider, created, model)),
            Kind::Completions => WireStream::completions(&DIALECT, Context::new("togetherai", created, model)),
        }
    }

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
        let mut d = together_stream(Kind::Chat("togetherai"), Some("cfg".into()), 1);
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
        let run =
            |chunks: &[&str]| crate::framing::testing::run(&mut together_stream(Kind::Completions, None, 1), chunks).1;
        assert_eq!(run(&[&chunk("null")]).unwrap().message(), "upstream stream ended before it was complete");
        assert!(run(&[&chunk("\"length\"")]).is_none());
        assert!(run(&[&chunk("null"), "data: [DONE]\n\n"]).is_none());
    }

    #[test]
    fn completions_stream_has_no_usage() {
        let mut d = together_stream(Kind::Completions, Some("cfg".into()), 1);
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
