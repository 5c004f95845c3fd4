//! OpenAI and Azure OpenAI (`provider: openai` or `azure`, `openai_api_type: openai | azure |
//! azuread`), and the OpenAI wire-format decoders that the OpenAI-compatible family and the
//! mock provider share.
//!
//! Requests pass through: the unified schema is OpenAI's, so the body is the client's (nulls
//! removed, `n` defaulted) with `model` set for type `openai`, and `stream_options.include_usage`
//! injected for streams so the final chunk carries usage.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError, Secret};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::sse::{SseStream, SseTranslate};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, CompletionChoice, CompletionChunkChoice,
    CompletionsChunk, CompletionsResponse, Delta, Embedding, EmbeddingsResponse, EmbeddingsUsage, FunctionCall,
    FunctionCallDelta, Request, ResponseMessage, ToolCall, ToolCallDelta, Usage, object,
};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default OpenAI base URL.
pub const DEFAULT_BASE: &str = "https://api.openai.com/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiType {
    OpenAi,
    Azure,
    AzureAd,
}

/// The `openai` provider.
pub struct OpenAi {
    api_type: ApiType,
    base: BaseUrl,
    auth: (http::HeaderName, http::HeaderValue),
    organization: Option<http::HeaderValue>,
}

const AZURE_TYPES: &str = "'OpenAIAPIType.AZURE' or 'OpenAIAPIType.AZUREAD'";

impl OpenAi {
    /// Build from `model.config` (MLflow's `OpenAIConfig` rules).
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<OpenAi, FieldError> {
        let key: Secret = cfg.required_secret("openai_api_key")?;
        let api_type = match cfg.string("openai_api_type")? {
            None => ApiType::OpenAi,
            Some(t) => match t.to_ascii_lowercase().as_str() {
                "openai" => ApiType::OpenAi,
                "azure" => ApiType::Azure,
                "azuread" => ApiType::AzureAd,
                _ => return Err(cfg.error("openai_api_type", format!("Invalid OpenAI API type '{t}'"))),
            },
        };
        let base = cfg.url("openai_api_base")?;
        let version = cfg.string("openai_api_version")?;
        let deployment = cfg.string("openai_deployment_name")?;
        let organization = cfg.string("openai_organization")?;

        let base = match api_type {
            ApiType::OpenAi => {
                if deployment.is_some() {
                    return Err(cfg.error(
                        "openai_deployment_name",
                        format!(
                            "OpenAI route configuration can only specify a value for \
                             'openai_deployment_name' if 'openai_api_type' is {AZURE_TYPES}. Found type: 'openai'"
                        ),
                    ));
                }
                let base = match base {
                    Some(b) => b,
                    None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("openai_api_base", m))?,
                };
                match &version {
                    Some(v) => base.with_query_param("api-version", v),
                    None => base,
                }
            }
            ApiType::Azure | ApiType::AzureAd => {
                if organization.is_some() {
                    return Err(cfg.error(
                        "openai_organization",
                        "OpenAI route configuration can only specify a value for 'openai_organization' \
                         if 'openai_api_type' is 'OpenAIAPIType.OPENAI'",
                    ));
                }
                let (Some(base), Some(deployment), Some(version)) = (base, deployment, version) else {
                    return Err(cfg.error(
                        "openai_api_type",
                        format!(
                            "OpenAI route configuration must specify 'openai_api_base', \
                             'openai_deployment_name', and 'openai_api_version' if 'openai_api_type' is \
                             {AZURE_TYPES}."
                        ),
                    ));
                };
                base.join(&format!("openai/deployments/{deployment}")).with_query_param("api-version", &version)
            }
        };
        let auth = match api_type {
            ApiType::Azure => (http::HeaderName::from_static("api-key"), key.expose().to_owned()),
            _ => (http::header::AUTHORIZATION, format!("Bearer {}", key.expose())),
        };
        let auth_value = secret_header(&auth.1)
            .ok_or_else(|| cfg.error("openai_api_key", "the key contains characters not allowed in an HTTP header"))?;
        let organization = match organization {
            Some(o) => Some(
                http::HeaderValue::from_str(&o)
                    .map_err(|_| cfg.error("openai_organization", "not a valid HTTP header value"))?,
            ),
            None => None,
        };
        Ok(OpenAi { api_type, base, auth: (auth.0, auth_value), organization })
    }

    fn request(&self, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        let mut r =
            UpstreamRequest::post_json(&self.base, suffix, body).header_value(self.auth.0.clone(), self.auth.1.clone());
        if let Some(org) = &self.organization {
            r = r.header_value(http::HeaderName::from_static("openai-organization"), org.clone());
        }
        r
    }

    fn model<'a>(&self, call: &'a Call<'_>) -> Option<Option<&'a str>> {
        // Azure routes by deployment and takes no `model`.
        (self.api_type == ApiType::OpenAi).then(|| call.model())
    }
}

