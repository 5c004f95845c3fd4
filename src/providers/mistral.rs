//! Mistral (`provider: mistral`).
//!
//! Config: `mistral_api_key` (required secret), `mistral_api_base` (default
//! `https://api.mistral.ai/v1`); `Authorization: Bearer <key>`.
//!
//! * Chat → `POST {base}/chat/completions` with `{"model": <model.name>, …request}` (`n` kept).
//!   The answer is OpenAI-shaped; usage is limited to prompt/completion/total tokens.
//! * Chat streaming: the same body with `stream: true` (no `stream_options` injected); chunks are
//!   mapped like OpenAI's, and the chunk that carries `usage` (Mistral's last) passes on its
//!   prompt/completion/total counts (MLflow 3.18; the others have `usage: null`); the stream
//!   ends at `[DONE]`.
//! * List content (reasoning models: `thinking` and `text` chunks) is the concatenation of its
//!   `text` chunks, `null` when that is empty, in answers and stream deltas alike.
//! * Completions are served by the chat API: the prompt becomes one user message, `stop` and `n`
//!   are dropped, `temperature` is halved (Mistral's range is 0–1, the unified one 0–2); the
//!   answer has `id: null`, `model` = `model.name` and the text of `choices[].message.content`.
//!   Completions streaming is not served (501 before any upstream call).
//! * Embeddings → `POST {base}/embeddings` with `{"model", …request}`; indexes come from the
//!   upstream, `model` = `model.name`.
//!
//! The wire format is [`super::openai_wire`]'s; what is Mistral's own is [`DIALECT`].

use serde_json::{Map, Value};

use super::openai_wire::{
    Arguments, ChunkUsage, Dialect, Index, ModelSource, TextParts, UsageKeys, chat_decoder, completions_decoder,
    embeddings_decoder, model_first, put_reasoning_effort,
};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::{Extension, Request};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default Mistral base URL.
pub const DEFAULT_BASE: &str = "https://api.mistral.ai/v1";

const DISPLAY: &str = "Mistral";

/// How Mistral speaks the OpenAI wire format (MLflow's `MistralProvider` mapping).
pub const DIALECT: Dialect = Dialect {
    name: Some(DISPLAY),
    // No `stream_options`: bodies are `{"model", …request}` ([`model_first`]).
    stream_options: false,
    model: ModelSource::Upstream,
    // Embeddings answers carry `model.name`.
    embeddings_model: ModelSource::Configured,
    // Usage is limited to prompt/completion/total tokens.
    answer_usage: UsageKeys::Counts,
    stream_usage: UsageKeys::Counts,
    // The counts of the chunk that carries usage (Mistral's last) are passed on (MLflow 3.18;
    // 3.17 left them null). Completions are not streamed.
    usage_on_chunks: ChunkUsage::Chat,
    // Reasoning models answer with a list whose `thinking` parts are dropped; only `text`
    // parts are text, concatenated (MLflow 3.18); no text is no content.
    text_parts: TextParts::Typed,
    text_separator: "",
    // Tool-call arguments may come as JSON objects; they are passed on as compact JSON text.
    arguments: Arguments::Json,
    chunk_index: Index::SentOrPosition,
    embedding_index: Index::SentOrPosition,
    text_only: false,
    answer_finish_reasons: true,
    // Completions go through the chat API: id null, the request's time, `model.name`.
    completions_via_chat: true,
    // Nothing after `[DONE]` is read.
    stop_at_done: true,
    // Errors also arrive as `{"object": "error", "message": …}`.
    error_object: true,
    embeddings_usage: true,
};

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

