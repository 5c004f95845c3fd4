//! Google PaLM (`provider: palm`, deprecated in MLflow): chat (`generateMessage`),
//! completions (`generateText`) and embeddings (`batchEmbedText`) on the `v1beta3` API. No
//! streaming: a streamed request answers 501 before any upstream call.
//!
//! Config: `palm_api_key` (required secret, sent as `x-goog-api-key`), `palm_api_base`
//! (default [`DEFAULT_BASE`]).
//!
//! Requests keep every field the client sent (MLflow forwards them), with `stop` →
//! `stopSequences`, `n` → `candidateCount`, (completions) `max_tokens` → `maxOutputTokens`, and
//! `temperature` halved (PaLM's range is 0–1, the unified one 0–2).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider, gemini, parse_upstream_json, to_json};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::{
    Answer, ChatChoice, ChatResponse, CompletionChoice, CompletionsResponse, Embedding, EmbeddingsResponse,
    EmbeddingsUsage, Request, ResponseMessage, Usage,
};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default PaLM API base URL.
pub const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com/v1beta3/models";

const DISPLAY: &str = "PaLM";

/// The `palm` provider.
pub struct Palm {
    base: BaseUrl,
    key: http::HeaderValue,
    model_path: String,
}

impl Palm {
    /// Build from `model.config` (MLflow's `PaLMConfig`: `palm_api_key`), plus the
    /// `palm_api_base` override. Logs MLflow's deprecation once per endpoint.
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Palm, FieldError> {
        let key = cfg.required_secret("palm_api_key")?;
        let key = secret_header(key.expose())
            .ok_or_else(|| cfg.error("palm_api_key", "the key contains characters not allowed in an HTTP header"))?;
        let base = match cfg.url("palm_api_base")? {
            Some(b) => b,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("palm_api_base", m))?,
        };
        let model = gemini::model_name(spec)?;
        log::warn!(
            "endpoint '{}': the 'palm' provider is deprecated (as in MLflow); use the 'gemini' provider",
            spec.name
        );
        Ok(Palm { base, key, model_path: gemini::path_segment(&model) })
    }

    fn request(&self, method: &str, body: &Map<String, Value>) -> Result<UpstreamRequest, GatewayError> {
        let suffix = format!("{}{method}", self.model_path);
        Ok(UpstreamRequest::post_json(&self.base, &suffix, to_json(body)?)
            .header_value(http::HeaderName::from_static("x-goog-api-key"), self.key.clone()))
    }
}

/// Refuse PaLM's own names for unified parameters, then rename.
fn rename(body: &mut Map<String, Value>, mapping: &[(&str, &str)]) -> Result<(), GatewayError> {
    for (unified, native) in mapping {
        if body.contains_key(*native) {
            return Err(GatewayError::invalid(format!("Invalid parameter {native}. Use {unified} instead."))
                .with_param(*native));
        }
    }
    for (unified, native) in mapping {
        if let Some(v) = body.remove(*unified) {
            body.insert((*native).to_owned(), v);
        }
    }
    Ok(())
}

/// PaLM's temperature range is 0–1, the unified one 0–2.
fn halve_temperature(body: &mut Map<String, Value>) {
    if let Some(t) = body.get("temperature").and_then(Value::as_f64)
        && let Some(n) = serde_json::Number::from_f64(t * 0.5)
    {
        body.insert("temperature".into(), Value::Number(n));
    }
}