impl Provider for OpenAi {
    fn display_name(&self) -> &'static str {
        "OpenAI"
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = passthrough_body(req, self.model(call), true)?;
        Ok(Exchange::call(self.request("chat/completions", body), chat_decoder(stream, call)))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = passthrough_body(req, self.model(call), true)?;
        Ok(Exchange::call(self.request("completions", body), completions_decoder(stream, call)))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = passthrough_body(req, self.model(call), false)?;
        Ok(Exchange::call(self.request("embeddings", body), embeddings_decoder(call)))
    }
}

/// The upstream body for an OpenAI-format provider: the client's request with `model` set
/// (`Some(name)`, null when the endpoint has no `model.name`) or left out (`None`, Azure), and
/// `stream_options.include_usage: true` added to streams when `stream_usage` is set.
pub fn passthrough_body(
    req: Request,
    model: Option<Option<&str>>,
    stream_usage: bool,
) -> Result<Vec<u8>, GatewayError> {
    let stream = req.stream();
    let mut body: Map<String, Value> = req.body;
    body.remove("model");
    if let Some(model) = model {
        body.insert("model".into(), model.map_or(Value::Null, Value::from));
    }
    if stream && stream_usage {
        match body.get_mut("stream_options") {
            Some(Value::Object(opts)) => {
                opts.entry("include_usage").or_insert(Value::Bool(true));
            }
            _ => {
                let mut opts = Map::new();
                opts.insert("include_usage".into(), Value::Bool(true));
                body.insert("stream_options".into(), Value::Object(opts));
            }
        }
    }
    super::to_json(&body)
}

// ---- upstream wire types ----

#[derive(Deserialize)]
struct WireChat {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    text: Option<String>,
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
    id: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireChunk {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    usage: Option<Value>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: u32,
    finish_reason: Option<String>,
    #[serde(default)]
    delta: Option<WireDelta>,
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    role: Option<String>,
    /// A string, or (Databricks reasoning models) a list of typed parts.
    content: Option<Value>,
    tool_calls: Option<Vec<WireToolCallDelta>>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: u32,
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireEmbeddings {
    #[serde(default)]
    data: Vec<WireEmbedding>,
    model: Option<String>,
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    embedding: Box<serde_json::value::RawValue>,
}

/// Message content as text: a string, or the text parts of a list joined with `\n` (some
/// OpenAI-compatible servers, e.g. Databricks, answer with a list).
fn content_text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).is_none_or(|t| t == "text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

fn stream_error(v: &Value) -> GatewayError {
    let message = v.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| v.to_string());
    GatewayError::new(502, ErrorKind::Upstream, message)
}

// ---- decoders ----

/// Which choices of an OpenAI-style stream have started and which have a `finish_reason`
/// (choice indices 0..63; higher ones share the last slot): with `n > 1`, a stream cut after
/// the first choice finished is not complete.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChoiceEnds {
    started: u64,
    finished: u64,
}

impl ChoiceEnds {
    /// A chunk carried choice `index`, finished or not.
    pub fn choice(&mut self, index: u32, finished: bool) {
        let bit = 1u64 << index.min(63);
        self.started |= bit;
        if finished {
            self.finished |= bit;
        }
    }

    /// At least one choice started and every one that did has finished.
    pub fn all_finished(&self) -> bool {
        self.started != 0 && self.started & !self.finished == 0
    }
}