/// The chat-API body for a completions request (MLflow's `completions_to_model`).
fn completions_body(req: Request, model: Option<&str>) -> Map<String, Value> {
    let mut body = model_first(model, Map::new());
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

    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(self.request("", Vec::new()))
    }
    fn chat(&self, mut req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        put_reasoning_effort(&mut req);
        let body = super::to_json(&model_first(call.model(), req.body))?;
        Ok(Exchange::call(self.request("chat/completions", body), chat_decoder(&DIALECT, stream, call)))
    }

    /// `reasoning.effort` as `reasoning_effort`, which Mistral's chat API documents for its
    /// adjustable-reasoning models (values `none` and `high`; Mistral answers others itself).
    fn accepts(&self, extension: Extension) -> bool {
        extension == Extension::ReasoningEffort
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let body = super::to_json(&completions_body(req, call.model()))?;
        Ok(Exchange::call(self.request("chat/completions", body), completions_decoder(&DIALECT, false, call)))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = super::to_json(&model_first(call.model(), req.body))?;
        Ok(Exchange::call(self.request("embeddings", body), embeddings_decoder(&DIALECT, call)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::StreamDecoder;
    use crate::providers::openai_wire::{self, Context, WireStream};
    use crate::schema::{Answer, EndpointType};
    use serde_json::json;

    use crate::schema::testing::req;

    use crate::framing::testing::events;

    // The decoders as the provider calls them.

    fn decode_chat(body: &[u8], provider: &'static str, created: u64) -> Result<Answer, GatewayError> {
        openai_wire::decode_chat(&DIALECT, body, Context::new(provider, created, None))
    }

    fn decode_completions(body: &[u8], model: Option<String>, created: u64) -> Result<Answer, GatewayError> {
        openai_wire::decode_completions(&DIALECT, body, Context::new("mistral", created, model))
    }

    fn decode_embeddings(body: &[u8], model: Option<String>) -> Result<Answer, GatewayError> {
        openai_wire::decode_embeddings(&DIALECT, body, Context::new("mistral", 0, model))
    }

    fn chat_stream(provider: &'static str, created: u64) -> crate::framing::sse::SseStream<WireStream> {
        WireStream::chat(&DIALECT, Context::new(provider, created, None))
    }

    fn with_model(model: Option<&str>, body: Map<String, Value>) -> Map<String, Value> {
        model_first(model, body)
    }

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

        // Text chunks are concatenated (no separator); no text is null, or "" for completions.
        let parts = json!([{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                           {"type": "text", "text": "An"}, {"type": "text", "text": "swer"}]);
        let only_thinking = json!([{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}]);
        let answer = |content: &Value| {
            json!({"id": "c", "created": 5, "model": "magistral", "choices": [{"message": {"role": "assistant",
                   "content": content}, "finish_reason": "stop"}]})
            .to_string()
        };
        let chat = |content: &Value| {
            serde_json::to_value(decode_chat(answer(content).as_bytes(), "mistral", 0).unwrap()).unwrap()
        };
        assert_eq!(chat(&parts)["choices"][0]["message"]["content"], json!("Answer"));
        assert_eq!(chat(&only_thinking)["choices"][0]["message"]["content"], Value::Null);
        let completion = |content: &Value| {
            serde_json::to_value(decode_completions(answer(content).as_bytes(), Some("m".into()), 0).unwrap()).unwrap()
        };
        assert_eq!(completion(&parts)["choices"][0]["text"], json!("Answer"));
        assert_eq!(completion(&only_thinking)["choices"][0]["text"], json!(""));

        // Stream deltas too: a thinking-only delta has no content.
        let mut d = chat_stream("mistral", 1);
        let mut out = Vec::new();
        for content in [&only_thinking, &parts] {
            let chunk = json!({"id": "s", "created": 1, "model": "m",
                               "choices": [{"index": 0, "delta": {"content": content}}]});
            d.feed(format!("data: {chunk}\n\n").as_bytes(), &mut out).unwrap();
        }
        let ev = events(&out);
        assert_eq!(ev[0]["choices"][0]["delta"]["content"], Value::Null);
        assert_eq!(ev[1]["choices"][0]["delta"]["content"], json!("Answer"));
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
    fn stream_forwards_usage_counts_and_stops_at_done() {
        let mut d = chat_stream("mistral", 1);
        let mut out = Vec::new();
        d.feed(b"data: {\"id\":\"s\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2,\"prompt_audio_seconds\":{}}}\n\ndata: [DONE]\n\ndata: {\"id\":\"late\"}\n\n", &mut out).unwrap();
        d.finish(&mut out).unwrap();
        let ev = events(&out);
        assert_eq!(ev.len(), 1);
        // MLflow 3.17 sent null here; 3.18 passes the three counts on.
        assert_eq!(ev[0]["usage"], json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}));
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
        let run = |chunks: &[&str]| crate::framing::testing::run(&mut chat_stream("mistral", 1), chunks).1;
        assert_eq!(run(&[&chunk("null")]).unwrap().message(), "upstream stream ended before it was complete");
        assert!(run(&[&chunk("\"stop\"")]).is_none());
        assert!(run(&[&chunk("null"), "data: [DONE]\n\n"]).is_none());
    }

    #[test]
    fn stream_error_object_is_an_error() {
        let mut d = chat_stream("mistral", 1);
        let mut out = Vec::new();
        let err = d
            .feed(b"data: {\"object\":\"error\",\"message\":\"Service unavailable\",\"type\":\"x\"}\n\n", &mut out)
            .unwrap_err();
        assert_eq!(err.message(), "Service unavailable");
        let mut d = chat_stream("mistral", 1);
        assert_eq!(d.feed(b"data: {oops\n\n", &mut out).unwrap_err().status, 502);
    }
}