impl Provider for Palm {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("chat", DISPLAY));
        }
        let mut body = req.body;
        if body.contains_key("max_tokens") || body.contains_key("maxOutputTokens") {
            return Err(GatewayError::invalid("Max tokens is not supported for PaLM chat.").with_param("max_tokens"));
        }
        rename(&mut body, &[("stop", "stopSequences"), ("n", "candidateCount")])?;
        halve_temperature(&mut body);
        let mut messages = match body.remove("messages") {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        };
        for m in &mut messages {
            if let Value::Object(m) = m
                && let Some(role) = m.remove("role")
            {
                m.insert("author".into(), role);
            }
        }
        let mut prompt = Map::with_capacity(3);
        prompt.insert("messages".into(), Value::Array(messages));
        for key in ["examples", "context"] {
            if let Some(v) = body.remove(key) {
                prompt.insert(key.into(), v);
            }
        }
        body.insert("prompt".into(), Value::Object(prompt));

        let provider = call.provider_label();
        let model = call.model().map(str::to_owned);
        let created = call.created;
        Ok(Exchange::call(
            self.request(":generateMessage", &body)?,
            Decoder::Json(Box::new(move |b| decode_chat(b, provider, model, created))),
        ))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let mut body = req.body;
        rename(&mut body, &[("stop", "stopSequences"), ("n", "candidateCount"), ("max_tokens", "maxOutputTokens")])?;
        halve_temperature(&mut body);
        let prompt = body.remove("prompt").unwrap_or(Value::Null);
        let mut wrapped = Map::with_capacity(1);
        wrapped.insert("text".into(), prompt);
        body.insert("prompt".into(), Value::Object(wrapped));

        let model = call.model().map(str::to_owned);
        let created = call.created;
        Ok(Exchange::call(
            self.request(":generateText", &body)?,
            Decoder::Json(Box::new(move |b| decode_completions(b, model, created))),
        ))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let mut body = req.body;
        rename(&mut body, &[("input", "texts")])?;
        let model = call.model().map(str::to_owned);
        Ok(Exchange::call(
            self.request(":batchEmbedText", &body)?,
            Decoder::Json(Box::new(move |b| decode_embeddings(b, model))),
        ))
    }
}

#[derive(Deserialize)]
struct WireMessages {
    candidates: Option<Vec<WireMessage>>,
}

#[derive(Deserialize)]
struct WireMessage {
    author: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireTexts {
    candidates: Option<Vec<WireText>>,
}

#[derive(Deserialize)]
struct WireText {
    output: Option<String>,
}

#[derive(Deserialize)]
struct WireEmbeddings {
    embeddings: Option<Vec<WireEmbedding>>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    value: Option<Value>,
}

/// `generateMessage` answer: one choice per candidate, role = the candidate's `author`.
fn decode_chat(
    body: &[u8],
    provider: &'static str,
    model: Option<String>,
    created: u64,
) -> Result<Answer, GatewayError> {
    let wire: WireMessages = parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .candidates
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            ChatChoice::new(i as u32, ResponseMessage::new(c.author.unwrap_or_default(), c.content, None), None)
        })
        .collect();
    Ok(Answer::Chat(ChatResponse::new(None, created, model, choices, Usage::default(), provider)))
}

/// `generateText` answer: one choice per candidate `output`.
fn decode_completions(body: &[u8], model: Option<String>, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireTexts = parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .candidates
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| CompletionChoice::new(i as u32, c.output, None))
        .collect();
    Ok(Answer::Completions(CompletionsResponse::new(None, created, model, choices, Usage::default())))
}