/// Decoder for OpenAI-format chat answers.
pub fn chat_decoder(stream: bool, call: &Call<'_>) -> Decoder {
    let provider = call.provider_label();
    if stream {
        return Decoder::Stream(Box::new(SseStream::new(ChatStream::new(provider, call.created))));
    }
    let created = call.created;
    Decoder::Json(Box::new(move |body| decode_chat(body, provider, created)))
}

/// Decode an OpenAI-format chat answer.
pub fn decode_chat(body: &[u8], provider: &'static str, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireChat = super::parse_upstream_json(body, provider)?;
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
                                arguments: f.arguments.unwrap_or_default(),
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
        usage: wire.usage.as_ref().map(Usage::from_openai).unwrap_or_default(),
        provider,
    }))
}

/// Streams OpenAI-format chat chunks, re-serialised as unified chunks. `[DONE]` is consumed;
/// the stream is complete once `[DONE]` arrived or every choice it started has a `finish_reason`.
pub struct ChatStream {
    provider: &'static str,
    created: u64,
    usage: Option<Usage>,
    done: bool,
    ends: ChoiceEnds,
}

impl ChatStream {
    /// A decoder whose chunks carry `provider`, and `created` when a chunk has none.
    pub fn new(provider: &'static str, created: u64) -> Self {
        ChatStream { provider, created, usage: None, done: false, ends: ChoiceEnds::default() }
    }
}