/// `batchEmbedText` answer: `embeddings[].value`.
fn decode_embeddings(body: &[u8], model: Option<String>) -> Result<Answer, GatewayError> {
    let wire: WireEmbeddings = parse_upstream_json(body, DISPLAY)?;
    let data = wire
        .embeddings
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, e)| Embedding::new(i as u32, e.value.unwrap_or_else(|| Value::Array(Vec::new()))))
        .collect();
    Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, EmbeddingsUsage::default())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use crate::schema::{EndpointType, parse_request};
    use serde_json::json;

    fn palm() -> Palm {
        let map: Map<String, Value> = serde_json::from_value(json!({"palm_api_key": "k"})).unwrap();
        let spec = EndpointSpec {
            index: 0,
            name: "p",
            endpoint_type: EndpointType::Chat,
            model_name: Some("chat-bison"),
            provider_name: ProviderName::Palm,
        };
        Palm::from_config(&spec, &mut ConfigMap::new(&map, "model.config")).unwrap()
    }

    fn endpoint() -> std::sync::Arc<crate::config::Endpoint> {
        let yaml = "endpoints:\n  - name: p\n    endpoint_type: llm/v1/chat\n    model:\n      provider: palm\n      name: chat-bison\n      config:\n        palm_api_key: k\n";
        crate::providers::test_config(yaml).endpoints[0].clone()
    }

    fn body_of(x: &Exchange) -> Value {
        serde_json::from_slice(&x.http().body).unwrap()
    }

    #[test]
    fn chat_translation_and_rules() {
        let p = palm();
        let ep = endpoint();
        let call = Call { endpoint: &ep, created: 1 };
        let req = |v: Value| parse_request(EndpointType::Chat, v.to_string().as_bytes()).unwrap();

        let x = p
            .chat(
                req(json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 1.0, "stop": ["s"],
                    "context": "ctx", "examples": [], "top_k": 3})),
                &call,
            )
            .unwrap();
        assert_eq!(
            body_of(&x),
            json!({"candidateCount": 1, "temperature": 0.5, "stopSequences": ["s"], "top_k": 3,
                   "prompt": {"messages": [{"content": "hi", "author": "user"}], "examples": [], "context": "ctx"}})
        );
        assert_eq!(x.http().target, "/v1beta3/models/chat-bison:generateMessage");

        let err = p.chat(req(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})), &call).err();
        assert_eq!(err.unwrap().message(), "Max tokens is not supported for PaLM chat.");
        let err =
            p.chat(req(json!({"messages": [{"role": "user", "content": "hi"}], "candidateCount": 2})), &call).err();
        assert_eq!(err.unwrap().message(), "Invalid parameter candidateCount. Use n instead.");
        let err = p.chat(req(json!({"messages": [{"role": "user", "content": "hi"}], "stream": true})), &call).err();
        assert_eq!(err.unwrap().status, 501);
    }

    #[test]
    fn completions_and_embeddings_translation() {
        let p = palm();
        let ep = endpoint();
        let call = Call { endpoint: &ep, created: 1 };
        let x = p
            .completions(parse_request(EndpointType::Completions, br#"{"prompt":"p","max_tokens":3}"#).unwrap(), &call)
            .unwrap();
        assert_eq!(body_of(&x), json!({"candidateCount": 1, "maxOutputTokens": 3, "prompt": {"text": "p"}}));
        let err = p
            .completions(parse_request(EndpointType::Completions, br#"{"prompt":"p","stream":true}"#).unwrap(), &call)
            .err();
        assert_eq!(err.unwrap().message(), "The completions streaming route is not implemented for PaLM models.");

        let x = p.embeddings(parse_request(EndpointType::Embeddings, br#"{"input":["a"]}"#).unwrap(), &call).unwrap();
        assert_eq!(body_of(&x), json!({"texts": ["a"]}));
        let err =
            p.embeddings(parse_request(EndpointType::Embeddings, br#"{"input":["a"],"texts":["b"]}"#).unwrap(), &call);
        assert_eq!(err.err().unwrap().message(), "Invalid parameter texts. Use input instead.");
    }

    #[test]
    fn answers() {
        let v: Value = serde_json::to_value(
            decode_chat(br#"{"candidates":[{"author":"1","content":"Hi"}]}"#, "palm", Some("m".into()), 3).unwrap(),
        )
        .unwrap();
        assert_eq!(
            v["choices"][0]["message"],
            json!({"role": "1", "content": "Hi", "tool_calls": null, "refusal": null})
        );
        assert_eq!(v["id"], Value::Null);
        let v: Value =
            serde_json::to_value(decode_completions(br#"{"candidates":[{"output":"o"}]}"#, None, 3).unwrap()).unwrap();
        assert_eq!(v["choices"], json!([{"index": 0, "text": "o", "finish_reason": null}]));
        let v: Value =
            serde_json::to_value(decode_embeddings(br#"{"embeddings":[{"value":[1.5]}]}"#, None).unwrap()).unwrap();
        assert_eq!(v["data"], json!([{"object": "embedding", "embedding": [1.5], "index": 0}]));
        assert_eq!(decode_chat(b"[", "palm", None, 1).unwrap_err().status, 502);
    }
}