impl SseTranslate for ChatStream {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        if data == "[DONE]" || data.is_empty() {
            self.done |= data == "[DONE]";
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|e| {
            GatewayError::bad_gateway(format!("{} sent an unreadable stream chunk: {e}", self.provider))
        })?;
        if let Some(err) = &chunk.error {
            return Err(stream_error(err));
        }
        for c in &chunk.choices {
            self.ends.choice(c.index, c.finish_reason.is_some());
        }
        let usage = chunk.usage.as_ref().filter(|u| u.is_object()).map(Usage::from_openai);
        if usage.is_some() {
            self.usage.clone_from(&usage);
        }
        let choices = chunk
            .choices
            .into_iter()
            .map(|c| {
                let d = c.delta.unwrap_or_default();
                ChunkChoice {
                    index: c.index,
                    finish_reason: c.finish_reason,
                    delta: Delta {
                        role: d.role,
                        content: content_text(d.content),
                        tool_calls: d.tool_calls.filter(|t| !t.is_empty()).map(|calls| {
                            calls
                                .into_iter()
                                .map(|t| ToolCallDelta {
                                    index: t.index,
                                    id: t.id,
                                    kind: t.kind.map(|_| "function"),
                                    function: t
                                        .function
                                        .map(|f| FunctionCallDelta { name: f.name, arguments: f.arguments })
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
            usage,
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

/// Decoder for OpenAI-format completions answers.
pub fn completions_decoder(stream: bool, call: &Call<'_>) -> Decoder {
    let provider = call.provider_label();
    if stream {
        return Decoder::Stream(Box::new(SseStream::new(CompletionsStream::new(provider, call.created))));
    }
    let created = call.created;
    Decoder::Json(Box::new(move |body| decode_completions(body, provider, created)))
}

/// Decode an OpenAI-format completions answer (text from `choices[].text`, or from
/// `choices[].message.content` for servers that answer chat-style).
pub fn decode_completions(body: &[u8], provider: &'static str, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireChat = super::parse_upstream_json(body, provider)?;
    let choices = wire
        .choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| CompletionChoice {
            index: i as u32,
            text: Some(c.message.and_then(|m| content_text(m.content)).or(c.text).unwrap_or_default()),
            finish_reason: c.finish_reason,
        })
        .collect();
    Ok(Answer::Completions(CompletionsResponse {
        id: wire.id,
        object: object::COMPLETION,
        created: wire.created.unwrap_or(created),
        model: wire.model,
        choices,
        usage: wire.usage.as_ref().map(Usage::from_openai).unwrap_or_default(),
    }))
}

/// Streams OpenAI-format completions chunks: real `/v1/completions` chunks (`choices[].text`)
/// and chat-style chunks (`choices[].delta.content`) both work (docs/mlflow-compat.md#fix-7).
struct CompletionsStream {
    provider: &'static str,
    created: u64,
    usage: Option<Usage>,
    done: bool,
    ends: ChoiceEnds,
}

impl CompletionsStream {
    fn new(provider: &'static str, created: u64) -> Self {
        CompletionsStream { provider, created, usage: None, done: false, ends: ChoiceEnds::default() }
    }
}

impl SseTranslate for CompletionsStream {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        if data == "[DONE]" || data.is_empty() {
            self.done |= data == "[DONE]";
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|e| {
            GatewayError::bad_gateway(format!("{} sent an unreadable stream chunk: {e}", self.provider))
        })?;
        if let Some(err) = &chunk.error {
            return Err(stream_error(err));
        }
        for c in &chunk.choices {
            self.ends.choice(c.index, c.finish_reason.is_some());
        }
        let usage = chunk.usage.as_ref().filter(|u| u.is_object()).map(Usage::from_openai);
        if usage.is_some() {
            self.usage.clone_from(&usage);
        }
        let choices = chunk
            .choices
            .into_iter()
            .map(|c| CompletionChunkChoice {
                index: c.index,
                finish_reason: c.finish_reason,
                text: c.text.or_else(|| c.delta.and_then(|d| content_text(d.content))),
            })
            .collect();
        out.push(Chunk::Completions(CompletionsChunk {
            id: chunk.id,
            object: object::COMPLETION_CHUNK,
            created: chunk.created.unwrap_or(self.created),
            model: chunk.model,
            choices,
            usage,
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

/// Decoder for OpenAI-format embeddings answers.
pub fn embeddings_decoder(call: &Call<'_>) -> Decoder {
    let provider = call.provider_label();
    Decoder::Json(Box::new(move |body| decode_embeddings(body, provider)))
}

/// Decode an OpenAI-format embeddings answer (vectors re-indexed in order).
pub fn decode_embeddings(body: &[u8], provider: &'static str) -> Result<Answer, GatewayError> {
    let wire: WireEmbeddings = super::parse_upstream_json(body, provider)?;
    let usage = wire.usage.unwrap_or(Value::Null);
    Ok(Answer::Embeddings(EmbeddingsResponse {
        object: object::LIST,
        data: wire
            .data
            .into_iter()
            .enumerate()
            .map(|(i, d)| Embedding { object: object::EMBEDDING, embedding: d.embedding.into(), index: i as u32 })
            .collect(),
        model: wire.model,
        usage: EmbeddingsUsage {
            prompt_tokens: usage.get("prompt_tokens").and_then(Value::as_u64),
            total_tokens: usage.get("total_tokens").and_then(Value::as_u64),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(chunks: &[&str]) -> (Vec<Value>, Option<GatewayError>) {
        let mut d = SseStream::new(ChatStream::new("openai", 1));
        crate::framing::testing::run(&mut d, chunks)
    }

    #[test]
    fn embedding_vectors_pass_through_as_sent() {
        // The vectors are copied, not parsed and printed again: the upstream's number text stays.
        let body = br#"{"object":"list","data":[{"object":"embedding","index":5,"embedding":[0.10000000000000001,-2.5E-7,3]},{"object":"embedding","index":0,"embedding":"AACAPw=="}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        let out = serde_json::to_string(&decode_embeddings(body, "openai").unwrap()).unwrap();
        assert!(out.contains(r#""embedding":[0.10000000000000001,-2.5E-7,3],"index":0"#), "{out}");
        assert!(out.contains(r#""embedding":"AACAPw==","index":1"#), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
        assert!(decode_embeddings(br#"{"data":[{"embedding":[1,"#, "openai").is_err());
    }

    #[test]
    fn chat_chunks_keep_nulls_and_usage() {
        let (events, err) = stream(&[
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n",
        ]);
        assert!(err.is_none());
        assert_eq!(events[0]["choices"][0]["delta"], json!({"role": "assistant", "content": null, "tool_calls": null}));
        assert_eq!(events[0]["usage"], Value::Null);
        assert_eq!(events[1]["usage"]["total_tokens"], json!(3));
        assert_eq!(events[1]["provider"], json!("openai"));
    }

    #[test]
    fn list_typed_delta_content_keeps_text_parts_only() {
        let (events, err) = stream(&[
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"think\"}]}]}}]}\n\n",
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}}]}\n\n",
            "data: [DONE]\n\n",
        ]);
        assert!(err.is_none());
        assert_eq!(events[0]["choices"][0]["delta"]["content"], Value::Null);
        assert_eq!(events[1]["choices"][0]["delta"]["content"], json!("Hi"));
    }

    #[test]
    fn error_event_mid_stream_is_an_error() {
        let (events, err) = stream(&[
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!(err.unwrap().message(), "overloaded");
    }

    #[test]
    fn a_stream_is_complete_at_done_or_a_finish_reason() {
        let chunk = |finish: &str| {
            format!(
                "data: {{\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}},\"finish_reason\":{finish}}}]}}\n\n"
            )
        };
        let (events, err) = stream(&[&chunk("null"), &chunk("null")]);
        assert_eq!(events.len(), 2);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
        assert!(stream(&[&chunk("null"), &chunk("\"stop\"")]).1.is_none(), "a finish_reason without [DONE]");
        assert!(stream(&[&chunk("null"), "data: [DONE]\n\n"]).1.is_none(), "[DONE] without a finish_reason");
        // n = 2: cut after the first choice finished is not complete; both finished is.
        let second = |finish: &str| chunk(finish).replace("\"index\":0", "\"index\":1");
        let (_, err) = stream(&[&chunk("null"), &second("null"), &chunk("\"stop\"")]);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
        assert!(stream(&[&chunk("null"), &second("null"), &chunk("\"stop\""), &second("\"length\"")]).1.is_none());

        let mut d = SseStream::new(CompletionsStream::new("openai", 1));
        let text = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\"a\",\"finish_reason\":null}]}\n\n";
        let (_, err) = crate::framing::testing::run(&mut d, [text]);
        assert_eq!(err.unwrap().status, 502);
        let mut d = SseStream::new(CompletionsStream::new("openai", 1));
        let (_, err) = crate::framing::testing::run(&mut d, [text, "data: [DONE]\n\n"]);
        assert!(err.is_none());
    }

    #[test]
    fn garbage_chunk_is_a_502() {
        let (_, err) = stream(&["data: {not json}\n\n"]);
        assert_eq!(err.unwrap().status, 502);
    }

    #[test]
    fn completions_text_from_either_shape() {
        let body = br#"{"id":"c","created":5,"model":"m","choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"},{"text":"yo","finish_reason":"length"}]}"#;
        let v: Value = serde_json::to_value(decode_completions(body, "openai", 9).unwrap()).unwrap();
        assert_eq!(v["choices"][0]["text"], json!("hi"));
        assert_eq!(v["choices"][1]["text"], json!("yo"));
        assert_eq!(v["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));
    }

    #[test]
    fn passthrough_injects_model_and_usage() {
        let req = crate::schema::parse_request(
            crate::schema::EndpointType::Chat,
            br#"{"messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"foo":1}}"#,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&passthrough_body(req, Some(Some("gpt")), true).unwrap()).unwrap();
        assert_eq!(body["model"], json!("gpt"));
        assert_eq!(body["stream_options"], json!({"foo": 1, "include_usage": true}));
        assert_eq!(body["n"], json!(1));
    }
}

#[cfg(test)]
mod choice_ends_tests {
    use super::ChoiceEnds;

    #[test]
    fn every_started_choice_must_finish() {
        let mut e = ChoiceEnds::default();
        assert!(!e.all_finished());
        e.choice(0, false);
        e.choice(1, false);
        e.choice(0, true);
        assert!(!e.all_finished(), "choice 1 has not finished");
        e.choice(1, true);
        assert!(e.all_finished());
        e.choice(200, false);
        assert!(!e.all_finished());
        e.choice(90, true);
        assert!(e.all_finished(), "indices past 63 share one slot");
    }
}
